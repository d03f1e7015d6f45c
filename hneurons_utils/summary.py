"""The scorecard: each claim of the paper beside what this run's stored results support.

Nothing is recomputed from activations: :func:`scorecard` reads the JSON files chapters 2-5
write under ``OUTPUT_DIR`` and applies the same verdict rules as the chapters themselves
(:func:`detection.auroc_verdict`, :func:`transfer.transfer_reading`,
:func:`drift.drift_verdict`, :func:`slope_verdict`). A chapter whose results are missing
gets a row that says which chapter to run, never a guessed number.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from . import judges, paper
from .detection import (SHARED_ANSWERS, SUPPORTING, auroc_verdict, baseline_summary, capped_label,
                        flat_threshold, metrics_verdict, narrowly, random_auroc,
                        recipe_verdict, screen_verdict, span_credit, span_credit_text, span_drop_text)
from .behaviour import (BENCH_TITLES, SWITCH_JUDGE, SYC_REPLY, SYC_SWITCHES, WEAK_PRECISION_LO,
                        at_ceiling, at_floor, carried_by, scored_gap_text, slope_direction, syc_view)
from .benchmarks import BENCHMARKS
from .drift import drift_verdict, mean_rank_text
from .pipeline import (OBJECTIVE_GAP, grid_edge, grid_runner_up, negative_part_leads, objective_gap,
                       probe_short_of_minimum, rounding_cell, rounding_changes, solve_agrees, solve_cell,
                       stability_kind, tolerance_cell)
from .profiles import model_key
from .stats import MIN_PER_CLASS
from .transfer import transfer_reading
from .wording import are, noun, signed

COLUMNS = ["result", "chapter", "claim", "paper (Gao et al. 2025)", "ours", "reading"]
CHAPTERS = {"identification": "02_identification", "generalisation": "03_generalisation",
            "behaviour": "04_behaviour", "origin": "05_origin"}
# each row's result as the paper names it (with its section), and the book chapter that regenerates it
RESULTS = {"identification": "H-Neurons (§2)", "generalisation": "Table 1 (§2)",
           "behaviour": "Figure 3 (§3)", "origin": "Figure 4 (§4)"}


def _where(chapter: str, result: str | None = None) -> dict:
    """The ``result`` and ``chapter`` cells of a row of ``chapter`` (a key of ``CHAPTERS``)."""
    name = CHAPTERS[chapter]
    return {"result": result or RESULTS[chapter], "chapter": f"{int(name[:2])} {name[3:]}"}


class ResultsFileError(ValueError):
    """A chapter's result file exists but is not what that chapter writes."""


def read_results(path: Path) -> dict | None:
    """A chapter's JSON result, or None when the file does not exist (chapter not run)."""
    if not path.exists():
        return None
    try:
        d = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ResultsFileError(f"{path}: not valid JSON ({e}); rerun the chapter that writes it") from e
    if not isinstance(d, dict):
        raise ResultsFileError(f"{path}: expected a JSON object, got {type(d).__name__}")
    return d


def _need(d: dict, path: Path, *keys: str) -> None:
    missing = [k for k in keys if k not in d]
    if missing:
        raise ResultsFileError(f"{path}: missing field(s) {missing}; rerun the chapter that writes it")


def _missing(chapter: str, path: Path) -> dict:
    return {**_where(chapter), "claim": "(not run)", "paper (Gao et al. 2025)": "",
            "ours": f"no {path.name} in {path.parent}",
            "reading": f"run notebooks/{CHAPTERS[chapter]}.py with the same OUTPUT_DIR first"}


def _num(v: float, fmt: str) -> str:
    out = f"{v:{fmt}}"
    return out[1:] if out.startswith("-") and float(out) == 0 else out  # never "-0.0"


def _ci(x: float, lo: float, hi: float, scale: float = 1.0, fmt: str = ".1f") -> str:
    return f"{_num(scale * x, fmt)} [{_num(scale * lo, fmt)}, {_num(scale * hi, fmt)}]"


def _auroc_ci(m: dict) -> str:
    """AUROC (%) with its interval, or a note where one response per class gives no interval."""
    if min(m["n_pos"], m.get("n_neg", m["n_pos"])) < 2:
        return f"{100 * m['auroc']:.1f} (one response in a class: no interval)"
    return _ci(m["auroc"], *m["auroc_ci"], scale=100)


def judge_caveat(rows: list[dict], bench: str, judge: str = "rule", min_lo: float = WEAK_PRECISION_LO) -> str:
    """A warning sentence when the judge behind a benchmark's rates is unreliable: the lower end
    of its precision interval on the held-out (test) hand labels is under ``min_lo``, or the
    hand labels hold no non-compliant reply at all (the judge was then never shown one); else ""."""
    mine = [r for r in rows if r["benchmark"] == bench and r["judge"] == judge]
    name = {SWITCH_JUDGE: "switch rule"}.get(judge, judge)
    for r in mine:
        if r["split"] == "test":
            lo, hi = r["precision_ci"]
            if lo is not None and np.isfinite(lo) and lo < min_lo:
                ci = f"{r['precision']:.2f} [{lo:.2f}, {hi:.2f}]"
                if r["precision"] >= min_lo:  # a good point estimate on too few labels
                    return (f"The {name} judge's precision on held-out hand labels, {ci}, rests on "
                            "too few labels to vouch for the rates.")
                return (f"The {name} judge's precision on held-out hand labels is {ci}: the rates "
                        "may not measure compliance.")
    if mine and all(r.get("human_not_complies", 1) == 0 for r in mine):
        return (f"The {name} judge was never checked on a non-compliant reply (the hand labels "
                "hold none), so a flat rate may be the judge's rather than the model's.")
    return ""


def _slope_direction(r: dict | None, tol: float = 1e-9) -> str:
    """:func:`behaviour.slope_direction` of a stored slope row's interval; "undetermined"
    without a row or an interval (a JSON null)."""
    if r is None or r.get("ci_lo") is None or r.get("ci_hi") is None:
        return "undetermined"
    return slope_direction(float(r["ci_lo"]), float(r["ci_hi"]), tol)


_H_SLOPE = {"positive": "positive (compliance rises as they are amplified)",
            "negative": "negative (compliance falls as they are amplified)",
            "flat": "flat (compliance does not move)", "unclear": "not distinguishable from 0",
            "undetermined": "without an interval"}
_R_SLOPE = {"positive": "positive", "negative": "negative", "flat": "flat",
            "unclear": "not distinguishable from 0", "undetermined": "without an interval"}


def min_scored(h: dict) -> int | None:
    """The fewest items scored at any alpha of a slope row (its ``n_scored``: "n" or "lo-hi",
    :func:`behaviour.slope_table`); None where the row does not say (an older result file)."""
    v = h.get("n_scored")
    if v is None or v == "" or (isinstance(v, float) and np.isnan(v)):
        return None
    try:
        return int(str(v).split("-")[0])
    except ValueError:
        return None


