"""Backward transferability: the instruct model's probe on the base model (paper Section 4, Figure 4a).

The probe that finds H-Neurons in the instruct model is applied, unchanged, to the base
model's CETT features (the evaluation sets of :func:`origin.base_eval_sets`), beside an L2
probe refit on the same neurons and probes on random neurons (Section 6.3.1). This module
turns those scores into Figure 4a's table, its per-dataset verdict against chance and against
the random neurons, the explanation of datasets that could not be scored, the chapter's
written reading of both analyses (transfer and :mod:`hneurons_utils.drift`), and the figure.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .drift import drift_direction, drift_verdict, mean_rank_text
from .paper import dataset_label, load_reference
from .stats import MIN_PER_CLASS
from .wording import noun, p_value, probe_name

REFIT = "H-Neurons refit (L2)"
RANDOM = "random neurons (L2)"
UNCHANGED = "H-Neuron probe (unchanged)"  # the row key in result files (chapter 6 reads them)
SPAN_CLEAR = 75.0  # AUROC (%) of span length alone above which the classes clearly differ in length


def probe_label(probe: Any) -> str:
    """What the unchanged probe reads, for a legend: ``"instruct probe (1 H-Neuron + 3
    negative-weight neurons)"``. Its score is the whole probe's, negative weights included
    (``Probe.composition`` says which weight is largest), not the H-Neurons' alone."""
    w = np.asarray(probe.weights)
    return probe_name(int((w > 0).sum()), int((w < 0).sum()), "instruct probe")


def transfer_table(probe: Any, sets: dict[str, Any], baselines: list[dict],
                   n_boot: int = 1000, seed: int = 0) -> Any:
    """Figure 4a's numbers: per dataset, the instruct model's probe applied unchanged to the
    base model's features (AUROC and accuracy with bootstrap 95% intervals), then the baselines
    (``detection.baseline_metrics`` rows). AUROC in %.

    Columns ``dataset, probe, n, auroc, lo, hi, sd, n_probes, interval, accuracy``. The
    H-Neuron refit is one classifier: a point estimate, ``lo``/``hi`` NaN (no bar); beside it
    ``same_size_lo``/``same_size_hi``/``same_size_n``, the lowest and highest AUROC and the
    number of the random probes with as many neurons, ``same_size_above``, how many of them
    score above it, and ``same_size_below_chance``, how many score below 50. ``n_neurons``: the
    neurons each classifier reads (the probe's non-zero weights; NaN where the baseline rows
    lack ``k``); the random rows' ``n_below_chance``: how many of their seeds score below 50. The random
    neurons are ``n_probes`` classifiers: ``auroc`` their mean, ``sd`` their standard deviation
    over seeds (as chapter 3 reports them) and ``lo``/``hi`` the lowest and highest of their
    AUROCs: the spread of the seeds, not a confidence interval (mean -/+ sd could leave [0, 100]
    with few, scattered seeds).
    """
    import pandas as pd

    from .stats import detection_metrics

    rows = []
    for name, es in sets.items():
        d = detection_metrics(es.y, probe.decision_function(es.X), n_boot=n_boot, seed=seed)
        rows.append({"dataset": name, "probe": UNCHANGED, "n": d["n"],
                     "auroc": 100 * d["auroc"], "lo": 100 * d["auroc_ci"][0],
                     "hi": 100 * d["auroc_ci"][1], "sd": float("nan"), "n_probes": 1,
                     "interval": "bootstrap 95% CI over answers", "accuracy": 100 * d["accuracy"],
                     "n_neurons": int(np.count_nonzero(probe.weights))})
    base = pd.DataFrame(baselines)
    if base.empty:  # no baseline to compare with: the unchanged probe's rows alone
        base = pd.DataFrame(columns=["dataset", "kind", "n", "auroc", "accuracy"])
    for name, g in base.groupby("dataset", sort=False):
        refit = g[g.kind == "h_neurons_refit"]
        if len(refit):
            same = 100 * g[g.kind.str.startswith("hsize_random")].auroc.to_numpy(dtype=float)
            same = same[np.isfinite(same)]  # a seed without an AUROC is no yardstick
            rows.append({"dataset": name, "probe": REFIT, "n": int(refit.n.iloc[0]),
                         "auroc": 100 * float(refit.auroc.iloc[0]), "lo": float("nan"), "hi": float("nan"),
                         "sd": float("nan"), "n_probes": 1, "interval": "point estimate (one classifier)",
                         "accuracy": 100 * float(refit.accuracy.iloc[0]),
                         # its like-for-like yardstick: random probes of as many neurons
                         "same_size_lo": float(same.min()) if same.size else float("nan"),
                         "same_size_hi": float(same.max()) if same.size else float("nan"),
                         "same_size_n": int(same.size),
                         # how many of them score above the refit (its rank among them)
                         "same_size_above": int((same > 100 * float(refit.auroc.iloc[0])).sum()),
                         "same_size_below_chance": int((same < 50).sum()),
                         "n_neurons": int(refit.k.iloc[0]) if "k" in refit else float("nan")})
        rnd = g[g.kind.str.startswith("random")]
        if len(rnd):
            auc = 100 * rnd.auroc.to_numpy(dtype=float)
            sd = float(auc.std(ddof=1)) if len(auc) > 1 else float("nan")
            rows.append({"dataset": name, "probe": RANDOM, "n": int(rnd.n.iloc[0]),
                         "auroc": float(auc.mean()), "lo": float(auc.min()),
                         "hi": float(auc.max()), "sd": sd, "n_probes": len(auc),
                         "interval": f"mean, lowest-highest of {len(auc)} seeds",
                         "accuracy": 100 * float(rnd.accuracy.mean()),
                         "n_below_chance": int((auc < 50).sum()),
                         "n_neurons": int(rnd.k.iloc[0]) if "k" in rnd else float("nan")})
    return pd.DataFrame(rows)


