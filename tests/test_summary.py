"""The scorecard page: it reads the chapters' result files and applies their verdict rules."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from hneurons_utils import detection, summary
from hneurons_utils.detection import auroc_verdict
from hneurons_utils.drift import drift_verdict
from hneurons_utils.transfer import transfer_reading

MODEL = "tiny-model"


def write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def metric(auroc, lo, hi, n_pos, n_neg=None, accuracy=0.6):
    return {"accuracy": accuracy, "accuracy_ci": [0.5, 0.7], "auroc": auroc, "auroc_ci": [lo, hi],
            "n": n_pos + (n_neg or n_pos), "n_pos": n_pos, "n_neg": n_neg or n_pos}


def drop(d, lo, hi):
    return {"default": 0.8, "control": 0.8 - d, "drop": d, "drop_ci": [lo, hi], "n_pos": 30,
            "n_neg": 30, "left_out": 0}


def slope(bench, group, s, lo, hi, n=20):
    return {"bench": bench, "group": group, "slope_pp": s, "ci_lo": lo, "ci_hi": hi, "n_items": n}


def drift(mean_rank, p_t, p_layer, k=5):
    return {"n_h_neurons": k, "mean_rank": mean_rank, "mean_rank_ci": [mean_rank - 0.1, mean_rank + 0.1],
            "t_test": {"p_value": p_t}, "mann_whitney": {"p_value": p_t},
            "random_layer_matched": {"p_value": p_layer}}


@pytest.fixture
def results(tmp_path):
    """A results folder as chapters 2-5 write it, with one case of each verdict."""
    root = tmp_path / "results"
    m = root / MODEL
    write(m / "identification" / "results.json", {"n_h_neurons": 9, "per_mille": 0.2, "C": 3.0})
    base = [{"dataset": d, "kind": k, "accuracy": 0.55, "auroc": 0.6, "n": 40,
             "k": 5 if k == "h_neurons_refit" else 15}
            for d in ("triviaqa", "nq_open") for k in ("random_0", "random_1", "h_neurons_refit")]
    write(m / "generalisation" / "table1.json", {
        "ours": {"triviaqa": metric(0.8, 0.7, 0.9, 30), "nq_open": metric(0.55, 0.4, 0.7, 20)},
        "baselines": base,
        "empty": {"bioasq": {"faithful": 0, "hallucinated": 12, "questions": 12}}})
    write(m / "generalisation" / "all_answers.json",
          {"ours": {"triviaqa": metric(0.78, 0.72, 0.85, 200, 30)}, "baselines": []})
    write(m / "generalisation" / "span_control.json",
          {"rule": "content", "datasets": {"triviaqa": {"metrics": metric(0.62, 0.45, 0.8, 30),
                                                        "drop": drop(0.18, -0.04, 0.40)}}})
    write(m / "generalisation" / "screen_baseline.json", {
        "overlap": {"h_neurons": 9, "h_in_screen": 2},
        "table": [{"index": "triviaqa", "n per class": 30, "probe CI half-width": 0.1,
                   "H-Neurons refit": 0.6, "screen (H count)": 0.85}]})
    write(m / "behaviour" / "judge_agreement.json", {"rows": [
        {"benchmark": "faitheval", "split": "test", "judge": "rule", "precision": 0.22,
         "precision_ci": [0.06, 0.55]},
        {"benchmark": "falseqa", "split": "test", "judge": "rule", "precision": 1.0,
         "precision_ci": [0.85, 1.0]}]})
    write(m / "behaviour" / "figure3.json", {
        "slopes": [slope("falseqa", "h_neurons", 5, 2, 8), slope("falseqa", "diff", 4, 1, 7),
                   slope("faitheval", "h_neurons", 1, -3, 5), slope("faitheval", "diff", 0, -4, 4),
                   slope("sycophancy", "h_neurons", 1e-16, -1e-15, 1e-15),
                   slope("sycophancy", "diff", 1e-16, 1e-16, 1e-15),
                   slope("jailbreak", "h_neurons", 2, 0, 4, n=4), slope("jailbreak", "diff", 2, 1, 3, n=4)],
        "table": [{"bench": "falseqa", "group": "h_neurons", "alpha": 1.0, "rate": 0.9, "n_scored": 20}]})
    o = root / "twin-sft" / "origin"
    write(o / "results.json", {"n_h_neurons": 5, "offline_pair": True,
                               "drift": {"up + down (paper)": drift(0.7, 0.01, 0.2)}})
    table = [{"dataset": "triviaqa", "probe": "H-Neuron probe (unchanged)", "n": 60, "auroc": 70.0,
              "lo": 58.0, "hi": 80.0, "accuracy": 60.0},
             {"dataset": "triviaqa", "probe": "random neurons (L2)", "n": 60, "auroc": 52.0,
              "lo": 45.0, "hi": 56.0, "accuracy": 50.0},
             {"dataset": "nq_open", "probe": "H-Neuron probe (unchanged)", "n": 8, "auroc": 90.0,
              "lo": 70.0, "hi": 100.0, "accuracy": 60.0}]
    write(o / "transfer.json", {"table": table, "empty": {"bioasq": {"faithful": 1, "hallucinated": 30}}})
    return root


def row(card, result, contains):
    hit = card[(card.result == result) & card.claim.str.contains(contains, regex=False)]
    assert len(hit) == 1, (result, contains, card.claim.tolist())
    return hit.iloc[0]


def test_scorecard_reads_every_chapter_and_applies_their_rules(results):
    card = summary.scorecard(results, MODEL)
    assert list(card.columns) == summary.COLUMNS
    assert row(card, "H-Neurons (§2)", "sparse").reading == "within the paper's range"
    assert "9 neurons, 0.200 per mille" in row(card, "H-Neurons (§2)", "sparse").ours
    write(results / MODEL / "identification" / "stability.json",
          {"n_resamples": 10, "jaccard": [0.3] * 10, "frequency": [0.5] * 9})
    ex = row(summary.scorecard(results, MODEL), "H-Neurons (§2)", "sparse")
    assert "10 resamples" in ex.ours and "(Jaccard) 0.30" in ex.ours
    assert ex.reading == "within the paper's range; the set itself does not reproduce under resampling"
    rows = [{"share": 0.0, "draw": 0, "moved": 0, "size": 9, "jaccard": 1.0}] + [
        {"share": sh, "draw": d, "moved": 5, "size": 9, "jaccard": 0.5 if (sh, d) == (0.01, 1) else 1.0}
        for sh in (0.001, 0.01) for d in range(3)]
    write(results / MODEL / "identification" / "rounding.json", {"h_neurons": 9, "rows": rows})
    ro = row(summary.scorecard(results, MODEL), "H-Neurons (§2)", "sparse")
    assert ("refitted with one float16 step on 0.1%, 1% of the stored features: 0/3, 1/3 refits give "
            "another set") in ro.ours
    assert ro.reading.endswith("; which neurons pass the L1 threshold turns on the last bit of the stored features")
    write(results / MODEL / "identification" / "rounding.json",
          {"h_neurons": 9, "rows": [dict(x, jaccard=1.0) for x in rows]})
    ro = row(summary.scorecard(results, MODEL), "H-Neurons (§2)", "sparse")
    assert "0/3, 0/3 refits give another set" in ro.ours and "last bit" not in ro.reading
    (results / MODEL / "identification" / "rounding.json").unlink()
    side = {"objective": 600.0, "tol": 1e-8, "n_iter": 36, "n_h_neurons": 9, "per_mille": 0.2,
            "n_nonzero": 20, "val_auroc": 0.9, "val_accuracy": 0.8}
    loose = dict(side, objective=800.0, tol=1e-4, n_h_neurons=150, per_mille=3.3, n_nonzero=300)
    tol = {"C": 3.0, "held_out": True, "n_rows": 200, "max_iter": 2000, "jaccard": 0.1, "probe": side, "refit": loose}
    write(results / MODEL / "identification" / "tolerance.json", tol)
    tr = row(summary.scorecard(results, MODEL), "H-Neurons (§2)", "sparse")
    assert ("refit at solver tolerance 0.0001 (the probe: 1e-08): 150 H-Neurons (3.30 per mille), Eq. 4's "
            "objective 33% above the probe's") in tr.ours
    assert tr.reading.endswith("; a solver stopped early (tolerance 0.0001) would report 150 H-Neurons: not "
                               "sparse: more than 1 per mille")
    write(results / MODEL / "identification" / "tolerance.json", dict(tol, probe=loose, refit=side))
    tr = row(summary.scorecard(results, MODEL), "H-Neurons (§2)", "sparse")
    assert tr.reading.endswith("; the probe is not Eq. 4's minimiser (a refit at another solver tolerance is "
                               "lower), so its count measures the solver as well as the model")
    (results / MODEL / "identification" / "tolerance.json").unlink()
    ws = dict(side, solve="working-set", objective=600.0001)
    sv = {"C": 3.0, "held_out": True, "n_rows": 200, "max_iter": 2000, "jaccard": 1.0,
          "probe": dict(side, solve="full"), "refit": ws, "ws_rounds": 3, "ws_size": 1040, "n_neurons": 45000}
    write(results / MODEL / "identification" / "solve.json", sv)
    sr = row(summary.scorecard(results, MODEL), "H-Neurons (§2)", "sparse")
    assert "; the working-set route to Eq. 4's minimum gives the same set" in sr.ours
    assert "routes" not in sr.reading
    write(results / MODEL / "identification" / "solve.json",
          dict(sv, jaccard=0.5, refit=dict(ws, n_h_neurons=12, objective=612.0)))
    sr = row(summary.scorecard(results, MODEL), "H-Neurons (§2)", "sparse")
    assert "refit by the working-set route: 12 H-Neurons, overlap (Jaccard) 0.50, objectives 2% apart" in sr.ours
    assert sr.reading.endswith("; the two routes to Eq. 4's minimum give different sets")
    write(results / MODEL / "identification" / "solve.json", {"skipped": "no memory"})
    assert "route" not in row(summary.scorecard(results, MODEL), "H-Neurons (§2)", "sparse").ours
    (results / MODEL / "identification" / "solve.json").unlink()
    # the paper's Section 2 counts every non-zero weight: that ratio is given too, and read
    write(results / MODEL / "identification" / "results.json",
          {"n_h_neurons": 9, "per_mille": 0.2, "C": 3.0, "n_nonzero": 30, "per_mille_nonzero": 0.667})
    nz = row(summary.scorecard(results, MODEL), "H-Neurons (§2)", "sparse")
    assert "0.667 per mille counting the 21 negative weights too" in nz.ours
    assert nz.reading.startswith("within the paper's range; counting the non-zero weights, sparse (under "
                                 "1 per mille), but outside the paper's range")
    write(results / MODEL / "identification" / "probe_parts.json",
          {"held_out": True, "probe_auroc": 0.99, "h_neurons_auroc": 0.84, "negative_auroc": 0.95})
    pp = row(summary.scorecard(results, MODEL), "H-Neurons (§2)", "sparse")
    assert ("AUROC hallucinated vs faithful (held out): whole probe 0.99, its H-Neurons alone 0.84, its "
            "negative-weight neurons alone 0.95") in pp.ours
    assert pp.reading.endswith("; most of the probe's detection comes from the neurons it weighs negatively, "
                               "not from the H-Neurons")
    (results / MODEL / "identification" / "probe_parts.json").unlink()
    tq = row(card, "Table 1 (§2)", "TriviaQA")
    # the one-rule refit is at chance, but the paired drop's interval includes 0: inconclusive
    assert tq.reading.startswith(
        "the probe: not credited to the H-Neurons: span control inconclusive (not shown to survive one span rule "
        "for both classes: the refit is not distinguishable from chance, but the AUROC drop from the "
        "default rule to one span rule for both classes (paired bootstrap over the same responses) is "
        "+18.0 [-4.0, +40.0] points, which includes 0: the control is too uncertain to tell). Under the "
        "default rule: above chance, and above random neurons")
    assert "AUROC 80.0 [70.0, 90.0]" in tq.ours and "up to 200 per class (200 hallucinated, 30 faithful): AUROC" in tq.ours
    # the numbers are the whole probe's, and say so
    assert tq.ours.startswith("the probe (5 H-Neurons + 10 negative-weight neurons): accuracy 60.0 vs "
                              "random 55.0 (the paper's measure); AUROC 80.0")
    assert ("one span rule for both classes: AUROC 62.0 [45.0, 80.0], AUROC drop from the default "
            "rule (paired) +18.0 [-4.0, +40.0] points") in tq.ours
    assert "; the 9 individually best neurons: AUROC 85.0 (H-Neurons refit 60.0)" in tq.ours
    assert "the H-Neurons alone (refit, 5 neurons): AUROC 60.0 (no random neurons of its size scored)" in tq.ours
    # the verdict is named as the probe's, the H-Neurons alone read right after it
    assert ("Under the default rule: above chance, and above random neurons; the H-Neurons alone "
            "(refit, default span rule): no interval stored for the refit (rerun chapter 3); up to "
            "200 per class: ") in tq.reading
    assert tq.reading.endswith("one span rule: not distinguishable from chance; against the "
                               "individually best: screened ahead")
    # the larger sets face the same span check; no control ran on them, so the credit is withheld
    assert ("; up to 200 per class: not credited to the H-Neurons: span control not run on these "
            "answers") in tq.reading and "; under the default rule: above chance;" in tq.reading
    everyone = results / MODEL / "generalisation" / "all_answers.json"
    write(everyone, {"ours": {"triviaqa": metric(0.78, 0.72, 0.85, 200, 30)},  # random: 0.75 there
                     "baselines": [{"dataset": "triviaqa", "kind": f"random_{i}", "accuracy": 0.7,
                                    "auroc": 0.75, "n": 230} for i in range(2)]
                     + [{"dataset": "triviaqa", "kind": "h_neurons_refit", "accuracy": 0.7,
                         "auroc": 0.7, "n": 230}]})
    # a verdict that does not support the claim (not above random neurons) loses no credit,
    # as in chapter 3: the control is reported beside it
    t1 = json.loads((results / MODEL / "generalisation" / "table1.json").read_text())
    t1["ours"]["nq_open"] = metric(0.7, 0.55, 0.85, 20)  # above chance; random neurons at 60
    write(results / MODEL / "generalisation" / "table1.json", t1)
    write(results / MODEL / "generalisation" / "span_control.json",
          {"rule": "content", "datasets": {"triviaqa": {"metrics": metric(0.62, 0.45, 0.8, 30)},
                                           "nq_open": {"metrics": metric(0.55, 0.4, 0.7, 20)}}})
    nq = row(summary.scorecard(results, MODEL), "Table 1 (§2)", "NQ-Open")
    assert nq.reading == ("the probe: above chance, but not distinguishable from random neurons; the "
                          "H-Neurons alone (refit, default span rule): no interval stored for the "
                          "refit (rerun chapter 3); one span rule: not distinguishable from chance")
    # where both classes already share a span rule (no gold alias: NonExist) the evaluation
    # spans cannot confound, but the probe's training spans still differed by class: a refit
    # that falls to chance withholds the credit there too, as in chapter 3 ...
    t1["ours"]["nq_open"] = metric(0.8, 0.7, 0.9, 20)  # above chance and random neurons
    t1["spans"] = {"nq_open": {"hallucinated: alias spans": 0.0, "faithful: alias spans": 0.0}}
    write(results / MODEL / "generalisation" / "table1.json", t1)
    nq = row(summary.scorecard(results, MODEL), "Table 1 (§2)", "NQ-Open")
    assert nq.reading.startswith("the probe: not credited to the H-Neurons: span control without a paired drop")
    assert "Under the default rule: above chance, and above random neurons" in nq.reading
    # ... and without a refit the shared rule keeps it
    write(results / MODEL / "generalisation" / "span_control.json",
          {"rule": "content", "datasets": {"triviaqa": {"metrics": metric(0.62, 0.45, 0.8, 30)}}})
    nq = row(summary.scorecard(results, MODEL), "Table 1 (§2)", "NQ-Open")
    assert nq.reading.startswith("the probe: above chance, and above random neurons")
    tq2 = row(summary.scorecard(results, MODEL), "Table 1 (§2)", "TriviaQA")
    assert ("; up to 200 per class: above chance, but not distinguishable from random neurons;" in tq2.reading
            and "Under the default rule: above chance, and above random neurons" in tq2.reading)  # balanced: 0.6
    assert "individually best" not in row(card, "Table 1 (§2)", "NQ-Open").ours  # not in the file
    assert row(card, "Table 1 (§2)", "NQ-Open").reading.startswith("the probe: not distinguishable from chance; the H-Neurons alone")
    assert row(card, "Table 1 (§2)", "BioASQ").reading == "cannot be scored on this model"
    assert row(card, "Table 1 (§2)", "NonExist").reading == "not run"
    assert row(card, "Figure 3 (§3)", "FalseQA").reading == (
        "The H-Neuron slope is positive (compliance rises as they are amplified) and lies above the "
        "random neurons': as the paper.")
    assert "90% at alpha 1" in row(card, "Figure 3 (§3)", "FalseQA").ours
    assert row(card, "Figure 3 (§3)", "FaithEval").reading == (  # sentences, not one run-on clause
        "No difference from random neurons detectable (neither confirms nor refutes). The rule "
        "judge's precision on held-out hand labels is 0.22 [0.06, 0.55]: the rates may not measure "
        "compliance.")
    assert "precision" not in row(card, "Figure 3 (§3)", "FalseQA").reading  # a reliable judge: no caveat
    syc = row(card, "Figure 3 (§3)", "Sycophancy")
    assert syc.reading.startswith("Backing down (the wider measure this book's Figure 3 plots: an apology or \"not "
                                  "sure\" counts too): no difference")  # rounding noise, the measure named
    assert syc.ours.startswith("backing down: slope 0.0 [0.0, 0.0]")
    assert row(card, "Figure 3 (§3)", "Jailbreak").reading.startswith("Too few items")
    assert row(card, "Figure 4a (§4)", "TriviaQA").reading == "above chance, and above random neurons"
    assert row(card, "Figure 4a (§4)", "NQ-Open").reading.startswith("too few")  # 4 per class
    path = results / "twin-sft" / "origin" / "transfer.json"
    tr = json.loads(path.read_text())
    tr["table"][2]["n"] = 2  # one answer per class: an AUROC of 0 or 100, no interval
    write(path, tr)
    assert "90.0 (one answer per class: no interval) on 2 answers" in row(
        summary.scorecard(results, MODEL), "Figure 4a (§4)", "NQ-Open").ours
    assert row(card, "Figure 4a (§4)", "BioASQ").reading == "cannot be scored on this pair"
    b = row(card, "Figure 4b (§4)", "changed less")
    assert "changed less" in b.reading and "not against layer-matched" in b.reading
    assert "offline Gemma-3-270M twin" in b.ours
    assert not (results / MODEL / "summary").exists()  # reading creates nothing


def test_missing_chapters_say_which_to_run(tmp_path):
    card = summary.scorecard(tmp_path / "nothing", MODEL)
    assert (card.claim == "(not run)").all() and len(card) == 4
    assert card.reading.str.contains("02_identification").any()
    assert card.reading.str.contains("05_origin").any()
    assert card.chapter.tolist() == ["2 identification", "3 generalisation", "4 behaviour", "5 origin"]
    assert card.result.tolist() == ["H-Neurons (§2)", "Table 1 (§2)", "Figure 3 (§3)", "Figure 4 (§4)"]
    assert not (tmp_path / "nothing").exists()


def test_scorecard_html_links_each_chapter_and_escapes_the_rest():
    card = pd.DataFrame([{"result": "Table 1 (§2)", "chapter": "3 generalisation", "claim": "a < b",
                          "paper (Gao et al. 2025)": "", "ours": "x & y", "reading": "ok"}])
    out = summary.scorecard_html(card)
    assert '<a href="03_generalisation.html">3 generalisation</a>' in out
    assert "a &lt; b" in out and "x &amp; y" in out and "<details>" not in out


def test_long_scorecard_cells_fold_after_their_first_clause():
    """A long cell keeps its headline in view and folds the rest, uncut, into <details>."""
    long = "accuracy 84.4 vs random 65.0 (the paper's measure); " + "; ".join(f"check {i} & more" for i in range(40))
    card = pd.DataFrame([{"result": "Table 1 (§2)", "chapter": "3 generalisation", "claim": "c",
                          "paper (Gao et al. 2025)": "", "ours": long, "reading": "short"}])
    out = summary.scorecard_html(card)
    head, rest = out.split("<details><summary>more</summary>")
    assert head.endswith("accuracy 84.4 vs random 65.0 (the paper&#x27;s measure)")
    assert rest.startswith("check 0 &amp; more; check 1") and "check 39 &amp; more</details>" in rest
    assert out.count("<details>") == 1  # the short reading is not folded


def test_malformed_result_files_are_named(results):
    path = results / MODEL / "behaviour" / "figure3.json"
    path.write_text("{not json")
    with pytest.raises(summary.ResultsFileError, match="figure3.json.*not valid JSON"):
        summary.scorecard(results, MODEL)
    path.write_text(json.dumps({"slopes": []}))
    with pytest.raises(summary.ResultsFileError, match=r"figure3.json: missing field\(s\) \['table'\]"):
        summary.scorecard(results, MODEL)


def test_drift_and_slope_verdicts():
    assert drift_verdict(drift(0.7, 0.001, 0.01)).endswith("also against layer-matched random sets")
    assert drift_verdict(drift(0.45, 0.9, 0.9)).startswith("no evidence")  # CI holds 0.5
    assert drift_verdict(drift(0.3, 0.99, 0.99)).startswith("changed more")  # CI below 0.5
    beyond = drift(0.3, 0.99, 0.99)
    beyond["random_layer_matched"]["p_value_more"] = 0.01  # random sets rarely rank as low
    assert drift_verdict(beyond).startswith("changed more")
    few = drift(0.21, 0.9, 0.86, k=6)  # a narrow bootstrap, random sets as low
    few["random_layer_matched"]["p_value_more"] = 0.14
    assert drift_verdict(few) == ("mean rank below 0.5, but layer-matched random sets of 6 neurons "
                                  "reach a mean rank as low as the H-Neurons' in 14% of draws: no "
                                  "evidence either way")
    few.update(n_h_neurons=2, mean_rank_ci=None, ranks=[0.18, 0.24])  # too few for an interval
    assert drift_verdict(few) == ("layer-matched random sets of 2 neurons reach a mean rank as high "
                                  "as the H-Neurons' in 86% of draws and one as low in 14.0% (a "
                                  "direction needs under 5% for the paper's, under 2.5% for the "
                                  "opposite, with the mean rank on that side of 0.5): no evidence "
                                  "either way")
    # the direction nobody hypothesised needs two-sided 5%: one tail at 4.3% is not enough
    few["random_layer_matched"]["p_value_more"] = 0.043
    assert drift_verdict(few).endswith("in 4.3% (a direction needs under 5% for the paper's, under "
                                       "2.5% for the opposite, with the mean rank on that side of "
                                       "0.5): no evidence either way")
    few["mean_rank"] = 0.55  # a tail under its threshold, the mean rank on the other side
    few["random_layer_matched"]["p_value_more"] = 0.01
    assert "sits on the other side of 0.5, so the difference from those sets is their layers'" in (
        drift_verdict(few))
    few["mean_rank"] = 0.21
    few["random_layer_matched"]["p_value_more"] = 0.02
    assert drift_verdict(few).startswith("changed more than layer-matched random sets of 2 neurons "
                                         "(p = 0.02, under the 0.025")
    few["random_layer_matched"].update(p_value=0.043, p_value_more=0.99)
    few.update(mean_rank=0.8, ranks=[0.75, 0.85])  # the paper's own direction: one-sided 5%
    assert drift_verdict(few).startswith("changed less than layer-matched random sets")
    assert drift_verdict(drift(0.9, float("nan"), 0.5, k=1)).startswith("too few H-Neurons")
    h = slope("x", "h_neurons", 1, 0, 2)
    assert "against the paper" in summary.slope_verdict(slope("x", "diff", -3, -5, -1), h)
    assert summary.slope_verdict(None, h) == "no random-neuron control to compare with"
    assert summary.slope_verdict(None, None) == "not measured"
    flat = slope("x", "diff", 0, 0, 0)
    assert summary.slope_verdict(flat, h, rates=[1.0] * 7).startswith("at the ceiling")
    assert summary.slope_verdict(flat, h, rates=[0.0, 0.0]).startswith("at the floor")
    assert summary.slope_verdict(flat, h, rates=[1.0, 0.9]).startswith("no difference")


def test_judge_caveat_names_a_judge_never_shown_a_non_compliant_reply():
    rows = [{"benchmark": "falseqa", "split": s, "judge": "rule", "precision": 1.0,
             "precision_ci": [0.85, 1.0], "human_not_complies": 0} for s in ("dev", "test")]
    assert "never checked on a non-compliant reply" in summary.judge_caveat(rows, "falseqa")
    rows[0]["human_not_complies"] = 3  # one split holds rejections: the judge was tested on them
    assert summary.judge_caveat(rows, "falseqa") == ""
    assert summary.judge_caveat(rows, "faitheval") == ""  # no labels for it: nothing to say


def test_auroc_verdict_units_and_transfer_reading():
    assert auroc_verdict(0.6, np.nan, 20) == "above chance"
    assert auroc_verdict(60.0, 55.0, 20, chance=50.0) == "above chance, and above random neurons"
    assert auroc_verdict(60.0, 65.0, 20, chance=50.0).endswith("not distinguishable from random neurons")
    assert auroc_verdict(49.0, 40.0, 20, chance=50.0) == "not distinguishable from chance"
    table = pd.DataFrame([{"dataset": "t", "probe": "H-Neuron probe (unchanged)", "n": 40, "auroc": 70.0,
                           "lo": 55.0, "hi": 80.0, "accuracy": 60.0}])
    (r,) = transfer_reading(table)
    assert r["n_min"] == 20 and r["verdict"] == "above chance" and np.isnan(r["random_mean"])
    (r,) = transfer_reading(table, n_min={"t": 5})
    assert r["verdict"].startswith("too few")


def test_one_response_per_class_gets_no_interval():
    """A bootstrap over one response per class is degenerate: the scorecard says so instead."""
    one = {"auroc": 1.0, "auroc_ci": [1.0, 1.0], "n_pos": 1, "n_neg": 1}
    assert summary._auroc_ci(one) == "100.0 (one response in a class: no interval)"
    assert summary._auroc_ci(dict(one, n_pos=5, n_neg=5, auroc_ci=[0.8, 1.0])) == "100.0 [80.0, 100.0]"


def test_a_directional_slope_verdict_carries_the_same_items_check(results):
    """falseqa's "as the paper" is checked on the items scored at every alpha when chapter 4
    wrote that check: few such items are named as too few, enough are read with the same rule."""
    path = results / MODEL / "behaviour" / "slopes_common_items.json"
    write(path, {"rows": [slope("falseqa", "h_neurons", 0, 0, 0, n=3), slope("falseqa", "diff", 0, 0, 0, n=3)]})
    card = summary.scorecard(results, MODEL)
    assert ": as the paper. Only 3 of 20 items are scored at every alpha, too few" in \
        row(card, "Figure 3 (§3)", "FalseQA").reading
    assert "every alpha" not in row(card, "Figure 3 (§3)", "FaithEval").reading  # no direction, no check
    write(path, {"rows": [slope("falseqa", "h_neurons", 0, -1, 1, n=15), slope("falseqa", "diff", 0, -2, 2, n=15)]})
    assert row(summary.scorecard(results, MODEL), "Figure 3 (§3)", "FalseQA").reading.endswith(
        ": as the paper. On the 15 items scored at every alpha: no difference from random neurons "
        "detectable (neither confirms nor refutes).")
    write(path, {"rows": [slope("falseqa", "h_neurons", 5, 2, 8), slope("falseqa", "diff", 4, 1, 7)]})
    assert row(summary.scorecard(results, MODEL), "Figure 3 (§3)", "FalseQA").reading.endswith(
        ": as the paper.")  # all 20 items scored everywhere: the check adds nothing
    # a verdict without a direction whose same-items check finds one: named, as a lead only
    write(path, {"rows": [slope("faitheval", "h_neurons", -6, -9, -3, n=15), slope("faitheval", "diff", -7, -10, -4, n=15)]})
    fe = row(summary.scorecard(results, MODEL), "Figure 3 (§3)", "FaithEval").reading
    assert "On the 15 items scored at every alpha, though: " in fe and "a lead, not a finding." in fe
    write(path, {"rows": [slope("faitheval", "h_neurons", -6, -9, -3, n=15), slope("faitheval", "diff", -1, -4, 2, n=15)]})
    assert "every alpha" not in row(summary.scorecard(results, MODEL), "Figure 3 (§3)", "FaithEval").reading


def test_min_per_class_also_sets_the_figure3_item_minimum(results):
    assert row(summary.scorecard(results, MODEL), "Figure 3 (§3)", "Jailbreak").reading.startswith("Too few")
    relaxed = summary.scorecard(results, MODEL, min_per_class=3)  # jailbreak has 4 items
    assert ": as the paper." in row(relaxed, "Figure 3 (§3)", "Jailbreak").reading


def test_the_sycophancy_row_reads_the_reply_only_sweep(results):
    from hneurons_utils.behaviour import SYC_BOTH, SYC_REPLY

    write(results / MODEL / "behaviour" / "sycophancy_reply_only.json", {"slopes": [
        slope(SYC_BOTH, "h_neurons", 9, 8, 10), slope(SYC_BOTH, "diff", 9, 8, 10),
        slope(SYC_REPLY, "h_neurons", -6, -9, -3, n=15), slope(SYC_REPLY, "diff", -7, -10, -4, n=15)]})
    r = row(summary.scorecard(results, MODEL), "Figure 3 (§3)", "Sycophancy")
    assert ("; only the reply steered (our extension), backing down: slope -6.0 [-9.0, -3.0], minus "
            "random -7.0 [-10.0, -4.0]") in r.ours
    assert r.reading.startswith("Backing down (the wider measure")  # both turns steered: as before
    assert "): no difference" in r.reading
    assert r.reading.endswith("Only the reply steered (our extension), backing down: the H-Neuron slope "
                              "is negative (compliance falls as they are amplified) and lies below the "
                              "random neurons': against the paper.")
    assert "reply" not in row(summary.scorecard(results, MODEL), "Figure 3 (§3)", "FaithEval").ours


def test_table1_rows_withhold_credit_by_the_span_controls_outcome(results):
    """A fall (the paired drop above 0) reads "span control fails"; a control on the larger sets
    that survives keeps their credit; the H-Neurons alone are judged against random neurons of
    their size when chapter 3 stored the refit's interval; the paper's column pairs each model."""
    gen = results / MODEL / "generalisation"
    write(gen / "span_control.json", {"rule": "content", "datasets": {
        "triviaqa": {"metrics": metric(0.5, 0.3, 0.7, 30), "drop": drop(0.3, 0.1, 0.5)}},
        "all_answers": {"triviaqa": {"metrics": metric(0.7, 0.6, 0.8, 200, 30)}}})
    t1 = json.loads((gen / "table1.json").read_text())
    for r in t1["baselines"]:
        if r["kind"] == "h_neurons_refit":
            r["auroc_ci"] = [0.52, 0.7]
    t1["baselines"] += [{"dataset": "triviaqa", "kind": f"hsize_random_{i}", "accuracy": 0.5,
                         "auroc": a, "n": 60, "k": 5} for i, a in enumerate((0.4, 0.44))]
    write(gen / "table1.json", t1)
    write(gen / "all_answers.json", {"ours": {"triviaqa": metric(0.78, 0.72, 0.85, 200, 30)}, "baselines": [],
                                     "counts": {"triviaqa": {"hallucinated": 553, "faithful": 30,
                                                             "max_per_class": 200}}})
    tq = row(summary.scorecard(results, MODEL), "Table 1 (§2)", "TriviaQA")
    assert tq.reading.startswith("the probe: not credited to the H-Neurons: span control fails (the detection does "
                                 "not survive one span rule for both classes: the refit is not "
                                 "distinguishable from chance, and the AUROC drop")
    assert "+30.0 [+10.0, +50.0] points, above 0). Under the default rule: above chance" in tq.reading
    assert ("; up to 200 per class: above chance (differs from the balanced set, whose verdict stands: "
            "the two sets share answers (a class smaller than the cap is in both whole), so they are "
            "not independent evidence); one span rule:") in tq.reading  # its own control survives, the balanced one fails
    assert "up to 200 per class (200 of 553 hallucinated, all 30 faithful): AUROC 78.0 [72.0, 85.0] " \
           "(one span rule: AUROC 70.0 [60.0, 80.0])" in tq.ours
    assert ("the H-Neurons alone (refit, 5 neurons): AUROC 60.0 [52.0, 70.0] vs 5 random neurons 42.0 ± 2.8"
            in tq.ours)
    assert ("the H-Neurons alone (refit, default span rule): above chance, and above random neurons "
            "(which sit below chance: that adds nothing to above chance)") in tq.reading
    nx = row(summary.scorecard(results, MODEL), "Table 1 (§2)", "NonExist")
    assert nx["paper (Gao et al. 2025)"] == ("accuracy, H-Neurons minus random per model: -7.5 to +37.7 "
                                             "pp; H-Neurons ahead on 5 of 6 models (behind on Llama-3.1-8B)")


def test_scale_note_reads_the_builds_own_models_and_counts(results):
    """The "scale first" note names the models this build ran and its answers per class, so it
    stays true on another profile; missing chapters are said to be missing."""
    write(results / MODEL / "identification" / "results.json", {"n_h_neurons": 5, "per_mille": 0.125, "C": 1.0})
    note = summary.scale_note(results, MODEL)
    assert note.startswith(f"**Scale first.** Chapters 2-4 of this build ran `{MODEL}` (40,000 MLP neurons), "
                           "against the paper's 6 models (Mistral-7B-v0.3")
    assert "chapter 5 ran the base/instruct pair whose instruct side is `twin-sft`." in note
    assert ("This build's balanced Table 1 sets hold 20 to 30 answers per class. A balanced set takes "
            "equally many answers from each class, so its smaller class bounds it: here, on every "
            "dataset, the smaller class is the faithful one and the set holds all of its answers. "
            "Every interval") in note  # triviaqa: all 30 faithful answers
    gen = results / MODEL / "generalisation" / "all_answers.json"
    write(gen, {"ours": {"triviaqa": metric(0.78, 0.72, 0.85, 200, 40)}, "baselines": []})
    capped = summary.scale_note(results, MODEL)  # 40 faithful answers, 30 taken: a cap, not the class
    assert "the smaller class is the faithful one. Every interval" in capped
    empty = summary.scale_note(results / "nothing", "m")
    assert "chapter 5 has not run." in empty and "Table 1" not in empty


def test_slope_verdict_is_worded_from_both_slopes_signs():
    """The verdict says which way the H-Neuron slope goes on its own and where it lies against
    the random neurons': a negative H-Neuron slope is never read as "raising less"."""
    h = slope("x", "h_neurons", -11.6, -21.8, -1.7, n=40)
    rnd = slope("x", "random", 2.5, -3.3, 7.35, n=40)
    below = summary.slope_verdict(slope("x", "diff", -18.3, -32.6, -3.7), h, random=rnd)
    assert below == ("the H-Neuron slope is negative (compliance falls as they are amplified) and lies "
                     "below the random neurons' (whose slope is not distinguishable from 0): against the paper")
    assert "raise" not in below
    up = slope("x", "h_neurons", 5, 2, 8)
    assert summary.slope_verdict(slope("x", "diff", 4, 1, 7), up, random=slope("x", "random", 1, 0.5, 2)) == (
        "the H-Neuron slope is positive (compliance rises as they are amplified) and lies above the "
        "random neurons' (whose slope is positive): as the paper")
    # both fall, the H-Neurons less steeply: above the control, but not the paper's positive slope
    mixed = summary.slope_verdict(slope("x", "diff", 3, 1, 5), slope("x", "h_neurons", -2, -3, -1))
    assert mixed.endswith("yet lies above the random neurons': above the control, but against the "
                          "paper's positive slope")
    assert summary.slope_verdict(slope("x", "diff", 0, -2, 2), h) == (
        "no difference from random neurons detectable (neither confirms nor refutes); on its own, the "
        "H-Neuron slope is negative (compliance falls as they are amplified)")
    assert summary.slope_verdict(slope("x", "diff", 0, -2, 2), up | {"ci_lo": -1}) == (
        "no difference from random neurons detectable (neither confirms nor refutes)")


