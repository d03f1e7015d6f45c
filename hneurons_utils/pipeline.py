"""The identification pipeline end to end (paper Sections 2 and 6.1).

:func:`identify` runs it on one model: sample TriviaQA answers, keep consistent questions,
balance the classes, compute CETT features, fit the L1 probe with a grid over C, and write
``probe.json``, ``split.json`` and ``results.json`` to the chapter's folder. Every step writes
to disk and resumes, so the origin chapter can rerun it on another model. The evaluation-set
records (:class:`EvalConfig`, :class:`EvalSet`) live here too; :mod:`detection` builds them.

On a CPU, sampling 10 answers for every question is out of reach, and a question whose greedy
answer is wrong is almost never answered correctly 10 times out of 10. With ``screen=True`` all
questions are first answered greedily; the 10 samples are drawn for every greedy-correct
question, then for greedy-incorrect ones in rounds until those alone give as many consistently
incorrect questions as there are consistently correct ones (:func:`sample_consistency`). The
consistency filter is then applied to the samples alone, with the paper's rule (all samples
agree) unless ``min_agreement`` is set lower: a greedy-correct question whose samples are
mostly wrong joins the hallucinated class (:func:`greedy_origin` counts how many do).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import random
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from . import plots
from .checks import positive_number
from .features import Example, FeatureConfig, FeatureSet, extract_features, load_features
from .files import code_digest, settings_hash, write_text_atomic
from .models import LoadedModel
from .probe import (DEFAULT_TOL, SKLEARN_TOL, FitCache, NeuronSet, Probe, chosen_row, eq4_objective,
                    fit_with, refit_kw, select_C, training_rows)
from .progress import progress
from .sampling import (GREEDY, PAPER_SAMPLING, EmptyBalancedSetError, GenConfig, balanced_sample,
                       collect_responses, consistency_split, greedy_labels, label_counts, read_jsonl,
                       representative_response)
from .stats import auroc
from .wording import are, noun, probe_name

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_CS = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)


@dataclass
class IdentifyConfig:
    """Settings of :func:`identify`; the defaults are the paper's where it states them."""

    n_samples: int = 10  # sampled answers per question (Section 6.1.1)
    min_agreement: float = 1.0  # share of samples that must agree (paper: 1.0, all 10)
    train_per_class: int | None = 1000  # cap per class of the balanced set (paper: 1,000)
    val_fraction: float = 0.2  # questions per class held out to choose C
    responses_per_question: int = 1  # 1: the most frequent response (official code)
    screen: bool = True  # greedy screening before the 10 samples (CPU budget)
    pool_factor: float = 1.5  # greedy-incorrect questions sampled per still-missing example
    screen_batch: int = 64  # questions per greedy generate call
    gen_batch: int = 8  # questions per sampling call (x n_samples sequences)
    max_new_tokens: int = 24
    stop_at_newline: bool = True  # answers end at their first newline
    label_scheme: str = "3-vs-1"
    penalty: str = "l1"
    standardize: bool = False  # the paper fits raw CETT means
    tol: float = DEFAULT_TOL  # the solver's stopping tolerance (tight: Eq. 4's minimum; scikit-learn's default is SKLEARN_TOL)
    solve: str = "full"  # "working-set": the same minimiser without copying every column (the paper's scale)
    Cs: tuple = DEFAULT_CS
    features: FeatureConfig = field(default_factory=FeatureConfig)
    seed: int = 0


@dataclass
class IdentificationResult:
    """What :func:`identify` produced (everything is also on disk in ``out_dir``)."""

    probe: Probe
    grid: list[dict]
    counts: dict
    split: dict  # {"train"|"val": {"keys": [...], "labels": [...]}}
    features: FeatureSet
    timings: dict
    out_dir: Path


def sampling_cfg(n: int, cfg) -> GenConfig:
    """The paper's sampling settings with ``n`` samples and ``cfg``'s answer length."""
    return replace(PAPER_SAMPLING, num_return_sequences=n, max_new_tokens=cfg.max_new_tokens,
                   stop_at_newline=cfg.stop_at_newline)


def screen_greedy(m: LoadedModel, items: Sequence, out_dir: Path, cfg: IdentifyConfig,
                  name: str = "triviaqa", judge: Callable | None = None) -> list[dict]:
    """Greedy answers to every question (``responses_<name>_greedy.jsonl``), judged."""
    gen = replace(GREEDY, max_new_tokens=cfg.max_new_tokens, stop_at_newline=cfg.stop_at_newline)
    return collect_responses(m, items, out_dir / f"responses_{name}_greedy.jsonl", gen,
                             judge, cfg.screen_batch, cfg.seed, desc="greedy screen")


def sample_consistency(m: LoadedModel, items: Sequence, greedy: Sequence[dict] | None,
                       out_dir: Path, cfg: IdentifyConfig, name: str = "triviaqa",
                       judge: Callable | None = None) -> list[dict]:
    """``n_samples`` answers for the candidates (``responses_<name>.jsonl``).

    Without screening every question is sampled. With it: all greedy-correct questions, then
    greedy-incorrect ones in rounds until as many *of those* are consistently incorrect as
    greedy-correct ones are consistently correct (capped by ``train_per_class``), or the pool
    runs out; greedy refusals are not sampled. Greedy-correct questions that turn out
    consistently incorrect come on top of that (:func:`greedy_origin`).
    """
    path, gen = out_dir / f"responses_{name}.jsonl", sampling_cfg(cfg.n_samples, cfg)
    run = lambda its, d: collect_responses(m, its, path, gen, judge, cfg.gen_batch,  # noqa: E731
                                           cfg.seed, desc=d)
    if greedy is None:
        return run(items, "sampling")
    by_qid = {it.qid: it for it in items}
    first = {"correct": [], "incorrect": []}
    for r in greedy:
        if r["labels"][0] in first:
            first[r["labels"][0]].append(by_qid[r["qid"]])
    records = run(first["correct"], "sampling greedy-correct")
    n_wrong = lambda recs: len(consistency_split(recs, cfg.min_agreement)["incorrect"])  # noqa: E731
    need = len(consistency_split(records, cfg.min_agreement)["correct"])
    need = min(need, cfg.train_per_class or need) or 1  # at least one round, to report yields
    pool, taken, wrong = first["incorrect"], 0, []
    while n_wrong(wrong) < need and taken < len(pool):
        missing = need - n_wrong(wrong)
        step = max(1, math.ceil(missing * cfg.pool_factor))
        wrong += run(pool[taken:taken + step], "sampling greedy-incorrect")
        taken += step
    return records + wrong


def split_examples(consistent: dict[str, list[dict]], cfg: IdentifyConfig
                   ) -> dict[str, list[Example]]:
    """Balanced train/validation examples from consistent questions, split by question.

    Label 1 = consistently hallucinated, 0 = consistently correct. Each question contributes
    ``responses_per_question`` distinct responses carrying the question's label, most
    frequent first (1: the official code's single representative response).
    """
    if not 0 <= cfg.val_fraction < 1:
        raise ValueError(f"VAL_FRACTION must be in [0, 1), got {cfg.val_fraction}: it is the share "
                         "of questions held out to choose C (0: none, C chosen on training answers)")
    hall, faith = balanced_sample(consistent["incorrect"], consistent["correct"],
                                  cfg.train_per_class, cfg.seed, what="TriviaQA training set")
    rng, out = random.Random(cfg.seed + 1), {"train": [], "val": []}
    for label, recs in ((1, hall), (0, faith)):
        recs = sorted(recs, key=lambda r: r["qid"])
        rng.shuffle(recs)
        n_val = max(1, round(cfg.val_fraction * len(recs))) if len(recs) > 1 and cfg.val_fraction else 0
        for part, chunk in (("val", recs[:n_val]), ("train", recs[n_val:])):
            out[part] += [ex for r in chunk for ex in examples_of(
                r, label, cfg.responses_per_question, ("correct", "incorrect")[label])]
    return out


def examples_of(r: dict, label: int, k: int, judged: str | None = None) -> list[Example]:
    """Up to ``k`` distinct responses of record ``r`` as :class:`Example` s, most frequent first;
    with ``judged``, only responses the judge labelled so (a 9/10-correct question gives its
    correct answers)."""
    pool = [x for x, lab in zip(r["responses"], r["labels"]) if judged in (None, lab)]
    first = representative_response(pool)
    rest = sorted(set(pool) - {first}, key=lambda s: (-pool.count(s), s))
    if not first.strip():
        raise ValueError(f"{r['qid']}: its most frequent response is empty; the judge should "
                         "call an empty response a refusal (judges.rule_judge does)")
    rest = [x for x in rest if x.strip()]
    return [Example(f"{r['qid']}#{i}", r["prompt"], resp, r["answers"], r["question"], label,
                    {"qid": r["qid"]}) for i, resp in enumerate([first, *rest][:k])]


def identify(m: LoadedModel, train_items: Sequence, cfg: IdentifyConfig, out_dir: str | Path,
             suppression_score: Callable[[Probe], float] | None = None,
             judge: Callable | None = None, suppression_questions: int = 0,
             suppression_method: str = "weights", suppression_term: str = "triviaqa"
             ) -> IdentificationResult:
    """Section 2 on one model: collect, filter, balance, featurise, fit; artefacts in ``out_dir``.

    ``suppression_score(probe)``, when given, is added to held-out accuracy when choosing C
    (the paper's criterion). Without it, ``suppression_questions > 0`` builds that score here
    (:func:`suppression_hook` with ``suppression_term``: by default the estimated TriviaQA
    accuracy with the candidate H-Neurons silenced, from up to that many questions the model
    answered correctly and as many it did not, :func:`suppression_set`); with neither, or no question known to be answered
    correctly, C is chosen on held-out accuracy alone (the grid rows' ``suppression`` is None,
    and ``results.json``'s ``c_criterion`` says so). ``judge``: ``(question, response, answers) -> label``, the rule
    judge by default. Each step resumes from its files (the probe fits from ``out_dir/fits``,
    :class:`probe.FitCache`; the suppression scores from ``out_dir/suppression``), so a rerun
    after an interruption redoes only what is missing.
    """
    out_dir, t = Path(out_dir), {}
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    greedy = screen_greedy(m, train_items, out_dir, cfg, judge=judge) if cfg.screen else None
    t["screen_s"], t0 = time.monotonic() - t0, time.monotonic()
    sampled = sample_consistency(m, train_items, greedy, out_dir, cfg, judge=judge)
    t["sampling_s"], t0 = time.monotonic() - t0, time.monotonic()
    consistent = consistency_split(sampled, cfg.min_agreement)
    counts = yield_counts(train_items, greedy, sampled, consistent)
    split = split_examples(consistent, cfg)
    fs = extract_features(m, split["train"] + split["val"], out_dir / "features_triviaqa.npz",
                          cfg.features)
    t["features_s"], t0 = time.monotonic() - t0, time.monotonic()
    if suppression_score is None and suppression_questions:
        suppression_score = suppression_hook(m, suppression_set(train_items, greedy, sampled,
                                                                suppression_questions),
                                             cfg.screen_batch, suppression_method, suppression_term,
                                             store=out_dir / "suppression")
    probe, grid = fit_identification(m, fs, split, cfg, suppression_score, FitCache(out_dir / "fits"))
    t["probe_s"] = time.monotonic() - t0
    return write_identification(out_dir, probe, grid, counts, split, fs, t, suppression_score)


