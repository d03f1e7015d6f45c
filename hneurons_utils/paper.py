"""The paper's published numbers (Gao et al., 2025, arXiv 2512.01797v2), for side-by-side tables.

Everything is read from ``data/paper_reference.json``, which records each value with the section,
table or figure it comes from and a quote. Percentages stay in [0, 100] as the paper prints them;
ratios are per mille. Values the paper shows only in a figure are ``None`` there (and NaN in the
frames below), never estimated. Each frame has a ``source`` column so a notebook can concatenate
it with our own results and keep every row labelled.
"""

from __future__ import annotations

import copy
import json
import math
from functools import lru_cache
from pathlib import Path

import pandas as pd

REFERENCE_PATH = Path(__file__).resolve().parent.parent / "data" / "paper_reference.json"
DATASETS = ("triviaqa", "nq_open", "bioasq", "nonexist")
TABLE1_SOURCE = "paper (Gao et al. 2025, Table 1)"
FIG4A_SOURCE = "paper (Gao et al. 2025, Section 4 text; Figure 4a values are figure-only)"
FIG4B_SOURCE = "paper (Gao et al. 2025, Section 4 text; Figure 4b values are figure-only)"


class PaperReferenceError(ValueError):
    """``data/paper_reference.json`` is missing or does not have the expected shape."""


def _fail(path: Path, what: str) -> PaperReferenceError:
    return PaperReferenceError(f"{path}: {what}. Restore the file from version control "
                               f"(it holds the paper's published numbers; see its 'source' block).")


def load_reference(path: str | Path | None = None) -> dict:
    """The whole reference record as a dict, checked for the blocks the chapters read."""
    path = Path(path) if path is not None else REFERENCE_PATH
    return copy.deepcopy(_load(path.resolve()))  # callers may edit their copy