def slope_verdict(diff: dict | None, h: dict | None, min_items: int = 10, tol: float = 1e-9,
                  rates: Sequence[float] | None = None, random: dict | None = None) -> str:
    """What a benchmark's slopes support, worded from the signs of both slopes' intervals.

    The paired H-minus-random interval decides: above 0, the H-Neuron slope lies above the
    random neurons' (as the paper, unless the H-Neuron slope is itself negative); below 0, it
    lies below (against the paper); else no difference is detectable. The sentence says what the
    H-Neuron slope does on its own (positive: compliance rises as they are amplified; negative:
    it falls) and, given ``random`` (the control's slope row), what the random neurons' does.
    Under ``min_items`` items, or under ``min_items`` scored at some alpha, no verdict: one
    point on a handful of items moves a slope as much as a full one. Interval ends within ``tol`` of 0 count as 0 (a flat
    curve's bootstrap gives rounding noise, not a direction). ``rates``: the H-Neurons'
    compliance rates over the alphas; all at 100% (or all at 0%) is named as a ceiling (floor),
    where no slope can show whatever the neurons do.
    """
    if h is None:
        return "not measured"
    if h["n_items"] < min_items:
        return f"too few items to conclude (fewer than {min_items})"
    scored = min_scored(h)
    if scored is not None and scored < min_items:
        return (f"too few scored items to conclude (as few as {scored} at one alpha, fewer than "
                f"{min_items}; the others unreadable or, for sycophancy, not first answered right)")
    r = np.asarray(rates if rates is not None else [], dtype=float)
    if at_ceiling(r, tol):
        return ("at the ceiling: 100% comply at every alpha, alpha = 0 included, so the curve "
                "cannot rise and suppression did not lower it either (neither confirms nor refutes)")
    if at_floor(r, tol):
        return "at the floor: 0% comply at every alpha (neither confirms nor refutes)"
    if diff is None or np.isnan(diff["ci_lo"]) or np.isnan(diff["ci_hi"]):
        return "no random-neuron control to compare with"
    hd, dd = _slope_direction(h, tol), _slope_direction(diff, tol)
    alone = f"the H-Neuron slope is {_H_SLOPE[hd]}"
    if dd not in ("positive", "negative"):
        return ("no difference from random neurons detectable (neither confirms nor refutes)"
                + (f"; on its own, {alone}" if hd in ("positive", "negative") else ""))
    rnd = (f" (whose slope is {_R_SLOPE[_slope_direction(random, tol)]})" if random is not None else "")
    if dd == "negative":
        return f"{alone} and lies below the random neurons'{rnd}: against the paper"
    if hd == "negative":
        return (f"{alone}, yet lies above the random neurons'{rnd}: above the control, but against "
                "the paper's positive slope")
    return f"{alone} and lies above the random neurons'{rnd}: as the paper"


def has_direction(diff: dict | None, tol: float = 1e-9) -> bool:
    """Whether a paired H-minus-random interval excludes 0 (a verdict with a direction)."""
    return _slope_direction(diff, tol) in ("positive", "negative")


def common_items_note(rows: list[dict], bench: str, diff: dict | None, n_all: int,
                      min_items: int = 10) -> str:
    """Chapter 4's like-for-like check behind a directional verdict (``diff``, the paired
    H-minus-random row, excludes 0): the slopes refitted on the items scored at every alpha
    (``slopes_common_items.json``), or why that check is too weak, as a sentence. A verdict
    without a direction gets a sentence only where those items show one (so that a lead the
    chapter prints, for or against the paper, reaches the scorecard too, marked as such).
    Nothing when all ``n_all`` items are scored everywhere."""
    c = {(r["bench"], r["group"]): r for r in rows}
    h, d = c.get((bench, "h_neurons")), c.get((bench, "diff"))
    n = int(h["n_items"]) if h else 0
    if n >= n_all:  # the check is the verdict itself
        return ""
    if not has_direction(diff):  # only a verdict with a direction needs the check
        if n < min_items or not has_direction(d):
            return ""
        return (f"On the {n} items scored at every alpha, though: "
                f"{slope_verdict(d, h, min_items, random=c.get((bench, 'random')))}; one check beside "
                "the verdict on all items, which stands: a lead, not a finding")
    if n < min_items:
        return (f"Only {n} of {n_all} items {are(n)} scored at every alpha, too few to rule out that "
                "the slope comes from which items are scored.")
    return (f"On the {n} items scored at every alpha: "
            f"{slope_verdict(d, h, min_items, random=c.get((bench, 'random')))}.")


def _sentences(*parts: str) -> str:
    """Non-empty ``parts`` as sentences: each capitalised and ended with a full stop."""
    out = []
    for p_ in parts:
        p_ = p_.strip()
        if p_:
            out.append(p_[0].upper() + p_[1:] + ("" if p_.endswith((".", "!", "?")) else "."))
    return " ".join(out)


