"""bench/gpu_check.py, the GPU machine's check, kept runnable: its correctness part runs here on
the CPU (where "the device against the CPU" is trivially equal, but the steering methods'
agreement, keyed sampling's independence and frequencies, and the sharded load are real)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "bench" / "gpu_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_correctness_part_passes_on_the_cpu():
    g = load_script()
    g.part1(torch.device("cpu"))
    names = [c["check"] for c in g.results["checks"]]
    assert not g.failed, g.failed
    assert len(names) == 23 and any("keyed sampling" in n for n in names)


def test_relative_error_and_a_failed_check_are_reported(capsys):
    g = load_script()
    want = torch.tensor([1.0, 2.0, 0.0])
    assert g.rel_error(want, want) == 0.0
    assert abs(g.rel_error(torch.tensor([1.1, 2.0, 0.0]), want) - 0.1) < 1e-6
    assert g.rel_error(torch.tensor([1.0, 2.0, 1e-4]), want) < 0.1  # near zero: floored
    g.check("a planted failure", False, "detail")
    assert g.failed == ["a planted failure"] and "[FAIL] a planted failure: detail" in capsys.readouterr().out


def test_unknown_shape_is_named():
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--device", "cpu",
                          "--shape", "llama-9000"], capture_output=True, text=True)
    assert out.returncode != 0 and "unknown --shape ['llama-9000']" in out.stderr
