"""Tests of hneurons_utils.drift: per-neuron parameter drift (paper Section 4, Figure 4b)."""

from __future__ import annotations

import math
import weakref

import numpy as np
import pytest
import torch

from conftest import tiny_gpt2, tiny_llama
from hneurons_utils import drift
from hneurons_utils.probe import NeuronSet


def _save(model, path):
    model.save_pretrained(path)
    return path


def _rotate(v: torch.Tensor, theta: float) -> torch.Tensor:
    """``v`` rotated by ``theta`` in the plane of its first two coordinates' directions."""
    e1 = v / v.norm()
    e2 = torch.zeros_like(v)
    e2[0], e2[1] = -e1[1], e1[0]  # orthogonal to e1 within the first two coordinates
    e2 = e2 - (e2 @ e1) * e1
    e2 = e2 / e2.norm()
    return v.norm() * (math.cos(theta) * e1 + math.sin(theta) * e2)


@pytest.fixture
def llama_pair(tmp_path):
    """A saved tiny Llama and a copy of it (base, tuned) as safetensors folders."""
    base = tiny_llama(seed=3, layers=3, neurons=16)
    _save(base, tmp_path / "base")
    return base, tmp_path


# ---------------------------------------------------------------- drift arithmetic


def test_identical_weights_have_zero_drift(llama_pair):
    """A model compared with itself drifts by exactly zero in every part and neuron, and the
    whole-model drift refuses such a pair (BASE_MODEL_ID = INSTRUCT_MODEL_ID) instead of
    reporting a null result about it."""
    base, tmp = llama_pair
    layers = list(drift.iter_layer_drift(tmp / "base", tmp / "base"))
    assert [i for i, _ in layers] == [0, 1, 2]
    for _, parts in layers:
        assert set(parts) == {"up", "down", "gate"}
        for values in parts.values():
            assert values.shape == (16,)
            np.testing.assert_allclose(values, 0.0, atol=1e-12)
    with pytest.raises(ValueError, match="identical FFN weights"):
        drift.parameter_drift(tmp / "base", tmp / "base")


def test_nan_drift_and_bad_test_settings_are_refused():
    """One NaN would zero a whole part's z-scores; no random set or no resample leaves no
    p-value: each is an error, not a number."""
    from hneurons_utils.probe import NeuronSet

    up = np.random.default_rng(0).random((2, 8))
    up[0, 0] = np.nan
    with pytest.raises(ValueError, match="1 NaN or infinite"):
        drift.drift_score({"up": up, "down": np.ones((2, 8))})
    score = np.random.default_rng(1).random((2, 8))
    h = NeuronSet(np.array([0, 1]), np.array([2, 3]), 2, 8)
    for kw in ({"n_random": 0}, {"n_boot": 0}):
        with pytest.raises(ValueError, match=f"{list(kw)[0]} must be a whole number >= 1"):
            drift.drift_tests(score, h, **kw)
    with pytest.raises(ValueError, match=r"\[layers, neurons\]"):
        drift.drift_tests(score.ravel(), h)


def test_rotated_down_column_and_up_row_give_known_cosine(llama_pair):
    """Rotating neuron j's W_down column by theta gives drift_down = 1 - cos(theta) there only."""
    base, tmp = llama_pair
    with torch.no_grad():
        down = base.model.layers[1].mlp.down_proj.weight  # [d_model, N]
        down[:, 5] = _rotate(down[:, 5].clone(), 0.3)
        up = base.model.layers[2].mlp.up_proj.weight  # [N, d_model]
        up[7] = 2.5 * _rotate(up[7].clone(), 1.0)  # rescaling must not count as drift
    _save(base, tmp / "tuned")
    raw = drift.parameter_drift(tmp / "base", tmp / "tuned")
    expect_down = np.zeros((3, 16)); expect_down[1, 5] = 1 - math.cos(0.3)
    expect_up = np.zeros((3, 16)); expect_up[2, 7] = 1 - math.cos(1.0)
    np.testing.assert_allclose(raw["down"], expect_down, atol=1e-6)
    np.testing.assert_allclose(raw["up"], expect_up, atol=1e-6)
    np.testing.assert_allclose(raw["gate"], 0.0, atol=1e-12)


