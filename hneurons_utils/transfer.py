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
from .paper import dataset_label
from .stats import MIN_PER_CLASS

REFIT = "H-Neurons refit (L2)"
RANDOM = "random neurons (L2)"
UNCHANGED = "H-Neuron probe (unchanged)"


def transfer_table(probe: Any, sets: dict[str, Any], baselines: list[dict],
                   n_boot: int = 1000, seed: int = 0) -> Any:
    """Figure 4a's numbers: per dataset, the instruct model's probe applied unchanged to the
    base model's features (AUROC and accuracy with bootstrap 95% intervals), then the baselines
    (``detection.baseline_metrics`` rows). AUROC in %.

    Columns ``dataset, probe, n, auroc, lo, hi, sd, n_probes, interval, accuracy``. The
    H-Neuron refit is one classifier: a point estimate, ``lo``/``hi`` NaN (no bar). The random
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
                     "interval": "bootstrap 95% CI over answers", "accuracy": 100 * d["accuracy"]})
    base = pd.DataFrame(baselines)
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
                         "same_size_n": int(same.size)})
        rnd = g[g.kind.str.startswith("random")]
        if len(rnd):
            auc = 100 * rnd.auroc.to_numpy(dtype=float)
            sd = float(auc.std(ddof=1)) if len(auc) > 1 else float("nan")
            rows.append({"dataset": name, "probe": RANDOM, "n": int(rnd.n.iloc[0]),
                         "auroc": float(auc.mean()), "lo": float(auc.min()),
                         "hi": float(auc.max()), "sd": sd, "n_probes": len(auc),
                         "interval": f"mean, lowest-highest of {len(auc)} seeds",
                         "accuracy": 100 * float(rnd.accuracy.mean())})
    return pd.DataFrame(rows)


def transfer_reading(table: Any, n_min: dict[str, int] | None = None,
                     min_per_class: int = MIN_PER_CLASS,
                     span_auroc: dict[str, float] | None = None) -> list[dict]:
    """Per dataset of a :func:`transfer_table`: the unchanged probe's AUROC against chance and
    against the random-neuron probes' mean AUROC (the level chapter 3 uses), as a verdict
    (``detection.auroc_verdict``: the probe's interval must lie above it).

    ``n_min``: responses in the smaller class per dataset (default: half of each balanced set).
    ``span_auroc``: what span length alone reaches per dataset (%, ``detection.span_diagnostic``
    x 100): where the probe clears chance but not that, ``span_note`` says so.
    Each reading has ``random_mean`` and ``random_sd`` (over seeds; NaN without random probes).
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
        out.append({"dataset": name, "auroc": float(main.auroc), "lo": float(main.lo),
                    "hi": float(main.hi), "n": int(main.n), "n_min": k,
                    "random_mean": mean, "random_sd": sd, "refit": refit,
                    "refit_note": _refit_note(refit, float(main.lo), float(main.hi), k, min_per_class,
                                              same),
                    "verdict": auroc_verdict(float(main.lo), mean, k, min_per_class, chance=50.0)})
        span = (span_auroc or {}).get(name, float("nan"))
        out[-1]["span_note"] = (
            f"span length alone reaches {span:.1f} here, as much as the probe ({main.auroc:.1f}): "
            "its detection is not shown to be more than where the answer span sits"
            if out[-1]["verdict"].startswith("above chance") and np.isfinite(span)
            and span >= float(main.auroc) else "")
    return out


def _refit_note(refit: float, lo: float, hi: float, k: int, min_per_class: int,
                same: tuple[float, float, int] = (float("nan"), float("nan"), 0)) -> str:
    """A note where the H-Neurons refit (one classifier, no interval of its own) sits below 50
    by more than half the unchanged probe's interval on the same answers (the noise guide).

    ``same``: the lowest and highest AUROC of the random probes with as many neurons as the
    refit, and their number. Where one of them falls as low, so few neurons wander that far by
    chance and the note says so; only below all of them is it read as a hint that the neurons
    separate the base model's classes the other way round."""
    half = (hi - lo) / 2
    if k < min_per_class or not np.isfinite(refit) or not np.isfinite(half) or refit >= 50 - half:
        return ""
    head = (f"the H-Neurons refit on the instruct model's training rows reaches {refit:.1f}, below "
            f"50 by more than the probe's interval half-width ({half:.1f})")
    s_lo, s_hi, s_n = same
    if s_n and np.isfinite(s_lo) and s_lo <= refit:
        return (f"{head}, but random probes of as many neurons reach {s_lo:.1f} to {s_hi:.1f} "
                f"({s_n} seeds): so few neurons fall that far by chance, so this is no evidence "
                "of a reversed signal")
    beyond = (f", and below all {s_n} random probes of as many neurons ({s_lo:.1f} to {s_hi:.1f})"
              if s_n else "")
    return (f"{head}{beyond}: a hint (one classifier, no interval of its own) that on the base "
            "model these neurons separate the classes the other way round, which is not the "
            "paper's transfer")


def unscored_reading(empty: dict[str, dict], sizes: dict[str, int] | None = None,
                     min_per_class: int = MIN_PER_CLASS) -> list[str]:
    """One sentence per dataset with no balanced set, or one under ``min_per_class`` answers per
    class: how many answers of each class, why that cannot be scored (or concluded from), and
    how many questions would be needed. Datasets with enough of both classes are skipped.

    ``empty``: ``{dataset: {"faithful", "hallucinated", ...}}`` (:func:`base_eval_sets`; the
    ``counts`` of a small balanced set have the same keys);
    ``sizes``: questions asked per dataset. With ``f`` faithful answers of ``n``, the rate's
    95% upper bound is ``3/n`` when ``f = 0`` (rule of three), so at least
    ``min_per_class * n / 3`` questions are needed to expect ``min_per_class`` faithful
    answers even at that bound; with ``f > 0``, ``min_per_class * n / f`` at the observed rate.
    """
    out = []
    for name, c in empty.items():
        f, h = int(c.get("faithful", 0)), int(c.get("hallucinated", 0))
        n = f + h
        asked = (sizes or {}).get(name)
        asked_txt = f" of {asked} questions" if asked else ""
        small = "faithful" if f <= h else "hallucinated"
        k = min(f, h)
        if n == 0:
            out.append(f"{name}: not scored: no judged answer{asked_txt}.")
            continue
        if k >= min_per_class:
            continue  # enough of both classes: nothing to say here
        need = (int(np.ceil(min_per_class * n / 3)) if k == 0 else int(np.ceil(min_per_class * n / k)))
        how = ("at least" if k == 0 else "about")
        bound = (f"0 {small} in {n} puts the {small} rate below {100 * 3 / n:.0f}% (95% upper bound), so"
                 if k == 0 else f"at the observed {small} rate of {100 * k / n:.1f}%,")
        state = ("not scored" if k == 0 else f"too few to conclude (fewer than {min_per_class} per class)")
        why = "an AUROC needs both classes" if k == 0 else "the bootstrap interval is unreliable"
        out.append(f"{name}: {state}: {f} faithful and {h} hallucinated answers{asked_txt}; {why}. "
                   f"{bound[0].upper() + bound[1:]} {how} {need:,} "
                   f"questions would be needed for {min_per_class} {small} answers.")
    return out


def discussion(readings: list[dict], empty: dict[str, dict], drift: dict[str, dict],
               offline: bool, n_h_neurons: int, min_per_class: int = MIN_PER_CLASS,
               stability: dict | None = None, per_mille: float | None = None) -> list[str]:
    """The chapter's reading of its own results, one Markdown paragraph per finding.

    ``readings``: :func:`transfer_reading` (balanced sets); ``empty``: datasets without a
    balanced set; ``drift``: :func:`drift_tests` per variant (``"up + down (paper)"`` is read);
    ``offline``: whether the pair is the Gemma-3-270M twin; ``stability``:
    ``pipeline.selection_stability`` of the probe (optional); ``per_mille``: the H-Neurons'
    share of all neurons (optional; above 1 the drift paragraph says the set is not sparse).
    Every sentence that states an outcome is chosen by the numbers; nothing is pre-written for
    one outcome.
    """
    return [_transfer_paragraph(readings, empty, offline, n_h_neurons, min_per_class),
            _drift_paragraph(drift.get("up + down (paper)"), offline, n_h_neurons, stability,
                             per_mille)]


def _transfer_paragraph(readings: list[dict], empty: dict[str, dict], offline: bool,
                        n_h_neurons: int, min_per_class: int) -> str:
    """:func:`discussion`'s paragraph on Figure 4a: which datasets transfer, which do not."""
    shown = [r for r in readings if not r["verdict"].startswith("too few")]
    transfers = [r["dataset"] for r in shown if r["verdict"].startswith("above chance, and above")]
    unspecific = [r["dataset"] for r in shown if r["verdict"].startswith("above chance, but")
                  or r["verdict"] == "above chance"]
    chance = [r for r in shown if r["verdict"] == "not distinguishable from chance"]
    few = [r["dataset"] for r in readings if r["verdict"].startswith("too few")]
    parts = []
    if transfers:
        parts.append(f"the unchanged probe separates the base model's hallucinated from faithful "
                     f"answers above chance and above random neurons on {', '.join(transfers)}, as "
                     "the paper reports for its pairs")
    if unspecific:
        parts.append(f"on {', '.join(unspecific)} it is above chance but not above the random-neuron "
                     "probes: a signal is present in the base model, not shown to be specific to "
                     "the H-Neurons")
    for r in chance:
        parts.append(f"on {r['dataset']} its AUROC interval [{r['lo']:.1f}, {r['hi']:.1f}] "
                     f"({r['n_min']} answers in the smaller class) includes 50: this run neither "
                     f"shows transfer nor rules out an AUROC up to about {r['hi']:.0f}")
    parts += [f"on {r['dataset']}, {r['span_note']}" for r in shown if r.get("span_note")]
    parts += [f"on {r['dataset']}, {r['refit_note']}" for r in shown if r.get("refit_note")]
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
        text += (" Our tuning step moved the weights little, so the two models' activations are "
                 "close and transfer is an easier test than in the paper: it shows that this "
                 "tuning left the signal in place, not what vendor alignment does.")
    elif offline and chance and not transfers:
        text += (" Small drift makes transfer an easy test here, so tuning having created the "
                 "signal is not the only reading of this null result: a weak probe (few faithful "
                 "training answers; its held-out AUROC on the instruct model itself is printed "
                 "with the identification above) or too few evaluation answers would give it "
                 "too, and this run does not separate these explanations.")
    return text


def _drift_paragraph(t: dict | None, offline: bool, n_h_neurons: int,
                     stability: dict | None = None, per_mille: float | None = None) -> str:
    """:func:`discussion`'s paragraph on Figure 4b, from the paper's drift variant's tests."""
    from .pipeline import stability_kind

    if t is None:
        return (f"**Parameter drift (Figure 4b), as measured.** Not tested: {n_h_neurons} "
                "H-Neuron(s).")
    head = (f"**Parameter drift (Figure 4b), as measured.** The {t['n_h_neurons']} H-Neurons' mean "
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
        body = (" The bootstrap interval alone would read as the paper's opposite; the random "
                "sets show how far the mean of so few ranks wanders by chance.")
    elif direction == "more":
        body = (" This is the opposite of the paper's finding, in this pair: the H-Neurons are "
                "among the neurons tuning changed *more*. So this pair does not support "
                "\"inherited, not created\".")
        if offline:
            body += (" Our tuning data are trivia answers, the task the probe reads; a tuning step "
                     "that acts most on the neurons that carry such answers would produce this "
                     "(a hypothesis, not tested here). Whether vendor alignment, trained on broad "
                     "instructions, acts the same way cannot be read from this pair.")
    elif t.get("mean_rank_ci") is None:
        body = (" With so few neurons only the layer-matched random sets can judge the mean, and "
                "it sits where they fall: no evidence either way, in this pair.")
    else:
        body = (" The interval includes 0.5 or the test is not significant: no evidence either "
                "way, in this pair.")
    if t["n_h_neurons"] < 20:
        body += f" With {t['n_h_neurons']} H-Neurons the rank is an average of few neurons."
    if per_mille is not None and per_mille > 1:
        body += (f" The set is not sparse ({per_mille:.1f} per mille, above the paper's 1 per "
                 "mille): the ranks describe a broad selection of neurons that carry answers, not "
                 "the paper's few.")
    kind = stability_kind(stability)
    if kind != "too few":
        freq = np.asarray(stability["frequency"])
        body += (f" Refitted on {stability['n_resamples']} resamples of its training questions, the "
                 f"probe selects {int((freq >= 0.5).sum())} of these {freq.size} neurons again in at "
                 "least half of them: the ranks describe this draw of the set, which "
                 + {"reproduces": "largely reproduces.",
                    "core": "has a reproducible core but no fixed edge.",
                    "unstable": "does not reproduce as a whole."}[kind])
    elif t["n_h_neurons"] < 20:
        body += " Which neurons the L1 probe selects is itself uncertain at this sample size."
    return head + body


# ---------------------------------------------------------------- figure (Figure 4a)


def paper_transfer_marks(frame: Any, chance: float = 50.0) -> dict[str, tuple[float, str]]:
    """``{dataset: (bound, label)}`` for the paper's stated Figure 4a bounds above chance.

    ``frame``: ``paper.backward_auroc_frame()``; e.g. the Mistral pair's "above 86" on TriviaQA.
    """
    marks = {}
    for ds, g in frame[frame.auroc_above > chance].groupby("dataset", sort=False):
        top = g[g.auroc_above == g.auroc_above.max()]
        marks[ds] = (float(top.auroc_above.iloc[0]),
                     f"paper: {', '.join(top.model)} above {top.auroc_above.iloc[0]:g}")
    return marks


def plot_transfer(ax: Any, table: Any, paper_marks: dict[str, tuple[float, str]] | None = None,
                  empty: dict[str, dict] | None = None, min_per_class: int = MIN_PER_CLASS) -> None:
    """Figure 4a: AUROC (%) on the base model per dataset and probe, with error bars: the
    unchanged probe's bootstrap 95% interval, the random probes' lowest to highest seed; the
    refit, a single classifier, has none of its own: the grey bar on it spans the random probes
    of as many neurons (its yardstick, lowest to highest seed). No bar of a dataset with too
    few answers has one.

    ``table``: rows with ``dataset, probe, auroc, lo, hi`` (AUROC in %); ``paper_marks``: the
    paper's stated bounds per dataset (:func:`paper_transfer_marks`), drawn as dashed segments;
    ``empty``: datasets without a balanced set (``base_eval_sets``' counts), kept on the axis
    with their class counts instead of bars. A balanced set with fewer than ``min_per_class``
    answers per class (no verdict, as :func:`transfer_reading`) has faded, hatched bars and
    says so under its name.
    """
    probes = list(dict.fromkeys(table["probe"]))
    scored = list(dict.fromkeys(table["dataset"]))
    datasets = scored + [k for k in (empty or {}) if k not in scored]
    width = 0.8 / len(probes)
    per_class = table[table["probe"] == UNCHANGED].set_index("dataset")["n"] // 2
    few = {ds: int(k) for ds, k in per_class.items() if k < min_per_class}
    enough = np.array([ds not in few for ds in datasets])  # bars with too few answers get no interval
    for i, p in enumerate(probes):
        rows = table[table["probe"] == p].set_index("dataset").reindex(datasets)
        x = np.arange(len(datasets)) + (i - (len(probes) - 1) / 2) * width
        err = np.vstack([rows["auroc"] - rows["lo"], rows["hi"] - rows["auroc"]])
        label = {REFIT: f"{p}, point estimate", RANDOM: f"{p}, mean (bar: lowest-highest seed)",
                 UNCHANGED: f"{p} (bar: 95% bootstrap CI)"}.get(p, p)
        bars = ax.bar(x, rows["auroc"], width, label=label)
        # error bars where there is an interval (the refit is one classifier: none) and enough
        # answers (with too few, an interval would only span most of 0-100)
        keep = np.isfinite(err).all(axis=0) & enough
        if keep.any():
            ax.errorbar(x[keep], rows["auroc"].to_numpy()[keep], yerr=err[:, keep], fmt="none",
                        ecolor="k", capsize=3)
        if p == REFIT and "same_size_lo" in rows:  # its like-for-like yardstick, in grey
            lo, hi = rows["same_size_lo"].to_numpy(float), rows["same_size_hi"].to_numpy(float)
            ok = np.isfinite(lo) & np.isfinite(hi) & enough
            if ok.any():
                ax.errorbar(x[ok], (lo[ok] + hi[ok]) / 2, yerr=(hi[ok] - lo[ok]) / 2, fmt="none",
                            ecolor="0.45", elinewidth=2.5, capsize=5,
                            label="random probes of the refit's size (bar: lowest-highest seed)")
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
                                             if ds in few else dataset_label(ds) for ds in datasets])
    ax.set_xlim(-0.5, len(datasets) - 0.5)
    ax.set_ylabel("AUROC on the base model (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)  # never over a bar
