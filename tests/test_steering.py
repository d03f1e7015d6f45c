"""Tests for hneurons_utils.steering: the three implementations of Section 3's scaling agree."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hneurons_utils.probe import NeuronSet
from hneurons_utils.sampling import GREEDY, GenConfig
from hneurons_utils.cett import encode
from hneurons_utils.steering import (generate_ids_scaled, generate_scaled, layer_indices,
                                     logits_scaled, scaled_down_proj, scaled_rows,
                                     suppression_accuracy)


def _amplify_ffn(m, factor: float = 20.0) -> None:
    """Make the tiny model's FFN matter, so scaling neurons visibly changes its output."""
    with torch.no_grad():
        for layer in range(m.adapter.n_layers):
            m.adapter.down_proj(m.hf, layer).weight.mul_(factor)


def _neurons(m, step: int = 2) -> NeuronSet:
    """Every ``step``-th neuron of layer 0 and a few of the last layer."""
    a = m.adapter
    first = np.arange(0, a.n_neurons, step)
    last = np.array([1, 5, 9])
    return NeuronSet(np.r_[np.zeros_like(first), np.full(3, a.n_layers - 1)], np.r_[first, last],
                     a.n_layers, a.n_neurons)


def _reference_hooks(m, neurons: NeuronSet, alpha: float) -> list:
    """An independent reference: pre-hooks multiplying the down-projection input's columns."""
    handles = []
    for layer, idx in neurons.by_layer().items():
        idx = torch.as_tensor(idx)

        def hook(_mod, args, idx=idx):
            z = args[0].clone()  # [B, T, N], or [B*T, N] where a layer flattens tokens (OPT)
            z[..., idx] = z[..., idx] * alpha
            return (z,)
        handles.append(m.adapter.down_proj(m.hf, layer).register_forward_pre_hook(hook))
    return handles


def _batch(m):
    enc = m.tokenizer(["w1 w2 w3 w4", "w5 w6", "w7 w8 w9"], return_tensors="pt", padding=True)
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def _weights(m) -> list[torch.Tensor]:
    return [m.adapter.down_proj(m.hf, i).weight.detach().clone() for i in range(m.adapter.n_layers)]


@pytest.mark.parametrize("alpha", [0.0, 3.0])
def test_logits_match_reference_hook(tiny_model, alpha):
    """Weight edit, nnsight and hook give the reference's logits, and differ from no scaling."""
    _amplify_ffn(tiny_model)
    ns, enc = _neurons(tiny_model), _batch(tiny_model)
    handles = _reference_hooks(tiny_model, ns, alpha)
    positions = (enc["attention_mask"].cumsum(-1) - 1).clamp(min=0)  # left padding, as generate
    with torch.no_grad():
        ref = tiny_model.hf(**enc, position_ids=positions).logits
    for h in handles:
        h.remove()
    plain = logits_scaled(tiny_model, enc, None, 1.0)
    assert not torch.allclose(plain, ref, atol=1e-3)
    for method in ("weights", "nnsight", "hook"):
        got = logits_scaled(tiny_model, enc, ns, alpha, method)
        torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5, msg=method)


@pytest.mark.parametrize("cfg", [GREEDY, GenConfig(max_new_tokens=8, stop_at_newline=False)],
                         ids=["greedy", "sampled"])
def test_generated_tokens_match_reference_hook(tiny_model, cfg):
    """All three methods generate the reference's tokens (greedy and seeded sampling)."""
    _amplify_ffn(tiny_model)
    ns, enc = _neurons(tiny_model), _batch(tiny_model)
    cfg = GenConfig(**{**cfg.as_dict(), "max_new_tokens": 8, "stop_at_newline": False})
    handles = _reference_hooks(tiny_model, ns, 2.5)
    ref = generate_ids_scaled(tiny_model, enc, cfg, None, 1.0, "weights", seed=7)
    for h in handles:
        h.remove()
    plain = generate_ids_scaled(tiny_model, enc, cfg, None, 1.0, "weights", seed=7)
    assert not torch.equal(plain, ref)
    for method in ("weights", "nnsight", "hook"):
        got = generate_ids_scaled(tiny_model, enc, cfg, ns, 2.5, method, seed=7)
        assert torch.equal(got, ref), method


