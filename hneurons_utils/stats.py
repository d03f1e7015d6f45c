"""Metrics with uncertainty: accuracy, AUROC, proportions and their 95% intervals.

Every number the book reports carries an interval. Detection metrics (Table 1, Section 2) use
a percentile bootstrap over examples, resampled within each class so a balanced evaluation set
stays balanced; rates (compliance, accuracy of generated answers, Section 3) use the Wilson
score interval, which behaves at 0 and 1 where the normal approximation does not.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from scipy.stats import norm

Metric = Callable[[np.ndarray, np.ndarray], float]

# Fewer responses than this in the smaller class: no verdict on a detection metric (a
# percentile bootstrap over so few is unreliable). Chapters 3, 5 and the scorecard share it.
MIN_PER_CLASS = 10


def _binary(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y).ravel()
    if y.size and not np.isin(y, (0, 1)).all():
        raise ValueError(f"labels must be 0/1, got values {np.unique(y)[:5]}")
    return y.astype(np.int64)


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Share of predictions equal to the label (NaN on an empty set)."""
    y_true, y_pred = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    _same_length(y_true, y_pred, "predictions")
    return float(np.mean(y_true == y_pred)) if y_true.size else float("nan")


def _same_length(y: np.ndarray, other: np.ndarray, what: str) -> None:
    """Labels and their predictions or scores pair up one to one (numpy would broadcast one)."""
    if y.shape != other.shape:
        raise ValueError(f"{y.size} labels but {other.size} {what}: they must pair up one to one")


