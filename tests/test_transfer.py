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


def test_paper_transfer_marks_come_from_the_reference_file():
    """The paper's stated Figure 4a bounds are read from data/paper_reference.json, not typed in."""
    from hneurons_utils import paper

    marks = transfer.paper_transfer_marks(paper.backward_auroc_frame())
    ref = paper.load_reference()["figure4"]
    stated = {b["auroc_above"] for b in ref["backward_auroc"]["text_bounds"]} - {50.0}
    assert {v for v, _ in marks.values()} == stated and "triviaqa" in marks


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
        "TriviaQA", "NQ-Open\n(3 per class:\ntoo few)", "BioASQ"]
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
    # the refit's grey bar spans the random probes of its size (triviaqa only: nq_open has too few)
    refit = pd.DataFrame([{"dataset": ds, "probe": transfer.REFIT, "auroc": 30.0, "lo": np.nan,
                           "hi": np.nan, "n": n, "same_size_lo": 35.0, "same_size_hi": 65.0}
                          for ds, n in (("triviaqa", 40), ("nq_open", 6))])
    fig, ax = plt.subplots()
    transfer.plot_transfer(ax, pd.concat([table, refit], ignore_index=True))
    grey = [c for c in ax.containers if type(c).__name__ == "ErrorbarContainer"
            and c.get_label().startswith("random probes of the refit's size")]
    (segs,) = [c.lines[2][0].get_segments() for c in grey]
    assert len(segs) == 1 and (segs[0][0, 1], segs[0][1, 1]) == (35.0, 65.0)
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


def test_unscored_reading_says_why_and_how_many_questions():
    """Datasets without a balanced set are explained from their counts (rule of three at 0)."""
    lines = transfer.unscored_reading({"nq_open": {"faithful": 0, "hallucinated": 59},
                                     "bioasq": {"faithful": 2, "hallucinated": 58}},
                                    {"nq_open": 60, "bioasq": 60})
    assert lines[0].startswith("nq_open: not scored: 0 faithful and 59 hallucinated answers of 60 questions")
    assert "below 5%" in lines[0] and "at least 197 questions" in lines[0]
    assert "observed faithful rate of 3.3%" in lines[1] and "about 300 questions" in lines[1]
    assert lines[1].startswith("bioasq: too few to conclude (fewer than 10 per class): 2 faithful")
    assert len(lines) == 2
    assert transfer.unscored_reading({"triviaqa": {"faithful": 18, "hallucinated": 378}}) == []


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
    assert "no evidence either way" in few[1] and "wanders by chance" in few[1]
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
    broad = transfer.discussion(chance, {}, drift_res, True, 14, per_mille=3.9)[1]
    assert "not sparse (3.9 per mille" in broad
    assert "not sparse" not in transfer.discussion(chance, {}, drift_res, True, 14, per_mille=0.4)[1]


def test_refit_far_below_chance_is_named():
    """A refit point estimate below 50 by more than half the probe's interval is read as a
    reversed signal; within that noise guide, or with too few answers, nothing is said."""
    def table(refit, n=40, same=(np.nan, np.nan, 0)):
        return pd.DataFrame([
            {"dataset": "triviaqa", "probe": transfer.UNCHANGED, "n": n, "auroc": 48.0, "lo": 28.0, "hi": 68.0},
            {"dataset": "triviaqa", "probe": transfer.REFIT, "n": n, "auroc": refit, "lo": np.nan, "hi": np.nan,
             "same_size_lo": same[0], "same_size_hi": same[1], "same_size_n": same[2]}])
    (low,) = transfer.transfer_reading(table(22.8))
    assert low["refit"] == pytest.approx(22.8)
    assert low["refit_note"].startswith("the H-Neurons refit on the instruct model's training rows reaches 22.8")
    assert "(20.0)" in low["refit_note"] and "other way round" in low["refit_note"]
    # random probes of as many neurons fall as low: not evidence of a reversed signal
    wander = transfer.transfer_reading(table(22.8, same=(20.1, 61.0, 5)))[0]["refit_note"]
    assert wander.endswith("random probes of as many neurons reach 20.1 to 61.0 (5 seeds): so few "
                           "neurons fall that far by chance, so this is no evidence of a reversed signal")
    below = transfer.transfer_reading(table(22.8, same=(33.0, 61.0, 5)))[0]["refit_note"]
    assert "below all 5 random probes of as many neurons (33.0 to 61.0): a hint" in below
    assert transfer.transfer_reading(table(35.0))[0]["refit_note"] == ""  # within the noise guide
    assert transfer.transfer_reading(table(10.0, n=12))[0]["refit_note"] == ""  # 6 per class: too few
    text = transfer.discussion(transfer.transfer_reading(table(22.8)), {}, {}, True, 2)[0]
    assert "on triviaqa, the H-Neurons refit" in text