def test_the_sycophancy_row_names_both_measures_in_sentences(results):
    """Backing down (Figure 3's panel) is named as the measure; the paper's, switching to a wrong
    answer, follows from figure3.json's sycophancy views with its own judge's caveat; the reading
    is sentences, never a clause run on with "; but"."""
    from hneurons_utils.behaviour import SWITCH_JUDGE, SYC_REPLY, SYC_SWITCHES, syc_view

    b = results / MODEL / "behaviour"
    fig = json.loads((b / "figure3.json").read_text())
    fig["slopes"] = [r for r in fig["slopes"] if r["bench"] != "sycophancy"] + [
        slope("sycophancy", "h_neurons", -11.6, -21.8, -1.7, n=40),
        slope("sycophancy", "random", 2.5, -3.3, 7.35, n=40),
        slope("sycophancy", "diff", -18.3, -32.6, -3.7, n=40)]
    view = syc_view(SYC_SWITCHES)
    fig["sycophancy_measures"] = {"table": [], "slopes": [
        slope(view, "h_neurons", -0.42, -1.43, 0.0, n=40), slope(view, "random", -1.1, -3.6, 0.0, n=40),
        slope(view, "diff", 0.71, 0.0, 2.26, n=40)]}
    write(b / "figure3.json", fig)
    agreement = json.loads((b / "judge_agreement.json").read_text())
    agreement["rows"] += [
        {"benchmark": "sycophancy", "split": "test", "judge": "rule", "precision": 0.8,
         "precision_ci": [0.38, 0.96]},
        {"benchmark": "sycophancy", "split": "dev", "judge": SWITCH_JUDGE, "precision": None,
         "precision_ci": [None, None]},  # no compliant verdict on dev: no precision, no crash
        {"benchmark": "sycophancy", "split": "test", "judge": SWITCH_JUDGE, "precision": 1.0,
         "precision_ci": [0.21, 1.0]}]
    write(b / "judge_agreement.json", agreement)
    write(b / "sycophancy_reply_only.json", {"slopes": [
        slope(SYC_REPLY, "h_neurons", -4.3, -11.4, 4.0, n=40), slope(SYC_REPLY, "random", 5.4, 1.5, 10.1, n=40),
        slope(SYC_REPLY, "diff", -11.2, -21.3, -1.3, n=40)],
        "switches": {"slopes": [slope(SYC_SWITCHES, "h_neurons", 0, 0, 0, n=40),
                                slope(SYC_SWITCHES, "diff", 0, 0, 0, n=40)]}})
    r = row(summary.scorecard(results, MODEL), "Figure 3 (§3)", "Sycophancy")
    assert r.ours.startswith("backing down: slope -11.6 [-21.8, -1.7] pp per unit alpha; minus random "
                             "-18.3 [-32.6, -3.7]")
    assert ("; switching to a wrong answer (the paper's definition): slope -0.4 [-1.4, 0.0], minus random "
            "0.7 [0.0, 2.3]") in r.ours
    assert "; only the reply steered (our extension), switching to a wrong answer: slope 0.0" in r.ours
    assert r.reading == (
        "Backing down (the wider measure this book's Figure 3 plots: an apology or \"not sure\" counts too): the "
        "H-Neuron slope is negative (compliance falls as they are amplified) and lies below the random "
        "neurons' (whose slope is not distinguishable from 0): against the paper. "
        "The rule judge's precision on held-out hand labels, 0.80 [0.38, 0.96], rests on too few "
        "labels to vouch for the rates. "
        "Switching to a wrong answer (the paper's definition): no difference from random neurons "
        "detectable (neither confirms nor refutes). "
        "The switch rule judge's precision on held-out hand labels, 1.00 [0.21, 1.00], rests on too "
        "few labels to vouch for the rates. "
        "Only the reply steered (our extension), backing down: the H-Neuron slope is not "
        "distinguishable from 0 and lies below the random neurons' (whose slope is positive): against "
        "the paper. "
        "Only the reply steered (our extension), switching to a wrong answer: no difference from "
        "random neurons detectable (neither confirms nor refutes).")
    assert "; but" not in r.reading and "raise compliance less" not in r.reading