def fit_identification(m: LoadedModel, fs: FeatureSet, split: dict[str, list[Example]],
                       cfg: IdentifyConfig, suppression_score: Callable | None = None,
                       fits: FitCache | None = None) -> tuple[Probe, list[dict]]:
    """The probe of Eq. 4 with C chosen on the held-out questions (Section 6.1.3); ``fits``: a
    :class:`probe.FitCache` to reuse and keep the grid's fits.

    Both splits need faithful and hallucinated answers: with one label only, the 3-vs-1 rows
    would still hold both classes (answer tokens against the other tokens) and a probe would
    be fitted that tells answers from other text, not hallucinations; a one-label validation
    split has no AUROC to choose C by. Either raises :class:`EmptyBalancedSetError`."""
    for name in ("train", "val"):
        if name == "val" and not split.get(name):
            continue  # no held-out question: C is chosen on the training answers
        labels = Counter(int(e.label) for e in split.get(name) or [])
        if labels[0] == 0 or labels[1] == 0:
            raise EmptyBalancedSetError(
                f"the {name!r} split has {labels[0]} faithful and {labels[1]} hallucinated "
                "answers; the probe needs both (screen more questions, or hold fewer out "
                "with a smaller VAL_FRACTION)")
    X, y = scheme_rows(fs, split["train"], cfg.label_scheme)
    Xv, yv = answer_matrix(fs, split["val"] or split["train"])  # no held-out question: training
    return select_C(X, y, Xv, yv, cfg.Cs, suppression_score, fits, penalty=cfg.penalty,
                    standardize=cfg.standardize, seed=cfg.seed, tol=cfg.tol, solve=cfg.solve,
                    n_layers=m.adapter.n_layers,
                    n_neurons=m.adapter.n_neurons, model_id=m.name,
                    label_scheme=cfg.label_scheme, config=_jsonable_cfg(cfg))


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Overlap of two neuron sets (flat indices): shared over all; 1 when both are empty."""
    union = np.union1d(a, b).size
    return float(np.intersect1d(a, b).size / union) if union else 1.0


def selection_stability(fs: FeatureSet, examples: Sequence[Example], probe: Probe,
                        n_resamples: int = 20, seed: int = 0, fits: FitCache | None = None) -> dict:
    """How reproducible the H-Neuron set is: the probe refitted on bootstrap resamples of its
    training questions (an extension; the paper reports one fit).

    Each resample draws, per label, as many questions as there are, with replacement (a
    question brings all its responses), and refits with the probe's C, label scheme,
    penalty and standardisation. L1 picks one of several correlated neurons almost at random,
    so a neuron the resamples rarely pick is weak evidence for that neuron in particular.
    Returns ``h_neurons`` (the probe's, flat indices), ``frequency`` (share of resamples that
    give each of them a positive weight), ``sizes`` (H-Neurons per resample), ``jaccard``
    (overlap of each resample's set with the probe's) and ``others_half`` (neurons outside the
    probe's set that at least half of the resamples select). ``fits``: a
    :class:`probe.FitCache`, so that a rerun refits only the resamples not yet fitted (the
    resamples are drawn again from ``seed``, the same ones).
    """
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    by_q: dict[str, list[Example]] = {}
    for e in examples:
        by_q.setdefault(e.meta.get("qid", e.key.split("#")[0]), []).append(e)
    groups = {lab: [q for q, ex in by_q.items() if ex[0].label == lab] for lab in (0, 1)}
    if not groups[0] or not groups[1]:
        raise ValueError("selection_stability needs training questions of both labels")
    rng, h = np.random.default_rng(seed), probe.h_neurons().flat
    counts, sizes, overlaps = {}, [], []
    for _ in progress(range(n_resamples), "stability", "resamples"):
        qs = [q for lab in (0, 1) for q in rng.choice(groups[lab], len(groups[lab]))]
        X, y = scheme_rows(fs, [e for q in qs for e in by_q[q]], probe.label_scheme)
        fit = fit_with(fits, X, y, probe.C, **refit_kw(probe, seed=seed)).h_neurons().flat
        for j in fit:
            counts[int(j)] = counts.get(int(j), 0) + 1
        sizes.append(int(fit.size))
        overlaps.append(jaccard(fit, h))
    hset = set(h.tolist())
    return {"n_resamples": n_resamples, "h_neurons": h.tolist(),
            "frequency": [counts.get(int(j), 0) / n_resamples for j in h],
            "sizes": sizes, "jaccard": overlaps,
            "others_half": sum(1 for j, c in counts.items() if j not in hset and c >= n_resamples / 2)}


def float16_nudge(X: np.ndarray, share: float, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """``X`` (float16-representable values, as stored features are) with a random ``share`` of
    its entries moved one float16 step up or down (zeros only up: CETT is never negative); and
    how many entries moved. What another machine's arithmetic does to stored features: a
    feature that differs by a tiny amount is stored identically unless it sits by the edge
    between two float16 values, and then it is stored one step away."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must lie in [0, 1], got {share}")
    x16 = np.asarray(X).astype(np.float16)
    if not np.array_equal(x16.astype(np.float32), np.asarray(X, dtype=np.float32)):
        raise ValueError("X holds values float16 cannot store exactly: pass stored features "
                         "(float16), not recomputed ones")
    moved = rng.random(x16.shape) < share
    up = (rng.random(x16.shape) < 0.5) | (x16 <= 0)
    toward = np.where(up, np.float16(np.inf), np.float16(-np.inf)).astype(np.float16)
    out = np.where(moved, np.nextafter(x16, toward), x16)
    return out.astype(np.float32), int(moved.sum())


def rounding_stability(fs: FeatureSet, examples: Sequence[Example], probe: Probe,
                       shares: Sequence[float] = (1e-4, 1e-3, 1e-2), draws: int = 5,
                       seed: int = 0, fits: FitCache | None = None) -> dict:
    """How much the H-Neuron set depends on the last bit of its stored features (an extension:
    one way two machines' builds of the same answers can differ).

    The probe is refitted, with its C and recipe, on its own training rows (``examples``) with
    a ``share`` of the feature entries moved one float16 step (:func:`float16_nudge`), ``draws``
    times per share; share 0 (the rows as stored) is refitted once, a check that the fit itself
    is deterministic. Returns ``h_neurons`` (the probe's set's size) and ``rows``: per refit the
    ``share``, ``draw``, ``moved`` entries, ``size`` of its H-Neuron set and ``jaccard`` overlap
    with the probe's set. ``fits``: a :class:`probe.FitCache` (each draw is seeded, so a rerun
    reads the refits it already made); the refit of the rows as stored never comes from it,
    since its key is the probe's own fit's and the check is that fitting again gives the same."""
    if draws < 1:
        raise ValueError(f"draws must be at least 1, got {draws}")
    if not shares or any(not 0 < s <= 1 for s in shares):
        raise ValueError(f"shares must be one or more numbers in (0, 1], got {list(shares)}")
    X, y = scheme_rows(fs, list(examples), probe.label_scheme)
    h = probe.h_neurons().flat
    rows = []
    todo = [(0.0, 0)] + [(float(s), d) for s in shares for d in range(draws)]
    for share, d in progress(todo, "rounding", "refits"):
        Xs, moved = (X, 0) if share == 0 else float16_nudge(X, share, np.random.default_rng([seed, d, int(share * 1e9)]))
        fit = fit_with(None if share == 0 else fits, Xs, y, probe.C,
                       **refit_kw(probe, seed=probe.config.get("seed", seed))).h_neurons().flat
        rows.append({"share": share, "draw": d, "moved": moved, "size": int(fit.size),
                     "jaccard": jaccard(fit, h)})
    return {"h_neurons": int(h.size), "entries": int(X.size), "draws": draws, "rows": rows}


def rounding_table(r: dict) -> "pd.DataFrame":
    """:func:`rounding_stability` per share: refits, mean entries moved, how many refits gave
    another set, the lowest Jaccard overlap with the probe's set, and the set sizes."""
    import pandas as pd

    rows = pd.DataFrame(r["rows"])
    return rows.groupby("share").agg(
        refits=("draw", "size"), entries_moved=("moved", "mean"),
        sets_changed=("jaccard", lambda j: int((j < 1).sum())), jaccard_min=("jaccard", "min"),
        size_min=("size", "min"), size_max=("size", "max")).round(2)


def rounding_cell(r: dict) -> str:
    """:func:`rounding_stability` in one clause (the scorecard's): per share, how many refits
    gave another set."""
    rs = [x for x in r["rows"] if x["share"] > 0]
    shares = sorted({x["share"] for x in rs})
    counts = [f"{sum(x['jaccard'] < 1 for x in rs if x['share'] == s)}/{sum(x['share'] == s for x in rs)}"
              for s in shares]
    return (f"refitted with one float16 step on {', '.join(f'{100 * s:g}%' for s in shares)} of the "
            f"stored features: {', '.join(counts)} refits give another set")


def rounding_changes(r: dict | None) -> bool:
    """Whether any nudged refit of :func:`rounding_stability` gave another H-Neuron set."""
    return bool(r) and any(x["jaccard"] < 1 for x in r.get("rows", []) if x["share"] > 0)


def rounding_reading(r: dict) -> str:
    """A reading of :func:`rounding_stability`, every clause chosen by its numbers."""
    rows = r["rows"]
    base = [x for x in rows if x["share"] == 0]
    text = ""
    if base and base[0]["jaccard"] < 1:
        text += (f"Refitted on the stored rows unchanged, the probe already gives another set "
                 f"(Jaccard {base[0]['jaccard']:.2f}): the fit itself is not deterministic here. ")
    parts = []
    for share in sorted({x["share"] for x in rows if x["share"] > 0}):
        rs = [x for x in rows if x["share"] == share]
        changed = [x for x in rs if x["jaccard"] < 1]
        jac = sorted({f"{x['jaccard']:.2f}" for x in changed}, key=float)
        span = "-".join(dict.fromkeys(jac[:1] + jac[-1:]))  # "0.60", or "0.50-0.70"
        parts.append(f"with {100 * share:g}% of the entries moved, {len(changed)} of {len(rs)} refits "
                     f"give another set" + (f" (Jaccard {span} with the probe's)" if changed else ""))
    text += ("One float16 step on a random share of the training features (the last bit of what "
             "is stored): " + "; ".join(parts) + ". ")
    if rounding_changes(r):
        return text + ("So which neurons pass the L1 threshold can turn on rounding: two machines "
                       "whose arithmetic differs in the last digits can report different sets "
                       "from the same answers, and a set's members are evidence only as far as "
                       "they come back here and under resampling above.")
    return text + "No refit moved the set: it does not turn on the last bit of its features."


