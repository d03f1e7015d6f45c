"""Single-neuron statistics and token-level CETT (chapter 2's "What single H-Neurons do")."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import hneurons_utils.features as F
from hneurons_utils import neurons
from hneurons_utils.cett import cett_tokens
from hneurons_utils.features import Example, FeatureSet
from hneurons_utils.probe import Probe


def probe_on(flat, weights, n_layers=2, n_neurons=4) -> Probe:
    k = len(flat)
    return Probe("tiny", n_layers, n_neurons, np.array(flat), np.array(weights, float), 0.0, 1.0,
                 np.zeros(k), np.ones(k))


def feature_set(answer: np.ndarray, other: np.ndarray) -> FeatureSet:
    n = answer.shape[0]
    return FeatureSet(np.array([f"q{i}#0" for i in range(n)]), answer.astype(np.float16),
                      other.astype(np.float16), np.array(["alias"] * n), np.ones((n, 2), int), {})


def labelled(labels) -> list[Example]:
    return [Example(f"q{i}#0", "", "", [], "", int(y)) for i, y in enumerate(labels)]


def test_top_h_neurons_orders_positive_weights_only():
    p = probe_on([1, 3, 5, 6], [0.2, -1.0, 0.9, 0.5])
    assert neurons.top_h_neurons(p).tolist() == [5, 6, 1]
    assert neurons.top_h_neurons(p, 2).tolist() == [5, 6]
    assert neurons.neuron_name(5, 4) == "L1/1"


def test_neuron_table_by_hand():
    """Means per group and both AUROCs, on features built so each value is known."""
    labels = [1, 1, 0, 0]
    ans, oth = np.zeros((4, 2, 4)), np.zeros((4, 2, 4))
    ans[:, 0, 2] = [3.0, 4.0, 1.0, 2.0]  # L0/2: hallucinated answers above faithful ones
    oth[:, 0, 2] = [5.0, 5.0, 5.0, 5.0]  # ... but every other-token mean is higher still
    ans[:, 1, 1] = [1.0, 2.0, 3.0, 4.0]  # L1/1: the other way round
    oth[:, 1, 1] = 0.0
    p = probe_on([2, 5], [0.5, 1.5])
    t = neurons.neuron_table(p, feature_set(ans, oth), labelled(labels))
    assert t["neuron"].tolist() == ["L1/1", "L0/2"]  # largest weight first
    r = t.set_index("neuron")
    assert r.loc["L0/2", "CETT hallucinated answers"] == pytest.approx(3.5)
    assert r.loc["L0/2", "CETT faithful answers"] == pytest.approx(1.5)
    assert r.loc["L0/2", "CETT other tokens"] == pytest.approx(5.0)
    assert r.loc["L0/2", "AUROC vs faithful"] == pytest.approx(1.0)
    # 3-vs-1: {3, 4} against {1, 2, 5, 5, 5, 5}: 2 * 2 wins of 2 * 6 pairs
    assert r.loc["L0/2", "AUROC 3-vs-1"] == pytest.approx(4 / 12)
    assert r.loc["L1/1", "AUROC vs faithful"] == pytest.approx(0.0)
    assert neurons.neuron_table(p, feature_set(ans, oth), labelled(labels), k=1).shape[0] == 1


def test_neuron_table_needs_both_classes_and_matching_shapes():
    ans = np.zeros((2, 2, 4))
    with pytest.raises(ValueError, match="both classes"):
        neurons.neuron_table(probe_on([1], [1.0]), feature_set(ans, ans), labelled([1, 1]))
    with pytest.raises(ValueError, match="fitted on 3 x 4"):
        neurons.neuron_table(probe_on([1], [1.0], n_layers=3), feature_set(ans, ans), labelled([1, 0]))


def test_neuron_values_groups():
    ans, oth = np.zeros((3, 2, 4)), np.zeros((3, 2, 4))
    ans[:, 0, 1], oth[:, 0, 1] = [1.0, 2.0, 3.0], [7.0, np.nan, 9.0]
    v = neurons.neuron_values(probe_on([1], [1.0]), feature_set(ans, oth), labelled([1, 0, 1]), 1)
    assert v["hallucinated answers"].tolist() == [1.0, 3.0]
    assert v["faithful answers"].tolist() == [2.0]
    assert v["other tokens"].tolist() == [7.0, 9.0]  # the NaN row (no other token) is dropped


@pytest.mark.parametrize("flat, err", [(-1, ValueError), (8, ValueError), (1.0, TypeError)])
def test_neuron_values_refuses_an_index_outside_the_probe(flat, err):
    """-1 would silently read the last neuron, 8 (of 2 x 4) fail with a bare IndexError."""
    ans = np.zeros((2, 2, 4))
    with pytest.raises(err, match="flat"):
        neurons.neuron_values(probe_on([1], [1.0]), feature_set(ans, ans), labelled([1, 0]), flat)


def test_neuron_reading_counts_and_compares():
    def table(a_vs, a_31):
        return pd.DataFrame({"neuron": ["a", "b", "c"], "AUROC vs faithful": a_vs, "AUROC 3-vs-1": a_31})
    train, held = table([0.8, 0.6, 0.7], [0.9, 0.5, 0.7]), table([0.75, 0.4, 0.6], [0.9, 0.3, 0.5])
    text = neurons.neuron_reading(train, held, probe_auroc=0.85)
    assert "1 of 3 H-Neurons separate" in text and "1 fires more on faithful" in text
    assert "median is 0.60 held out against 0.70" in text
    assert "above every single H-Neuron (the best, a, reaches 0.75)" in text
    assert "largest weight, a, reaches 0.75 against faithful answers and 0.90" in text
    assert "on the held-out responses, 1 of 3 separate the probe's own contrast" in text
    assert "not above 0.5" not in text
    # a neuron higher on the 3-vs-1 contrast but at or below 0.5 there separates neither
    low = neurons.neuron_reading(train, table([0.75, 0.2, 0.6], [0.9, 0.4, 0.5]))
    assert "1 of 3 separate the probe's own contrast (hallucinated answer tokens against faithful " \
        "answers and all other tokens) above chance" in low
    assert "(1 more scores higher on that contrast but not above 0.5, so separates neither)" in low
    below = neurons.neuron_reading(train, held, probe_auroc=0.62)  # a single neuron does better
    assert "below the best single H-Neuron, a, at 0.75" in below and "above every" not in below
    assert "about what the best single H-Neuron, a, reaches (0.75)" in neurons.neuron_reading(
        train, held, probe_auroc=0.76)
    assert "does not show that one neuron carries the signal" in below
    near = neurons.neuron_reading(train, table([0.698, 0.4, 0.6], [0.9, 0.3, 0.5]))
    assert "0 of 3 H-Neurons" in near and "largest weight, a, reaches 0.698" in near  # not "0.70"
    best = neurons.neuron_reading(train, table([0.698, 0.4, 0.6], [0.9, 0.3, 0.5]), probe_auroc=0.6)
    assert "below the best single H-Neuron, a, at 0.698," in best and "a, at 0.70," not in best
    with pytest.raises(ValueError, match="same neurons"):
        neurons.neuron_reading(train, held.iloc[::-1])
    assert "no H-Neuron" in neurons.neuron_reading(train.iloc[:0], held.iloc[:0])


def test_token_view_matches_cett_tokens(tiny_model):
    """The response tokens' values are the per-token CETT of the named neurons, tokenised as the
    features are; the answer column is the features' answer mask."""
    m = tiny_model
    e = Example("a", "w3 w4 w5 ", "w6 w7 w8", ["w7"], "w3 w4", 1)
    flat = [1, m.adapter.n_neurons + 5]  # L0/1 and L1/5
    v = neurons.token_view(m, e, flat)
    assert v["token"].str.strip().tolist() == ["w6", "w7", "w8"]
    assert v["answer"].tolist() == [False, True, False]
    ids, ans, _, _ = F.token_masks(m.tokenizer, e, "all", F.turn_suffix(m.tokenizer))
    ref = cett_tokens(m, {"input_ids": torch.tensor([ids]),
                          "attention_mask": torch.ones(1, len(ids), dtype=torch.long)})  # [L, 1, T, N]
    np.testing.assert_allclose(v["L0/1"], ref[0, 0, 3:6, 1].numpy(), rtol=1e-5)
    np.testing.assert_allclose(v["L1/5"], ref[1, 0, 3:6, 5].numpy(), rtol=1e-5)
    whole = neurons.token_view(m, e, flat, whole_prompt=True)
    assert len(whole) == len(ids) and whole["answer"].tolist() == ans.tolist()
    with pytest.raises(ValueError, match="outside this model"):
        neurons.token_view(m, e, [m.adapter.n_layers * m.adapter.n_neurons])