def auroc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U, ties count one half); NaN with one class only."""
    y = _binary(y_true)
    s = np.asarray(score, dtype=np.float64).ravel()
    _same_length(y, s, "scores")
    pos, neg = s[y == 1], s[y == 0]
    if not pos.size or not neg.size:
        return float("nan")
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([pos, neg]))
    u = ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2
    return float(u / (pos.size * neg.size))


def column_aurocs(X: np.ndarray, y: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """:func:`auroc` of every column of ``X`` [rows, features] as a score for ``y``: ``[features]``.

    Rank transforms of ``chunk`` columns at a time (ties count one half), so memory stays at
    a few copies of ``rows x chunk`` however many neurons the model has; 46,080 neurons over a
    thousand rows take seconds. NaN for every column when ``y`` has one class only.
    """
    from scipy.stats import rankdata

    y = _binary(y)
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] != y.size:
        raise ValueError(f"X {X.shape} must be [rows, features] with one row per label ({y.size})")
    n_pos, n_neg = int(y.sum()), int(y.size - y.sum())
    if not n_pos or not n_neg:
        return np.full(X.shape[1], np.nan)
    u = np.concatenate([rankdata(X[:, j:j + chunk].astype(np.float64), axis=0)[y == 1].sum(0)
                        for j in range(0, X.shape[1], chunk)])
    return (u - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def bootstrap_ci(metric: Metric, y_true: np.ndarray, y_other: np.ndarray, n_boot: int = 1000,
                 level: float = 0.95, seed: int = 0, stratified: bool = True
                 ) -> tuple[float, float]:
    """Percentile bootstrap interval of ``metric(y_true, y_other)`` over examples.

    ``stratified`` resamples each class separately (balanced sets stay balanced). Resamples on
    which the metric is undefined (NaN) are dropped; returns ``(nan, nan)`` if all are.
    """
    y_true, y_other = np.asarray(y_true).ravel(), np.asarray(y_other).ravel()
    _same_length(y_true, y_other, "scores")
    if not y_true.size:
        return float("nan"), float("nan")
    stats = np.array([metric(y_true[idx], y_other[idx])
                      for idx in _resamples(y_true, n_boot, seed, stratified)])
    return _percentiles(stats, level)


def check_level(level: float) -> float:
    """A confidence level in (0, 1), or a ValueError (95 for 0.95 would give a silent (0, 1))."""
    if not 0 < level < 1:
        raise ValueError(f"confidence level {level!r} must lie strictly between 0 and 1 "
                         "(0.95, not 95)")
    return level


def _resamples(y: np.ndarray, n_boot: int, seed: int, stratified: bool = True):
    """``n_boot`` bootstrap index arrays over the examples of ``y`` (each class resampled on its
    own when ``stratified``, so a balanced set stays balanced), from one seeded generator."""
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(y == c) for c in np.unique(y)] if stratified else [np.arange(y.size)]
    for _ in range(n_boot):
        yield np.concatenate([rng.choice(g, size=g.size, replace=True) for g in groups])


def _percentiles(stats: np.ndarray, level: float) -> tuple[float, float]:
    """The percentile interval of bootstrap replicates; NaN replicates are dropped
    (``(nan, nan)`` if all are)."""
    check_level(level)
    stats = np.asarray(stats, dtype=np.float64)
    if not stats.size or np.isnan(stats).all():
        return float("nan"), float("nan")
    alpha = (1 - level) / 2
    lo, hi = np.nanquantile(stats, [alpha, 1 - alpha])
    return float(lo), float(hi)


def paired_bootstrap_ci(metric: Metric, y_true: np.ndarray, score_a: np.ndarray,
                        score_b: np.ndarray, n_boot: int = 1000, level: float = 0.95,
                        seed: int = 0, stratified: bool = True) -> dict:
    """``metric(y, a) - metric(y, b)`` for two scores of the *same* examples, with a paired
    percentile bootstrap interval: each replicate resamples the examples once (within each
    class when ``stratified``) and scores both on that same resample, so what the two share
    (which examples happen to be easy) cancels out of the difference.

    Returns ``{"a", "b", "diff", "diff_ci": [lo, hi], "n_boot", "ci_level"}``; the interval is
    ``[nan, nan]`` when no replicate is defined (e.g. one class only).
    """
    y = np.asarray(y_true).ravel()
    a, b = np.asarray(score_a, dtype=np.float64).ravel(), np.asarray(score_b, dtype=np.float64).ravel()
    if not y.shape == a.shape == b.shape:
        raise ValueError(f"labels {y.shape} and the two scores {a.shape}, {b.shape} differ in length")
    point_a, point_b = (metric(y, a), metric(y, b)) if y.size else (float("nan"), float("nan"))
    reps = np.array([metric(y[idx], a[idx]) - metric(y[idx], b[idx])
                     for idx in (_resamples(y, n_boot, seed, stratified) if y.size else ())])
    return {"a": float(point_a), "b": float(point_b), "diff": float(point_a - point_b),
            "diff_ci": list(_percentiles(reps, level)), "n_boot": int(n_boot), "ci_level": level}


def detection_metrics(y_true: np.ndarray, score: np.ndarray, threshold: float = 0.0,
                      n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """Accuracy (``score > threshold`` predicts 1) and AUROC with bootstrap intervals.

    The paper's Table 1 reports both for a probe that predicts "hallucinated" (label 1).
    ``flagged`` is the share of examples predicted 1: where the threshold falls on this set
    (on a balanced set, far from 0.5 means accuracy is held down by the threshold, not the ranking).
    """
    y = _binary(y_true)
    s = np.asarray(score, dtype=np.float64).ravel()
    if not np.isfinite(s).all():  # NaN > threshold is False: it would count silently as class 0
        raise ValueError(f"{int((~np.isfinite(s)).sum())} of {s.size} scores are NaN or infinite: "
                         "features are missing for those responses")
    pred = (s > threshold).astype(np.int64)
    acc_ci = bootstrap_ci(accuracy, y, pred, n_boot, level, seed)
    auc_ci = bootstrap_ci(auroc, y, s, n_boot, level, seed)
    return {"n": int(y.size), "n_pos": int(y.sum()), "n_neg": int((1 - y).sum()),
            "accuracy": accuracy(y, pred), "accuracy_ci": list(acc_ci),
            "auroc": auroc(y, s), "auroc_ci": list(auc_ci), "ci_level": level,
            "flagged": float(pred.mean()) if pred.size else float("nan")}


def verdict_agreement(pairs: Sequence[tuple[bool, bool]]) -> dict:
    """Precision and recall of a judge's yes/no verdicts against hand labels, with Wilson CIs.

    ``pairs``: ``(judge_says_yes, human_says_yes)`` per labelled item. ``both_yes`` counts the
    items where both say yes; precision is its share of the judge's yeses, recall its share of
    the human's; ``agreement`` the share of items where both say the same (nan without items).
    """
    pairs = [(bool(v), bool(h)) for v, h in pairs]
    tp = sum(v and h for v, h in pairs)
    pred, pos = sum(v for v, _ in pairs), sum(h for _, h in pairs)
    return {"n_used": len(pairs), "judge_yes": pred, "human_yes": pos, "human_no": len(pairs) - pos,
            "both_yes": tp,
            "precision": tp / pred if pred else np.nan, "precision_ci": wilson_ci(tp, pred),
            "recall": tp / pos if pos else np.nan, "recall_ci": wilson_ci(tp, pos),
            "agreement": float(np.mean([v == h for v, h in pairs])) if pairs else np.nan}


def wilson_ci(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``k / n`` (``(nan, nan)`` when ``n == 0``)."""
    check_level(level)
    if n <= 0:
        return float("nan"), float("nan")
    if not 0 <= k <= n:
        raise ValueError(f"k={k} must lie in [0, n={n}]")
    z = float(norm.ppf(0.5 + level / 2))
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    lo = 0.0 if k == 0 else max(0.0, centre - half)  # exact at the ends (no rounding residue)
    hi = 1.0 if k == n else min(1.0, centre + half)
    return float(lo), float(hi)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value of paired binary outcomes: ``b`` pairs where only the
    first condition succeeds, ``c`` where only the second does (a binomial test of ``b`` in
    ``b + c`` at one half; 1.0 when no pair differs)."""
    from scipy.stats import binom

    b, c = int(b), int(c)
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got {b} and {c}")
    n = b + c
    if n == 0:
        return 1.0
    return float(min(1.0, 2 * binom.cdf(min(b, c), n, 0.5)))


def mean_spread(values: np.ndarray) -> dict:
    """Mean, sample standard deviation, min and max of repeated runs (e.g. random seeds)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[~np.isnan(v)]
    if not v.size:
        return {"mean": float("nan"), "std": float("nan"), "min": float("nan"),
                "max": float("nan"), "n": 0}
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "min": float(v.min()), "max": float(v.max()), "n": int(v.size)}