def _identification(folder: Path) -> list[dict]:
    path = folder / "results.json"
    d = read_results(path)
    if d is None:
        return [_missing("identification", path)]
    _need(d, path, "n_h_neurons", "per_mille", "C")
    lo, hi = paper.ratio_range()
    n, pm = d["n_h_neurons"], d["per_mille"]
    reading = paper.sparsity_reading(n, pm)
    ours = f"{n} neurons, {pm:.3f} per mille (C = {d['C']:g})"
    if d.get("per_mille_nonzero") is not None and d.get("n_nonzero", n) > n:
        pm0 = d["per_mille_nonzero"]  # the paper's Section 2 counts every non-zero weight
        ours += (f"; {pm0:.3f} per mille counting the {d['n_nonzero'] - n} negative weights too, as "
                 "the paper's Section 2 counts (its Section 3 and Figure 1 count positive weights only)")
        other = paper.sparsity_reading(d["n_nonzero"], pm0)
        if other != reading:
            reading += f"; counting the non-zero weights, {other}"
    grid = (read_results(folder / "c_grid.json") or {}).get("grid") or []  # optional: chapter 2's C grid
    end = grid_edge(grid)
    if end:
        chosen = next(g for g in grid if g.get("chosen"))
        reading += (f"; C = {chosen['C']:g} is the {end} value of chapter 2's grid, so the count "
                    "depends on where the grid stops")
    close = grid_runner_up(grid)
    if close:
        c, runner = close
        reading += (f"; C won by a score margin of {c['score'] - runner['score']:.4f} over C = "
                    f"{runner['C']:g} ({runner['n_h_neurons']} H-Neurons)")
    st = read_results(folder / "stability.json")  # optional: chapter 2's resampling check
    if st and st.get("jaccard"):
        jac = float(np.mean(st["jaccard"]))
        ours += (f"; refitted on {st['n_resamples']} resamples of the training questions: mean "
                 f"overlap (Jaccard) {jac:.2f} with this set")
        reading += {"unstable": "; the set itself does not reproduce under resampling",
                    "core": "; under resampling a core of the set reproduces, its edge does not",
                    }.get(stability_kind(st), "")
    ro = read_results(folder / "rounding.json")  # optional: chapter 2's rounding check
    if ro and ro.get("rows") and any(x["share"] > 0 for x in ro["rows"]):
        ours += f"; {rounding_cell(ro)}"
        if rounding_changes(ro):
            reading += "; which neurons pass the L1 threshold turns on the last bit of the stored features"
    tl = read_results(folder / "tolerance.json")  # optional: chapter 2's solver-tolerance check
    if tl and tl.get("probe") and tl.get("refit"):
        ours += f"; {tolerance_cell(tl)}"
        if probe_short_of_minimum(tl):
            reading += ("; the probe is not Eq. 4's minimiser (a refit at another solver tolerance "
                        "is lower), so its count measures the solver as well as the model")
        elif objective_gap(tl) < -OBJECTIVE_GAP:
            q = tl["refit"]
            reading += (f"; a solver stopped early (tolerance {q['tol']:g}) would report "
                        f"{q['n_h_neurons']} H-Neurons: {paper.sparsity_reading(q['n_h_neurons'], q['per_mille'])}")
    sv = read_results(folder / "solve.json")  # optional: chapter 2's check of the route to the minimum
    if sv and sv.get("probe") and sv.get("refit"):
        ours += f"; {solve_cell(sv)}"
        if not solve_agrees(sv):
            reading += "; the two routes to Eq. 4's minimum give different sets"
    parts = read_results(folder / "probe_parts.json")  # optional: which part of the probe detects
    if parts and parts.get("h_neurons_auroc") is not None and np.isfinite(parts.get("probe_auroc", np.nan)):
        where = "held out" if parts.get("held_out") else "training responses"
        ours += (f"; AUROC hallucinated vs faithful ({where}): whole probe {parts['probe_auroc']:.2f}, "
                 f"its H-Neurons alone {parts['h_neurons_auroc']:.2f}"
                 + (f", its negative-weight neurons alone {parts['negative_auroc']:.2f}"
                    if parts.get("negative_auroc") is not None else ""))
        if negative_part_leads(parts):
            reading += ("; most of the probe's detection comes from the neurons it weighs negatively, "
                        "not from the H-Neurons")
    cell, warn = judges.label_check((read_results(folder / "answer_judge_agreement.json") or {}).get("rows", []),
                             "triviaqa")
    ours += f"; {cell}" if cell else ""
    reading += f"; {warn}" if warn else ""
    return [{**_where("identification"), "claim": "H-Neurons are a sparse set (< 1 per mille)",
             "paper (Gao et al. 2025)": f"{lo:g}-{hi:g} per mille (six models)",
             "ours": ours, "reading": reading}]


def _probe_label(baselines: Sequence[dict]) -> tuple[str, int | None]:
    """Who the Table 1 numbers belong to: the whole probe, which reads its H-Neurons (positive
    weights) and its negative-weight neurons, counted from the baselines chapter 3 stored (the
    H-Neuron refit reads the former, the random classifiers of the probe's count all of them)."""
    n_h = next((r["k"] for r in baselines if r["kind"] == "h_neurons_refit" and "k" in r), None)
    n_used = next((r["k"] for r in baselines if r["kind"].startswith("random_") and "k" in r), None)
    if n_h is None or n_used is None:
        return "the probe (its H-Neurons and any negative-weight neurons)", n_h
    return f"the probe ({int(n_h)} H-Neurons + {int(n_used - n_h)} negative-weight neurons)", int(n_h)


def _refit_cells(base: pd.DataFrame, k: str, n_h: int | None, n_min: int,
                 min_per_class: int) -> tuple[str, str] | None:
    """The H-Neurons alone (chapter 3's refit) on dataset ``k``, beside random classifiers of
    the same size: the ``ours`` text and the verdict (None when chapter 3 stored no refit)."""
    if k not in base.index or not np.isfinite(base.loc[k].get("H-Neurons refit AUROC", np.nan)):
        return None
    b = base.loc[k]
    lo, hi = b.get("H-Neurons refit AUROC CI low", np.nan), b.get("H-Neurons refit AUROC CI high", np.nan)
    r_h, sd_h = b.get("random (H-Neuron count) AUROC", np.nan), b.get("random (H-Neuron count) AUROC sd", np.nan)
    auc = (_ci(b["H-Neurons refit AUROC"], lo, hi, scale=100) if np.isfinite(lo) and n_min >= 2
           else f"{100 * b['H-Neurons refit AUROC']:.1f}")
    size = f"{n_h} " if n_h is not None else ""
    ours = f"the H-Neurons alone (refit, {size}neurons): AUROC {auc}" + (
        (f" vs {size}random neurons {_num(100 * r_h, '.1f')}"
         + (f" ± {_num(100 * sd_h, '.1f')}" if np.isfinite(sd_h) else "")) if np.isfinite(r_h) else
        " (no random neurons of its size scored)")
    if not np.isfinite(lo):
        return ours, "no interval stored for the refit (rerun chapter 3)"
    verdict = auroc_verdict(lo, r_h, n_min, min_per_class, hi=hi)
    if verdict == "above chance, and above random neurons" and r_h < 0.5:
        verdict += " (which sit below chance: that adds nothing to above chance)"
    else:
        verdict += narrowly(verdict, lo, r_h, sd_h, int(b.get("seeds", 0)))
    return ours, verdict