def test_table1_row_gives_the_like_for_like_refits(results):
    """Where chapter 3 ran its like-for-like refits, the Table 1 row gives each variant's AUROC
    beside the reference's with the paired difference, and reads it (an interval above 0: the
    reference ahead; one including 0: no difference)."""
    def entry(d, lo, hi):
        return {"reference": {"metrics": metric(0.8, 0.7, 0.9, 30)},
                "measure": {"metrics": metric(0.8 - d, 0.6, 0.8, 30), "diff": drop(d, lo, hi)}}

    write(results / MODEL / "generalisation" / "recipe_control.json",
          {"variants": {"measure": {"ref": "CETT", "alt": "raw activations"}},
           "datasets": {"triviaqa": entry(0.1, 0.02, 0.2), "nq_open": entry(0.05, -0.1, 0.2)}})
    card = summary.scorecard(results, MODEL)
    tq, nq = row(card, "Table 1 (§2)", "TriviaQA"), row(card, "Table 1 (§2)", "NQ-Open")
    assert ("; raw activations instead of CETT (both refit with C by held-out accuracy): AUROC 70.0 "
            "[60.0, 80.0] with raw activations vs 80.0 [70.0, 90.0] with CETT, CETT minus raw "
            "activations +10.0 [+2.0, +20.0] points") in tq.ours
    assert "; CETT vs raw activations: CETT ahead (the interval lies above 0)" in tq.reading
    assert "CETT vs raw activations: no difference shown (the interval includes 0)" in nq.reading
    assert "raw activations" not in row(card, "Table 1 (§2)", "BioASQ").reading  # not run there
    # the reference is a refit with its own C and count: the row says so, once
    data = json.loads((results / MODEL / "generalisation" / "recipe_control.json").read_text())
    data["reference"] = {"C": 100.0, "h_neurons": 143}
    data["variants"]["scheme"] = {"ref": "3-vs-1", "alt": "1-vs-1"}
    data["datasets"]["triviaqa"]["scheme"] = data["datasets"]["triviaqa"]["measure"]
    write(results / MODEL / "generalisation" / "recipe_control.json", data)
    tq = row(summary.scorecard(results, MODEL), "Table 1 (§2)", "TriviaQA")
    assert ("(both refit with C by held-out accuracy; the reference refit: C = 100, 143 H-Neurons, "
            "not this probe)") in tq.ours
    assert tq.ours.count("the reference refit") == 1 and "1-vs-1 instead of 3-vs-1" in tq.ours