def tolerance_check(fs: FeatureSet, split: dict[str, list[Example]], probe: Probe,
                    other_tol: float = SKLEARN_TOL, fits: FitCache | None = None) -> dict:
    """Does the solver's stopping tolerance change the probe? It is refitted with the same C and
    rows at ``other_tol`` (default: scikit-learn's, which a reproduction gets unless it sets one;
    we found none stated in the paper). Returns, for the probe and the refit (``probe``, ``refit``):
    Eq. 4's ``objective`` on the training rows (:func:`eq4_objective`; the lower is nearer the
    minimum), the solver's ``tol`` and ``n_iter``, ``n_h_neurons``, ``per_mille``,
    ``n_nonzero`` and held-out ``val_auroc`` and ``val_accuracy`` (on the training answers when
    nothing is held out: ``held_out`` False); and ``jaccard``, the overlap of their H-Neuron
    sets. ``fits``: a :class:`probe.FitCache` for the refit."""
    positive_number(other_tol, "other_tol")  # before the rows are built
    X, y = scheme_rows(fs, split["train"], probe.label_scheme)
    refit = fit_with(fits, X, y, probe.C, **refit_kw(probe, tol=other_tol))
    return _two_fits(fs, split, probe, refit, X, y)


def _two_fits(fs: FeatureSet, split: dict[str, list[Example]], probe: Probe, refit: Probe,
              X: np.ndarray, y: np.ndarray) -> dict:
    """:func:`tolerance_check`'s and :func:`solve_check`'s comparison of ``probe`` with ``refit``
    (both fitted on the training rows ``X, y``)."""
    from .stats import accuracy

    Xv, yv = answer_matrix(fs, split.get("val") or split["train"])

    def describe(p: Probe) -> dict:
        h, s = p.h_neurons(), p.decision_function(Xv)
        return {"objective": eq4_objective(p, X, y), "tol": p.config.get("tol", DEFAULT_TOL),
                "solve": p.config.get("solve", "full"),
                "n_iter": p.config.get("n_iter"), "n_h_neurons": int(h.size), "per_mille": h.per_mille,
                "n_nonzero": int(p.flat.size), "val_auroc": auroc(yv, s),
                "val_accuracy": accuracy(yv, (s > 0).astype(int))}

    return {"C": probe.C, "held_out": bool(split.get("val")), "n_rows": int(len(y)),
            "max_iter": refit.config.get("max_iter"), "probe": describe(probe), "refit": describe(refit),
            "jaccard": jaccard(probe.h_neurons().flat, refit.h_neurons().flat)}


def solve_check(fs: FeatureSet, split: dict[str, list[Example]], probe: Probe,
                fits: FitCache | None = None) -> dict:
    """Does the route to Eq. 4's minimum change the probe? The probe is refitted, same C, rows and
    tolerance, the other way (:data:`probe.SOLVES`): all columns at once (``"full"``) or a
    working set grown until every column left out meets the minimum's condition
    (``"working-set"``, what the paper's scale needs). Returns :func:`tolerance_check`'s
    comparison plus the refit's seconds (``refit_s``: the fit's own, also when ``fits``, a
    :class:`probe.FitCache`, reads it from an earlier run), its working set (``ws_rounds``,
    ``ws_size``, ``n_neurons``) and the largest weight difference relative to the largest weight
    (``max_weight_diff``); or, when a full fit would not fit in this machine's memory,
    ``{"skipped": why}``."""
    other = "full" if probe.config.get("solve", "full") == "working-set" else "working-set"
    X, y = scheme_rows(fs, split["train"], probe.label_scheme)
    try:
        refit = fit_with(fits, X, y, probe.C, **refit_kw(probe, solve=other))
    except MemoryError as e:  # the full route at a scale it cannot hold
        return {"skipped": str(e)}
    r = _two_fits(fs, split, probe, refit, X, y)
    ws = refit if other == "working-set" else probe
    a, b = (np.zeros(probe.n_layers * probe.n_neurons) for _ in range(2))
    a[probe.flat], b[refit.flat] = probe.weights, refit.weights
    scale = max(np.abs(a).max(initial=0.0), np.abs(b).max(initial=0.0)) or 1.0
    return dict(r, refit_s=refit.config["fit_s"], ws_rounds=ws.config.get("ws_rounds"),
                ws_size=ws.config.get("ws_size"), n_neurons=probe.n_layers * probe.n_neurons,
                max_weight_diff=float(np.abs(a - b).max(initial=0.0) / scale))


def solve_agrees(r: dict) -> bool:
    """Whether :func:`solve_check`'s two routes reached the same minimiser: Eq. 4's objective
    within :data:`OBJECTIVE_GAP` and the same H-Neurons."""
    return abs(objective_gap(r)) <= OBJECTIVE_GAP and r["jaccard"] == 1


def solve_cell(r: dict) -> str:
    """:func:`solve_check` in one clause (the scorecard's)."""
    q = r["refit"]
    if solve_agrees(r):
        return f"the {q['solve']} route to Eq. 4's minimum gives the same set"
    rel = 100 * _higher_fit(r)[2]
    return (f"refit by the {q['solve']} route: {noun(q['n_h_neurons'], 'H-Neuron')}, overlap (Jaccard) "
            f"{r['jaccard']:.2f}, objectives {rel:.2g}% apart")


def solve_reading(r: dict) -> str:
    """A reading of :func:`solve_check`, every clause chosen by its numbers."""
    if "skipped" in r:
        return f"Not compared: {r['skipped']}."
    p, q, gap = r["probe"], r["refit"], objective_gap(r)
    ws = "the probe" if p["solve"] == "working-set" else "the refit"
    text = (f"At the same C = {r['C']:g} and tolerance {p['tol']:g}, the probe ({p['solve']}) has Eq. 4's "
            f"objective (times C, as liblinear scales it) {p['objective']:.6g}, the refit ({q['solve']}) {q['objective']:.6g}; "
            f"{ws}'s working set grew to {r['ws_size']:,} of {r['n_neurons']:,} neurons in "
            f"{noun(r['ws_rounds'], 'round')}. ")
    if solve_agrees(r):
        same = ("" if p.get("n_nonzero") is None or p.get("n_nonzero") == q.get("n_nonzero") else
                f" (non-zero weights {p['n_nonzero']} and {q['n_nonzero']}: a negative weight at the "
                "edge of the minimum comes and goes)")
        return text + (f"Both routes reach the same {'minimum' if same else 'minimiser'}: the same "
                       f"{noun(p['n_h_neurons'], 'H-Neuron')}"
                       f"{same}, weights within {100 * r['max_weight_diff']:.2g}% of the largest. At a scale "
                       "where the full fit does not fit in memory, `PROBE_SOLVE = \"working-set\"` "
                       "fits this probe.")
    if abs(gap) <= OBJECTIVE_GAP:
        return text + (f"The objectives agree to within {100 * OBJECTIVE_GAP:g}%, but the H-Neuron sets "
                       f"differ ({p['n_h_neurons']} and {q['n_h_neurons']}, Jaccard {r['jaccard']:.2f}): "
                       "the minimum is flat there, and neurons at its edge come and go with the "
                       "solver's path.")
    hi, lo, rel = _higher_fit(r)
    return text + (f"The {r[hi]['solve']} fit stops {100 * rel:.2g}% above the {r[lo]['solve']} fit, "
                   f"nearer the minimum ({p['n_h_neurons']} and {q['n_h_neurons']} H-Neurons, Jaccard "
                   f"{r['jaccard']:.2f}): set `PROBE_SOLVE` to the {r[lo]['solve']} route, or tighten "
                   "`PROBE_TOL`.")


OBJECTIVE_GAP = 0.001  # relative objective gap under which two fits are both at the minimum


def objective_gap(r: dict) -> float:
    """How far above the refit's objective the probe's is, relative to the refit's (negative:
    the probe's is the lower, nearer the minimum)."""
    return (r["probe"]["objective"] - r["refit"]["objective"]) / abs(r["refit"]["objective"])


def _higher_fit(r: dict) -> tuple[str, str, float]:
    """Which of :func:`tolerance_check`'s two fits has the higher objective (``"probe"`` or
    ``"refit"``), which the lower, and the higher's excess relative to the lower's."""
    hi, lo = ("probe", "refit") if objective_gap(r) > 0 else ("refit", "probe")
    return hi, lo, (r[hi]["objective"] - r[lo]["objective"]) / abs(r[lo]["objective"])


def probe_short_of_minimum(r: dict | None) -> bool:
    """Whether :func:`tolerance_check` found a fit nearer Eq. 4's minimum than the probe."""
    return bool(r) and objective_gap(r) > OBJECTIVE_GAP


def tolerance_table(r: dict, by: str = "tol") -> "pd.DataFrame":
    """:func:`tolerance_check`'s two fits side by side (tolerances written out, not rounded away);
    ``by="solve"``: :func:`solve_check`'s, with the route in the first column."""
    import pandas as pd

    cols = [by, "objective", "n_iter", "n_h_neurons", "per_mille", "n_nonzero", "val_auroc", "val_accuracy"]
    df = pd.DataFrame([r["probe"], r["refit"]], index=["the probe", "refit"])[cols]
    return df.round(4).assign(**({"tol": [f"{t:g}" for t in df.tol]} if by == "tol" else {}))


def tolerance_cell(r: dict) -> str:
    """:func:`tolerance_check` in one clause (the scorecard's)."""
    p, q, gap = r["probe"], r["refit"], objective_gap(r)
    rel = 100 * _higher_fit(r)[2]
    where = (f"the same objective (within {100 * OBJECTIVE_GAP:g}%)" if abs(gap) <= OBJECTIVE_GAP else
             f"Eq. 4's objective {rel:.0f}% above the probe's" if gap < 0 else
             f"the probe's objective {rel:.0f}% above the refit's")
    return (f"refit at solver tolerance {q['tol']:g} (the probe: {p['tol']:g}): "
            f"{q['n_h_neurons']} H-Neurons ({q['per_mille']:.2f} per mille), {where}")