def _generalisation(folder: Path, min_per_class: int) -> list[dict]:
    path = folder / "table1.json"
    d = read_results(path)
    if d is None:
        return [_missing("generalisation", path)]
    _need(d, path, "ours", "baselines", "empty")
    base = baseline_summary(d["baselines"]) if d["baselines"] else pd.DataFrame()
    everyone = read_results(folder / "all_answers.json") or {}
    # the larger sets' verdicts are judged against the random classifiers scored on the same sets
    base_all = baseline_summary(everyone["baselines"]) if everyone.get("baselines") else pd.DataFrame()
    sc = read_results(folder / "span_control.json") or {}
    control, control_all = sc.get("datasets", {}), sc.get("all_answers") or {}
    spans, spans_all = d.get("spans") or {}, everyone.get("spans") or {}
    sb = read_results(folder / "screen_baseline.json") or {}  # chapter 3's stronger baseline
    screen, n_screen = {r["index"]: r for r in sb.get("table", [])}, sb.get("overlap", {}).get("h_neurons")
    recipes = read_results(folder / "recipe_control.json") or {}
    probe, n_h = _probe_label(d["baselines"])
    # per recipe variant, the sets with a verdict and those where it differs (chapter 3 calls a
    # lone difference among several sets weak evidence: one of many intervals may exclude 0)
    rv = {name: {dn: recipe_verdict(r[name]["diff"], v["ref"], v["alt"], min_per_class)
                 for dn, r in recipes.get("datasets", {}).items() if name in r}
          for name, v in recipes.get("variants", {}).items()}
    lone = {name: [dn for dn, t in vs.items() if " ahead" in t] for name, vs in rv.items()}
    with_verdict = {name: [dn for dn, t in vs.items() if not t.startswith("too few")] for name, vs in rv.items()}
    labels = (read_results(folder / "answer_judge_agreement.json") or {}).get("rows", [])
    rows = []
    for k in paper.load_reference()["datasets"]:
        claim = f"H-Neurons detect hallucinations on {paper.dataset_label(k)} better than random neurons"
        theirs = paper.margin_range_text(k)
        if k in d["ours"]:
            m = d["ours"][k]
            n_min = min(m["n_pos"], m.get("n_neg", m["n_pos"]))
            rnd = random_auroc(base, k)
            rnd_acc = float(base.loc[k, "random accuracy"]) if k in base.index else float("nan")
            flat = (f" ({flat_threshold(m)}: 50 on a balanced set whatever its ranking)"
                    if flat_threshold(m) else "")
            ours = (f"{probe}: accuracy {100 * m['accuracy']:.1f}{flat} vs random {_num(100 * rnd_acc, '.1f')} "
                    f"(the paper's measure); AUROC {_auroc_ci(m)} vs random {_num(100 * rnd, '.1f')} "
                    f"(the verdict's); {m['n_pos']} per class")
            verdict = metrics_verdict(m, rnd, min_per_class)
            # as chapter 3 (detection.span_credit): a verdict that supports the claim keeps its
            # credit only where both classes share one span rule or the one-rule refit survives
            why = span_credit(verdict, spans.get(k), control.get(k), min_per_class)
            shown = verdict + (narrowly(verdict, m["auroc_ci"][0], rnd, base.loc[k, "random AUROC sd"],
                                        int(base.loc[k].get("seeds", 0))) if k in base.index else "")
            parts = ["the probe: " + (shown if why is None else
                     span_credit_text(why, control.get(k), 100, ".1f") + ". Under the default rule: " + shown)]
            if k in everyone.get("ours", {}):
                a = everyone["ours"][k]
                counts = (everyone.get("counts") or {}).get(k)
                ours += f"; {capped_label(counts, a['n_pos'], a['n_neg'])}: AUROC {_auroc_ci(a)}"
                va = metrics_verdict(a, random_auroc(base_all, k), min_per_class)
                ca = control_all.get(k)
                if ca:
                    ours += f" (one span rule: AUROC {_auroc_ci(ca['metrics'])})"
                why_a = span_credit(va, spans_all.get(k, spans.get(k)), ca, min_per_class)
                credited = (verdict in SUPPORTING and why is None, va in SUPPORTING and why_a is None)
                parts.append(capped_label(counts, a["n_pos"], a["n_neg"], detail=False) + ": " + (
                    va if why_a is None else
                    span_credit_text(why_a, ca, 100, ".1f") + "; under the default rule: " + va)
                    + ("" if credited[0] == credited[1] else
                       f" (differs from the balanced set, whose verdict stands: {SHARED_ANSWERS})"))
            if k in control:  # the same probe recipe with one answer-span rule for both classes
                c = control[k]
                ours += f"; one span rule for both classes: AUROC {_auroc_ci(c['metrics'])}"
                if c.get("drop") and n_min >= 2:
                    ours += (f", AUROC drop from the default rule (paired) "
                             f"{span_drop_text(c['drop'], 100, '.1f')} points")
                parts.append("one span rule: " + metrics_verdict(c["metrics"], min_per_class=min_per_class))
            refit = _refit_cells(base, k, n_h, n_min, min_per_class)
            if refit is not None:  # what the H-Neurons do without the negative-weight neurons
                ours += "; " + refit[0]  # read right after the probe's verdict: the claim names them
                parts.insert(1, "the H-Neurons alone (refit, default span rule): " + refit[1])
            if k in screen:  # the H-Neurons refit against as many individually best neurons
                r = screen[k]
                ours += (f"; the {n_screen} individually best neurons: AUROC "
                         f"{100 * r['screen (H count)']:.1f} (H-Neurons refit {100 * r['H-Neurons refit']:.1f})")
                sv = screen_verdict(r, min_per_class)
                parts.append("against the individually best: " + (sv or f"too few (under {min_per_class} per class)"))
            ref_fit = recipes.get("reference") or {}  # the recipe refits' reference is a refit of its own
            ref_size = (f"; the reference refit: C = {ref_fit['C']:g}, {ref_fit['h_neurons']} H-Neurons, "
                        "not this probe" if {"C", "h_neurons"} <= set(ref_fit) else "")
            for name, v in recipes.get("variants", {}).items():  # recipe refits (chapter 3)
                r = recipes["datasets"].get(k, {})
                if name not in r:
                    continue
                ours += (f"; {v['alt']} instead of {v['ref']} (both refit with C by held-out "
                         f"accuracy{ref_size}): AUROC {_auroc_ci(r[name]['metrics'])} with {v['alt']} vs "
                         f"{_auroc_ci(r['reference']['metrics'])} with {v['ref']}, {v['ref']} minus "
                         f"{v['alt']} {span_drop_text(r[name]['diff'], 100, '.1f')} points")
                ref_size = ""  # said once per row
                parts.append(f"{v['ref']} vs {v['alt']}: " + rv[name][k]
                             + (f" (the only one of {len(with_verdict[name])} sets where the two differ: "
                                "weak evidence on its own)"
                                if lone[name] == [k] and len(with_verdict[name]) > 1 else ""))
            cell, warn = judges.label_check(labels, k)
            ours += f"; {cell}" if cell else ""
            parts += [warn] if warn else []
            verdict = "; ".join(parts)
        elif k in d["empty"]:
            e = d["empty"][k]
            ours = f"no balanced set: {e['faithful']} faithful, {e['hallucinated']} hallucinated answers"
            verdict = "cannot be scored on this model"
        else:
            ours, verdict = "not evaluated", "not run"
        rows.append({**_where("generalisation"), "claim": claim, "paper (Gao et al. 2025)": theirs,
                     "ours": ours, "reading": verdict})
    return rows


def _slope_cells(h: dict, diff: dict | None, unit: str = " pp per unit alpha", sep: str = "; ",
                 h_grid: dict | None = None) -> str:
    """"slope x [lo, hi] pp per unit alpha; minus random y [lo, hi]" of one curve's rows; with
    ``h_grid`` (the H-Neurons' slope on the control's alphas, on which the difference is fitted)
    and where the two grids differ, that slope is named beside the difference."""
    out = f"slope {_ci(h['slope_pp'], h['ci_lo'], h['ci_hi'])}{unit}"
    if not diff:
        return out
    out += f"{sep}minus random {_ci(diff['slope_pp'], diff['ci_lo'], diff['ci_hi'])}"
    if h_grid and diff.get("alphas") and diff.get("alphas") != h.get("alphas"):
        out += (f" (on the control's α = {diff['alphas']}, where the H-Neurons' slope is "
                f"{h_grid['slope_pp']:.1f})")
    return out


