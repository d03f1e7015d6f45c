"""Tests of hneurons_utils.transfer: backward transfer, its reading and figure (Section 4, Figure 4a)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hneurons_utils import transfer


def test_transfer_table_scores_the_unchanged_probe():
    """A probe whose score is the label gets AUROC 100; baseline rows are summarised per probe."""
    from hneurons_utils.pipeline import EvalSet
    from hneurons_utils.probe import Probe

    y = np.array([1, 1, 1, 0, 0, 0])
    X = np.zeros((6, 2 * 4)); X[:, 5] = y  # neuron 5 fires exactly on hallucinations
    probe = Probe("m", 2, 4, np.array([5]), np.array([2.0]), -1.0, 1.0, np.zeros(1), np.ones(1))
    sets = {"triviaqa": EvalSet("triviaqa", [str(i) for i in range(6)], X, y, {})}
    rows = [{"kind": "h_neurons_refit", "dataset": "triviaqa", "accuracy": 1.0, "auroc": 1.0, "n": 6},
            {"kind": "random_1", "dataset": "triviaqa", "accuracy": 0.5, "auroc": 0.4, "n": 6},
            {"kind": "random_2", "dataset": "triviaqa", "accuracy": 0.5, "auroc": 0.6, "n": 6}]
    t = transfer.transfer_table(probe, sets, rows, n_boot=50).set_index("probe")
    assert t.loc["H-Neuron probe (unchanged)", "auroc"] == pytest.approx(100.0)
    assert t.loc["H-Neuron probe (unchanged)", "accuracy"] == pytest.approx(100.0)
    assert t.loc["random neurons (L2)", "auroc"] == pytest.approx(50.0)


def test_transfer_table_without_baselines_keeps_the_probe_rows():
    """No baseline rows (no random probe could be fitted) leave the unchanged probe's rows, not
    a KeyError from an empty frame."""
    from hneurons_utils.pipeline import EvalSet
    from hneurons_utils.probe import Probe

    y = np.array([1, 1, 0, 0])
    X = np.zeros((4, 8)); X[:, 5] = y
    probe = Probe("m", 2, 4, np.array([5]), np.array([2.0]), -1.0, 1.0, np.zeros(1), np.ones(1))
    t = transfer.transfer_table(probe, {"nq": EvalSet("nq", list("abcd"), X, y, {})}, [], n_boot=20)
    assert list(t.probe) == ["H-Neuron probe (unchanged)"] and t.auroc.iloc[0] == pytest.approx(100.0)


def test_paper_transfer_marks_come_from_the_reference_file():
    """The paper's stated Figure 4a bounds are read from data/paper_reference.json, not typed in."""
    from hneurons_utils import paper

    marks = transfer.paper_transfer_marks(paper.backward_auroc_frame())
    ref = paper.load_reference()["figure4"]
    stated = {b["auroc_above"] for b in ref["backward_auroc"]["text_bounds"]} - {50.0}
    assert {v for v, _ in marks.values()} == stated and "triviaqa" in marks
    # the paper words this bound as accuracy: the label quotes it and says how it is read
    value, label = marks["triviaqa"]
    assert f"'accuracy exceeding {value:g}%'" in label and "read here as an AUROC bound" in label
    assert label.startswith("paper text (Mistral-7B-v0.3, Mistral-Small-3.1-24B)")
    # a bound the text states as AUROC keeps the plain label
    ref_auroc = paper.load_reference()
    for b in ref_auroc["figure4"]["backward_auroc"]["text_bounds"]:
        b["quote"] = b["quote"].replace("accuracy exceeding", "an AUROC of")
    (_, plain), = transfer.paper_transfer_marks(paper.backward_auroc_frame(), reference=ref_auroc).values()
    assert plain == f"paper: Mistral-7B-v0.3, Mistral-Small-3.1-24B above {value:g}"