def tolerance_reading(r: dict) -> str:
    """A reading of :func:`tolerance_check`, every clause chosen by its numbers."""
    p, q, gap = r["probe"], r["refit"], objective_gap(r)
    where = "held-out" if r["held_out"] else "training-answer"
    fits = {"probe": f"the probe (tolerance {p['tol']:g})", "refit": f"the refit (tolerance {q['tol']:g})"}
    capped = [k for k, f in (("probe", p), ("refit", q))
              if f.get("n_iter") and r.get("max_iter") and f["n_iter"] >= r["max_iter"]]
    text = (f"At the same C = {r['C']:g}, Eq. 4's objective (times C, as liblinear scales it) is "
            f"{p['objective']:.4g} for {fits['probe']} "
            f"and {q['objective']:.4g} for {fits['refit']}"
            + (f" ({' and '.join(fits[k] for k in capped)} stopped at the solver's cap of "
               f"{r['max_iter']} iterations)" if capped else "") + ". ")
    if abs(gap) <= OBJECTIVE_GAP:
        text += f"Both are at the minimum to within {100 * OBJECTIVE_GAP:g}%"
        text += (", with the same H-Neurons. " if r["jaccard"] == 1 else
                 f", yet their H-Neuron sets differ (Jaccard {r['jaccard']:.2f}): the minimum is "
                 "flat, and which neurons it keeps is not pinned down by these rows. ")
    else:
        hi, lo, rel = _higher_fit(r)
        text += (f"{fits[hi][0].upper() + fits[hi][1:]} stops {100 * rel:.0f}% above "
                 f"{fits[lo]}: it is where the solver stopped, not Eq. 4's minimiser. ")
    text += (f"The probe has {p['n_h_neurons']} H-Neurons ({p['per_mille']:.2f} per mille; "
             f"{p['n_nonzero']} non-zero weights), the refit {q['n_h_neurons']} ({q['per_mille']:.2f} "
             f"per mille; {q['n_nonzero']}), overlap (Jaccard) {r['jaccard']:.2f}; {where} AUROC "
             f"{p['val_auroc']:.2f} against {q['val_auroc']:.2f}"
             + (f", {where} accuracy {p['val_accuracy']:.3f} against {q['val_accuracy']:.3f} (the C "
                "criterion's term (1))" if p.get("val_accuracy") is not None and q.get("val_accuracy") is not None
                else "") + ".")
    if gap > OBJECTIVE_GAP:
        text += (" The chapters after this one use the probe as fitted; set `PROBE_TOL` to the "
                 "refit's tolerance to use the fit nearer the minimum throughout.")
    elif gap < -OBJECTIVE_GAP and q["n_nonzero"] > p["n_nonzero"]:
        text += (f" An L1 fit stopped early keeps weights the minimiser would set to zero, so its "
                 f"count of H-Neurons measures the solver as much as the model (Eq. 4 on "
                 f"{r['n_rows']} rows has a minimiser with no more than about {r['n_rows']} non-zero "
                 f"weights, however many neurons there are).")
    return text


STABILITY_MIN_RESAMPLES = 10  # fewer refits: no verdict on the set's stability


def stability_kind(r: dict | None) -> str:
    """What :func:`selection_stability` shows, in one word: ``"too few"`` (under
    :data:`STABILITY_MIN_RESAMPLES` refits, or no H-Neuron), ``"reproduces"`` (mean Jaccard
    overlap at least 0.5), ``"core"`` (the refits' sets differ, but on average at least 70%
    of the probe's H-Neurons come back: the members are stable, the set's edge is not) or
    ``"unstable"``."""
    if not r or not r.get("frequency") or r["n_resamples"] < STABILITY_MIN_RESAMPLES:
        return "too few"
    if np.mean(r["jaccard"]) >= 0.5:
        return "reproduces"
    return "core" if np.mean(r["frequency"]) >= 0.7 else "unstable"


def stability_reading(r: dict) -> str:
    """A reading of :func:`selection_stability`, every clause chosen by its numbers."""
    freq, sizes, jac = np.array(r["frequency"]), np.array(r["sizes"]), np.array(r["jaccard"])
    if not freq.size:
        return "The probe has no H-Neuron, so there is no set to test."
    n = r["n_resamples"]
    members = (f"The one H-Neuron is selected in {100 * freq[0]:.0f}% of the resamples; " if freq.size == 1
               else f"{(k := int((freq >= 0.8).sum()))} of the {freq.size} {are(k)} selected in at least "
                    f"80% of the resamples, {int((freq < 0.5).sum())} in fewer than half; ")
    text = (f"Refitted on {noun(n, 'bootstrap resample')} of the training questions, the probe selects "
            f"{sizes.mean():.1f} H-Neurons on average ({sizes.min()}-{sizes.max()}); their overlap "
            f"with this chapter's {'one' if freq.size == 1 else freq.size} (Jaccard) averages {jac.mean():.2f}. "
            + members +
            f"{noun(o := int(r['others_half']), 'neuron')} outside the set "
            f"{are(o)} selected in at least half. ")
    kind = stability_kind(r)
    if kind == "too few":
        return text + "Too few resamples to say how stable the set is."
    if kind == "core":
        return text + ("Most of its members come back in most refits, but the refits add or drop "
                       "other neurons: a core of the set reproduces, its edge (how many neurons "
                       "pass the L1 threshold, and which) does not.")
    if kind == "unstable":
        return text + ("The set as a whole does not reproduce at this sample size: read any one "
                       "H-Neuron (the steered neurons of chapter 4, the drift ranks of chapter 5) "
                       "as one draw among correlated neurons, not as a fixed unit.")
    return text + "The set largely reproduces under resampling of the training questions."


def stability_clause(out_dir: str | Path) -> str:
    """A clause for later chapters on how reproducible chapter 2's H-Neuron set is (read from
    ``out_dir/stability.json``); empty when that check was not run."""
    from .summary import read_results  # the results reader (clear errors); summary imports us

    r = read_results(Path(out_dir) / "stability.json")
    freq = np.asarray((r or {}).get("frequency", []), dtype=float)
    if not freq.size:
        return ""
    tail = {"reproduces": "; the set largely reproduces",
            "too few": ""}.get(stability_kind(r), ", so a steered set is partly one draw among "
                                                  "correlated neurons")
    k = int((freq >= 0.5).sum())
    return (f" ({k} of them {are(k)} selected again in at least half of "
            f"chapter 2's {r['n_resamples']} bootstrap refits{tail})")


def answer_matrix(fs: FeatureSet, examples: Sequence[Example]) -> tuple[np.ndarray, np.ndarray]:
    """Answer-token features ``[n, layers*neurons]`` and labels of ``examples``."""
    y = np.array([e.label for e in examples], dtype=np.int64)
    return fs.flat("answer", [e.key for e in examples]), y


def scheme_rows(fs: FeatureSet, examples: Sequence[Example], scheme: str
                ) -> tuple[np.ndarray, np.ndarray]:
    """The probe's training rows for ``scheme`` (see :func:`probe.training_rows`)."""
    X, y = answer_matrix(fs, examples)
    other = fs.flat("other", [e.key for e in examples]) if scheme == "3-vs-1" else None
    return training_rows(X, other, y, scheme)


def grid_reading(grid: Sequence[dict]) -> str:
    """What the C grid shows (Section 6.1.3's trade-off), read from its rows: held-out accuracy
    and, when measured, accuracy with the candidate H-Neurons silenced, and where C landed."""
    g = sorted(grid, key=lambda r: r["C"])
    best = max(g, key=lambda r: r["val_accuracy"])
    out = (f"held-out accuracy goes from {g[0]['val_accuracy']:.2f} at C = {g[0]['C']:g} to "
           f"{g[-1]['val_accuracy']:.2f} at C = {g[-1]['C']:g} (highest {best['val_accuracy']:.2f}, "
           f"first reached at C = {best['C']:g}, with {best['n_h_neurons']} H-Neurons)")
    if all(r.get("suppression") is not None for r in g):
        est = all(r.get("unknown_right") is not None for r in g)
        key = "known_kept" if all(r.get("known_kept") is not None for r in g) else "suppression"
        low = min(g, key=lambda r: r[key])
        low_txt = ("" if low is g[-1] or low[key] == g[-1][key] else
                   f", lowest {low[key]:.2f} at C = {low['C']:g}")
        what = ("the share of known answers kept" if key == "known_kept" else "accuracy")
        out += (f"; {what} with the H-Neurons silenced goes from "
                f"{g[0][key]:.2f} to {g[-1][key]:.2f}{low_txt} as C admits up to "
                f"{g[-1]['n_h_neurons']} of them")
        if est:
            out += (f" (the estimated TriviaQA accuracy, the score's term (2), from "
                    f"{g[0]['suppression']:.3f} to {g[-1]['suppression']:.3f})")
    chosen = [r for r in g if r.get("chosen")]
    if chosen:
        c = chosen[0]
        out += (f"; the criterion chose C = {c['C']:g} ({c['n_h_neurons']} H-Neurons, held-out "
                f"accuracy {c['val_accuracy']:.2f})")
    tie, edge = grid_tie_text(grid), grid_edge_warning(grid)
    margin = grid_margin_text(grid)
    return (out + "." + (f" {margin}" if margin else "") + (f" {tie}" if tie else "")
            + (f" {edge}" if edge else ""))


def grid_runner_up(grid: Sequence[dict], close: float = 0.01) -> tuple[dict, dict] | None:
    """``(chosen, runner-up)`` of a C grid whose chosen row's selection score beats the best
    lower-scoring row (the smaller C on a tie) by less than ``close``; None where no score was
    measured or the margin is wider."""
    scored = [r for r in grid if r.get("score") is not None]
    chosen = [r for r in scored if r.get("chosen")]
    rest = [r for r in scored if not r.get("chosen") and r["score"] < chosen[0]["score"]] if chosen else []
    if not rest:
        return None
    c, r = chosen[0], max(rest, key=lambda x: (x["score"], -x["C"]))
    return (c, r) if c["score"] - r["score"] < close else None


def grid_margin_text(grid: Sequence[dict], close: float = 0.01) -> str:
    """Where the chosen C's selection score beats the runner-up's by less than ``close``
    (:func:`grid_runner_up`): the margin, and which term decided it (a chosen C with the lower
    held-out accuracy won on the suppression term alone); "" otherwise."""
    pair = grid_runner_up(grid, close)
    if pair is None:
        return ""
    c, r = pair
    margin = c["score"] - r["score"]
    text = (f"The choice is close: C = {c['C']:g} scores {c['score']:.4f} against {r['score']:.4f} "
            f"at C = {r['C']:g}, a margin of {margin:.4f}")
    acc_c, acc_r = c["val_accuracy"], r["val_accuracy"]
    term_c, term_r = c["score"] - acc_c, r["score"] - acc_r
    if acc_c < acc_r:
        text += (f"; C = {c['C']:g} has the lower held-out accuracy ({acc_c:.3f} against {acc_r:.3f}) "
                 f"and wins on the suppression term alone ({term_c:.3f} against {term_r:.3f}"
                 + (f"; other questions answered right with the neurons silenced: "
                    f"{c['unknown_right']:.3f} against {r['unknown_right']:.3f}"
                    if c.get("unknown_right") is not None and r.get("unknown_right") is not None
                    and c["unknown_right"] != r["unknown_right"] else "")
                 + "), so a question or two of that term decided it")
    elif acc_c > acc_r and term_c < term_r:
        text += (f"; C = {c['C']:g} wins on held-out accuracy ({acc_c:.3f} against {acc_r:.3f}) "
                 f"while its suppression term is lower ({term_c:.3f} against {term_r:.3f})")
    return text + ": another draw of questions could reverse it."


