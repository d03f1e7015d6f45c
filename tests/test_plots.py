"""Figure functions (``plots``): each returns its figure and the numbers drawn in it; the tests
check those numbers against hand-made inputs, and what is drawn where the reading depends on it."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from hneurons_utils import plots  # noqa: E402
from hneurons_utils.pipeline import EvalSet  # noqa: E402
from hneurons_utils.probe import NeuronSet  # noqa: E402
from hneurons_utils.stats import MIN_PER_CLASS, auroc  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _assert_legends_clear(fig):
    """Every legend of ``fig`` lies outside every plotting area and off its axes' x tick labels
    and x label: it can hide no data and no axis text."""
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None] + list(fig.legends)
    assert legends, "no legend drawn"
    for leg in legends:
        box = leg.get_window_extent(r)
        for ax in fig.axes:
            assert not box.overlaps(ax.get_window_extent(r)), f"legend over the axes {ax.get_title()!r}"
            xaxis = ax.xaxis.get_tightbbox(r)  # None for a twin's hidden x axis
            assert xaxis is None or not box.overlaps(xaxis), f"legend over the x axis of {ax.get_title()!r}"


def test_cett_layer_and_histogram_numbers():
    """Top-1% share: a layer with one neuron holding half its CETT gives 50%; a uniform one 1%;
    the histogram's tail ratio is the 99.9th percentile over the median."""
    nm = np.ones((2, 100))
    nm[1, 0] = 99.0  # layer 1: one neuron holds 99 of 198
    fig, n = plots.cett_layer_figure(nm)
    assert n["top1pct_share"] == pytest.approx([0.01, 0.5])
    assert n["quantiles"].shape == (4, 2) and n["quantiles"][3, 1] == 99.0
    _assert_legends_clear(fig)
    fig, t = plots.cett_histogram_figure(nm, n_prompts=3)
    assert t["median"] == 1.0 and t["max"] == 99.0
    assert t["p999_over_median"] == pytest.approx(np.quantile(nm, 0.999))
    assert t["log10_max_over_min"] == pytest.approx(np.log10(99.0)) and t["n_silent"] == 0


def test_cett_histogram_counts_silent_neurons_apart():
    """Neurons that never fired (mean CETT 0, a ReLU FFN) are counted, not logged to -inf; a
    negative or NaN mean, or nothing fired at all, is refused."""
    nm = np.r_[np.zeros(60), np.ones(39), 10.0]
    fig, t = plots.cett_histogram_figure(nm, n_prompts=2)
    assert t["n_silent"] == 60 and t["median"] == 1.0
    assert t["log10_max_over_min"] == pytest.approx(1.0)
    assert "60 silent" in fig.axes[0].get_title()
    for bad, msg in ((np.zeros(5), "nothing fired"), (np.r_[1.0, np.nan], "finite"),
                     (np.r_[1.0, -1.0], ">= 0")):
        with pytest.raises(ValueError, match=msg):
            plots.cett_histogram_figure(bad, n_prompts=1)


def test_eq7_figure_draws_every_neuron_and_the_identity():
    eq7 = pd.DataFrame({"alpha": [0.0, 1.0, 2.0] * 2, "neuron": ["L0/1"] * 3 + ["L1/2"] * 3,
                        "ratio": [0.0, 1.0, 1.9, 0.0, 1.0, 2.1]})
    eq7["error"] = eq7.ratio - eq7.alpha
    fig, n = plots.eq7_figure(eq7)
    left, right = fig.axes[:2]
    assert [line.get_label() for line in left.lines] == ["L0/1", "L1/2", r"Eq. 7: ratio = $\alpha$"]
    assert left.lines[-1].get_ydata().tolist() == [0.0, 1.0, 2.0]
    assert len(n["rows"]) == 6
    # the right panel draws the relative error in percent, as cett.eq7_reading prints it:
    # (1.9 - 2) / 2 = -5% at alpha = 2, nothing at alpha = 0
    first = right.lines[0]
    assert first.get_xdata().tolist() == [1.0, 2.0]
    assert first.get_ydata().tolist() == pytest.approx([0.0, -5.0])
    # the Eq. 7 legend belongs to the panel that draws it; the neurons' legend names the neurons
    assert [t.get_text() for t in left.get_legend().get_texts()] == [r"Eq. 7: ratio = $\alpha$"]
    assert [t.get_text() for t in right.get_legend().get_texts()] == ["L0/1", "L1/2"]
    _assert_legends_clear(fig)