def test_gpt2_conv1d_axes(tmp_path):
    """GPT-2 stores FFN weights transposed; drift still lands on the right neuron."""
    model = tiny_gpt2(seed=1)
    _save(model, tmp_path / "base")
    with torch.no_grad():
        c_fc = model.transformer.h[0].mlp.c_fc.weight  # Conv1D [d_model, N]: column j feeds neuron j
        c_fc[:, 9] = _rotate(c_fc[:, 9].clone(), 0.5)
        c_proj = model.transformer.h[1].mlp.c_proj.weight  # [N, d_model]: row j is neuron j's output
        c_proj[4] = _rotate(c_proj[4].clone(), 0.2)
    _save(model, tmp_path / "tuned")
    raw = drift.parameter_drift(tmp_path / "base", tmp_path / "tuned")
    assert "gate" not in raw and raw["up"].shape == (2, 128)
    assert np.argmax(raw["up"]) == 0 * 128 + 9 and raw["up"].max() == pytest.approx(1 - math.cos(0.5), abs=1e-6)
    assert np.argmax(raw["down"]) == 1 * 128 + 4 and raw["down"].max() == pytest.approx(1 - math.cos(0.2), abs=1e-6)


def test_cosine_drift_is_precise_for_tiny_updates():
    """A 1e-4 rad rotation gives 1 - cos = 5e-9 to within 1%, where naive float32 cos fails."""
    v = torch.randn(1, 640)
    w = _rotate(v[0], 1e-4)[None]
    assert drift.cosine_drift(v, w, dim=1)[0] == pytest.approx(1 - math.cos(1e-4), rel=1e-2)


def test_cosine_drift_rejects_shape_mismatch():
    """Weights of different shapes (a different model) raise, naming both shapes."""
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(3, 2\)"):
        drift.cosine_drift(torch.ones(2, 3), torch.ones(3, 2), dim=0)


def test_drift_score_is_mean_of_zscores():
    """The combined score is the average of each part's z-score over all neurons (Sec. 6.3.2)."""
    rng = np.random.default_rng(0)
    raw = {"up": rng.random((2, 5)), "down": 100 * rng.random((2, 5)), "gate": rng.random((2, 5))}
    z = lambda x: (x - x.mean()) / x.std()
    np.testing.assert_allclose(drift.drift_score(raw), (z(raw["up"]) + z(raw["down"])) / 2)
    np.testing.assert_allclose(drift.drift_score(raw, ("up", "down", "gate")),
                               (z(raw["up"]) + z(raw["down"]) + z(raw["gate"])) / 3)
    with pytest.raises(KeyError, match="gate"):
        drift.drift_score({"up": raw["up"], "down": raw["down"]}, ("up", "down", "gate"))


def test_normalized_rank_paper_convention():
    """Largest drift gets rank 0, smallest rank 1, ties share their average rank."""
    r = drift.normalized_rank(np.array([[0.3, 0.1], [0.9, 0.5]]))
    np.testing.assert_allclose(r, [[2 / 3, 1.0], [0.0, 1 / 3]])
    np.testing.assert_allclose(drift.normalized_rank(np.array([1.0, 2.0, 2.0])), [1.0, 0.25, 0.25])