def ratio_verdicts(h_per_mille: float, nonzero_per_mille: float, limit: float = 1.0) -> str:
    """Both of our per-mille ratios against the paper's claim of fewer than ``limit`` per mille:
    the H-Neurons (positive weights) and every neuron the probe reads (non-zero weights, closer
    to Table 1's caption, "selected for classifiers")."""
    verdict = lambda v: f"{'below' if v < limit else 'not below'} {limit:g} per mille"  # noqa: E731
    return (f"against the paper's 'less than {limit:g} per mille': the H-Neurons alone, {h_per_mille:.3f} "
            f"per mille, are {verdict(h_per_mille)}; every neuron the probe reads (non-zero weights, "
            f"what Table 1's caption calls neurons 'selected for classifiers'), {nonzero_per_mille:.3f} "
            f"per mille, {verdict(nonzero_per_mille)}.")


def grid_tie_text(grid: Sequence[dict]) -> str:
    """Which C values tied with the chosen one on the selection score (exactly, as
    :func:`probe.select_C` compares them) and which tie-break decided: the higher held-out
    AUROC, then fewer H-Neurons, then the order of the grid (the first listed wins). "" when
    nothing tied (or the rows carry no ``score``)."""
    chosen = next((r for r in grid if r.get("chosen")), None)
    if chosen is None or chosen.get("score") is None:
        return ""
    tied = [r for r in grid if r is not chosen and r.get("score") == chosen["score"]]
    if not tied:
        return ""
    auc = lambda r: float(np.nan_to_num(r.get("val_auroc", np.nan), nan=0.0))  # noqa: E731  as select_C
    on_auc = [r for r in tied if auc(r) < auc(chosen)]
    on_size = [r for r in tied if auc(r) == auc(chosen) and r["n_h_neurons"] > chosen["n_h_neurons"]]
    on_order = [r for r in tied if r not in on_auc and r not in on_size]
    cs = lambda rows: " and ".join(f"C = {r['C']:g}" for r in rows)  # noqa: E731
    parts = []
    if on_auc:
        parts.append(f"the higher held-out AUROC decided against {cs(on_auc)} ({auc(chosen):.3f} against "
                     + ", ".join(f"{auc(r):.3f}" for r in on_auc) + ")")
    if on_size:
        parts.append(f"with the AUROC tied too, fewer H-Neurons decided against {cs(on_size)} "
                     f"({chosen['n_h_neurons']} against "
                     + ", ".join(str(r["n_h_neurons"]) for r in on_size) + ")")
    if on_order:
        parts.append(f"{cs(on_order)} tied on every criterion, and the one listed first in the grid won")
    return (f"C = {chosen['C']:g} tied on the selection score ({chosen['score']:.3f}) with {cs(tied)}: "
            + "; ".join(parts) + ".")


def grid_edge_warning(grid: Sequence[dict]) -> str:
    """A warning when the chosen C is the smallest or largest value of the grid: the score may
    rise further beyond it, so the grid should be extended. "" otherwise (or with one C)."""
    side = grid_edge(grid)
    if side is None:
        return ""
    c = next(r for r in grid if r.get("chosen"))
    beyond = "smaller" if side == "smallest" else "larger"
    return (f"Warning: the chosen C = {c['C']:g} is the {side} value of the grid, so a {beyond} C "
            "might score higher: extend C_GRID to see.")


def grid_edge(grid: Sequence[dict]) -> str | None:
    """"smallest" or "largest" where the chosen C is that end of a grid of two or more values,
    else None."""
    g = sorted(grid, key=lambda r: r["C"])
    c = next((r for r in g if r.get("chosen")), None)
    if c is None or len(g) < 2 or c not in (g[0], g[-1]):
        return None
    return "smallest" if c is g[0] else "largest"


def yield_counts(items: Sequence, greedy: Sequence[dict] | None, sampled: Sequence[dict],
                 consistent: dict[str, list[dict]]) -> dict:
    """How many questions survive each step (the yields the chapter reports); the paper's
    strict filter (every sample agrees) is counted too when a looser one was used."""
    out = {"questions": len(items)}
    if greedy is not None:
        out["greedy"] = {"answered": len(greedy), **label_counts(greedy)}
    out["sampled"] = {"questions": len(sampled), "samples": sum(len(r["responses"]) for r in sampled),
                      **label_counts(sampled)}
    out["consistent"] = {k: len(v) for k, v in consistent.items()}
    out["consistent_all_samples"] = {k: len(v) for k, v in consistency_split(sampled).items()}
    if greedy is not None:
        out["greedy_origin"] = greedy_origin(consistent, greedy)
        out["sampled_by_greedy"] = _origin_counts([r["qid"] for r in sampled], greedy_labels(greedy))
    return out


GREEDY_LABELS = ("correct", "incorrect", "refusal")


def _origin_counts(qids: Sequence[str], greedy_label: dict[str, str]) -> dict[str, int]:
    """How many of ``qids`` got each greedy label (``"not screened"``: no greedy answer, only
    listed when there is one)."""
    c = Counter(greedy_label.get(q, "not screened") for q in qids)
    out = {k: c.get(k, 0) for k in GREEDY_LABELS}
    if c.get("not screened"):
        out["not screened"] = c["not screened"]
    return out


def greedy_origin(consistent: dict[str, list[dict]], greedy: Sequence[dict] | None
                  ) -> dict[str, dict[str, int]] | None:
    """What the greedy screen said about the questions of each kept class.

    ``consistent``: :func:`sampling.consistency_split`'s output. Returns ``{"faithful": ...,
    "hallucinated": ...}`` (the consistently correct and consistently incorrect questions),
    each a count of their questions per greedy label (correct / incorrect / refusal). Labels
    come from the samples alone (as in the paper, which looks at no greedy answer), so a
    greedy-correct question whose samples are mostly wrong counts as hallucinated. None when
    no screening ran (``greedy`` None): no question has a greedy answer.
    """
    if greedy is None:
        return None
    lab = greedy_labels(greedy)
    return {name: _origin_counts([r["qid"] for r in consistent[cls]], lab)
            for name, cls in (("faithful", "correct"), ("hallucinated", "incorrect"))}


def greedy_origin_text(origin: dict[str, dict[str, int]] | None,
                       sampled_by_greedy: dict[str, int] | None = None,
                       greedy_counts: dict[str, int] | None = None) -> str:
    """:func:`greedy_origin` in words: how many of the hallucinated class's questions the model
    answered correctly when greedy (the class then mixes unknown facts with facts the model
    holds but loses when sampling). With ``sampled_by_greedy`` (questions sampled per greedy
    label, :func:`yield_counts`) and ``greedy_counts`` (questions per greedy label), also the
    rates *within* each group: the class's mix is set by the sampling budget (every
    greedy-correct question is sampled, greedy-incorrect ones only until the classes match),
    so only those rates describe the model. "" without screening or without a hallucinated
    question."""
    h = (origin or {}).get("hallucinated") or {}
    n = sum(h.values())
    if not n:
        return ""
    k = h.get("correct", 0)
    out = (f"{k} of {n} questions of the hallucinated class ({100 * k / n:.0f}%) were answered "
           "correctly greedily: " + ("none is a fact the model holds but loses when sampling."
                                     if not k else
                                     "the class mixes facts the model does not know with facts it "
                                     "knows but loses at temperature 1.0."))
    if not sampled_by_greedy:
        return out + (" How many of each kind it holds depends on which questions were sampled, "
                      "not only on the model." if k else "")
    faithful = (origin or {}).get("faithful") or {}
    rates = []
    for g in ("correct", "incorrect"):
        m = sampled_by_greedy.get(g, 0)
        if not m:
            continue
        of = (f"all {m}" if greedy_counts and greedy_counts.get(g) == m else
              f"{m} of {greedy_counts[g]:,}" if greedy_counts and g in greedy_counts else str(m))
        c, w = faithful.get(g, 0), h.get(g, 0)
        rates.append(f"of the greedy-{g} questions ({of} sampled), {c} ({100 * c / m:.0f}%) are "
                     f"consistently correct and {w} ({100 * w / m:.0f}%) consistently incorrect")
    return (out + " Within each group: " + "; ".join(rates) + ". The class's mix of the two kinds "
            "comes from the sampling budget (every greedy-correct question is sampled, greedy-incorrect "
            "ones only until they match the faithful class), so read the rates within each group, "
            "not the mix.")


def hand_label_draw_text(rows: Sequence[dict], sampled: dict[str, int] | None = None) -> str:
    """How the hand-labelled answers ``rows`` (``judges.load_answer_labels`` of one dataset) were
    drawn, read from the rows themselves: how many answers and questions (a question labelled
    more than once is named), and the mix of the rule's verdicts (``rule``, kept equal to
    today's rule by a test) beside that of this run's samples (``sampled``: label counts, optional). A mix
    far from the run's shows a draw made per rule label, not at random: precision per judge
    label holds for it, recall and label shares do not carry over to the run's answers."""
    if not rows:
        return ""
    by_q = Counter(r["qid"] for r in rows)
    again = sorted(q for q, c in by_q.items() if c > 1)
    rule = Counter(r.get("rule") for r in rows)
    kinds = ("correct", "incorrect", "refusal")
    text = (f"The {len(rows)} hand-labelled answers come from {noun(len(by_q), 'question')}"
            + (f" ({', '.join(again)} more than once)" if again else " (one answer each)")
            + f"; the rule calls {rule['correct']} of them correct, {rule['incorrect']} incorrect and "
              f"{rule['refusal']} refusals (the file's `rule` field)")
    total = sum((sampled or {}).get(k, 0) for k in kinds)
    if not total:
        return text + "."
    pct = lambda n, d: f"{100 * n / d:.0f}%" if 100 * n / d >= 10 else f"{100 * n / d:.1f}%"  # noqa: E731
    text += (" (" + "; ".join(f"{k}: {pct(rule[k], len(rows))} of them against {pct(sampled.get(k, 0), total)} "
                              "of this run's samples" for k in kinds) + ")")
    ratio = [(rule[k] / len(rows)) / max(sampled.get(k, 0) / total, 1e-9) for k in kinds]
    if max(ratio) <= 2 and min(ratio) >= 0.5:
        return text + ": about the mix of this run's samples."
    return text + (". That mix is not the samples': the answers were drawn per rule label, not at "
                   "random, so the precision of each judge label below holds for this draw, but "
                   "the recall figures ('of the N so by hand it finds K') and the shares of the "
                   "labels are the draw's, not those of this run's answers.")