def test_consistency_figure_groups_by_greedy_label():
    sampled = [{"qid": "a", "labels": ["correct"] * 9 + ["incorrect"]},
               {"qid": "b", "labels": ["incorrect"] * 10},
               {"qid": "c", "labels": ["correct", "refusal"]}]
    greedy = [{"qid": "a", "labels": ["correct"]}, {"qid": "b", "labels": ["incorrect"]}]
    fig, n = plots.consistency_figure(sampled, greedy, n_samples=10, min_agreement=0.6)
    assert n["n_correct_by_greedy"] == {"correct": [9], "incorrect": [0], "not screened": [1]}
    lines = {line.get_label(): line.get_xdata()[0] for line in fig.axes[0].lines}
    # both rules of the filter, k = ceil(0.6 * 10) = 6: faithful c >= 6, hallucinated c <= 4
    assert lines == {"faithful: c \u2265 6": pytest.approx(5.5),
                     "hallucinated: w \u2265 6 (c \u2264 4 without refusals)": pytest.approx(4.5)}
    assert (n["faithful_min_correct"], n["hallucinated_min_incorrect"],
            n["hallucinated_max_correct_without_refusals"]) == (6, 6, 4)
    _assert_legends_clear(fig)  # the rule lines run the axes' full height: a legend inside hides them
    # two groups in one bin stand side by side there: no two bars overlap, so none hides another
    both = sampled + [{"qid": "d", "labels": ["correct"] * 9 + ["incorrect"]}]
    fig2, _ = plots.consistency_figure(both, greedy + [{"qid": "d", "labels": ["incorrect"]}], 10, 0.6)
    bars = [(p.get_x(), p.get_x() + p.get_width()) for p in fig2.axes[0].patches if p.get_height() > 0]
    assert len(bars) == 4
    assert all(a[1] <= b[0] + 1e-9 or b[1] <= a[0] + 1e-9 for i, a in enumerate(bars) for b in bars[i + 1:])
    _, n = plots.consistency_figure(sampled, greedy, n_samples=25, min_agreement=0.56)
    assert n["faithful_min_correct"] == 14  # 0.56 * 25 is 14.000000000000002 in floating point
    fig, n = plots.consistency_figure(sampled, None, n_samples=10, min_agreement=1.0)  # the paper's
    assert sorted(line.get_xdata()[0] for line in fig.axes[0].lines) == [pytest.approx(0.5), pytest.approx(9.5)]
    assert n["hallucinated_max_correct_without_refusals"] == 0


def test_c_grid_figure_draws_suppression_only_when_measured():
    grid = [{"C": c, "val_accuracy": 0.6, "val_auroc": 0.7, "n_h_neurons": k, "suppression": None}
            for c, k in ((1.0, 0), (10.0, 4))]
    fig, _ = plots.c_grid_figure(grid, 10.0)
    assert len([ln for ln in fig.axes[0].lines if ln.get_label().startswith("QA accuracy with")]) == 0
    assert not [ln for ln in fig.axes[0].lines if ln.get_label().startswith("selection score")]
    fig, n = plots.c_grid_figure([g | {"suppression": 0.5} for g in grid], 10.0)
    assert len([ln for ln in fig.axes[0].lines if ln.get_label().startswith("QA accuracy with")]) == 1
    # the selection score is drawn: held-out accuracy + silenced accuracy, 0.6 + 0.5
    (score,) = [ln for ln in fig.axes[0].lines if ln.get_label().startswith("selection score")]
    assert score.get_ydata().tolist() == pytest.approx([1.1, 1.1])
    assert 1.1 < fig.axes[0].get_ylim()[1] < 1.2  # the axis reaches the score, no further
    # the chosen C has its own legend entry
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "chosen C = 10" in legend
    assert n["chosen_C"] == 10.0
    _assert_legends_clear(fig)
    # a C whose probe has no H-Neuron silences nothing: its point says so, once
    notes = [t.get_text() for t in fig.axes[0].texts]
    assert notes == ["C = 1: no H-Neuron,\nnothing silenced"]
    fig, _ = plots.c_grid_figure([g | {"suppression": 0.5, "n_h_neurons": 3} for g in grid], 10.0)
    assert not fig.axes[0].texts
    # the estimated term: known answers kept and the estimate drawn, the score adds the estimate
    est = [g | {"suppression": 0.03, "known_kept": 0.5, "unknown_right": 0.0} for g in grid]
    fig, _ = plots.c_grid_figure(est, 10.0)
    lines = {ln.get_label(): list(np.asarray(ln.get_ydata(), float)) for ln in fig.axes[0].lines}
    assert lines["known answers kept, H-Neurons silenced"] == [0.5, 0.5]
    assert lines["estimated TriviaQA accuracy, H-Neurons silenced (term 2)"] == [0.03, 0.03]
    assert lines["selection score (held-out accuracy + term 2)"] == pytest.approx([0.63, 0.63])
    from matplotlib.colors import to_hex

    colours = [to_hex(ln.get_color()) for ax in fig.axes for ln in ax.lines if not ln.get_label().startswith("chosen")]
    assert len(set(colours)) == len(colours)  # no two curves share a colour
    _assert_legends_clear(fig)


