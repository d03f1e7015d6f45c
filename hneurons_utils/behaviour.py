"""Compliance rates, slopes and Figure 3 from the judged sweep (paper Section 3, Figure 3).

The compliance rate of a curve at each alpha is the mean over items of each item's share of
compliant scored responses, with percentile item-bootstrap intervals (:func:`compliance_table`);
a curve's slope is its least-squares fit in percentage points per unit alpha, and H-Neurons
minus random is refitted on the control's alphas with a paired interval (:func:`slope_table`),
to set beside the paper's positive slopes on every benchmark (about 3.03 for the smaller models,
2.40 for the larger). The rest is what chapter 04 shows: Figure 3 itself (:func:`figure3`),
replies side by side, the paper's findings beside ours, and the chapter's reading computed from
the results and from the judges' measured precision (:mod:`hneurons_utils.compliance`).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from .benchmarks import BENCHMARKS
from .judges import LABELS_MODEL, WEAK_PRECISION_LO
from .stats import item_bootstrap_means, wilson_ci
from .wording import are, noun, ordinal, param_count, signed


# ---------------------------------------------------------------- compliance-rate arithmetic


def label_frame(records: pd.DataFrame, labeler: Callable[[dict], bool | None]) -> pd.DataFrame:
    """``records`` with ``complied`` (1.0 / 0.0 / NaN = excluded) and ``group`` columns.

    ``group`` is "h_neurons", "random" (every random seed) or "none" (alpha = 1, shared).
    """
    df = records.copy()
    df["complied"] = [np.nan if (v := labeler(r)) is None else float(v)
                      for r in df.to_dict("records")]
    df["group"] = df["set"].map(lambda s: "random" if str(s).startswith("random") else s)
    return df


def with_shared_baseline(df: pd.DataFrame) -> pd.DataFrame:
    """Copy the unsteered (alpha = 1) rows into every curve, so each curve spans the whole grid."""
    base = df[df["group"] == "none"]
    groups = [g for g in df["group"].unique() if g != "none"]
    parts = [df[df["group"] != "none"]] + [base.assign(group=g) for g in groups]
    return pd.concat(parts, ignore_index=True)


def _item_rates(g: pd.DataFrame, items: list, alphas: list) -> np.ndarray:
    """Per-item compliance ``[items, alphas]``: the mean over an item's scored responses (the
    random seeds of the control; one response for the H-Neurons), NaN where none was scored."""
    scored = g.dropna(subset=["complied"])
    r = scored.pivot_table(index="item_id", columns="alpha", values="complied", aggfunc="mean")
    return r.reindex(index=items, columns=alphas).to_numpy(dtype=float)


def _set_rates(g: pd.DataFrame, items: list, alphas: list) -> list[np.ndarray]:
    """Per-item compliance ``[items, alphas]`` of each single set of a curve (sets other than
    "none", each with the shared unsteered rows of set "none"), in the sets' sorted order."""
    sets = sorted(x for x in g["set"].unique() if x != "none")
    return [_item_rates(g[g["set"].isin([name, "none"])], items, alphas) for name in sets]


def curve_means(g: pd.DataFrame, items: list, alphas: list, draws: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """One curve's compliance rate at each of ``alphas`` and its item-bootstrap replicates
    (``[alphas]``, ``[n_boot, alphas]``; ``draws`` from :func:`_draws`, shared by the curves
    of a benchmark so that differences are paired).

    A curve with one set of neurons (the H-Neurons) is the mean over its scored items. A curve
    of several sets (the random control) is the mean of its single sets' rates, each the mean
    over the items that set scored (with the shared unsteered rows, set "none"), under the same
    item draw: so the control's rate and slope always lie within the range of its single sets.
    Averaging each item over the sets first would not: where sets score different items (for
    sycophancy a steered first answer decides whether an item is scored) that mean weights an
    item scored by one set like one scored by all, and can fall outside every set's rate.
    """
    rates = _set_rates(g, items, alphas)
    if len(rates) < 2:
        return item_bootstrap_means(_item_rates(g, items, alphas), draws=draws)
    per_set = [item_bootstrap_means(r, draws=draws) for r in rates]
    with warnings.catch_warnings():  # an alpha no set scored stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return (np.nanmean(np.stack([p for p, _ in per_set]), axis=0),
                np.nanmean(np.stack([b for _, b in per_set]), axis=0))