def question_of(e: Example) -> str:
    """The question id of an example: its ``meta["qid"]``, else its key up to the sample index."""
    return e.meta.get("qid", e.key.rsplit("#", 1)[0])


def split_greedy_origin(split: dict[str, list[Example]], greedy: Sequence[dict] | None
                        ) -> dict[str, dict[str, dict[str, int]]] | None:
    """:func:`greedy_origin` for the balanced split of :func:`split_examples`: per part
    (``"train"``, ``"val"``) and class (``"hallucinated"``, ``"faithful"``), the greedy labels
    of its distinct questions (an example's ``meta["qid"]``, else its key before ``#``; a
    question with several responses counts once). None without screening."""
    if greedy is None:
        return None
    lab = greedy_labels(greedy)
    out = {}
    for part, exs in split.items():
        qids = {name: sorted({question_of(e) for e in exs if e.label == y})
                for name, y in (("hallucinated", 1), ("faithful", 0))}
        out[part] = {name: _origin_counts(q, lab) for name, q in qids.items()}
    return out


def span_length_check(probe: Probe, fs: FeatureSet, split: dict[str, list[Example]]) -> dict:
    """Answer-span length alone (more answer tokens = "hallucinated") and the probe, both as
    detectors on the same held-out responses (``split["val"]``), by AUROC.

    The default span rule gives faithful answers their gold alias and hallucinated ones the
    content rule's (longer) span, so span length can separate the classes by itself; this puts
    that yardstick beside the probe on the set that chose C. ``held_out`` False (no question
    held out): both AUROCs are None, nothing is compared. An AUROC is NaN when the held-out
    responses hold one class only.
    """
    held = split.get("val") or []
    if not held:
        return {"held_out": False, "hallucinated": 0, "faithful": 0,
                "span_length_auroc": None, "probe_auroc": None}
    X, y = answer_matrix(fs, held)
    n = fs.n_tokens[fs.index([e.key for e in held]), 0]
    return {"held_out": True, "hallucinated": int(y.sum()), "faithful": int((y == 0).sum()),
            "span_length_auroc": auroc(y, n), "probe_auroc": auroc(y, probe.decision_function(X)),
            **_signs(probe)}


def _signs(probe: Probe) -> dict:
    """How many neurons the probe weighs positively (H-Neurons) and negatively."""
    return {"n_h_neurons": int((probe.weights > 0).sum()), "n_negative": int((probe.weights < 0).sum())}


def probe_parts_check(probe: Probe, fs: FeatureSet, examples: Sequence[Example],
                      held_out: bool = True) -> dict:
    """The probe and its two parts as detectors of hallucinated vs faithful answers on
    ``examples`` (answer-token features), by AUROC: the whole probe, its H-Neuron part alone
    (score ``X[:, pos] @ w[pos]``) and its negative-weight part alone (``X[:, neg] @ w[neg]``;
    :meth:`probe.Probe.part_scores`). An L1 probe on the 3-vs-1 labels can detect mostly through
    neurons that fire *less* on hallucinated answers; this says how much of its detection the
    H-Neurons carry. A part with no neuron has AUROC None; NaN when ``examples`` hold one class.
    ``held_out``: whether ``examples`` are held-out responses (False: the training ones)."""
    X, y = answer_matrix(fs, examples)
    s = probe.part_scores(X)
    sign = _signs(probe)
    return {"held_out": bool(held_out), "hallucinated": int(y.sum()), "faithful": int((y == 0).sum()),
            **sign, "probe_auroc": auroc(y, s["full"]),
            "h_neurons_auroc": auroc(y, s["positive"]) if sign["n_h_neurons"] else None,
            "negative_auroc": auroc(y, s["negative"]) if sign["n_negative"] else None}


PARTS_MARGIN = 0.02  # AUROC by which one part of the probe must beat the other to "carry" its detection


def negative_part_leads(r: dict, margin: float = PARTS_MARGIN) -> bool:
    """Whether the probe's negative-weight part detects better than its H-Neurons (by more than
    ``margin``), from :func:`probe_parts_check`'s ``r`` (False where a part is missing)."""
    h, n = r.get("h_neurons_auroc"), r.get("negative_auroc")
    return h is not None and n is not None and bool(np.isfinite(h) and np.isfinite(n)) and n > h + margin


def probe_parts_reading(r: dict, margin: float = PARTS_MARGIN) -> str:
    """:func:`probe_parts_check` in words: the whole probe's AUROC, each part's alone, and which
    part carries more of the detection (by more than ``margin``)."""
    where = (f"the {r['hallucinated']} hallucinated and {r['faithful']} faithful "
             + ("held-out responses (which chose C, slightly in the probe's favour)" if r["held_out"]
                else "training responses (no question was held out)"))
    f = lambda v: "none (no such neuron)" if v is None else f"{v:.3f}"  # noqa: E731
    p, h, n = r["probe_auroc"], r["h_neurons_auroc"], r["negative_auroc"]
    if not np.isfinite(p):
        return f"On {where}: one class only, so no AUROC of the probe or of its parts."
    out = (f"On {where}, {probe_name(r['n_h_neurons'], r['n_negative'])} separates hallucinated "
           f"from faithful answers with an AUROC of {p:.3f}; its H-Neuron part alone (the score "
           f"summed over the H-Neurons only) reaches {f(h)}, its negative-weight part alone {f(n)}")
    if h is None or n is None or not (np.isfinite(h) and np.isfinite(n)):
        return out + "."
    if negative_part_leads(r, margin):
        return out + (": most of the probe's detection comes from its negative-weight neurons (they "
                      "vote 'not a hallucinated answer span'), not from the H-Neurons, so a number "
                      "quoted for the whole probe is not a number for the H-Neurons.")
    if h > n + margin:
        return out + ": the H-Neurons carry more of the probe's detection than its negative-weight neurons."
    return out + f": the two parts detect about equally well (within {margin:g})."


def single_vs_parts_reading(r: dict, names: Sequence[str], single: Sequence[float],
                            margin: float = 0.02) -> str:
    """The best single H-Neuron's AUROC (``single``: each H-Neuron's own AUROC, hallucinated vs
    faithful answers, on the responses of :func:`probe_parts_check` ``r``; ``names`` beside it)
    against the H-Neurons read together with the probe's weights (``r["h_neurons_auroc"]``), the
    like-for-like comparison; the whole probe also reads the negative-weight neurons."""
    a = np.asarray(single, dtype=float)
    h = r.get("h_neurons_auroc")
    if not a.size or np.isnan(a).all() or h is None or not np.isfinite(h):
        return ""
    i = int(np.nanargmax(a))
    best, name = float(a[i]), names[i]
    head = (f"The best single H-Neuron, {name}, reaches {best:.3f} on the same responses; the "
            f"{noun(r['n_h_neurons'], 'H-Neuron')} read together (the probe's H-Neuron part) reach {h:.3f}")
    if h > best + margin:
        tail = ": together they detect better than any one of them alone"
    elif best > h + margin:
        tail = (f": one H-Neuron alone beats their weighted sum here (the best of {a.size} values on "
                "the same few responses, so favoured by its selection)")
    else:
        tail = ": about the same"
    return head + tail + (f"; the whole probe, with its {noun(r['n_negative'], 'negative-weight neuron')}, "
                          f"reaches {r['probe_auroc']:.3f}." if r["n_negative"] else ".")


def span_length_reading(r: dict, margin: float = 0.02) -> str:
    """:func:`span_length_check` in one sentence: both AUROCs, and whether the probe beats span
    length alone (by more than ``margin``), falls below it, or is within ``margin`` of it."""
    if not r["held_out"]:
        return ("No question was held out, so span length alone and the probe are not compared "
                "on held-out responses (the span diagnostic of Step 4 covers all responses).")
    s, p = r["span_length_auroc"], r["probe_auroc"]
    head = (f"On the same {r['hallucinated']} hallucinated and {r['faithful']} faithful held-out "
            "responses, answer-span length alone (more answer tokens = 'hallucinated') reaches "
            f"an AUROC of {s:.2f} and {probe_name(r.get('n_h_neurons'), r.get('n_negative'))} "
            f"{p:.2f} (these responses chose C, which favours the probe slightly)")
    if not (np.isfinite(s) and np.isfinite(p)):
        return head + ": the held-out responses hold one class only, so nothing is compared."
    if p > s + margin:
        return head + (": the probe beats span length alone here, which does not show that it "
                       "ignores the spans (chapter 3's span control tests that).")
    if s > p + margin:
        return head + (": the probe does not beat span length alone; on these responses how many "
                       "tokens the answer span has separates the classes better than the probe.")
    return head + (f": within {margin:g} of each other, so the probe does not beat span length "
                   "alone.")


@dataclass
class SuppressionSet:
    """The questions of C selection's term (2) (Section 6.1.3: the model's TriviaQA accuracy
    with the candidate H-Neurons silenced), in two strata: up to ``n`` questions the model
    answers correctly (``known``) and up to ``n`` it does not (``unknown``: wrong or refused),
    each in ``items`` order, and ``share``, the fraction of the ``judged`` questions answered
    correctly (the weight of the known stratum)."""

    known: list
    unknown: list
    share: float
    judged: int
    screened: bool


def suppression_set(items: Sequence, greedy: Sequence[dict] | None, sampled: Sequence[dict],
                    n: int) -> SuppressionSet:
    """Split the judged questions into answered correctly or not: by the greedy screen when it
    ran, otherwise by the samples (correct when more than half are). Up to ``n`` of each, in
    ``items`` order (the loaders' seeded order, so a random draw within each stratum)."""
    if greedy is not None:
        right = {r["qid"]: r["labels"][0] == "correct" for r in greedy}
    else:
        right = {r["qid"]: 2 * r["labels"].count("correct") > len(r["labels"]) for r in sampled}
    asked = [it for it in items if it.qid in right]
    known = [it for it in asked if right[it.qid]]
    unknown = [it for it in asked if not right[it.qid]]
    return SuppressionSet(known[:n], unknown[:n], len(known) / len(asked) if asked else 0.0,
                          len(asked), greedy is not None)


def known_correct(items: Sequence, greedy: Sequence[dict] | None, sampled: Sequence[dict],
                  n: int) -> list:
    """Up to ``n`` questions the model answers correctly (:func:`suppression_set`'s known
    stratum): greedy-correct ones when screening ran, otherwise those whose samples are mostly
    correct (more than half); in ``items`` order."""
    return suppression_set(items, greedy, sampled, n).known


def known_correct_phrase(n: int, screened: bool) -> str:
    """How :func:`known_correct` chose its ``n`` questions, as a noun phrase."""
    return (f"{noun(n, 'question')} the model answered correctly in the greedy screen" if screened else
            f"{noun(n, 'question')} whose sampled answers were mostly correct (no screening ran)")