def test_layer_counts_figure():
    h = NeuronSet(np.array([0, 2, 2]), np.array([1, 0, 3]), n_layers=3, n_neurons=4)
    fig, n = plots.layer_counts_figure(h, "instruct model's ")
    assert n["layer_counts"].tolist() == [1, 0, 2] and n["n_h_neurons"] == 3
    assert [p.get_height() for p in fig.axes[0].patches] == [1, 0, 2]
    assert fig.axes[0].get_title() == "Where the instruct model's 3 H-Neurons sit"
    assert all(float(t).is_integer() for t in fig.axes[0].get_xticks())  # layers, not 2.5
    one = NeuronSet(np.array([1]), np.array([2]), n_layers=3, n_neurons=4)
    assert plots.layer_counts_figure(one, "twin's ")[0].axes[0].get_title() == "Where the twin's one H-Neuron sits"


def _eval_set(y, tokens):
    y = np.array(y)
    return EvalSet("x", [str(i) for i in range(len(y))], np.zeros((len(y), 1)), y, {},
                   answer_tokens=np.array(tokens))


def test_roc_figure_aurocs_and_skipped_sets():
    """Every curve's AUROC equals stats.auroc on the same scores; a set with a class under
    min_per_class is not drawn; with no set left there is no figure."""
    y = [1, 1, 1, 0, 0, 0]
    sets = {"ok": _eval_set(y, [5, 4, 1, 2, 3, 1]), "thin": _eval_set([1, 0, 0], [1, 1, 1])}
    scores = {"ok": np.array([0.9, 0.2, 0.8, 0.1, 0.3, 0.7]), "thin": np.array([1.0, 0.0, 0.0])}
    rows = [{"dataset": "ok", "kind": "random_1", "scores": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]},
            {"dataset": "ok", "kind": "h_neurons_refit", "scores": [0.0] * 6}]
    control = {"datasets": {"ok": {"y": y, "scores": [1, 1, 1, 0, 0, 0]}}}
    fig, drawn = plots.roc_figure(sets, scores, rows, control)
    assert list(drawn) == ["ok"] and len(fig.axes) == 1
    assert set(drawn["ok"]) == {"H-Neuron probe", "one span rule (control)", "span length alone", "random_1"}
    assert drawn["ok"]["H-Neuron probe"]["auroc"] == pytest.approx(auroc(np.array(y), scores["ok"]))
    assert drawn["ok"]["one span rule (control)"]["auroc"] == 1.0
    assert drawn["ok"]["random_1"]["auroc"] == 0.0
    assert drawn["ok"]["span length alone"]["auroc"] == pytest.approx(
        auroc(np.array(y), np.array([5, 4, 1, 2, 3, 1.0])))
    assert "(too few)" in fig.axes[0].get_title()  # 3 per class < MIN_PER_CLASS
    assert plots.roc_figure({"thin": sets["thin"]}, scores, []) == (None, {})