def test_drift_tests_detect_planted_stable_neurons():
    """H-Neurons planted among the least-changed neurons give mean rank near 1 and small p-values."""
    rng = np.random.default_rng(1)
    score = rng.normal(size=(4, 50))
    stable = np.argsort(score.ravel())[:20]  # the 20 smallest drifts
    res = drift.drift_tests(score, NeuronSet.from_flat(stable, 4, 50), n_random=200, n_boot=200)
    assert res["mean_rank"] > 0.95 and res["n_h_neurons"] == 20
    assert res["t_test"]["p_value"] < 1e-3 and res["mann_whitney"]["p_value"] < 1e-3
    assert res["random"]["p_value"] < 0.01 and abs(res["random"]["mean_rank_mean"] - 0.5) < 0.05
    assert res["random"]["p_value_more"] > 0.99  # no random set ranks as high: none as "more"
    assert drift.drift_direction(res) == "less"
    moved = drift.drift_tests(score, NeuronSet.from_flat(np.argsort(score.ravel())[-20:], 4, 50),
                              n_random=200, n_boot=200)  # the 20 largest drifts
    assert moved["random_layer_matched"]["p_value_more"] < 0.01 and drift.drift_direction(moved) == "more"
    chosen = drift.drift_tests(score, NeuronSet.from_flat(rng.choice(200, 20, replace=False), 4, 50),
                                n_random=200, n_boot=200)
    assert chosen["t_test"]["p_value"] > 0.01 or chosen["mann_whitney"]["p_value"] > 0.01


def test_drift_variants_and_table_follow_the_tests():
    """The gate variant appears only for gated MLPs; the table shows each variant's own numbers."""
    rng = np.random.default_rng(2)
    raw = {k: rng.random((4, 50)) for k in ("up", "down")}
    assert list(drift.drift_variants(raw)) == ["up + down (paper)"]
    raw["gate"] = rng.random((4, 50))
    variants = drift.drift_variants(raw)
    assert variants["up + gate + down"] == ("up", "gate", "down")
    h = NeuronSet.from_flat(np.arange(5), 4, 50)
    tests = {n: drift.drift_tests(drift.drift_score(raw, p), h, n_random=50, n_boot=50)
             for n, p in variants.items()}
    table = drift.tests_table(tests)
    assert list(table.index) == list(variants)
    for n, t in tests.items():
        assert table.loc[n, "mean rank"] == pytest.approx(t["mean_rank"], abs=5e-4)
        assert table.loc[n, "Mann-Whitney p (changed less)"] == pytest.approx(t["mann_whitney"]["p_value"], abs=5e-4)
        assert table.loc[n, "p vs layer-matched sets (less / more)"].count(" / ") == 1
        # every random-set p-value is shown with the direction it tests, both tails
        less, more = table.loc[n, "p vs random sets, any layer (less / more)"].split(" / ")
        assert (float(less), float(more)) == pytest.approx(
            (t["random"]["p_value"], t["random"]["p_value_more"]), abs=5e-4)


def test_drift_tests_reject_neurons_of_another_model():
    """A neuron set sized for another model is refused instead of silently misindexed."""
    with pytest.raises(ValueError, match="different models"):
        drift.drift_tests(np.zeros((4, 50)), NeuronSet.from_flat(np.arange(3), 5, 50))


def _drift_in_memory(base, tuned) -> dict[str, np.ndarray]:
    """Reference drift from two loaded models, through the architecture adapter."""
    from hneurons_utils.models import ffn_adapter

    ad = ffn_adapter(base)
    out = {"up": [], "down": []} | ({"gate": []} if ad.gate_path else {})
    with torch.no_grad():
        for i in range(ad.n_layers):
            out["up"].append(drift.cosine_drift(ad.up_weight(base, i), ad.up_weight(tuned, i), dim=1))
            out["down"].append(drift.cosine_drift(ad.down_weight(base, i), ad.down_weight(tuned, i), dim=0))
            if ad.gate_path:
                out["gate"].append(drift.cosine_drift(ad.up_weight(base, i, gate=True),
                                                       ad.up_weight(tuned, i, gate=True), dim=1))
    return {k: np.stack(v) for k, v in out.items()}


def _tiny_phi3(seed: int, layers: int = 3):
    from transformers import Phi3Config, Phi3ForCausalLM

    torch.manual_seed(seed)
    return Phi3ForCausalLM(Phi3Config(vocab_size=100, hidden_size=32, intermediate_size=16,
                                      num_hidden_layers=layers, num_attention_heads=4,
                                      num_key_value_heads=2, pad_token_id=0)).eval()