# The sycophancy row names its measures: Figure 3's panel is the wider one.
BACKS_LEAD = ("backing down (the wider measure this book's Figure 3 plots: an apology or \"not sure\" "
              "counts too)")
SWITCHES_LEAD = "switching to a wrong answer (the paper's definition)"


def _behaviour(folder: Path, min_items: int) -> list[dict]:
    path = folder / "figure3.json"
    d = read_results(path)
    if d is None:
        return [_missing("behaviour", path)]
    _need(d, path, "slopes", "table")
    slopes = {(r["bench"], r["group"]): r for r in d["slopes"]}
    table = pd.DataFrame(d["table"])
    labels = (read_results(folder / "judge_agreement.json") or {}).get("rows", [])
    common = read_results(folder / "slopes_common_items.json")
    reply = read_results(folder / "sycophancy_reply_only.json")
    size_d = read_results(folder / "size_control.json") or {}
    sized = {r["bench"]: r for r in size_d.get("comparison", [])}
    size_slopes = {(r["bench"], r["group"]): pd.Series(r) for r in size_d.get("slopes", [])}
    size_table = pd.DataFrame(size_d.get("table", []))
    judge = d.get("judge", "rule")
    rows = []
    for bench in BENCHMARKS:
        h, diff, rnd = (slopes.get((bench, g)) for g in ("h_neurons", "diff", "random"))
        # the H-Neurons' slope apart from the size-matched sets' (a difference to qualify)
        size_apart = bench in sized and sized[bench]["H minus size-matched: verdict"].startswith("H-Neurons")
        rates = table[(table.bench == bench) & (table.group == "h_neurons")].rate.dropna() \
            if len(table) else []
        if h is None:
            ours = "not measured"
        else:
            ours = _slope_cells(h, diff, h_grid=slopes.get((bench, "h_neurons_control_grid")))
            if rnd is not None and np.isfinite(rnd.get("set_min") or np.nan):
                ours += f" (single random sets' slopes {signed(rnd['set_min'])} to {signed(rnd['set_max'])})"
            at1 = table[(table.bench == bench) & (table.alpha == 1.0) & (table.group == "h_neurons")]
            if len(at1):
                ours += f"; {100 * at1.rate.iloc[0]:.0f}% at alpha 1 ({int(at1.n_scored.iloc[0])} items)"
            if bench in sized:  # chapter 4's size-matched control (not in the paper)
                ours += (f"; H minus random neurons of their size {sized[bench]['H minus size-matched']}"
                         f" ({sized[bench]['H minus size-matched: verdict']})")
                if size_apart and all((bench, g) in size_slopes for g in ("h_neurons_control_grid", "random")):
                    ours += carried_by(size_slopes[(bench, "h_neurons_control_grid")],
                                       size_slopes[(bench, "random")])
        lead = BACKS_LEAD if bench == "sycophancy" and h is not None else ""
        reading = _behaviour_reading(h, diff, rates, common, labels, bench, judge, min_items, rnd, lead)
        sd = size_slopes.get((bench, "diff"))
        if size_apart and sd is not None and len(size_table):
            gap = scored_gap_text(size_table, bench, sd["alphas"]).strip()
            if gap:  # the size-matched difference rests on unequal scored items
                reading.append("Against neurons of their size: " + gap[0].lower() + gap[1:])
        if bench == "sycophancy" and h is not None:
            ours = "backing down: " + ours
            for cell, sentences in (_switches(d.get("sycophancy_measures"), labels, min_items),
                                    _reply_only(reply, min_items)):
                ours += cell
                reading += sentences
        rows.append({**_where("behaviour"), "claim": f"amplifying H-Neurons raises compliance on {BENCH_TITLES.get(bench, bench)}",
                     "paper (Gao et al. 2025)": ("positive correlation over six models "
                                                 "(some curves not monotonic)"),
                     "ours": ours, "reading": _sentences(*reading)})
    return rows + [_cost(folder)]


COST_CLAIM = ("C is chosen to weigh TriviaQA performance with the H-Neurons silenced (§6.1.3); "
              "silencing alone is still no cure for hallucination (§5). Ours: how many known "
              "answers silencing keeps, against silencing random neurons")
COST_PAPER = ("no number: C maximises held-out accuracy plus TriviaQA performance with the "
              "H-Neurons suppressed (§6.1.3); plain suppression 'proves insufficient' (§5)")
COST_READINGS = {"more": "costs more known answers than silencing random neurons",
                 "less": "costs fewer known answers than silencing random neurons",
                 "not distinguishable": "not distinguishable from silencing random neurons",
                 "no random set": "no random set silenced to compare with"}
# how the verdict was reached: paired over the questions, or (older result files) by intervals
COST_HOW = {True: " (paired bootstrap over the questions)", False: " (Wilson intervals of each condition)"}
COST_DIFFERS = ("more", "less", "not distinguishable")
COST_SIZE_READINGS = {"more": "more too (not their size alone)",
                      "less": "fewer",
                      "not distinguishable": "not distinguishable (their size may explain the cost)"}


