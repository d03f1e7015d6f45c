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


def token_heatmap(ax: plt.Axes, view: Any, columns: list[str], title: str = "",
                  scale: dict[str, float] | None = None) -> Any:
    """Draw ``neurons.token_view`` output: one row per neuron, one column per token.

    Each neuron's row is divided by ``scale[neuron]`` (default: that neuron's largest value in
    ``view``; pass the maximum over several views to compare them), so neurons with different
    CETT scales share one colour bar (0 to 1); answer tokens have red, bold labels. Returns the
    image (for a colour bar).
    """
    vals = np.stack([np.asarray(view[c], dtype=np.float64) for c in columns])  # [k, T]
    peak = (vals.max(axis=1, keepdims=True) if scale is None
            else np.array([[scale[c]] for c in columns], dtype=np.float64))
    img = ax.imshow(np.divide(vals, peak, out=np.zeros_like(vals), where=peak > 0),
                    aspect="auto", cmap="viridis", vmin=0, vmax=1)
    ax.set_yticks(range(len(columns)), columns)
    ax.set_xticks(range(len(view)), [repr(t)[1:-1] for t in view["token"]], rotation=90, fontsize=8)
    for label, is_answer in zip(ax.get_xticklabels(), view["answer"]):
        if is_answer:
            label.set_color("C3")
            label.set_fontweight("bold")
    ax.grid(False)
    ax.set_title(title, fontsize=10, loc="left")
    return img
