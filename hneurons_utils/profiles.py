"""Run profiles and the places things live (data, cache, outputs).

A profile is a named set of papermill parameters kept in ``params/<profile>.yaml``:
``smoke`` (CI, minutes), ``default`` (the embedded model on a laptop CPU, about an hour for the
whole book) and ``paper`` (a 7B+ model on a GPU at the paper's scale). The notebooks' own
``parameters`` cells hold the ``default`` values, so ``params/default.yaml`` only names the
profile; the other files override what they change. A user's own YAML file of overrides
(``PARAMS=my.yaml make book``: another model, larger sizes) is laid over a profile with the same
checks: every name must be a parameter of some chapter, and every value keeps that parameter's type.
"""

from __future__ import annotations

import ast
import os
import re
import sys
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
PARAMS_DIR = REPO_ROOT / "params"


def load_profile(name: str) -> dict:
    """The parameter overrides of profile ``name`` (a flat dict of notebook globals)."""
    path = PARAMS_DIR / f"{name}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in PARAMS_DIR.glob("*.yaml"))
        raise FileNotFoundError(f"unknown profile {name!r}: no {path}; known profiles: {known}")
    with open(path) as f:
        params = yaml.safe_load(f) or {}
    if not isinstance(params, dict):
        raise ValueError(f"{path}: a profile must be a mapping of parameter names to values")
    return params


def notebook_parameters(path: str | os.PathLike) -> dict:
    """The globals assigned in a jupytext notebook's single ``parameters`` cell, with values."""
    cells = re.split(r"^# %%", Path(path).read_text(encoding="utf-8"), flags=re.M)
    found = [c for c in cells if c.startswith(' tags=["parameters"]')]
    if len(found) != 1:
        raise ValueError(f"{path}: expected exactly one parameters cell, found {len(found)}")
    tree = ast.parse(found[0].split("\n", 1)[1])
    return {t.id: ast.literal_eval(node.value) for node in tree.body
            if isinstance(node, ast.Assign) for t in node.targets}


def all_parameters() -> dict:
    """Every chapter's parameters with their default values (later chapters win on a clash)."""
    params: dict = {}
    for nb in sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.py")):
        params.update(notebook_parameters(nb))
    return params


def type_problems(params: dict, defaults: dict) -> list[str]:
    """The entries of ``params`` that are no chapter's parameter or change a parameter's type.

    An int may stand for a float, None for anything, a bool for the tri-state ``"auto"``, and a
    parameter whose default is None takes any value. A bool is not a number here (YAML reads
    ``yes`` as True, which Python would take for 1), and the items of a list must each have the
    type of one of the default's items (``[0, 0.5]`` takes numbers, not ``"0"``).
    """
    problems = []
    for key, value in params.items():
        if key not in defaults:
            problems.append(f"{key} is not a parameter of any chapter")
            continue
        d = defaults[key]
        if not _fits(value, d):
            problems.append(f"{key}: {value!r} has type {type(value).__name__}, but its default "
                            f"{d!r} has type {type(d).__name__}")
    return problems


def _fits(value: Any, default: Any) -> bool:
    """Whether ``value`` may replace ``default`` (the rules of :func:`type_problems`)."""
    if default is None or value is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and (isinstance(default, bool) or default == "auto")
    if isinstance(default, float):
        return isinstance(value, (int, float))
    if not isinstance(value, type(default)):
        return False
    if isinstance(default, (list, tuple)) and default:
        return all(any(_fits(v, d) for d in default) for v in value)
    return True


def check_parameters(chapter: str, values: dict) -> None:
    """Raise if a chapter's parameters, as the run set them, changed type (first code cell).

    ``values`` is the notebook's ``globals()``; only the names of ``notebooks/<chapter>.py``'s
    parameters cell are checked. The usual cause: ``papermill -p ALPHAS "[0, 1]"`` passes the
    string ``"[0, 1]"``; lists and mappings must go in with ``-y`` or ``-f`` (YAML).
    """
    defaults = notebook_parameters(REPO_ROOT / "notebooks" / f"{chapter}.py")
    problems = type_problems({k: values[k] for k in defaults if k in values}, defaults)
    if problems:
        raise TypeError(f"{chapter} parameters: " + "; ".join(problems) + ". Give lists and "
                        "mappings to papermill with -y or -f (YAML), not -p (which passes text).")