def test_plot_transfer_keeps_unscored_datasets_on_the_axis():
    """Datasets without a balanced set stay on Figure 4a's axis, with their counts as text; a
    set under ten answers per class is faded and says it is too few."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    table = pd.DataFrame([{"dataset": ds, "probe": p, "auroc": 60.0, "lo": 50.0, "hi": 70.0, "n": n}
                          for ds, n in (("triviaqa", 40), ("nq_open", 6))
                          for p in ("H-Neuron probe (unchanged)", "random neurons (L2)")])
    fig, ax = plt.subplots()
    transfer.plot_transfer(ax, table, None, {"bioasq": {"faithful": 0, "hallucinated": 60}})
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        "TriviaQA\n(20 per class)", "NQ-Open\n(3 per class:\ntoo few)", "BioASQ"]
    assert any("0 faithful" in t.get_text() and "60 hallucinated" in t.get_text() for t in ax.texts)
    faded = [round(b.get_x() + b.get_width() / 2) for b in ax.patches if b.get_hatch() == "//"]
    assert sorted(faded) == [1, 1]  # both nq_open bars, no triviaqa bar
    # error bars: the triviaqa bars keep theirs (10 points each side), nq_open's are dropped
    bars_x = sorted(round(float(seg[0, 0]), 6) for c in ax.containers
                    if type(c).__name__ == "ErrorbarContainer" for seg in c.lines[2][0].get_segments())
    assert len(bars_x) == 2 and all(x < 0.5 for x in bars_x)  # both triviaqa bars, none on nq_open
    assert any("H-Neuron probe (unchanged) (bar: 95% bootstrap CI)" == t.get_text()
               for t in ax.get_legend().get_texts())
    plt.close(fig)
    # the refit's yardstick (the random probes of its size) is a band beside its bar, not an
    # error bar on it, with its own legend entry (triviaqa only: nq_open has too few)
    refit = pd.DataFrame([{"dataset": ds, "probe": transfer.REFIT, "auroc": 30.0, "lo": np.nan,
                           "hi": np.nan, "n": n, "same_size_lo": 35.0, "same_size_hi": 65.0,
                           "same_size_n": 5} for ds, n in (("triviaqa", 40), ("nq_open", 6))])
    fig, ax = plt.subplots()
    transfer.plot_transfer(ax, pd.concat([table, refit], ignore_index=True))
    (band,) = [c for c in ax.containers if c.get_label().startswith("range of 5 same-size random probes")]
    (patch,) = band.patches
    assert (patch.get_y(), patch.get_y() + patch.get_height()) == (35.0, 65.0)
    (refit_bars,) = [c for c in ax.containers if c.get_label().startswith(transfer.REFIT)]
    bar = refit_bars.patches[0]
    assert patch.get_x() >= bar.get_x() + bar.get_width() - 1e-9  # beside the refit, not on it
    errs = [c for c in ax.containers if type(c).__name__ == "ErrorbarContainer"]
    on_refit = [s for c in errs for s in c.lines[2][0].get_segments()
                if bar.get_x() <= s[0, 0] <= bar.get_x() + bar.get_width()]
    assert on_refit == []  # no error bar drawn on the refit
    assert any(t.get_text().startswith("range of 5 same-size random probes")
               for t in ax.get_legend().get_texts())
    plt.close(fig)


def test_transfer_table_marks_the_refit_as_a_point_estimate_and_random_as_mean_and_range():
    """The refit (one classifier) has no interval; the random probes are their mean and sd with
    the lowest and highest seed as the bar (inside [0, 100], unlike mean ± sd), and
    transfer_reading compares the probe's interval with the random mean."""
    from hneurons_utils.pipeline import EvalSet
    from hneurons_utils.probe import Probe

    y = np.array([1, 1, 1, 0, 0, 0] * 4)
    X = np.zeros((24, 8)); X[:, 5] = y
    probe = Probe("m", 2, 4, np.array([5]), np.array([2.0]), -1.0, 1.0, np.zeros(1), np.ones(1))
    sets = {"triviaqa": EvalSet("triviaqa", [str(i) for i in range(24)], X, y, {})}
    aucs = [0.0, 0.02, 0.98, 1.0]  # mean ± sd would leave [0, 100]
    rows = [{"kind": "h_neurons_refit", "dataset": "triviaqa", "accuracy": 0.9, "auroc": 0.8, "n": 24}] + \
        [{"kind": f"random_{i}", "dataset": "triviaqa", "accuracy": 0.5, "auroc": a, "n": 24} for i, a in enumerate(aucs)] + \
        [{"kind": f"hsize_random_{i}", "dataset": "triviaqa", "accuracy": 0.5, "auroc": a, "n": 24}
         for i, a in enumerate([0.3, 0.6, float("nan")])]  # a seed without an AUROC is left out
    t = transfer.transfer_table(probe, sets, rows, n_boot=50).set_index("probe")
    refit, rnd = t.loc[transfer.REFIT], t.loc[transfer.RANDOM]
    assert refit.auroc == pytest.approx(80.0) and np.isnan(refit.lo) and np.isnan(refit.hi)
    # the refit's yardstick: random probes of as many neurons (not mixed into the random row)
    assert (refit.same_size_lo, refit.same_size_hi, refit.same_size_n) == (
        pytest.approx(30.0), pytest.approx(60.0), 2)
    assert refit.same_size_above == 0  # 80 is above both of them
    assert refit.interval.startswith("point estimate")
    sd = np.std(np.array(aucs) * 100, ddof=1)
    assert rnd.auroc == pytest.approx(50.0) and rnd.sd == pytest.approx(sd)
    assert (rnd.lo, rnd.hi) == (pytest.approx(0.0), pytest.approx(100.0)) and rnd.n_probes == 4
    assert 50.0 - sd < 0 and 50.0 + sd > 100
    (r,) = transfer.transfer_reading(t.reset_index())
    assert r["random_mean"] == pytest.approx(50.0) and r["random_sd"] == pytest.approx(sd)
    assert r["span_note"] == ""  # no span yardstick given
    # a probe above chance that span length alone matches is named as such, in the discussion too
    (r,) = transfer.transfer_reading(t.reset_index(), span_auroc={"triviaqa": 100.0})
    assert r["verdict"].startswith("above chance")  # the probe separates this set perfectly
    assert r["span_note"].startswith("span length alone reaches 100.0 here, as much as the probe")
    assert "on triviaqa, span length alone" in transfer.discussion([r], {}, {}, True, 1)[0]
    assert transfer.transfer_reading(t.reset_index(), span_auroc={"triviaqa": 10.0})[0]["span_note"] == ""
    top = float(t.reset_index().auroc.max())
    assert "as much as the probe" in transfer.transfer_reading(
        t.reset_index(), span_auroc={"triviaqa": top})[0]["span_note"]  # a tie, to the printed digit
    # a probe at chance that span length alone beats gets the note too, worded for no detection
    weak = t.reset_index()
    weak.loc[weak.auroc == weak.auroc.max(), ["lo", "auroc"]] = [40.0, 60.0]
    (r,) = transfer.transfer_reading(weak, span_auroc={"triviaqa": 100.0})
    assert not r["verdict"].startswith("above chance")
    assert r["span_note"].startswith("span length alone reaches 100.0 here, more than the probe (60.0)")
    assert r["span_note"].endswith("even a probe that cleared chance here would not be shown to read more than the span")