@pytest.mark.parametrize("family", ["llama", "gpt2", "phi3"])
@pytest.mark.parametrize("shard", [None, "20KB"])
def test_drift_from_folders_equals_drift_from_loaded_models(tmp_path, family, shard):
    """Streaming from (sharded) safetensors folders gives the drift of the two loaded models
    (Phi-3: W_up and W_gate read as the halves of its fused gate_up_proj)."""
    make = {"llama": lambda seed: tiny_llama(seed=seed, layers=3, neurons=16),
            "gpt2": lambda seed: tiny_gpt2(seed=seed, layers=3), "phi3": _tiny_phi3}[family]
    base, tuned = make(1), make(1)
    with torch.no_grad():
        for p_ in tuned.parameters():
            p_.add_(0.05 * torch.randn_like(p_))
    kw = {"max_shard_size": shard} if shard else {}
    base.save_pretrained(tmp_path / "b", **kw)
    tuned.save_pretrained(tmp_path / "t", **kw)
    if shard:
        assert (tmp_path / "b" / "model.safetensors.index.json").exists()
        assert len(list((tmp_path / "b").glob("model-*.safetensors"))) > 1
    got = drift.parameter_drift(tmp_path / "b", tmp_path / "t")
    ref = _drift_in_memory(base, tuned)
    assert set(got) == set(ref)
    for k in ref:
        assert got[k].shape == ref[k].shape and (ref[k] > 0).all()
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-9, atol=1e-15)


def test_cosine_drift_of_zero_slices_is_nan_and_drift_refuses_it(tmp_path):
    """The cosine of an all-zero slice is undefined: NaN there, never 0 or 0.5; the drift table
    refuses such neurons, naming the count."""
    a = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0], [2.0, 1.0]])
    b = torch.tensor([[1.0, 1.0], [1.0, 0.0], [0.0, 0.0], [2.0, 1.0]])
    d = drift.cosine_drift(a, b, dim=1)
    assert d[0] == pytest.approx(1 - math.cos(math.pi / 4)) and d[3] == pytest.approx(0.0, abs=1e-12)
    assert np.isnan(d[1]) and np.isnan(d[2])
    model = tiny_llama(seed=4, layers=2, neurons=16)
    model.save_pretrained(tmp_path / "b")
    with torch.no_grad():
        model.model.layers[1].mlp.up_proj.weight[3] = 0.0
    model.save_pretrained(tmp_path / "t")
    with pytest.raises(ValueError, match=r"all-zero.*'up': 1"):
        drift.parameter_drift(tmp_path / "b", tmp_path / "t")


def test_drift_refuses_pairs_of_different_shape(tmp_path):
    """Checkpoints with different layer counts or FFN widths are not a matched pair."""
    tiny_llama(layers=3, neurons=16).save_pretrained(tmp_path / "a")
    tiny_llama(layers=2, neurons=16).save_pretrained(tmp_path / "b")
    tiny_llama(layers=3, neurons=32).save_pretrained(tmp_path / "c")
    with pytest.raises(ValueError, match="not a matched pair.*3 layers.*2"):
        drift.parameter_drift(tmp_path / "a", tmp_path / "b")
    with pytest.raises(ValueError, match=r"not a matched pair: layer 0 .*\(16, 32\).*\(32, 32\)"):
        drift.parameter_drift(tmp_path / "a", tmp_path / "c")


