"""Table 1 machinery (Section 2, Table 1): evaluation sets, metrics, random baselines, the comparison table."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np

import pandas as pd
import pytest

from hneurons_utils.detection import (EvalConfig, all_answers_frame, baseline_metrics, baseline_summary,
                                      build_eval_set, eval_label, evaluate_detection, reading,
                                      screen_baseline, screen_frame, screen_reading, table1_comparison)
from hneurons_utils.pipeline import identify, load_identification
from hneurons_utils.stats import auroc
from test_pipeline import CFG, CHAT, judge, qa


@pytest.fixture
def chat_model(tiny_model):
    tiny_model.tokenizer.chat_template = CHAT
    return tiny_model


EVAL = EvalConfig(per_class=3, gen_batch=4, max_new_tokens=3, stop_at_newline=False, n_boot=50)


def test_eval_set_balanced_and_scored(chat_model, tmp_path):
    """One sample per question, balanced classes, and Table 1's metrics with intervals."""
    res = identify(chat_model, qa(16), CFG, tmp_path / "id", judge=judge)
    cfg = EVAL
    es = build_eval_set(chat_model, qa(10, start=30, dataset="ev"), cfg, tmp_path, "ev", judge=judge)
    assert es.y.tolist().count(1) == es.y.tolist().count(0) == 3
    assert es.X.shape == (6, chat_model.adapter.total_neurons)
    assert es.counts["questions"] == 10 and es.counts["correct"] == 5
    assert len(es.questions) == 10  # every question asked, for the all-answers set
    d = evaluate_detection(chat_model, res.probe, qa(10, start=30, dataset="ev"), cfg, tmp_path, "ev", judge)
    assert d["n"] == 6 and 0 <= d["accuracy"] <= 1 and len(d["auroc_ci"]) == 2


def test_table1_sets_read_a_users_qa_file_beside_the_bundled_sets(chat_model, tmp_path):
    """A name in ``files`` is read from that JSONL (a seeded subset of ``sizes[name]``), built
    and scored like any bundled set; the other names still come from the data loaders."""
    from hneurons_utils.detection import table1_sets

    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps({"question": it.question, "answers": it.answers}) + "\n"
                            for it in qa(12, start=30)))
    seen = []

    def build(m, items, cfg, out_dir, name, judge):
        seen.append((name, len(items), items[0].qid))
        return build_eval_set(m, items, cfg, out_dir, name, judge)

    sets, empty = table1_sets(chat_model, {"mine": 10}, EVAL, tmp_path, judge=judge, build=build,
                              files={"mine": path})
    assert seen[0][:2] == ("mine", 10) and seen[0][2].startswith("mine:")
    assert sets["mine"].y.tolist().count(1) == sets["mine"].y.tolist().count(0) and not empty
    assert (tmp_path / "responses_mine.jsonl").exists()
    with pytest.raises(TypeError, match="not -p"):  # what papermill -p makes of a dict
        table1_sets(chat_model, {"mine": 10}, EVAL, tmp_path, files='{"mine": "mine.jsonl"}')
    # a drawn question the probe was trained on (equal after normalisation) is left out
    drawn = []

    def keep(m, items, cfg, out_dir, name, judge):
        drawn.append(items)
        return build(m, items, cfg, out_dir, name, judge)

    table1_sets(chat_model, {"mine": 10}, EVAL, tmp_path, judge=judge, build=keep, files={"mine": path})
    first = drawn[-1][0].question
    table1_sets(chat_model, {"mine": 10}, EVAL, tmp_path, judge=judge, build=keep,
                files={"mine": path}, exclude_questions=[first.upper() + "  "])
    assert len(drawn[-1]) == 9 and first not in {it.question for it in drawn[-1]}


def test_nonexist_labels():
    """On NonExist a refusal is the faithful answer; elsewhere refusals are left out."""
    assert eval_label("nonexist", "refusal") == 0 and eval_label("nonexist", "incorrect") == 1
    assert eval_label("triviaqa", "refusal") is None and eval_label("bioasq", "correct") == 0




def test_random_baselines_and_table(chat_model, tmp_path):
    """Baselines train on as many random neurons as H-Neurons; the table keeps paper and ours apart."""
    res = identify(chat_model, qa(16), replace(CFG, Cs=(1e6,)), tmp_path / "id", judge=judge)
    probe, split, fs = load_identification(tmp_path / "id")
    assert probe.h_neurons().size > 0
    es = build_eval_set(chat_model, qa(10, start=30, dataset="ev"), EVAL, tmp_path, "ev", judge=judge)
    rows = baseline_metrics(probe, fs, split, {"triviaqa": es}, seeds=[1, 2])
    assert [r["kind"] for r in rows] == ["h_neurons_refit", "random_1", "random_2",
                                         "hsize_random_1", "hsize_random_2"]
    n_h, n_used = probe.h_neurons().size, probe.neurons(0).size
    # each baseline reads as many neurons as the classifier it is compared with
    assert [r["k"] for r in rows] == [n_h, n_used, n_used, n_h, n_h]
    summary = baseline_summary(rows)
    assert summary.loc["triviaqa", "seeds"] == 2
    assert summary.loc["triviaqa", "random neurons"] == n_used
    hs = [r["auroc"] for r in rows if r["kind"].startswith("hsize")]
    assert summary.loc["triviaqa", "random (H-Neuron count) AUROC"] == pytest.approx(np.mean(hs))
    ours = {"triviaqa": {"accuracy": 0.75, "n_pos": 3, "auroc": 0.8, "auroc_ci": [0.6, 0.9]}}
    total = res.probe.h_neurons().n_layers * res.probe.h_neurons().n_neurons
    table = table1_comparison(ours, summary, total, "ours (tiny, n=3)",
                              ["triviaqa", "nq_open", "bioasq", "nonexist"], n_used=n_used, n_h=n_h)
    # the paper's ratio: the share of all neurons each classifier reads
    probe_row, refit_row = ("ours (tiny, n=3), H-Neuron probe (L1, as identified)",
                            "ours (tiny, n=3), H-Neurons alone (refit, L2, standardised)")
    assert table.loc[probe_row, "ratio (per mille)"] == pytest.approx(1000 * n_used / total)
    assert table.loc[refit_row, "ratio (per mille)"] == pytest.approx(res.probe.h_neurons().per_mille)
    assert table.loc[probe_row, "triviaqa"] == 75.0
    # the like-for-like pair: the H-Neurons alone against as many random neurons
    hs_acc = [r["accuracy"] for r in rows if r["kind"].startswith("hsize")]
    assert table.loc["ours (tiny, n=3), random, as many as H-Neurons (L2, standardised)",
                     "triviaqa"] == pytest.approx(100 * np.mean(hs_acc))
    assert table.loc[refit_row, "triviaqa"] == pytest.approx(100 * rows[0]["accuracy"])
    assert table.loc[refit_row, "neurons read"] == n_h
    assert table.loc["ours (tiny, n=3), random (L2, standardised; mean over seeds)", "neurons read"] == n_used
    assert table.loc["paper: Mistral-7B-v0.3, H-Neurons", "triviaqa"] == 78.4
    assert table.loc["paper: Mistral-7B-v0.3, random", "ratio (per mille)"] == 0.35
    assert sum(i.startswith("paper: ") for i in table.index) == 12
    # as shown: no mark while the threshold splits the set; a probe that flags every response
    # has its 50.0 marked, with the footnote saying why, and blanks where the paper is silent
    from hneurons_utils.detection import table1_shown

    shown, foot = table1_shown(table, ours, "ours (tiny, n=3)")
    assert shown.loc[probe_row, "triviaqa (accuracy, %)"] == 75.0 and foot == ""
    assert shown.loc[probe_row, "nq_open (accuracy, %)"] == ""
    flat = {"triviaqa": ours["triviaqa"] | {"accuracy": 0.5, "accuracy_ci": [0.5, 0.5], "flagged": 1.0}}
    shown, foot = table1_shown(table1_comparison(flat, summary, total, "ours (tiny, n=3)", ["triviaqa"]),
                               flat, "ours (tiny, n=3)")
    assert shown.loc[probe_row, "triviaqa (accuracy, %)"] == "50.0*"
    assert foot.startswith("* our probe's accuracy carries no information here: triviaqa, the "
                           "threshold flags every response, so it is right on exactly half")
    perfect = {"triviaqa": flat["triviaqa"] | {"accuracy": 1.0, "accuracy_ci": [1.0, 1.0], "flagged": 0.5}}
    assert table1_shown(table1_comparison(perfect, summary, total, "x", ["triviaqa"]), perfect, "x")[1] == ""
    # with keep_scores each row carries its decision values, in the set's order, for ROC curves
    scored = baseline_metrics(probe, fs, split, {"triviaqa": es}, seeds=[1, 2], keep_scores=True)
    assert "scores" not in rows[0] and len(scored[1]["scores"]) == len(es.y)
    # every row says where its threshold falls; with n_boot the refit gets its own interval
    assert all(r["flagged"] == pytest.approx(np.mean(np.array(r["scores"]) > 0)) for r in scored)
    assert "auroc_ci" not in rows[0] and np.isnan(summary.loc["triviaqa", "H-Neurons refit AUROC CI low"])
    with_ci = baseline_metrics(probe, fs, split, {"triviaqa": es}, seeds=[1, 2], n_boot=30)
    assert [("auroc_ci" in r) for r in with_ci] == [True, False, False, False, False]
    lo, hi = with_ci[0]["auroc_ci"]
    assert lo <= with_ci[0]["auroc"] <= hi
    assert baseline_summary(with_ci).loc["triviaqa", "H-Neurons refit AUROC CI high"] == pytest.approx(hi)
    assert auroc(es.y, np.array(scored[1]["scores"])) == pytest.approx(scored[1]["auroc"])
    assert [r["auroc"] for r in scored] == pytest.approx([r["auroc"] for r in rows])
    # every-answer table: our counts and interval beside the random mean; NaN without baselines
    ours_all = {"triviaqa": {"n_pos": 5, "n_neg": 7, "auroc": 0.7, "auroc_ci": [0.5, 0.9]}}
    frame = all_answers_frame(ours_all, summary)
    assert frame.loc["triviaqa", ["hallucinated", "faithful", "AUROC CI low"]].tolist() == [5, 7, 0.5]
    assert frame.loc["triviaqa", "random AUROC"] == pytest.approx(summary.loc["triviaqa", "random AUROC"])
    assert np.isnan(all_answers_frame(ours_all, pd.DataFrame()).loc["triviaqa", "random AUROC sd"])