def test_unscored_reading_says_why_and_how_many_questions():
    """Datasets without a balanced set are explained from their counts (rule of three at 0)."""
    lines = transfer.unscored_reading({"nq_open": {"faithful": 0, "hallucinated": 59},
                                     "bioasq": {"faithful": 2, "hallucinated": 58}},
                                    {"nq_open": 59, "bioasq": 60})
    assert lines[0].startswith("nq_open: not scored: 0 faithful and 59 hallucinated answers of 59 questions asked;")
    assert "below 5.1% (95% upper bound)" in lines[0] and "at least 197 questions" in lines[0]
    assert "observed faithful rate of 3.3% per question" in lines[1] and "about 300 questions" in lines[1]
    assert lines[1].startswith("bioasq: too few to conclude (fewer than 10 per class): 2 faithful")
    assert len(lines) == 2
    assert transfer.unscored_reading({"triviaqa": {"faithful": 18, "hallucinated": 378}}) == []


def test_unscored_reading_quotes_the_questions_asked_not_those_requested():
    """The chapter's counts table says 595 and 59 questions (a few dropped when loading): the
    reading quotes and counts those, with the requested number beside it, not in its place."""
    counts = {"bioasq": {"questions": 595, "faithful": 9, "hallucinated": 586},
              "nq_open": {"questions": 59, "faithful": 0, "hallucinated": 59},
              "triviaqa": {"questions": 400, "faithful": 18, "hallucinated": 378}}
    lines = transfer.unscored_reading(counts, {"bioasq": 600, "nq_open": 60, "triviaqa": 400},
                                      available={"bioasq": 1587, "nq_open": 50})
    assert len(lines) == 2  # TriviaQA has ten of each
    assert "9 faithful and 586 hallucinated answers of 595 questions asked (600 requested);" in lines[0]
    assert "of 600 questions" not in lines[0]
    assert "rate of 1.5% per question" in lines[0] and "about 662 questions" in lines[0]  # 10 * 595 / 9
    assert lines[0].endswith("(the dataset holds 1,587 usable questions).")
    assert "of 59 questions asked (60 requested)" in lines[1] and "of 60 questions" not in lines[1]
    assert lines[1].endswith("(the dataset holds 50 usable questions, fewer than that).")  # 197 > 50
    # refusals ask a question too: the rate is per question asked, not per judged answer
    (line,) = transfer.unscored_reading({"x": {"questions": 120, "faithful": 5, "hallucinated": 95}})
    assert "rate of 4.2% per question" in line and "about 240 questions" in line
    assert "(the dataset holds" not in line