@pytest.mark.parametrize("family, tensors", [("llama", 3), ("phi3", 2)])
def test_drift_is_streamed_one_tensor_pair_at_a_time(tmp_path, monkeypatch, family, tensors):
    """Drift reads each FFN tensor once (Phi-3's fused gate/up weight too, for both its parts)
    and never holds more than one tensor per model."""
    make = (lambda s: tiny_llama(seed=s, layers=4, neurons=16)) if family == "llama" else \
        (lambda s: _tiny_phi3(s, layers=4))
    _save(make(2), tmp_path / "a")
    _save(make(5), tmp_path / "b")  # another seed: a pair that differs
    live, reads, peak = weakref.WeakSet(), [], [0]
    real_get = drift.SafetensorsFolder.get

    def counting_get(self, name):
        peak[0] = max(peak[0], len(live))  # tensors still alive when the next one is read
        t = real_get(self, name)
        live.add(t)
        reads.append(name)
        return t

    monkeypatch.setattr(drift.SafetensorsFolder, "get", counting_get)
    drift.parameter_drift(tmp_path / "a", tmp_path / "b")
    assert len(reads) == 2 * 4 * tensors and len(set(reads)) == 4 * tensors
    assert peak[0] <= 1


def test_missing_safetensors_folder_is_named(tmp_path):
    """Drift on a folder without weights names the folder."""
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        drift.SafetensorsFolder(tmp_path)


def test_paper_rank_lines_come_from_the_reference_file():
    """The paper's stated Figure 4b average ranks are read from data/paper_reference.json, not typed in."""
    from hneurons_utils import paper

    ref = paper.load_reference()["figure4"]
    lines = drift.paper_rank_lines(paper.drift_frame())
    per_model = ref["drift"]["per_model"].values()
    assert set(lines.values()) == ({d["avg_rank"] for d in per_model if d.get("avg_rank")}
                                   | {d["avg_rank_above"] for d in per_model if d.get("avg_rank_above")})
    assert not any(drift.THIS_PAIR in k for k in lines)
    marked = drift.paper_rank_lines(paper.drift_frame(), ours="Gemma-3-4B")
    (bound,) = [k for k in marked if drift.THIS_PAIR in k]
    assert bound.endswith(">") and f"Gemma-3-4B{drift.THIS_PAIR}" in bound


def test_paper_pair_note_says_what_the_paper_states_for_this_pair():
    """A lower bound is called one (not an average), a model without a stated number says so,
    and a pair outside the paper's six is named as such."""
    from hneurons_utils import paper

    frame = paper.drift_frame()
    assert "lower bound" in drift.paper_pair_note(frame, "Gemma-3-4B") and "above 0.58" in \
        drift.paper_pair_note(frame, "Gemma-3-4B")
    assert "average rank of about 0.97 (dashed)" in drift.paper_pair_note(frame, "Mistral-Small-3.1-24B")
    assert "gives no drift number" in drift.paper_pair_note(frame, "Mistral-7B-v0.3")
    assert "offline pair" in drift.paper_pair_note(frame, None, offline=True)
    assert "not one of the paper's six" in drift.paper_pair_note(frame, None)



