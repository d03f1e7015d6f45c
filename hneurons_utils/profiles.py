"""Run profiles and the places things live (data, cache, outputs).

A profile is a named set of papermill parameters kept in ``params/<profile>.yaml``:
``smoke`` (CI, minutes), ``default`` (the embedded model on a laptop CPU, about an hour for the
whole book) and ``paper`` (a 7B+ model on a GPU at the paper's scale). The notebooks' own
``parameters`` cells hold the ``default`` values, so ``params/default.yaml`` only names the
profile; the other files override what they change.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

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