def test_screen_baseline_trains_on_the_individually_best_neurons(chat_model, tmp_path):
    """The screen baseline picks its neurons on the probe's training rows by single-neuron AUROC
    (as many as the H-Neurons, and as many as the probe reads), trains them with the random
    baseline's recipe, and reports where the H-Neurons rank; the frame and reading follow."""
    from hneurons_utils.pipeline import scheme_rows, stored_examples
    from hneurons_utils.stats import column_aurocs

    identify(chat_model, qa(16), replace(CFG, Cs=(1e6,)), tmp_path / "id", judge=judge)
    probe, split, fs = load_identification(tmp_path / "id")
    es = build_eval_set(chat_model, qa(10, start=30, dataset="ev"), EVAL, tmp_path, "ev", judge=judge)
    rows, overlap = screen_baseline(probe, fs, split, {"triviaqa": es})
    h, used = probe.h_neurons(), probe.neurons(0)
    assert [(r["kind"], r["k"]) for r in rows] == [("hsize_screen", h.size), ("screen", used.size)]
    X, y = scheme_rows(fs, stored_examples(split, "train"), probe.label_scheme)
    auc = column_aurocs(X, y)
    best = np.sort(auc)[::-1]
    assert [best[r - 1] for r in overlap["h_screen_ranks"]] == pytest.approx(auc[h.flat])
    assert overlap["h_in_screen"] == sum(r <= h.size for r in overlap["h_screen_ranks"])
    base = baseline_metrics(probe, fs, split, {"triviaqa": es}, seeds=[1, 2])
    ours = {"triviaqa": {"n_pos": 3, "auroc": 0.8, "auroc_ci": [0.6, 0.9]}}
    frame = screen_frame(ours, base, rows)
    assert frame.loc["triviaqa", "screen (H count)"] == pytest.approx(rows[0]["auroc"])
    assert frame.loc["triviaqa", "random (probe count)"] == pytest.approx(
        np.mean([r["auroc"] for r in base if r["kind"] in ("random_1", "random_2")]))
    assert frame.loc["triviaqa", "probe CI half-width"] == pytest.approx(0.15)
    text = screen_reading(frame, overlap, min_per_class=3)
    assert text[0].startswith(f"{overlap['h_in_screen']} of the {h.size} H-Neurons")
    assert "triviaqa: H-Neurons refit" in text[1] and text[2].startswith("Against the individually")
    assert "too few" in screen_reading(frame, overlap, min_per_class=4)[1]


def test_screen_reading_counts_a_gap_only_beyond_the_noise_guide():
    """A gap between the refit and the screened neurons counts only when it exceeds half the
    probe's interval; datasets with too few answers are left out of the tally."""
    from hneurons_utils.detection import screen_reading

    frame = pd.DataFrame({"n per class": [20, 20, 20, 5], "probe CI half-width": [0.1, 0.1, 0.1, 0.1],
                          "H-Neurons refit": [0.9, 0.6, 0.7, 0.9], "screen (H count)": [0.7, 0.8, 0.65, 0.5],
                          "random (H count)": [0.5] * 4}, index=["a", "b", "c", "d"])
    text = screen_reading(frame, {"h_in_screen": 1, "h_neurons": 3, "h_screen_ranks": [1, 50, 9],
                                  "neurons": 100})
    assert "median 9" in text[0]
    assert text[1].endswith("H-Neurons ahead); random 0.50.") and "screened ahead" in text[2]
    assert "within the noise guide" in text[3] and "too few" in text[4]
    assert text[5] == ("Against the individually best neurons of the same count: H-Neurons ahead on 1 (a); "
                       "screened ahead on 1 (b); within the noise guide on 1 (c).")
    assert len(text) == 6  # nothing far below chance: no reversal named
    # screened neurons reversed on a set: being ahead of them is no comparison
    from hneurons_utils.detection import screen_verdict
    row = {"n per class": 15, "probe CI half-width": 0.12, "H-Neurons refit": 0.48, "screen (H count)": 0.22}
    assert screen_verdict(row) == "no comparison (the screened neurons are reversed here)"
    assert screen_verdict(dict(row, **{"screen (H count)": 0.40})) == "within the noise guide"
    # a gap equal to the guide (both 28/169 in a default run) is within it, whatever the float noise
    tie = {"n per class": 13, "probe CI half-width": 28 / 169, "H-Neurons refit": 0.669,
           "screen (H count)": 0.669 + 28 / 169}
    assert screen_verdict(tie) == "within the noise guide"
    assert screen_verdict(dict(tie, **{"screen (H count)": 0.669 + 28 / 169 + 0.001})) == "screened ahead"


def test_screen_reading_names_a_reversal():
    """A classifier whose AUROC lies further below 0.5 than the noise guide is named as a
    reversal; one within the guide, or on a set with too few answers, is not."""
    from hneurons_utils.detection import reversals, screen_reading

    frame = pd.DataFrame({"n per class": [27, 27, 5], "probe CI half-width": [0.15, 0.15, 0.1],
                          "H-Neurons refit": [0.40, 0.30, 0.1], "screen (H count)": [0.44, 0.5, 0.5],
                          "random (H count)": [0.48, 0.5, 0.5], "screen (probe count)": [0.147, 0.5, 0.5],
                          "random (probe count)": [0.53, 0.5, 0.5]}, index=["nonexist", "b", "few"])
    overlap = {"h_in_screen": 1, "h_neurons": 5, "h_screen_ranks": [1, 2, 3, 4, 5], "neurons": 100,
               "probe_neurons": 15}
    text = screen_reading(frame, overlap)
    assert text[-2] == ("nonexist: the 15 individually best neurons (either direction) reach AUROC 0.15, "
                        "0.35 below chance, beyond the noise guide (0.15): a reversal. Chosen and trained "
                        "on the identification rows, they separate the classes the other way on this "
                        "set: a signal that flips between training and evaluation, not detection.")
    assert text[-1].startswith("b: the H-Neurons refit reaches AUROC 0.30, 0.20 below chance") and \
        "Trained on the identification rows, it separates" in text[-1]
    assert not any(t.startswith("few:") and "reversal" in t for t in text)  # too few answers
    older = {k: v for k, v in overlap.items() if k != "probe_neurons"}  # a file without the count
    assert "the individually best neurons at the probe's count reach" in reversals(frame, older)[0]