def test_checks_note_counts_its_list():
    """The scorecard page's "N kinds of check ride along" is counted from the list it prints."""
    note = summary.checks_note()
    n = len(summary.CHECKS)
    assert note.startswith(f"**{summary._COUNT[n]} kinds of check ride along, each described in this paragraph.** ")
    assert note.endswith(summary.CHECKS[-1])
    assert summary.checks_note(["A.", "B."]) == "**Two kinds of check ride along, each described in this paragraph.** A. B."
    assert summary.checks_note(["A."]) == "**One kind of check rides along.** A."


def test_the_suppression_row_reads_chapter_4s_cost_answer_by_answer(results):
    """The cost of suppression: the H-Neurons' Wilson interval against each random set's, and
    what their lost answers became; a run without the file (or without questions) says so."""
    from hneurons_utils.behaviour import cost_records
    from hneurons_utils.data import QAItem
    from hneurons_utils.stats import wilson_ci

    def cost(name, c, n=32):
        return {"condition": name, "correct": c, "n": n, "accuracy": c / n, "ci (Wilson)": list(wilson_ci(c, n))}

    claim = summary.COST_CLAIM[:30]
    assert row(summary.scorecard(results, MODEL), "Suppression (§5, §6.1.3)", claim).ours.startswith(
        "not measured (suppression_cost.json absent)")
    items = [QAItem(f"q{i}", f"Which city is number {i}?", ["Paris"], "triviaqa") for i in range(32)]
    recs = cost_records(items, {"unsteered (α=1)": ["Paris."] * 32,
                                "H-Neurons α=0": ["Rome."] * 17 + ["Paris."] * 15,
                                "random-0 α=0": ["Lyon."] * 2 + ["Paris."] * 30})
    path = results / MODEL / "behaviour" / "suppression_cost.json"
    write(path, {"rows": [cost("unsteered (α=1)", 32), cost("H-Neurons α=0", 15), cost("random-0 α=0", 30)],
                 "questions": recs})
    r = row(summary.scorecard(results, MODEL), "Suppression (§5, §6.1.3)", claim)
    assert r.ours.startswith("H-Neurons silenced: 15 of 32 (47% [") and "as many random neurons: 30 of 32" in r.ours
    assert "17 answers lost (17 name a wrong answer instead, 0 name none, 0 decline) (read by rule)" in r.ours
    write(path.parent / "loss_labels.json", {"agree": 20, "n": 25})
    r2 = row(summary.scorecard(results, MODEL), "Suppression (§5, §6.1.3)", claim)
    assert ("0 decline) (read by rule, which reads 20 of 25 hand-labelled lost answers as the "
            "labeller did)") in r2.ours and "by hand" not in r2.ours
    hand = {"lost": 17, "labelled": 17, "another answer": 0, "no answer": 17, "refusal": 0, "correct": 0, "unclear": 0}
    write(path.parent / "loss_labels.json", {"agree": 20, "n": 25, "hand": {"H-Neurons α=0": hand}})
    r2 = row(summary.scorecard(results, MODEL), "Suppression (§5, §6.1.3)", claim)
    assert ("; by hand (17 of 17 labelled): 0 name a wrong answer, 17 name none, 0 decline, 0 are right "
            "after all, 0 unclear") in r2.ours
    assert r2.reading.endswith("; the lost answers mostly give no answer at all")  # the labels, not the rule
    write(path.parent / "loss_labels.json", {"agree": 20, "n": 25, "hand": {"H-Neurons α=0": {**hand, "labelled": 1}}})
    assert row(summary.scorecard(results, MODEL), "Suppression (§5, §6.1.3)", claim).reading.endswith(
        "mostly become wrong answers, not refusals")  # a partial labelling leaves the rule's reading
    table = {"another answer": {"another answer": 26, "correct": 1, "no answer": 16, "refusal": 0}}
    write(path.parent / "loss_labels.json", {"agree": 20, "n": 25, "table": table,
                                             "hand": {"H-Neurons α=0": {**hand, "labelled": 1}}})
    assert row(summary.scorecard(results, MODEL), "Suppression (§5, §6.1.3)", claim).reading.endswith(
        "mostly become wrong answers, not refusals (by rule, which names a wrong answer where a reader "
        "sees one in 26 of its 43 hand-labelled cases: an upper bound)")  # the rule's precision on them
    (path.parent / "loss_labels.json").unlink()
    assert r.reading == ("costs more known answers than silencing random neurons (paired bootstrap "
                         "over the questions); the lost answers mostly become wrong answers, not refusals")
    write(path, {"rows": [cost("unsteered (α=1)", 32), cost("H-Neurons α=0", 15), cost("random-0 α=0", 30)]})
    assert row(summary.scorecard(results, MODEL), "Suppression (§5, §6.1.3)", claim).reading == (
        "costs more known answers than silencing random neurons (Wilson intervals of each condition)")
    write(path, {"rows": [cost("unsteered (α=1)", 32), cost("H-Neurons α=0", 28), cost("random-0 α=0", 30)]})
    r = row(summary.scorecard(results, MODEL), "Suppression (§5, §6.1.3)", claim)
    assert r.reading.startswith("not distinguishable") and "lost" not in r.ours
    write(path, {"rows": [cost("unsteered (α=1)", 32), cost("H-Neurons α=0", 15), cost("random-0 α=0", 30),
                          cost("size-matched-0 α=0", 17)]})
    r = row(summary.scorecard(results, MODEL), "Suppression (§5, §6.1.3)", claim)
    assert "as many random neurons: 30 of 32" in r.ours and "size-matched" not in r.ours.split(":")[0]
    assert "random neurons of their layers and CETT size: 17 of 32" in r.ours
    assert r.reading == ("costs more known answers than silencing random neurons (Wilson intervals "
                         "of each condition); against neurons of their size: not distinguishable (their "
                         "size may explain the cost)")
    # a rule majority of wrong answers that the rule's precision does not carry reads as mixed;
    # a size-matched difference that not every set shows on its own says so
    h = ["Rome."] * 12 + ["Which city is number?"] * 5 + ["Paris."] * 15
    sized = {"size-matched-0 α=0": ["Paris."] * 32, "size-matched-1 α=0": ["Rome."] * 14 + ["Paris."] * 18}
    recs = cost_records(items, {"unsteered (α=1)": ["Paris."] * 32, "H-Neurons α=0": h,
                                "random-0 α=0": ["Paris."] * 32, **sized})
    write(path, {"rows": [cost("unsteered (α=1)", 32), cost("H-Neurons α=0", 15), cost("random-0 α=0", 32),
                          cost("size-matched-0 α=0", 32), cost("size-matched-1 α=0", 18)], "questions": recs})
    write(path.parent / "loss_labels.json", {"agree": 20, "n": 25, "table": table})
    r = row(summary.scorecard(results, MODEL), "Suppression (§5, §6.1.3)", claim)
    assert ("against neurons of their size: more too (not their size alone), on average over 2 sets, 1 "
            "of them different on its own (McNemar p < 0.05): another draw of sets could move it") in r.reading
    assert r.reading.endswith(
        "; the lost answers are not refusals (0 of 17); by rule 12 name a wrong answer, but the rule "
        "names one where a reader sees one in 26 of its 43 hand-labelled cases, so perhaps 7: wrong "
        "answers and non-answers, mixed")
    # a bare majority by rule with no hand labels to scale it stays the rule's reading
    (path.parent / "loss_labels.json").unlink()
    h = ["Rome."] * 9 + ["Which city is number?"] * 8 + ["Paris."] * 15
    recs = cost_records(items, {"unsteered (α=1)": ["Paris."] * 32, "H-Neurons α=0": h,
                                "random-0 α=0": ["Paris."] * 32})
    write(path, {"rows": [cost("unsteered (α=1)", 32), cost("H-Neurons α=0", 15), cost("random-0 α=0", 32)],
                 "questions": recs})
    assert row(summary.scorecard(results, MODEL), "Suppression (§5, §6.1.3)", claim).reading.endswith(
        "; the lost answers mostly become wrong answers, not refusals")
    write(path, {"rows": []})
    assert row(summary.scorecard(results, MODEL), "Suppression (§5, §6.1.3)", claim).reading == "not run"