def test_figure4b_shades_the_random_sets_range():
    """The rank histogram shades where layer-matched random sets' mean ranks fall, labelled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    drift.plot_rank_distribution(ax, np.array([0.18, 0.24]), 0.21, {"x >": 0.58},
                                 random_band=(0.09, 0.88))
    labels = ax.get_legend_handles_labels()[1]
    assert "95% of layer-matched random sets' means [0.09, 0.88]" in labels
    assert "paper: x > 0.58 (lower bound)" in labels
    plt.close(fig)


def test_few_h_neurons_get_their_ranks_and_the_random_sets_verdict():
    """Under MIN_FOR_INTERVAL neurons a bootstrap would only span their own ranks: the result
    lists the ranks instead, and only the layer-matched random sets decide the direction."""
    rng = np.random.default_rng(3)
    score = rng.normal(size=(4, 50))
    order = np.argsort(score.ravel())
    stable = drift.drift_tests(score, NeuronSet.from_flat(order[:2], 4, 50), n_random=200, n_boot=50)
    assert stable["mean_rank_ci"] is None and len(stable["ranks"]) == 2
    assert stable["ranks"] == sorted(stable["ranks"]) and min(stable["ranks"]) > 0.95
    assert drift.drift_direction(stable) == "less"
    assert drift.drift_verdict(stable).startswith("changed less than layer-matched random sets of 2")
    assert "too few for an interval" in drift.mean_rank_text(stable)
    assert "none (2 neurons)" == drift.tests_table({"x": stable}).loc["x", "95% CI"]
    single = drift.drift_tests(score, NeuronSet.from_flat(order[:1], 4, 50), n_random=20, n_boot=10)
    assert drift.tests_table({"x": single}).loc["x", "95% CI"] == "none (1 neuron)"
    assert drift.mean_rank_text(single).endswith("(one neuron's rank: no interval)")
    moved = drift.drift_tests(score, NeuronSet.from_flat(order[-2:], 4, 50), n_random=200, n_boot=50)
    assert drift.drift_direction(moved) == "more" and "opposite" in drift.drift_verdict(moved)
    middle = drift.drift_tests(score, NeuronSet.from_flat(order[98:100], 4, 50), n_random=200, n_boot=50)
    assert drift.drift_direction(middle) == "none"
    assert drift.drift_verdict(middle).endswith("no evidence either way")
    enough = drift.drift_tests(score, NeuronSet.from_flat(order[:drift.MIN_FOR_INTERVAL], 4, 50),
                               n_random=50, n_boot=50)
    lo, hi = enough["mean_rank_ci"]
    assert lo <= enough["mean_rank"] <= hi and drift.mean_rank_text(enough).endswith("]")


def test_counts_are_written_in_the_right_number():
    from hneurons_utils.wording import noun

    assert [noun(n, "H-Neuron") for n in (0, 1, 2)] == ["0 H-Neurons", "1 H-Neuron", "2 H-Neurons"]
    assert [noun(n, "neuron") for n in (1, 5)] == ["1 neuron", "5 neurons"]


def test_figure4b_marks_each_rank_when_there_are_few():
    """A handful of ranks is drawn as one mark each, not as a mostly empty density histogram."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (few, many) = plt.subplots(1, 2)
    drift.plot_rank_distribution(few, np.array([0.18, 0.24]), 0.21)
    assert not few.patches  # no histogram bars
    assert "H-Neurons (ours, n=2), one mark each" in few.get_legend_handles_labels()[1]
    assert "our mean 0.210" in few.get_legend_handles_labels()[1]
    fig1, one = plt.subplots()
    drift.plot_rank_distribution(one, np.array([0.218]), 0.218)
    labels = one.get_legend_handles_labels()[1]
    assert "the only H-Neuron (ours): rank 0.218; one neuron, no distribution" in labels
    assert not any("H-Neurons" in lab or "mean" in lab for lab in labels if "random" not in lab)
    assert len(one.lines) == 1  # the 0.5 line; no second line at the neuron's own rank
    plt.close(fig1)
    drift.plot_rank_distribution(many, np.linspace(0.05, 0.95, drift.MIN_FOR_HISTOGRAM), 0.5)
    assert many.patches and many.get_ylabel() == "density"
    plt.close(fig)


# ---------------------------------------------------------------- weight norms (not in the paper)


def test_drift_with_norms_reads_the_instruct_models_norms_in_the_same_pass(llama_pair):
    """The norms are the tuned model's ||W_up[j, :]|| and ||W_down[:, j]||, per layer and
    neuron, and the drift itself is the same as without them."""
    base, tmp = llama_pair
    with torch.no_grad():
        base.model.layers[1].mlp.down_proj.weight[:, 5] *= 3.0  # a norm change, no rotation
        base.model.layers[0].mlp.up_proj.weight[2] = _rotate(base.model.layers[0].mlp.up_proj.weight[2].clone(), 0.4)
    _save(base, tmp / "tuned")
    raw, norms = drift.parameter_drift_with_norms(tmp / "base", tmp / "tuned")
    for k, v in drift.parameter_drift(tmp / "base", tmp / "tuned").items():
        np.testing.assert_array_equal(raw[k], v)
    assert set(norms) == {"up", "down", "gate"} and norms["up"].shape == (3, 16)
    with torch.no_grad():
        for i, layer in enumerate(base.model.layers):
            np.testing.assert_allclose(norms["up"][i], layer.mlp.up_proj.weight.norm(dim=1).double(), rtol=1e-6)
            np.testing.assert_allclose(norms["down"][i], layer.mlp.down_proj.weight.norm(dim=0).double(), rtol=1e-6)
    np.testing.assert_allclose(drift.neuron_weight_norm(norms), norms["up"] * norms["down"])


