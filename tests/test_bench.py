"""The benchmark scripts that need no model run end to end at a tiny size (their figures are
for `make bench`; here only that they run and report what they say they report)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_probe_times_both_routes_and_they_agree(tmp_path):
    """bench_probe.py skips chapter 2's rows when no build left them, fits random rows by both
    routes (the same objective and H-Neurons), and prints the paper-scale estimate."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_probe.py"), "--rows", "40",
                          "--widths", "3000", "--results", str(tmp_path)],
                         capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "chapter 2's training rows: none under" in text and "skipped" in text
    rows = {m.group(1): m.group(2) for m in re.finditer(
        r"random CETT-like rows\s+(full|working-set)\s+40 x\s+3,000 .* objective (\S+ +\d+ H-Neurons)", text)}
    assert set(rows) == {"full", "working-set"} and rows["full"] == rows["working-set"], text
    assert re.search(r"working-set .* \d+ rounds, [\d,]+ columns", text)
    assert len(re.findall(r"H-Neurons .*; rows digested in \d+\.\d\d s", text)) == 2, text
    assert re.search(r"7B/8B \(32 x 14,336\)\s+full\s+7\d\.\d GiB", text)