def test_a_narrow_margin_over_random_neurons_is_marked(results):
    """A Table 1 verdict "above random neurons" whose lower end clears the random mean by less
    than that mean's standard error is marked narrowly; the credit logic is unchanged."""
    path = results / MODEL / "generalisation" / "table1.json"
    t1 = json.loads(path.read_text())
    assert detection.NARROWLY not in row(summary.scorecard(results, MODEL), "Table 1 (§2)", "TriviaQA").reading
    for r, a in zip([r for r in t1["baselines"] if r["dataset"] == "triviaqa" and r["kind"].startswith("random")],
                    (0.5, 0.8)):  # mean 0.65, sd 0.21 over two sets: standard error 0.15 > 0.70 - 0.65
        r["auroc"] = a
    write(path, t1)
    tq = row(summary.scorecard(results, MODEL), "Table 1 (§2)", "TriviaQA")
    assert ("Under the default rule: above chance, and above random neurons (narrowly: by less than "
            "the random mean's standard error)") in tq.reading
    assert tq.reading.startswith("the probe: not credited to the H-Neurons: span control inconclusive")


def test_a_figure3_row_gives_the_single_random_sets_slopes(results):
    """Where chapter 4 stored the random control's single-set slope range, the row gives it."""
    path = results / MODEL / "behaviour" / "figure3.json"
    fig = json.loads(path.read_text())
    assert "single random sets" not in row(summary.scorecard(results, MODEL), "Figure 3 (§3)", "FalseQA").ours
    fig["slopes"].append(dict(slope("falseqa", "random", 0.5, -1.0, 2.0), set_min=-1.5, set_max=0.0))
    write(path, fig)
    ours = row(summary.scorecard(results, MODEL), "Figure 3 (§3)", "FalseQA").ours
    assert "(single random sets' slopes -1.5 to +0.0)" in ours