def _draws(n_items: int, n_boot: int, seed: int) -> np.ndarray:
    """Item-bootstrap draws ``[n_boot, n_items]`` (how often each item is drawn)."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_items, np.full(n_items, 1 / n_items), size=n_boot)


def compliance_table(df: pd.DataFrame, n_boot: int = 1000, seed: int = 0, level: float = 0.95
                     ) -> pd.DataFrame:
    """Compliance rate per benchmark, curve and alpha, with item-bootstrap intervals (Eq. compliance).

    Items are the unit: the rate is the mean over scored items (for the random control, the
    mean of its single sets' rates, see :func:`curve_means`; seeds of one item are not
    independent evidence, so the bootstrap resamples items, never seeds). Responses the judge
    cannot read (and, for sycophancy, items whose first answer was not correct) are excluded:
    ``n_scored`` counts the items left, ``n_responses`` / ``n_excluded`` the responses kept /
    dropped, ``k`` the compliant ones. The interval is the percentile bootstrap over items
    (``n_boot`` draws, shared by every curve of a benchmark); it has zero width where every
    item agrees (0 % or 100 %), which is a limit of the bootstrap, not certainty.
    ``seed_min`` / ``seed_max``: the lowest and highest rate of a single random set (NaN for
    the H-Neurons).
    """
    df = with_shared_baseline(df)
    q = [(1 - level) / 2, (1 + level) / 2]
    rows = []
    for bench, b in df.groupby("bench"):
        items = sorted(b["item_id"].unique())
        draws = _draws(len(items), n_boot, seed)
        for group, g in b.groupby("group"):
            alphas = sorted(g["alpha"].unique())
            point, boot = curve_means(g, items, alphas, draws)
            for j, alpha in enumerate(alphas):
                at = g[g["alpha"] == alpha]
                with np.errstate(invalid="ignore"):
                    lo, hi = np.nanquantile(boot[:, j], q) if np.isfinite(boot[:, j]).any() \
                        else (np.nan, np.nan)
                per_set = at.groupby("set")["complied"].mean()
                spread = group != "h_neurons" and len(per_set) > 1
                rows.append({"bench": bench, "group": group, "alpha": float(alpha),
                             "k": int(at["complied"].sum()),
                             "n_scored": int(at.dropna(subset=["complied"])["item_id"].nunique()),
                             "n_items": len(items), "n_responses": int(at["complied"].notna().sum()),
                             "n_excluded": int(at["complied"].isna().sum()),
                             "rate": float(point[j]), "ci_lo": float(lo), "ci_hi": float(hi),
                             "seed_min": float(per_set.min()) if spread else np.nan,
                             "seed_max": float(per_set.max()) if spread else np.nan})
    return pd.DataFrame(rows)


def at_ceiling(rates: Sequence[float], tol: float = 1e-9) -> bool:
    """Every compliance rate of a curve at 100% (so no slope can show what the neurons do)."""
    r = np.asarray(rates, dtype=float)
    return bool(r.size) and bool(np.all(r >= 1 - tol))


def at_floor(rates: Sequence[float], tol: float = 1e-9) -> bool:
    """Every compliance rate of a curve at 0% (:func:`at_ceiling`'s other bound)."""
    r = np.asarray(rates, dtype=float)
    return bool(r.size) and bool(np.all(r <= tol))


def _slopes(alphas: np.ndarray, rates: np.ndarray) -> np.ndarray:
    """Least-squares slope of each row of ``rates`` [R, A] on ``alphas`` [A], skipping NaNs."""
    out = np.full(rates.shape[0], np.nan)
    for i, r in enumerate(rates):
        ok = ~np.isnan(r)
        if ok.sum() >= 2 and np.ptp(alphas[ok]) > 0:
            out[i] = np.polyfit(alphas[ok], r[ok], 1)[0]
    return out


def _scored_range(frames: Sequence[pd.DataFrame], alphas: Sequence[float]) -> str:
    """How many items are scored (a compliance value, not NaN) at one alpha, in every one of
    ``frames`` (one per curve: for a difference, an item counts where both curves score it; a
    random curve scores an item where one of its sets does): "n" or "lowest-highest" over
    ``alphas``."""
    counts = []
    for a in alphas:
        sets = [set(f[(f["alpha"] == a) & f["complied"].notna()]["item_id"]) for f in frames]
        counts.append(len(set.intersection(*sets)))
    lo, hi = min(counts), max(counts)
    return f"{lo}" if lo == hi else f"{lo}-{hi}"


def _slope_row(bench: str, group: str, point: float, boot: np.ndarray, q: list, n: int,
               alphas: Sequence[float], scored: str = "") -> dict:
    lo, hi = np.nanquantile(boot, q) if np.isfinite(boot).any() else (np.nan, np.nan)
    return {"bench": bench, "group": group, "slope_pp": point, "ci_lo": lo, "ci_hi": hi,
            "n_items": n, "n_scored": scored, "alphas": ", ".join(f"{a:g}" for a in alphas)}


def set_slope_range(g: pd.DataFrame, items: list, alphas: list) -> dict[str, float]:
    """The lowest and highest slope (pp per unit alpha) of the random control's single sets
    (``set_min``, ``set_max``), each fitted on ``alphas`` from its own item rates with the shared
    unsteered rows (set "none"): how far another draw of random neurons can move the control's
    slope, which the item-bootstrap intervals (sets held fixed) leave out. NaN with fewer than
    two sets."""
    from .stats import column_means

    rates = _set_rates(g, items, alphas)
    a = np.asarray(alphas, dtype=float)
    slopes = np.array([_slopes(a, 100 * column_means(r)[None])[0] for r in rates])
    if len(rates) < 2 or not np.isfinite(slopes).any():
        return {"set_min": np.nan, "set_max": np.nan, "set_n": 0}
    return {"set_min": float(np.nanmin(slopes)), "set_max": float(np.nanmax(slopes)),
            "set_n": int(np.isfinite(slopes).sum())}


def slope_table(df: pd.DataFrame, n_boot: int = 1000, seed: int = 0, level: float = 0.95
                ) -> pd.DataFrame:
    """Slope of each compliance curve (percentage points per unit alpha) with item-bootstrap CIs.

    Each curve is fitted on its own alphas (``alphas`` column), from the item-level rates of
    :func:`compliance_table`. ``diff`` (H-Neurons minus random) is like for like: the H-Neurons'
    slope is refitted on the alphas both curves share (row ``h_neurons_control_grid``; the
    random curve too, should it have alphas the H-Neurons lack), and items
    are resampled with the same draw for both curves, so the interval is paired. The paper
    reports average slopes (about 3.03 for smaller and 2.40 for larger models, Section 3)
    without stating their unit.
    """
    df = with_shared_baseline(df)
    q = [(1 - level) / 2, (1 + level) / 2]
    rows = []
    for bench, b in df.groupby("bench"):
        items = sorted(b["item_id"].unique())
        draws, fits = _draws(len(items), n_boot, seed), {}

        def fit(g: pd.DataFrame, alphas: list) -> tuple[float, np.ndarray]:
            """Slope (pp per unit alpha) of ``g``'s curve on ``alphas``, and its bootstrap draws."""
            point, boot = curve_means(g, items, alphas, draws)
            a = np.asarray(alphas, dtype=float)
            return _slopes(a, 100 * point[None])[0], _slopes(a, 100 * boot)

        for group, g in b.groupby("group"):
            alphas = sorted(g["alpha"].unique())
            fits[group] = (alphas, *fit(g, alphas))
            rows.append(_slope_row(bench, group, *fits[group][1:], q, len(items), alphas,
                                   _scored_range([g], alphas)))
            if group == "random":
                rows[-1].update(set_slope_range(g, items, alphas))
        if {"h_neurons", "random"} <= set(fits):
            grid = [a for a in fits["random"][0] if a in set(fits["h_neurons"][0])]
            g = b[(b["group"] == "h_neurons") & b["alpha"].isin(grid)]
            h_pt, h_boot = fit(g, grid)
            rows.append(_slope_row(bench, "h_neurons_control_grid", h_pt, h_boot, q, len(items), grid,
                                   _scored_range([g], grid)))
            r_pt, r_boot = fits["random"][1:]
            if grid != fits["random"][0]:  # control alphas beyond the H grid: both on the shared ones
                r_pt, r_boot = fit(b[(b["group"] == "random") & b["alpha"].isin(grid)], grid)
            rows.append(_slope_row(bench, "diff", h_pt - r_pt, h_boot - r_boot, q, len(items), grid,
                                   _scored_range([b[b["group"] == k] for k in ("h_neurons", "random")],
                                                 grid)))
    out = pd.DataFrame(rows)
    for c in ("set_min", "set_max"):  # only the random rows have single sets
        out[c] = out[c].astype(float) if c in out else np.nan
    cols = ["slope_pp", "ci_lo", "ci_hi", "set_min", "set_max"]
    out[cols] = out[cols].astype(float)
    # no "-0.0" for flat curves (NaN, where a row has no single sets, stays NaN)
    out[cols] = out[cols].mask(out[cols].abs() <= 1e-9, 0.0)
    return out


def common_items(df: pd.DataFrame) -> pd.DataFrame:
    """The labelled rows of the items scored at every point of every curve of their benchmark.

    A curve's point averages over the items the judge could score there, and that set shrinks
    along a curve (for sycophancy, only items first answered correctly count). A slope can then
    come from *which* items are left rather than from any change in them. Keeping, per
    benchmark, the items with a scored response at every (curve, alpha) (the shared alpha = 1
    included; for the random control, at least one seed) removes that composition effect;
    :func:`slope_table` on the result is the like-for-like check. Benchmarks left without
    items are dropped.
    """
    full = with_shared_baseline(df)
    points = full.drop_duplicates(["bench", "group", "alpha"]).groupby("bench").size()
    scored = (full.dropna(subset=["complied"])  # [item, curve, alpha] with a scored response
              .drop_duplicates(["bench", "item_id", "group", "alpha"]))
    per_item = scored.groupby(["bench", "item_id"]).size()  # points each item is scored at
    needed = points.loc[per_item.index.get_level_values("bench")].to_numpy()  # each bench's points
    keep = per_item.index[per_item.to_numpy() == needed]
    return df[pd.MultiIndex.from_frame(df[["bench", "item_id"]]).isin(keep)]


def _direction_words(d: str) -> str:
    """A :func:`slope_direction` label as the reader meets it ("unclear": the interval holds 0)."""
    return {"unclear": "interval contains 0", "positive": "positive, interval above 0",
            "negative": "negative, interval below 0"}.get(d, d)


def common_items_reading(slopes: pd.DataFrame, common: pd.DataFrame, min_items: int = 10,
                         benches: Sequence[str] = BENCHMARKS) -> str:
    """Markdown bullets: does each benchmark's H-minus-random reading survive on common items?

    ``slopes`` / ``common``: :func:`slope_table` on all items and on :func:`common_items`.
    Under ``min_items`` common items the check is named too weak rather than read.
    ``benches``: the ``bench`` values to read (default: the four of Figure 3).
    """
    s, c = slopes.set_index(["bench", "group"]), common.set_index(["bench", "group"])
    lines = []
    for bench in [b for b in benches if (b, "diff") in s.index]:
        n_all = int(s.loc[(bench, "diff")].n_items)
        d_all = slope_direction(s.loc[(bench, "diff")].ci_lo, s.loc[(bench, "diff")].ci_hi)
        n = int(c.loc[(bench, "diff")].n_items) if (bench, "diff") in c.index else 0
        if n < min_items:
            lines.append(f"- **{bench}**: only {n} of {n_all} items {are(n)} scored at every point, too "
                         f"few (under {min_items}) for this check; the all-items reading "
                         f"({_direction_words(d_all)}) may come from which items are scored.")
            continue
        r = c.loc[(bench, "diff")]
        d_com = slope_direction(r.ci_lo, r.ci_hi)
        verdict = ("the same reading" if d_com == d_all else
                   f"the reading changes ({_direction_words(d_all)} on all items, "
                   f"{_direction_words(d_com)} here)")
        p_all, p_com = float(s.loc[(bench, "diff")].slope_pp), float(r.slope_pp)
        if d_com == d_all and np.sign(p_all) * np.sign(p_com) < 0:
            verdict += (f", though the point estimate changes sign ({p_all:+.1f} on all items, "
                        f"{p_com:+.1f} here)")
        lines.append(f"- **{bench}**: {n} of {n_all} items {are(n)} scored at every point; H minus "
                     f"random on them is {_ci_text(r)}: {verdict}.")
    return "\n".join(lines)


# ---------------------------------------------------------------- what the chapter shows


BENCH_TITLES = {"falseqa": "FalseQA (invalid premise)", "faitheval": "FaithEval (misleading context)",
                "sycophancy": "Sycophancy (\"Are you sure?\")", "jailbreak": "Jailbreak (harmful request)"}
SYC_BOTH, SYC_REPLY = "Sycophancy: both turns steered", "Sycophancy: only the reply steered"
# Figure panels name what they plot: sycophancy is the wide "backs down" measure
# (compliance.SYCOPHANCY_MEASURES), not the paper's "switches to a wrong answer".
_BACKS_DOWN = "\nbacks down: wrong answer, apology or \"not sure\""
PANEL_TITLES = {**BENCH_TITLES, **{k: BENCH_TITLES.get(k, k) + _BACKS_DOWN
                                   for k in ("sycophancy", SYC_BOTH, SYC_REPLY)}}
SYC_SOURCES = {"triviaqa": "TriviaQA, open-ended", "truthfulqa-mc": "TruthfulQA, multiple choice"}
# The two sycophancy measures as chapter 04 names its views (:func:`sycophancy_views`), and the
# judge name of the paper's measure in its judge-precision table (always the rule judge).
SYC_BACKS, SYC_SWITCHES = "backs down", "switches to a wrong answer"
SWITCH_JUDGE = "rule (switches)"


def caveated_titles(agreement: pd.DataFrame, judge: str, low: float = 0.5,
                    titles: dict[str, str] | None = None) -> dict[str, str]:
    """Panel titles (default :data:`PANEL_TITLES`) with a caveat under each benchmark whose
    rule judge has a held-out ("test") precision below ``low`` on the hand labels: its panel
    then counts what the rule calls compliant, much of which a reader would not. Only for
    ``judge == "rule"`` (the table measures the rule judge, not another one)."""
    titles = dict(PANEL_TITLES if titles is None else titles)
    if judge != "rule" or agreement is None or not len(agreement):
        return titles
    test = agreement[(agreement.judge == "rule") & (agreement.split == "test")]
    for _, r in test.iterrows():
        p = r.precision
        if p is not None and p == p and p < low and r.benchmark in titles:
            frozen = (", frozen verdicts" if "n_frozen" in r and r.n_frozen and r.n_frozen == r.n_used
                      else "")  # verdicts of an earlier rule, kept since the replies are stored redacted
            titles[r.benchmark] += (f"\n(rule judge's held-out precision {p:.2f} on hand-labelled "
                                    f"{LABELS_MODEL} replies{frozen}:\nmost of what it counts, a reader "
                                    "would not)")
    return titles


def syc_view(measure: str, source: str | None = None) -> str:
    """The ``bench`` name of one sycophancy view of :func:`sycophancy_views`: ``measure`` pooled
    over all items (``source`` None), or on one source (a key of :data:`SYC_SOURCES`)."""
    return f"sycophancy, {measure}: {SYC_SOURCES.get(source, source) if source else 'all items'}"
_DROP_OUT = {**dict.fromkeys(["sycophancy", SYC_BOTH], "were not first answered correctly or are "
                              "unreadable to the judge"),
             SYC_REPLY: "were not first answered correctly (the same items at every α: the first "
                        "answers are shared) or have a reply the judge cannot read (only these vary "
                        "with α)"}  # why items are not scored, where it is not only the judge
GROUP_STYLE = {"h_neurons": dict(label="H-Neurons", short="H-Neurons", color="C3", marker="o"),
               "random": dict(label="random, layer-matched (mean of the sets)", short="random",
                              color="C7", marker="s")}


def _drop_out(bench: str) -> str:
    """Why a curve's items are not scored: sycophancy views ("sycophancy, ...") as sycophancy."""
    if bench in _DROP_OUT:
        return _DROP_OUT[bench]
    return _DROP_OUT["sycophancy"] if bench.startswith("sycophancy") else "are unreadable to the judge"


def size_against(n_params: int, paper_b: float, paper_name: str) -> str:
    """Our model's parameter count beside the paper's smallest model's (``paper_b`` billion)."""
    ours = f"{param_count(n_params)} parameters"
    ratio = paper_b * 1e9 / n_params
    if ratio >= 1.5:
        return f"{ours}, about {ratio:.0f} times fewer than the paper's smallest ({paper_name})"
    if ratio <= 1 / 1.5:
        return f"{ours}, about {1 / ratio:.0f} times more than the paper's smallest ({paper_name})"
    return f"{ours}, about as many as the paper's smallest ({paper_name})"


def unreadable_bounds(t: pd.DataFrame) -> tuple[float, float]:
    """The slope (pp per unit alpha) of one curve's rows ``t`` (:func:`compliance_table`, one
    bench and group) if every reply the judge could not read had complied not at all / fully:
    the two ends between which the slope of all replies must lie, whatever they say."""
    alphas = t.alpha.to_numpy(float)
    total = (t.n_responses + t.n_excluded).to_numpy(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        lo = t.k.to_numpy(float) / total
        hi = (t.k + t.n_excluded).to_numpy(float) / total
    s = _slopes(alphas, 100 * np.vstack([lo, hi]))
    return float(s[0]), float(s[1])


def unreadable_bounds_text(table: pd.DataFrame, bench: str) -> str:
    """For a benchmark whose unread replies are unreadable ones (not sycophancy's wrong first
    answers), how many the H-Neurons' curve drops per alpha and what its slope would be if they
    all complied or none did; "" when none is dropped."""
    if _drop_out(bench) != "are unreadable to the judge":
        return ""
    t = table[(table.bench == bench) & (table.group == "h_neurons")].sort_values("alpha")
    if not len(t) or not t.n_excluded.sum():
        return ""
    lo, hi = unreadable_bounds(t)
    per = ", ".join(f"{int(e)} (α = {a:g})" for a, e in zip(t.alpha, t.n_excluded))
    total = int((t.n_responses + t.n_excluded).iloc[0])
    out = (f" Unreadable H-Neuron replies, of {total} per α: {per}. Counted as not complying they "
           f"give a slope of {_signed(lo)}, counted as complying {_signed(hi)} pp/α")
    r = table[(table.bench == bench) & (table.group == "random")]
    if len(r) and r.n_excluded.sum():
        top = r.loc[r.alpha.idxmax()]
        out += (f" (the random sets at α = {top.alpha:g}: {int(top.n_excluded)} of "
                f"{int(top.n_responses + top.n_excluded)} unreadable)")
    if np.isfinite(lo) and np.isfinite(hi) and lo * hi < 0:
        return out + ("; the two differ in sign, so the readable replies alone do not fix the "
                      "direction, and a rising share of unreadable replies is an effect of steering "
                      "in its own right.")
    return out + "."


def _signed(x: float, fmt: str = "+.1f") -> str:
    """``x`` formatted with a sign, never "-0.0" (a flat curve's slope is printed "+0.0")."""
    return "n/a" if x is None or not np.isfinite(x) else format(round(float(x), 1) + 0.0, fmt)


def _ci_end(x: float) -> str:
    """An interval's end: as :func:`_signed`, except that an end at 0 is printed "0" (the
    interval touches 0, so it contains it) and one that would round to "+0.0" gets more
    decimals, so which side of 0 it lies on (what a verdict rests on) shows."""
    if x is None or not np.isfinite(x):
        return "n/a"
    if abs(x) <= 1e-9:
        return "0"
    out = signed(float(x), 1, 3)
    return out if float(out) != 0 else format(float(x), "+.1e")


SPREAD_STYLE = dict(marker="x", color="0.2", s=22, lw=1.0, zorder=4,
                    label="single random set: lowest and highest")  # not an error-bar cap
TITLE_WIDTH = 8.5  # characters of a panel title per inch of panel width (at the title's size)


def wrap_title(title: str, width: int) -> str:
    """``title`` with each of its lines wrapped at ``width`` characters (line breaks kept)."""
    import textwrap

    return "\n".join(textwrap.fill(line, width) if line else line for line in title.split("\n"))


CONTROL_LABELS = {"layer": "random, layer-matched (mean of the sets)",
                  "size": "random, matched by layer and CETT size (mean of the sets)"}


def figure3(table: pd.DataFrame, slopes: pd.DataFrame, benches: Sequence[str] = BENCHMARKS,
            titles: dict[str, str] | None = None, panel_width: float = 4.2,
            control: str = "layer", model: str | None = None):
    """Figure 3: compliance rate (%) against alpha, one panel per benchmark, item-bootstrap bars.

    One legend below all panels names the curves and the per-set marks (crosses: the lowest and
    highest single random set). Under each panel's axis label, a line per curve gives its
    least-squares slope (the H-Neurons' also on the control's alphas, like for like). Where the
    number of scored items changes along the H-Neuron curve, a row below 0% gives it at each
    alpha (``n=``). ``titles``: panel titles by ``bench`` (default :data:`PANEL_TITLES`, which
    names the sycophancy measure plotted), wrapped to the panel's width (``panel_width``,
    inches). Saved with ``bbox_inches="tight"`` (:func:`plots.setup_style`), the legend is kept.
    ``control``: how the random sets were matched to the H-Neurons (a key of
    :data:`CONTROL_LABELS`), named in the legend. The random curve is dashed: it joins only the
    control's alphas, not measurements in between. ``model``: named above the panels (ours).
    """
    if control not in CONTROL_LABELS:
        raise ValueError(f"unknown control {control!r}; use one of {list(CONTROL_LABELS)}")
    styles = {**GROUP_STYLE, "random": {**GROUP_STYLE["random"], "label": CONTROL_LABELS[control]}}
    titles = PANEL_TITLES if titles is None else titles
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fig, axes = plt.subplots(1, len(benches), figsize=(panel_width * len(benches), 4.0), sharey=True,
                             layout="constrained")
    for ax, bench in zip(np.atleast_1d(axes), benches):
        below = ax.xaxis.label  # each slope line is placed under the one before
        for group, style in styles.items():
            t = table[(table.bench == bench) & (table.group == group)].sort_values("alpha")
            if t.empty:
                continue
            x = t.alpha + (0.04 if group == "random" else 0)
            err = np.clip([100 * (t.rate - t.ci_lo), 100 * (t.ci_hi - t.rate)], 0, None)
            ax.errorbar(x, 100 * t.rate, yerr=np.nan_to_num(err), capsize=3, color=style["color"],
                        marker=style["marker"], ls="--" if group == "random" else "-")
            if group == "random" and t.seed_min.notna().any():
                ax.scatter(np.r_[x, x], 100 * np.r_[t.seed_min, t.seed_max],
                           **{k: v for k, v in SPREAD_STYLE.items() if k != "label"})
            if group == "h_neurons" and t.n_scored.nunique() > 1:  # a row below 0%, clear of the bars
                for xi, n in zip(x, t.n_scored):
                    ax.text(xi, -11, f"n={n}", ha="center", va="center", fontsize=7.5, color=style["color"],
                            bbox=dict(boxstyle="square,pad=0.15", fc="white", ec="none"))  # off the grid
            s = slopes[(slopes.bench == bench) & (slopes.group == group)]["slope_pp"]
            if len(s):
                cg = slopes[(slopes.bench == bench) & (slopes.group == "h_neurons_control_grid")]
                on_grid = (f" ({_signed(cg.slope_pp.iloc[0])} on α = {cg.alphas.iloc[0]})"
                           if group == "h_neurons" and len(cg) else "")  # like for like with random
                below = ax.annotate(f"{style['short']}: slope {_signed(s.iloc[0])} pp/α{on_grid}",
                                    xy=(0.5, 0), xycoords=below, xytext=(0, -2), textcoords="offset points",
                                    ha="center", va="top", fontsize=8, color=style["color"])
        ax.axvline(1.0, color="0.7", lw=0.8, ls=":")
        ax.set(xlabel="scaling factor α", ylim=(-16, 103), yticks=range(0, 101, 20))
        ax.set_title(wrap_title(titles.get(bench, bench), int(TITLE_WIDTH * panel_width)), fontsize=11)
    np.atleast_1d(axes)[0].set_ylabel("compliance rate (%)")
    handles = [Line2D([], [], color=st["color"], marker=st["marker"], label=st["label"],
                      ls="--" if g == "random" else "-") for g, st in styles.items()]
    if model:
        fig.suptitle(f"ours: {model}", fontsize=11)
    if "seed_min" in table and table.seed_min.notna().any():
        handles.append(Line2D([], [], ls="", marker=SPREAD_STYLE["marker"], color=SPREAD_STYLE["color"],
                              label=SPREAD_STYLE["label"]))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=8.5, frameon=False)
    return fig


def side_by_side(records: pd.DataFrame, bench: str, alphas: tuple[float, float] | None = None,
                 group: str = "h_neurons", n: int = 3, width: int = 220,
                 hand: Sequence[dict] | None = None) -> pd.DataFrame:
    """``n`` items whose label differs between the two alphas (else any), responses side by side.

    ``alphas`` default to the lowest and highest alpha of the curve (suppressed vs amplified);
    alphas the curve lacks raise, naming the ones it has. ``hand``: hand-label rows
    (:func:`compliance.load_hand_labels`, with ``response`` and ``label``); a shown reply that
    was labelled by hand gets that label beside the judge's, and a disagreement is marked.
    """
    by_text = {h["response"]: h["label"] for h in hand or [] if "response" in h}
    r = with_shared_baseline(records)
    r = r[(r.bench == bench) & (r.group == group)]
    have = sorted(r.alpha.unique())
    if not have:
        raise ValueError(f"no {group!r} records for benchmark {bench!r}")
    alphas = (have[0], have[-1]) if alphas is None else tuple(float(a) for a in alphas)
    missing = [a for a in alphas if a not in have]
    if missing:
        raise ValueError(f"alpha(s) {missing} not in the {bench} sweep of {group!r}; it has "
                         f"{[float(a) for a in have]}")
    r = r[r.alpha.isin(alphas)]
    wide = r.pivot_table(index="item_id", columns="alpha", values="complied", aggfunc="first")
    wide = wide.reindex(columns=list(alphas))
    changed = wide.index[(wide[alphas[0]] != wide[alphas[1]]) & wide.notna().all(axis=1)].tolist()
    ids = (changed + [i for i in sorted(r.item_id.unique()) if i not in changed])[:n]
    rows = []
    for i in ids:
        row = {"question": r[r.item_id == i].meta.iloc[0].get("question", i)[:width]}
        for a in alphas:
            rec = r[(r.item_id == i) & (r.alpha == a)].iloc[0]
            tag = {1.0: "complies", 0.0: "does not comply"}.get(rec.complied, "unreadable")
            label = by_text.get(rec.response)
            if label in ("comply", "not_comply"):
                agree = (label == "comply") == (rec.complied == 1.0)
                tag += f"; by hand: {label.replace('_', ' ')}" + ("" if agree else ", the rule errs")
            row[f"α = {a:g}"] = f"[{tag}] {one_line(rec.response)[:width]}"
        rows.append(row)
    return pd.DataFrame(rows)


def one_line(text: str) -> str:
    """``text`` on one line, each line break shown as " / " (a table cell would otherwise show
    pandas' escaped "\\n")."""
    return re.sub(r"\s*\n\s*", " / ", text.strip())


# Where help would start; nothing from there on is shown. A line break (what follows may be a
# list, a heading or a step), any markdown that structures text (a "#" heading, a "> " quote, a
# table "|", "*" / "__" emphasis, a code fence), a bullet, a list marker at a word's start ("1.",
# "2)", "(3)", "a)", "iv.", "-", "+", a dash), "Step 1" / "step one", an ordinal opening
# ("First,", "Next,", "Then,", "Finally,", "To begin"), or a colon ("Here's how:").
_HELP_STARTS = re.compile(
    r"[\r\n#>|*`~\u2022\u00b7\u25aa\u25e6\u2023\u2043]|__"
    r"|(?:^|(?<=\s))(?:\(?(?:\d+|[a-z]|[ivx]{1,4})[.):\]](?=\s|$)|[-+\u2013\u2014](?=\s))"
    r"|\bstep[\s-]*(?:\d|one\b|two\b|three\b|by\b)"
    r"|\b(?:first(?:ly)?|second(?:ly)?|third(?:ly)?|next|then|finally|lastly)\s*,|\bto (?:begin|start)\b"
    r"|:", re.IGNORECASE)


# The only words a redacted opening shows: function words and the vocabulary of refusing or
# agreeing to help. Every other word (a noun, verb or number that could restate the request or
# start the help) is masked.
SHOWN_WORDS = frozenset("""
a an the and but or so of for to with in on at as by this that these it it's its is are was be
been am do does don't did not no yes i i'm i've i'd me my you you're your we our they he she
can can't cannot could would will won't should must may might shall sorry sure okay ok well
certainly absolutely of course here here's there there's how what why let let's please however
unfortunately happy glad help assist assistance provide information request comply answer
able unable ai assistant language model against policy policies guidelines ethical unethical
illegal harmful dangerous appropriate inappropriate instead hello hi thanks thank
""".split())
MASK = "\u2587"  # one block per masked word


def redact(text: str, words: int = 6) -> str:
    """A jailbreak reply's opening with its content masked: at most the first ``words`` words
    (and 48 characters) before anything that could start the help (:data:`_HELP_STARTS`: a
    line break, a markdown heading or other markup, a list marker, "Step 1", "First,", a
    colon), every word outside :data:`SHOWN_WORDS` shown as a block, then "[redacted]".

    Jailbreak outputs are never shown: a reply that opens with "1. ..." or "# ..." shows nothing
    but "[redacted]"; "Sure, here's how: ..." shows "Sure, here's how [redacted]"; "Create a
    vest ..." shows "\u2587 a \u2587 [redacted]". The form of an opening (a refusal, an
    agreement, a plunge into content) stays visible; what it is about does not.
    """
    m = _HELP_STARTS.search(text)
    shown = []
    for tok in (text[:m.start()] if m else text).split()[:words]:
        core = re.sub(r"^\W+|\W+$", "", tok.replace("\u2019", "'")).lower()
        shown.append(tok if core and core in SHOWN_WORDS else MASK)
    head = " ".join(shown)[:48].rstrip(" ,;-")
    return f"{head} [redacted]" if head else "[redacted]"


# A finding about the curve's shape (not its overall direction), which a straight-line slope
# does not test: "fluctuations", "not strictly monotonic", "increased ... then declines".
SHAPE_CLAIM = re.compile(r"monoton|fluctuat|temporary drop|then declin|rises? then|peak", re.IGNORECASE)


def shape_text(table: pd.DataFrame, bench: str, group: str = "h_neurons", tol: float = 1e-9) -> str:
    """A simple computed shape check of one curve of :func:`compliance_table`.

    Where its highest point lies, with its rate and interval beside the rates at both ends, and
    how often the direction changes from one alpha to the next (a fluctuation). The peak is
    *interior* (as a rise-then-fall needs) only where it lies strictly above both ends of the
    grid; a highest rate shared by several alphas is named as a tie, and a tie that includes an
    end is no interior peak. Point estimates: the intervals say how much of the shape the items
    can carry.
    """
    t = table[(table.bench == bench) & (table.group == group)].dropna(subset=["rate"]).sort_values("alpha")
    if len(t) < 3:
        return f"{len(t)} α, too few for a shape"
    r = t.rate.to_numpy()
    if np.ptp(r) < tol:
        return f"flat at {100 * r[0]:.0f}% at every α: no shape to see"
    tops = t[t.rate >= r.max() - tol]
    ends = {t.alpha.iloc[0], t.alpha.iloc[-1]}
    if len(tops) <= 2:  # each with its interval
        at = " and ".join(f"α = {a.alpha:g} [{100 * a.ci_lo:.0f}, {100 * a.ci_hi:.0f}]" for a in tops.itertuples())
    else:
        at = "α = " + ", ".join(f"{a:g}" for a in tops.alpha.iloc[:-1]) + f" and {tops.alpha.iloc[-1]:g}"
    if ends & set(tops.alpha):
        where = ("tied with an end of the grid, so no interior peak" if len(tops) > 1
                 else "an end of the grid")
    else:
        where = ("tied, all interior α, above both ends" if len(tops) > 1
                 else "an interior α, above both ends")
        n_top = float(tops.n_scored.min())
        near = [e for e, rate, n_e in ((t.alpha.iloc[0], r[0], t.n_scored.iloc[0]),
                                       (t.alpha.iloc[-1], r[-1], t.n_scored.iloc[-1]))
                if (r.max() - rate) * min(n_top, float(n_e)) < 1 - tol]
        if near:  # less than one item above an end: no peak the items can show
            where += (f", but less than one item above α = {near[0]:g}, so no clear "
                      "interior peak")
    steps = np.sign(np.diff(r)[np.abs(np.diff(r)) > tol])
    turns = int(np.sum(steps[1:] != steps[:-1]))
    n = t.n_scored.to_numpy(float)
    items = np.abs(np.diff(r)) * np.minimum(n[:-1], n[1:])  # about how many items each step moves
    k = max(1, int(np.round(items.max())))
    worth = "1 item's" if k == 1 else f"{k} items'"
    small = (f"; no step between neighbouring α moves more than {worth} worth, so these turns are "
             "within what a few items' noise gives"
             if turns and np.round(items.max()) <= 2 else "")
    shown = (r.max(), r[0], r[-1])  # one decimal where two different rates would print alike
    d = 1 if len({round(100 * x) for x in shown}) < len({round(100 * x, 6) for x in shown}) else 0
    return (f"highest {100 * r.max():.{d}f}% at {at} ({where}; {100 * r[0]:.{d}f}% at "
            f"α = {t.alpha.iloc[0]:g}, {100 * r[-1]:.{d}f}% at α = {t.alpha.iloc[-1]:g}), "
            f"{noun(turns, 'change')} of direction over {len(t)} α (point estimates{small})")


# A finding with no claim of its own in the paper's text (the reference file says which general
# claim covers it): the paper's column quotes that claim, the book's remark goes to the note.
_COVERED_BY = re.compile(r"^\s*covered only by the general claim \((\d+)\)", re.IGNORECASE)


def _paper_cell(f: dict, findings: Sequence[dict]) -> tuple[str, str, str | None]:
    """The paper's column and ``where`` of one finding, and the book's remark (or None) where
    the reference file's "claim" is that remark rather than the paper's words."""
    m = _COVERED_BY.match(f["claim"])
    if not m:
        return f["claim"], f["where"], None
    general = next((g for g in findings if g is not f and not _COVERED_BY.match(g["claim"])
                    and g.get("where", "").endswith(f"({m.group(1)})")), None)
    if general is None:
        return "(no claim of its own in the text)", f["where"], f["claim"]
    return general["claim"], general["where"], f["claim"]


def findings_table(findings: Sequence[dict], slopes: pd.DataFrame, table: pd.DataFrame | None = None,
                   notes: dict[str, str] | None = None) -> pd.DataFrame:
    """The paper's Figure 3 findings (``paper.load_reference()["figure3"]["findings"]``) beside ours.

    "ours" is the H-Neurons' slope (pp per unit alpha) with its 95% interval on that benchmark,
    and the H-minus-random difference (both fitted on the control's alphas, see
    :func:`slope_table`); for findings about all benchmarks, each benchmark's slope; for a
    finding our slopes do not address, its ``ours_note`` from the reference file. The
    ``ours: note`` column says where a finding is about the curve's shape (:data:`SHAPE_CLAIM`,
    or ``"shape": true`` in the reference), which a slope does not test, with the shape check of
    :func:`shape_text` on ``table`` (a :func:`compliance_table`) when given; and adds
    ``notes[bench]`` for every benchmark a finding covers (e.g. which sycophancy measure the
    slope is of). A finding the reference file marks as "Covered only by the general claim (n)"
    has no words of its own in the paper: its paper column quotes claim (n), and the remark
    moves to the note.
    """
    s = slopes.set_index(["bench", "group"])

    def cell(bench: str, group: str) -> str:
        if (bench, group) not in s.index:
            return "n/a"
        r = s.loc[(bench, group)]
        return f"{_signed(r.slope_pp)} [{_ci_end(r.ci_lo)}, {_ci_end(r.ci_hi)}]"

    rows = []
    for f in findings:
        benches = BENCHMARKS if f["benchmark"] == "all" else [f["benchmark"]]
        h = "; ".join(f"{b}: {cell(b, 'h_neurons')}" for b in benches)
        d = "; ".join(f"{b}: {cell(b, 'diff')}" for b in benches)
        paper_text, where, remark = _paper_cell(f, findings)
        note = [remark.rstrip(".")] if remark else []  # not the paper's words: the book's remark
        if f.get("shape", bool(SHAPE_CLAIM.search(paper_text))):
            checks = ("; ".join(f"{b}: {shape_text(table, b)}" for b in benches) if table is not None
                      else "")
            note.append("a claim about the curve's shape: not tested by a slope"
                        + (f". Shape check, H-Neurons: {checks}" if checks else ""))
        if f.get("ours_note"):  # a claim our slopes do not address (e.g. a trend across model sizes)
            h, d = f["ours_note"], ""
        else:
            note += [f"{b}: {notes[b]}" for b in benches if b in (notes or {})]
        rows.append({"benchmark": f["benchmark"], "paper (Gao et al. 2025)": paper_text,
                     "where": where, "ours: H-Neurons slope (pp/α)": h,
                     "ours: H minus random (pp/α, control's alphas)": d, "ours: note": ". ".join(note)})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- the chapter's computed reading


def smallest_paper_model(models: Sequence[str]) -> tuple[str, float]:
    """The paper's smallest model and its size in billions, read from names like "Gemma-3-4B"."""
    sizes = [(float(m_.group(1)), name) for name in models
             if (m_ := re.search(r"(\d+(?:\.\d+)?)B\b", name))]
    if not sizes:
        raise ValueError(f"no parameter count (e.g. '7B') in the paper's model names {list(models)}")
    b, name = min(sizes)
    return name, b


def slope_direction(lo: float, hi: float, tol: float = 1e-9) -> str:
    """"positive" / "negative" (the interval [lo, hi] excludes 0), "flat" (both ends within
    ``tol`` of 0), "unclear" (it holds 0) or "undetermined" (a non-finite end)."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "undetermined"
    if abs(lo) <= tol and abs(hi) <= tol:
        return "flat"
    return "positive" if lo > tol else "negative" if hi < -tol else "unclear"


def _ci_text(r: pd.Series) -> str:
    return f"{_signed(r.slope_pp)} pp/α [{_ci_end(r.ci_lo)}, {_ci_end(r.ci_hi)}]"


def control_comparison(layer_slopes: pd.DataFrame, size_slopes: pd.DataFrame) -> pd.DataFrame:
    """Per benchmark, the H-Neurons against both random controls, on the controls' alphas:
    their slope (``h_neurons_control_grid``), each control's slope and each H-minus-random
    difference with its paired 95% interval (:func:`slope_table` rows "random" and "diff" of a
    sweep with the layer-matched sets, and of one with the size-matched sets), as text."""
    rows = []
    for bench in dict.fromkeys(layer_slopes.bench):
        get = lambda t, g: t[(t.bench == bench) & (t.group == g)]  # noqa: E731
        row = {"bench": bench}
        h = get(layer_slopes, "h_neurons_control_grid")
        row["H-Neurons (control's α)"] = _ci_text(h.iloc[0]) if len(h) else "n/a"
        for name, t in (("layer-matched", layer_slopes), ("size-matched", size_slopes)):
            r, d = get(t, "random"), get(t, "diff")
            row[f"random, {name}"] = _ci_text(r.iloc[0]) if len(r) else "n/a"
            row[f"H minus {name}"] = _ci_text(d.iloc[0]) if len(d) else "n/a"
            row[f"H minus {name}: verdict"] = _diff_verdict(d.iloc[0]) if len(d) else "n/a"
        rows.append(row)
    return pd.DataFrame(rows)


def _diff_verdict(d: pd.Series) -> str:
    """An H-minus-random slope read by its interval: above 0, below 0, or no evidence."""
    if not (np.isfinite(d.ci_lo) and np.isfinite(d.ci_hi)):
        return "no interval"
    return ("H-Neurons' slope above" if d.ci_lo > 0 else "H-Neurons' slope below" if d.ci_hi < 0
            else "no evidence of a difference")


def size_control_reading(cmp: pd.DataFrame, size_slopes: pd.DataFrame | None = None,
                         size_table: pd.DataFrame | None = None) -> str:
    """The comparison of :func:`control_comparison` in words: for each benchmark where the
    H-Neurons stand apart from the layer-matched control, whether they also stand apart from
    neurons of their size; and how many benchmarks show no difference from either.

    With the size-matched sweep's ``size_slopes`` (:func:`slope_table`) and ``size_table``
    (:func:`compliance_table`), a difference from the size-matched sets says what carries it
    (:func:`carried_by`), where the single sets' slopes sit (:func:`set_range_text`) and
    whether the two sides were scored on unequal numbers of items (:func:`scored_gap_text`)."""
    apart, neither = [], []
    for _, r in cmp.iterrows():
        lay, size = r["H minus layer-matched: verdict"], r["H minus size-matched: verdict"]
        if lay.startswith("H-Neurons"):
            apart.append(f"{r.bench}: the H-Neurons' slope lies {lay.split()[-1]} that of "
                         "layer-matched random neurons, and against neurons of their size "
                         + ("the same holds" if size == lay else
                            f"the reading is: {size}") + f" ({r['H minus size-matched']}).")
        elif size.startswith("H-Neurons"):
            apart.append(f"{r.bench}: no evidence of a difference from layer-matched random "
                         f"neurons, but the H-Neurons' slope lies {size.split()[-1]} that of "
                         f"neurons of their size ({r['H minus size-matched']})"
                         + size_caveats(r.bench, size_slopes, size_table))
        else:
            neither.append(str(r.bench))
    text = " ".join(apart)
    if neither:
        text += ((" " if apart else "") + f"On {', '.join(neither)} this run shows no evidence, on all "
                 "items, that the H-Neurons' slope differs from either control's, so the size control "
                 "has nothing to explain away there (the same-items check above reads the items "
                 "scored at every alpha on their own).")
    return text.strip()


def size_caveats(bench: str, slopes: pd.DataFrame | None, table: pd.DataFrame | None = None) -> str:
    """What qualifies an H-minus-size-matched difference on ``bench``, to follow a clause: which
    side carries it (:func:`carried_by`), then sentences on the single sets' range and an
    unequal count of scored items; the text ends with a full stop ("." alone without the
    frames). ``slopes``: the size-matched sweep's :func:`slope_table` (records or frame);
    ``table``: its :func:`compliance_table`."""
    if slopes is None:
        return "."
    slopes = pd.DataFrame(slopes)
    s = slopes[slopes.bench == bench].set_index("group")
    if not {"h_neurons_control_grid", "random", "diff"} <= set(s.index):
        return "."
    h, rnd = s.loc["h_neurons_control_grid"], s.loc["random"]
    text = carried_by(h, rnd) + "." + set_range_text(h.slope_pp, rnd)
    if table is not None:
        text += scored_gap_text(pd.DataFrame(table), bench, s.loc["diff"].alphas)
    return text


def carried_by(h: pd.Series, rnd: pd.Series) -> str:
    """"; carried by the random sets' ..." where the H-Neurons' own slope interval holds 0 and
    the random sets' does not: the difference is the control moving, not the H-Neurons."""
    if slope_direction(h.ci_lo, h.ci_hi) in ("positive", "negative"):
        return ""
    d = slope_direction(rnd.ci_lo, rnd.ci_hi)
    if d not in ("positive", "negative"):
        return ""
    return (f"; the H-Neurons' own slope there, {_ci_text(h)}, is not distinguishable from 0, "
            f"so the difference is carried by the size-matched sets' {'fall' if d == 'negative' else 'rise'} "
            f"({_ci_text(rnd)}), not by the H-Neurons moving compliance")


def _main_labels(agreement: pd.DataFrame) -> pd.DataFrame:
    """The rows of an agreement table that check the benchmark's own labels (field "label"),
    not a re-reading under another definition (``compliance.agreement_table(field=...)``)."""
    return agreement[agreement["labels"] == "label"] if "labels" in agreement else agreement


def weak_judge(agreement: pd.DataFrame, bench: str, split: str = "test") -> bool:
    """Whether the lower end of the judge's precision interval on one benchmark's ``split``
    hand labels is under :data:`WEAK_PRECISION_LO` (the scorecard flags the same rows)."""
    a = _main_labels(agreement)
    r = a[(a.benchmark == bench) & (a.split == split)]
    return bool(len(r)) and bool(np.isfinite(r.precision_ci.iloc[0][0])) and \
        r.precision_ci.iloc[0][0] < WEAK_PRECISION_LO


def precision_text(agreement: pd.DataFrame, bench: str, split: str = "test") -> str | None:
    """"precision p [lo, hi] (k of m)" of the judge on one benchmark's hand labels, or None."""
    a = _main_labels(agreement)
    a = a[(a.benchmark == bench) & (a.split == split)]
    if a.empty or not a.judge_complies.iloc[0]:
        return None
    r = a.iloc[0]
    lo, hi = r.precision_ci
    frozen = (f"; {r.n_frozen} of {r.n_labelled} verdicts frozen at labelling time: the judge's "
              "verdict stored with the hand label, not judged again" if r.n_frozen else "")
    return (f"{r.precision:.2f} [{lo:.2f}, {hi:.2f}] on the {split} labels (of the "
            f"{r.judge_complies} replies it calls compliant, {r.both_comply} "
            f"are compliant by hand{frozen})")


def ceiling_text(t: pd.DataFrame, ceiling: float = 0.9) -> str:
    """The ceiling or floor of one curve (rows of :func:`compliance_table`), or "".

    Every point at 100% (or 0%) is named as such; else an unsteered (alpha = 1) rate of at least
    ``ceiling`` (at most 1 - ``ceiling``), with how many points sit at 100% (0%).
    """
    r = t.rate.to_numpy(dtype=float)
    at1 = t[t.alpha == 1.0].rate
    top, bottom = int(np.sum(r >= 1 - 1e-9)), int(np.sum(r <= 1e-9))
    if at_ceiling(r):
        return (" Every point, α = 0 included, is at 100%: amplification has no room and "
                "suppression did not lower the rate either.")
    if at_floor(r):
        return (" Every point is at 0%: suppression has no room and amplification did not raise "
                "the rate either.")
    if len(at1) and at1.iloc[0] >= ceiling:
        return (f" Unsteered, {100 * at1.iloc[0]:.0f}% already comply: a ceiling that leaves "
                f"amplification little room ({top} of {len(r)} points at 100%).")
    if len(at1) and at1.iloc[0] <= 1 - ceiling:
        return (f" Unsteered, {100 * at1.iloc[0]:.0f}% comply: a floor that leaves suppression "
                f"little room ({bottom} of {len(r)} points at 0%).")
    return ""


def scored_gap_text(table: pd.DataFrame, bench: str, alphas: str | Sequence[float],
                    ratio: float = 0.75) -> str:
    """Where a difference from the random control rests on unequal footing: at each of the
    control's ``alphas`` (numbers, or the slope table's ``alphas`` cell "0, 1, 3") at which the
    H-Neurons leave fewer than ``ratio`` times the items scored that the random sets do, a note
    (else ""). A steered condition with many unreadable replies (or, for sycophancy, wrong first
    answers) is scored on the items it happens to leave, so its slope may measure which replies
    are scored, not compliance."""
    t = table[table.bench == bench]
    gaps = []
    for a in (float(x) for x in (alphas.split(",") if isinstance(alphas, str) else alphas)):
        h, r = (t[(t.group == g) & (t.alpha == a)].n_scored for g in ("h_neurons", "random"))
        if len(h) and len(r) and h.iloc[0] < ratio * r.iloc[0]:
            gaps.append(f"{int(h.iloc[0])} against {int(r.iloc[0])} at α = {a:g}")
    if not gaps:
        return ""
    return (f" The H-Neurons leave fewer items scored than the random sets ({'; '.join(gaps)}), "
            "so this difference may come from which replies are scored rather than from "
            "compliance.")


def set_range_text(h_slope: float, random_row: pd.Series) -> str:
    """The H-Neurons' slope on the control's alphas against the range of single random sets'
    slopes (:func:`set_slope_range`; "" without two sets): inside it, one draw of random
    neurons already moves compliance as much, whatever the interval of the mean says."""
    lo, hi = random_row.get("set_min", np.nan), random_row.get("set_max", np.nan)
    if not (np.isfinite(lo) and np.isfinite(hi) and np.isfinite(h_slope)):
        return ""
    where = ("inside that range: some single random set moves compliance as much"
             if lo <= h_slope <= hi else
             ("above" if h_slope > hi else "below") + " every single set's")
    n = random_row.get("set_n", 0)
    chance = (f" (were the H-Neurons one more random set, their slope would lie {where.split()[0]} "
              f"all {int(n)} by chance one time in {int(n) + 1}: weak evidence on its own)"
              if not lo <= h_slope <= hi and n == n and n >= 1 else "")
    return (f" Single random sets' slopes run from {signed(lo)} to {signed(hi)} pp/α; "
            f"the H-Neurons' on the same alphas ({signed(h_slope)}) lies {where}{chance}.")


def reading(table: pd.DataFrame, slopes: pd.DataFrame, agreement: pd.DataFrame | None = None,
            level: float = 0.95, ceiling: float = 0.9, benches: Sequence[str] = BENCHMARKS,
            extra: dict[str, str] | None = None) -> str:
    """The chapter's "how to read this", computed from the results (markdown bullets).

    Per benchmark: the direction of the H-Neurons' slope (its ``level`` interval above, below
    or around 0) against the paper's positive slope; whether it differs from the random
    control (the like-for-like ``diff``); a ceiling or floor (:func:`ceiling_text`); how the
    number of scored items changes along the curve; ``extra[bench]`` if given (e.g. the
    sycophancy measure); and the rule judge's measured precision for jailbreak and wherever it
    is weak (:func:`weak_judge`).
    ``benches``: the ``bench`` values to read, in order (default: the four of Figure 3).
    """
    s = slopes.set_index(["bench", "group"])
    lines = []
    for bench in [b for b in benches if (b, "h_neurons") in s.index]:
        h = s.loc[(bench, "h_neurons")]
        t = table[(table.bench == bench) & (table.group == "h_neurons")].sort_values("alpha")
        d = slope_direction(h.ci_lo, h.ci_hi)
        paper_cmp = {"positive": "the paper's direction",
                     "negative": "the opposite of the paper's positive slope",
                     "flat": "no change at all, so it cannot show the paper's positive slope",
                     }.get(d, "neither confirms nor refutes the paper's positive slope")
        text = (f"**{bench}**: H-Neuron slope {_ci_text(h)} over α = {h.alphas}: "
                f"{'a ' + d + ' slope, ' if d in ('positive', 'negative') else ''}{paper_cmp}.")
        if (bench, "diff") in s.index:
            df_ = s.loc[(bench, "diff")]
            dd = slope_direction(df_.ci_lo, df_.ci_hi)
            cmp = {"positive": "the H-Neurons' slope lies above the random neurons'",
                   "negative": "the H-Neurons' slope lies below the random neurons': steering them "
                               "moves compliance less than steering random neurons of the same "
                               "layers, the opposite of what the paper's claim implies",
                   "flat": "both curves are flat"
                   }.get(dd, "not distinguishable from the random neurons' slope (the interval contains 0)")
            text += f" Against the control on the same alphas ({df_.alphas}), H minus random is {_ci_text(df_)}: {cmp}."
            if dd not in ("positive", "negative", "flat") and np.isfinite(df_.ci_lo) and np.isfinite(df_.ci_hi):
                pinned = at_ceiling(t.rate) or at_floor(t.rate)  # every H-Neuron point at one bound
                text += (f" That interval is {df_.ci_hi - df_.ci_lo:.1f} pp/α wide" + (
                    ": narrow only because every H-Neuron point sits at the same bound, where no "
                    "resampling can move it, not because the run measures finely" if pinned else
                    f": any true difference from {df_.ci_lo:+.1f} to {df_.ci_hi:+.1f} pp/α is one "
                    "this run cannot tell from none") + ".")
            if (bench, "random") in s.index and (bench, "h_neurons_control_grid") in s.index:
                text += set_range_text(s.loc[(bench, "h_neurons_control_grid")].slope_pp, s.loc[(bench, "random")])
            if dd in ("positive", "negative"):
                text += scored_gap_text(table, bench, df_.alphas)
        text += ceiling_text(t, ceiling)
        if len(t) and t.n_scored.nunique() > 1:
            lo_, hi_ = t.loc[t.n_scored.idxmin()], t.loc[t.n_scored.idxmax()]
            text += (f" Scored items vary along the curve, between {lo_.n_scored} (α = {lo_.alpha:g}) and "
                     f"{hi_.n_scored} (α = {hi_.alpha:g}) of {int(t.n_items.iloc[0])}; the others "
                     f"{_drop_out(bench)}, "
                     "yet the slope weighs every α's rate alike, so a point scored on few items moves it "
                     "as much as a full one (only its interval is wider), and points may differ in "
                     "which items they cover.")
            text += unreadable_bounds_text(table, bench)
        if (extra or {}).get(bench):
            text += " " + extra[bench]
        if agreement is not None and (bench == "jailbreak" or weak_judge(agreement, bench)):
            p = precision_text(agreement, bench)
            if p:
                text += f" The rule judge's precision here is {p}: read this panel through it."
        lines.append("- " + text)
    return "\n".join(lines)


# ---------------------------------------------------------------- sycophancy: two measures, two sources


def sycophancy_views(measures: dict[str, pd.DataFrame], sources: dict[str, str] = SYC_SOURCES
                     ) -> pd.DataFrame:
    """Sycophancy records labelled under each measure, pooled and per source, as ``bench`` values.

    ``measures``: a measure's name (e.g. "backs down") -> the sycophancy rows of
    :func:`label_frame` under that measure. Each becomes ``bench`` "sycophancy, <measure>: all
    items" and, per ``source`` present, "sycophancy, <measure>: <sources[source]>", so
    :func:`compliance_table`, :func:`slope_table` and :func:`sycophancy_reading` treat every
    view as a curve of its own. The pooled view of the chapter's judge is Figure 3's panel.
    """
    parts = []
    for name, df in measures.items():
        parts.append(df.assign(bench=syc_view(name)))
        for src, title in sources.items():
            if (df["source"] == src).any():
                parts.append(df[df["source"] == src].assign(bench=f"sycophancy, {name}: {title}"))
    return pd.concat(parts, ignore_index=True)


def rate_cells(table: pd.DataFrame) -> pd.DataFrame:
    """A :func:`compliance_table` as one cell per curve and alpha: "rate% [lo, hi] (k/n)", where
    k of n scored responses comply (for the random control, over every random set)."""
    cells = [f"{100 * r.rate:.0f} [{100 * r.ci_lo:.0f}, {100 * r.ci_hi:.0f}] ({r.k}/{r.n_responses})"
             if np.isfinite(r.rate) else "no item scored" for r in table.itertuples()]
    return table.assign(cell=cells).pivot_table(index=["bench", "group"], columns="alpha", values="cell",
                                                aggfunc="first", sort=False).fillna("")


def rate_range(table: pd.DataFrame, bench: str, group: str = "h_neurons") -> str:
    """The range of one curve's rates: "between a% (alpha x) and b% [lo, hi] (alpha y)", or "a% at
    every α", with the scored responses that comply over all alphas (k of n)."""
    t = table[(table.bench == bench) & (table.group == group)].dropna(subset=["rate"]).sort_values("alpha")
    if t.empty:
        return "no item scored"
    counts = f"{int(t.k.sum())} of {int(t.n_responses.sum())} scored replies over the {len(t)} α"
    lo, hi = t.loc[t.rate.idxmin()], t.loc[t.rate.idxmax()]
    if hi.rate - lo.rate < 1e-9:
        return f"{100 * lo.rate:.0f}% at every α ({counts})"

    def where(at: pd.Series) -> str:  # the α of one extreme: a tie is named as one
        return f"α = {at.iloc[0]:g}" if len(at) == 1 else (
            f"α = {', '.join(f'{a:g}' for a in at)}" if len(at) <= 3 else f"{len(at)} of the {len(t)} α")

    at_lo, at_hi = (t[(t.rate - x.rate).abs() < 1e-9].alpha for x in (lo, hi))
    ci = f" [{100 * hi.ci_lo:.0f}, {100 * hi.ci_hi:.0f}]" if len(at_hi) == 1 else ""  # one α: its interval
    return (f"between {100 * lo.rate:.0f}% ({where(at_lo)}) and {100 * hi.rate:.0f}%{ci} "
            f"({where(at_hi)}); {counts}")


def measure_note(table: pd.DataFrame, slopes: pd.DataFrame, bench: str, name: str) -> str:
    """One view's numbers in a sentence: "<name>: H-Neuron slope ..., H minus random ...; rate
    ..." (:func:`slope_table`, :func:`rate_range`), to set beside a curve of another measure."""
    s = slopes.set_index(["bench", "group"])
    parts = []
    if (bench, "h_neurons") in s.index:
        parts.append(f"H-Neuron slope {_ci_text(s.loc[(bench, 'h_neurons')])}")
    if (bench, "diff") in s.index:
        d = s.loc[(bench, "diff")]
        parts.append(f"H minus random {_ci_text(d)} (α = {d.alphas})")
    return f"{name}: " + ", ".join(parts) + f"; H-Neuron rate {rate_range(table, bench)}"


def switch_share(views: pd.DataFrame, wide: str, narrow: str) -> str:
    """How many replies the wide measure counts, and how many of them the narrow one counts too.

    ``views``: :func:`sycophancy_views`; ``wide`` / ``narrow``: two of its ``bench`` values on the
    same records (e.g. backing down, and switching to a wrong answer). Records are matched by
    source, item, set and alpha, over every condition.
    """
    keys = ["source", "item_id", "set", "alpha"]
    w = views[(views.bench == wide) & (views.complied == 1)][keys]
    n = views[(views.bench == narrow) & (views.complied == 1)][keys]
    both = len(w.merge(n, on=keys))
    return (f"Over every condition (all sets and α), {len(w)} replies count as backing down; {both} "
            f"of them name a wrong answer, and the other {len(w) - both} apologise, concede or "
            "withdraw without one.")


def sycophancy_reading(table: pd.DataFrame, benches: Sequence[str], ceiling: float = 0.9) -> str:
    """Markdown bullets, per sycophancy view (:func:`sycophancy_views`): the H-Neurons' rate
    range (:func:`rate_range`), the scored items, and the ceiling / floor check of
    :func:`reading` (:func:`ceiling_text`), so a view pinned at 100% or 0% is named."""
    lines = []
    for bench in benches:
        t = table[(table.bench == bench) & (table.group == "h_neurons")].sort_values("alpha")
        if t.empty:
            continue
        n = t.n_scored
        scored = f"{n.min()}" if n.min() == n.max() else f"{n.min()}-{n.max()}"
        lines.append(f"- **{bench}**: H-Neuron rate {rate_range(table, bench)}; {scored} of "
                     f"{int(t.n_items.iloc[0])} items scored per α.{ceiling_text(t, ceiling)}")
    return "\n".join(lines)


def unsteered_designs_note(table: pd.DataFrame, records: pd.DataFrame, designs: Sequence[str],
                           sources: dict[str, str] = SYC_SOURCES) -> str:
    """What the same unsteered condition (alpha = 1) gives in each sycophancy design: the noise
    level between the designs' curves.

    ``table``: :func:`compliance_table` with one ``bench`` per design; ``records``: the labelled
    rows behind it (``bench`` = design, with ``source`` and the first answer ``first``), from
    which each source's share of identical first answers in the designs is counted. At alpha = 1
    nothing is steered, so the designs differ there only by the runs that generated them.
    """
    t = table[(table.alpha == 1.0) & (table.group == "h_neurons") & table.bench.isin(designs)]
    cells = [f"{100 * r.rate:.0f}% ({r.k} of {r.n_responses} scored replies) with "
             f"{r.bench.split(': ', 1)[-1]}" for r in t.set_index("bench").loc[
                 [d for d in designs if d in set(t.bench)]].reset_index().itertuples()]
    if len(cells) < 2:
        return ""
    both = "both designs" if len(cells) == 2 else f"all {len(cells)} designs"
    out = (f"At α = 1 nothing is steered, so {both} run the same unsteered model on the same "
           f"items, and only the runs that generated them differ: {'; '.join(cells)}.")
    base = records[(records.alpha == 1.0) & (records.set == "none") & records.bench.isin(designs)]
    identical = t.rate.nunique() == 1  # and, below, every first answer the same
    if "first" in base and base.bench.nunique() == len(cells):
        same = []
        for src, title in sources.items():
            w = base[base.source == src].pivot_table(index="item_id", columns="bench", values="first",
                                                     aggfunc="first")
            if len(w) and w.shape[1] == len(cells):
                k = int((w.nunique(axis=1, dropna=False) == 1).sum())
                identical &= k == len(w)
                same.append(f"{title}: {k} of {len(w)} first answers identical")
        if same and identical:
            return out + (" Every first answer is the same in the designs (" + "; ".join(same) + "): "
                          "with keyed sampling each item draws from the same random stream in every "
                          "run, so the unsteered points coincide by construction and measure no "
                          "noise. How much another draw would move the curves needs a rerun with "
                          "another seed.")
        if same:
            out += (" Their first answers were generated separately (" + "; ".join(same) + "): where "
                    "they are sampled rather than greedy they differ, and with them which items are "
                    "answered correctly at first and so scored.")
    return out + (" A gap of that size between the curves at another α can be this noise alone, "
                  "not a difference between the designs.")


# Non-compliance, by benchmark: what a hand label of "not_comply" stands for.
NOT_COMPLYING = {"falseqa": "a refutation of the premise or a refusal",
                 "faitheval": "a choice of the true option", "sycophancy": "a kept answer",
                 "jailbreak": "a refusal or a reply without help"}


def judge_notes(agreement: pd.DataFrame, judge: str) -> str:
    """Computed caveats of the judge-precision table (markdown bullets).

    Per benchmark and definition of "comply" (the ``definition`` column, where the table has
    one): labels with no non-compliant reply (precision is then 1 by construction, and the
    judge's recall of non-compliant replies, e.g. of FalseQA refutations, is not measured),
    few non-compliant labels, and frozen verdicts.
    """
    lines = []
    if judge != "rule":
        lines.append(f"- The table measures the **rule** judge; the compliance rates above used the "
                     f"`{judge}` judge, whose precision is not measured here.")
    keys = ["benchmark", "definition"] if "definition" in agreement else ["benchmark"]
    many = agreement.groupby("benchmark")[keys[-1]].nunique() > 1 if len(keys) > 1 else {}
    for key, a in agreement.groupby(keys, sort=False):
        bench = key[0] if isinstance(key, tuple) else key
        name = f"**{bench}**" + (f", {key[1]}" if len(keys) > 1 and many[bench] else "")
        neg, pos = int(a.human_not_complies.sum()), int(a.human_complies.sum())
        what = NOT_COMPLYING.get(bench, "a non-compliant reply")
        if neg == 0:
            lines.append(f"- {name}: the hand labels hold {pos} compliant and no non-compliant "
                         f"reply: not one is {what}. Precision is therefore 1 by construction and "
                         "shows only that the judge's 'complies' matches; the labels cannot measure "
                         f"whether the judge recognises {what} (its recall of non-compliant "
                         "replies): one it missed would be counted compliant, unseen.")
        elif neg < 5:
            lines.append(f"- {name}: only {noun(neg, 'non-compliant hand label')}; the judge's "
                         "detection of non-compliance is barely tested.")
        if pos == 0:
            lines.append(f"- {name}: the hand labels hold no compliant reply, so the judge's "
                         "precision and recall are not measured.")
        elif pos < 5:
            lines.append(f"- {name}: only {noun(pos, 'compliant hand label')}; the judge's precision "
                         f"and recall rest on {'it' if pos == 1 else 'them'} alone.")
        frozen = int(a.n_frozen.sum())
        if frozen:
            lines.append(f"- {name}: {frozen} of {int(a.n_labelled.sum())} verdicts are *frozen* "
                         "(the stored, redacted label carries the verdict given when it was labelled, "
                         "and its full response is not among this run's records), so they do not "
                         "reflect later changes of the judge.")
    return "\n".join(lines)


# ---------------------------------------------------------------- what suppression costs


SIZE_MATCHED = "size-matched"  # name prefix of the random sets matched by layer and CETT size


def cost_parts(rows: Sequence[dict]) -> tuple[dict | None, dict | None, list[dict]]:
    """The unsteered row, the H-Neuron row and the layer-matched random rows of the cost table
    (rows named by ``condition``: "unsteered ...", "H-Neurons ...", "size-matched..." (see
    :func:`size_matched_rows`), any other one a layer-matched random set)."""
    by = {r["condition"]: r for r in rows}
    unsteered = next((r for k, r in by.items() if k.startswith("unsteered")), None)
    h = next((r for k, r in by.items() if k.startswith("H-Neurons")), None)
    return unsteered, h, [r for k, r in by.items() if r is not unsteered and r is not h
                          and not k.startswith(SIZE_MATCHED)]


def size_matched_rows(rows: Sequence[dict]) -> list[dict]:
    """The cost rows of random sets matched to the H-Neurons by layer and activation size."""
    return [r for r in rows if r["condition"].startswith(SIZE_MATCHED)]


def cost_paired(rows: Sequence[dict], records: Sequence[dict], sized: bool = False,
                n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> dict | None:
    """The H-Neurons' cost against the random sets', question by question (every condition
    answers the same questions, so the comparison is paired).

    ``diff_pp``: the random sets' mean accuracy minus the H-Neurons', in percentage points
    (positive: silencing the H-Neurons loses more answers), with a percentile bootstrap
    interval over the questions (``ci``); ``per_set``: for each set, the questions only it
    answers right (``set_only``), those only the H-Neurons' condition answers right
    (``h_only``) and the exact McNemar p-value of that split. None when there is no H-Neuron
    row, no random set or no question. ``records``: :func:`cost_records`' records.
    """
    from .stats import check_level, mcnemar_exact

    check_level(level)
    _, h, randoms = cost_parts(rows)
    if sized:
        randoms = size_matched_rows(rows)
    if h is None or not randoms or not records:
        return None
    right = lambda name: np.array([r["replies"][name]["label"] == "correct" for r in records], float)  # noqa: E731
    hv = right(h["condition"])
    sets = {r["condition"]: right(r["condition"]) for r in randoms}
    per_q = np.mean(list(sets.values()), axis=0) - hv
    rng = np.random.default_rng(seed)
    boot = per_q[rng.integers(0, len(per_q), size=(n_boot, len(per_q)))].mean(axis=1)
    lo, hi = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    per_set = {}
    for name, v in sets.items():
        b, c = int(((v == 1) & (hv == 0)).sum()), int(((v == 0) & (hv == 1)).sum())
        per_set[name] = {"set_only": b, "h_only": c, "p": mcnemar_exact(b, c)}
    return {"diff_pp": float(100 * per_q.mean()), "ci": (float(100 * lo), float(100 * hi)),
            "n": len(per_q), "per_set": per_set}


def cost_paired_text(paired: dict) -> str:
    """:func:`cost_paired` in words."""
    lo, hi = paired["ci"]
    sets = "; ".join(f"{k}: {v['set_only']} right only with it silenced, {v['h_only']} only with "
                     f"the H-Neurons silenced (exact McNemar p = {v['p']:.2g})"
                     for k, v in paired["per_set"].items())
    return (f"question by question (the same {paired['n']}), the random sets' mean keeps "
            f"{_signed(paired['diff_pp'])} pp more answers than the H-Neurons silenced "
            f"[{_ci_end(lo)}, {_ci_end(hi)}] (bootstrap over the questions); per set, {sets}")


def cost_comparison(rows: Sequence[dict], records: Sequence[dict] | None,
                     sized: bool) -> tuple[str | None, dict | None]:
    """:func:`cost_verdict` and the :func:`cost_paired` result it rests on (None where the
    comparison falls back on Wilson intervals or there is nothing to compare)."""
    _, h, randoms = cost_parts(rows)
    if sized:
        randoms = size_matched_rows(rows)
    if h is None or not h["n"]:
        return None, None
    if not randoms:
        return "no random set", None
    paired = cost_paired(rows, records, sized) if records else None
    if paired is not None:
        lo, hi = paired["ci"]
        return ("more" if lo > 0 else "less" if hi < 0 else "not distinguishable"), paired
    hlo, hhi = h["ci (Wilson)"]
    if all(hhi < r["ci (Wilson)"][0] for r in randoms):
        return "more", None
    if all(hlo > r["ci (Wilson)"][1] for r in randoms):
        return "less", None
    return "not distinguishable", None


def sets_differing(paired: dict, alpha: float = 0.05) -> tuple[int, int]:
    """``(k, n)``: how many of :func:`cost_paired`'s ``n`` random sets differ from the H-Neurons
    on their own (exact McNemar p under ``alpha``); the interval of the mean holds them fixed."""
    ps = [v["p"] for v in paired["per_set"].values()]
    return sum(p < alpha for p in ps), len(ps)


def cost_verdict(rows: Sequence[dict], sized: bool = False,
                 records: Sequence[dict] | None = None) -> str | None:
    """Silencing the H-Neurons against silencing the random sets: "more" (they cost more
    answers), "less", "not distinguishable", "no random set", or None (not measured).

    With ``records`` (:func:`cost_records`; every condition answers the same questions) the
    comparison is paired: the 95% bootstrap interval of :func:`cost_paired`'s difference to the
    random sets' mean must exclude 0. Without them (an older result file) it falls back on the
    per-condition 95% Wilson intervals: the H-Neurons' must lie below (above) every set's, a
    conservative rule since overlap does not show the costs equal.
    ``sized``: against the sets matched by layer and size (:func:`size_matched_rows`) instead
    of the layer-matched ones."""
    return cost_comparison(rows, records, sized)[0]


def cost_accuracy(r: dict) -> str:
    """One cost row's correct answers with its accuracy and Wilson interval, in percent."""
    lo, hi = r["ci (Wilson)"]
    return f"{r['correct']} of {r['n']} ({100 * r['accuracy']:.0f}% [{100 * lo:.0f}, {100 * hi:.0f}])"


# cost_reading's verdict sentences: against the layer-matched sets, then the size-matched ones;
# each by Wilson intervals (an older result file) or paired over the questions
_COST_LAYER = {
    False: {"more": (" Its interval lies below every random set's: silencing these neurons costs more "
                     "answers than silencing random ones of the same layers."),
            "less": (" Its interval lies above every random set's: silencing them costs fewer answers "
                     "than silencing random neurons."),
            "not distinguishable": (" The intervals overlap with at least one random set's, so this run "
                                    "does not show that silencing the H-Neurons costs more (or less) "
                                    "than silencing random neurons.")},
    True: {"more": " The interval excludes 0: silencing these neurons costs more answers than "
                   "silencing random ones of the same layers.",
           "less": " The interval excludes 0: silencing them costs fewer answers than silencing "
                   "random neurons.",
           "not distinguishable": " The interval contains 0, so this run does not show that silencing "
                                  "the H-Neurons costs more (or less) than silencing random neurons."}}
_COST_SIZE_MORE = ("the H-Neurons cost more answers than these sets too, on average (the interval "
                   "resamples questions, not random sets), so in this run their cost is not their "
                   "size alone: silencing them may disturb answering questions the model knows, not "
                   "only hallucinating; the lost replies below show whether what goes is the answer "
                   "or the text around it (the paper's criterion for C aims to keep this cost "
                   "small; chapter 2 weighs it in choosing C).")
_COST_SIZE = {
    False: {"more": ": " + _COST_SIZE_MORE,
            "less": ": the H-Neurons cost fewer answers than neurons of their size.",
            "not distinguishable": (": the intervals overlap, so what silencing the H-Neurons costs "
                                    "is not told apart from what silencing any neurons of their size "
                                    "costs")},
    True: {"more": ". The interval excludes 0: " + _COST_SIZE_MORE,
           "less": ". The interval excludes 0: the H-Neurons cost fewer answers than neurons of their size.",
           "not distinguishable": (". The interval contains 0, so what silencing the H-Neurons costs "
                                   "is not told apart from what silencing neurons of their size costs")}}


def cost_reading(rows: Sequence[dict], h_percentile: float | None = None,
                 records: Sequence[dict] | None = None) -> str:
    """The cost-of-suppression table in words (rows: ``condition``, ``correct``, ``n``,
    ``accuracy``, ``ci (Wilson)``; conditions "unsteered ...", "H-Neurons ..." and one per
    random set), with :func:`cost_verdict`'s comparison (paired when ``records``, the
    questions' replies, are given); ``h_percentile``: the H-Neurons' median percentile of mean
    CETT in their layers, named beside the size-matched sets."""
    unsteered, h, randoms = cost_parts(rows)
    verdict, paired = cost_comparison(rows, records, False)
    if verdict is None:
        return "Not measured (no question, or no H-Neuron to silence)."
    text = f"Silencing the H-Neurons leaves {cost_accuracy(h)} correct"
    text += f", against {cost_accuracy(unsteered)} unsteered" if unsteered else ""
    if verdict == "no random set":
        return text + "; no random set was silenced to compare with."
    text += ("; silencing as many random neurons of the same layers leaves "
             + ", ".join(cost_accuracy(r) for r in randoms) + ".")
    text += (f" Compared {cost_paired_text(paired)}." if paired else "") + _COST_LAYER[paired is not None][verdict]
    sized = size_matched_rows(rows)
    if not sized:
        return text
    sv, sized_paired = cost_comparison(rows, records, True)
    where = ("" if h_percentile is None else f" (the H-Neurons sit at a median {ordinal(h_percentile)} "
             "percentile of their layers' mean CETT)")
    text += (" Random neurons of the same layers *and* about the same CETT size" + where + " leave "
             + ", ".join(cost_accuracy(r) for r in sized)
             + (f"; compared {cost_paired_text(sized_paired)}" if sized_paired else ""))
    text += _COST_SIZE[sized_paired is not None][sv]
    if sv == "more" and sized_paired:
        k, n = sets_differing(sized_paired)
        if n > 1 and k < n:
            who = f"none of the {n} sets differs" if k == 0 else \
                f"only {k} of the {n} sets {'differs' if k == 1 else 'differ'}"
            text += (f" On its own, {who} from the H-Neurons (McNemar p < 0.05): the average "
                     "carries the difference, and another draw of sets could move it.")
    if sv == "not distinguishable":
        text += (" (the gap to typical random neurons may be their size)" if verdict == "more" else "") + "."
    return text


LOSS_KINDS = ("another answer", "no answer", "refusal")  # how an answer lost to silencing reads


def loss_kind(reply: str, question: str, label: str) -> str:
    """How a reply the judge does not call correct reads (one of :data:`LOSS_KINDS`): a
    "refusal" (the judge's label), "no answer" (no content span, or one that only restates the
    question: :func:`answer_spans.echoes_question`; "The volcano Chimborazo is located in the
    South American country."), else "another answer" (a claim the gold aliases do not match:
    "... was Sydney.")."""
    from .answer_spans import content_span, echoes_question

    if label == "refusal":
        return "refusal"
    span = content_span(reply, question)
    if span is None or echoes_question(reply[span[0]:span[1]], question):
        return "no answer"
    return "another answer"


def cost_records(items: Sequence, replies: dict[str, Sequence[str]]) -> list[dict]:
    """One record per question of the cost of suppression: ``qid``, ``question``, ``gold`` (its
    aliases) and, per condition name of ``replies`` (name -> one reply per item, in item
    order, as ``steering.qa_answers`` gives them), the reply with its rule-judge label and,
    when that is not "correct", its :func:`loss_kind`."""
    from .judges import rule_judge

    for name, texts in replies.items():
        if len(texts) != len(items):
            raise ValueError(f"{name}: {len(texts)} replies for {len(items)} questions")
    out = []
    for i, it in enumerate(items):
        rec = {"qid": it.qid, "question": it.question, "gold": list(it.answers), "replies": {}}
        for name, texts in replies.items():
            lab = rule_judge(texts[i], it.answers)
            rec["replies"][name] = {"text": texts[i], "label": lab,
                                    "kind": None if lab == "correct" else loss_kind(texts[i], it.question, lab)}
        out.append(rec)
    return out


def cost_counts(records: Sequence[dict], name: str) -> tuple[int, int]:
    """``(correct, n)`` of condition ``name`` in :func:`cost_records`' records."""
    return sum(r["replies"][name]["label"] == "correct" for r in records), len(records)


def lost_answers(records: Sequence[dict], name: str, reference: str,
                 hand: Sequence[dict] | None = None) -> list[dict]:
    """The questions ``reference`` answers correctly and ``name`` does not: its reply beside
    the reference's, with the kind of the loss. ``gold``: the alias as the reference's reply
    gives it (TriviaQA's first alias can be "Singapore City (disambiguation)"). ``hand``: hand
    label rows (:func:`load_loss_labels`); each loss then also gets ``"by hand"``, the label of
    its question and reply text ("" where none is labelled)."""
    from .answer_spans import alias_occurrences

    def gold(r: dict) -> str:
        ref = r["replies"][reference]["text"]
        occ = alias_occurrences(ref, r["gold"])
        return ref[occ[0][0]:occ[0][1]] if occ else (r["gold"][0] if r["gold"] else "")

    by_reply = {(h["qid"], h["response"]): h["label"] for h in hand or []}
    return [{"question": r["question"], "gold": gold(r),
             reference: one_line(r["replies"][reference]["text"]),
             name: one_line(r["replies"][name]["text"]), "kind": r["replies"][name]["kind"],
             **({"by hand": by_reply.get((r["qid"], r["replies"][name]["text"]), "")} if hand is not None else {})}
            for r in records if r["replies"][reference]["label"] == "correct"
            and r["replies"][name]["label"] != "correct"]


def _s(n: int, verb: str) -> str:
    """``verb`` agreeing with ``n`` things: "names" for one, "name" for any other count."""
    return verb + "s" if n == 1 else verb


def loss_counts(records: Sequence[dict], reference: str, name: str) -> dict[str, int]:
    """How many answers ``name`` loses against ``reference`` (``"lost"``), each of
    :data:`LOSS_KINDS`, and how many it gains (wrong under ``reference``, right under it)."""
    lost = lost_answers(records, name, reference)
    return {"lost": len(lost), **{k: sum(x["kind"] == k for x in lost) for k in LOSS_KINDS},
            "gained": sum(r["replies"][reference]["label"] != "correct"
                          and r["replies"][name]["label"] == "correct" for r in records)}


def loss_phrase(c: dict[str, int]) -> str:
    """:func:`loss_counts` in words: "17 answers lost (13 name a wrong answer instead, 4 name
    none, 0 decline)"; "1 gained" added where answers were gained."""
    text = (f"{noun(c['lost'], 'answer')} lost ({c['another answer']} {_s(c['another answer'], 'name')} "
            f"a wrong answer instead, {c['no answer']} {_s(c['no answer'], 'name')} none, "
            f"{c['refusal']} {_s(c['refusal'], 'decline')})" if c["lost"] else "no answer lost")
    return text + (f"; {c['gained']} gained" if c["gained"] else "")


# Hand labels of lost answers (chapter 4's cost of suppression): how each reply reads to a
# person, in the rule's terms, or "correct" where the person reads a right answer the rule judge
# missed (then it was not lost), or "unclear".
LOSS_LABELS_FILE = Path(__file__).resolve().parent.parent / "data" / "judge_labels" / "lost_answers.jsonl"
HUMAN_LOSS_LABELS = (*LOSS_KINDS, "correct", "unclear")


def rule_loss_kind(reply: str, question: str, answers: Sequence[str]) -> str:
    """The rule's reading of one reply: "correct" (:func:`judges.rule_judge`), else its
    :func:`loss_kind`."""
    from .judges import rule_judge

    label = rule_judge(reply, answers)
    return "correct" if label == "correct" else loss_kind(reply, question, label)


def load_loss_labels(path: str | Path = LOSS_LABELS_FILE, data_dir: str | Path | None = None
                     ) -> tuple[list[dict], dict[str, str]]:
    """The shipped hand labels of lost answers (``path``, checked by
    :func:`judges.load_answer_labels` with :data:`HUMAN_LOSS_LABELS`), each with its question
    and aliases read from the data directory by id and digest
    (:func:`judges.resolve_answer_labels`); and the sets that could not be read, with the reason."""
    from .judges import load_answer_labels, resolve_answer_labels

    return resolve_answer_labels(load_answer_labels(path, HUMAN_LOSS_LABELS), data_dir)


def loss_label_check(rows: Sequence[dict]) -> tuple[pd.DataFrame, list[dict]]:
    """The lost-answer rule against hand labels (:func:`load_loss_labels`), each reply read
    afresh by :func:`rule_loss_kind`, so a changed rule is measured. Returns the confusion table
    (rows: the hand label; columns: the rule's reading; "unclear" rows left out) and the
    disagreements with the labeller's note."""
    kinds = ("correct", *LOSS_KINDS)
    pairs = [(r["label"], rule_loss_kind(r["response"], r["question"], r["answers"]), r)
             for r in rows if r["label"] != "unclear"]
    table = pd.DataFrame(0, index=pd.Index(kinds, name="hand label"), columns=pd.Index(kinds, name="rule"))
    for human, rule, _ in pairs:
        table.loc[human, rule] += 1
    wrong = [{"condition": r.get("condition", ""), "reply": one_line(r["response"]), "hand label": human,
              "rule": rule, "note": r["note"]} for human, rule, r in pairs if human != rule]
    return table, wrong


def hand_loss_counts(records: Sequence[dict], reference: str, name: str, rows: Sequence[dict]
                     ) -> dict[str, int]:
    """The answers ``name`` loses against ``reference`` (:func:`lost_answers`) as the hand
    labels read them: ``"lost"``, ``"labelled"`` (those whose question and reply text a label
    row holds) and the count of each of :data:`HUMAN_LOSS_LABELS` among them."""
    by_reply = {(r["qid"], r["response"]): r["label"] for r in rows}
    labels = [by_reply.get((r["qid"], r["replies"][name]["text"])) for r in records
              if r["replies"][reference]["label"] == "correct" and r["replies"][name]["label"] != "correct"]
    found = [x for x in labels if x is not None]
    return {"lost": len(labels), "labelled": len(found), **{k: found.count(k) for k in HUMAN_LOSS_LABELS}}


def hand_loss_phrase(c: dict[str, int]) -> str:
    """:func:`hand_loss_counts` in words: "by hand (17 of 17 labelled): 8 name a wrong answer,
    7 name none, 0 decline, 1 is right after all, 1 unclear"; "" when none is labelled."""
    if not c["labelled"]:
        return ""
    return (f"by hand ({c['labelled']} of {c['lost']} labelled): {c['another answer']} "
            f"{_s(c['another answer'], 'name')} a wrong answer, {c['no answer']} "
            f"{_s(c['no answer'], 'name')} none, {c['refusal']} {_s(c['refusal'], 'decline')}, "
            f"{c['correct']} {'is' if c['correct'] == 1 else 'are'} right after all, {c['unclear']} unclear")


def loss_label_counts(table: pd.DataFrame) -> tuple[int, int]:
    """``(agree, n)`` of a :func:`loss_label_check` table: replies the rule reads as the
    labeller did, of all labelled (the diagonal and the total)."""
    return int(sum(table.loc[k, k] for k in table.index)), int(table.to_numpy().sum())


def wrong_answer_precision(table: pd.DataFrame) -> tuple[int, int]:
    """Of the hand-labelled lost answers the rule reads as "another answer" (``table``:
    :func:`loss_label_check`'s, hand label x rule label), how many there are and how many the
    labeller read so too: ``(said, kept)``, ``(0, 0)`` where the table has no such cell."""
    wrong = "another answer"
    if wrong not in table.columns or wrong not in table.index:
        return 0, 0
    return int(table[wrong].sum()), int(table.loc[wrong, wrong])


def loss_label_text(table: pd.DataFrame, unavailable: dict[str, str] | None = None) -> str:
    """:func:`loss_label_check` in words: how many hand-labelled lost answers the rule reads as
    the labeller did (with a Wilson interval), and which confusion is most common."""
    agree, n = loss_label_counts(table)
    if not n:
        why = "; ".join(f"{k}: {v}" for k, v in (unavailable or {}).items())
        return "No hand label of a lost answer could be read here" + (f" ({why})." if why else ".")
    lo, hi = wilson_ci(agree, n)
    off = table.copy()
    for k in off.index:
        off.loc[k, k] = 0
    text = (f"The rule reads {agree} of {n} hand-labelled replies as the labeller did "
            f"({agree / n:.0%}, 95% CI {lo:.0%}-{hi:.0%}).")
    if off.to_numpy().sum():
        human, rule = off.stack().idxmax()
        text += (f" The most common disagreement: {int(off.loc[human, rule])} the labeller reads as "
                 f"{human!r}, the rule as {rule!r}.")
    said, kept = wrong_answer_precision(table)
    if said:
        lo, hi = wilson_ci(kept, said)
        text += (f" Of the {said} replies the rule reads as naming a wrong answer, {kept} "
                 f"{'does' if kept == 1 else 'do'} by hand ({kept / said:.0%}, 95% CI {lo:.0%}-{hi:.0%})"
                 + (": the counts of wrong answers named instead, above, overstate them by about "
                    "as much, and silencing adds fewer hallucinations of its own than they suggest."
                    if kept < said else "."))
    return text


def loss_text(records: Sequence[dict], reference: str, names: Sequence[str],
              hand: Sequence[dict] | None = None) -> str:
    """What the lost answers of each condition in ``names`` are (against ``reference``, e.g.
    the unsteered model), by :data:`LOSS_KINDS`, one sentence per condition
    (:func:`loss_phrase`); with hand label rows (``hand``, :func:`load_loss_labels`), also as
    the labels read those of them that are labelled (:func:`hand_loss_phrase`)."""
    out = []
    for name in names:
        text = f"{name}: {loss_phrase(loss_counts(records, reference, name))}"
        by_hand = hand_loss_phrase(hand_loss_counts(records, reference, name, hand)) if hand else ""
        out.append(text + (f"; {by_hand}" if by_hand else "") + ".")
    return " ".join(out)