def test_usable_questions_loads_only_the_datasets_the_reading_speaks_of(monkeypatch):
    """The sizes beside the reading come from the loader (whole datasets, TriviaQA's test split),
    only for thin datasets, without repeating the loader's notes."""
    import logging

    from hneurons_utils import data

    calls = []

    def fake(name, split=None, data_dir=None, limit=None, seed=0):
        calls.append((name, split, data_dir, limit))
        logging.getLogger("hneurons_utils.data").warning("skipped rows")
        return [object()] * {"triviaqa": 7, "bioasq": 5}[name]

    monkeypatch.setattr(data, "load_qa", fake)
    counts = {"triviaqa": {"faithful": 3, "hallucinated": 40}, "bioasq": {"faithful": 0, "hallucinated": 9},
              "nq_open": {"faithful": 12, "hallucinated": 30}, "nonexist": {"faithful": 0, "hallucinated": 3}}
    assert transfer.usable_questions(counts, "/d") == {"triviaqa": 7, "bioasq": 5}
    assert calls == [("triviaqa", "test", "/d", None), ("bioasq", None, "/d", None)]
    assert logging.getLogger("hneurons_utils.data").level == logging.NOTSET  # restored


def _drift_result(mean, lo, hi, p_t, p_layer=0.5, k=30):
    return {"n_h_neurons": k, "mean_rank": mean, "mean_rank_ci": [lo, hi],
            "t_test": {"p_value": p_t}, "mann_whitney": {"p_value": p_t},
            "random_layer_matched": {"p_value": p_layer}}


def test_discussion_follows_the_results():
    """The written reading changes with the numbers: no outcome is pre-framed."""
    chance = [{"dataset": "triviaqa", "auroc": 60.2, "lo": 43.7, "hi": 75.9, "n": 48, "n_min": 24,
               "random_mean": 52.3, "random_sd": 8.0, "verdict": "not distinguishable from chance"}]
    empty = {"bioasq": {"faithful": 0, "hallucinated": 60}}
    more = transfer.discussion(chance, empty, {"up + down (paper)": _drift_result(0.31, 0.18, 0.45, 0.96)},
                             True, 14)
    assert "includes 50" in more[0] and "bioasq could not be scored" in more[0]
    # the first sentence names the probe ("its" would have no antecedent)
    assert "On triviaqa the unchanged probe's AUROC interval [43.7, 75.9]" in more[0]
    assert "opposite of the paper" in more[1] and "does not support" in more[1]
    assert "does not contradict" not in " ".join(more)
    good = [dict(chance[0], lo=70.0, verdict="above chance, and above random neurons")]
    less = transfer.discussion(good, {}, {"up + down (paper)": _drift_result(0.8, 0.7, 0.9, 1e-4, 1e-3)},
                             True, 30)
    assert "above random neurons on triviaqa" in less[0] and "easier test" in less[0]
    assert "paper's direction" in less[1] and "opposite" not in less[1]
    within = _drift_result(0.21, 0.18, 0.24, 0.9, 0.86, k=2)
    within["random_layer_matched"]["p_value_more"] = 0.14
    few = transfer.discussion(chance, {}, {"up + down (paper)": within}, True, 2)
    assert "no evidence either way" in few[1] and "the verdict's yardstick is random sets drawn from the H-Neurons' own layers." in few[1]
    # with every yardstick stored: each named with its mean, and what the any-layer sets add
    within["random_layer_matched"]["mean_rank_mean"] = 0.41
    within["random"] = {"mean_rank_mean": 0.5, "p_value_more": 0.01}
    within["random_layer_matched"]["p_value"] = 0.86
    within["random_norm_matched"] = {"mean_rank_mean": 0.34, "p_value": 0.9, "p_value_more": 0.08}
    within["norm_spearman"] = {"rho": -0.89}
    few = transfer.discussion(chance, {}, {"up + down (paper)": within}, True, 2)
    assert ("random sets drawn from the H-Neurons' own layers, which average 0.41. Against sets "
            "drawn from any layer the mean is rarer (1% of draws), so part of the gap from 0.5 "
            "comes with the layers these neurons sit in") in few[1]
    assert "with the closest weight norm (mean rank 0.34), a mean rank as high" in few[1]
    assert "This is the opposite of the paper's finding" not in few[1]
    neither = transfer.discussion(good, {}, {"up + down (paper)": _drift_result(0.52, 0.4, 0.6, 0.3)}, False, 30)
    assert "no evidence either way" in neither[1]
    assert "Not tested: 1 H-Neuron" in transfer.discussion([], {}, {}, True, 1)[1]
    assert "not applied to any dataset (no H-Neuron was identified)" in transfer.discussion([], empty, {}, True, 0)[0]
    drift_res = {"up + down (paper)": _drift_result(0.31, 0.18, 0.45, 0.96, k=14)}
    assert "uncertain at this sample size" in transfer.discussion(chance, {}, drift_res, True, 14)[1]
    unstable = {"n_resamples": 20, "frequency": [0.9, 0.6, 0.1, 0.2], "jaccard": [0.3] * 20}
    core = dict(unstable, frequency=[1.0, 0.9, 0.8, 0.6])
    assert "reproducible core" in transfer.discussion(chance, {}, drift_res, True, 14, stability=core)[1]
    para = transfer.discussion(chance, {}, drift_res, True, 14, stability=unstable)[1]
    assert "selects 2 of these 4 neurons again" in para and "does not reproduce as a whole" in para
    assert "uncertain" not in para
    steady = dict(unstable, jaccard=[0.7] * 20)
    assert "largely reproduces" in transfer.discussion(chance, {}, drift_res, True, 14, stability=steady)[1]
    single = dict(_drift_result(0.22, None, None, np.nan, k=1), mean_rank_ci=None, ranks=[0.22])
    one = transfer.discussion(chance, {}, {"up + down (paper)": single}, True, 1,
                              stability=dict(unstable, frequency=[0.65]))[1]
    assert "The one H-Neuron's normalised rank is 0.22 (one neuron's rank: no interval)" in one
    assert "One neuron's rank places that neuron, not a set" in one and "the mean" not in one
    single["random_layer_matched"] = {"p_value": 0.784, "p_value_more": 0.218}
    one_p = transfer.discussion(chance, {}, {"up + down (paper)": single}, True, 1)[1]
    assert "rank at least as high in 78% of draws and at least as low in 22%" in one_p
    assert "Not tested: 0 H-Neurons." in transfer.discussion([], {}, {}, True, 0)[1]
    assert "again in 65% of them" in one
    assert "average of few neurons" not in one and "1 H-Neurons" not in one
    broad = transfer.discussion(chance, {}, drift_res, True, 14, per_mille=3.9)[1]
    assert "not sparse (3.9 per mille" in broad
    assert "not sparse" not in transfer.discussion(chance, {}, drift_res, True, 14, per_mille=0.4)[1]