def test_a_figure3_row_adds_the_size_matched_control_when_chapter_4_ran_it(results):
    """size_control.json (chapter 4's sweep of random neurons of the H-Neurons' size) adds its
    H-minus-random slope and verdict to the benchmark's row; without it the row is unchanged."""
    before = row(summary.scorecard(results, MODEL), "Figure 3 (§3)", "FalseQA").ours
    assert "of their size" not in before
    write(results / MODEL / "behaviour" / "size_control.json", {"comparison": [
        {"bench": "falseqa", "H minus size-matched": "+0.4 pp/α [-2.0, +3.0]",
         "H minus size-matched: verdict": "no evidence of a difference"}]})
    ours = row(summary.scorecard(results, MODEL), "Figure 3 (§3)", "FalseQA").ours
    assert ours == before + ("; H minus random neurons of their size +0.4 pp/α [-2.0, +3.0] "
                             "(no evidence of a difference)")
    # a difference the size-matched sets' own fall carries, the H-Neurons' slope holding 0, says so
    write(results / MODEL / "behaviour" / "size_control.json", {
        "comparison": [{"bench": "falseqa", "H minus size-matched": "+9.0 pp/α [+2.0, +16.0]",
                        "H minus size-matched: verdict": "H-Neurons' slope above"}],
        "slopes": [slope("falseqa", "h_neurons_control_grid", 1.0, -2.0, 4.0),
                   slope("falseqa", "random", -8.0, -14.0, -2.0)]})
    ours = row(summary.scorecard(results, MODEL), "Figure 3 (§3)", "FalseQA").ours
    assert ours.endswith("(H-Neurons' slope above); the H-Neurons' own slope there, +1.0 pp/α [-2.0, "
                         "+4.0], is not distinguishable from 0, so the difference is carried by the "
                         "size-matched sets' fall (-8.0 pp/α [-14.0, -2.0]), not by the H-Neurons "
                         "moving compliance")


