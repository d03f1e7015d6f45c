"""Figure and result-file helpers shared by every chapter.

Every figure is saved beside a JSON file holding the numbers drawn in it, so each number
quoted in the book traces to a file and a notebook.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

PAPER_STYLE = dict(color="0.35", linestyle="--", marker="x")  # how the paper's numbers are drawn


def setup_style() -> None:
    """One look for the whole book (seaborn's whitegrid, readable sizes)."""
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 150, "savefig.bbox": "tight"})


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None  # JSON has no NaN; None reads as "not available"
    return x


def write_results(out_dir: str | Path, name: str, results: dict) -> Path:
    """Write ``results`` as ``<out_dir>/<name>.json`` (numpy values converted, NaN -> null)."""
    path = Path(out_dir) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_jsonable(results), indent=2, sort_keys=True))
    return path


def save_figure(fig: plt.Figure, out_dir: str | Path, name: str,
                numbers: dict | None = None) -> Path:
    """Save ``fig`` as ``<out_dir>/<name>.png`` and, if given, its numbers as ``<name>.json``."""
    path = Path(out_dir) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    if numbers is not None:
        write_results(out_dir, name, numbers)
    return path