def _heldout(auroc, lo, hi, n_faithful, n_hallucinated=16):
    return {"auroc": auroc, "lo": lo, "hi": hi, "n": n_faithful + n_hallucinated,
            "n_hallucinated": n_hallucinated, "n_faithful": n_faithful,
            "n_min": min(n_faithful, n_hallucinated)}


def test_refit_far_below_chance_is_no_reversal_unless_it_detects_on_the_instruct_model():
    """A refit below 50 on the base model (by more than half the probe's interval) is read as a
    reversal between the models only where the same refit is clearly above 50 on the instruct
    model's own held-out responses; its rank among the random probes of its size is a
    1-in-(k+1) event; within the noise guide, or with too few answers, nothing is said."""
    def table(refit, n=40, same=(np.nan, np.nan, 0), above=np.nan):
        return pd.DataFrame([
            {"dataset": "triviaqa", "probe": transfer.UNCHANGED, "n": n, "auroc": 48.0, "lo": 28.0, "hi": 68.0},
            {"dataset": "triviaqa", "probe": transfer.REFIT, "n": n, "auroc": refit, "lo": np.nan, "hi": np.nan,
             "same_size_lo": same[0], "same_size_hi": same[1], "same_size_n": same[2],
             "same_size_above": above}])
    few = _heldout(53.8, 27.5, 81.3, 5)
    (low,) = transfer.transfer_reading(table(22.8, same=(33.0, 61.0, 5), above=5), heldout=few)
    assert low["refit"] == pytest.approx(22.8)
    note = low["refit_note"]
    assert note.startswith("the H-Neurons refit (trained on the instruct model's identification "
                           "rows) reaches 22.8 on the base model, below 50 by more than the probe's "
                           "interval half-width (20.0), below all 5 random probes of as many "
                           "neurons (33.0 to 61.0): a 1-in-6 event by chance")
    assert "it reaches 53.8 [27.5, 81.3] (16 hallucinated, 5 faithful), too few for a verdict" in \
        note.replace("the refit reaches", "it reaches")
    assert note.endswith("not shown to detect hallucinations on either model, so its low "
                         "base-model AUROC is no evidence that the signal reverses between them")
    assert "other way round" not in note and note == low["refit_base"] + low["refit_tail"]
    # enough held-out responses but an interval through 50: still no reversal
    flat = transfer.transfer_reading(table(22.8), heldout=_heldout(55.0, 40.0, 70.0, 20, 20))[0]
    assert "does not lie above 50" in flat["refit_note"] and "either model" in flat["refit_note"]
    # clearly above 50 on the instruct side: a reversal between the models
    clear = transfer.transfer_reading(table(22.8), heldout=_heldout(80.0, 65.0, 92.0, 20, 20))[0]
    assert ", above 50: these neurons detect on the instruct model" in clear["refit_note"]
    assert "other way round, a reversal between the models" in clear["refit_note"]
    # a high point estimate with too few held-out responses is not "clearly above"
    assert "reversal between the models" not in transfer.transfer_reading(
        table(22.8), heldout=_heldout(95.0, 80.0, 100.0, 5))[0]["refit_note"]
    # without the instruct side no reversal is claimed either
    assert "is not given: the refit is not shown" in transfer.transfer_reading(table(22.8))[0]["refit_note"]
    # its rank among random probes of its size: below 3 of 5 is a 3-in-6 event
    mid = transfer.transfer_reading(table(22.8, same=(20.1, 61.0, 5), above=3), heldout=few)[0]
    assert "below 3 of the 5 random probes of as many neurons (20.1 to 61.0): a 3-in-6 event" in mid["refit_note"]
    top = transfer.transfer_reading(table(22.8, same=(10.0, 20.0, 5), above=0), heldout=few)[0]
    assert "not below any of the 5 random probes" in top["refit_note"] and "event" not in top["refit_note"]
    # an older table without same_size_above: the rank is inferred only below the lowest
    old = transfer.transfer_reading(table(22.8, same=(33.0, 61.0, 5)), heldout=few)[0]["refit_note"]
    assert "below all 5" in old and "1-in-6" in old
    wander = transfer.transfer_reading(table(22.8, same=(20.1, 61.0, 5)), heldout=few)[0]["refit_note"]
    assert "; random probes of as many neurons (20.1 to 61.0) fall as low" in wander
    assert transfer.transfer_reading(table(35.0), heldout=few)[0]["refit_note"] == ""  # within the noise guide
    assert transfer.transfer_reading(table(10.0, n=12), heldout=few)[0]["refit_note"] == ""  # 6 per class
    # the discussion states the instruct side once for all datasets
    two = pd.concat([table(22.8, same=(33.0, 61.0, 5), above=5),
                     table(27.2, same=(34.9, 68.6, 5), above=5).assign(dataset="bioasq")])
    text = transfer.discussion(transfer.transfer_reading(two, heldout=few), {}, {}, True, 2)[0]
    assert "on triviaqa, the H-Neurons refit" in text and "on bioasq, the H-Neurons refit" in text
    assert text.count("on the instruct model's own held-out responses") == 1