def test_token_heatmap_scales_rows_and_marks_answer_tokens():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hneurons_utils import plots

    view = pd.DataFrame({"token": ["a", " b", "c"], "answer": [False, True, False],
                         "L0/1": [1.0, 2.0, 4.0], "L1/0": [0.0, 0.0, 0.0]})
    fig, ax = plt.subplots()
    img = plots.token_heatmap(ax, view, ["L0/1", "L1/0"])
    np.testing.assert_allclose(img.get_array()[0], [0.25, 0.5, 1.0])  # each row over its own max
    np.testing.assert_allclose(img.get_array()[1], 0.0)  # an all-zero row stays 0, not NaN
    img = plots.token_heatmap(ax, view, ["L0/1", "L1/0"], scale={"L0/1": 8.0, "L1/0": 1.0})
    np.testing.assert_allclose(img.get_array()[0], [0.125, 0.25, 0.5])  # a shared scale
    colours = [t.get_color() for t in ax.get_xticklabels()]
    assert colours[1] != colours[0] == colours[2]  # the answer token stands out
    plt.close(fig)


def test_held_out_summary_and_side_by_side():
    """The probe's AUROC on the given responses, their class and question counts, and the two
    tables joined by neuron with the held-out AUROCs suffixed."""
    ans, oth = np.zeros((4, 2, 4)), np.zeros((4, 2, 4))
    ans[:, 0, 2] = [3.0, 4.0, 1.0, 2.0]  # the probe's only neuron ranks both classes perfectly
    fs, p = feature_set(ans, oth), probe_on([2], [1.0])
    held = labelled([1, 1, 0, 0])
    held[1] = Example("q0#1", "", "", [], "", 1)  # a second response to question q0
    fs = FeatureSet(np.array([e.key for e in held]), fs.answer, fs.other, fs.methods, fs.n_tokens, {})
    s = neurons.held_out_summary(p, fs, held, held_out=False)
    assert s["probe_held_out_auroc"] == pytest.approx(1.0)
    assert s["held_out_counts"] == {"hallucinated": 2, "faithful": 2, "questions": 3, "held_out": False}
    t = neurons.neuron_table(p, fs, held)
    both = neurons.side_by_side(t, t.assign(**{"AUROC vs faithful": 0.25}), k=1)
    assert both.index.tolist() == ["L0/2"]
    assert both.loc["L0/2", "AUROC vs faithful (train)"] == pytest.approx(1.0)
    assert both.loc["L0/2", "AUROC vs faithful (held out)"] == pytest.approx(0.25)
    # every column computed on the training responses says so; the neuron's layer and weight do not
    assert both.loc["L0/2", "CETT hallucinated answers (train)"] == pytest.approx(3.5)
    assert {"CETT faithful answers (train)", "CETT other tokens (train)", "layer", "weight"} <= set(both.columns)
    assert not [c for c in both.columns if c.startswith(("CETT", "AUROC")) and not c.endswith(("(train)", "(held out)"))]