def test_roc_legends_give_each_panels_aurocs_and_cover_no_curve():
    """Each panel's legend sits under it (not on a curve: the reviewer found the old lower-right
    legend over the control curve) and gives that panel's AUROCs, the mean of the random seeds'."""
    y = [1, 1, 1, 0, 0, 0]
    sets = {"a": _eval_set(y, [5, 4, 1, 2, 3, 1]), "b": _eval_set(y, [1, 1, 1, 2, 2, 2])}
    scores = {"a": np.array([0.9, 0.2, 0.8, 0.1, 0.3, 0.7]), "b": np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])}
    rows = [{"dataset": k, "kind": f"random_{s}", "scores": sc}
            for k in sets for s, sc in ((1, [1, 1, 1, 0, 0, 0]), (2, [0, 0, 0, 1, 1, 1]))]
    fig, drawn = plots.roc_figure(sets, scores, rows, min_per_class=2)
    assert len(fig.axes) == 2
    for ax, k in zip(fig.axes, sets):
        leg = ax.get_legend()
        assert leg.get_title().get_text() == "AUROC"
        texts = [t.get_text() for t in leg.get_texts()]
        assert texts == [f"H-Neuron probe {drawn[k]['H-Neuron probe']['auroc']:.2f}",
                         f"span length alone {drawn[k]['span length alone']['auroc']:.2f}",
                         "random neurons, mean of 2 seeds 0.50"]
    _assert_legends_clear(fig)


def test_table1_figure_marks_thin_and_missing_datasets():
    ours = {"triviaqa": {"accuracy": 0.8, "accuracy_ci": [0.7, 0.9], "n_pos": MIN_PER_CLASS},
            "nq_open": {"accuracy": 0.6, "accuracy_ci": [0.4, 0.8], "n_pos": 3}}
    rows = [{"dataset": "triviaqa", "kind": f"random_{s}", "accuracy": a} for s, a in ((1, 0.5), (2, 0.7))]
    fig, n = plots.table1_figure(ours, rows, ["triviaqa", "nq_open", "bioasq"])
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert "too few" not in ticks[0] and "too few" in ticks[1] and "ours: none" in ticks[2]
    mean = [c for c in fig.axes[0].collections if c.get_label() == "ours, random neurons (L2, standardised), mean over seeds"][0]
    assert mean.get_offsets()[0].tolist() == pytest.approx([0.1, 60.0])
    assert n["ours"] is ours and n["baselines"] is rows
    assert len(fig.axes) == 1  # no AUROC in ours: no AUROC panel
    _assert_legends_clear(fig)


def test_table1_figure_names_model_counts_paper_models_and_degenerate_intervals():
    """The title names the model; every row of ours says its neuron count and recipe; each of
    the paper's models has its own legend entry; an AUROC panel is drawn from ours; a probe that
    flags every response gets no accuracy bar but a note."""
    ours = {"triviaqa": {"accuracy": 0.8, "accuracy_ci": [0.7, 0.9], "n_pos": 12, "auroc": 0.85,
                         "auroc_ci": [0.7, 0.95], "flagged": 0.5},
            "nonexist": {"accuracy": 0.5, "accuracy_ci": [0.5, 0.5], "n_pos": 12, "auroc": 0.4,
                         "auroc_ci": [0.2, 0.6], "flagged": 1.0}}
    rows = [{"dataset": k, "kind": kind, "k": kk, "accuracy": 0.6, "auroc": 0.6,
             **({"auroc_ci": [0.5, 0.7]} if kind == "h_neurons_refit" else {})}
            for k in ours for kind, kk in (("h_neurons_refit", 3), ("random_1", 7), ("hsize_random_1", 3))]
    fig, n = plots.table1_figure(ours, rows, ["triviaqa", "nonexist"], model="tiny-model",
                                 probe_label="H-Neuron probe (7 neurons read)")
    assert fig._suptitle.get_text() == "Table 1: tiny-model: hallucination detection"
    acc, auc = fig.axes
    labels = [t.get_text() for t in acc.get_legend().get_texts()]
    from hneurons_utils.paper import table1_frame
    assert [f"paper, {m}" for m in dict.fromkeys(table1_frame().model)] == [t for t in labels if t.startswith("paper, ")]
    assert "ours, random neurons (7 neurons, L2, standardised), mean over seeds" in labels
    assert "ours, random neurons (3 neurons, L2, standardised), mean over seeds" in labels
    assert "ours, H-Neurons alone, refit (3 neurons, L2, standardised; 95% CI where stored)" in labels
    assert "ours, H-Neuron probe (7 neurons read) (95% CI)" in labels
    assert n["degenerate"] == {"nonexist": "the threshold flags every response: interval undefined"}
    assert any("interval undefined" in t.get_text() for t in acc.texts)
    assert auc.get_ylabel() == "AUROC" and n["model"] == "tiny-model"
    _assert_legends_clear(fig)