def _cost(folder: Path) -> dict:
    """The row of chapter 4's cost of suppression (``suppression_cost.json``): greedy accuracy on
    questions the model knows with the H-Neurons or each random set silenced, the comparison of
    :func:`behaviour.cost_verdict`, and what the H-Neurons' lost answers became."""
    from .behaviour import (LOSS_KINDS, cost_accuracy, cost_comparison, cost_parts, cost_verdict,
                            hand_loss_phrase, loss_counts, loss_phrase, sets_differing,
                            size_matched_rows, wrong_answer_precision)

    row = {**_where("behaviour", "Suppression (§5, §6.1.3)"), "claim": COST_CLAIM,
           "paper (Gao et al. 2025)": COST_PAPER}
    path = folder / "suppression_cost.json"
    d = read_results(path)
    if d is None:
        return {**row, "ours": f"not measured ({path.name} absent)", "reading": "not run"}
    _need(d, path, "rows")
    recs = d.get("questions") or None
    verdict = cost_verdict(d["rows"], records=recs)
    if verdict is None:
        return {**row, "ours": "not measured (no question, or no H-Neuron to silence)", "reading": "not run"}
    unsteered, h, randoms = cost_parts(d["rows"])
    ours = f"H-Neurons silenced: {cost_accuracy(h)} known TriviaQA answers kept"
    if randoms:
        ours += "; as many random neurons: " + ", ".join(cost_accuracy(r) for r in randoms)
    reading = COST_READINGS[verdict] + (COST_HOW[recs is not None] if verdict in COST_DIFFERS else "")
    sized = size_matched_rows(d["rows"])
    if sized:
        ours += ("; random neurons of their layers and CETT size: "
                 + ", ".join(cost_accuracy(r) for r in sized))
        sv, paired = cost_comparison(d["rows"], recs, True)
        reading += "; against neurons of their size: " + COST_SIZE_READINGS[sv]
        k, n = sets_differing(paired) if sv in ("more", "less") and paired else (0, 0)
        if n > 1 and k < n:  # the mean's interval holds the sets fixed
            reading += (f", on average over {n} sets, {k} of them different on its own (McNemar "
                        "p < 0.05): another draw of sets could move it")
    if d.get("questions") and unsteered:
        c = loss_counts(d["questions"], unsteered["condition"], h["condition"])
        labels = _loss_labels(folder)
        ours += f"; with the H-Neurons silenced, {loss_phrase(c)} (read by rule"
        if labels.get("n"):
            ours += f", which reads {labels['agree']} of {labels['n']} hand-labelled lost answers as the labeller did"
        ours += ")"
        hand = (labels.get("hand") or {}).get(h["condition"])
        if hand and hand.get("labelled"):
            ours += f"; {hand_loss_phrase(hand)}"
            if hand["labelled"] == hand["lost"]:  # every loss labelled: the reading follows the labels
                c = {**c, **{k: hand[k] for k in LOSS_KINDS}}
        if c["lost"]:
            most = max(LOSS_KINDS, key=lambda k: c[k])
            said, kept = (wrong_answer_precision(pd.DataFrame(labels["table"]).fillna(0))
                          if labels.get("table") else (0, 0))
            imprecise = most == "another answer" and said and kept < said  # the rule over-reads
            if 2 * c[most] <= c["lost"]:
                reading += "; the lost answers are of mixed kinds"
            elif imprecise and c[most] * kept / said < c["lost"] / 2 + 1:
                # a majority by rule that, scaled by the rule's hand-label precision, is not a
                # majority by at least one answer
                reading += (f"; the lost answers are not refusals ({c['refusal']} of {c['lost']}); by "
                            f"rule {c[most]} name a wrong answer, but the rule names one where a reader "
                            f"sees one in {kept} of its {said} hand-labelled cases, so perhaps "
                            f"{c[most] * kept / said:.0f}: wrong answers and non-answers, mixed")
            else:
                reading += "; the lost answers mostly " + {"another answer": "become wrong answers, not refusals",
                                                          "no answer": "give no answer at all",
                                                          "refusal": "become refusals"}[most]
                if imprecise:
                    reading += (f" (by rule, which names a wrong answer where a reader sees one in {kept} of "
                                f"its {said} hand-labelled cases: an upper bound)")
    return {**row, "ours": ours, "reading": reading}


def _loss_labels(folder: Path) -> dict:
    """Chapter 4's hand labels of lost answers (``loss_labels.json``): the rule's agreement with
    them (``agree`` of ``n``) and, per condition, the labels of its lost answers (``hand``,
    :func:`behaviour.hand_loss_counts`); {} when the file is absent."""
    path = folder / "loss_labels.json"
    d = read_results(path)
    if not d:
        return {}
    _need(d, path, "agree", "n")
    return d


def _switches(measures: dict | None, labels: list[dict], min_items: int) -> tuple[str, list[str]]:
    """The paper's sycophancy measure, switching to a wrong answer, from the views chapter 4
    stores beside Figure 3 (``figure3.json["sycophancy_measures"]``, pooled over all items):
    its slopes for ``ours`` and its verdict (with its judge's caveat) as reading sentences."""
    if not measures:
        return "", []
    view = syc_view(SYC_SWITCHES)
    s = {r["group"]: r for r in measures.get("slopes", []) if r["bench"] == view}
    if "h_neurons" not in s:
        return "", []
    t = pd.DataFrame(measures.get("table", []))
    rates = t[(t.bench == view) & (t.group == "h_neurons")].rate.dropna() if len(t) else []
    verdict = slope_verdict(s.get("diff"), s["h_neurons"], min_items, rates=rates, random=s.get("random"))
    return (f"; {SWITCHES_LEAD}: {_slope_cells(s['h_neurons'], s.get('diff'), '', ', ')}",
            [f"{SWITCHES_LEAD}: {verdict}", judge_caveat(labels, "sycophancy", SWITCH_JUDGE)])


def _reply_only(d: dict | None, min_items: int) -> tuple[str, list[str]]:
    """Chapter 4's sycophancy sweep with only the reply steered (our extension), for the
    sycophancy row: its slopes for ``ours`` and its verdicts as reading sentences, backing down
    and, where chapter 4 stored it (``switches``), switching to a wrong answer."""
    if d is None:
        return "", []
    s = {r["group"]: r for r in d.get("slopes", []) if r["bench"] == SYC_REPLY}
    if "h_neurons" not in s:
        return "", []
    name = "only the reply steered (our extension)"
    cell = f"; {name}, backing down: {_slope_cells(s['h_neurons'], s.get('diff'), '', ', ')}"
    out = [f"{name}, backing down: "
           f"{slope_verdict(s.get('diff'), s['h_neurons'], min_items, random=s.get('random'))}"]
    w = {r["group"]: r for r in (d.get("switches") or {}).get("slopes", [])}
    if "h_neurons" in w:
        cell += f"; {name}, switching to a wrong answer: {_slope_cells(w['h_neurons'], w.get('diff'), '', ', ')}"
        out.append(f"{name}, switching to a wrong answer: "
                   f"{slope_verdict(w.get('diff'), w['h_neurons'], min_items, random=w.get('random'))}")
    return cell, out


def _behaviour_reading(h: dict | None, diff: dict | None, rates, common: dict | None,
                       labels: list[dict], bench: str, judge: str, min_items: int,
                       random: dict | None = None, lead: str = "") -> list[str]:
    """A Figure 3 row's reading as sentences: the verdict (after ``lead``, e.g. the measure),
    the same-items check behind a directional one, and the judge's caveat."""
    verdict = slope_verdict(diff, h, min_items, rates=rates, random=random)
    out = [f"{lead}: {verdict}" if lead else verdict]
    if h is None:
        return out
    if common is not None:
        out.append(common_items_note(common.get("rows", []), bench, diff, int(h["n_items"]), min_items))
    return out + [judge_caveat(labels, bench, judge)]