def test_flagged_shares_and_the_threshold_reading():
    """Where each classifier's threshold falls: the probe's own share, each baseline's from its
    row (or its stored scores), and a reading that names classifiers flagging none."""
    from hneurons_utils.detection import flagged_frame, threshold_reading

    ours = {"a": {"n_pos": 4, "n_neg": 4, "flagged": 0.25}, "u": {"n_pos": 9, "n_neg": 3, "flagged": 0.5}}
    rows = [{"dataset": "a", "kind": "random_1", "flagged": 0.0, "accuracy": 0.5, "auroc": 0.7},
            {"dataset": "a", "kind": "random_2", "scores": [1.0, -1.0, -2.0, -1.0, 0.5, -3.0, -1.0, -1.0],
             "accuracy": 0.5, "auroc": 0.6},  # flags 2 of 8, from its scores (an older file)
            {"dataset": "a", "kind": "h_neurons_refit", "flagged": 0.625, "accuracy": 0.6, "auroc": 0.6},
            {"dataset": "a", "kind": "hsize_random_1", "flagged": 0.125, "accuracy": 0.4, "auroc": 0.4},
            {"dataset": "u", "kind": "random_1", "flagged": 0.0, "accuracy": 0.25, "auroc": 0.5}]
    f = flagged_frame(ours, rows)
    assert f.loc["a", "probe"] == 0.25 and f.loc["a", "random (probe count) min"] == 0.0
    assert f.loc["a", "random (probe count) max"] == 0.25 and f.loc["a", "random (probe count) n"] == 2
    assert f.loc["a", "H-Neurons refit mean"] == 0.625 and f.loc["u", "random (H count) n"] == 0
    text = threshold_reading(f, ours, rows)
    assert text.startswith("Share of responses flagged hallucinated on the balanced sets (where half "
                           "are): the probe 25%; random neurons of the probe's count 0% to 25% "
                           "(2 classifier-set pairs); the H-Neurons refit 62%; random neurons of "
                           "the H-Neurons' count 12%.")
    assert "Of all 5 classifier-set pairs, 4 flag fewer than half and 1 more than half." in text
    assert "random_1 on a flags 0% (accuracy 0.50, AUROC 0.70)" in text
    assert "random_1 on u" not in text  # u is unbalanced: left out
    assert text.endswith("AUROC, which needs no threshold, is the comparison that does not depend on it.")
    assert threshold_reading(f.loc[["u"]], {"u": ours["u"]}, rows).startswith("No balanced set")
    # the probe itself flagging all of a balanced set is named among the extremes
    all_in = dict(ours, a=dict(ours["a"], flagged=1.0, accuracy=0.5, auroc=0.36))
    assert "the probe on a flags 100% (accuracy 0.50, AUROC 0.36)" in threshold_reading(
        flagged_frame(all_in, rows), all_in, rows)


def test_reading_verdicts():
    """Too few per class: no verdict; otherwise chance and random neurons are judged by the CI."""
    d = {"accuracy": 1.0, "n_pos": 3, "auroc": 1.0, "auroc_ci": [1.0, 1.0]}
    weak = dict(d, n_pos=50, auroc_ci=[0.45, 0.7])
    mid = dict(d, n_pos=50, auroc_ci=[0.6, 0.8])
    strong = dict(d, n_pos=50, auroc_ci=[0.75, 0.9])
    base = pd.DataFrame({"random AUROC": [0.7, 0.7], "random AUROC sd": [0.05, 0.05]}, index=["m", "s"])
    text = reading({"a": d, "b": weak, "m": mid, "s": strong}, base,
                   {"c": {"hallucinated": 5, "faithful": 0, "questions": 5}})
    assert "too few" in text[0] and "not distinguishable from chance" in text[1]
    assert "not distinguishable from random" in text[2] and "and above random" in text[3]
    assert "no balanced set" in text[4]
    unbalanced = dict(strong, n_pos=300, n_neg=8)  # the smaller class decides
    assert "too few" in reading({"s": unbalanced}, base, {})[0]
    assert "300 hallucinated / 8 faithful" in reading({"s": unbalanced}, base, {})[0]
    assert "not comparable with 0.5" in reading({"s": unbalanced}, base, {})[0]
    one = dict(d, n_pos=1)  # a bootstrap of one response per class is no interval
    assert "[1.00, 1.00]" not in reading({"a": one}, base, {})[0]
    refit = base.assign(**{"H-Neurons refit AUROC": 0.66, "random (H-Neuron count) AUROC": 0.61,
                           "random (H-Neuron count) AUROC sd": 0.02})
    assert "H-Neurons alone (refit) 0.66 vs as many random neurons 0.61 ± 0.02" in \
        reading({"s": strong}, refit, {})[0]
    judged = refit.assign(**{"H-Neurons refit AUROC CI low": 0.55, "H-Neurons refit AUROC CI high": 0.77})
    assert ("H-Neurons alone (refit) 0.66 [0.55, 0.77] (above chance, but not distinguishable from "
            "random neurons) vs as many random neurons 0.61 ± 0.02") in reading({"s": strong}, judged, {})[0]
    assert "below chance" not in reading({"s": strong}, refit, {})[0]
    low = refit.assign(**{"random (H-Neuron count) AUROC": 0.39, "random AUROC": 0.47,
                          "random AUROC sd": 0.09})
    line = reading({"s": strong}, low, {})[0]
    assert "0.47 ± 0.09 (below chance on average" in line  # within two spreads of 0.5
    assert "0.39 ± 0.02 (more than two spreads below chance" in line and "point the other way here" in line