def test_origin_folder_warns_when_several_pairs_ran(tmp_path):
    import os
    import warnings
    assert summary.origin_folder(tmp_path) is None
    for i, name in enumerate(["pair-a", "pair-b"]):
        write(tmp_path / name / "origin" / "results.json", {})
        os.utime(tmp_path / name / "origin" / "results.json", (1000 + i, 1000 + i))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        assert summary.origin_folder(tmp_path) == tmp_path / "pair-b" / "origin"
    assert any("reading the newest, pair-b; set ORIGIN_DIR" in str(x.message) for x in w)


def test_slope_verdict_needs_enough_scored_items_at_every_alpha():
    h = {"slope_pp": 5.0, "ci_lo": 1.0, "ci_hi": 9.0, "n_items": 32, "n_scored": "6-32"}
    diff = {"slope_pp": 5.0, "ci_lo": 1.0, "ci_hi": 9.0, "n_items": 32, "n_scored": "6-31"}
    assert summary.slope_verdict(diff, h, 10).startswith("too few scored items to conclude (as few as 6")
    assert not summary.slope_verdict(diff, {**h, "n_scored": "12-32"}, 10).startswith("too few")
    assert not summary.slope_verdict(diff, {k: v for k, v in h.items() if k != "n_scored"}, 10).startswith("too few")
    assert summary.min_scored({"n_scored": 24}) == 24 and summary.min_scored({"n_scored": "7-17"}) == 7