def test_chance_rank_is_one_in_k_plus_one_below_all():
    """Below all k exchangeable probes: 1 in k+1; below none: certain; out of range: refused."""
    assert transfer.chance_rank(5, 5) == (1, 6)
    assert transfer.chance_rank(2, 5) == (4, 6)
    assert transfer.chance_rank(0, 3) == (4, 4)
    with pytest.raises(ValueError):
        transfer.chance_rank(6, 5)


def test_instruct_heldout_scores_probe_and_refit_on_the_held_out_responses():
    """The unchanged probe and the H-Neurons refit (baseline_metrics' recipe) are scored on the
    identification's held-out responses with intervals, class and question counts; under
    MIN_PER_CLASS responses per class there is no verdict; no held-out part: nothing."""
    from hneurons_utils.detection import baseline_metrics
    from hneurons_utils.features import FeatureSet
    from hneurons_utils.pipeline import EvalSet
    from hneurons_utils.probe import Probe
    from hneurons_utils.stats import auroc

    rng = np.random.default_rng(0)
    L, N = 2, 4

    def keys(part, n_q, label, per_q):
        return [f"{part}{label}q{q}#{i}" for q in range(n_q) for i in range(per_q)]

    split = {"train": {"keys": keys("t", 20, 1, 1) + keys("t", 20, 0, 1), "labels": [1] * 20 + [0] * 20},
             "val": {"keys": keys("v", 4, 1, 4) + keys("v", 4, 0, 3), "labels": [1] * 16 + [0] * 12}}
    all_keys = split["train"]["keys"] + split["val"]["keys"]
    y = np.array(split["train"]["labels"] + split["val"]["labels"])
    ans = rng.normal(size=(len(all_keys), L, N)).astype(np.float32)
    ans[:, 1, 1] += 2.0 * y  # neuron 5 carries the label; 6 is noise with a negative weight
    fs = FeatureSet(np.array(all_keys), ans, ans * 0.5, np.full(len(all_keys), "alias"),
                    np.ones((len(all_keys), 2), dtype=np.int64), {})
    probe = Probe("m", L, N, np.array([5, 6]), np.array([1.5, -0.2]), -1.0, 1.0, np.zeros(2), np.ones(2),
                  label_scheme="1-vs-1")
    out = transfer.instruct_heldout(probe, fs, split, n_boot=200, seed=0)
    assert set(out) == {transfer.UNCHANGED, transfer.REFIT}
    yv = np.array(split["val"]["labels"])
    Xv = ans[len(split["train"]["keys"]):].reshape(len(yv), -1)
    u = out[transfer.UNCHANGED]
    assert u["auroc"] == pytest.approx(100 * auroc(yv, probe.decision_function(Xv)))
    assert u["lo"] <= u["auroc"] <= u["hi"] and u["acc_lo"] <= u["accuracy"] <= u["acc_hi"]
    assert (u["n"], u["n_hallucinated"], u["n_faithful"], u["n_min"]) == (28, 16, 12, 12)
    assert (u["q_hallucinated"], u["q_faithful"]) == (4, 4)
    assert u["verdict"] == "above chance"
    # the refit is the very classifier baseline_metrics trains, scored on these responses
    val_set = {"val": EvalSet("val", split["val"]["keys"], Xv, yv, {})}
    (row,) = [r for r in baseline_metrics(probe, fs, split, val_set, []) if r["kind"] == "h_neurons_refit"]
    assert out[transfer.REFIT]["auroc"] == pytest.approx(100 * row["auroc"])
    text = transfer.heldout_text(u)
    assert text.startswith(f"AUROC {u['auroc']:.1f} [{u['lo']:.1f}, {u['hi']:.1f}] on 28 responses "
                           "(16 hallucinated, 12 faithful, from 4 and 4 questions): above chance")
    # under MIN_PER_CLASS faithful responses: no verdict
    small = {"train": split["train"], "val": {"keys": split["val"]["keys"][:21],
                                              "labels": split["val"]["labels"][:21]}}
    few = transfer.instruct_heldout(probe, fs, small, n_boot=50)[transfer.UNCHANGED]
    assert few["n_faithful"] == 5 and few["verdict"].startswith("too few")
    # a probe whose scores run the wrong way, with enough responses: below chance
    flipped = Probe("m", L, N, np.array([5]), np.array([-1.5]), 1.0, 1.0, np.zeros(1), np.ones(1),
                    label_scheme="1-vs-1")
    rev = transfer.instruct_heldout(flipped, fs, split, n_boot=200)
    assert rev[transfer.UNCHANGED]["verdict"].startswith("below chance") and transfer.REFIT not in rev
    assert transfer.instruct_heldout(probe, fs, {"train": split["train"], "val": {"keys": [], "labels": []}}) == {}