def test_norm_matched_sets_draw_the_closest_norms_of_the_same_layer():
    """Partners come from the same layer, among the `window` closest norms (log scale), never an
    excluded neuron (the probe's other weights) nor the neuron itself, never twice in a set."""
    norm = np.tile(2.0 ** np.arange(12, dtype=float), (2, 1))  # neuron i of each layer: 2^i
    h = NeuronSet(np.array([1, 1]), np.array([6, 7]), 2, 12)
    exclude = NeuronSet.from_flat(np.array([12 + 5, 12 + 8]), 2, 12)  # layer 1, neurons 5 and 8
    sets = drift.norm_matched_sets(h, norm, 300, seed=1, exclude=exclude, window=2)
    assert sets.shape == (300, 2)
    # with 5, 6, 7 and 8 left out, neuron 6's two closest free norms are 4 (a factor 4 away)
    # and 3 (a factor 8, tied with 9: the lower index first); neuron 7's are 9 and 4
    assert set(sets[:, 0] - 12) == {3, 4} and set(sets[:, 1] - 12) == {4, 9}
    assert all(len(set(row)) == 2 for row in sets)  # 4 is never drawn twice in one set
    assert not np.isin(sets, [12 + 5, 12 + 6, 12 + 7, 12 + 8]).any() and (sets >= 12).all()
    with pytest.raises(ValueError, match="finite and positive"):
        drift.norm_matched_sets(h, np.zeros((2, 12)), 5)


def test_norm_matched_control_catches_drift_that_only_tracks_weight_norm():
    """Drift built as 1 / norm^2 (the mechanical 1 - cos of an equal-size update): the largest-
    norm neurons rank as 'changed least' against layer-matched sets, but not against sets of
    the same norm, and Spearman's rho is -1. The layer-matched numbers do not move."""
    rng = np.random.default_rng(0)
    norm = rng.lognormal(0.0, 0.5, size=(4, 200))
    score = np.exp(rng.normal(0.0, 0.05, size=norm.shape)) / norm ** 2  # drift tracks norm, plus noise
    order = np.argsort(norm, axis=1)
    big = order[:, 160:180:4]  # 5 neurons per layer at the 80-90th norm percentile (not the top)
    h = NeuronSet(np.repeat(np.arange(4), 5), big.ravel(), 4, 200)
    plain = drift.drift_tests(score, h, n_random=300, n_boot=100)
    t = drift.drift_tests(score, h, n_random=300, n_boot=100, norm=norm, exclude=h)
    for k in ("mean_rank", "mean_rank_ci", "random", "random_layer_matched", "t_test"):
        assert t[k] == plain[k]
    assert t["norm_spearman"]["rho"] < -0.95
    assert t["random_layer_matched"]["p_value"] < 0.01  # a layer-matched "changed less" ...
    assert 0.05 < t["random_norm_matched"]["p_value"] < 0.95  # ... that norm-matched sets explain
    assert 75 < min(t["norm_spearman"]["h_percentiles"]) and max(t["norm_spearman"]["h_percentiles"]) < 95
    text = drift.norm_reading(t)
    assert "(larger-norm neurons changed less)" in text and "Random sets matched by layer and norm" in text
    assert f"leaving out the probe's {h.size} neurons" in text
    assert "p vs norm-matched sets (less / more)" in drift.tests_table({"x": t}).columns
    assert drift.norm_reading(plain) == ""