def test_nnsight_result_survives_early_stop(tiny_model):
    """nnsight generation that stops at EOS before max_new_tokens still returns its tokens."""
    _amplify_ffn(tiny_model)
    ns, enc = _neurons(tiny_model), _batch(tiny_model)
    full = generate_ids_scaled(tiny_model, enc, GenConfig(do_sample=False, max_new_tokens=6,
                                                          stop_at_newline=False), ns, 0.0, "hook")
    eos = int(full[0, enc["input_ids"].shape[1] + 1])  # the 2nd token of row 0 becomes EOS
    tiny_model.hf.generation_config.eos_token_id = eos
    cfg = GenConfig(do_sample=False, max_new_tokens=6, stop_at_newline=False)
    ref = generate_ids_scaled(tiny_model, enc, cfg, ns, 0.0, "hook")
    got = generate_ids_scaled(tiny_model, enc, cfg, ns, 0.0, "nnsight")
    assert torch.equal(got, ref)


def test_weights_restored_bit_exactly(tiny_model):
    """scaled_down_proj edits only the chosen columns, then restores W_down bit for bit."""
    before = _weights(tiny_model)
    ns = _neurons(tiny_model)
    with scaled_down_proj(tiny_model, ns, 1.5):
        inside = _weights(tiny_model)
        w0 = tiny_model.adapter.down_weight(tiny_model.hf, 0)
        assert torch.equal(w0[:, 0], before[0].T[:, 0] * 1.5 if tiny_model.adapter.down_transposed
                           else before[0][:, 0] * 1.5)
    changed = (inside[0] != before[0]).any(dim=1 if tiny_model.adapter.down_transposed else 0)
    assert changed.nonzero().ravel().tolist() == ns.by_layer()[0].tolist()
    for b, a in zip(before, _weights(tiny_model)):
        assert torch.equal(a, b)


def test_weights_restored_after_exception(tiny_model):
    """An exception inside the block still restores W_down bit for bit (alpha=0 included)."""
    before = _weights(tiny_model)
    with pytest.raises(RuntimeError, match="boom"):
        with scaled_down_proj(tiny_model, _neurons(tiny_model), 0.0):
            assert not torch.equal(_weights(tiny_model)[0], before[0])
            raise RuntimeError("boom")
    for b, a in zip(before, _weights(tiny_model)):
        assert torch.equal(a, b)


def test_neuron_set_for_another_model_is_refused(tiny_model):
    """A probe identified on a model of another shape is rejected with a clear message."""
    wrong = NeuronSet(np.array([0]), np.array([1]), tiny_model.adapter.n_layers + 5, 4096)
    with pytest.raises(ValueError, match="another MODEL_ID"):
        layer_indices(tiny_model, wrong)
    with pytest.raises(ValueError, match="unknown steering method"):
        generate_scaled(tiny_model, ["w1"], GREEDY, None, 1.0, method="magic")


def test_bad_prompts_neurons_and_batch_sizes_are_refused(tiny_model):
    """A bare string (one prompt per character), a list of indices instead of a NeuronSet, a
    batch size below 1 (which used to process nothing: accuracy 0) and a batch without its
    attention mask are errors naming the argument."""
    from hneurons_utils.data import QAItem
    from hneurons_utils.steering import qa_accuracy

    with pytest.raises(TypeError, match="prompts must be a list of strings.*wrap one string"):
        generate_scaled(tiny_model, "w3 w4", GREEDY)
    with pytest.raises(TypeError, match="neurons must be a NeuronSet"):
        layer_indices(tiny_model, [(0, 3)])
    items = [QAItem("q", "w3 w4", ["w5"], "toy")]
    tiny_model.tokenizer.chat_template = "{% for m in messages %}{{ m['content'] }} {% endfor %}"
    for bs in (0, -1):
        with pytest.raises(ValueError, match="batch_size must be a whole number >= 1"):
            suppression_accuracy(tiny_model, None, items, 0.0, batch_size=bs)
        with pytest.raises(ValueError, match="batch_size must be a whole number >= 1"):
            qa_accuracy(tiny_model, items, [(None, 1.0)], batch_size=bs)
    enc = encode(tiny_model, ["w3 w4"])
    with pytest.raises(ValueError, match="attention_mask"):
        logits_scaled(tiny_model, {"input_ids": enc["input_ids"]}, None, 1.0)