def _origin(folder: Path | None, min_per_class: int) -> list[dict]:
    if folder is None:
        return [_missing("origin", Path("<OUTPUT_DIR>/<instruct model>/origin/results.json"))]
    res, tr = read_results(folder / "results.json"), read_results(folder / "transfer.json")
    if res is None or tr is None:
        return [_missing("origin", folder / "results.json")]
    _need(res, folder / "results.json", "drift", "n_h_neurons", "offline_pair")
    pair = "offline Gemma-3-270M twin (our own short tuning, not the vendor's)" if res["offline_pair"] else "hub pair"
    rows = []
    table = pd.DataFrame(tr.get("table", []))
    readings = {r["dataset"]: r for r in (transfer_reading(table, min_per_class=min_per_class)
                                          if len(table) else [])}
    for k in paper.load_reference()["figure4"]["backward_auroc"]["datasets"]:
        if k in readings:
            r = readings[k]
            auc = (_ci(r["auroc"], r["lo"], r["hi"]) if r.get("n_min", 2) >= 2 else
                   f"{r['auroc']:.1f} (one answer per class: no interval)")
            ours = (f"AUROC {auc} on {r['n']} answers, {r['n'] // 2} per class ({pair}); "
                    + (f"random probes {r['random_mean']:.1f} ± {r['random_sd']:.1f} (mean ± sd)"
                       if np.isfinite(r["random_sd"]) else f"random probes' mean {r['random_mean']:.1f}"))
            verdict = r["verdict"]
        elif k in tr.get("empty", {}):
            e = tr["empty"][k]
            ours = f"no balanced set: {e['faithful']} faithful, {e['hallucinated']} hallucinated answers"
            verdict = "cannot be scored on this pair"
        else:
            ours, verdict = "not evaluated", ("no H-Neuron to apply" if res["n_h_neurons"] == 0 else "not run")
        rows.append({**_where("origin", "Figure 4a (§4)"), "claim": f"the instruct probe transfers to the base model on {paper.dataset_label(k)}",
                     "paper (Gao et al. 2025)": "AUROC well above 50 (six pairs)" + (
                         "; Mistral pairs: 'accuracy exceeding 86%', on the AUROC panel"
                         if k == "triviaqa" else ""),
                     "ours": ours, "reading": verdict})
    t = res["drift"].get("up + down (paper)")
    if t is None:
        ours, verdict = f"{noun(res['n_h_neurons'], 'H-Neuron')}: not tested", "too few H-Neurons to test"
    else:
        ours = (f"mean rank {mean_rank_text(t)} of "
                f"{noun(t['n_h_neurons'], 'H-Neuron')} ({pair})")
        verdict = drift_verdict(t)
    rows.append({**_where("origin", "Figure 4b (§4)"), "claim": "H-Neurons changed less than other neurons in tuning",
                 "paper (Gao et al. 2025)": "mean rank > 0.58 (Gemma, Llama; p < 0.001); "
                                            "about 0.97 (Mistral-Small)", "ours": ours,
                 "reading": verdict})
    return rows


def origin_folder(output_dir: str | Path) -> Path | None:
    """The origin chapter's folder under ``output_dir`` (it is named by the instruct model,
    which the chapter chooses): the most recently written one, or None."""
    found = sorted(Path(output_dir).glob("*/origin/results.json"), key=lambda p: p.stat().st_mtime)
    if len(found) > 1:
        import warnings
        warnings.warn(f"{len(found)} origin chapters' results under {output_dir} "
                      f"({', '.join(p.parent.parent.name for p in found)}): reading the newest, "
                      f"{found[-1].parent.parent.name}; set ORIGIN_DIR to choose", stacklevel=2)
    return found[-1].parent if found else None


def _chapter_dir(output_dir: str | Path, model_id: str, chapter: str) -> Path:
    return Path(output_dir) / model_key(model_id) / chapter  # read only: never created here


def scorecard(output_dir: str | Path, model_id: str, origin_dir: str | Path | None = None,
              min_per_class: int = MIN_PER_CLASS) -> pd.DataFrame:
    """One row per claim: the paper's number, ours (with 95% intervals), and what ours support.

    ``model_id`` names the model of chapters 2-4; ``origin_dir`` the origin chapter's folder
    (default: :func:`origin_folder`).
    """
    rows = _identification(_chapter_dir(output_dir, model_id, "identification"))
    rows += _generalisation(_chapter_dir(output_dir, model_id, "generalisation"), min_per_class)
    rows += _behaviour(_chapter_dir(output_dir, model_id, "behaviour"), min_per_class)
    folder = Path(origin_dir) if origin_dir else origin_folder(output_dir)
    rows += _origin(folder, min_per_class)
    return pd.DataFrame(rows, columns=COLUMNS)


def scorecard_html(card: pd.DataFrame, fold_at: int = 280) -> str:
    """The scorecard as an HTML table whose chapter cells link to the chapter's page.

    A cell of "ours" or "reading" longer than ``fold_at`` characters shows its first clause
    (up to the first "; ") and folds the rest into a ``<details>`` element ("more"), so the
    headline numbers and verdicts stay readable in the table and nothing is cut."""
    import html

    def link(cell: str) -> str:
        name = next((v for v in CHAPTERS.values() if cell == f"{int(v[:2])} {v[3:]}"), None)
        return f'<a href="{name}.html">{html.escape(cell)}</a>' if name else html.escape(cell)

    def fold(cell: str) -> str:
        cut = cell.find("; ", 40)
        if len(cell) <= fold_at or cut < 0:
            return html.escape(cell)
        return (f"{html.escape(cell[:cut])}<details><summary>more</summary>"
                f"{html.escape(cell[cut + 2:])}</details>")

    out = card.astype(str).map(html.escape)
    out["chapter"] = card["chapter"].astype(str).map(link)
    for col in ("ours", "reading"):
        if col in card:
            out[col] = card[col].astype(str).map(fold)
    return out.to_html(index=False, escape=False)


def scale_note(output_dir: str | Path, model_id: str, origin_dir: str | Path | None = None) -> str:
    """The "scale first" note of the scorecard page, from this build's own result files: which
    model chapters 2-4 ran (its MLP neuron count, from chapter 2's H-Neuron ratio), which pair
    chapter 5 ran, the paper's model range, and how many answers per class Table 1's balanced
    sets hold, with the smaller class named where the larger sets (chapter 3) tell which it is."""
    ref = paper.load_reference()
    models = ref["models"]
    out = f"**Scale first.** Chapters 2-4 of this build ran `{model_id}`"
    ident = read_results(_chapter_dir(output_dir, model_id, "identification") / "results.json") or {}
    if ident.get("n_h_neurons") and ident.get("per_mille"):
        out += f" ({round(1000 * ident['n_h_neurons'] / ident['per_mille']):,} MLP neurons)"
    out += f", against the paper's {len(models)} models ({', '.join(models)})"
    folder = Path(origin_dir) if origin_dir else origin_folder(output_dir)
    out += (f"; chapter 5 ran the base/instruct pair whose instruct side is `{folder.parent.name}`."
            if folder is not None else "; chapter 5 has not run.")
    gen = _chapter_dir(output_dir, model_id, "generalisation")
    t1 = (read_results(gen / "table1.json") or {}).get("ours", {})
    if t1:
        n = [d["n_pos"] for d in t1.values()]
        out += (f" This build's balanced Table 1 sets hold {min(n)} to {max(n)} answers per class."
                if min(n) != max(n) else f" This build's balanced Table 1 sets hold {n[0]} answers per class.")
        out += " A balanced set takes equally many answers from each class, so its smaller class bounds it"
        larger = (read_results(gen / "all_answers.json") or {}).get("ours", {})
        small = {("faithful" if d["n_neg"] < d["n_pos"] else "hallucinated" if d["n_pos"] < d["n_neg"]
                  else "neither") for d in larger.values()}
        if len(small) == 1 and small != {"neither"}:
            whole = all(t1[k]["n_pos"] == min(d["n_pos"], d["n_neg"]) for k, d in larger.items() if k in t1)
            out += (f": here, on every dataset, the smaller class is the {small.pop()} one"
                    + (" and the set holds all of its answers" if whole else ""))
        out += (". Every interval is as wide as these counts make it; where a row says *too few*, "
                "the chapter's exercises say how to grow it.")
    return out