def term_questions(qs: "SuppressionSet | Sequence", term: str | None = None) -> "SuppressionSet | list":
    """The questions a suppression term is measured on, one rule for the hook, its notes and
    the caveats: ``term="triviaqa"`` needs a :class:`SuppressionSet` (both strata and the known
    share); ``term="known"`` keeps its known stratum alone (a plain list); ``term=None`` reads
    the term from the type (a set: ``"triviaqa"``, a list: ``"known"``)."""
    if term is not None and term not in SUPPRESSION_TERMS:
        raise ValueError(f"unknown suppression term {term!r}: choose one of {sorted(SUPPRESSION_TERMS)} "
                         "(SUPPRESSION_TERM)")
    if isinstance(qs, SuppressionSet):
        return qs.known if term == "known" else qs
    if term == "triviaqa" and qs:
        raise ValueError("the 'triviaqa' suppression term needs a SuppressionSet (pipeline."
                         "suppression_set: both strata and the known share); a plain list "
                         "of questions can only give term='known'")
    return list(qs)


def suppression_term_notes(qs: SuppressionSet | Sequence, screened: bool,
                           split: dict[str, list[Example]], answer_tokens: int,
                           judge_name: str | None = None, term: str | None = None) -> str:
    """How this chapter's suppression term of C selection is measured, and how it differs from
    the paper's (Section 6.1.3: the model's TriviaQA accuracy with the H-Neurons suppressed),
    as Markdown bullets generated from the run: its strata (``qs``, :func:`suppression_set`;
    a plain list: the known questions alone, the ``"known"`` term), how many of them are
    questions of the balanced ``split``, its judge, its answer length
    (``steering.SHORT_GREEDY`` against the chapter's
    ``answer_tokens``) and what one answer weighs. "" without known questions (no term).
    ``judge_name``: the judge of the chapter's labels (None: the rule judge that ignores
    aliases the question itself contains); ``term``: as :func:`term_questions`."""
    from .steering import SHORT_GREEDY

    qs = term_questions(qs, term)
    est = isinstance(qs, SuppressionSet)
    known = qs.known if est else qs  # term_questions gives a list
    if not known:
        return ""
    unknown = qs.unknown if est else []
    qids = {question_of(e) for part in split.values() for e in part}
    shared = sum(it.qid in qids for it in [*known, *unknown])
    cap = SHORT_GREEDY.max_new_tokens
    if est:
        first = [
            "Our term (2) estimates the paper's quantity, the model's TriviaQA accuracy with the "
            "H-Neurons silenced, from two strata of the "
            + ("greedy screen" if screened else "sampled questions (no screening ran)") + ":",
            f"- the screen's share of questions answered correctly, p = {qs.share:.3f} "
            f"(of {qs.judged:,}), weighs the accuracy on {noun(len(known), 'known question')} "
            f"(answered correctly) and 1 - p the accuracy on {noun(len(unknown), 'other question')} "
            "(answered wrongly or refused), both with the candidate H-Neurons silenced; with "
            "nothing silenced it is about p (plus the few other questions the check's shorter, "
            "plainly judged answers happen to get right), so on a model that knows "
            f"{qs.share:.0%} of TriviaQA, losing every known answer costs the score "
            f"{qs.share:.3f}, and held-out accuracy decides most of the choice (as it would in the "
            "paper's sum on such a model);",
            "- it assumes the sampled strata stand for all TriviaQA questions, and the screen's "
            "training questions for the test questions the paper would use;"]
    else:
        first = [
            "Our term (2) is an analogue of the paper's, not the same measurement "
            "(`SUPPRESSION_TERM = \"known\"`):",
            f"- its questions are {known_correct_phrase(len(known), screened)}, so with nothing "
            "silenced it is close to 1.0 by construction; the paper's term is the model's TriviaQA "
            "accuracy, on questions it may or may not know, so this one weighs a lost answer "
            "1/p times as much as the paper's would (p: the share of questions the model knows);"]
    step = (qs.share / len(known)) if est else 1 / len(known)
    last = f"- one lost known answer moves the term by {step:.3f}"
    if est and unknown:
        gain = (1 - qs.share) / len(unknown)
        last += f", one other question answered right with the neurons silenced by {gain:.3f}"
        if gain > step:
            n_val = len(split.get("val", ()))
            last += (": the larger step, so a question or two that silencing happens to get right "
                     "can decide between C values of equal held-out accuracy"
                     + (f", and even outweigh a held-out response (one moves term (1) by 1/{n_val} "
                        f"= {1 / n_val:.3f})" if n_val and gain > 1 / n_val else ""))
    return "\n".join(first + [
        f"- {shared} of its {len(known) + len(unknown)} questions are questions of the balanced set "
        "the probe is trained and validated on;",
        "- answers are greedy, judged by the plain rule judge (alias match, `judges.rule_judge`: "
        + ("unlike the chapter's labels, an alias the question itself contains counts"
           if judge_name is None else f"the chapter's labels come from {judge_name}")
        + f") and cut at {cap} new tokens "
        f"(`steering.SHORT_GREEDY`)" + (f", while the chapter's answers may run to {answer_tokens};"
                                        if answer_tokens != cap else ", as the chapter's answers are;"),
        last + "."])


def identification_caveats(split: dict[str, list[Example]], counts: dict, min_agreement: float,
                           n_samples: int, keep: SuppressionSet | Sequence, screened: bool,
                           judge_name: str | None = None, term: str | None = None) -> str:
    """What the chapter's numbers can and cannot carry, as Markdown bullets generated from the
    run: how many questions were held out per class (and what one of them weighs), the
    suppression term's questions (``keep`` and ``term``: as :func:`term_questions`), whether
    the paper's all-agree consistency rule was loosened (with how many faithful questions the
    strict rule keeps), and the judges (``judge_name`` None: the rule judge)."""
    held = split.get("val") or []
    q = {y: len({question_of(e) for e in held if e.label == y}) for y in (1, 0)}
    r = {y: sum(e.label == y for e in held) for y in (1, 0)}
    if held:
        step = 1 / max(q[0] + q[1], 1)
        first = (f"- the held-out set that chose *C* holds {q[1]} hallucinated and {q[0]} faithful "
                 f"questions ({r[1]} and {r[0]} responses; responses to one question are not "
                 f"independent), so one question's responses move held-out accuracy by about {step:.3f}")
        first += (": neighbouring *C* values are within noise of each other, and the count of H-Neurons "
                  "is an order of magnitude, not a measurement;" if step > 0.01 else ";")
    else:
        first = "- no question was held out: *C* was chosen on the training answers themselves;"
    keep = term_questions(keep, term)
    known = keep.known if isinstance(keep, SuppressionSet) else keep
    if isinstance(keep, SuppressionSet) and known:
        sup = (f"- the suppression term estimates TriviaQA accuracy from "
               f"{noun(len(known), 'known question')} and {noun(len(keep.unknown), 'other question')} "
               "(how, and how it differs from the paper's, is listed under the C grid);")
    elif known:
        sup = (f"- the suppression term is greedy accuracy on {known_correct_phrase(len(known), screened)} "
               "(its differences from the paper's term are listed under the C grid);")
    else:
        sup = "- no suppression term was measured: *C* was chosen on held-out accuracy alone;"
    strict = (counts.get("consistent_all_samples") or {}).get("correct")
    if min_agreement < 1:
        rule = (f"- the paper's consistency rule (all {n_samples} samples agree) is loosened to "
                f"tau = {min_agreement:g}" + (f"; on these samples the strict rule keeps "
                                               f"{noun(strict, 'faithful question')}" if strict is not None else "")
                + ";")
    else:
        rule = f"- the paper's consistency rule is used (all {n_samples} samples agree);"
    judged = ("correctness is judged by alias match (the rule judge), not by GPT-4o"
              if judge_name is None else f"correctness is judged by {judge_name}")
    return "\n".join([first, sup, rule, f"- answer tokens are found by rule rather than by GPT-4o, and {judged};"])


SUPPRESSION_TERMS = {
    "triviaqa": "held-out accuracy + estimated TriviaQA accuracy with the H-Neurons silenced",
    "known": "held-out accuracy + accuracy on known-correct questions with the H-Neurons silenced",
}


def suppression_hook(m: LoadedModel, questions: SuppressionSet | Sequence, batch_size: int = 64,
                     method: str = "weights", term: str = "triviaqa",
                     store: str | Path | None = None) -> Callable[[Probe], dict] | None:
    """The paper's second C-selection term (Sec. 6.1.3): ``probe -> {"score": ..., parts}``,
    greedy QA accuracy with the probe's H-Neurons silenced (``steering.suppression_accuracy``).

    ``term="triviaqa"`` (needs a :class:`SuppressionSet`) estimates the paper's quantity, the
    model's TriviaQA accuracy with the neurons silenced, by strata: ``share x known_kept +
    (1 - share) x unknown_right``, where ``known_kept`` is the accuracy on the known stratum
    and ``unknown_right`` on the unknown one. Silencing mostly costs known answers, so the
    known stratum gives the measurement its resolution, and weighing it by ``share`` keeps the
    term on the paper's scale: for a model that answers 6 % of TriviaQA, losing every known
    answer costs 0.06 of the score, not 1.0. ``term="known"`` scores ``known_kept`` alone (an
    analogue on a 0-1 scale whatever the model knows; earlier versions of this book used it).
    A plain list of questions is a known stratum alone (``term="known"``). None when there is
    no known question: the term cannot be measured. ``method="nnsight"`` for a model on NDIF.
    Probes that select the same H-Neurons (often several small C values) are scored once. The
    hook's ``criterion`` names the selection rule (:data:`SUPPRESSION_TERMS`). ``store``: a
    folder where each score is written as soon as it is measured (:func:`suppression_store`),
    so that a rerun after an interruption measures only the neuron sets not yet scored.
    """
    questions = term_questions(questions, term)
    if not isinstance(questions, SuppressionSet):
        if not questions:
            return None
        questions = SuppressionSet(questions, [], 1.0, len(questions), False)
    if not questions.known:
        return None
    from .steering import suppression_accuracy

    seen: dict[str, dict] = {}  # C values that select the same neurons: one run
    path = None if store is None else suppression_store(m, questions, batch_size, method, term, store)
    if path is not None and path.exists():
        seen.update(_read_scores(path))

    def accuracy(h: NeuronSet, items: Sequence) -> float:
        return suppression_accuracy(m, h, items, alpha=0.0, batch_size=min(len(items), batch_size),
                                    method=method)

    def score(p: Probe) -> dict:
        h = p.h_neurons()
        key = hashlib.blake2b(np.asarray(h.flat, dtype=np.int64).tobytes(), digest_size=16).hexdigest()
        if key not in seen:
            parts = {"known_kept": accuracy(h, questions.known)}
            if term == "triviaqa":
                parts["unknown_right"] = accuracy(h, questions.unknown) if questions.unknown else 0.0
                parts["score"] = (questions.share * parts["known_kept"]
                                  + (1 - questions.share) * parts["unknown_right"])
            else:
                parts["score"] = parts["known_kept"]
            seen[key] = parts
            if path is not None:
                write_text_atomic(path, json.dumps({"format": SCORES_FORMAT, "scores": seen}, indent=1))
        return dict(seen[key])

    score.criterion = SUPPRESSION_TERMS[term]
    return score