@lru_cache(maxsize=4)
def _load(path: Path) -> dict:
    if not path.is_file():
        raise PaperReferenceError(f"paper reference file not found: {path}. It ships with the "
                                  "repository under data/; restore it from version control.")
    try:
        ref = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise _fail(path, f"not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from e
    for key in ("source", "models", "table1", "identification_settings", "figure3", "figure4", "notes"):
        if key not in ref:
            raise _fail(path, f"missing top-level block {key!r}")
    rows = ref["table1"].get("rows")
    if not isinstance(rows, dict) or set(rows) != set(ref["models"]):
        raise _fail(path, "table1.rows must have exactly one entry per model in 'models'")
    for model, row in rows.items():
        for ds in DATASETS:
            cell = row.get(ds)
            if not isinstance(cell, dict) or not {"h_neurons", "random"} <= set(cell):
                raise _fail(path, f"table1.rows[{model!r}] lacks {ds!r} with 'h_neurons' and 'random'")
    return ref


def dataset_label(key: str) -> str:
    """The paper's name of a dataset key for figures (``nq_open`` -> ``NQ-Open``); a key the
    paper does not use (a user's ``QA_FILES`` set) is returned as it is."""
    return load_reference().get("dataset_labels", {}).get(key, key)


def table1_frame(path: str | Path | None = None) -> pd.DataFrame:
    """Table 1 in long form: one row per (model, dataset).

    Columns: ``model, dataset, h_neurons, random, ratio_permille, source``; accuracies in %.
    """
    ref = load_reference(path)
    records = [
        {"model": model, "dataset": ds, "h_neurons": float(row[ds]["h_neurons"]),
         "random": float(row[ds]["random"]), "ratio_permille": float(row["ratio_permille"]),
         "source": TABLE1_SOURCE}
        for model, row in ref["table1"]["rows"].items() for ds in DATASETS
    ]
    return pd.DataFrame.from_records(records)


def table1_margins(path: str | Path | None = None) -> pd.DataFrame:
    """Table 1's H-Neurons minus random accuracy (percentage points), paired within each model:
    one row per (model, dataset), columns ``model, dataset, margin``."""
    t = table1_frame(path)
    return t.assign(margin=t.h_neurons - t.random)[["model", "dataset", "margin"]]


def margin_range_text(dataset: str, path: str | Path | None = None) -> str:
    """Table 1 on one dataset as per-model margins: the lowest and highest H-Neurons minus
    random accuracy over the paper's models, and on how many the H-Neurons are ahead, e.g.
    ``"accuracy, H-Neurons minus random per model: -7.5 to +37.7 pp; H-Neurons ahead on 5 of 6
    models (behind on Llama-3.1-8B)"``."""
    m = table1_margins(path)
    m = m[m.dataset == dataset]
    if not len(m):
        raise KeyError(f"{dataset!r} is not a dataset of the paper's Table 1 ({', '.join(DATASETS)})")
    num = lambda x: f"{x:+.1f}".replace("-0.0", "+0.0")  # noqa: E731
    ahead, behind = m[m.margin > 0], m[m.margin < 0]
    text = (f"accuracy, H-Neurons minus random per model: {num(m.margin.min())} to "
            f"{num(m.margin.max())} pp; H-Neurons ahead on {len(ahead)} of {len(m)} models")
    if len(behind):
        text += f" (behind on {', '.join(behind.model)})"
    return text


def _num(x) -> float:
    return float(x) if x is not None else math.nan


def backward_auroc_frame(path: str | Path | None = None) -> pd.DataFrame:
    """What the text states about Figure 4(a): base-model AUROC (%), one row per (model, dataset).

    Columns: ``model, dataset, auroc, auroc_above, source``. ``auroc`` is NaN everywhere (the
    per-cell values are figure-only); ``auroc_above`` is the lower bound the text gives
    (86 for the Mistral models on TriviaQA, otherwise the 50 of random guessing).
    """
    ref = load_reference(path)
    block = ref["figure4"]["backward_auroc"]
    values = block.get("values") or {}
    bounds = {}
    for b in block.get("text_bounds", []):
        models = ref["models"] if b["models"] == "all six" else b["models"]
        datasets = block["datasets"] if b["dataset"] == "all three" else [b["dataset"]]
        for m in models:
            for ds in datasets:
                bounds[(m, ds)] = max(bounds.get((m, ds), -math.inf), float(b["auroc_above"]))
    records = [
        {"model": m, "dataset": ds, "auroc": _num(values.get(m, {}).get(ds)),
         "auroc_above": bounds.get((m, ds), math.nan), "source": FIG4A_SOURCE}
        for m in ref["models"] for ds in block["datasets"]
    ]
    return pd.DataFrame.from_records(records)


def drift_frame(path: str | Path | None = None) -> pd.DataFrame:
    """What the text states about Figure 4(b): the H-Neurons' average normalized drift rank.

    Columns: ``model, avg_rank, avg_rank_approx, avg_rank_above, p_value, source``. A rank near 1
    means the H-Neurons changed less than most neurons during instruction tuning; 0.5 is what
    a random set of neurons would give. NaN / None where the value is figure-only.
    """
    ref = load_reference(path)
    per_model = ref["figure4"]["drift"]["per_model"]
    records = [
        {"model": m, "avg_rank": _num(per_model.get(m, {}).get("avg_rank")),
         "avg_rank_approx": bool(per_model.get(m, {}).get("avg_rank_approx", False)),
         "avg_rank_above": _num(per_model.get(m, {}).get("avg_rank_above")),
         "p_value": per_model.get(m, {}).get("p_value"), "source": FIG4B_SOURCE}
        for m in ref["models"]
    ]
    return pd.DataFrame.from_records(records)


def figure3_alpha_range(path: str | Path | None = None) -> tuple[float, float]:
    """The scaling-factor range of Figure 3 (Eq. 5): ``(0.0, 3.0)``; the grid points are figure-only."""
    lo, hi = load_reference(path)["figure3"]["alpha_range"]
    return float(lo), float(hi)


def ratio_range(path: str | Path | None = None) -> tuple[float, float]:
    """The lowest and highest H-Neuron ratio (per mille) of Table 1 over the paper's six models."""
    ratios = table1_frame(path).ratio_permille
    return float(ratios.min()), float(ratios.max())


FEW_NEURONS = 5  # under this many H-Neurons, sparsity_reading says the ratio rests on too few


def sparsity_reading(n_h_neurons: int, per_mille: float, path: str | Path | None = None) -> str:
    """Our H-Neuron ratio against the paper's claim (Section 2 and Table 1: under 1 per mille, and the
    range of Table 1's ratio column over its six models)."""
    lo, hi = ratio_range(path)
    text = ("no H-Neuron selected" if n_h_neurons == 0 else
            "within the paper's range" if lo <= per_mille <= hi else
            "sparse (under 1 per mille), but outside the paper's range" if per_mille < 1 else
            "not sparse: more than 1 per mille")
    if 0 < n_h_neurons < FEW_NEURONS:
        text += (f", but from {'a single neuron' if n_h_neurons == 1 else f'only {n_h_neurons} neurons'}:"
                 " too few for the ratio (or any test on them) to say much")
    return text