def test_stability_figure_orders_by_frequency():
    stab = {"h_neurons": [5, 9, 2], "frequency": [0.2, 0.9, 0.5], "n_resamples": 10}
    fig, n = plots.stability_figure(stab, n_neurons=4)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["L2/1", "L0/2", "L1/1"]
    assert [p.get_height() for p in ax.patches] == [0.9, 0.5, 0.2]
    assert n == stab
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["half of the resamples"]
    _assert_legends_clear(fig)


def test_sft_loss_running_mean_and_json_safe_numbers(tmp_path):
    meta = {"losses": [4.0, 2.0, 3.0, 1.0], "n_examples": 8, "config": {"batch_size": 2},
            "qids": ["a", "b"]}
    fig, n = plots.sft_loss_figure(meta, "Base", window=2)
    running = [ln for ln in fig.axes[0].lines if ln.get_label() == "mean of 2 steps"][0]
    assert running.get_ydata().tolist() == [4.0, 3.0, 2.5, 2.0]
    assert n["qids"] == 2 and n["losses"] == meta["losses"]
    assert fig.axes[0].get_title() == "Tuning Base: 4 steps x batch 2 = 8 of 8 chat examples (1 epoch)"
    plots.save_figure(fig, tmp_path, "sft", n)
    assert json.loads((tmp_path / "sft.json").read_text())["qids"] == 2
    _assert_legends_clear(fig)


def test_token_pair_figure_shares_one_scale():
    views = [pd.DataFrame({"token": ["a", "b"], "answer": [False, True], "L0/1": [1.0, 4.0]}),
             pd.DataFrame({"token": ["c"], "answer": [True], "L0/1": [8.0]})]
    fig, n = plots.token_pair_figure(views, ["first", "second"], ["L0/1"], about=[{"key": "k1"}, {"key": "k2"}])
    assert n["scale"] == {"L0/1": 8.0}
    assert [r["key"] for r in n["responses"]] == ["k1", "k2"]
    assert n["responses"][0]["L0/1"] == [1.0, 4.0]
    assert fig.axes[0].images[0].get_array().tolist() == [[0.125, 0.5]]  # divided by the shared peak


def test_neuron_values_figure_one_panel_per_neuron():
    values = {"L0/1": {"hallucinated answers": np.array([1.0, 2.0]), "faithful answers": np.array([0.5]),
                       "other tokens": np.array([0.1, 0.2, 0.3])}}
    fig, n = plots.neuron_values_figure(values, {"L0/1": "title"})
    assert len(fig.axes) == 1 and fig.axes[0].get_title() == "title"
    assert n == {"L0/1": {"hallucinated answers": [1.0, 2.0], "faithful answers": [0.5],
                          "other tokens": [0.1, 0.2, 0.3]}}


def test_recipe_figure_draws_each_recipe_and_difference():
    """The like-for-like figure has one AUROC series per recipe (the reference first) and one
    difference series per variant, and marks a set with too few responses per class."""
    m = {"auroc": 0.8, "auroc_ci": [0.7, 0.9], "n_pos": 20, "n_neg": 20}
    few = {**m, "n_pos": 4, "n_neg": 4}
    diff = {"drop": 0.1, "drop_ci": [0.0, 0.2]}

    def d(metrics):
        return {"reference": {"metrics": metrics}, "measure": {"metrics": metrics, "diff": diff},
                "scheme": {"metrics": metrics, "diff": diff}}

    res = {"reference": {"measure": "cett", "label_scheme": "3-vs-1"},
           "variants": {"measure": {"ref": "CETT", "alt": "raw activations"},
                        "scheme": {"ref": "3-vs-1", "alt": "1-vs-1"}},
           "datasets": {"triviaqa": d(m), "mine": d(few)}}
    fig, drawn = plots.recipe_figure(res)
    left, right = fig.axes
    assert list(drawn["auroc"]) == ["reference refit (CETT, 3-vs-1)", "raw activations", "1-vs-1"]
    assert [t.get_text() for t in right.get_legend().get_texts()] == ["CETT minus raw activations",
                                                                      "3-vs-1 minus 1-vs-1"]
    labels = [t.get_text() for t in left.get_yticklabels()]
    assert labels == ["TriviaQA\n(20 per class)", "mine\n(4 per class, too few)"]
    plt.close(fig)