SCORES_FORMAT = "hneurons-suppression-scores/1"
SUPPRESSION_VERSION = 1  # part of a stored score's file name, beside suppression_code()


@functools.lru_cache(maxsize=1)
def suppression_code() -> str:
    """A digest of the code that measures a suppression score (:func:`files.code_digest`): the
    whole ``steering`` module, the prompt, generation and cutting of ``sampling``, the batch
    encoding and this module's scoring; the rule judge has its own version. Part of a stored
    score's file name, so a change to that code measures the scores again."""
    from . import cett, sampling, steering

    return code_digest([steering, sampling.build_prompt, sampling._cut, sampling.generate_kwargs,
                        sampling.keyed_generate_kwargs, sampling.generate_traced, cett.encode,
                        cett.on_device, cett.left_pad_positions, term_questions, suppression_hook])


def suppression_store(m: LoadedModel, questions: SuppressionSet, batch_size: int, method: str,
                      term: str, folder: str | Path) -> Path:
    """The file in ``folder`` that keeps :func:`suppression_hook`'s scores for this model (its
    name, shape and weights' type), these questions (ids, texts, gold answers, strata and the
    known stratum's weight), batch size, method, term, the rule judge's version,
    :data:`SUPPRESSION_VERSION` and the measuring code (:func:`suppression_code`): any change
    gives another file, never a stale score."""
    from .judges import RULE_JUDGE_VERSION

    spec = {**m.identity(), "batch_size": batch_size,
            "method": method, "term": term, "share": questions.share, "judge": RULE_JUDGE_VERSION,
            "version": SUPPRESSION_VERSION, "code": suppression_code(),
            **{part: [[it.qid, it.question, list(it.answers)] for it in getattr(questions, part)]
               for part in ("known", "unknown")}}
    return Path(folder) / f"scores_{settings_hash(spec)}.json"


def _read_scores(path: Path) -> dict[str, dict]:
    """The scores kept at ``path`` by :func:`suppression_hook`; a damaged file is reported and
    its scores measured again."""
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
        if d.get("format") != SCORES_FORMAT or not all(
                isinstance(v, dict) and isinstance(v.get("score"), float) for v in d["scores"].values()):
            raise ValueError(f"not a file of {SCORES_FORMAT}")
        return d["scores"]
    except (ValueError, KeyError, AttributeError, TypeError, UnicodeDecodeError) as e:
        print(f"the stored suppression scores {path} are damaged ({e}): measuring them again")
        return {}


def criterion_choices(grid: Sequence[dict]) -> list[dict]:
    """What each C-selection rule would choose on the same fits (:func:`probe.chosen_row`):
    held-out accuracy alone, plus accuracy on the known questions (where the grid measured it),
    plus the estimated TriviaQA accuracy (where measured); the rule that ran is marked."""
    rules = [("held-out accuracy alone", lambda r: r["val_accuracy"])]
    if all(r.get("known_kept") is not None for r in grid):
        rules.append(("+ accuracy on the known questions, silenced",
                      lambda r: r["val_accuracy"] + r["known_kept"]))
    if all(r.get("unknown_right") is not None for r in grid):
        rules.append(("+ estimated TriviaQA accuracy, silenced (the paper's term)",
                      lambda r: r["val_accuracy"] + r["suppression"]))
    ran = next(i for i, r in enumerate(grid) if r.get("chosen"))
    out = []
    for name, f in rules:
        i = chosen_row(grid, f)
        g = grid[i]
        out.append({"rule": name, "C": g["C"], "H-Neurons": g["n_h_neurons"],
                    "held-out accuracy": g["val_accuracy"], "held-out AUROC": g["val_auroc"],
                    "the chapter's choice": i == ran})
    return out


def agreement_yields(sampled: Sequence[dict], thresholds: Sequence[float]) -> list[dict]:
    """Consistent questions per class for each agreement threshold (1.0 = the paper's filter)."""
    return [{"min_agreement": t, **{k: len(v) for k, v in consistency_split(sampled, t).items()}}
            for t in thresholds]


def _jsonable_cfg(cfg: IdentifyConfig) -> dict:
    d = asdict(cfg)
    d["Cs"] = list(cfg.Cs)
    return d


def write_identification(out_dir: Path, probe: Probe, grid: list[dict], counts: dict,
                         split: dict[str, list[Example]], fs: FeatureSet, timings: dict,
                         suppression_score: Callable | None = None) -> IdentificationResult:
    """Write ``probe.json``, ``split.json`` and ``results.json``; return everything as one record."""
    counts = dict(counts, split={p: {"examples": len(v), "hallucinated": sum(e.label for e in v)}
                                 for p, v in split.items()},
                  answer_spans=span_counts(fs, [e.key for e in split["train"] + split["val"]]),
                  c_selected_on="held-out questions" if split["val"] else "training answers")
    keys = {p: {"keys": [e.key for e in v], "labels": [e.label for e in v]} for p, v in split.items()}
    plots.write_results(out_dir, "split", keys)
    h = probe.h_neurons()
    plots.write_results(out_dir, "results", {
        "counts": counts, "grid": grid, "C": probe.C, "n_h_neurons": h.size,
        "n_nonzero": int(probe.flat.size), "per_mille": h.per_mille,
        "per_mille_nonzero": probe.neurons(0).per_mille,
        "layer_counts": h.layer_counts(), "timings_s": timings, "config": probe.config,
        "c_criterion": (getattr(suppression_score, "criterion", "held-out accuracy + suppression score")
                        if suppression_score else "held-out accuracy")})
    probe.save(out_dir / "probe.json")  # last: a probe on disk always has its split beside it
    return IdentificationResult(probe, grid, counts, keys, fs, timings, out_dir)


def load_identification(out_dir: str | Path, model: str | None = None
                        ) -> tuple[Probe, dict, FeatureSet]:
    """The probe, the train/val split and the training features written by :func:`identify`
    (with ``model``, a loaded model's ``name``: refused unless the probe was trained on it)."""
    out_dir = Path(out_dir)
    probe = Probe.load(out_dir / "probe.json", model)
    split = json.loads((out_dir / "split.json").read_text())
    fs = load_features(out_dir / "features_triviaqa.npz")
    if fs is None:
        raise FileNotFoundError(f"{out_dir}/features_triviaqa.npz is missing: rerun identification")
    if model is not None and fs.settings.get("model") != model:
        raise ValueError(f"{out_dir}/features_triviaqa.npz holds features of {fs.settings.get('model')!r}, "
                         f"not of {model!r}: rerun the identification chapter for this model")
    return probe, split, fs


def stored_examples(split: dict, part: str = "train") -> list[Example]:
    """The examples (keys and labels only) of one part of a stored split (``split.json``)."""
    return [Example(k, "", "", [], "", int(lab))
            for k, lab in zip(split[part]["keys"], split[part]["labels"])]


def probe_training_rows(probe: Probe, fs: FeatureSet, split: dict) -> tuple[np.ndarray, np.ndarray]:
    """The probe's own training rows (:func:`scheme_rows` of the stored split's training part
    under the probe's label scheme): what every baseline and refit of the probe is trained on."""
    return scheme_rows(fs, stored_examples(split, "train"), probe.label_scheme)


def trained_questions(split: dict, responses_path: str | Path) -> list[str]:
    """The questions behind every example of a stored split (train and held-out), read from
    the responses file they were drawn from: what an evaluation set must not ask again."""
    qids = {k.rsplit("#", 1)[0] for part in split.values() for k in part["keys"]}
    return [r["question"] for r in read_jsonl(responses_path) if r["qid"] in qids]


def rebuild_examples(split: dict, part: str, responses_path: str | Path) -> list[Example]:
    """The full examples (prompt, response, answers) of one part of a stored split, rebuilt
    from the responses file they were drawn from (:func:`examples_of` is deterministic: key
    ``qid#i`` is the ``i``-th distinct response of the question's label)."""
    recs = {r["qid"]: r for r in read_jsonl(responses_path)}
    out = []
    for key, lab in zip(split[part]["keys"], split[part]["labels"]):
        qid, i = key.rsplit("#", 1)
        if qid not in recs:
            raise KeyError(f"{responses_path} has no question {qid!r} (needed by {key!r})")
        exs = examples_of(recs[qid], int(lab), int(i) + 1, ("correct", "incorrect")[int(lab)])
        if len(exs) <= int(i) or exs[int(i)].key != key:
            raise ValueError(f"{key!r} cannot be rebuilt from {responses_path}: the file changed")
        out.append(exs[int(i)])
    return out


def span_counts(fs: FeatureSet, keys: Sequence[str]) -> dict:
    """How the answer spans of ``keys`` were found: counts of alias / content / fallback."""
    methods = fs.methods[fs.index(keys)].tolist()
    return {k: methods.count(k) for k in ("alias", "content", "fallback")}


# ---------------------------------------------------------------- evaluation sets (Table 1; see detection)


@dataclass
class EvalConfig:
    """Settings of an evaluation set: one sample per question, balanced classes (Section 6.1.3)."""

    per_class: int | None = 500  # cap per class
    gen_batch: int = 32
    max_new_tokens: int = 24
    stop_at_newline: bool = True
    features: FeatureConfig = field(default_factory=FeatureConfig)
    n_boot: int = 1000
    seed: int = 0


@dataclass
class EvalSet:
    """Answer-token features ``X`` ``[n, layers*neurons]`` and labels ``y`` (1 = hallucinated)."""

    name: str
    keys: list[str]
    X: np.ndarray
    y: np.ndarray
    counts: dict
    questions: tuple = ()  # qids of every question answered for this set (balanced or not)
    answer_tokens: np.ndarray | None = None  # [n] answer-span length in tokens
    span_methods: tuple = ()  # [n] how each answer span was found (alias / content / fallback)


def eval_label(dataset: str, label: str) -> int | None:
    """1 = hallucinated, 0 = faithful, None = left out. On NonExist no true answer exists: a
    refusal is the faithful response and any answer a hallucination; elsewhere refusals are
    left out, as in training."""
    if dataset == "nonexist":
        return {"refusal": 0, "incorrect": 1, "correct": 0}[label]
    return {"correct": 0, "incorrect": 1}.get(label)