def test_discussion_quotes_the_probes_instruct_side_yardstick():
    """Where a weak probe is one reading of a null result, the discussion gives its held-out
    AUROC on the instruct model (with the set that chose C named as optimistic) and no longer
    asserts that the tuning moved the weights little."""
    chance = [{"dataset": "triviaqa", "auroc": 47.8, "lo": 26.9, "hi": 67.6, "n": 36, "n_min": 18,
               "random_mean": 54.3, "random_sd": 16.4, "verdict": "not distinguishable from chance"}]
    own = dict(_heldout(63.7, 35.0, 92.5, 5), q_hallucinated=4, q_faithful=4,
               verdict="too few responses to conclude (fewer than 10 per class)")
    text = transfer.discussion(chance, {}, {}, True, 2, heldout=own)[0]
    # no signal shown on the instruct side: nothing to transfer, and the text does not presume one
    assert ("The probe is not shown to detect on the instruct model itself either: on its own "
            "held-out responses, the set that chose C (so an optimistic yardstick), it reaches AUROC "
            "63.7 [35.0, 92.5] on 21 responses (16 hallucinated, 5 faithful, from 4 and 4 "
            "questions): too few responses to conclude") in text
    assert "says nothing about where the neurons come from" in text
    assert "Tuning having created the signal" not in text
    assert "Small drift" not in text and "moved the weights little" not in text
    # a signal shown there (interval above 50): tuning having created it is one reading of many
    shown = dict(own, auroc=80.0, lo=62.0, hi=95.0, verdict="above chance")
    text = transfer.discussion(chance, {}, {}, True, 2, heldout=shown)[0]
    assert ("Tuning having created the signal is not the only reading of this null result" in text
            and "the probe reaches AUROC 80.0 [62.0, 95.0]" in text)
    assert "printed with the identification above" in transfer.discussion(chance, {}, {}, True, 2)[0]
    good = [dict(chance[0], lo=70.0, verdict="above chance, and above random neurons")]
    assert "not measured here" in transfer.discussion(good, {}, {}, True, 2)[0]


