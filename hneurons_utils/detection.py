"""Detection on unseen questions: Table 1's evaluation sets, metrics and baselines (Section 2, Table 1).

Each dataset is answered once per question with the identification settings; responses are
labelled hallucinated (1) or faithful (0), balanced, and featurised on their answer tokens.
The probe's accuracy and AUROC come with bootstrap 95% intervals; the baselines are classifiers
on random neurons over several seeds: as many as the probe reads (its H-Neurons and its
negative-weight neurons; Table 1's "Random"), and as many as there are H-Neurons.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from .features import FeatureConfig, FeatureSet, extract_features
from .models import LoadedModel
from .pipeline import (EvalConfig, EvalSet, eval_label, examples_of, probe_training_rows,
                       rebuild_examples, sampling_cfg, scheme_rows, span_counts)
from .probe import NeuronSet, Probe, refit_kw
from .sampling import balanced_sample, collect_responses, label_counts, read_jsonl
from .stats import MIN_PER_CLASS, auroc, detection_metrics, mean_spread, paired_bootstrap_ci
from .wording import noun, signed

log = logging.getLogger(__name__)

# why a larger set's verdict does not overrule the balanced set's (see full_eval_set's draw)
SHARED_ANSWERS = ("the two sets share answers (a class smaller than the cap is in both whole), "
                  "so they are not independent evidence")


def class_records(out_dir: str | Path, es: EvalSet) -> dict[int, list[dict]]:
    """The stored records (``responses_<name>.jsonl``, read once) behind each class of ``es``
    (1: hallucinated, 0: faithful), in set order; a key whose question is missing is an error."""
    recs = {r["qid"]: r for r in read_jsonl(Path(out_dir) / f"responses_{es.name}.jsonl")}
    out: dict[int, list[dict]] = {1: [], 0: []}
    for key, y in zip(es.keys, es.y):
        qid = key.rsplit("#", 1)[0]
        if qid not in recs:
            raise KeyError(f"responses_{es.name}.jsonl has no question {qid!r} (needed by {key!r})")
        out[int(y)].append(recs[qid])
    return out


def class_responses(out_dir: str | Path, es: EvalSet, label: int, width: int = 110) -> pd.DataFrame:
    """The responses of one class of a balanced set (``label`` 1: hallucinated, 0: faithful) with
    their questions and the judge's label, shortened to ``width`` characters, in set order: what
    the judge put into that class, for a reader to check (chapter 3 shows NonExist's faithful
    class, the refusals, since a rule judge decides it alone)."""
    cut = lambda t: t if len(t) <= width else t[:width - 3] + "..."  # noqa: E731
    rows = [{"question": cut(r["question"]), "response": cut(" ".join(r["responses"][0].split())),
             "judge": r["labels"][0]} for r in class_records(out_dir, es)[label]]
    return pd.DataFrame(rows, columns=["question", "response", "judge"])


def at_token_cap(tokenizer, texts: Sequence[str], max_new_tokens: int) -> np.ndarray:
    """Which stored responses reached the generation cap, as booleans. The records keep no
    token count, so each text is re-tokenised (no special tokens) and counted: at or over
    ``max_new_tokens`` means generation stopped at the cap, not at an end-of-sequence token or
    a newline. An estimate: re-tokenising decoded text can differ by a token, and a reply that
    ended on its own at exactly the cap counts as cut."""
    return np.array([len(tokenizer(t, add_special_tokens=False)["input_ids"]) >= max_new_tokens
                     for t in texts], dtype=bool)


def token_cap_note(n_cap: int, n: int, max_new_tokens: int, what: str = "faithful (declining)",
                   others: tuple[int, int] | None = None) -> str:
    """A sentence on how many of ``n`` responses of a class were cut by the token cap
    (:func:`at_token_cap`) and what that does to their label: a decline cut at the cap may have
    been about to answer, so where the cap fell decides the label. ``others``: the same count
    for the other class, (cut, of how many)."""
    text = (f"{n_cap} of the {n} {what} responses end at the {max_new_tokens}-token cap "
            "(re-tokenised length; the records store no token count)")
    if others is not None:
        text += f", against {others[0]} of {others[1]} in the other class"
    if not n_cap:
        return text + "."
    return text + (": they were cut, not finished, and any of them that would have gone on from "
                   "its apology to an answer counts as a decline only because the cap came first. "
                   "The label of these responses depends on max_new_tokens (the identification "
                   "setting, not changed here).")


def faithful_class_reading(kinds: dict, n: int, verdict: str | None = None) -> str:
    """What NonExist's faithful class holds and what a detector could separate on it, from
    ``kinds`` (:func:`judges.refusal_kind` counts over the ``n`` responses of the class). If
    fewer than half deny the entity, the class is mostly declines in general, so the contrast is
    answering against declining, not recognising an invented entity. ``verdict``: the probe's
    :func:`metrics_verdict` on the set, or None where it is not yet scored; only a verdict
    above chance says the probe separates the two."""
    denies = int(kinds.get("denies the entity", 0))
    if 2 * denies < n:
        text = (f"the faithful class is mostly declines that do not say the entity is invented "
                f"({denies} of {n} do): what a detector could separate on NonExist is answering from "
                "declining in general, not recognising that the entity does not exist")
    else:
        text = (f"most of the faithful class says the entity does not exist ({denies} of {n}): a "
                "detector could separate invented answers from recognising an invented entity")
    if verdict is None:
        return text + "; whether the probe does is its NonExist verdict below."
    if verdict.startswith("above chance"):
        return text + f"; the probe's verdict here ({verdict}) says it separates them in that sense."
    return text + f"; the probe's verdict here is \"{verdict}\", so it is not shown to separate them."


def split_by_label(records: Sequence[dict]) -> tuple[list[dict], list[dict], dict]:
    """Hallucinated and faithful single-answer records (:func:`eval_label`), and the counts."""
    labelled = [(r, eval_label(r["dataset"], r["labels"][0]) if r["responses"][0].strip() else None)
                for r in records]  # an empty answer has no answer token to read
    hall = [r for r, y in labelled if y == 1]
    faith = [r for r, y in labelled if y == 0]
    return hall, faith, {"questions": len(records), **label_counts(records),
                         "hallucinated": len(hall), "faithful": len(faith)}


def build_eval_set(m: LoadedModel, items: Sequence, cfg: EvalConfig, out_dir: str | Path,
                   name: str, judge: Callable | None = None) -> EvalSet:
    """Sample one answer per question, label, balance and featurise (``*_<name>.*`` files).

    Raises :class:`sampling.EmptyBalancedSetError` when a class has no response at all.
    """
    out_dir = Path(out_dir)
    records = collect_responses(m, items, out_dir / f"responses_{name}.jsonl",
                                sampling_cfg(1, cfg), judge, cfg.gen_batch,
                                cfg.seed, desc=f"sampling {name}")
    return balanced_eval_set(m, name, records, cfg, out_dir, f"{name} evaluation set",
                             f"features {name}")


def featurised_set(m: LoadedModel, name: str, hall: Sequence[dict], faith: Sequence[dict],
                   counts: dict, questions: Sequence[str], cfg: EvalConfig, out_dir: str | Path,
                   desc: str) -> EvalSet:
    """An :class:`EvalSet` of hallucinated (1) and faithful (0) single-answer records, with
    answer-token CETT features from ``out_dir/features_<name>.npz`` (computed if missing)."""
    exs = [ex for y, recs in ((1, hall), (0, faith)) for r in recs for ex in examples_of(r, y, 1)]
    fs = extract_features(m, exs, Path(out_dir) / f"features_{name}.npz", cfg.features, desc=desc)
    keys = [e.key for e in exs]
    counts, idx = {**counts, "answer_spans": span_counts(fs, keys)}, fs.index(keys)
    return EvalSet(name, keys, fs.flat("answer", keys), np.array([e.label for e in exs]), counts,
                   tuple(questions), fs.n_tokens[idx, 0].copy(), tuple(fs.methods[idx].tolist()))


def span_diagnostic(y: np.ndarray, answer_tokens: np.ndarray, methods: Sequence[str]) -> dict:
    """How the answer spans of the two classes differ, and what that alone would detect.

    The default span rule takes the gold alias where a response contains one, which a correct
    answer does by definition; hallucinated answers get the content rule's (longer) span. If
    span length alone separates the classes (its AUROC far from 0.5), part of any
    detector's success may come from where the span sits rather than from hallucination; the
    ``content`` span rule (``features.SPAN_RULES``) removes that difference.
    """
    y, n = np.asarray(y), np.asarray(answer_tokens, dtype=np.float64)
    meth = np.asarray(methods)
    out = {}
    for lab, name in ((1, "hallucinated"), (0, "faithful")):
        sel = y == lab
        out[f"{name}: alias spans"] = float((meth[sel] == "alias").mean()) if sel.any() else np.nan
        out[f"{name}: answer tokens"] = float(n[sel].mean()) if sel.any() else np.nan
    out["AUROC of span length alone"] = auroc(y, n)
    return out


def shared_span_rule(diag: dict | None) -> bool:
    """Whether both classes got their answer spans from one rule (:func:`span_diagnostic`'s
    ``diag``): no answer of either class contains a gold alias (NonExist), so the span rule
    cannot tell the classes apart there."""
    return bool(diag) and diag.get("hallucinated: alias spans") == 0 and \
        diag.get("faithful: alias spans") == 0


def balanced_eval_set(m: LoadedModel, name: str, records: Sequence[dict], cfg: EvalConfig,
                      out_dir: str | Path, what: str, desc: str) -> EvalSet:
    """Judged records -> balanced classes (at most ``cfg.per_class``) -> :func:`featurised_set`.

    Raises :class:`sampling.EmptyBalancedSetError` (naming ``what``) when a class is empty.
    """
    hall, faith, counts = split_by_label(records)
    hall, faith = balanced_sample(hall, faith, cfg.per_class, cfg.seed, what=what)
    counts["balanced_per_class"] = len(hall)
    return featurised_set(m, name, hall, faith, counts, [r["qid"] for r in records], cfg,
                          out_dir, desc)


def refeaturised_set(m: LoadedModel, name: str, es: EvalSet, cfg: EvalConfig, fcfg: FeatureConfig,
                     out_dir: str | Path, tag: str, what: str) -> EvalSet:
    """The responses of evaluation set ``es`` (named ``name``) featurised again under ``fcfg``,
    cached as ``features_<name>_<tag>.npz`` in ``out_dir`` (progress labelled ``what``)."""
    from dataclasses import replace

    by_label = class_records(out_dir, es)
    return featurised_set(m, f"{name}_{tag}", by_label[1], by_label[0], {}, es.questions,
                          replace(cfg, features=fcfg), out_dir, f"features {name} ({what})")


def span_rule_control(m: LoadedModel, probe: Probe, split: dict, sets: dict[str, EvalSet],
                      cfg: EvalConfig, id_dir: str | Path, out_dir: str | Path,
                      rule: str = "content", n_boot: int = 1000,
                      also: dict[str, dict[str, EvalSet]] | None = None) -> dict:
    """The detection result again with every answer span found by one ``rule`` for both classes.

    The default span rule gives faithful answers their gold alias and hallucinated ones the
    content rule's span (see :func:`span_diagnostic`). Here the identification training
    responses and each evaluation set are re-featurised with ``FeatureConfig.span_rule=rule``
    (cached as ``features_<name>_span-<rule>.npz``), a probe is refit with the original's C,
    label scheme and standardisation (kept in ``id_dir/fits``, :class:`probe.FitCache`), and scored. Per dataset: ``metrics`` (AUROC, accuracy
    with intervals), ``spans`` (the diagnostic under ``rule``), and the refit probe's H-Neurons
    with their overlap with the original's; the per-response ``keys``, ``y``, ``scores`` (the
    refit probe's logits) and ``answer_tokens`` under ``rule`` (for ROC curves), the original
    probe's ``default_scores`` on the same responses (default spans), and ``drop``: the paired
    AUROC difference, default rule minus one rule, with its bootstrap interval
    (:func:`paired_auroc_drop`; the responses are paired by key).

    ``also``: more groups of sets (e.g. ``{"all_answers": ...}``) scored by the same refit,
    each under its own key of the result, with the same fields per dataset.
    """
    from dataclasses import replace

    from .probe import FitCache

    id_dir, out_dir = Path(id_dir), Path(out_dir)
    fcfg = replace(cfg.features, span_rule=rule)
    train = rebuild_examples(split, "train", id_dir / "responses_triviaqa.jsonl")
    fs = extract_features(m, train, id_dir / f"features_triviaqa_span-{rule}.npz", fcfg,
                          desc=f"features training ({rule} spans)")
    X, y = scheme_rows(fs, train, probe.label_scheme)
    refit = FitCache(id_dir / "fits").fit(X, y, probe.C, **refit_kw(probe))
    h0, h1 = set(probe.h_neurons().flat.tolist()), set(refit.h_neurons().flat.tolist())

    def score(group: dict[str, EvalSet]) -> dict[str, dict]:
        out = {}
        for name, es in group.items():
            ctl = refeaturised_set(m, name, es, cfg, fcfg, out_dir, f"span-{rule}", f"{rule} spans")
            scores = refit.decision_function(ctl.X)
            default = probe.decision_function(es.X)
            drop = paired_auroc_drop(es.keys, es.y, default, ctl.keys, ctl.y, scores, n_boot, cfg.seed)
            where = {k: i for i, k in enumerate(es.keys)}
            out[name] = {"metrics": detection_metrics(ctl.y, scores, n_boot=n_boot, seed=cfg.seed),
                         "spans": span_diagnostic(ctl.y, ctl.answer_tokens, ctl.span_methods),
                         "keys": list(ctl.keys), "y": ctl.y.tolist(), "scores": scores.tolist(),
                         "default_scores": [float(default[where[k]]) if k in where else None
                                            for k in ctl.keys],
                         "answer_tokens": ctl.answer_tokens.tolist(), "drop": drop}
        return out

    res = {"rule": rule, "h_neurons": len(h1), "h_overlap": len(h0 & h1), "datasets": score(sets)}
    for key, group in (also or {}).items():
        res[key] = score(group)
    return res


OTHER_SCHEME = {"3-vs-1": "1-vs-1", "1-vs-1": "3-vs-1"}


def recipe_variants(probe: Probe) -> dict[str, dict]:
    """The probe recipes :func:`recipe_control` sets against the chapter probe's own: raw
    activations instead of CETT (``"measure"``), the other label scheme (``"scheme"``), and
    features standardised if the probe's are not, or not if they are (``"standardize"``).
    Each: ``ref`` and ``alt`` (how the text names the probe's recipe and the variant), and
    what changes (``features``: :class:`features.FeatureConfig` fields; ``label_scheme``;
    ``standardize``)."""
    other = OTHER_SCHEME[probe.label_scheme]
    ref, alt = ("standardised", "unstandardised") if probe.standardize else ("unstandardised", "standardised")
    return {"measure": {"ref": "CETT", "alt": "raw activations", "features": {"measure": "activation"}},
            "scheme": {"ref": probe.label_scheme, "alt": other, "label_scheme": other},
            "standardize": {"ref": ref, "alt": alt, "standardize": not probe.standardize}}


def recipe_control(m: LoadedModel, probe: Probe, split: dict, sets: dict[str, EvalSet],
                   cfg: EvalConfig, id_dir: str | Path, out_dir: str | Path,
                   Cs: Sequence[float], n_boot: int = 1000,
                   variants: Sequence[str] = ("measure", "scheme", "standardize")) -> dict:
    """Design choices of the probe tested by recipe refits (none of these tests is in the paper).

    ``"measure"``: is CETT needed? CETT scales each activation by ``||W_down[:, j]|| /
    ||h_t||``; a probe on the mean raw activations ``|z|`` (``FeatureConfig.measure=
    "activation"``) asks what that normalisation adds to detection. ``"scheme"``: the other
    label scheme ("1-vs-1": hallucinated against faithful answer tokens only; the official
    repository's README says it detects better than the paper's "3-vs-1"). ``"standardize"``:
    features z-scored per neuron before the L1 fit, or not (the paper fits raw CETT, so the
    penalty favours neurons with large values; z-scored, all compete on equal terms).

    Every recipe, the reference (the chapter probe's features, label scheme and scaling)
    included, gets one protocol: the probe's penalty, fitted on the identification
    training responses with ``C`` chosen on ``Cs`` by held-out accuracy alone (chapter 2's
    probe also weighs a suppression run; leaving it out for all favours none), then scored on
    each balanced evaluation set. Activation features are cached beside the CETT ones
    (``features_triviaqa_measure-activation.npz``, ``features_<name>_measure-activation.npz``),
    and the fits in ``id_dir/fits`` (:class:`probe.FitCache`): a rerun refits nothing it has.

    Returns ``reference`` and per variant (``variants``) the fit: ``C``, ``grid``
    (:func:`probe.select_C`'s rows), H-Neuron count, overlap with the chapter probe's, and for
    a variant its ``ref``/``alt`` names; per dataset the response ``keys`` and ``y``, and per
    recipe ``metrics`` and ``scores``, a variant's with ``diff``: the paired AUROC difference,
    reference minus variant, with its bootstrap interval (:func:`paired_auroc_drop`).
    """
    from dataclasses import replace

    from .pipeline import answer_matrix
    from .probe import FitCache, select_C

    spec = recipe_variants(probe)
    unknown = [v for v in variants if v not in spec]
    if unknown:
        raise ValueError(f"unknown probe variants {unknown}: use some of {list(spec)}")
    id_dir, out_dir = Path(id_dir), Path(out_dir)
    responses = id_dir / "responses_triviaqa.jsonl"
    train = rebuild_examples(split, "train", responses)
    val = rebuild_examples(split, "val", responses) or train
    seen = {e.key for e in train}
    everyone = train + [e for e in val if e.key not in seen]
    h0 = set(probe.h_neurons().flat.tolist())
    res: dict = {"probe_h_neurons": len(h0), "variants": {}, "datasets": {},
                 "total_neurons": int(probe.n_layers * probe.n_neurons)}
    features_cache: dict = {}
    fits, stored = {}, FitCache(id_dir / "fits")
    for name in ("reference", *variants):
        v = spec.get(name, {})
        fcfg = replace(cfg.features, **v.get("features", {}))
        scheme = v.get("label_scheme", probe.label_scheme)
        standardize = v.get("standardize", probe.standardize)
        if fcfg not in features_cache:
            tag = "" if fcfg.measure == "cett" else f"_measure-{fcfg.measure}"
            features_cache[fcfg] = extract_features(m, everyone, id_dir / f"features_triviaqa{tag}.npz",
                                                    fcfg, desc=f"features training ({fcfg.measure})")
        fs = features_cache[fcfg]
        X, y = scheme_rows(fs, train, scheme)
        Xv, yv = answer_matrix(fs, val)
        fit, grid = select_C(X, y, Xv, yv, Cs, fits=stored,
                             **refit_kw(probe, standardize=standardize, label_scheme=scheme))
        del X, y, Xv, yv  # at 7B+ one recipe's rows are gigabytes: never hold two recipes' at once
        h = set(fit.h_neurons().flat.tolist())
        fits[name] = (fit, fcfg)
        info = {"C": fit.C, "grid": grid, "h_neurons": len(h), "h_overlap": len(h & h0),
                "n_nonzero": int(fit.flat.size), "label_scheme": scheme, "measure": fcfg.measure,
                "standardize": standardize,
                **{k: v[k] for k in ("ref", "alt") if k in v}}
        if name == "reference":
            res["reference"] = info
        else:
            res["variants"][name] = info
    for dname, es in sets.items():
        out = {"keys": list(es.keys), "y": es.y.tolist()}
        ref_scores = None
        for name, (fit, fcfg) in fits.items():
            ev = es if fcfg == cfg.features else refeaturised_set(
                m, dname, es, cfg, fcfg, out_dir, f"measure-{fcfg.measure}", fcfg.measure)
            sc = fit.decision_function(ev.X)
            out[name] = {"metrics": detection_metrics(ev.y, sc, n_boot=n_boot, seed=cfg.seed),
                         "scores": sc.tolist()}
            if ref_scores is None:
                ref_scores = (ev, sc)
            else:
                a, sa = ref_scores
                out[name]["diff"] = paired_auroc_drop(a.keys, a.y, sa, ev.keys, ev.y, sc, n_boot, cfg.seed)
        res["datasets"][dname] = out
    return res


def recipe_name(r: dict) -> str:
    """A recipe of :func:`recipe_control` in words: "CETT, 3-vs-1, unstandardised"."""
    parts = ["CETT" if r["measure"] == "cett" else "raw activations", r["label_scheme"]]
    if "standardize" in r:
        parts.append("standardised" if r["standardize"] else "unstandardised")
    return ", ".join(parts)


def recipe_verdict(diff: dict, ref: str, alt: str, min_per_class: int = MIN_PER_CLASS) -> str:
    """A paired AUROC difference of :func:`recipe_control` (reference ``ref`` minus variant
    ``alt``) read: "<ref> ahead" or "<alt> ahead" where its interval excludes 0 (said to be
    only less reversed where both AUROCs lie below 0.5), else no difference shown; too few
    responses under ``min_per_class`` in the smaller class."""
    lo, hi = diff["drop_ci"]
    if min(diff["n_pos"], diff["n_neg"]) < min_per_class:
        return f"too few responses to compare (fewer than {min_per_class} per class)"
    if lo <= 0 <= hi:
        return "no difference shown (the interval includes 0)"
    out = f"{ref} ahead (the interval lies above 0)" if lo > 0 else f"{alt} ahead (the interval lies below 0)"
    if max(diff.get("default", 1.0), diff.get("control", 1.0)) < 0.5:
        out += ", though both rank below chance: the one ahead is only less reversed"
    return out


def _auroc_text(m: dict) -> str:
    return f"{m['auroc']:.2f} [{m['auroc_ci'][0]:.2f}, {m['auroc_ci'][1]:.2f}]"


def recipe_reading(res: dict, min_per_class: int = MIN_PER_CLASS,
                   total_neurons: int | None = None) -> list[str]:
    """Lines reading :func:`recipe_control`: per dataset the reference refit's AUROC and each
    variant's with its paired difference and verdict; per variant a count of the verdicts over
    the sets (with a caution where one set alone differs: how often one of that many intervals
    would exclude 0 by chance if they were independent; they are not, so "up to"); then what
    each recipe's probe selected, with its H-Neurons per mille of ``total_neurons`` (default:
    ``res["total_neurons"]``) and a flag where that is above the paper's "under one per mille"
    (such a refit is not sparse like the chapter's probe)."""
    ref = res["reference"]
    total = total_neurons or res.get("total_neurons")
    verdicts = {name: {dn: recipe_verdict(d[name]["diff"], v["ref"], v["alt"], min_per_class)
                       for dn, d in res["datasets"].items()} for name, v in res["variants"].items()}
    lines = []
    for dname, d in res["datasets"].items():
        parts = [f"{dname}: AUROC of the reference refit ({recipe_name(ref)}) {_auroc_text(d['reference']['metrics'])}"]
        for name, v in res["variants"].items():
            diff = d[name]["diff"]
            parts.append(f"with {v['alt']} {_auroc_text(d[name]['metrics'])}, {v['ref']} minus "
                         f"{v['alt']} {span_drop_text(diff)} on {diff['n_pos']} + {diff['n_neg']} "
                         f"responses: {verdicts[name][dname]}")
        lines.append("; ".join(parts) + ".")
    for name, v in res["variants"].items():
        scored = [dn for dn, t in verdicts[name].items() if not t.startswith("too few")]
        if not scored:
            continue
        ahead = {w: [dn for dn in scored if verdicts[name][dn].startswith(f"{w} ahead")]
                 for w in (v["ref"], v["alt"])}
        n_diff = sum(map(len, ahead.values()))

        def named(ns: list[str]) -> str:
            return f"{len(ns)} ({', '.join(ns)})" if ns else "0"

        line = (f"{v['ref']} vs {v['alt']}, over the {noun(len(scored), 'set')} with a verdict: "
                f"{v['ref']} ahead on {named(ahead[v['ref']])}, {v['alt']} ahead on "
                f"{named(ahead[v['alt']])}, no difference shown on {len(scored) - n_diff}.")
        if n_diff == 1 and len(scored) > 1:
            level = {d[name]["diff"].get("ci_level", 0.95) for d in res["datasets"].values()}
            level = level.pop() if len(level) == 1 else 0.95
            line += (f" With {len(scored)} intervals at {level:.0%}, at least one excludes 0 in up to "
                     f"about {1 - level ** len(scored):.0%} of runs where the recipes do not differ at all "
                     "(if the intervals were independent; these are correlated, as every set is scored "
                     "by the same two fits), so one set ahead is weak evidence on its own.")
        lines.append(line)
    n0 = res.get("probe_h_neurons")
    mille = lambda n: 1000 * n / total  # noqa: E731
    for what, r in [("the reference refit", ref)] + [(f"{v['alt']}", v) for v in res["variants"].values()]:
        ratio = ""
        if total:
            ratio = f"; H-Neurons {mille(r['h_neurons']):.1f} per mille of all {total:,} neurons" + (
                ", above 1 per mille: not sparse like the chapter's probe"
                + (f" ({mille(n0):.1f} per mille)" if n0 is not None else "")
                + " or the paper's H-Neurons (under 1 per mille)" if mille(r["h_neurons"]) > 1 else "")
        lines.append(f"{what}: C = {r['C']:g} (held-out accuracy), {noun(r['h_neurons'], 'H-Neuron')} "
                     f"({r['n_nonzero']} non-zero weights), {r['h_overlap']} of them among the chapter "
                     f"probe's" + (f" {n0}" if n0 is not None else "") + f" H-Neurons{ratio}")
    return lines


def paired_auroc_drop(keys_default: Sequence[str], y_default: np.ndarray, s_default: np.ndarray,
                      keys_control: Sequence[str], y_control: np.ndarray, s_control: np.ndarray,
                      n_boot: int = 1000, seed: int = 0) -> dict:
    """AUROC under the default span rule minus AUROC under the one-rule control, on the *same*
    responses, with a paired bootstrap 95% interval (:func:`stats.paired_bootstrap_ci`: each
    replicate resamples the responses within each class once and scores both on it).

    The two sets are paired by response key; a key in only one of them is left out (counted in
    ``left_out``), and a key labelled differently in the two raises. Returns ``default``,
    ``control`` (the AUROCs on the paired responses), ``drop`` and ``drop_ci``, ``n_pos`` and
    ``n_neg`` (paired responses per class), ``left_out``, ``n_boot`` and ``ci_level``.
    """
    ka, kb = list(keys_default), list(keys_control)
    if len(set(ka)) < len(ka) or len(set(kb)) < len(kb):
        raise ValueError("response keys repeat within a set: responses cannot be paired by key")
    ya, yb = np.asarray(y_default).ravel(), np.asarray(y_control).ravel()
    sa, sb = np.asarray(s_default, dtype=np.float64).ravel(), np.asarray(s_control, dtype=np.float64).ravel()
    if not (len(ka) == ya.size == sa.size and len(kb) == yb.size == sb.size):
        raise ValueError("each set needs one label and one score per key")
    where = {k: i for i, k in enumerate(kb)}
    shared = [k for k in ka if k in where]
    ia = np.array([i for i, k in enumerate(ka) if k in where], dtype=np.int64)
    ib = np.array([where[k] for k in shared], dtype=np.int64)
    if (ya[ia] != yb[ib]).any():
        bad = [k for k, a, b in zip(shared, ya[ia], yb[ib]) if a != b]
        raise ValueError(f"{len(bad)} paired response(s) are labelled differently in the two sets, "
                         f"e.g. {bad[0]!r}")
    y = ya[ia]
    d = paired_bootstrap_ci(auroc, y, sa[ia], sb[ib], n_boot=n_boot, seed=seed)
    return {"default": d["a"], "control": d["b"], "drop": d["diff"], "drop_ci": d["diff_ci"],
            "n_pos": int((y == 1).sum()), "n_neg": int((y == 0).sum()),
            "left_out": len(ka) + len(kb) - 2 * len(shared), "n_boot": d["n_boot"],
            "ci_level": d["ci_level"]}


# a verdict that supports "the H-Neurons detect" (the only kind that can lose its credit)
SUPPORTING = ("above chance, and above random neurons", "above chance")


def finite_drop(control: dict | None) -> dict | None:
    """The paired drop of one :func:`span_rule_control` entry when both ends of its interval
    are finite (a NaN end comes back from JSON as null), else None."""
    drop = (control or {}).get("drop")
    if not drop or not np.isfinite(np.asarray(drop.get("drop_ci") or [np.nan], dtype=float)).all():
        return None
    return drop


def span_control_outcome(control: dict | None, min_per_class: int = MIN_PER_CLASS) -> str:
    """What the one-rule control (one dataset's entry of :func:`span_rule_control`, or None)
    says about a detection under the default span rule.

    "survives": the refit is above chance. Otherwise, when it is not distinguishable from
    chance: "fails" when the paired drop (default minus control, :func:`paired_auroc_drop`)
    has its interval above 0, so the detection falls measurably once the spans agree;
    "inconclusive" when that interval reaches 0 (or lies below it): the control is too
    uncertain to tell a drop from noise; "unpaired" when no paired drop is stored (a result
    file from before it was computed). "undetermined": the refit has too few responses or no
    finite interval; "not run": no control for this set.
    """
    if not control or "metrics" not in control:
        return "not run"
    c = control["metrics"]
    cv = metrics_verdict(c, min_per_class=min_per_class)
    if cv == "above chance":
        return "survives"
    if cv not in (NOT_DISTINGUISHABLE, BELOW_CHANCE):
        return "undetermined"
    drop = finite_drop(control)
    if drop is None:
        return "unpaired"
    return "fails" if drop["drop_ci"][0] > 0 else "inconclusive"


def span_drop_text(drop: dict, scale: float = 1.0, fmt: str = ".2f") -> str:
    """The paired AUROC drop as text: ``+0.18 [-0.04, +0.40]`` (``scale=100, fmt=".1f"`` for
    AUROC points). An end that would round to 0 gets more decimals, so its side of 0 (which the
    verdict rests on) shows."""
    def num(x: float) -> str:
        return signed(scale * x, int(fmt[1:-1]), 6)

    lo, hi = drop["drop_ci"]
    return f"{num(drop['drop'])} [{num(lo)}, {num(hi)}]"


def survival_note(control: dict) -> str:
    """For a one-rule refit that stays above chance (one dataset's :func:`span_rule_control`
    entry), ", paired drop ..." from the default rule, and whether the span difference still
    adds to the AUROC measurably (the drop's interval above 0): "" without a finite drop."""
    drop = finite_drop(control)
    if drop is None:
        return ""
    return f", paired drop {span_drop_text(drop)}" + (
        ", above 0: the span difference still adds to the AUROC measurably" if drop["drop_ci"][0] > 0
        else ", which includes 0")


def _span_alone_note(control: dict) -> str:
    """"; span length alone 0.64 under the same rule": what answer-span length alone reaches
    on the one-rule sets of a :func:`span_rule_control` entry ("" where not stored). The credit
    rule asks the refit to clear chance, not span length, so the two are shown side by side,
    and where span length alone reaches the refit's AUROC the note says so."""
    alone = (control.get("spans") or {}).get("AUROC of span length alone")
    if alone is None:
        return ""
    refit = (control.get("metrics") or {}).get("auroc")
    level = (refit is not None and np.isfinite(refit) and alone >= refit
             and alone > 0.5)  # the lengths still differ by class, as much as the refit detects
    return (f"; span length alone {alone:.2f} under the same rule"
            + (", at least the refit's AUROC: the one rule removes the difference in span rules, "
               "not in span lengths, which alone detect as well here" if level else ""))


def span_credit(verdict: str, spans: dict | None, control: dict | None,
                min_per_class: int = MIN_PER_CLASS) -> str | None:
    """Whether a default-rule ``verdict`` (:func:`auroc_verdict`) keeps its credit to the
    H-Neurons against the span confound: None when it does, or when there is nothing to
    credit (a verdict that does not support the claim); otherwise the
    :func:`span_control_outcome` that withholds it ("fails", "inconclusive", "unpaired" or
    "not run").

    Where the two classes got their answer spans from different rules (``spans``:
    :func:`span_diagnostic` of the same set), credit is kept only where the one-rule refit
    stays above chance, or cannot be read ("undetermined": too few responses, as the default
    verdict then is too). Where they share one rule in this set (:func:`shared_span_rule`:
    NonExist, where no answer holds a gold alias) the evaluation spans cannot tell the classes
    apart, but the probe was still trained on spans that differ by class: a refit that was run
    and falls to chance ("fails", "inconclusive", "unpaired") withholds the credit there too;
    without one ("not run") the shared rule keeps it.
    """
    if verdict.split(";")[0] not in SUPPORTING:
        return None
    outcome = span_control_outcome(control, min_per_class)
    withheld = ("fails", "inconclusive", "unpaired") + (() if shared_span_rule(spans) else ("not run",))
    return outcome if outcome in withheld else None


def span_credit_text(outcome: str, control: dict | None = None, scale: float = 1.0,
                     fmt: str = ".2f") -> str:
    """Why a verdict is not credited to the H-Neurons (``outcome`` from :func:`span_credit`),
    with the paired drop of ``control`` (one dataset's :func:`span_rule_control` entry) where
    there is one; ``scale``/``fmt`` as in :func:`span_drop_text`."""
    head = "not credited to the H-Neurons: "
    if outcome == "not run":
        return (head + "span control not run on these answers (the two classes get their answer "
                "spans from different rules here, and nothing checks what that alone does)")
    if outcome == "unpaired":
        return (head + "span control without a paired drop (the refit with one span rule for both "
                "classes is not distinguishable from chance, but no paired drop is stored to tell a "
                "fall from noise: rerun chapter 3)")
    drop = (control or {})["drop"]
    m = (control or {}).get("metrics") or {}
    refit = ("below chance (its ranking reversed)" if (m.get("auroc_ci") or [np.nan] * 2)[1] < 0.5
             else "not distinguishable from chance")
    txt = (f"the AUROC drop from the default rule to one span rule for both classes (paired "
           f"bootstrap over the same responses) is {span_drop_text(drop, scale, fmt)}"
           + (" points" if scale == 100 else ""))
    if outcome == "fails":
        return (head + "span control fails (the detection does not survive one span rule for both "
                f"classes: the refit is {refit}, and {txt}, above 0)")
    where = "includes 0" if drop["drop_ci"][1] >= 0 else "lies below 0"
    return (head + "span control inconclusive (not shown to survive one span rule for both "
            f"classes: the refit is {refit}, but {txt}, which {where}: "
            "the control is too uncertain to tell)")


def _bound(x: float) -> str:
    """An interval end to two decimals, or three where two would round it onto chance (0.50)
    and hide the side of 0.5 that the verdict rests on."""
    return f"{x:.3f}" if f"{x:.2f}" == "0.50" and x != 0.5 else f"{x:.2f}"


def _auroc_ci_text(lo: float, hi: float, n_min: int) -> str:
    """An AUROC interval as text; a bootstrap of one response per class is no interval."""
    return f"[{_bound(lo)}, {_bound(hi)}]" if n_min >= 2 else "[no interval: one per class]"


def span_control_reading(control: dict, ours: dict[str, dict], min_per_class: int = MIN_PER_CLASS,
                         group: str = "datasets", label: str = "") -> list[str]:
    """One sentence per dataset comparing the probe under the default span rule (``ours``)
    with the :func:`span_rule_control` refit (``control[group]``; ``label`` prefixes each
    dataset's name), the paired AUROC drop between the two, and what span length alone reaches
    under the one rule."""
    out = [f"one span rule ({control['rule']}) for both classes: the refit probe has "
           f"{control['h_neurons']} H-Neurons, {control['h_overlap']} of them shared with the original"] \
        if group == "datasets" else []
    for k, d in control.get(group, {}).items():
        mt, n_min = d["metrics"], min(d["metrics"]["n_pos"], d["metrics"]["n_neg"])
        lo, hi = mt["auroc_ci"]
        verdict = metrics_verdict(mt, min_per_class=min_per_class)
        before = f"; default rule {ours[k]['auroc']:.2f}" if k in ours else ""
        if d.get("drop") and n_min >= 2:
            before += (f", paired drop (default minus one rule) {span_drop_text(d['drop'])}"
                       + (f", {d['drop']['left_out']} response(s) unpaired" if d["drop"]["left_out"] else ""))
        out.append(f"{label}{k}: AUROC {mt['auroc']:.2f} {_auroc_ci_text(lo, hi, n_min)} ({verdict}){before}; span "
                   f"length alone {d['spans']['AUROC of span length alone']:.2f} under this rule.")
    return out


def full_eval_set(m: LoadedModel, es: EvalSet, cfg: EvalConfig, out_dir: str | Path,
                  max_per_class: int | None = None) -> EvalSet:
    """Every judged answer of ``es``'s dataset, not only the balanced subset.

    A balanced set is capped by the smaller class; a small model answers few questions
    correctly, so most hallucinated answers go unused. AUROC does not depend on the class
    ratio, so scoring all of them narrows its interval. Features already in the cache file
    (the balanced subset's among them) are reused; the others are appended to it.
    ``max_per_class`` caps each class by a seeded random draw of its own, independent of the
    balanced subset's: a capped class need not hold every answer the balanced set drew from it,
    while a class under the cap is whole in both (the interval is set by the smaller class, so a
    cap on the larger one saves feature extraction and costs little precision).
    """
    import random

    out_dir, asked = Path(out_dir), set(es.questions)
    if not asked:
        raise ValueError(f"{es.name}: the evaluation set does not list its questions")
    records = {}
    for r in read_jsonl(out_dir / f"responses_{es.name}.jsonl"):
        if r["qid"] in asked:
            records[r["qid"]] = r  # one answer per question, the one the collector itself keeps
    records = list(records.values())
    hall, faith, counts = split_by_label(records)
    if max_per_class is not None:
        rng = random.Random(cfg.seed)
        hall, faith = (rng.sample(c, min(len(c), max_per_class)) for c in (hall, faith))
        counts["max_per_class"] = max_per_class
    return featurised_set(m, es.name, hall, faith, counts, es.questions, cfg, out_dir,
                          f"features {es.name} (all answers)")


def evaluate_detection(m: LoadedModel, probe: Probe, items: Sequence, cfg: EvalConfig,
                       out_dir: str | Path, name: str, judge: Callable | None = None) -> dict:
    """Table 1 for one dataset: accuracy and AUROC of ``probe`` with bootstrap 95% CIs."""
    es = build_eval_set(m, items, cfg, out_dir, name, judge)
    return {"dataset": name, **detection_metrics(es.y, probe.decision_function(es.X),
                                                 n_boot=cfg.n_boot, seed=cfg.seed),
            "counts": es.counts}


def table1_sets(m: LoadedModel, sizes: dict[str, int], cfg: EvalConfig, out_dir: str | Path,
                data_dir: str | Path | None = None, judge: Callable | None = None,
                build: Callable[..., EvalSet] = build_eval_set,
                files: dict[str, str | Path] | None = None,
                exclude_questions: Iterable[str] = ()
                ) -> tuple[dict[str, EvalSet], dict[str, dict]]:
    """Table 1's evaluation sets: ``{dataset: EvalSet}``, plus ``{dataset: counts}`` for the
    datasets where one class has no response at all (no balanced set can be formed).

    ``sizes`` maps each dataset to its number of questions (None: all). ``build(m, items, cfg,
    out_dir, name, judge)`` makes one set (Figure 4a passes ``origin.build_base_eval_set``);
    TriviaQA comes from its test split. A name in ``files`` is read from that JSON-lines file
    (:func:`data.load_qa_file`: your own QA set) instead of the bundled data.
    ``exclude_questions``: questions the probe was trained on; an evaluation question equal to
    one of them after normalisation (TriviaQA's test split repeats a few of its training
    questions) is dropped from the drawn items, with a count in the log.
    """
    from .data import load_qa, load_qa_file, subsample
    from .judges import normalize_answer
    from .sampling import EmptyBalancedSetError

    seen = {normalize_answer(q) for q in exclude_questions}
    files = files or {}
    if not isinstance(files, dict):  # papermill's -p passes '{...}' as a string
        raise TypeError(f"QA files must map a set name to a path, got {type(files).__name__} "
                        f"{files!r}; with papermill give it with -y or -f (YAML), not -p")
    sets, empty = {}, {}
    for name, n in sizes.items():
        items = (subsample(load_qa_file(files[name], name), n, cfg.seed) if name in files else
                 load_qa(name, "test" if name == "triviaqa" else None, data_dir, limit=n, seed=cfg.seed))
        kept = [it for it in items if normalize_answer(it.question) not in seen]
        if len(kept) < len(items):
            log.warning("%s: dropped %d of %d drawn questions that the probe was trained on",
                        name, len(items) - len(kept), len(items))
            items = kept
        try:
            sets[name] = build(m, items, cfg, out_dir, name, judge)
        except EmptyBalancedSetError as e:
            empty[name] = empty_counts(Path(out_dir) / f"responses_{name}.jsonl", items, e)
    return sets, empty


def empty_counts(path: Path, items: Sequence, error: Exception) -> dict:
    """Counts of a dataset that could not be balanced: only the asked ``items``' records in
    ``path`` count (a file kept from a larger earlier run holds more questions)."""
    asked = {it.qid for it in items}
    counts = split_by_label([r for r in read_jsonl(path) if r["qid"] in asked])[2]
    return {**counts, "balanced_per_class": 0, "error": str(error)}


def baseline_metrics(probe: Probe, train_fs: FeatureSet, split: dict, sets: dict[str, EvalSet],
                     seeds: Sequence[int], keep_scores: bool = False, n_boot: int = 0,
                     seed: int = 0) -> list[dict]:
    """Table 1's random-neuron baselines, each matched in neuron count (Section 2, Table 1).

    Per seed, two classifiers trained on the identification training rows (same label scheme,
    an L2 logistic regression on standardised features): ``kind="random_<seed>"`` on as many
    random neurons as the probe uses (every non-zero weight: the H-Neurons and the
    negative-weight neurons), the baseline of the probe itself; ``kind="hsize_random_<seed>"``
    on as many as there are H-Neurons, the baseline of ``kind="h_neurons_refit"``, the
    H-Neurons alone refit with the same recipe. One row per classifier and dataset, with the
    number of neurons it reads (``k``) and the share of responses it flags as hallucinated
    (``flagged``: where its threshold falls); with ``keep_scores``, also each response's
    decision value (``scores``, in the order of the set's ``y``), for ROC curves. With
    ``n_boot``, the H-Neuron refit's rows also carry a bootstrap 95% AUROC interval
    (``auroc_ci``, resampled within class with ``seed``), so it can be judged on its own.
    """
    from .probe import random_neuron_set

    h, used = probe.h_neurons(), probe.neurons(0)
    if h.size == 0:
        raise ValueError("the probe selected no H-Neuron: there is nothing to compare with "
                         "random neurons (try a larger C in the identification chapter)")
    X, y = probe_training_rows(probe, train_fs, split)
    sets_, kinds = [h], ["h_neurons_refit"]
    for prefix, k in (("random", used.size), ("hsize_random", h.size)):
        sets_ += [random_neuron_set(k, h.n_layers, h.n_neurons, seed=s) for s in seeds]
        kinds += [f"{prefix}_{s}" for s in seeds]
    return _subset_rows(X, y, dict(zip(kinds, sets_)), sets, keep_scores,
                        {"h_neurons_refit": n_boot} if n_boot else None, seed)


def _subset_rows(X: np.ndarray, y: np.ndarray, neuron_sets: dict[str, NeuronSet],
                 sets: dict[str, EvalSet], keep_scores: bool = False,
                 intervals: dict[str, int] | None = None, seed: int = 0) -> list[dict]:
    """Train one classifier per named neuron set on (X, y) (:func:`probe.subset_probes`) and
    score it on every evaluation set: one row per classifier (``kind``) and dataset, with the
    share of responses it flags (``flagged``). ``intervals``: kind -> bootstrap resamples for
    an ``auroc_ci`` of that kind's rows."""
    from .probe import subset_probes

    intervals, rows = intervals or {}, []
    for (kind, ns), clf in zip(neuron_sets.items(), subset_probes(X, y, list(neuron_sets.values()))):
        for name, es in sets.items():
            scores = clf.decision_function(es.X)
            d = detection_metrics(es.y, scores, n_boot=intervals.get(kind, 0), seed=seed)
            rows.append({"kind": kind, "dataset": name, "k": ns.size, "accuracy": d["accuracy"],
                         "auroc": d["auroc"], "n": d["n"], "flagged": d["flagged"],
                         **({"auroc_ci": d["auroc_ci"]} if intervals.get(kind) else {}),
                         **({"scores": scores.tolist()} if keep_scores else {})})
    return rows


def screen_baseline(probe: Probe, train_fs: FeatureSet, split: dict, sets: dict[str, EvalSet]
                    ) -> tuple[list[dict], dict]:
    """A stronger baseline than random neurons (not in the paper): the individually best ones.

    On the probe's own training rows every neuron is scored alone by its AUROC
    (:func:`probe.screened_neuron_set`); classifiers with the recipe of :func:`baseline_metrics`
    are trained on the top neurons: ``kind="hsize_screen"``, as many as there are H-Neurons,
    ranked by AUROC (more active on hallucinations, like the H-Neurons); ``kind="screen"``, as
    many as the probe reads, ranked by distance from 0.5 (either direction, like the probe's
    positive and negative weights). Returns those rows and how the two selections overlap:
    ``h_in_screen`` H-Neurons among the ``hsize_screen`` neurons, and ``h_screen_ranks``, each
    H-Neuron's rank (1 = best) among all neurons by single-neuron AUROC.
    """
    from .probe import screened_neuron_set
    from .stats import column_aurocs

    h, used = probe.h_neurons(), probe.neurons(0)
    if h.size == 0:
        raise ValueError("the probe selected no H-Neuron: there is nothing to screen against")
    X, y = probe_training_rows(probe, train_fs, split)
    auc, shape = column_aurocs(X, y), (h.n_layers, h.n_neurons)  # [L*N]: each neuron alone
    chosen = {"hsize_screen": screened_neuron_set(auc, h.size, *shape),
              "screen": screened_neuron_set(auc, used.size, *shape, two_sided=True)}
    rank = np.empty(auc.size, dtype=np.int64)
    rank[np.argsort(-auc, kind="stable")] = np.arange(1, auc.size + 1)
    overlap = {"h_neurons": h.size, "h_in_screen": int(np.isin(h.flat, chosen["hsize_screen"].flat).sum()),
               "h_screen_ranks": rank[h.flat].tolist(), "neurons": X.shape[1],
               "probe_neurons": used.size}
    return _subset_rows(X, y, chosen, sets), overlap


def screen_frame(ours: dict[str, dict], rows: Sequence[dict], screen_rows: Sequence[dict]
                 ) -> pd.DataFrame:
    """AUROC per dataset: the probe, the H-Neurons refit, and the screened and random neurons at
    the H-Neurons' count and at the probe's (``rows``: :func:`baseline_metrics`; ``screen_rows``:
    :func:`screen_baseline`), with half the width of the probe's 95% AUROC interval as a guide
    to the noise (the refits are single classifiers and have no interval of their own)."""
    df = pd.DataFrame([*rows, *screen_rows])
    out = {}
    for name, g in df.groupby("dataset", sort=False):
        mean = lambda prefix: float(g[g.kind.str.startswith(prefix)].auroc.mean())  # noqa: E731
        lo, hi = ours[name]["auroc_ci"]
        out[name] = {"n per class": ours[name]["n_pos"], "probe": ours[name]["auroc"],
                     "probe CI half-width": (hi - lo) / 2,
                     "H-Neurons refit": mean("h_neurons_refit"), "screen (H count)": mean("hsize_screen"),
                     "random (H count)": mean("hsize_random_"), "screen (probe count)": mean("screen"),
                     "random (probe count)": mean("random_")}
    return pd.DataFrame.from_dict(out, orient="index")


def screen_verdict(row: pd.Series | dict, min_per_class: int = MIN_PER_CLASS) -> str | None:
    """One dataset's row of :func:`screen_frame`: "H-Neurons ahead", "screened ahead" or "within
    the noise guide" (the H-Neurons refit against the screened neurons of its count, the gap
    counted only beyond half the probe's 95% AUROC interval); "no comparison" where the
    screened neurons sit below chance by more than that guide (a reversal, :func:`reversals`:
    being ahead of them says nothing); None under ``min_per_class``."""
    if row["n per class"] < min_per_class:
        return None
    diff, band = row["H-Neurons refit"] - row["screen (H count)"], row["probe CI half-width"]
    if not (np.isfinite(diff) and np.isfinite(band)):
        return "undetermined (a missing or non-finite AUROC)"
    if row["screen (H count)"] < 0.5 - band:  # the screen reverses on this set: no yardstick
        return "no comparison (the screened neurons are reversed here)"
    # a gap equal to the guide (the two are often ratios of the same count of pairs) is within
    return ("within the noise guide" if not abs(diff) > band + 1e-9 else
            "H-Neurons ahead" if diff > 0 else "screened ahead")


def screen_reading(frame: pd.DataFrame, overlap: dict, min_per_class: int = MIN_PER_CLASS) -> list[str]:
    """What the screen baseline says: how many H-Neurons are individually best; per dataset with
    enough answers, the H-Neurons refit against the screened neurons of its count; and a tally.

    The two are single classifiers without intervals, so a gap counts only when it exceeds half
    the probe's own 95% AUROC interval on that set (a rough guide to the noise, not a test).
    """
    ranks = np.asarray(overlap["h_screen_ranks"])
    out = [f"{overlap['h_in_screen']} of the {overlap['h_neurons']} H-Neurons "
           f"{'is' if overlap['h_in_screen'] == 1 else 'are'} among the "
           f"{overlap['h_neurons']} individually best neurons; their ranks by single-neuron AUROC "
           f"run from {ranks.min():,} to {ranks.max():,} of {overlap['neurons']:,} (median {np.median(ranks):,.0f})."]
    tally = {"H-Neurons ahead": [], "screened ahead": [], "within the noise guide": []}  # others added as met
    for name, r in frame.iterrows():
        verdict = screen_verdict(r, min_per_class)
        if verdict is None:
            out.append(f"{name}: too few responses to compare (fewer than {min_per_class} per class).")
            continue
        # three decimals, and the difference of the two printed values, so the line adds up as
        # read and a gap near the guide shows on which side of it it falls
        diff = round(r["H-Neurons refit"], 3) - round(r["screen (H count)"], 3)
        band = r["probe CI half-width"]
        tally.setdefault(verdict, []).append(name)
        out.append(f"{name}: H-Neurons refit {r['H-Neurons refit']:.3f} vs screened "
                   f"{r['screen (H count)']:.3f} ({diff:+.3f}; noise guide +/-{band:.3f}: {verdict}); "
                   f"random {r['random (H count)']:.2f}.")
    if any(tally.values()):
        out.append("Against the individually best neurons of the same count: " + "; ".join(
            f"{k} on {len(v)} ({', '.join(v) or 'none'})" for k, v in tally.items()) + ".")
    return out + reversals(frame, overlap, min_per_class)


def reversals(frame: pd.DataFrame, overlap: dict | None = None,
              min_per_class: int = MIN_PER_CLASS) -> list[str]:
    """One sentence per classifier of :func:`screen_frame` whose AUROC lies far below chance on
    a dataset with enough answers: more than the noise guide (half the probe's 95% interval
    there) below 0.5. Such a classifier was trained on the identification rows and separates
    the classes the other way on this set: a signal that flips between training and
    evaluation, not detection. ``overlap`` (:func:`screen_baseline`) gives the neuron counts."""
    o = overlap or {}
    n_h, n_p = o.get("h_neurons"), o.get("probe_neurons")
    names = {"H-Neurons refit": "the H-Neurons refit",
             "screen (H count)": f"the {n_h} individually best neurons" if n_h else
             "the individually best neurons at the H-Neurons' count",
             "random (H count)": "random neurons of the H-Neurons' count (mean over seeds)",
             "screen (probe count)": (f"the {n_p} individually best neurons (either direction)" if n_p
                                      else "the individually best neurons at the probe's count"),
             "random (probe count)": "random neurons of the probe's count (mean over seeds)"}
    out = []
    for name, r in frame.iterrows():
        band = r.get("probe CI half-width", np.nan)
        if r["n per class"] < min_per_class or not np.isfinite(band):
            continue
        for col, what in names.items():
            v = r.get(col, np.nan)
            if np.isfinite(v) and v < 0.5 - band:
                chosen = "chosen and trained" if col.startswith("screen") else "trained"
                one = col == "H-Neurons refit"
                out.append(f"{name}: {what} {'reaches' if one else 'reach'} AUROC {v:.2f}, {0.5 - v:.2f} "
                           f"below chance, beyond the noise guide ({band:.2f}): a reversal. "
                           f"{chosen.capitalize()} on the identification rows, {'it separates' if one else 'they separate'} "
                           "the classes the other way on this set: a signal that flips between "
                           "training and evaluation, not detection.")
    return out


def counts_frame(sets: dict[str, EvalSet], empty: dict[str, dict]) -> pd.DataFrame:
    """One row per dataset: answers judged, hallucinated / faithful, balanced size, and how the
    balanced set's answer spans were found (``balanced_span_*``: they count the balanced set's
    responses, not every answer)."""
    rows = {}
    for k, es in sets.items():
        spans = {f"balanced_span_{a}": n for a, n in es.counts["answer_spans"].items()}
        rows[k] = {**{c: v for c, v in es.counts.items() if c != "answer_spans"}, **spans}
    rows.update({k: {c: v for c, v in d.items() if c != "error"} for k, d in empty.items()})
    return pd.DataFrame(rows).T.astype("Int64")


def baseline_summary(rows: Sequence[dict]) -> pd.DataFrame:
    """Per dataset: random-neuron accuracy and AUROC (mean, sd over seeds) at the probe's neuron
    count, and the H-Neuron refit (with its AUROC interval where :func:`baseline_metrics`
    computed one; NaN otherwise) beside random neurons of the H-Neurons' count."""
    df = pd.DataFrame(rows)
    out = {}
    for name, g in df.groupby("dataset", sort=False):
        rand, refit = g[g.kind.str.startswith("random")], g[g.kind == "h_neurons_refit"]
        small = g[g.kind.str.startswith("hsize_random")]
        acc, auc, auc_h = mean_spread(rand.accuracy), mean_spread(rand.auroc), mean_spread(small.auroc)
        acc_h = mean_spread(small.accuracy)
        ci = refit.auroc_ci.iloc[0] if "auroc_ci" in refit and isinstance(refit.auroc_ci.iloc[0], list) \
            else [np.nan, np.nan]
        ci = np.asarray(ci, dtype=float)  # a NaN end comes back from JSON as null (None)
        out[name] = {"random accuracy": acc["mean"], "random accuracy sd": acc["std"],
                     "random AUROC": auc["mean"], "random AUROC sd": auc["std"], "seeds": acc["n"],
                     "random neurons": float(rand.k.iloc[0]) if "k" in rand else float("nan"),
                     "H-Neurons refit accuracy": float(refit.accuracy.iloc[0]),
                     "H-Neurons refit AUROC": float(refit.auroc.iloc[0]),
                     "H-Neurons refit AUROC CI low": float(ci[0]),
                     "H-Neurons refit AUROC CI high": float(ci[1]),
                     "random (H-Neuron count) accuracy": acc_h["mean"],
                     "random (H-Neuron count) AUROC": auc_h["mean"],
                     "random (H-Neuron count) AUROC sd": auc_h["std"]}
    return pd.DataFrame.from_dict(out, orient="index")


def degenerate_accuracy_note(d: dict) -> str:
    """Why a percentile bootstrap of accuracy has no width (one metrics dict of
    :func:`stats.detection_metrics`): where the threshold flags every response, or none, each
    resample of a balanced set is right on exactly half, so the interval collapses onto 0.5 and
    says nothing about the sampling noise. "" where the interval has a width."""
    lo, hi = d["accuracy_ci"]
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo != hi:
        return ""
    flagged = d.get("flagged")
    if flagged == 1.0:
        return "the threshold flags every response: interval undefined"
    if flagged == 0.0:
        return "the threshold flags no response: interval undefined"
    return "every resample gives the same accuracy: interval undefined"


def flat_threshold(d: dict) -> str:
    """"the threshold flags every response" (or "no response") where a classifier's threshold
    put a balanced set wholly on one side, so its accuracy is 50% whatever its ranking; ""
    otherwise (:func:`degenerate_accuracy_note`'s first two cases, whose head it returns)."""
    note = degenerate_accuracy_note(d) if d.get("flagged") in (0.0, 1.0) else ""
    return note.split(":")[0]


def metrics_frame(ours: dict[str, dict]) -> pd.DataFrame:
    """Our probe's Table 1 cells: n per class, accuracy and AUROC with their 95% intervals, and
    a note where the accuracy interval is degenerate (:func:`degenerate_accuracy_note`)."""
    return pd.DataFrame.from_dict({k: {"n per class": d["n_pos"], "accuracy": d["accuracy"],
                                       "accuracy CI low": d["accuracy_ci"][0],
                                       "accuracy CI high": d["accuracy_ci"][1], "AUROC": d["auroc"],
                                       "AUROC CI low": d["auroc_ci"][0], "AUROC CI high": d["auroc_ci"][1],
                                       "note": degenerate_accuracy_note(d)}
                                   for k, d in ours.items()}, orient="index")


def _flagged_share(row: dict) -> float:
    """A classifier row's share of responses flagged hallucinated: its ``flagged``, or (files
    written before that was stored) its stored ``scores`` above 0; NaN without either."""
    f = row.get("flagged")
    if f is not None and np.isfinite(f):
        return float(f)
    sc = row.get("scores")
    return float(np.mean(np.asarray(sc, dtype=np.float64) > 0)) if sc is not None and len(sc) else float("nan")


def _flagged_shares(rows: Sequence[dict], datasets: Sequence[str], prefix: str) -> np.ndarray:
    """The finite flagged shares (:func:`_flagged_share`) of the ``rows`` on ``datasets``
    whose kind starts with ``prefix``."""
    v = np.array([_flagged_share(r) for r in rows if r["dataset"] in datasets and r["kind"].startswith(prefix)],
                 dtype=np.float64)
    return v[np.isfinite(v)]


FLAGGED_CLASSIFIERS = {"random_": "random (probe count)", "h_neurons_refit": "H-Neurons refit",
                       "hsize_random_": "random (H count)"}


def flagged_frame(ours: dict[str, dict], rows: Sequence[dict]) -> pd.DataFrame:
    """Where each classifier's threshold falls on each evaluation set: the share of responses it
    flags as hallucinated (decision value above 0). ``ours``: the probe's
    :func:`stats.detection_metrics` per dataset (its ``flagged``); ``rows``:
    :func:`baseline_metrics` (each row's ``flagged``, or its ``scores``). Per dataset: the probe,
    and for the random classifiers at the probe's count, the H-Neurons refit and the random ones
    at the H-Neurons' count, the lowest, mean and highest share over seeds, and how many
    classifiers (``n``)."""
    out = {}
    for k, d in ours.items():
        row = {"n per class": d["n_pos"], "probe": float(d.get("flagged", np.nan))}
        for prefix, name in FLAGGED_CLASSIFIERS.items():
            v = _flagged_shares(rows, [k], prefix)
            row.update({f"{name} min": v.min() if v.size else np.nan,
                        f"{name} mean": v.mean() if v.size else np.nan,
                        f"{name} max": v.max() if v.size else np.nan, f"{name} n": v.size})
        out[k] = row
    return pd.DataFrame.from_dict(out, orient="index")


def threshold_reading(flagged: pd.DataFrame, ours: dict[str, dict], rows: Sequence[dict]) -> str:
    """What :func:`flagged_frame` says about accuracy on balanced sets (half hallucinated): each
    classifier's range of flagged shares, how many classifier-and-set pairs flag fewer or more
    than half, and the classifiers that flag none or all (their accuracy is exactly 50% there,
    whatever their AUROC). Unbalanced sets (``n_neg`` differs from ``n_pos``) are left out."""
    keep = [k for k, d in ours.items() if d.get("n_neg", d["n_pos"]) == d["n_pos"] and k in flagged.index]
    if not keep:
        return "No balanced set with a stored share of flagged responses."
    f = flagged.loc[keep]
    pct = lambda x: f"{100 * x:.0f}%"  # noqa: E731
    span = lambda v: pct(v.min()) if pct(v.min()) == pct(v.max()) else f"{pct(v.min())} to {pct(v.max())}"  # noqa: E731
    parts, below, above, total = [], 0, 0, 0
    probe = f["probe"].to_numpy(dtype=float)
    if np.isfinite(probe).any():
        p = probe[np.isfinite(probe)]
        parts.append(f"the probe {span(p)}")
        below, above, total = int((p < 0.5).sum()), int((p > 0.5).sum()), p.size
    for prefix, name in FLAGGED_CLASSIFIERS.items():
        v = _flagged_shares(rows, keep, prefix)
        if v.size:
            label = {"random (probe count)": "random neurons of the probe's count",
                     "H-Neurons refit": "the H-Neurons refit",
                     "random (H count)": "random neurons of the H-Neurons' count"}[name]
            parts.append(f"{label} {span(v)}"
                         + (f" ({v.size} classifier-set pairs)" if v.size > 1 else ""))
            below, above, total = below + int((v < 0.5).sum()), above + int((v > 0.5).sum()), total + v.size
    if not total:
        return "No balanced set with a stored share of flagged responses."
    text = ("Share of responses flagged hallucinated on the balanced sets (where half are): "
            + "; ".join(parts) + f". Of all {total} classifier-set pairs, {below} flag fewer than "
            f"half and {above} more than half.")
    extremes = [f"the probe on {k} flags {pct(ours[k]['flagged'])} (accuracy {ours[k]['accuracy']:.2f}, "
                f"AUROC {ours[k]['auroc']:.2f})" for k in keep if ours[k].get("flagged") in (0.0, 1.0)]
    extremes += [f"{r['kind']} on {r['dataset']} flags {pct(_flagged_share(r))} (accuracy "
                 f"{r['accuracy']:.2f}, AUROC {r['auroc']:.2f})" for r in rows
                 if r["dataset"] in keep and _flagged_share(r) in (0.0, 1.0)]
    if extremes:
        text += (" A classifier that flags none or all of a balanced set is right on exactly half of "
                 "it, whatever its ranking: " + "; ".join(extremes) + ".")
    return text + (" Where a threshold sits off-centre, accuracy is pulled towards 50% whatever "
                   "the ranking, for the random baselines as for the probe; AUROC, which needs no "
                   "threshold, is the comparison that does not depend on it.")


def all_answers_frame(ours: dict[str, dict], baselines: pd.DataFrame) -> pd.DataFrame:
    """Per dataset scored on every judged answer (``full_eval_set``): class counts, our
    AUROC with its 95% interval, and the random-neuron AUROC (mean, sd over seeds; NaN when
    no baseline ran)."""
    def rand(col: str, k: str) -> float:
        return float(baselines[col].get(k, np.nan)) if len(baselines) else float("nan")

    return pd.DataFrame.from_dict({k: {"hallucinated": d["n_pos"], "faithful": d["n_neg"], "AUROC": d["auroc"],
                                       "AUROC CI low": d["auroc_ci"][0], "AUROC CI high": d["auroc_ci"][1],
                                       "random AUROC": rand("random AUROC", k),
                                       "random AUROC sd": rand("random AUROC sd", k)}
                                   for k, d in ours.items()}, orient="index")


def table1_comparison(ours: dict[str, dict], baselines: pd.DataFrame, total_neurons: int,
                      label: str, datasets: Sequence[str], n_used: int | None = None,
                      n_h: int | None = None) -> pd.DataFrame:
    """Table 1 (accuracy, %) with the paper's rows and ours, each row labelled by its source.

    "ratio (per mille)" is, as the paper's caption defines it, "the proportion of total neurons
    that are selected for classifiers": for each of our rows, the neurons that classifier reads
    over ``total_neurons``. "neurons read" gives the count (``n_used``: the probe's non-zero
    weights, positive and negative; ``n_h``: the H-Neurons, its positive ones), which the paper
    does not state for its rows. Besides the probe and random classifiers of its size, our rows
    give the H-Neurons alone (refit) and random classifiers of the H-Neurons' count (the
    like-for-like pair), when ``baselines`` has them.
    """
    from .paper import table1_frame

    ratio = lambda k: 1000 * k / total_neurons if k is not None else float("nan")  # noqa: E731
    ref = table1_frame()
    rows = {}
    for model, g in ref.groupby("model", sort=False):
        g = g.set_index("dataset")
        for col, what in (("h_neurons", "H-Neurons"), ("random", "random")):
            rows[f"paper: {model}, {what}"] = {**g[col].to_dict(),
                                               "ratio (per mille)": g.ratio_permille.iloc[0]}
    rows[probe_row(label)] = {**{k: 100 * d["accuracy"] for k, d in ours.items()},
                                        "ratio (per mille)": ratio(n_used), "neurons read": n_used}
    if len(baselines):
        k_random = baselines["random neurons"].iloc[0]
        rows[f"{label}, random (L2, standardised; mean over seeds)"] = {
            **(100 * baselines["random accuracy"]).to_dict(), "ratio (per mille)": ratio(k_random),
            "neurons read": k_random}
        small = baselines.get("random (H-Neuron count) accuracy")
        if small is not None and small.notna().any():
            rows[f"{label}, H-Neurons alone (refit, L2, standardised)"] = {
                **(100 * baselines["H-Neurons refit accuracy"]).to_dict(),
                "ratio (per mille)": ratio(n_h), "neurons read": n_h}
            rows[f"{label}, random, as many as H-Neurons (L2, standardised)"] = {
                **(100 * small).to_dict(), "ratio (per mille)": ratio(n_h), "neurons read": n_h}
    return pd.DataFrame(rows).T.reindex(columns=[*datasets, "ratio (per mille)", "neurons read"])


def probe_row(label: str) -> str:
    """The row of :func:`table1_comparison` that holds our probe, as identified."""
    return f"{label}, H-Neuron probe (L1, as identified)"


def table1_shown(table: pd.DataFrame, ours: dict[str, dict], label: str) -> tuple[pd.DataFrame, str]:
    """:func:`table1_comparison` as the chapter shows it: accuracies to one decimal, ratios to
    three, counts whole, a blank where the paper states nothing, and our probe's accuracy
    marked ``*`` where it carries no information (:func:`degenerate_accuracy_note`: a
    threshold that flags every response, or none, is right on exactly half of a balanced
    set). Returns the frame and the footnote for the marks ("" with none)."""
    datasets = [c for c in table.columns if c not in ("ratio (per mille)", "neurons read")]
    shown = table.round(1).assign(**{"ratio (per mille)": table["ratio (per mille)"].round(3),
                                      "neurons read": table["neurons read"].astype("Int64")})
    shown = shown.astype(object).where(table.notna().to_numpy(), "")
    row = probe_row(label)
    marks = {k: flat for k in datasets if k in ours and (flat := flat_threshold(ours[k]))}
    for k in marks:
        shown.loc[row, k] = f"{table.loc[row, k]:.1f}*"
    shown = shown.rename(columns={k: f"{k} (accuracy, %)" for k in datasets})
    foot = ("* our probe's accuracy carries no information here: " + "; ".join(
        f"{k}, {flat}, so it is right on exactly half of a balanced set whatever its ranking "
        "(read the AUROC)" for k, flat in marks.items()) + ".") if marks else ""
    return shown, foot


BELOW_CHANCE = "below chance, the ranking reversed"
NOT_DISTINGUISHABLE = "not distinguishable from chance"


def auroc_verdict(lo: float, random_level: float, n_min: int, min_per_class: int = MIN_PER_CLASS,
                  chance: float = 0.5, hi: float = float("nan")) -> str:
    """What an AUROC interval supports (``lo``, ``hi``, ``random_level`` and ``chance`` in one
    unit: fractions, or pass ``chance=50`` for percentages).

    "Above chance" needs the interval's lower end ``lo`` above chance; "above random neurons"
    needs it above ``random_level`` (NaN: no comparison). An interval wholly below chance (its
    upper end ``hi`` under it) is a reversal: the probe ranks the classes the wrong way round,
    measurably ("below chance, the ranking reversed"); ``hi`` NaN (not passed): not
    checked. Under ``min_per_class`` responses in the smaller class (``n_min``) the percentile
    bootstrap is unreliable: no verdict.
    """
    if n_min < min_per_class:
        return f"too few responses to conclude (fewer than {min_per_class} per class)"
    if not np.isfinite(lo):  # NaN scores (e.g. overflowing features): no interval, no verdict
        return "undetermined (no finite AUROC interval)"
    if hi < chance:  # False for NaN
        return BELOW_CHANCE
    if lo <= chance:
        return NOT_DISTINGUISHABLE
    if np.isnan(random_level):
        return "above chance"
    return "above chance, " + ("and above random neurons" if lo > random_level else
                               "but not distinguishable from random neurons")


def metrics_verdict(m: dict, random_level: float = float("nan"),
                    min_per_class: int = MIN_PER_CLASS) -> str:
    """:func:`auroc_verdict` of one metrics dict (:func:`stats.detection_metrics`): its AUROC
    interval, both ends, and its smaller class (``n_neg`` missing: a balanced set, as many as
    ``n_pos``)."""
    lo, hi = m["auroc_ci"]
    return auroc_verdict(lo, random_level, min(m["n_pos"], m.get("n_neg", m["n_pos"])), min_per_class,
                         hi=hi)


def random_auroc(baselines: pd.DataFrame, k: str) -> float:
    """The random classifiers' mean AUROC on dataset ``k`` (:func:`baseline_summary`), NaN
    where none was scored."""
    return float(baselines.loc[k, "random AUROC"]) if k in baselines.index else float("nan")


def overall_reading(ours: dict[str, dict], baselines: pd.DataFrame, control: dict | None,
                    spans: dict[str, dict], min_per_class: int = MIN_PER_CLASS,
                    notes: dict[str, str] | None = None, probe_recipe: str | None = None) -> str:
    """Table 1 in one paragraph: on how many datasets (with enough answers) the probe is above
    chance and random neurons under the default span rule (marked *narrowly* where
    :func:`narrow_margin` finds the margin under the random mean's standard error), and where
    it is above chance only; that this pair differs in recipe as well as neurons
    (``probe_recipe``: :func:`probe_recipe_text`), and what the like-for-like pair (the
    H-Neurons refit against as many random neurons, one recipe) gives; on how many of the
    supported datasets the one-rule refit (:func:`span_rule_control`; None: not run) stays above
    chance; how far span length alone goes (``spans``: dataset -> :func:`span_diagnostic`
    under the default rule); and which datasets need no control because both classes got the
    same span rule there. It ends with one line per scored dataset (:func:`credit_lines`:
    credited or not, and why; ``notes``: dataset -> a caution added to its line)."""
    def verdict(k: str) -> str:
        return metrics_verdict(ours[k], random_auroc(baselines, k), min_per_class)

    text = _overall_paragraph(ours, baselines, control, spans, min_per_class, verdict, probe_recipe)
    lines = credit_lines(ours, baselines, control, spans, notes, min_per_class)
    if not lines:
        return text
    return text + "\n\nEach scored dataset, credited to the H-Neurons or not:\n" + "\n".join(
        f"- {line}" for line in lines)


def _narrow(k: str, lo: float, baselines: pd.DataFrame, mean_col: str = "random AUROC",
            sd_col: str = "random AUROC sd") -> bool:
    """:func:`narrow_margin` of dataset ``k``'s lower end ``lo`` over a random mean of
    ``baselines`` (False where a column is missing)."""
    if k not in baselines.index or mean_col not in baselines or sd_col not in baselines:
        return False
    b = baselines.loc[k]
    return narrow_margin(lo, float(b[mean_col]), float(b[sd_col]), int(b.get("seeds", 0) or 0))


def like_for_like(k: str, baselines: pd.DataFrame, n_min: int,
                  min_per_class: int = MIN_PER_CLASS) -> dict | None:
    """The like-for-like pair on dataset ``k`` (:func:`baseline_summary`): the H-Neurons refit
    with the random classifiers' recipe, its AUROC interval and verdict against random neurons
    of the H-Neurons' count (same recipe, same count), and whether that margin is narrow.
    None where ``baselines`` has no refit interval for ``k``."""
    cols = ("H-Neurons refit AUROC CI low", "random (H-Neuron count) AUROC")
    if k not in baselines.index or not all(c in baselines for c in cols):
        return None
    b = baselines.loc[k]
    lo, hi = float(b["H-Neurons refit AUROC CI low"]), float(b["H-Neurons refit AUROC CI high"])
    r_h = float(b["random (H-Neuron count) AUROC"])
    if not np.isfinite(lo):
        return None
    v = auroc_verdict(lo, r_h, n_min, min_per_class, hi=hi)
    narrow = v == SUPPORTING[0] and _narrow(k, lo, baselines, "random (H-Neuron count) AUROC",
                                            "random (H-Neuron count) AUROC sd")
    return {"auroc": float(b["H-Neurons refit AUROC"]), "ci": (lo, hi), "random": r_h,
            "verdict": v, "narrow": narrow, "n_min": n_min}


def probe_recipe_text(probe: Probe) -> str:
    """How the chapter's probe was fit, in words, for setting it beside the random classifiers
    (an L2 fit on standardised features): "an L1 fit on unstandardised CETT means (3-vs-1, C
    chosen in chapter 2) reading 68 neurons (37 H-Neurons and 31 negative-weight ones)"."""
    measure = probe.config.get("features", {}).get("measure", "cett")
    return (f"an {probe.config.get('penalty', 'l1').upper()} fit on "
            f"{'standardised' if probe.standardize else 'unstandardised'} "
            f"{'CETT' if measure == 'cett' else 'raw activation'} means ({probe.label_scheme}, C "
            f"chosen in chapter 2) reading {probe.neurons(0).size} neurons ("
            f"{noun(probe.h_neurons().size, 'H-Neuron')} and {probe.neurons(-1).size} negative-weight ones)")


def credit_lines(ours: dict[str, dict], baselines: pd.DataFrame, control: dict | None,
                 spans: dict[str, dict], notes: dict[str, str] | None = None,
                 min_per_class: int = MIN_PER_CLASS) -> list[str]:
    """One line per dataset with a verdict: "credited" to the H-Neurons (the probe's verdict
    supports the claim and keeps its credit against the span confound, :func:`credit_map`'s
    rule) or "not credited", and why: the probe's verdict (with *narrowly*), the span control
    where the classes got different span rules (the one-rule refit with span length alone
    under that same rule beside it: the credit rule only asks the refit to clear chance, not to
    beat span length), the like-for-like pair (:func:`like_for_like`; where a credited dataset
    is not supported by it, the line says the credit rests on a pair that differs in recipe),
    and ``notes`` (dataset -> a caution, e.g. the judge's)."""
    ctl = (control or {}).get("datasets", {})
    out = []
    for k, d in ours.items():
        n_min = min(d["n_pos"], d.get("n_neg", d["n_pos"]))
        if n_min < min_per_class:
            continue
        v = metrics_verdict(d, random_auroc(baselines, k), min_per_class)
        supported = v in SUPPORTING
        why = span_credit(v, spans.get(k), ctl.get(k), min_per_class) if supported else None
        credited = supported and why is None
        narrow = " (narrowly)" if v == SUPPORTING[0] and _narrow(k, d["auroc_ci"][0], baselines) else ""
        parts = [f"the probe vs random neurons: {v}{narrow}"]
        entry, shared = ctl.get(k), shared_span_rule(spans.get(k))
        if shared:
            parts.append("both classes share one span rule in this set"
                         + (", but the probe's training spans differ by class" if entry and "metrics" in entry else ""))
        if entry and "metrics" in entry:
            c = entry["metrics"]
            cn = min(c["n_pos"], c.get("n_neg", c["n_pos"]))
            # with no detection under the default rule, the control has nothing to test
            outcome = (span_control_outcome(entry, min_per_class) if v.startswith("above chance")
                       else "has nothing to test (no detection under the default rule)")
            parts.append(f"span control {outcome} (one-rule refit {c['auroc']:.2f} "
                         f"{_auroc_ci_text(*c['auroc_ci'], cn)}"
                         + (f", paired drop {span_drop_text(entry['drop'])}" if finite_drop(entry) else "")
                         + _span_alone_note(entry) + ")")
        elif supported and not shared:
            parts.append("span control not run")
        lfl = like_for_like(k, baselines, n_min, min_per_class)
        if lfl:
            parts.append(f"like for like (H-Neurons refit vs as many random neurons, one recipe): "
                         f"{lfl['auroc']:.2f} {_auroc_ci_text(*lfl['ci'], n_min)} vs {lfl['random']:.2f}, "
                         f"{lfl['verdict']}" + (" (narrowly)" if lfl["narrow"] else ""))
            if credited and lfl["verdict"] != SUPPORTING[0]:
                parts.append("so the credit rests on the probe-vs-random pair alone, which differs "
                             "in recipe as well as in neurons")
        if (notes or {}).get(k):
            parts.append(notes[k])
        out.append(f"{k}: {'credited' if credited else 'not credited'}: " + "; ".join(parts).rstrip(".") + ".")
    return out


def _overall_paragraph(ours: dict[str, dict], baselines: pd.DataFrame, control: dict | None,
                       spans: dict[str, dict], min_per_class: int, verdict: Callable[[str], str],
                       probe_recipe: str | None) -> str:
    """The paragraph of :func:`overall_reading`, before its per-dataset lines."""

    names = lambda ks: ", ".join(ks) if ks else "none"  # noqa: E731
    scored = [k for k, d in ours.items() if min(d["n_pos"], d.get("n_neg", d["n_pos"])) >= min_per_class]
    if not scored:
        return (f"No dataset has {min_per_class} or more answers per class: this run cannot say "
                "whether the H-Neurons detect hallucinations on unseen questions.")
    verdicts = {k: verdict(k) for k in scored}
    both = [k for k in scored if verdicts[k] == "above chance, and above random neurons"]
    above = [k for k in scored if verdicts[k] == "above chance" or k in both]
    marked = [k + (" narrowly" if _narrow(k, ours[k]["auroc_ci"][0], baselines) else "") for k in both]
    text = (f"Of the {noun(len(scored), 'dataset')} with at least {min_per_class} answers per class "
            f"({names(scored)}), the probe is above chance and above random neurons on "
            f"{len(both)} ({names(marked)}) under the default span rule.")
    if len(both) < len(above):
        alone = [k for k in above if k not in both]
        text += f" It is above chance with no random-neuron baseline to compare on {names(alone)}."
    level = [k for k in scored if verdicts[k] == "above chance, but not distinguishable from random neurons"]
    if level:
        text += f" It is above chance but not distinguishable from random neurons on {names(level)}."
    pairs = {k: p for k in scored if (p := like_for_like(
        k, baselines, min(ours[k]["n_pos"], ours[k].get("n_neg", ours[k]["n_pos"])), min_per_class))}
    if pairs:
        text += (" That comparison differs in recipe as well as in neurons: the probe is "
                 + (probe_recipe or "chapter 2's L1 fit")
                 + ", the random classifiers L2 fits on standardised features. Like for like (the "
                 "H-Neurons alone refit with the random classifiers' recipe, against as many random "
                 "neurons), the refit is ")
        groups: dict[str, list[str]] = {}
        for k, p in pairs.items():
            groups.setdefault(p["verdict"], []).append(k + (" narrowly" if p["narrow"] else ""))
        text += "; ".join(f"{v} on {names(ks)}" for v, ks in groups.items()) + "."
    same = [k for k in scored if shared_span_rule(spans.get(k))]  # no gold alias in either class
    if same:
        def same_note(k: str) -> str:
            note = f"{k}: {verdicts[k]}"
            entry = (control or {}).get("datasets", {}).get(k, {})
            c = entry.get("metrics")
            if c:  # the refit differs from the probe in its *training* spans only
                cv = metrics_verdict(c, min_per_class=min_per_class)
                note += f"; the one-rule refit gives AUROC {c['auroc']:.2f} ({cv})"
                if finite_drop(entry):
                    lo, hi = entry["drop"]["drop_ci"]
                    note += (f", a paired drop (default minus one rule) of {span_drop_text(entry['drop'])}"
                             + (", so the training rows' span rule alone moves this AUROC measurably"
                                if lo > 0 or hi < 0 else ""))
                readable = ("above chance", NOT_DISTINGUISHABLE, BELOW_CHANCE)
                if cv.startswith(readable) and verdicts[k].startswith(readable) and \
                        cv.split(",")[0] != verdicts[k].split(",")[0]:
                    note += " and changes the verdict"
            if span_credit(verdicts[k], spans.get(k), entry, min_per_class):
                note += ", so the detection there cannot be credited to the H-Neurons"
            return note
        text += (f" On {names(same)} no answer contains a gold alias, so both classes share one "
                 "span rule in the evaluation set: its spans cannot tell the classes apart there, but "
                 "the probe's training spans still differ by class, which the one-rule refit checks: "
                 + "; ".join(same_note(k) for k in same) + ".")
    reversed_ = [k for k in scored if verdicts[k] == BELOW_CHANCE]
    if reversed_:
        text += (f" On {names(reversed_)} the interval lies wholly below 0.5: the probe ranks the "
                 "two classes measurably the wrong way round there, which is not detection in the "
                 "paper's sense.")
    confounded = [k for k in above if k not in same]
    if not confounded:
        return text
    if control is None:
        return text + (" The span control did not run, so the other verdicts are not checked "
                       "against the span confound.")
    ctl = control["datasets"]
    outcome = {k: span_control_outcome(ctl.get(k), min_per_class) for k in confounded}
    kept = [k for k in confounded if outcome[k] == "survives"]
    alone = [f"{k} {spans[k]['AUROC of span length alone']:.2f}" for k in confounded if k in spans]
    text += (f" Of the datasets where it clears chance and the random neurons, {len(confounded)} "
             f"gave the two classes different span rules ({names(confounded)}); {len(kept)} of them "
             f"{'stays' if len(kept) == 1 else 'stay'} above chance when the probe is refit with one span rule for both classes "
             f"({names(kept)})"
             + (f"; span length alone reaches {', '.join(alone)} under the default rule" if alone else "")
             + ".")
    of = lambda o: [k for k in confounded if outcome[k] == o]  # noqa: E731
    drops = lambda ks: ", ".join(f"{k} {span_drop_text(ctl[k]['drop'])}" for k in ks)  # noqa: E731
    if of("fails"):
        text += (f" On {names(of('fails'))} the detection that the default rule shows does not survive "
                 "once both classes get their answer spans from the same rule: the AUROC drop from "
                 "the default rule to the one-rule refit, paired over the same responses, is "
                 f"{drops(of('fails'))}, above 0; it cannot be credited to the H-Neurons.")
    if of("inconclusive"):
        text += (f" On {names(of('inconclusive'))} the detection is not shown to survive: the one-rule refit is "
                 "not distinguishable from chance, but the paired AUROC drop from the default rule "
                 f"({drops(of('inconclusive'))}) does not lie above 0, so the control is too uncertain "
                 "to tell a real fall from noise. The detection there is not credited to the "
                 "H-Neurons (the positive claim is not established), nor refuted by the control.")
    if of("unpaired"):
        text += (f" On {names(of('unpaired'))} the one-rule refit is not distinguishable from chance "
                 "and no paired drop is stored to tell a fall from noise (rerun the control), so the "
                 "detection cannot be credited to the H-Neurons.")
    if of("not run"):
        text += (f" The control did not run on {names(of('not run'))}, so the detection there is not "
                 "checked against the span confound and cannot be credited to the H-Neurons.")
    if of("undetermined"):
        text += (f" On {names(of('undetermined'))} the refit cannot be read (too few responses or "
                 "no finite interval).")
    if not kept:
        return text
    held = "; ".join(k + note for k in kept if (note := survival_note(ctl[k]) + _span_alone_note(ctl[k])))
    return text + (
        (" The detection survives the span control on every one of them" if len(kept) == len(confounded)
         else f" Only on {names(kept)} does the detection survive one span rule for both classes")
        + " (the refit stays above chance" + (f": {held}" if held else "") + "). The refit is not set against random neurons "
        "(they were fit on the default spans), so the control shows that detection remains, not "
        "how much of the margin over random neurons it keeps.")


def capped_label(counts: dict | None, n_pos: int, n_neg: int, detail: bool = True) -> str:
    """How the larger sets of :func:`full_eval_set` were drawn, from a set's ``counts`` (which
    hold the judged totals and ``max_per_class``): "up to 300 per class (300 of 553
    hallucinated, all 16 faithful)". Without counts (a result file from before they were
    stored), the larger class's size stands for the cap. ``detail=False``: "up to 300 per
    class" alone."""
    def part(n: int, total: int | None, name: str) -> str:
        return (f"{n} {name}" if total is None else f"all {n} {name}" if n == total else
                f"{n} of {total} {name}")

    c = counts or {}
    if c and c.get("max_per_class") is None and "hallucinated" in c:
        return "every judged answer" + (f" ({n_pos} hallucinated, {n_neg} faithful)" if detail else "")
    cap = c.get("max_per_class", max(n_pos, n_neg))
    return f"up to {cap} per class" + (f" ({part(n_pos, c.get('hallucinated'), 'hallucinated')}, "
                                       f"{part(n_neg, c.get('faithful'), 'faithful')})" if detail else "")


def credit_map(ours: dict[str, dict], baselines: pd.DataFrame, control: dict | None,
               spans: dict[str, dict], min_per_class: int = MIN_PER_CLASS) -> dict[str, bool | None]:
    """Per dataset of ``ours``: True where the default-rule verdict supports the claim and
    keeps its credit against the span confound (:func:`span_credit`), False where it supports
    it but loses that credit, None where there is no supporting verdict. ``control``: one
    group of :func:`span_rule_control` (dataset -> entry), or None."""
    out = {}
    for k, d in ours.items():
        v = metrics_verdict(d, random_auroc(baselines, k), min_per_class)
        out[k] = (None if v not in SUPPORTING else
                  span_credit(v, spans.get(k), (control or {}).get(k), min_per_class) is None)
    return out


def capped_reading(ours_all: dict[str, dict], base_all: pd.DataFrame, control: dict | None,
                   spans: dict[str, dict], counts: dict[str, dict] | None = None,
                   min_per_class: int = MIN_PER_CLASS,
                   balanced: dict[str, bool | None] | None = None) -> str:
    """The larger sets of :func:`full_eval_set` (``ours_all``: dataset -> metrics) in one
    paragraph, with the same span-credit rule as the balanced sets (:func:`span_credit`): a
    verdict that supports the claim keeps its credit where the one-rule refit scored on these
    same sets (``control["all_answers"]``, :func:`span_rule_control`'s ``also``) stays above
    chance, or where both classes share one span rule (``spans``: :func:`span_diagnostic` of
    these sets) and that refit does not fall to chance; otherwise the credit is withheld and
    the reason given.
    ``counts``: each set's counts, for the cap (:func:`capped_label`). ``balanced``: the
    balanced sets' :func:`credit_map`; where it and these sets disagree on a dataset, the
    paragraph says so: the larger set keeps the balanced set's smaller class and adds answers
    of the larger one, so the two are not independent evidence, and the balanced verdict (the
    paper's protocol) is the one that stands."""
    counts = counts or {}
    n_min = lambda d: min(d["n_pos"], d.get("n_neg", d["n_pos"]))  # noqa: E731
    scored = [k for k, d in ours_all.items() if n_min(d) >= min_per_class]
    caps = {c.get("max_per_class") for c in counts.values()} if counts else \
        {max(max(d["n_pos"], d.get("n_neg", 0)) for d in ours_all.values())} if ours_all else set()
    head = (f"On the larger sets (up to {caps.pop()} per class)" if len(caps) == 1 and None not in caps
            else "On the larger sets")
    if not scored:
        return f"{head} no dataset has {min_per_class} or more answers in its smaller class: no verdict."
    ctl = (control or {}).get("all_answers", {})
    names = lambda ks: ", ".join(ks)  # noqa: E731
    notes, mine = [], {}  # mine: each set's credit, as credit_map gives the balanced sets'
    for k in scored:
        v = metrics_verdict(ours_all[k], random_auroc(base_all, k), min_per_class)
        if v not in SUPPORTING:
            notes.append(f"{k}: {v}")
            mine[k] = None
            continue
        why = span_credit(v, spans.get(k), ctl.get(k), min_per_class)
        mine[k] = why is None
        shown = v + (" (narrowly)" if v == SUPPORTING[0] and _narrow(k, ours_all[k]["auroc_ci"][0], base_all) else "")
        shared = shared_span_rule(spans.get(k))
        survives = span_control_outcome(ctl.get(k), min_per_class) == "survives"
        refit = (f"the one-rule refit on these answers stays above chance{survival_note(ctl[k])}"
                 f"{_span_alone_note(ctl[k])}" if survives else "")
        if why is None:
            notes.append(f"{k}: {shown}, " + (
                "credited (both classes share one span rule here" + (f"; {refit}" if survives else "") + ")"
                if shared else f"credited ({refit})" if survives else
                "unchecked (the one-rule refit on these answers cannot be read)"))
        elif shared:
            notes.append(f"{k}: {shown}, with one span rule for both classes here, but the probe was "
                         f"trained on spans that differ by class and is {span_credit_text(why, ctl.get(k))}")
        else:
            notes.append(f"{k}: {shown} under the default rule, but {span_credit_text(why, ctl.get(k))}")
    text = f"{head}, each dataset's verdict with its span check: " + "; ".join(notes) + "."
    differ = [k for k in scored if balanced and k in balanced and bool(balanced[k]) != bool(mine[k])]
    if differ:
        text += (f" On {names(differ)} this differs from the balanced set's verdict ("
                 + "; ".join(f"{k}: balanced set " + ("credited" if balanced[k] else "not credited")
                             for k in differ)
                 + f"). {SHARED_ANSWERS[0].upper()}{SHARED_ANSWERS[1:]}: the balanced verdict (the "
                 "paper's protocol) stands, and the difference shows how much it depends on which "
                 "answers were drawn.")
    return text


def narrow_margin(lo: float, mean: float, sd: float, n: int) -> bool:
    """Whether ``lo`` is above ``mean`` by less than its standard error ``sd / sqrt(n)`` (two
    random sets at least; False where any number is missing)."""
    if not (n >= 2 and np.isfinite(lo) and np.isfinite(mean) and np.isfinite(sd)) or lo <= mean:
        return False
    return bool(lo - mean < sd / np.sqrt(n))


NARROWLY = " (narrowly: by less than the random mean's standard error)"


def narrowly(verdict: str, lo: float, mean: float, sd: float, n: int) -> str:
    """:data:`NARROWLY` for an "above random neurons" verdict (:func:`auroc_verdict`) whose
    margin :func:`narrow_margin` finds under the random mean's standard error, else ""."""
    return NARROWLY if verdict == SUPPORTING[0] and narrow_margin(lo, mean, sd, n) else ""


def narrow_margin_note(lo: float, mean: float, sd: float, n: int) -> str:
    """A note where an AUROC interval's lower end ``lo`` clears the random classifiers' mean by
    less than that mean's standard error (``sd`` over ``n`` random sets, ``sd / sqrt(n)``): the
    "above random neurons" verdict then rests on a level that another draw of random neurons
    could move past it. "" otherwise (or with fewer than two sets: no standard error)."""
    if not narrow_margin(lo, mean, sd, n):
        return ""
    se = sd / np.sqrt(n)
    return (f" (narrowly: the interval's lower end clears their mean by {lo - mean:.3f}, less than "
            f"the standard error of a mean over {n} random sets, {se:.3f}; another draw of random "
            "neurons could undo it)")


def _below_chance_note(mean: float, sd: float) -> str:
    """A note for random classifiers whose mean AUROC sits below 0.5: being above them is then
    no more than being above chance; two spreads below it, they carry a signal that points the
    other way on this set than on the training rows."""
    if not mean < 0.5:
        return ""
    if np.isfinite(sd) and mean + 2 * sd < 0.5:
        return (" (more than two spreads below chance; the ± is the spread over seeds on the same "
                "answers, not the sampling noise of this evaluation set, so this need not be a real "
                "reversal; if it is one, these random neurons point the other way here than on the "
                "3-vs-1 training rows; either way, being above them adds nothing to being above chance)")
    return " (below chance on average, so being above them adds nothing to being above chance)"


def reading(ours: dict[str, dict], baselines: pd.DataFrame, empty: dict[str, dict],
            min_per_class: int = MIN_PER_CLASS) -> list[str]:
    """One sentence per dataset saying what the numbers support, and when they are too few.

    "Above chance" needs the AUROC interval's lower end above 0.5; "above random neurons" needs
    it above the random classifiers' mean AUROC. Under ``min_per_class`` responses per class
    the percentile bootstrap is unreliable, so no verdict is given.
    """
    out = []
    for k, d in ours.items():
        lo, hi = d["auroc_ci"]
        rnd = random_auroc(baselines, k)
        n_neg = d.get("n_neg", d["n_pos"])  # balanced sets: as many faithful as hallucinated
        verdict = metrics_verdict(d, rnd, min_per_class)
        base = ""
        if k in baselines.index:
            b = baselines.loc[k]
            base = (f"; random neurons {rnd:.2f} ± {b['random AUROC sd']:.2f}"
                    + _below_chance_note(rnd, b["random AUROC sd"])
                    + narrow_margin_note(lo, rnd, b["random AUROC sd"], int(b.get("seeds", 0))))
            if not np.isnan(b.get("random (H-Neuron count) AUROC", np.nan)):
                r_h, sd_h = b["random (H-Neuron count) AUROC"], b["random (H-Neuron count) AUROC sd"]
                lo_h, hi_h = b.get("H-Neurons refit AUROC CI low", np.nan), b.get("H-Neurons refit AUROC CI high", np.nan)
                ci_h = (f" {_auroc_ci_text(lo_h, hi_h, min(d['n_pos'], n_neg))} "
                        f"({auroc_verdict(lo_h, r_h, min(d['n_pos'], n_neg), min_per_class, hi=hi_h)})"
                        if np.isfinite(lo_h) else "")
                base += (f"; the H-Neurons alone (refit) {b['H-Neurons refit AUROC']:.2f}{ci_h} vs as many "
                         f"random neurons {r_h:.2f} ± {sd_h:.2f}" + _below_chance_note(r_h, sd_h)
                         + narrow_margin_note(lo_h, r_h, sd_h, int(b.get("seeds", 0))))
        ci = _auroc_ci_text(lo, hi, min(d["n_pos"], n_neg))
        size = (f"{d['n_pos']} per class" if n_neg == d["n_pos"] else
                f"{d['n_pos']} hallucinated / {n_neg} faithful answers")
        acc = (f"accuracy {d['accuracy']:.2f}" if n_neg == d["n_pos"] else
               f"accuracy {d['accuracy']:.2f} (not comparable with 0.5: classes unbalanced)")
        out.append(f"{k}: AUROC {d['auroc']:.2f} {ci} with {size}, {verdict}{base}; {acc}.")
    for k, d in empty.items():
        out.append(f"{k}: no balanced set ({d['hallucinated']} hallucinated, {d['faithful']} faithful "
                   f"among {d['questions']} answers).")
    return out