def column_means(values: np.ndarray) -> np.ndarray:
    """Column means of ``values [items, cols]`` over the scored (non-NaN) entries; a column
    with none is NaN (no warning)."""
    v = np.asarray(values, dtype=np.float64)
    ok = ~np.isnan(v)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, v, 0.0).sum(0) / ok.sum(0)


def item_bootstrap_means(values: np.ndarray, n_boot: int = 1000, seed: int = 0,
                         draws: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Column means of ``values [items, cols]`` and their item-bootstrap replicates ``[n_boot, cols]``.

    Rows are the resampling unit (benchmark items): each replicate draws ``items`` rows with
    replacement (``draws [n_boot, items]`` holds how often each row is drawn; pass the same
    ``draws`` to several calls for paired replicates). NaN entries (an item not scored at that
    column) are left out of that column's mean; a column with no scored item drawn is NaN.
    Take percentiles of the replicates for an interval; a column whose every value is 0 (or 1)
    has a zero-width interval, the known limit of a percentile bootstrap of a proportion.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2:
        raise ValueError(f"values must be [items, cols], got shape {v.shape}")
    if draws is None:
        rng = np.random.default_rng(seed)
        draws = rng.multinomial(v.shape[0], np.full(v.shape[0], 1 / v.shape[0]), size=n_boot) \
            if v.shape[0] else np.zeros((n_boot, 0))
    draws = np.asarray(draws, dtype=np.float64)
    if draws.shape[1] != v.shape[0]:
        raise ValueError(f"draws cover {draws.shape[1]} items but values have {v.shape[0]}")
    ok = ~np.isnan(v)
    filled = np.where(ok, v, 0.0)
    point = column_means(v)
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = (draws @ filled) / (draws @ ok)
    return point, boot