def instruct_heldout(probe: Any, train_fs: Any, split: dict, n_boot: int = 1000, seed: int = 0,
                     min_per_class: int = MIN_PER_CLASS) -> dict[str, dict]:
    """The yardstick on the instruct model itself: the unchanged probe and the H-Neurons refit
    scored on the identification's held-out responses (``split["val"]``), AUROC and accuracy in
    % with bootstrap 95% intervals over responses (resampled within each class).

    The refit is :func:`detection.baseline_metrics`' ``h_neurons_refit``: an L2 logistic
    regression on the standardised features of the H-Neurons alone, trained on the same
    identification rows (``train_fs``, ``split["train"]``, the probe's label scheme). These are
    the responses that chose C, so the probe's AUROC on them is optimistic, and the responses
    of one question are not independent, so the intervals are if anything too narrow.

    Returns ``{}`` without held-out responses, else ``{UNCHANGED: row, REFIT: row}`` (no REFIT
    without H-Neurons), each row with ``auroc, lo, hi, accuracy, acc_lo, acc_hi, n,
    n_hallucinated, n_faithful, q_hallucinated, q_faithful`` (questions behind each class),
    ``n_min`` and ``verdict`` (:func:`detection.auroc_verdict` against chance: under
    ``min_per_class`` responses in the smaller class, "too few").
    """
    from .detection import auroc_verdict
    from .pipeline import answer_matrix, probe_training_rows, stored_examples
    from .probe import subset_probes
    from .stats import detection_metrics

    val = stored_examples(split, "val") if split.get("val") else []
    if not val:
        return {}
    Xv, yv = answer_matrix(train_fs, val)
    scorers = {UNCHANGED: probe}
    h = probe.h_neurons()
    if h.size:
        X, y = probe_training_rows(probe, train_fs, split)
        scorers[REFIT] = subset_probes(X, y, [h])[0]
    questions = {lab: len({e.key.rsplit("#", 1)[0] for e in val if e.label == lab}) for lab in (0, 1)}
    out = {}
    for name, clf in scorers.items():
        d = detection_metrics(yv, clf.decision_function(Xv), n_boot=n_boot, seed=seed)
        k = min(d["n_pos"], d["n_neg"])
        out[name] = {"auroc": 100 * d["auroc"], "lo": 100 * d["auroc_ci"][0],
                     "hi": 100 * d["auroc_ci"][1], "accuracy": 100 * d["accuracy"],
                     "acc_lo": 100 * d["accuracy_ci"][0], "acc_hi": 100 * d["accuracy_ci"][1],
                     "n": d["n"], "n_hallucinated": d["n_pos"], "n_faithful": d["n_neg"],
                     "q_hallucinated": questions[1], "q_faithful": questions[0], "n_min": k,
                     "verdict": auroc_verdict(100 * d["auroc_ci"][0], float("nan"), k, min_per_class,
                                              chance=50.0, hi=100 * d["auroc_ci"][1])}
    return out


def heldout_text(r: dict) -> str:
    """One :func:`instruct_heldout` row in words: AUROC with its interval, the class counts
    (responses and the questions behind them) and the verdict against chance."""
    return (f"AUROC {r['auroc']:.1f} [{r['lo']:.1f}, {r['hi']:.1f}] on {r['n']} responses "
            f"({r['n_hallucinated']} hallucinated, {r['n_faithful']} faithful, from "
            f"{r['q_hallucinated']} and {r['q_faithful']} questions): {r['verdict']}")