def load_overrides(path: str | os.PathLike) -> dict:
    """A user's parameter overrides (a flat YAML mapping), checked by :func:`type_problems`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"parameter file {path} does not exist")
    with open(path) as f:
        params = yaml.safe_load(f) or {}
    if not isinstance(params, dict):
        raise ValueError(f"{path}: expected a mapping of parameter names to values")
    if "PROFILE" in params:
        raise ValueError(f"{path}: PROFILE names the profile the file is laid over; choose it with "
                         "the PROFILE setting of the build (make book PROFILE=...), not in the file")
    problems = type_problems(params, all_parameters())
    if problems:
        raise ValueError(f"{path}: " + "; ".join(problems))
    return params


def profile_values(name: str, overrides: str | os.PathLike | None = None) -> dict:
    """Profile ``name``, then the ``overrides`` file if given (every chapter's share)."""
    return {**load_profile(name), **(load_overrides(overrides) if overrides else {})}


def profile_for_notebook(name: str, notebook: str | os.PathLike,
                         overrides: str | os.PathLike | None = None) -> dict:
    """:func:`profile_values` restricted to the parameters ``notebook`` declares (what
    papermill gets)."""
    known = notebook_parameters(notebook)
    return {k: v for k, v in profile_values(name, overrides).items() if k in known}


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` is set to anything but an off value ("0", "false", "no",
    "off" or empty): Hub files then come only from the local Hugging Face cache."""
    return os.environ.get("HF_HUB_OFFLINE", "0").strip().lower() not in ("0", "false", "no", "off", "")


def data_dir(explicit: str | os.PathLike | None = None) -> Path | None:
    """The local benchmark data folder: ``explicit``, else ``$HNEURONS_DATA_DIR``, else None.

    None means "no local copy": loaders then fall back to the public Hugging Face datasets.
    """
    value = explicit or os.environ.get("HNEURONS_DATA_DIR")
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"data directory {path} does not exist (from "
                                f"{'the DATA_DIR parameter' if explicit else '$HNEURONS_DATA_DIR'})")
    return path


def model_key(model_id: str) -> str:
    """A filesystem-safe key for a model id or folder (``meta-llama/Llama-3.1-8B`` -> ``meta-llama--Llama-3.1-8B``)."""
    name = str(model_id).rstrip("/")
    if os.path.isdir(name):
        name = Path(name).name
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name.replace("/", "--"))


def run_dir(output_dir: str | os.PathLike, model_id: str, *parts: str) -> Path:
    """``<output_dir>/<model key>/<parts...>``, created: where a chapter writes its artefacts."""
    path = Path(output_dir) / model_key(model_id)
    for p in parts:
        path = path / p
    path.mkdir(parents=True, exist_ok=True)
    return path


ENVIRONMENT_FILE = "environment.json"
# The packages whose arithmetic or decisions reach the numbers (the rest only move files).
ENVIRONMENT_PACKAGES = ("torch", "transformers", "nnsight", "scikit-learn", "numpy", "scipy")


def _processor() -> str:
    """The processor's model name (Linux: /proc/cpuinfo; elsewhere what ``platform`` says)."""
    import platform

    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def environment(m: Any = None) -> dict:
    """What a run's numbers were computed with, beyond its parameters: the package versions of
    :data:`ENVIRONMENT_PACKAGES`, Python, the processor and the vector instructions torch's CPU
    kernels use (``torch.backends.cpu.get_cpu_capability()``: kernels that add in another
    order round differently, which can move a sampled near-tie token; ``bench/bench_numerics.py``
    measures how often), torch's thread count, and, for a loaded model ``m``, where it runs
    (device and dtype, or NDIF). Nothing that names the machine or the time: two runs in the
    same environment give the same dict."""
    import platform
    from importlib import metadata

    import torch

    versions = {}
    for name in ENVIRONMENT_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    env = {"python": platform.python_version(), "packages": versions,
           "os": f"{platform.system()} {platform.machine()}", "processor": _processor(),
           "cpu_kernels": torch.backends.cpu.get_cpu_capability(), "torch_threads": torch.get_num_threads()}
    if m is not None:
        if getattr(m, "remote", False):
            env["model_runs_on"] = "NDIF (remote)"
        else:
            p = next(m.hf.parameters())
            where = str(p.device)
            if p.device.type == "cuda":
                where += f" ({torch.cuda.get_device_name(p.device)}, CUDA {torch.version.cuda})"
            env["model_runs_on"] = f"{where}, {str(p.dtype).replace('torch.', '')}"
    return env


def read_environments(path: str | os.PathLike) -> list[dict]:
    """The environments an ``environment.json`` lists (none when the file does not exist); a
    file that is not valid JSON, or not a list of JSON objects, is an error naming it."""
    import json

    path = Path(path)
    if not path.exists():
        return []
    try:
        seen = json.loads(path.read_text())
    except ValueError as e:
        raise ValueError(f"{path}: not valid JSON ({e}); move the file aside or delete it") from e
    if not isinstance(seen, list) or not all(isinstance(e, dict) for e in seen):
        raise ValueError(f"{path}: expected a list of environments (JSON objects); move the "
                         "file aside or delete it")
    return seen


def record_environment(out_dir: str | os.PathLike, m: Any = None) -> list[dict]:
    """Add this run's :func:`environment` to ``out_dir/environment.json`` unless it is there
    already, and return the file's list: every environment that wrote results into the folder,
    oldest first (a run resumed on another machine adds a second entry, so a folder whose
    answers come from two environments says so). A file that is not such a list is an error."""
    import json

    path = Path(out_dir) / ENVIRONMENT_FILE
    seen = read_environments(path)
    env = environment(m)
    if env not in seen:
        from .files import write_text_atomic

        seen.append(env)
        write_text_atomic(path, json.dumps(seen, indent=2, sort_keys=True) + "\n")
    return seen


def describe_environment(env: dict) -> str:
    """One line for a reader: processor, torch's kernels and threads, torch, and the model's device."""
    pk = env.get("packages", {})
    out = (f"{env.get('processor', '?')} ({env.get('cpu_kernels', '?')} kernels, "
           f"{env.get('torch_threads', '?')} thread{'s' if env.get('torch_threads') != 1 else ''}), "
           f"torch {pk.get('torch')}, transformers {pk.get('transformers')}, Python {env.get('python')}")
    return out + (f"; model on {env['model_runs_on']}" if env.get("model_runs_on") else "")


if __name__ == "__main__":  # python -m hneurons_utils.profiles PROFILE NOTEBOOK.py [MINE.yaml] -> YAML
    usage = "usage: python -m hneurons_utils.profiles PROFILE NOTEBOOK.py [OVERRIDES.yaml]"
    if sys.argv[1:] in (["-h"], ["--help"]):
        print(usage)
        sys.exit(0)
    if len(sys.argv) not in (3, 4):
        sys.exit(usage)
    try:
        chosen = profile_for_notebook(*sys.argv[1:])
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")
    print(yaml.safe_dump(chosen, sort_keys=False), end="")