def test_plot_transfer_follows_the_papers_order_and_names_what_each_probe_reads():
    """Datasets stand in the paper's order (TriviaQA, NQ-Open, BioASQ) whatever the table's,
    an unscored one keeps its slot; the unchanged probe is labelled by what it reads, the
    random probes by their neuron and seed counts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from hneurons_utils.probe import Probe

    table = pd.DataFrame([{"dataset": ds, "probe": transfer.UNCHANGED, "auroc": 60.0, "lo": 50.0,
                           "hi": 70.0, "n": 36, "n_neurons": 4} for ds in ("bioasq", "triviaqa")]
                         + [{"dataset": ds, "probe": transfer.RANDOM, "auroc": 40.0, "lo": 30.0,
                             "hi": 48.0, "n": 36, "n_probes": 5, "n_neurons": 4}
                            for ds in ("bioasq", "triviaqa")])
    probe = Probe("m", 2, 4, np.array([1, 2, 5, 6]), np.array([4.19, -11.29, -1.0, -0.5]), 0.0,
                  1.0, np.zeros(4), np.ones(4))
    label = transfer.probe_label(probe)
    assert label == "instruct probe (1 H-Neuron + 3 negative-weight neurons)"
    fig, ax = plt.subplots()
    transfer.plot_transfer(ax, table, None, {"nq_open": {"faithful": 0, "hallucinated": 59}},
                           unchanged_label=label)
    assert [t.get_text().split("\n")[0] for t in ax.get_xticklabels()] == ["TriviaQA", "NQ-Open", "BioASQ"]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert f"{label} (bar: 95% bootstrap CI)" in legend
    assert f"{transfer.RANDOM}, 4 neurons each, mean of 5 seeds (bar: lowest-highest seed)" in legend
    plt.close(fig)


def _rows(unchanged, random_aucs, refit, same):
    """transfer_table-like rows of one dataset, indexed by probe (AUROC in %)."""
    rnd = np.array(random_aucs, dtype=float)
    same = np.array(same, dtype=float)
    return pd.DataFrame([
        {"probe": transfer.UNCHANGED, "auroc": unchanged, "lo": unchanged - 20, "hi": unchanged + 20, "n": 22},
        {"probe": transfer.REFIT, "auroc": refit, "lo": np.nan, "hi": np.nan, "n": 22,
         "same_size_n": same.size, "same_size_below_chance": int((same < 50).sum())},
        {"probe": transfer.RANDOM, "auroc": rnd.mean(), "lo": rnd.min(), "hi": rnd.max(), "n": 22,
         "n_probes": rnd.size, "n_below_chance": int((rnd < 50).sum())}]).set_index("probe")


def test_below_chance_note_fires_when_most_classifiers_sit_below_50():
    """BioASQ of the default run: 7 of 12 classifiers below 50 and the random mean below it;
    with span length far from 50 the note links the two, with span near 50 it says the span
    does not explain it; where most classifiers are above 50, no note."""
    r = _rows(50.4, [38.8, 29.8, 28.1, 47.9, 41.3], 33.9, [52.1, 74.8, 20.7, 54.5, 51.2])
    note = transfer.below_chance_note(r, span=95.5)
    assert note.startswith("7 of the 12 classifiers trained on the instruct model score below 50")
    assert "random-neuron probes: 5 of 5, from 28.1 to 47.9" in note and "refit: 33.9" in note
    assert "adds nothing to clearing chance" in note and "span length alone separates the classes here (95.5)" in note
    assert "does not obviously explain" in transfer.below_chance_note(r, span=55.0)
    assert "span" not in transfer.below_chance_note(r)
    up = _rows(60.0, [38.0, 45.0, 52.0, 55.0, 40.0], 60.0, [55.0, 60.0, 62.0, 58.0, 40.0])
    assert transfer.below_chance_note(up, span=95.5) == ""  # random mean 46, but 4 of 12 below


def test_expected_unscored_uses_the_other_datasets_rate():
    """NQ-Open of the default run: 29 faithful in 1,194 questions elsewhere predicts about 1.4
    in 59, so NQ-Open was expected to go unscored; 412 questions would give 10 at that rate."""
    counts = {"triviaqa": {"questions": 400, "faithful": 18, "hallucinated": 378},
              "bioasq": {"questions": 794, "faithful": 11, "hallucinated": 783},
              "nq_open": {"questions": 59, "faithful": 0, "hallucinated": 59}}
    out = transfer.expected_unscored(counts, {"triviaqa": 400, "nq_open": 60, "bioasq": 800})
    assert len(out) == 1 and out[0].startswith("nq_open: at the faithful rate of the other datasets (2.4%")
    assert "59 questions (60 requested) were expected to give about 1.4 faithful" in out[0]
    assert "expected to be unscored" in out[0] and "about 412 questions" in out[0]
    assert transfer.expected_unscored({"a": {"questions": 10, "faithful": 20, "hallucinated": 30}}) == []