def transfer_reading(table: Any, n_min: dict[str, int] | None = None,
                     min_per_class: int = MIN_PER_CLASS,
                     span_auroc: dict[str, float] | None = None,
                     heldout: dict | None = None) -> list[dict]:
    """Per dataset of a :func:`transfer_table`: the unchanged probe's AUROC against chance and
    against the random-neuron probes' mean AUROC (the level chapter 3 uses), as a verdict
    (``detection.auroc_verdict``: the probe's interval must lie above it).

    ``n_min``: responses in the smaller class per dataset (default: half of each balanced set).
    ``span_auroc``: what span length alone reaches per dataset (%, ``detection.span_diagnostic``
    x 100): where the probe does not beat that (whatever its verdict), ``span_note`` says so.
    ``heldout``: the refit's row of :func:`instruct_heldout` (its AUROC on the instruct model's
    own held-out responses), which ``refit_note`` needs before it reads a low base-model AUROC
    as a reversal between the models.
    Each reading has ``random_mean`` and ``random_sd`` (over seeds; NaN without random probes),
    ``refit_note`` (empty, or its base-model part ``refit_base`` and the rest ``refit_tail``)
    and ``below_note`` (:func:`below_chance_note`: where most classifiers sit below 50;
    ``below_base`` the same without its span-length part).
    """
    from .detection import auroc_verdict

    out = []
    for name, g in table.groupby("dataset", sort=False):
        r = g.set_index("probe")
        main = r.loc[UNCHANGED]
        rnd = r.loc[RANDOM] if RANDOM in r.index else None
        k = (n_min or {}).get(name, int(main.n) // 2)
        mean = float(rnd.auroc) if rnd is not None else float("nan")
        sd = float(rnd.get("sd", float("nan"))) if rnd is not None else float("nan")
        fit = r.loc[REFIT] if REFIT in r.index else {}
        nan = float("nan")
        refit = float(fit.get("auroc", nan))
        same = (fit.get("same_size_lo", nan), fit.get("same_size_hi", nan), int(fit.get("same_size_n", 0) or 0))
        above = fit.get("same_size_above", nan)
        above = int(above) if above is not None and np.isfinite(above) else None
        base_part, tail = _refit_parts(refit, float(main.lo), float(main.hi), k, min_per_class,
                                       same, heldout, above)
        out.append({"dataset": name, "auroc": float(main.auroc), "lo": float(main.lo),
                    "hi": float(main.hi), "n": int(main.n), "n_min": k,
                    "random_mean": mean, "random_sd": sd, "refit": refit,
                    "refit_base": base_part, "refit_tail": tail, "refit_note": base_part + tail,
                    "verdict": auroc_verdict(float(main.lo), mean, k, min_per_class, chance=50.0,
                                             hi=float(main.hi))})
        span = (span_auroc or {}).get(name, float("nan"))
        out[-1]["span_note"] = (
            (f"span length alone reaches {span:.1f} here, "
             f"{'more than' if round(span, 1) > round(float(main.auroc), 1) else 'as much as'} the probe ({main.auroc:.1f}): "
             + ("its detection is not shown to be more than where the answer span sits"
                if out[-1]["verdict"].startswith("above chance") else
                "even a probe that cleared chance here would not be shown to read more than the span"))
            if np.isfinite(span) and span >= float(main.auroc) else "")
        out[-1]["below_note"] = below_chance_note(r, span)
        out[-1]["below_base"] = below_chance_note(r)  # the same without the span-length part
    return out


def _count(row: Any, key: str) -> int:
    v = row.get(key, float("nan")) if row is not None else float("nan")
    return int(v) if v is not None and np.isfinite(v) else 0


def below_chance_note(r: Any, span: float = float("nan")) -> str:
    """A note where most of the classifiers trained on the instruct model score below 50 on one
    dataset (``r``: that dataset's :func:`transfer_table` rows indexed by ``probe``) and the
    random probes' mean does too: clearing that mean then adds nothing to clearing chance
    (chapter 3's ``detection._below_chance_note``, in percent). ``span``: the AUROC (%) of span
    length alone there; at ``SPAN_CLEAR`` or above, the classes differ clearly in answer length,
    and the note says that a shared position below 50 may come from that difference, read by
    classifiers trained on other answers, rather than from a reversed signal (not tested)."""
    if RANDOM not in r.index or not float(r.loc[RANDOM].auroc) < 50:
        return ""
    rnd = r.loc[RANDOM]
    fit = r.loc[REFIT] if REFIT in r.index else None
    main = r.loc[UNCHANGED]
    n_rnd, b_rnd = _count(rnd, "n_probes"), _count(rnd, "n_below_chance")
    n_same, b_same = _count(fit, "same_size_n"), _count(fit, "same_size_below_chance")
    refit = float(fit.auroc) if fit is not None else float("nan")
    total = 1 + n_rnd + n_same + (fit is not None)
    below = int(float(main.auroc) < 50) + b_rnd + b_same + int(refit < 50)
    if not below > total / 2:
        return ""
    parts = [f"the random-neuron probes: {b_rnd} of {n_rnd}, from {float(rnd.lo):.1f} to {float(rnd.hi):.1f}"]
    if fit is not None:
        parts.append(f"the H-Neurons refit: {refit:.1f}")
        if n_same:
            parts.append(f"the same-size random probes: {b_same} of {n_same}")
    parts.append(f"the unchanged probe: {float(main.auroc):.1f}")
    text = (f"{below} of the {total} classifiers trained on the instruct model score below 50 here "
            f"({'; '.join(parts)}), so clearing the random probes' mean ({float(rnd.auroc):.1f}) adds "
            "nothing to clearing chance")
    if np.isfinite(span) and span >= SPAN_CLEAR:
        text += (f"; span length alone separates the classes here ({span:.1f}): features read over "
                 "the answer span shift with its length whatever the neurons, so classifiers "
                 "trained on the instruct model's answers may sit below 50 together because of "
                 "that length difference rather than a signal that reverses between the models "
                 "(a reading this run does not test)")
    elif np.isfinite(span):
        text += (f"; span length alone reaches only {span:.1f} here, so the answer-length "
                 "difference does not obviously explain it")
    return text


def chance_rank(n_above: int, n_probes: int) -> tuple[int, int]:
    """How often a classifier no different from ``n_probes`` others ranks at least as low as
    one with ``n_above`` of them above it: ``(n_probes - n_above + 1, n_probes + 1)``, i.e.
    being below all ``k`` is a 1-in-(k+1) event (all k+1 orders equally likely, no ties)."""
    if not 0 <= n_above <= n_probes:
        raise ValueError(f"n_above={n_above} must lie in [0, {n_probes}]")
    return n_probes - n_above + 1, n_probes + 1


def _refit_parts(refit: float, lo: float, hi: float, k: int, min_per_class: int,
                 same: tuple[float, float, int] = (float("nan"), float("nan"), 0),
                 heldout: dict | None = None, n_above: int | None = None) -> tuple[str, str]:
    """A note where the H-Neurons refit (one classifier, no interval of its own) sits below 50
    on the base model by more than half the unchanged probe's interval on the same answers (the
    noise guide).

    ``same``: the lowest and highest AUROC of the random probes with as many neurons as the
    refit, and their number; ``n_above``: how many of them score above the refit (:func:`chance_rank`
    says how often chance alone puts it that low). ``heldout``: the refit's row of
    :func:`instruct_heldout`. A reversal between the models is named only where the refit is
    clearly above 50 on the instruct model's own held-out responses (at least ``min_per_class``
    per class, interval above 50); otherwise the note says the refit is not shown to detect on
    either model. Returns the base-model part and the rest (the instruct side and the
    conclusion, the same for every dataset), or ``("", "")``."""
    half = (hi - lo) / 2
    if k < min_per_class or not np.isfinite(refit) or not np.isfinite(half) or refit >= 50 - half:
        return "", ""
    text = (f"the H-Neurons refit (trained on the instruct model's identification rows) reaches "
            f"{refit:.1f} on the base model, below 50 by more than the probe's interval half-width "
            f"({half:.1f})")
    s_lo, s_hi, s_n = same
    if s_n and np.isfinite(s_lo):
        if n_above is None and s_lo > refit:
            n_above = s_n  # below the lowest of them
        rng = f"random probes of as many neurons ({s_lo:.1f} to {s_hi:.1f})"
        if n_above is None:
            text += f"; {rng} fall as low"
        elif n_above == 0:
            text += f", not below any of the {s_n} {rng}"
        else:
            a, b = chance_rank(n_above, s_n)
            which = f"all {s_n}" if n_above == s_n else f"{n_above} of the {s_n}"
            text += (f", below {which} {rng}: a {a}-in-{b} event by chance if the refit is no "
                     "different from them")
    if heldout is None:
        tail = "; its AUROC on the instruct model's own held-out responses is not given"
        clear = False
    else:
        tail = (f"; on the instruct model's own held-out responses the refit reaches "
                f"{heldout['auroc']:.1f} [{heldout['lo']:.1f}, {heldout['hi']:.1f}] "
                f"({heldout['n_hallucinated']} hallucinated, {heldout['n_faithful']} faithful)")
        clear = heldout["n_min"] >= min_per_class and heldout["lo"] > 50
        tail += (f", too few for a verdict (fewer than {min_per_class} per class)"
                 if heldout["n_min"] < min_per_class else
                 ", above 50" if clear else ", an interval that does not lie above 50")
    if clear:
        return text, tail + (": these neurons detect on the instruct model and order the base "
                             "model's answers the other way round, a reversal between the models "
                             "(on the base side one classifier without an interval of its own), "
                             "not the paper's transfer")
    return text, tail + (": the refit is not shown to detect hallucinations on either model, so "
                         "its low base-model AUROC is no evidence that the signal reverses "
                         "between them")


def _too_few(counts: dict, min_per_class: int) -> bool:
    """Whether :func:`unscored_reading` speaks of a dataset with these counts: fewer than
    ``min_per_class`` answers in one class."""
    return min(int(counts.get("faithful", 0)), int(counts.get("hallucinated", 0))) < min_per_class


def usable_questions(counts: dict[str, dict], data_dir: Any = None,
                     min_per_class: int = MIN_PER_CLASS) -> dict[str, int]:
    """How many usable questions each dataset of ``counts`` that :func:`unscored_reading`
    speaks of holds (TriviaQA: its test split; NonExist, generated on demand, has no fixed
    size and is left out): its ``available``. The loader's notes on skipped rows, already
    printed when the questions were drawn, are not repeated."""
    import logging

    from .data import load_qa

    logger = logging.getLogger("hneurons_utils.data")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        return {k: len(load_qa(k, "test" if k == "triviaqa" else None, data_dir))
                for k, c in counts.items() if k != "nonexist" and _too_few(c, min_per_class)}
    finally:
        logger.setLevel(level)


def expected_unscored(counts: dict[str, dict], sizes: dict[str, int] | None = None,
                      min_per_class: int = MIN_PER_CLASS) -> list[str]:
    """One sentence per dataset with fewer than ``min_per_class`` answers in a class: at the
    rate of that class over the *other* datasets (pooled, per question asked), how many such
    answers its size was expected to give, so whether it was expected to be unscored at this
    size, and how many questions that rate would need for ``min_per_class``. ``counts``:
    ``{dataset: {"questions", "faithful", "hallucinated"}}`` (every dataset asked, scored or
    not); ``sizes``: the questions requested (``N_EVAL_*``), named beside the asked ones.
    :func:`unscored_reading` estimates the size from the dataset's own count instead."""
    out = []
    for name, c in counts.items():
        if not _too_few(c, min_per_class):
            continue
        f, h = int(c.get("faithful", 0)), int(c.get("hallucinated", 0))
        small = "faithful" if f <= h else "hallucinated"
        others = [o for k, o in counts.items() if k != name and o.get("questions")]
        asked = sum(int(o["questions"]) for o in others)
        if not asked:
            continue
        rate = sum(int(o.get(small, 0)) for o in others) / asked
        q = int(c.get("questions") or (sizes or {}).get(name) or f + h)
        req = (sizes or {}).get(name)
        size = f"{q} questions" + (f" ({int(req)} requested)" if req and int(req) != q else "")
        if rate == 0:
            out.append(f"{name}: the other datasets gave no {small} answer either, so no rate "
                       "predicts how many questions would be needed.")
            continue
        expect, need = rate * q, int(np.ceil(min_per_class / rate))
        verdict = ("so it was expected to be unscored, or too small to conclude from, at this size"
                   if expect < min_per_class else "so this size was expected to suffice")
        out.append(f"{name}: at the {small} rate of the other datasets ({100 * rate:.1f}% of "
                   f"{asked:,} questions), {size} were expected to give about {expect:.1f} {small} "
                   f"answers, {verdict} (it gave {min(f, h)}); about {need:,} questions would be "
                   f"needed at that rate for {min_per_class} {small} answers.")
    return out


def unscored_reading(empty: dict[str, dict], sizes: dict[str, int] | None = None,
                     min_per_class: int = MIN_PER_CLASS,
                     available: dict[str, int] | None = None) -> list[str]:
    """One sentence per dataset with no balanced set, or one under ``min_per_class`` answers per
    class: how many answers of each class, why that cannot be scored (or concluded from), and
    how many questions would be needed. Datasets with enough of both classes are skipped.

    ``empty``: ``{dataset: {"questions", "faithful", "hallucinated", ...}}``
    (:func:`base_eval_sets`; the ``counts`` of a small balanced set have the same keys), whose
    ``questions`` (the questions actually asked) are the ones quoted and counted;
    ``sizes``: the questions requested per dataset (``N_EVAL_*``), quoted beside the asked ones
    where they differ (a few are dropped when loading), and used in their place only where the
    counts lack ``questions``; ``available``: how many usable questions each dataset holds
    (optional), said beside the questions needed.
    With ``f`` answers of the smaller class among ``q`` questions asked, that class's rate per
    question has the 95% upper bound ``3/q`` when ``f = 0`` (rule of three), so at least
    ``min_per_class * q / 3`` questions are needed to expect ``min_per_class`` such answers even
    at that bound; with ``f > 0``, ``min_per_class * q / f`` at the observed rate. (Without a
    question count, the judged answers stand in for ``q``.)
    """
    out = []
    for name, c in empty.items():
        f, h = int(c.get("faithful", 0)), int(c.get("hallucinated", 0))
        n = f + h
        requested = (sizes or {}).get(name)
        asked = c.get("questions", requested)
        asked_txt = ""
        if asked:
            asked_txt = f" of {int(asked)} questions asked"
            if requested and int(requested) != int(asked):
                asked_txt += f" ({int(requested)} requested)"
        small = "faithful" if f <= h else "hallucinated"
        k = min(f, h)
        if n == 0:
            out.append(f"{name}: not scored: no judged answer{asked_txt}.")
            continue
        if not _too_few(c, min_per_class):
            continue  # enough of both classes: nothing to say here
        q = int(asked) if asked else n  # the rate per question asked (refusals ask too)
        need = (int(np.ceil(min_per_class * q / 3)) if k == 0 else int(np.ceil(min_per_class * q / k)))
        how = ("at least" if k == 0 else "about")
        per = "question" if asked else "judged answer"
        bound = (f"0 {small} in {q} puts the {small} rate per {per} below {100 * 3 / q:.1f}% "
                 "(95% upper bound), so"
                 if k == 0 else f"at the observed {small} rate of {100 * k / q:.1f}% per {per},")
        state = ("not scored" if k == 0 else f"too few to conclude (fewer than {min_per_class} per class)")
        why = "an AUROC needs both classes" if k == 0 else "the bootstrap interval is unreliable"
        holds = (available or {}).get(name)
        holds_txt = ("" if holds is None else
                     f" (the dataset holds {holds:,} usable questions"
                     + (", fewer than that)" if need > holds else ")"))
        out.append(f"{name}: {state}: {f} faithful and {h} hallucinated answers{asked_txt}; {why}. "
                   f"{bound[0].upper() + bound[1:]} {how} {need:,} "
                   f"questions would be needed for {min_per_class} {small} answers{holds_txt}.")
    return out


def discussion(readings: list[dict], empty: dict[str, dict], drift: dict[str, dict],
               offline: bool, n_h_neurons: int, min_per_class: int = MIN_PER_CLASS,
               stability: dict | None = None, per_mille: float | None = None,
               heldout: dict | None = None) -> list[str]:
    """The chapter's reading of its own results, one Markdown paragraph per finding.

    ``readings``: :func:`transfer_reading` (balanced sets); ``empty``: datasets without a
    balanced set; ``drift``: :func:`drift_tests` per variant (``"up + down (paper)"`` is read);
    ``offline``: whether the pair is the Gemma-3-270M twin; ``stability``:
    ``pipeline.selection_stability`` of the probe (optional); ``per_mille``: the H-Neurons'
    share of all neurons (optional; above 1 the drift paragraph says the set is not sparse);
    ``heldout``: the unchanged probe's row of :func:`instruct_heldout` (optional; quoted where a
    weak probe is one reading of a null result).
    Every sentence that states an outcome is chosen by the numbers; nothing is pre-written for
    one outcome.
    """
    return [_transfer_paragraph(readings, empty, offline, n_h_neurons, min_per_class, heldout),
            _drift_paragraph(drift.get("up + down (paper)"), offline, n_h_neurons, stability,
                             per_mille)]


def _transfer_paragraph(readings: list[dict], empty: dict[str, dict], offline: bool,
                        n_h_neurons: int, min_per_class: int, heldout: dict | None = None) -> str:
    """:func:`discussion`'s paragraph on Figure 4a: which datasets transfer, which do not."""
    from .detection import BELOW_CHANCE, NOT_DISTINGUISHABLE

    shown = [r for r in readings if not r["verdict"].startswith("too few")]
    transfers = [r["dataset"] for r in shown if r["verdict"].startswith("above chance, and above")]
    unspecific = [r["dataset"] for r in shown if r["verdict"].startswith("above chance, but")
                  or r["verdict"] == "above chance"]
    chance = [r for r in shown if r["verdict"] == NOT_DISTINGUISHABLE]
    below = [r for r in shown if r["verdict"] == BELOW_CHANCE]
    few = [r["dataset"] for r in readings if r["verdict"].startswith("too few")]
    parts = []
    if transfers:
        parts.append(f"the unchanged probe separates the base model's hallucinated from faithful "
                     f"answers above chance and above random neurons on {', '.join(transfers)}, as "
                     "the paper reports for its pairs")
    if unspecific:  # the probe is named the first time, "it" after that
        parts.append(f"on {', '.join(unspecific)} {'it' if parts else 'the unchanged probe'} is "
                     "above chance but not above the random-neuron probes: a signal is present in "
                     "the base model, not shown to be specific to the H-Neurons")
    for r in chance:
        whose = "its" if parts else "the unchanged probe's"
        parts.append(f"on {r['dataset']} {whose} AUROC interval [{r['lo']:.1f}, {r['hi']:.1f}] "
                     f"({r['n_min']} answers in the smaller class) includes 50: this run neither "
                     f"shows transfer nor rules out an AUROC up to about {r['hi']:.0f}")
    for r in below:
        whose = "its" if parts else "the unchanged probe's"
        parts.append(f"on {r['dataset']} {whose} AUROC interval [{r['lo']:.1f}, {r['hi']:.1f}] "
                     f"({r['n_min']} answers in the smaller class) lies wholly below 50: it ranks the "
                     "base model's answers measurably the wrong way round, which is no transfer")
    parts += [f"on {r['dataset']}, {r['span_note']}" for r in shown if r.get("span_note")]
    parts += [f"on {r['dataset']}, " + r["below_base" if r.get("span_note") else "below_note"]
              for r in shown if r.get("below_note")]  # the span is named once per dataset
    noted = [r for r in shown if r.get("refit_note")]
    tails = {r.get("refit_tail") for r in noted}
    if len(tails) == 1 and None not in tails:  # the instruct side is the same for every dataset
        parts.append("; ".join(f"on {r['dataset']}, {r['refit_base']}" for r in noted) + tails.pop())
    else:
        parts += [f"on {r['dataset']}, {r['refit_note']}" for r in noted]
    if few:
        parts.append(f"{', '.join(few)}: fewer than {min_per_class} answers per class, no verdict")
    if empty:
        parts.append(f"{', '.join(empty)} could not be scored (no balanced set, see above)")
    if not readings:
        parts.insert(0, "the probe was not applied to any dataset" +
                     (" (no H-Neuron was identified)" if n_h_neurons == 0 else " (no balanced set)"))
    joined = "; ".join(parts)
    text = "**Backward transfer (Figure 4a), as measured.** " + joined[:1].upper() + joined[1:] + "."
    if offline and transfers:
        text += (" Our tuning step is short and on one task, so it likely moved the weights less "
                 "than vendor alignment does (not measured here), which would make transfer an "
                 "easier test than in the paper: it shows that this tuning left the signal in "
                 "place, not what vendor alignment does.")
    elif chance and not transfers and heldout is not None and not heldout["lo"] > 50:
        text += (" The probe is not shown to detect on the instruct model itself either: on its "
                 "own held-out responses, the set that chose C (so an optimistic yardstick), it "
                 f"reaches {heldout_text(heldout)}. A probe without a shown signal has nothing to "
                 "transfer, so this null result says nothing about where the neurons come from.")
    elif offline and chance and not transfers:
        text += (" Tuning having created the signal is not the only reading of this null result: "
                 "a weak probe (few faithful training answers) or too few evaluation answers "
                 "would give it too, and this run does not separate these explanations.")
        text += (" The probe's held-out AUROC on the instruct model itself is printed with the "
                 "identification above." if heldout is None else
                 " On the instruct model's own held-out responses, the set that chose C (so an "
                 f"optimistic yardstick), the probe reaches {heldout_text(heldout)}.")
    return text


def _within_random_sets(t: dict) -> str:
    """Why a mean rank whose interval lies below 0.5 is still no finding (``drift_direction``
    "more, within random sets"): the interval measures only the spread of these ranks, while
    random sets drawn from the H-Neurons' layers reach as low a mean; against sets drawn from
    any layer it may be rarer, which puts that part of the gap on the layers, not on their
    being H-Neurons (the weight-size check follows in :func:`_drift_paragraph`)."""
    layer = t.get("random_layer_matched", {})
    text = ("The bootstrap interval alone would read as the paper's opposite, but it measures "
            "only the spread among these ranks; the verdict's yardstick is random sets drawn "
            "from the H-Neurons' own layers" + (f", which average {layer['mean_rank_mean']:.2f}"
                                                if "mean_rank_mean" in layer else ""))
    anywhere = t.get("random", {})
    if anywhere.get("p_value_more") is not None and anywhere["p_value_more"] < layer["p_value_more"]:
        text += (f". Against sets drawn from any layer the mean is rarer ({100 * anywhere['p_value_more']:.0f}% "
                 "of draws), so part of the gap from 0.5 comes with the layers these neurons sit "
                 "in, not with their being H-Neurons")
    return text + "."


def _drift_paragraph(t: dict | None, offline: bool, n_h_neurons: int,
                     stability: dict | None = None, per_mille: float | None = None) -> str:
    """:func:`discussion`'s paragraph on Figure 4b, from the paper's drift variant's tests."""
    from .pipeline import stability_kind

    if t is None:
        return (f"**Parameter drift (Figure 4b), as measured.** Not tested: "
                f"{noun(n_h_neurons, 'H-Neuron')}.")
    n_h = t["n_h_neurons"]
    head = ("**Parameter drift (Figure 4b), as measured.** "
            + ("The one H-Neuron's" if n_h == 1 else f"The {n_h} H-Neurons' mean") + " "
            f"normalised rank is {mean_rank_text(t)} (random sets: 0.5; the "
            f"paper: above 0.58 for Gemma and Llama, about 0.97 for Mistral-Small). Verdict: "
            f"{drift_verdict(t)}.")
    direction = drift_direction(t)
    if direction == "less":
        body = (" This is the paper's direction: the H-Neurons are among the neurons tuning "
                "changed least.")
        if offline:
            body += (" Our tuning data are trivia answers, the task the probe reads, so inertia "
                     "under such task-matched tuning is, if anything, the harder result.")
    elif direction == "more, within random sets":
        body = " " + _within_random_sets(t)
    elif direction == "more":
        body = (" This is the opposite of the paper's finding, in this pair: the H-Neurons are "
                "among the neurons tuning changed *more*. So this pair does not support "
                "\"inherited, not created\".")
        if offline:
            body += (" Our tuning data are trivia answers, the task the probe reads; a tuning step "
                     "that acts most on the neurons that carry such answers would produce this "
                     "(a hypothesis, not tested here). Whether vendor alignment, trained on broad "
                     "instructions, acts the same way cannot be read from this pair.")
    elif direction == "too few":  # one neuron: a rank, no mean to test
        layer = t.get("random_layer_matched", {})
        p_high, p_low = layer.get("p_value"), layer.get("p_value_more")
        where = ("" if p_high is None or p_low is None else
                 f" (layer-matched random neurons rank at least as high in {100 * p_high:.0f}% of "
                 f"draws and at least as low in {100 * p_low:.0f}%)")
        body = (f" One neuron's rank places that neuron, not a set{where}: it says nothing either "
                "way about H-Neurons in this pair.")
    elif t.get("mean_rank_ci") is None:
        body = (" With so few neurons only the layer-matched random sets can judge the mean, and "
                "it sits where they fall: no evidence either way, in this pair.")
    else:
        body = (" The interval includes 0.5 or the test is not significant: no evidence either "
                "way, in this pair.")
    if 1 < n_h < 20:
        body += f" With {n_h} H-Neurons the rank is an average of few neurons."
    if per_mille is not None and per_mille > 1:
        body += (f" The set is not sparse ({per_mille:.1f} per mille, above the paper's 1 per "
                 "mille): the ranks describe a broad selection of neurons that carry answers, not "
                 "the paper's few.")
    kind = stability_kind(stability)
    if kind != "too few" and len(stability["frequency"]) == 1:
        body += (f" Refitted on {stability['n_resamples']} resamples of its training questions, the "
                 f"probe selects this neuron again in {stability['frequency'][0]:.0%} of them: the "
                 "rank describes one draw among neurons that carry similar information.")
    elif kind != "too few":
        freq = np.asarray(stability["frequency"])
        body += (f" Refitted on {stability['n_resamples']} resamples of its training questions, the "
                 f"probe selects {int((freq >= 0.5).sum())} of these {freq.size} neurons again in at "
                 "least half of them: the ranks describe this draw of the set, which "
                 + {"reproduces": "largely reproduces.",
                    "core": "has a reproducible core but no fixed edge.",
                    "unstable": "does not reproduce as a whole."}[kind])
    elif t["n_h_neurons"] < 20:
        body += " Which neurons the L1 probe selects is itself uncertain at this sample size."
    if "random_norm_matched" in t:  # drift rank may track weight size (not in the paper)
        c, m, lay = t["norm_spearman"], t["random_norm_matched"], t["random_layer_matched"]
        body += (f" Drift and weight size (||W_up[j]|| x ||W_down[:, j]||) have a Spearman "
                 f"correlation of {c['rho']:+.2f} over all neurons ({'larger' if c['rho'] < 0 else 'smaller'} "
                 "weights, less change); against random neurons of the same layer with the closest "
                 f"weight norm{_mean_of(m)}, a mean rank as high as the H-Neurons' has p = {p_value(m['p_value'])} "
                 f"and one as low p = {p_value(m['p_value_more'])} (layer-matched only: "
                 f"{p_value(lay['p_value'])} and {p_value(lay['p_value_more'])}).")
    return head + body


def _mean_of(sets: dict) -> str:
    """" (mean rank 0.34)" for random sets that stored their mean rank, else ""."""
    return f" (mean rank {sets['mean_rank_mean']:.2f})" if "mean_rank_mean" in sets else ""


# ---------------------------------------------------------------- figure (Figure 4a)


def pd_nan(rows: Any) -> list[float]:
    """NaN per row: the stand-in for a column a table lacks."""
    return [float("nan")] * len(rows)


def _n_seeds(rows: Any) -> str:
    """The random probes' seed count per dataset, in words ("5 seeds", "3-5 seeds")."""
    n = sorted({int(v) for v in rows.get("n_probes", pd_nan(rows)) if np.isfinite(v)})
    return noun(n[0], "seed") if len(n) == 1 else f"{n[0]}-{n[-1]} seeds" if n else "the seeds"


def paper_transfer_marks(frame: Any, chance: float = 50.0, reference: dict | None = None
                         ) -> dict[str, tuple[float, str]]:
    """``{dataset: (bound, label)}`` for the paper's stated Figure 4a bounds above chance.

    ``frame``: ``paper.backward_auroc_frame()``; e.g. the Mistral pair's TriviaQA bound.
    ``reference``: ``paper.load_reference()`` (read when None), whose quote words the bound.
    Where that quote names the bound as something other than AUROC (the paper's "accuracy
    exceeding 86%", in its discussion of the AUROC panel), the label quotes the words and says
    the figure reads them as an AUROC bound.
    """
    import re

    ref = load_reference() if reference is None else reference
    quotes = {(b["dataset"], float(b["auroc_above"])): b.get("quote", "")
              for b in ref["figure4"]["backward_auroc"].get("text_bounds", [])}
    marks = {}
    for ds, g in frame[frame.auroc_above > chance].groupby("dataset", sort=False):
        top = g[g.auroc_above == g.auroc_above.max()]
        value, models = float(top.auroc_above.iloc[0]), ", ".join(top.model)
        words = re.search(rf"\w+\s+\w+\s+{re.escape(f'{value:g}')}\s*%", quotes.get((ds, value), ""))
        if words and "auroc" not in words.group(0).lower():
            label = (f"paper text ({models}):\n'{words.group(0)}'\n(read here as an AUROC bound)")
        else:
            label = f"paper: {models} above {value:g}"
        marks[ds] = (value, label)
    return marks


def plot_transfer(ax: Any, table: Any, paper_marks: dict[str, tuple[float, str]] | None = None,
                  empty: dict[str, dict] | None = None, min_per_class: int = MIN_PER_CLASS,
                  unchanged_label: str | None = None, order: list[str] | None = None) -> None:
    """Figure 4a: AUROC (%) on the base model per dataset and probe, with error bars: the
    unchanged probe's bootstrap 95% interval, the random probes' lowest to highest seed. The
    refit, a single classifier, has none of its own: beside it (not on it) a narrow grey,
    dotted band spans the random probes of as many neurons (its yardstick, lowest to highest
    seed), with its own legend entry. No bar of a dataset with too few answers has an interval.

    ``table``: rows with ``dataset, probe, auroc, lo, hi`` (AUROC in %); ``paper_marks``: the
    paper's stated bounds per dataset (:func:`paper_transfer_marks`), drawn as dashed segments;
    ``empty``: datasets without a balanced set (``base_eval_sets``' counts), kept on the axis
    with their class counts instead of bars. A balanced set with fewer than ``min_per_class``
    answers per class (no verdict, as :func:`transfer_reading`) has faded, hatched bars and
    says so under its name; every scored dataset's tick gives its answers per class.
    ``unchanged_label``: the unchanged probe's legend name (:func:`probe_label`, from what it
    reads; default its table key); ``order``: the datasets' order on the axis (default the
    paper's Figure 4a order from ``paper_reference.json``), others after them.
    """
    if order is None:
        order = load_reference()["figure4"]["backward_auroc"]["datasets"]
    probes = list(dict.fromkeys(table["probe"]))
    present = list(dict.fromkeys(table["dataset"])) + [k for k in (empty or {}) if k not in set(table["dataset"])]
    datasets = [k for k in order if k in present] + [k for k in present if k not in order]
    band = REFIT in probes and "same_size_lo" in table
    # one slot per probe, and a narrower one right after the refit for its yardstick band
    slots = [s for p in probes for s in ([(p, 1.0), ("band", 0.4)] if p == REFIT and band else [(p, 1.0)])]
    width = 0.8 / sum(w for _, w in slots)
    edges = np.cumsum([0.0] + [w * width for _, w in slots]) - 0.4
    offset = {name: (edges[i] + edges[i + 1]) / 2 for i, (name, _) in enumerate(slots)}
    per_class = table[table["probe"] == UNCHANGED].set_index("dataset")["n"] // 2
    few = {ds: int(k) for ds, k in per_class.items() if k < min_per_class}
    enough = np.array([ds not in few for ds in datasets])  # bars with too few answers get no interval
    for p in probes:
        rows = table[table["probe"] == p].set_index("dataset").reindex(datasets)
        x = np.arange(len(datasets)) + offset[p]
        err = np.vstack([rows["auroc"] - rows["lo"], rows["hi"] - rows["auroc"]])
        k_rnd = sorted({int(v) for v in rows.get("n_neurons", pd_nan(rows)) if np.isfinite(v)})
        each = (f", {noun(k_rnd[0], 'neuron')} each" if len(k_rnd) == 1 else
                f", {k_rnd[0]}-{k_rnd[-1]} neurons each" if k_rnd else "")
        label = {REFIT: f"{p}{each.replace(' each', '')}, point estimate (no interval)",
                 RANDOM: f"{p}{each}, mean of {_n_seeds(rows)} (bar: lowest-highest seed)",
                 UNCHANGED: f"{unchanged_label or p} (bar: 95% bootstrap CI)"}.get(p, p)
        bars = ax.bar(x, rows["auroc"], width, label=label)
        # error bars where there is an interval (the refit is one classifier: none) and enough
        # answers (with too few, an interval would only span most of 0-100)
        keep = np.isfinite(err).all(axis=0) & enough
        if keep.any():
            ax.errorbar(x[keep], rows["auroc"].to_numpy()[keep], yerr=err[:, keep], fmt="none",
                        ecolor="k", capsize=3)
        if p == REFIT and band:  # its like-for-like yardstick, beside the refit's bar
            lo, hi = rows["same_size_lo"].to_numpy(float), rows["same_size_hi"].to_numpy(float)
            ok = np.isfinite(lo) & np.isfinite(hi) & enough
            n = sorted({int(v) for v in rows.get("same_size_n", []) if np.isfinite(v)}) or ["the"]
            k = str(n[0]) if len(n) == 1 else f"{n[0]}-{n[-1]}"
            if ok.any():
                xb = np.arange(len(datasets))[ok] + offset["band"]
                ax.bar(xb, hi[ok] - lo[ok], 0.4 * width * 0.8, bottom=lo[ok], color="0.85",
                       edgecolor="0.4", hatch="..", lw=0.8,
                       label=f"range of {k} same-size random probes (the refit's yardstick)")
        for bar, ds, v in zip(bars, datasets, rows["auroc"]):
            if ds in few:
                bar.set_alpha(0.35), bar.set_hatch("//")
                if np.isfinite(v) and v < 3:  # a bar of (nearly) zero height: say its value
                    ax.text(bar.get_x() + bar.get_width() / 2, 1, f"{v:.0f}", ha="center",
                            va="bottom", fontsize=7, color="0.3")
    ax.axhline(50, color="k", lw=1, label="chance (50)")
    for ds, (value, label) in (paper_marks or {}).items():
        if ds in datasets:
            i = datasets.index(ds)
            ax.hlines(value, i - 0.45, i + 0.45, color="0.35", ls="--", lw=1.5, label=label)
    for k, c in (empty or {}).items():
        ax.text(datasets.index(k), 52, f"no balanced set:\n{c['faithful']} faithful,\n"
                f"{c['hallucinated']} hallucinated", ha="center", va="bottom", fontsize=8, color="0.3")
    ax.set_xticks(np.arange(len(datasets)), [f"{dataset_label(ds)}\n({few[ds]} per class:\ntoo few)"
                                             if ds in few else f"{dataset_label(ds)}\n({per_class[ds]} per class)"
                                             if ds in per_class.index else dataset_label(ds)
                                             for ds in datasets])
    ax.set_xlim(-0.5, len(datasets) - 0.5)
    ax.set_ylabel("AUROC on the base model (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)  # never over a bar