def test_suppression_accuracy_counts_correct_answers(tiny_model, monkeypatch):
    """suppression_accuracy is the share of items whose generated answer the judge calls correct."""
    from types import SimpleNamespace

    import hneurons_utils.steering as steering

    monkeypatch.setattr(steering, "build_prompt", lambda tok, q, instr: q)
    cfg = GenConfig(do_sample=False, max_new_tokens=3, stop_at_newline=False)
    ns = _neurons(tiny_model)
    answers = [a[0] for a in generate_scaled(tiny_model, ["w1 w2", "w3"], cfg, ns, 0.0)]
    items = [SimpleNamespace(question="w1 w2", answers=[answers[0]]),
             SimpleNamespace(question="w3", answers=["nothing-like-this"])]
    assert suppression_accuracy(tiny_model, ns, items, 0.0, batch_size=1, cfg=cfg) == 0.5


def test_rows_method_matches_one_condition_at_a_time(tiny_model):
    """scaled_rows gives each row its own (neurons, alpha): same tokens as separate weight edits."""
    from hneurons_utils.probe import random_neuron_set
    from hneurons_utils.steering import generate_rows

    _amplify_ffn(tiny_model)
    a = tiny_model.adapter
    h, r = _neurons(tiny_model), random_neuron_set(10, a.n_layers, a.n_neurons, seed=3)
    prompts = ["w1 w2 w3 w4", "w5 w6"]
    conds = [(None, 1.0), (h, 0.0), (h, 3.0), (r, 3.0)]
    cfg = GenConfig(do_sample=False, max_new_tokens=6, stop_at_newline=False)
    rows = [(ns, al) for ns, al in conds for _ in prompts]
    got = generate_rows(tiny_model, [p for _ in conds for p in prompts], cfg, rows)
    want = [t[0] for ns, al in conds for t in generate_scaled(tiny_model, prompts, cfg, ns, al)]
    assert got == want
    assert len(set(got)) > 2  # the conditions really differ


def test_keyed_rows_sample_independently_of_the_other_rows(tiny_model):
    """With one sampling key per row, a row's sampled answer is the same alone, beside other
    conditions or in another order; one key shared by two identical rows gives one answer
    (common random numbers); other keys give other answers; nnsight and weights agree."""
    from hneurons_utils.probe import random_neuron_set
    from hneurons_utils.sampling import row_seed
    from hneurons_utils.steering import generate_rows

    _amplify_ffn(tiny_model)
    a = tiny_model.adapter
    h, r = _neurons(tiny_model), random_neuron_set(10, a.n_layers, a.n_neurons, seed=3)
    prompts = ["w1 w2 w3", "w4 w5 w6"]  # same length: no padding differs between calls
    cfg = GenConfig(do_sample=True, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=8,
                    stop_at_newline=False)
    keys = [row_seed("k", i) for i in range(len(prompts))]
    alone = generate_rows(tiny_model, prompts, cfg, [(h, 3.0)] * 2, seed=1, keys=keys)
    wide = generate_rows(tiny_model, [*prompts, *prompts, *prompts], cfg,
                         [(None, 1.0)] * 2 + [(r, 0.0)] * 2 + [(h, 3.0)] * 2, seed=2, keys=keys * 3)
    assert wide[4:] == alone
    flipped = generate_rows(tiny_model, prompts[::-1], cfg, [(h, 3.0)] * 2, keys=keys[::-1])
    assert flipped[::-1] == alone
    twins = generate_rows(tiny_model, [prompts[0]] * 2, cfg, [(None, 1.0)] * 2, keys=[keys[0]] * 2)
    assert twins[0] == twins[1] == wide[0]
    many = generate_rows(tiny_model, [prompts[0]] * 6, cfg, [(None, 1.0)] * 6,
                         keys=[row_seed("other", i) for i in range(6)])
    assert len(set(many)) > 1  # the keys really sample
    assert generate_scaled(tiny_model, prompts, cfg, h, 3.0, "nnsight", keys=keys) == [[t] for t in alone]
    with pytest.raises(ValueError, match="2 prompts but 1 sampling keys"):
        generate_rows(tiny_model, prompts, cfg, [(h, 3.0)] * 2, keys=keys[:1])


def _qa_setup(tiny_model, monkeypatch):
    """Two items whose gold answers are the unsteered greedy answers (so alpha 1 scores 2/2)."""
    from types import SimpleNamespace

    import hneurons_utils.steering as steering

    monkeypatch.setattr(steering, "build_prompt", lambda tok, q, instr: q)
    _amplify_ffn(tiny_model)
    cfg = GenConfig(do_sample=False, max_new_tokens=3, stop_at_newline=False)
    plain = [a[0] for a in generate_scaled(tiny_model, ["w1 w2", "w3"], cfg, None, 1.0)]
    items = [SimpleNamespace(question="w1 w2", answers=[plain[0]]),
             SimpleNamespace(question="w3", answers=[plain[1]])]
    return steering, cfg, _neurons(tiny_model), items