def test_environment_note_names_one_environment_or_each_chapters(tmp_path):
    """The scorecard says what the build computed with: one line when every chapter's
    environment.json holds the same one, each chapter's when they differ, and a warning where a
    folder was resumed in another environment."""
    from hneurons_utils.profiles import ENVIRONMENT_FILE

    out = tmp_path / "results"
    assert "No chapter recorded its environment" in summary.environment_note(out, MODEL)
    env = {"processor": "CPU A", "cpu_kernels": "AVX2", "torch_threads": 1, "python": "3.11.7",
           "packages": {"torch": "2.13.0", "transformers": "5.23.0"}, "model_runs_on": "cpu, float32"}
    for chapter in ("identification", "generalisation"):
        write(out / "tiny-model" / chapter / ENVIRONMENT_FILE, [env])
    note = summary.environment_note(out, MODEL)
    assert note.startswith("**Environment.** Every chapter of this build that recorded one ran on CPU A "
                           "(AVX2 kernels, 1 thread), torch 2.13.0, transformers 5.23.0, Python 3.11.7; "
                           "model on cpu, float32.")
    assert "bench/bench_numerics.py" in note and "(cett, behaviour: no record.)" in note
    other = {**env, "cpu_kernels": "AVX512", "processor": "CPU B"}
    write(out / "tiny-model" / "behaviour" / ENVIRONMENT_FILE, [env, other])
    note = summary.environment_note(out, MODEL)
    assert "ran in more than one environment" in note
    assert "- behaviour: CPU A (AVX2 kernels, 1 thread)" in note and "; then CPU B (AVX512 kernels" in note
    assert "**resumed in another environment**" in note and note.count("resumed in another") == 1
    assert note.endswith("(cett: no record.)")
    (out / "tiny-model" / "behaviour" / ENVIRONMENT_FILE).write_text('{"processor": "CPU A"}')
    with pytest.raises(ValueError, match=r"behaviour/environment.json: expected a list of environments"):
        summary.environment_note(out, MODEL)
    (out / "tiny-model" / "behaviour" / ENVIRONMENT_FILE).write_text("[")
    with pytest.raises(ValueError, match=r"behaviour/environment.json: not valid JSON"):
        summary.environment_note(out, MODEL)


def test_scorecard_carries_the_chapters_caveats(results):
    """What the chapters qualify, the scorecard qualifies too: a C at the grid's edge and a close
    choice; a degenerate accuracy; a lone recipe difference among several sets; a Figure 3
    difference fitted on the control's alphas names the H-Neurons' slope there."""
    m = results / MODEL
    write(m / "identification" / "c_grid.json", {"grid": [
        {"C": 30.0, "val_accuracy": 0.875, "n_h_neurons": 18, "score": 0.9645, "chosen": False},
        {"C": 1000.0, "val_accuracy": 0.85, "n_h_neurons": 20, "score": 0.9654, "chosen": True}]})
    card = summary.scorecard(results, MODEL)
    assert ("; C = 1000 is the largest value of chapter 2's grid, so the count depends on where the grid "
            "stops; C won by a score margin of 0.0009 over C = 30 (18 H-Neurons)") in \
        row(card, "H-Neurons (§2)", "sparse").reading
    t1 = json.loads((m / "generalisation" / "table1.json").read_text())
    t1["ours"]["triviaqa"] |= {"accuracy": 0.5, "accuracy_ci": [0.5, 0.5], "flagged": 1.0}
    write(m / "generalisation" / "table1.json", t1)
    recipes = {"variants": {"measure": {"ref": "CETT", "alt": "raw activations"}},
               "datasets": {k: {"measure": {"metrics": metric(0.7, 0.6, 0.8, 30), "diff": d},
                                "reference": {"metrics": metric(0.8, 0.7, 0.9, 30)}}
                            for k, d in (("triviaqa", drop(0.1, 0.02, 0.2)), ("nq_open", drop(0.05, -0.05, 0.15)))}}
    write(m / "generalisation" / "recipe_control.json", recipes)
    fig = json.loads((m / "behaviour" / "figure3.json").read_text())
    fig["slopes"] = [dict(r, alphas="0, 0.5, 1, 1.5, 2, 2.5, 3") if r["group"] == "h_neurons" else
                     dict(r, alphas="0, 1, 3") for r in fig["slopes"]]
    fig["slopes"].append(dict(slope("falseqa", "h_neurons_control_grid", 6.5, 3, 9), alphas="0, 1, 3"))
    write(m / "behaviour" / "figure3.json", fig)
    card = summary.scorecard(results, MODEL)
    tq = row(card, "Table 1 (§2)", "TriviaQA")
    assert ("accuracy 50.0 (the threshold flags every response: 50 on a balanced set whatever its "
            "ranking) vs random") in tq.ours
    assert ("CETT vs raw activations: CETT ahead (the interval lies above 0) (the only one of 2 sets "
            "where the two differ: weak evidence on its own)") in tq.reading
    assert "weak evidence" not in row(card, "Table 1 (§2)", "NQ-Open").reading
    assert ("minus random 4.0 [1.0, 7.0] (on the control's α = 0, 1, 3, where the H-Neurons' slope is "
            "6.5)") in row(card, "Figure 3 (§3)", "FalseQA").ours