def test_full_eval_set_scores_every_judged_answer_of_the_asked_questions(chat_model, tmp_path):
    """The all-answers set holds every hallucinated and faithful answer of the questions the
    balanced set was drawn from (not other questions in the same file), reusing features."""
    from hneurons_utils import detection, features
    from hneurons_utils.pipeline import EvalConfig, EvalSet

    recs = [{"qid": f"q{i}", "dataset": "triviaqa", "question": f"Who is person {i}?",
             "answers": ["Paris"], "prompt": "", "responses": [r], "labels": [lab],
             "settings": "x"}
            for i, (r, lab) in enumerate([("Paris", "correct"), ("Rome", "incorrect"),
                                          ("Berlin", "incorrect"), ("Madrid", "incorrect"),
                                          ("I don't know", "refusal"), ("Oslo", "incorrect")])]
    (tmp_path / "responses_triviaqa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    es = EvalSet("triviaqa", [], np.zeros((0, 1)), np.zeros(0), {}, tuple(f"q{i}" for i in range(5)))
    cfg = EvalConfig(per_class=10, features=features.FeatureConfig(batch_size=4))
    full = detection.full_eval_set(chat_model, es, cfg, tmp_path)
    assert sorted(full.y.tolist()) == [0, 1, 1, 1]  # q5 was not asked for this set; q4 refused
    assert full.counts["hallucinated"] == 3 and full.counts["faithful"] == 1
    assert full.X.shape[0] == 4 and np.isfinite(full.X).all()
    assert full.answer_tokens.shape == (4,) and (full.answer_tokens >= 1).all()
    assert full.span_methods[full.y.tolist().index(0)] == "alias"  # "Paris" is the gold answer
    capped = detection.full_eval_set(chat_model, es, cfg, tmp_path, max_per_class=2)
    assert sorted(capped.y.tolist()) == [0, 1, 1] and set(capped.keys) <= set(full.keys)
    with pytest.raises(ValueError, match="does not list its questions"):
        detection.full_eval_set(chat_model, EvalSet("triviaqa", [], full.X, full.y, {}), cfg, tmp_path)


def test_empty_counts_only_count_the_asked_questions(tmp_path):
    """A responses file kept from a larger run holds more questions; only the asked ones count."""
    from types import SimpleNamespace

    from hneurons_utils.detection import empty_counts

    path = tmp_path / "responses_x.jsonl"
    recs = [{"qid": f"q{i}", "dataset": "triviaqa", "responses": ["a"], "labels": ["incorrect"]}
            for i in range(5)]
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    items = [SimpleNamespace(qid="q0"), SimpleNamespace(qid="q3")]
    c = empty_counts(path, items, ValueError("no faithful answer"))
    assert c["questions"] == 2 and c["hallucinated"] == 2 and c["faithful"] == 0
    assert c["balanced_per_class"] == 0 and c["error"] == "no faithful answer"


def test_span_diagnostic_reports_the_class_difference_in_spans():
    """Per class: share of alias spans and mean span length; span length alone as a detector."""
    from hneurons_utils.detection import span_diagnostic

    d = span_diagnostic(np.array([1, 1, 1, 0, 0]), np.array([5, 4, 6, 1, 2]),
                        ["content", "content", "alias", "alias", "alias"])
    assert d["hallucinated: alias spans"] == pytest.approx(1 / 3)
    assert d["faithful: alias spans"] == 1.0 and d["faithful: answer tokens"] == 1.5
    assert d["hallucinated: answer tokens"] == 5.0
    assert d["AUROC of span length alone"] == 1.0  # longer spans = hallucinated, perfectly
    same = span_diagnostic(np.array([1, 0]), np.array([3, 3]), ["content", "content"])
    assert same["AUROC of span length alone"] == 0.5


def test_span_rule_control_refits_with_one_rule_for_both_classes(chat_model, tmp_path):
    """The control re-featurises training and evaluation responses with the content rule
    (no alias span anywhere), refits at the probe's C, and scores every set."""
    from hneurons_utils import pipeline
    from hneurons_utils.detection import span_rule_control

    identify(chat_model, qa(16), replace(CFG, Cs=(1e6,)), tmp_path / "id", judge=judge)
    probe, split, fs = load_identification(tmp_path / "id")
    rebuilt = pipeline.rebuild_examples(split, "train", tmp_path / "id" / "responses_triviaqa.jsonl")
    assert [e.key for e in rebuilt] == split["train"]["keys"]
    assert [e.label for e in rebuilt] == split["train"]["labels"] and all(e.response for e in rebuilt)
    es = build_eval_set(chat_model, qa(10, start=30, dataset="ev"), EVAL, tmp_path, "ev", judge=judge)
    res = span_rule_control(chat_model, probe, split, {"ev": es}, EVAL, tmp_path / "id", tmp_path,
                            n_boot=20)
    assert res["rule"] == "content" and 0 <= res["h_overlap"] <= res["h_neurons"]
    d = res["datasets"]["ev"]
    assert d["spans"]["hallucinated: alias spans"] == d["spans"]["faithful: alias spans"] == 0.0
    assert d["metrics"]["n"] == len(es.y)
    assert d["y"] == es.y.tolist() and len(d["scores"]) == len(d["answer_tokens"]) == len(es.y)
    assert auroc(np.array(d["y"]), np.array(d["scores"])) == pytest.approx(d["metrics"]["auroc"])
    assert (tmp_path / "id" / "features_triviaqa_span-content.npz").exists()
    assert (tmp_path / "features_ev_span-content.npz").exists()
    # the default-rule scores of the same responses, paired by key, and the paired drop
    assert d["keys"] == es.keys
    default = probe.decision_function(es.X)
    assert d["default_scores"] == pytest.approx(default.tolist())
    assert d["drop"]["default"] == pytest.approx(auroc(es.y, default))
    assert d["drop"]["control"] == pytest.approx(d["metrics"]["auroc"])
    assert d["drop"]["drop"] == pytest.approx(d["drop"]["default"] - d["drop"]["control"])
    assert d["drop"]["left_out"] == 0 and len(d["drop"]["drop_ci"]) == 2
    from hneurons_utils.detection import span_control_reading

    text = span_control_reading(res, {"ev": {"auroc": 0.9}})
    assert text[0].startswith("one span rule (content)") and text[1].startswith("ev: AUROC")
    assert "default rule 0.90, paired drop (default minus one rule) " in text[1]
    # more groups of sets are scored by the same refit, each under its own key
    again = span_rule_control(chat_model, probe, split, {"ev": es}, EVAL, tmp_path / "id", tmp_path,
                              n_boot=20, also={"all_answers": {"ev": es}})
    assert again["all_answers"]["ev"]["scores"] == pytest.approx(d["scores"])
    assert span_control_reading(again, {}, group="all_answers", label="larger, ")[0].startswith("larger, ev: AUROC")


def test_recipe_control_fits_every_recipe_alike(chat_model, tmp_path):
    """The like-for-like refits fit the probe's recipe, raw activations and the other label
    scheme with one protocol (C by held-out accuracy on the same grid), cache the activation
    features apart, score all on the same responses and pair each variant with the reference;
    the reading names each comparison. An unknown variant is refused."""
    from hneurons_utils import pipeline
    from hneurons_utils.detection import recipe_control, recipe_reading
    from hneurons_utils.probe import select_C

    identify(chat_model, qa(16), replace(CFG, Cs=(1e6,)), tmp_path / "id", judge=judge)
    probe, split, fs = load_identification(tmp_path / "id")
    es = build_eval_set(chat_model, qa(10, start=30, dataset="ev"), EVAL, tmp_path, "ev", judge=judge)
    with pytest.raises(ValueError, match=r"unknown probe variants \['width'\]"):
        recipe_control(chat_model, probe, split, {"ev": es}, EVAL, tmp_path / "id", tmp_path,
                       Cs=(1.0,), variants=["width"])
    res = recipe_control(chat_model, probe, split, {"ev": es}, EVAL, tmp_path / "id", tmp_path,
                         Cs=(0.1, 1e6), n_boot=20)
    assert (tmp_path / "id" / "features_triviaqa_measure-activation.npz").exists()
    assert (tmp_path / "features_ev_measure-activation.npz").exists()
    assert not (tmp_path / "features_ev_measure-cett.npz").exists()  # CETT: the set's own features
    assert list(res["variants"]) == ["measure", "scheme", "standardize"]
    assert (res["variants"]["scheme"]["label_scheme"], res["variants"]["scheme"]["alt"]) == ("1-vs-1", "1-vs-1")
    assert (res["variants"]["measure"]["measure"], res["reference"]["label_scheme"]) == ("activation", "3-vs-1")
    assert (probe.standardize, res["variants"]["standardize"]["standardize"]) == (False, True)
    assert res["variants"]["standardize"]["alt"] == "standardised"
    for r in [res["reference"], *res["variants"].values()]:
        assert [g["C"] for g in r["grid"]] == [0.1, 1e6] and sum(g["chosen"] for g in r["grid"]) == 1
        assert 0 <= r["h_overlap"] <= r["h_neurons"] <= r["n_nonzero"]
    # the reference is the probe's own recipe on chapter 2's features, C by held-out accuracy
    rows = pipeline.rebuild_examples(split, "train", tmp_path / "id" / "responses_triviaqa.jsonl")
    val = pipeline.rebuild_examples(split, "val", tmp_path / "id" / "responses_triviaqa.jsonl") or rows
    Xv, yv = pipeline.answer_matrix(fs, val)
    d = res["datasets"]["ev"]
    for key, scheme, scaled in (("reference", "3-vs-1", False), ("scheme", "1-vs-1", False),
                                ("standardize", "3-vs-1", True)):
        X, y = pipeline.scheme_rows(fs, rows, scheme)
        want, _ = select_C(X, y, Xv, yv, (0.1, 1e6), standardize=scaled,
                           n_layers=probe.n_layers, n_neurons=probe.n_neurons)
        assert d[key]["scores"] == pytest.approx(want.decision_function(es.X).tolist())
    assert d["keys"] == es.keys and d["y"] == es.y.tolist() and "diff" not in d["reference"]
    for key in ("measure", "scheme", "standardize"):
        diff = d[key]["diff"]
        assert diff["default"] == pytest.approx(d["reference"]["metrics"]["auroc"])
        assert diff["control"] == pytest.approx(d[key]["metrics"]["auroc"])
        assert diff["drop"] == pytest.approx(diff["default"] - diff["control"])
    act = np.load(tmp_path / "features_ev_measure-activation.npz", allow_pickle=False)["answer"]
    assert not np.allclose(act.astype(np.float32).reshape(len(act), -1), es.X)  # other numbers
    text = recipe_reading(res)
    assert text[0].startswith("ev: AUROC of the reference refit (CETT, 3-vs-1, unstandardised) ")
    assert "; with raw activations " in text[0] and ", CETT minus raw activations " in text[0]
    assert "; with 1-vs-1 " in text[0] and ", 3-vs-1 minus 1-vs-1 " in text[0]
    assert "; with standardised " in text[0] and ", unstandardised minus standardised " in text[0]
    assert text[0].count("too few responses to compare") == 3  # a tiny set: no verdict
    assert [t.split(":")[0] for t in text[1:]] == ["the reference refit", "raw activations", "1-vs-1", "standardised"]
    total = probe.n_layers * probe.n_neurons
    assert res["total_neurons"] == total  # each refit's H-Neurons per mille of all neurons
    assert f"H-Neurons {1000 * res['reference']['h_neurons'] / total:.1f} per mille of all {total:,} neurons" in text[1]
    only = recipe_control(chat_model, probe, split, {"ev": es}, EVAL, tmp_path / "id", tmp_path,
                          Cs=(0.1, 1e6), n_boot=20, variants=["scheme"])
    assert list(only["variants"]) == ["scheme"] and "measure" not in only["datasets"]["ev"]


def test_recipe_reading_counts_verdicts_and_warns_of_a_lone_difference():
    """Each set's paired difference is read by its interval; a line per variant counts the
    verdicts and, where one set alone shows a difference among several, says how often one of
    that many intervals excludes 0 by chance alone (1 - 0.95^n)."""
    from hneurons_utils.detection import recipe_reading, recipe_verdict

    m = {"auroc": 0.8, "auroc_ci": [0.7, 0.9]}

    def diff(lo, hi, n=20):
        return {"drop": (lo + hi) / 2, "drop_ci": [lo, hi], "n_pos": n, "n_neg": n, "ci_level": 0.95}

    def d(measure, scheme, n=20):
        return {"reference": {"metrics": m}, "measure": {"metrics": m, "diff": diff(*measure, n)},
                "scheme": {"metrics": m, "diff": diff(*scheme, n)}}

    def fit(C, h, overlap, **kw):
        return {"C": C, "h_neurons": h, "h_overlap": overlap, "n_nonzero": 2 * h, **kw}

    res = {"probe_h_neurons": 4,
           "reference": fit(100.0, 1, 1, measure="cett", label_scheme="3-vs-1"),
           "variants": {"measure": fit(30.0, 12, 3, ref="CETT", alt="raw activations"),
                        "scheme": fit(3.0, 5, 2, ref="3-vs-1", alt="1-vs-1")},
           "datasets": {"a": d((0.01, 0.2), (-0.1, 0.1)), "b": d((-0.1, 0.1), (-0.1, 0.1)),
                        "c": d((-0.3, -0.1), (-0.1, 0.1)), "x": d((0.1, 0.2), (0.1, 0.2), n=4)}}
    assert recipe_verdict(diff(0.01, 0.2), "CETT", "raw activations") == "CETT ahead (the interval lies above 0)"
    assert recipe_verdict(diff(-0.3, -0.1), "3-vs-1", "1-vs-1") == "1-vs-1 ahead (the interval lies below 0)"
    reversed_both = {**diff(0.05, 0.3), "default": 0.3, "control": 0.1}
    assert recipe_verdict(reversed_both, "CETT", "raw activations") == (
        "CETT ahead (the interval lies above 0), though both rank below chance: the one ahead is "
        "only less reversed")
    assert recipe_verdict({**reversed_both, "default": 0.6}, "CETT", "raw activations").endswith("above 0)")
    text = recipe_reading(res)
    assert text[0] == ("a: AUROC of the reference refit (CETT, 3-vs-1) 0.80 [0.70, 0.90]; with raw activations "
                       "0.80 [0.70, 0.90], CETT minus raw activations +0.11 [+0.01, +0.20] on 20 + 20 "
                       "responses: CETT ahead (the interval lies above 0); with 1-vs-1 0.80 [0.70, 0.90], "
                       "3-vs-1 minus 1-vs-1 +0.00 [-0.10, +0.10] on 20 + 20 responses: no difference "
                       "shown (the interval includes 0).")
    assert text[3].count("too few responses to compare (fewer than 10 per class)") == 2
    assert text[4] == ("CETT vs raw activations, over the 3 sets with a verdict: CETT ahead on 1 (a), raw "
                       "activations ahead on 1 (c), no difference shown on 1.")  # two: no caution
    assert text[5] == "3-vs-1 vs 1-vs-1, over the 3 sets with a verdict: 3-vs-1 ahead on 0, 1-vs-1 ahead on 0, no difference shown on 3."
    assert text[6] == ("the reference refit: C = 100 (held-out accuracy), 1 H-Neuron (2 non-zero weights), 1 of "
                       "them among the chapter probe's 4 H-Neurons")  # no neuron total: no ratio
    # with the total, each refit's ratio; above 1 per mille it is flagged as not sparse
    sized = recipe_reading(res, total_neurons=4000)
    assert sized[6].endswith("4 H-Neurons; H-Neurons 0.2 per mille of all 4,000 neurons")
    assert sized[7].endswith("H-Neurons 3.0 per mille of all 4,000 neurons, above 1 per mille: not sparse "
                             "like the chapter's probe (1.0 per mille) or the paper's H-Neurons (under 1 per mille)")
    lone = recipe_reading({**res, "datasets": {k: res["datasets"][k] for k in "abx"}})
    assert lone[3] == ("CETT vs raw activations, over the 2 sets with a verdict: CETT ahead on 1 (a), raw "
                       "activations ahead on 0, no difference shown on 1. With 2 intervals at 95%, at least "
                       "one excludes 0 in up to about 10% of runs where the recipes do not differ at all (if "
                       "the intervals were independent; these are correlated, as every set is scored by the "
                       "same two fits), so one set ahead is weak evidence on its own.")


def test_overall_reading_follows_the_counts():
    """The Table 1 paragraph counts verdicts, checks them against the span control, and
    exempts datasets where both classes already share one span rule."""
    from hneurons_utils.detection import overall_reading

    def d(lo, n=20):
        return {"auroc": lo + 0.1, "auroc_ci": [lo, lo + 0.2], "n_pos": n, "accuracy": 0.6}

    ours = {"a": d(0.6), "b": d(0.7), "c": d(0.45), "x": d(0.9, n=3)}
    base = pd.DataFrame({"random AUROC": [0.5, 0.65, 0.5, 0.5]}, index=["a", "b", "c", "x"])
    diff = {"hallucinated: alias spans": 0.0, "faithful: alias spans": 1.0, "AUROC of span length alone": 0.85}
    same = {"hallucinated: alias spans": 0.0, "faithful: alias spans": 0.0, "AUROC of span length alone": 0.5}
    spans = {"a": diff, "b": diff, "c": same, "x": diff}

    def entry(lo, drop=None):
        e = {"metrics": {"auroc": lo + 0.1, "auroc_ci": [lo, 0.9], "n_pos": 20, "n_neg": 20}}
        if drop is not None:
            e["drop"] = {"drop": sum(drop) / 2, "drop_ci": list(drop), "left_out": 0}
        return e

    def ctl(lo_a, lo_b, drop_a=None, drop_b=None):
        return {"datasets": {"a": entry(lo_a, drop_a), "b": entry(lo_b, drop_b)}}

    text = overall_reading(ours, base, ctl(0.4, 0.3), spans)  # no paired drop stored
    assert "Of the 3 datasets with at least 10 answers per class (a, b, c)" in text  # x: too few
    assert "on 2 (a, b) under the default span rule" in text
    assert "On c no answer contains a gold alias" in text and "c: not distinguishable from chance" in text
    assert ("Of the datasets where it clears chance and the random neurons, 2 gave the two classes "
            "different span rules (a, b); 0 of them stay above chance when the probe is refit with one span rule for both "
            "classes (none)") in text
    assert "span length alone reaches a 0.85, b 0.85" in text and "cannot be credited" in text
    assert "no paired drop is stored" in text
    # the paired drop sorts the refits that fall to chance: a fall (interval above 0) ...
    fails = overall_reading(ours, base, ctl(0.4, 0.3, (0.1, 0.5), (0.05, 0.3)), spans)
    assert ("On a, b the detection that the default rule shows does not survive once both classes "
            "get their answer spans from the same rule: the AUROC drop from the default rule to the "
            "one-rule refit, paired over the same responses, is a +0.30 [+0.10, +0.50], "
            "b +0.17 [+0.05, +0.30], above 0; it cannot be credited to the H-Neurons.") in fails
    assert "not shown to survive" not in fails
    # ... or a control too uncertain to tell (interval reaching 0): not credited, not refuted
    unsure = overall_reading(ours, base, ctl(0.4, 0.3, (-0.04, 0.4), (0.05, 0.3)), spans)
    assert ("On a the detection is not shown to survive: the one-rule refit is not distinguishable "
            "from chance, but the paired AUROC drop from the default rule (a +0.18 [-0.04, +0.40]) "
            "does not lie above 0, so the control is too uncertain to tell") in unsure
    assert "nor refuted by the control" in unsure and "On b the detection that the default rule" in unsure
    kept = overall_reading(ours, base, ctl(0.55, 0.3, None, (0.1, 0.2)), spans)
    assert ("Only on a does the detection survive one span rule for both classes (the refit stays "
            "above chance). The refit is not set against random neurons") in kept
    assert "does not rest on the span difference" not in kept  # the control shows less than that
    missing = {"datasets": {"a": entry(0.55)}}  # the control did not score b
    assert "The control did not run on b" in overall_reading(ours, base, missing, spans)
    # a shared-rule dataset whose verdict the refit's training spans alone change: said so
    moved = ctl(0.55, 0.6)
    moved["datasets"]["c"] = {"metrics": {"auroc": 0.7, "auroc_ci": [0.55, 0.83], "n_pos": 20, "n_neg": 20}}
    assert ("c: not distinguishable from chance; the one-rule refit gives AUROC 0.70 (above chance) "
            "and changes the verdict") in overall_reading(ours, base, moved, spans)
    assert "cannot tell the classes apart there, but the probe's training spans" in overall_reading(
        ours, base, moved, spans)  # a shared rule in evaluation is no exemption for training
    moved["datasets"]["c"]["drop"] = {"drop": -0.2, "drop_ci": [-0.3, -0.1], "left_out": 0}
    assert ("a paired drop (default minus one rule) of -0.20 [-0.30, -0.10], so the training rows' "
            "span rule alone moves this AUROC measurably") in overall_reading(ours, base, moved, spans)
    moved["datasets"]["c"]["metrics"].update(n_pos=3, n_neg=3)  # a refit too small to read: no change
    assert "changes the verdict" not in overall_reading(ours, base, moved, spans)
    # an interval wholly below 0.5 is a reversal, named as such
    rev = dict(ours, c={"auroc": 0.33, "auroc_ci": [0.23, 0.42], "n_pos": 20, "accuracy": 0.4})
    text = overall_reading(rev, base, ctl(0.55, 0.6), spans)
    assert "c: below chance, the ranking reversed" in text
    assert "On c the interval lies wholly below 0.5" in text
    assert "survives the span control on every one" in overall_reading(ours, base, ctl(0.55, 0.6), spans)
    assert "not checked" in overall_reading(ours, base, None, spans)
    assert "cannot say" in overall_reading({"x": d(0.9, n=3)}, base, None, spans)


def test_paired_auroc_drop_pairs_responses_by_key():
    """The drop is computed on the responses both sets hold, matched by key whatever their
    order; a response only one set holds is left out and counted; labels must agree."""
    from hneurons_utils.detection import paired_auroc_drop

    keys = ["a#0", "b#0", "c#0", "d#0", "e#0", "f#0"]
    y = np.array([1, 1, 1, 0, 0, 0])
    default = np.array([3.0, 2.0, 0.5, 0.0, -1.0, 1.0])  # AUROC 8/9
    control = np.array([0.0, 1.0, -1.0, 0.5, 2.0, -2.0])  # AUROC 4/9
    d = paired_auroc_drop(keys, y, default, keys, y, control, n_boot=200)
    assert d["default"] == pytest.approx(8 / 9) and d["control"] == pytest.approx(4 / 9)
    assert d["drop"] == pytest.approx(4 / 9) and d["drop_ci"][0] <= d["drop"] <= d["drop_ci"][1]
    assert (d["n_pos"], d["n_neg"], d["left_out"]) == (3, 3, 0)
    order = [5, 3, 0, 4, 2, 1]  # the control stored in another order: the same pairs
    shuffled = paired_auroc_drop(keys, y, default, [keys[i] for i in order], y[order], control[order],
                                 n_boot=200)
    assert shuffled["drop"] == pytest.approx(d["drop"]) and shuffled["drop_ci"] == d["drop_ci"]
    more = paired_auroc_drop(keys + ["g#0"], np.append(y, 0), np.append(default, 9.0), keys, y, control,
                             n_boot=50)
    assert more["left_out"] == 1 and more["default"] == pytest.approx(8 / 9)  # g#0 has no pair
    with pytest.raises(ValueError, match="labelled differently"):
        paired_auroc_drop(keys, y, default, keys, 1 - y, control)
    with pytest.raises(ValueError, match="repeat"):
        paired_auroc_drop(keys[:1] * 2, y[:2], default[:2], keys, y, control)


def test_span_control_outcome_and_credit():
    """Three outcomes of a control that does not stay above chance, read from the paired drop;
    credit is withheld only from a supporting verdict on a set whose classes got different rules."""
    from hneurons_utils.detection import (span_control_outcome, span_credit, span_credit_text,
                                          span_drop_text)

    def c(lo, drop_ci=None, n=20):
        e = {"metrics": {"auroc": 0.6, "auroc_ci": [lo, 0.8], "n_pos": n, "n_neg": n}}
        if drop_ci is not None:
            e["drop"] = {"drop": 0.2, "drop_ci": drop_ci, "left_out": 0}
        return e

    assert span_control_outcome(c(0.55)) == "survives"
    assert span_control_outcome(c(0.45, [0.01, 0.4])) == "fails"
    assert span_control_outcome(c(0.45, [-0.04, 0.4])) == "inconclusive"
    assert span_control_outcome(c(0.45, [-0.3, -0.01])) == "inconclusive"  # refit better, still at chance
    assert span_control_outcome(c(0.45)) == "unpaired"
    assert span_control_outcome(c(0.45, [None, None])) == "unpaired"  # NaN ends read back from JSON
    assert span_control_outcome(c(0.45, [0.1, 0.4], n=5)) == "undetermined"  # too few to read
    assert span_control_outcome(None) == "not run"
    diff = {"hallucinated: alias spans": 0.0, "faithful: alias spans": 1.0}
    same = {"hallucinated: alias spans": 0.0, "faithful: alias spans": 0.0}
    assert span_credit("above chance, and above random neurons", diff, c(0.45, [0.01, 0.4])) == "fails"
    assert span_credit("above chance", diff, c(0.45, [-0.01, 0.4])) == "inconclusive"
    assert span_credit("above chance", diff, None) == "not run"
    assert span_credit("above chance", same, None) is None  # NonExist: no confound to check
    assert span_credit("above chance", diff, c(0.55)) is None  # survives
    assert span_credit("above chance, but not distinguishable from random neurons", diff, None) is None
    assert span_credit("not distinguishable from chance", diff, None) is None
    drop = {"drop": 0.184, "drop_ci": [-0.0546, 0.41]}
    assert span_drop_text(drop) == "+0.18 [-0.05, +0.41]"
    assert span_drop_text(drop, 100, ".1f") == "+18.4 [-5.5, +41.0]"
    assert span_drop_text({"drop": 0.16, "drop_ci": [-0.003, 0.31]}) == "+0.16 [-0.003, +0.31]"
    assert span_drop_text({"drop": 0.0, "drop_ci": [-0.0, 0.31]}) == "+0.00 [+0.00, +0.31]"
    unsure = span_credit_text("inconclusive", {"drop": drop}, 100, ".1f")
    assert unsure == ("not credited to the H-Neurons: span control inconclusive (not shown to survive "
                      "one span rule for both classes: the refit is not distinguishable from chance, "
                      "but the AUROC drop from the default rule to one span rule for both classes "
                      "(paired bootstrap over the same responses) is +18.4 [-5.5, +41.0] points, "
                      "which includes 0: the control is too uncertain to tell)")
    fails = span_credit_text("fails", {"drop": {"drop": 0.45, "drop_ci": [0.2, 0.69]}})
    assert fails.startswith("not credited to the H-Neurons: span control fails (the detection does not "
                            "survive one span rule for both classes") and "+0.45 [+0.20, +0.69], above 0" in fails
    assert "span control not run on these answers" in span_credit_text("not run")
    assert "no paired drop is stored" in span_credit_text("unpaired")


def test_capped_sets_are_labelled_and_read_with_the_span_rule():
    """The larger sets are named by their cap and what it kept; their verdicts keep credit only
    with a shared span rule or a surviving control on those same sets."""
    from hneurons_utils.detection import capped_label, capped_reading

    counts = {"hallucinated": 553, "faithful": 16, "max_per_class": 300}
    assert capped_label(counts, 300, 16) == "up to 300 per class (300 of 553 hallucinated, all 16 faithful)"
    assert capped_label(counts, 300, 16, detail=False) == "up to 300 per class"
    assert capped_label(None, 300, 16) == "up to 300 per class (300 hallucinated, 16 faithful)"
    assert capped_label({"hallucinated": 40, "faithful": 9, "max_per_class": None}, 40, 9) == \
        "every judged answer (40 hallucinated, 9 faithful)"

    def m(lo, n_pos=300, n_neg=20):
        return {"auroc": lo + 0.1, "auroc_ci": [lo, lo + 0.2], "n_pos": n_pos, "n_neg": n_neg}

    ours = {"a": m(0.65), "b": m(0.65), "c": m(0.65), "d": m(0.4), "e": m(0.9, n_neg=4)}
    base = pd.DataFrame({"random AUROC": [0.55] * 5}, index=list("abcde"))
    diff = {"hallucinated: alias spans": 0.0, "faithful: alias spans": 1.0}
    same = {"hallucinated: alias spans": 0.0, "faithful: alias spans": 0.0}
    spans = {"a": diff, "b": diff, "c": same, "d": diff, "e": diff}
    cnt = {k: counts for k in ours}
    none = capped_reading(ours, base, None, spans, cnt)
    assert none.startswith("On the larger sets (up to 300 per class), each dataset's verdict")
    assert ("a: above chance, and above random neurons under the default rule, but not credited to "
            "the H-Neurons: span control not run on these answers") in none
    assert "c: above chance, and above random neurons, credited (both classes share one span rule here)" in none
    fell = {"datasets": {}, "all_answers": {"c": {"metrics": {"auroc": 0.42, "auroc_ci": [0.32, 0.52], "n_pos": 300, "n_neg": 20},
                                                  "drop": {"drop": 0.21, "drop_ci": [0.04, 0.37], "left_out": 0}}}}
    assert ("c: above chance, and above random neurons, with one span rule for both classes here, but the "
            "probe was trained on spans that differ by class and is not credited to the H-Neurons: span "
            "control fails") in capped_reading(ours, base, fell, spans, cnt)
    assert "d: not distinguishable from chance" in none and "e:" not in none  # e: too few faithful
    ctl = {"datasets": {}, "all_answers": {
        "a": {"metrics": {"auroc": 0.7, "auroc_ci": [0.56, 0.8], "n_pos": 300, "n_neg": 20}},
        "b": {"metrics": {"auroc": 0.5, "auroc_ci": [0.4, 0.6], "n_pos": 300, "n_neg": 20},
              "drop": {"drop": 0.2, "drop_ci": [0.05, 0.35], "left_out": 0}}}}
    text = capped_reading(ours, base, ctl, spans, cnt)
    assert "a: above chance, and above random neurons, credited (the one-rule refit on these answers stays above chance)" in text
    # a refit that stays above chance while the paired drop lies above 0: credited, the drop named
    ctl["all_answers"]["a"]["drop"] = {"drop": 0.15, "drop_ci": [0.004, 0.29], "left_out": 0}
    assert ("a: above chance, and above random neurons, credited (the one-rule refit on these answers "
            "stays above chance, paired drop +0.15 [+0.004, +0.29], above 0: the span difference still "
            "adds to the AUROC measurably)") in capped_reading(ours, base, ctl, spans, cnt)
    ctl["all_answers"]["a"]["drop"]["drop_ci"] = [-0.05, 0.29]
    assert "stays above chance, paired drop +0.15 [-0.05, +0.29], which includes 0)" in \
        capped_reading(ours, base, ctl, spans, cnt)
    # a margin over the random mean under its standard error is called narrow, as on the balanced sets
    sd = base.assign(**{"random AUROC sd": 0.3, "seeds": 5})
    assert "a: above chance, and above random neurons (narrowly), credited (" in capped_reading(ours, sd, ctl, spans, cnt)
    assert "(narrowly)" not in text
    del ctl["all_answers"]["a"]["drop"]
    assert "b: above chance, and above random neurons under the default rule, but not credited to the H-Neurons: span control fails" in text
    assert capped_reading({"e": ours["e"]}, base, None, spans).endswith("no verdict.")
    assert "differs from the balanced set" not in text
    # a balanced set that judged a dataset differently: the conflict is named, the balanced stands
    bal = {"a": False, "b": False, "c": True, "d": None}
    clash = capped_reading(ours, base, ctl, spans, cnt, balanced=bal)
    assert ("On a this differs from the balanced set's verdict (a: balanced set not credited). "
            "The two sets share answers (a class smaller than the cap is in both whole), so they "
            "are not independent evidence") in clash
    assert "the balanced verdict (the paper's protocol) stands" in clash


def test_credit_map_marks_credited_withheld_and_unsupported():
    """credit_map: True (supported and credited), False (supported, credit withheld by the span
    rule), None (no supporting verdict, a reversal included)."""
    from hneurons_utils.detection import credit_map

    def m(lo, hi):
        return {"auroc": (lo + hi) / 2, "auroc_ci": [lo, hi], "n_pos": 20, "n_neg": 20}

    ours = {"a": m(0.6, 0.8), "b": m(0.6, 0.8), "c": m(0.2, 0.4), "d": m(0.6, 0.8)}
    base = pd.DataFrame({"random AUROC": [0.5] * 4}, index=list("abcd"))
    diff = {"hallucinated: alias spans": 0.0, "faithful: alias spans": 1.0}
    same = {"hallucinated: alias spans": 0.0, "faithful: alias spans": 0.0}
    ctl = {"a": {"metrics": {"auroc": 0.7, "auroc_ci": [0.56, 0.8], "n_pos": 20, "n_neg": 20}},
           "b": {"metrics": {"auroc": 0.4, "auroc_ci": [0.2, 0.45], "n_pos": 20, "n_neg": 20},
                 "drop": {"drop": 0.3, "drop_ci": [0.1, 0.5], "left_out": 0}}}
    got = credit_map(ours, base, ctl, {"a": diff, "b": diff, "c": diff, "d": same})
    assert got == {"a": True, "b": False, "c": None, "d": True}
    # a shared rule in evaluation keeps the credit only while no refit falls to chance: the
    # probe was still trained on spans that differ by class
    ctl["d"] = ctl["b"]
    assert credit_map(ours, base, ctl, {"a": diff, "b": diff, "c": diff, "d": same})["d"] is False
    ctl["d"] = ctl["a"]
    assert credit_map(ours, base, ctl, {"a": diff, "b": diff, "c": diff, "d": same})["d"] is True


def test_a_reversed_refit_still_fails_the_span_control():
    """A one-rule refit whose interval lies below chance does not survive: with a paired drop
    above 0 the control fails, and the text says the refit is reversed."""
    from hneurons_utils.detection import span_control_outcome, span_credit_text

    entry = {"metrics": {"auroc": 0.3, "auroc_ci": [0.2, 0.45], "n_pos": 20, "n_neg": 20},
             "drop": {"drop": 0.4, "drop_ci": [0.2, 0.6], "left_out": 0}}
    assert span_control_outcome(entry) == "fails"
    assert "the refit is below chance (its ranking reversed)" in span_credit_text("fails", entry)


def test_interval_ends_next_to_chance_keep_their_side():
    """An interval end that two decimals would round onto 0.50 gets a third, so the printed
    interval never contradicts its verdict; 0.5 itself and other ends stay at two."""
    from hneurons_utils.detection import _auroc_ci_text

    assert _auroc_ci_text(0.498, 0.81, 20) == "[0.498, 0.81]"
    assert _auroc_ci_text(0.5021, 0.7, 20) == "[0.502, 0.70]"
    assert _auroc_ci_text(0.5, 0.7, 20) == "[0.50, 0.70]"
    assert _auroc_ci_text(0.61, 0.7, 1) == "[no interval: one per class]"


def test_no_verdict_from_a_nan_interval_or_a_missing_baseline():
    """A NaN interval is undetermined, never "above chance"; the summary paragraph credits
    "above random neurons" only where a random baseline exists."""
    from hneurons_utils.detection import auroc_verdict, overall_reading, screen_verdict

    assert auroc_verdict(float("nan"), 0.5, 50).startswith("undetermined")
    # below chance only when the whole interval is: its upper end under 0.5 (or 50 in points)
    assert auroc_verdict(0.23, 0.5, 20, hi=0.42) == "below chance, the ranking reversed"
    assert auroc_verdict(23.0, float("nan"), 20, chance=50.0, hi=42.0).startswith("below chance")
    assert auroc_verdict(0.23, 0.5, 20, hi=0.5) == "not distinguishable from chance"
    assert auroc_verdict(0.23, 0.5, 20) == "not distinguishable from chance"  # no upper end given
    assert auroc_verdict(0.23, 0.5, 5, hi=0.42).startswith("too few")
    ours = {"a": {"n_pos": 20, "auroc": 0.8, "auroc_ci": [0.7, 0.9]},
            "b": {"n_pos": 20, "auroc": 0.8, "auroc_ci": [0.7, 0.9]}}
    base = pd.DataFrame({"random AUROC": [0.5]}, index=["a"])  # no baseline for b
    spans = {k: {"hallucinated: alias spans": 0, "faithful: alias spans": 0} for k in ours}
    text = overall_reading(ours, base, None, spans)
    assert "above random neurons on 1 (a)" in text and "no random-neuron baseline to compare on b" in text
    row = {"n per class": 20, "H-Neurons refit": float("nan"), "screen (H count)": 0.7,
           "probe CI half-width": 0.1}
    assert screen_verdict(row).startswith("undetermined")


def test_class_responses_lists_one_class_of_a_balanced_set(tmp_path):
    """The responses behind one class, in set order, with question and judge label; a key whose
    question is not in the responses file is an error naming it."""
    from hneurons_utils.detection import class_responses
    from hneurons_utils.pipeline import EvalSet

    recs = [{"qid": f"nonexist:{i}", "question": f"Who makes drug {i}?", "responses": [text],
             "labels": [lab]} for i, (text, lab) in enumerate(
                [("It does not exist.", "refusal"), ("Pfizer   makes it.", "incorrect"),
                 ("I'm sorry, " + "x" * 200, "refusal")])]
    (tmp_path / "responses_nonexist.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    es = EvalSet("nonexist", ["nonexist:2#0", "nonexist:1#0", "nonexist:0#0"], np.zeros((3, 2)),
                 np.array([0, 1, 0]), {})
    faithful = class_responses(tmp_path, es, 0, width=40)
    assert faithful.question.tolist() == ["Who makes drug 2?", "Who makes drug 0?"]
    assert faithful.response.iloc[0] == "I'm sorry, " + "x" * 26 + "..." and len(faithful.response.iloc[0]) == 40
    assert faithful.judge.tolist() == ["refusal", "refusal"]
    assert class_responses(tmp_path, es, 1).response.tolist() == ["Pfizer makes it."]
    with pytest.raises(KeyError, match="nonexist:9"):
        class_responses(tmp_path, replace(es, keys=["nonexist:9#0"], y=np.array([0])), 0)


def test_narrow_margin_over_random_neurons_is_named():
    """An "above random neurons" verdict whose interval's lower end clears the random mean by
    less than that mean's standard error (sd / sqrt(seeds)) is called narrow; a wide margin,
    a single seed or a lower end under the mean gets no note."""
    from hneurons_utils.detection import narrow_margin_note

    assert narrow_margin_note(0.62, 0.60, 0.11, 5) == (
        " (narrowly: the interval's lower end clears their mean by 0.020, less than the standard "
        "error of a mean over 5 random sets, 0.049; another draw of random neurons could undo it)")
    assert narrow_margin_note(0.75, 0.60, 0.11, 5) == ""  # 0.15 > 0.049
    assert narrow_margin_note(0.62, 0.60, 0.11, 1) == "" and narrow_margin_note(0.55, 0.60, 0.11, 5) == ""
    strong = {"accuracy": 0.8, "n_pos": 50, "auroc": 0.8, "auroc_ci": [0.72, 0.9]}
    base = pd.DataFrame({"random AUROC": [0.7], "random AUROC sd": [0.05], "seeds": [5]}, index=["s"])
    line = reading({"s": strong}, base, {})[0]
    assert "and above random neurons; random neurons 0.70 ± 0.05 (narrowly: " in line
    assert "(narrowly" not in reading({"s": strong}, base.assign(**{"random AUROC sd": 0.01}), {})[0]


def _credit_fixture():
    """Three scored sets (a: supported and credited; b: above chance but level with random
    neurons; c: supported but failing the span control) and one too small (x)."""
    def m(lo, hi, n=20):
        return {"auroc": (lo + hi) / 2, "auroc_ci": [lo, hi], "n_pos": n, "n_neg": n, "accuracy": 0.6}

    ours = {"a": m(0.62, 0.9), "b": m(0.55, 0.8), "c": m(0.75, 0.95), "x": m(0.9, 1.0, n=3)}
    base = pd.DataFrame({"random AUROC": [0.6, 0.6, 0.6, 0.5], "random AUROC sd": [0.1, 0.1, 0.01, 0.1],
                         "seeds": [5] * 4,
                         "H-Neurons refit AUROC": [0.7, 0.6, 0.8, 0.9],
                         "H-Neurons refit AUROC CI low": [0.45, 0.4, 0.7, 0.8],
                         "H-Neurons refit AUROC CI high": [0.9, 0.8, 0.9, 1.0],
                         "random (H-Neuron count) AUROC": [0.6, 0.6, 0.6, 0.5],
                         "random (H-Neuron count) AUROC sd": [0.1, 0.1, 0.01, 0.1]}, index=list("abcx"))
    diff = {"hallucinated: alias spans": 0.0, "faithful: alias spans": 1.0, "AUROC of span length alone": 0.9}
    spans = {k: diff for k in ours}
    ctl = {"datasets": {
        "a": {"metrics": {"auroc": 0.7, "auroc_ci": [0.56, 0.84], "n_pos": 20, "n_neg": 20},
              "spans": {"AUROC of span length alone": 0.64}},
        "b": {"metrics": {"auroc": 0.5, "auroc_ci": [0.3, 0.7], "n_pos": 20, "n_neg": 20},
              "drop": {"drop": 0.2, "drop_ci": [0.05, 0.35], "left_out": 0},
              "spans": {"AUROC of span length alone": 0.51}},
        "c": {"metrics": {"auroc": 0.5, "auroc_ci": [0.3, 0.7], "n_pos": 20, "n_neg": 20},
              "drop": {"drop": 0.3, "drop_ci": [0.1, 0.5], "left_out": 0}}}}
    return ours, base, spans, ctl


def test_credit_lines_say_credited_or_not_and_why():
    """One line per scored set: credited only where the probe clears random neurons and the
    span control; the span length alone under the one rule beside the refit; the like-for-like
    pair with its own verdict, and a credit resting on the mismatched pair alone said so; a
    note (the judge's caution) appended; a set with too few answers left out."""
    from hneurons_utils.detection import credit_lines

    ours, base, spans, ctl = _credit_fixture()
    lines = credit_lines(ours, base, ctl, spans, notes={"c": "judge caution: mostly non-answers"})
    assert [ln.split(":")[0] for ln in lines] == ["a", "b", "c"]
    a, b, c = lines
    assert a.startswith("a: credited: the probe vs random neurons: above chance, and above random "
                        "neurons (narrowly); span control survives (one-rule refit 0.70 [0.56, 0.84]; "
                        "span length alone 0.64 under the same rule)")
    assert ("like for like (H-Neurons refit vs as many random neurons, one recipe): 0.70 [0.45, 0.90] "
            "vs 0.60, not distinguishable from chance; so the credit rests on the probe-vs-random pair "
            "alone") in a
    assert b.startswith("b: not credited: the probe vs random neurons: above chance, but not "
                        "distinguishable from random neurons; span control fails (one-rule refit 0.50 "
                        "[0.30, 0.70], paired drop +0.20 [+0.05, +0.35]; span length alone 0.51")
    assert c.startswith("c: not credited: the probe vs random neurons: above chance, and above random "
                        "neurons; span control fails") and "(narrowly)" not in c.split(";")[0]
    # span length alone as high as the refit: the one rule left the lengths apart, and it says so
    assert "span length alone 0.51 under the same rule, at least the refit's AUROC: the one rule" in b
    assert "at least the refit's AUROC" not in a  # 0.64 under a refit of 0.70
    assert "0.80 [0.70, 0.90] vs 0.60, above chance, and above random neurons" in c
    assert "rests on the probe-vs-random pair" not in c  # not credited: nothing rests on it
    assert c.endswith("; judge caution: mostly non-answers.")
    # a probe at chance under the default rule leaves the span control nothing to test
    (d,) = credit_lines({"d": ours["b"] | {"auroc_ci": [0.4, 0.7]}}, base.rename(index={"b": "d"}),
                        {"datasets": {"d": ctl["datasets"]["b"]}}, {"d": spans["b"]})
    assert ("span control has nothing to test (no detection under the default rule) "
            "(one-rule refit 0.50") in d and "span control fails" not in d


def test_overall_reading_names_the_level_sets_both_pairs_and_ends_with_credit_lines():
    """The paragraph marks a narrow margin, names a set above chance but level with random
    neurons, says the probe-vs-random pair differs in recipe and gives the like-for-like pair's
    verdicts, prints span length alone beside a surviving refit, and ends with one line per set."""
    from hneurons_utils.detection import overall_reading

    ours, base, spans, ctl = _credit_fixture()
    text = overall_reading(ours, base, ctl, spans, probe_recipe="an L1 fit reading 9 neurons")
    assert "above random neurons on 2 (a narrowly, c) under the default span rule" in text
    assert "It is above chance but not distinguishable from random neurons on b." in text
    assert ("That comparison differs in recipe as well as in neurons: the probe is an L1 fit reading "
            "9 neurons, the random classifiers L2 fits on standardised features.") in text
    assert ("the refit is not distinguishable from chance on a, b; above chance, and above random "
            "neurons on c.") in text
    assert "(the refit stays above chance: a; span length alone 0.64 under the same rule)" in text
    paragraph, lines = text.split("\n\nEach scored dataset, credited to the H-Neurons or not:\n")
    assert [ln[:4] for ln in lines.split("\n")] == ["- a:", "- b:", "- c:"]


def test_token_cap_and_faithful_class_readings():
    """A response is counted as cut when its re-tokenised length reaches the cap; the note says
    the label then depends on the cap. The NonExist class reading claims separation only with a
    verdict above chance."""
    from hneurons_utils.detection import at_token_cap, faithful_class_reading, token_cap_note

    def tok(text, add_special_tokens=False):
        return {"input_ids": text.split()}  # one token per word

    cut = at_token_cap(tok, ["a b c", "a b", "a b c d"], 3)
    assert cut.tolist() == [True, False, True]
    note = token_cap_note(2, 3, 3, others=(5, 9))
    assert note.startswith("2 of the 3 faithful (declining) responses end at the 3-token cap")
    assert ", against 5 of 9 in the other class" in note and "depends on max_new_tokens" in note
    assert token_cap_note(0, 3, 3).endswith("no token count).")
    kinds = {"denies the entity": 1, "as an AI": 8, "other": 6}
    text = faithful_class_reading(kinds, 15)
    assert text.startswith("the faithful class is mostly declines that do not say the entity is "
                           "invented (1 of 15 do)") and text.endswith("its NonExist verdict below.")
    assert "so it is not shown to separate them" in faithful_class_reading(kinds, 15, "not distinguishable from chance")
    assert "says it separates them" in faithful_class_reading(kinds, 15, "above chance")
    assert faithful_class_reading({"denies the entity": 9}, 15).startswith("most of the faithful class says")


def test_degenerate_accuracy_interval_is_named():
    """A threshold that flags every response (or none) gives a zero-width accuracy interval on a
    balanced set: the metrics table names it; an interval with a width gets no note."""
    from hneurons_utils.detection import degenerate_accuracy_note, metrics_frame

    d = {"n_pos": 15, "accuracy": 0.5, "accuracy_ci": [0.5, 0.5], "auroc": 0.36,
         "auroc_ci": [0.15, 0.6], "flagged": 1.0}
    assert degenerate_accuracy_note(d) == "the threshold flags every response: interval undefined"
    assert degenerate_accuracy_note({**d, "flagged": 0.0}).startswith("the threshold flags no response")
    ok = {**d, "accuracy": 0.7, "accuracy_ci": [0.6, 0.8], "flagged": 0.55}
    assert degenerate_accuracy_note(ok) == ""
    frame = metrics_frame({"n": d, "t": ok})
    assert frame.loc["n", "note"].endswith("interval undefined") and frame.loc["t", "note"] == ""