def test_qa_accuracy_counts_each_condition(tiny_model, monkeypatch):
    """qa_accuracy scores every condition on every item, matching suppression_accuracy."""
    steering, cfg, ns, items = _qa_setup(tiny_model, monkeypatch)
    got = steering.qa_accuracy(tiny_model, items, [(None, 1.0), (ns, 0.0)], cfg, batch_size=3)
    assert got[0] == (2, 2)
    assert got[1][0] == round(2 * suppression_accuracy(tiny_model, ns, items, 0.0, cfg=cfg))



@pytest.mark.parametrize("method", ["weights", "hook", "rows"])
def test_local_methods_refuse_a_remote_model(tiny_model, method, monkeypatch):
    """On a remote (NDIF) model weight edits and hooks would steer nothing: they raise, naming
    the method and pointing to 'nnsight' (qa_accuracy's default wide call too)."""
    import dataclasses
    from types import SimpleNamespace

    import hneurons_utils.steering as steering

    monkeypatch.setattr(steering, "build_prompt", lambda tok, q, instr: q)
    remote = dataclasses.replace(tiny_model, remote=True)
    ns = _neurons(tiny_model)
    with pytest.raises(ValueError, match=f"'{method}'.*nnsight"):
        if method == "rows":
            steering.generate_rows(remote, ["w1 w2"], GREEDY, [(ns, 0.0)])
        else:
            generate_scaled(remote, ["w1 w2"], GREEDY, ns, 0.0, method)
    item = SimpleNamespace(question="w1 w2", answers=["w3"])
    with pytest.raises(ValueError, match="'rows'.*nnsight"):
        steering.qa_accuracy(remote, [item], [(ns, 0.0)], GREEDY)


def test_qa_accuracy_per_condition_method_matches_rows(tiny_model, monkeypatch):
    """qa_accuracy's one-condition-at-a-time path (any method; nnsight runs remotely) counts
    the same as the wide 'rows' call on greedy answers."""
    steering, cfg, ns, items = _qa_setup(tiny_model, monkeypatch)
    conds = [(None, 1.0), (ns, 0.0)]
    wide = steering.qa_accuracy(tiny_model, items, conds, cfg, batch_size=4)
    assert steering.qa_accuracy(tiny_model, items, conds, cfg, 4, "hook") == wide
    assert wide[0] == (2, 2)


def test_qa_answers_keep_item_order_in_every_condition(tiny_model, monkeypatch):
    """qa_answers gives one answer per item per condition, in item order, whatever the batch
    split of the wide call; the per-condition path gives the same answers; silencing changes
    some answer (else the other checks would pass on a no-op)."""
    steering, cfg, ns, items = _qa_setup(tiny_model, monkeypatch)
    items = items + items[::-1]  # 4 items: a batch of 3 splits conditions across calls
    conds = [(None, 1.0), (ns, 0.0)]
    wide = steering.qa_answers(tiny_model, items, conds, cfg, batch_size=3)
    assert wide[0] == [it.answers[0] for it in items]
    assert steering.qa_answers(tiny_model, items, conds, cfg, 4, "weights") == wide
    assert wide[1] != wide[0]


@pytest.mark.parametrize("alpha", [float("nan"), float("inf"), "high"])
def test_a_nan_infinite_or_non_numeric_alpha_is_refused(tiny_model, alpha):
    """A NaN factor would make the logits NaN and generate return empty answers, read as
    refusals; every entry point refuses it, and the sweep's grid names the parameter."""
    from hneurons_utils.sweep import condition_grid

    ns = NeuronSet([0, 1], [3, 5], tiny_model.adapter.n_layers, tiny_model.adapter.n_neurons)
    enc = encode(tiny_model, ["w3 w4 w5"])
    for method in ("weights", "hook", "nnsight"):
        with pytest.raises(ValueError, match="alpha must be"):
            logits_scaled(tiny_model, enc, ns, alpha, method)
    with pytest.raises(ValueError, match="alpha must be"):
        generate_scaled(tiny_model, ["w3 w4 w5"], GREEDY, ns, alpha)
    with pytest.raises(ValueError, match="alpha must be"), scaled_rows(tiny_model, [(ns, 1.0), (ns, alpha)]):
        pass
    with pytest.raises(ValueError, match="ALPHAS .*alpha must be"):
        condition_grid(ns, [0.0, alpha])
    assert condition_grid(ns, [-1.0, 0.0])  # a negative factor (sign flip) is allowed