def environment_note(output_dir: str | Path, model_id: str, origin_dir: str | Path | None = None) -> str:
    """The scorecard's note on what this build computed with (:func:`profiles.record_environment`
    files of chapters 1-5): one line when every chapter ran in one environment, otherwise each
    chapter's, with a warning where a folder's results come from more than one."""

    from .profiles import ENVIRONMENT_FILE, describe_environment, read_environments

    folders = {c: _chapter_dir(output_dir, model_id, c)
               for c in ("cett", "identification", "generalisation", "behaviour")}
    folder = Path(origin_dir) if origin_dir else origin_folder(output_dir)
    if folder is not None:
        folders["origin"] = folder
    envs = {}
    for chapter, d in folders.items():
        if (d / ENVIRONMENT_FILE).exists():
            envs[chapter] = read_environments(d / ENVIRONMENT_FILE)
    if not envs:
        return ("**Environment.** No chapter recorded its environment (`environment.json`: results "
                "written by an earlier version of the book).")
    why = (" A run in the same environment gives the same sampled answers byte for byte; in "
           "another (another processor, whose kernels round sums differently, another thread count, "
           "a GPU) a sampled token at a near-tie can change, rarely, and with it a label, the "
           "consistent questions and the probe's *C*: `bench/bench_numerics.py` measures how often "
           "on your machine.")
    distinct = {json.dumps(e, sort_keys=True) for lst in envs.values() for e in lst}
    missing = [c for c in folders if c not in envs]
    tail = (f" ({', '.join(missing)}: no record.)" if missing else "")
    if len(distinct) == 1:
        return ("**Environment.** Every chapter of this build that recorded one ran on "
                f"{describe_environment(next(iter(envs.values()))[0])}." + why + tail)
    lines = ["**Environment.** The chapters of this build ran in more than one environment, so "
             "their numbers need not match a build made in one:" + why]
    for chapter, lst in envs.items():
        lines.append(f"- {chapter}: " + "; then ".join(describe_environment(e) for e in lst)
                     + (" (**resumed in another environment**: its results mix both)" if len(lst) > 1 else ""))
    return "\n".join(lines) + ("\n" + tail.strip() if tail else "")


# The checks the scorecard adds to the paper's claims, one sentence each; the page counts them.
CHECKS = [
    "The H-Neuron row gives chapter 2's tests of the set itself (not in the paper): the probe "
    "refit on bootstrap resamples of its training questions, with the mean overlap (Jaccard) of "
    "their sets with this one; refit with one float16 step on a share of its stored features "
    "(the last bit another machine's arithmetic can change), with how many refits give another "
    "set; refit at another solver tolerance (scikit-learn's default), with its count and Eq. 4's "
    "objective against the probe's (a fit whose objective is higher stopped short of the "
    "minimum); refit by the other route to that minimum (all neurons at once, or the working "
    "set the paper's scale needs), saying whether it gives the same set; and how well its H-Neurons alone, and its negative-weight neurons alone, tell "
    "the held-out classes apart.",
    "A Table 1 row's numbers are the whole probe's, which reads its H-Neurons and its "
    "negative-weight neurons (the row counts both); the H-Neurons alone, refit and set against as "
    "many random neurons, follow.",
    "The row also gives the probe refit with one answer-span rule for both classes (chapter 3's "
    "span control), with the paired AUROC drop from the default rule: where the classes got "
    "different span rules, a verdict is credited to the H-Neurons only if the refit stays above "
    "chance. \"Span control fails\": the refit is not above chance and the drop's interval lies "
    "above 0. \"Span control inconclusive\": the refit is not above chance but the drop's interval "
    "includes 0, so the control is too uncertain to tell; the credit is withheld, since the claim "
    "is not established, but nothing is refuted. The same rule applies to the larger sets (up to a "
    "cap per class); where the control was not run on them, the row says so and withholds the "
    "credit.",
    "It gives, too, chapter 3's stronger baseline (not in the paper): the H-Neurons refit against "
    "as many neurons picked one by one for their own AUROC; \"screened ahead\" means a simple "
    "screen finds neurons at least as telling.",
    "And it gives chapter 3's recipe refits (not in the paper): the same probe on raw "
    "activations |z| instead of CETT, with the other label scheme, and with its features "
    "standardised (or not), each against the probe's "
    "own recipe with C chosen by held-out accuracy alone for both, with the paired AUROC "
    "difference; \"CETT ahead\" means its interval lies above 0.",
    "The H-Neuron and Table 1 rows give the precision of the judge's class labels (hallucinated, "
    "faithful) on hand labels of the default model's answers, where the book has them (chapters 2 "
    "and 3); a weak one is flagged (its class may then not hold what it should), and so is a "
    "hallucinated class whose replies, by hand, mostly give no answer at all.",
    "A Figure 3 verdict with a direction is checked on the items scored at every α (chapter 4's "
    "same-items check), or named as resting on too few of them.",
    "A Figure 3 row whose rule judge has a weak precision on its held-out hand labels says so: its "
    "rates may not measure compliance.",
    "The sycophancy row names its measure: Figure 3 plots backing down (an apology or \"not sure\" "
    "counts), wider than the paper's switching to a wrong answer; the row gives both, and chapter "
    "4's design with only the reply steered (not in the paper).",
]
_COUNT = {1: "One", 2: "Two", 3: "Three", 4: "Four", 5: "Five", 6: "Six", 7: "Seven", 8: "Eight",
          9: "Nine", 10: "Ten"}


def checks_note(checks: Sequence[str] = CHECKS) -> str:
    """The scorecard page's paragraph on the checks that ride along, its count computed (of
    kinds: one paragraph may hold several checks of one kind, e.g. three recipe refits)."""
    n = len(checks)
    head = (f"{_COUNT.get(n, str(n))} kinds of check ride along, each described in this paragraph." if n != 1
            else "One kind of check rides along.")
    return f"**{head}** " + " ".join(checks)


def summary_inputs(output_dir: str | Path, model_id: str) -> dict[str, Any]:
    """Which result files the scorecard found (for the chapter's provenance note)."""
    paths = {c: _chapter_dir(output_dir, model_id, c) for c in ("identification", "generalisation", "behaviour")}
    paths["origin"] = origin_folder(output_dir)
    return {k: (str(v) if v else None) for k, v in paths.items()}
