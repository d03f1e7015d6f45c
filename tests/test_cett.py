"""CETT fast path against the literal per-neuron definition (paper Eq. 1-2)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hneurons_utils import cett


def _batch(pad: bool = True):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, 100, (3, 9), generator=g)
    am = torch.ones_like(ids)
    if pad:
        am[0, :3] = 0  # left padding, as generation batches have
        ids[0, :3] = 0
    return {"input_ids": ids, "attention_mask": am}


def hooked_down_proj(m, batch) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """Every layer's down-projection input z and output h, ``[B, T, .]``, from plain hooks
    (copied: Falcon adds the attention output to the FFN output in place afterwards)."""
    store = {}
    hooks = [m.adapter.down_proj(m.hf, i).register_forward_hook(
        lambda mod, inp, out, i=i: store.__setitem__(i, (inp[0].detach().clone(), out.detach().clone())))
        for i in range(m.adapter.n_layers)]
    pos = (batch["attention_mask"].cumsum(-1) - 1).clamp_min(0)
    with torch.no_grad():
        m.hf(**batch, position_ids=pos)
    for h in hooks:
        h.remove()
    shape = (*batch["input_ids"].shape, -1)  # [B, T, .]: OPT's layers flatten tokens
    return {i: tuple(t.reshape(shape) for t in zh) for i, zh in store.items()}


def reference_cett(m, batch):
    """Slow reference: per neuron, ||z_j W_down[:, j]|| / ||h|| as a plain loop, from plain hooks."""
    store = hooked_down_proj(m, batch)
    out = []
    for i in range(m.adapter.n_layers):
        z, h = store[i]
        w = m.adapter.down_weight(m.hf, i)
        per_neuron = [(z[..., j:j + 1] * w[:, j]).norm(dim=-1) / h.norm(dim=-1)
                      for j in range(w.shape[1])]
        out.append(torch.stack(per_neuron, dim=-1))
    return torch.stack(out)  # [L, B, T, N]


def test_cett_tokens_match_reference(tiny_model):
    """Per-token CETT of every layer equals the literal definition to 1e-5 relative."""
    batch = _batch()
    ref = reference_cett(tiny_model, batch)
    fast = cett.cett_tokens(tiny_model, batch)
    real = batch["attention_mask"].bool()
    rel = (fast - ref).abs() / ref.abs().clamp_min(1e-12)
    assert fast.shape == ref.shape
    assert rel[:, real].max() < 1e-5


def test_cett_means_match_reference_over_masks(tiny_model):
    """Masked means (two disjoint masks, padding excluded) equal the reference means."""
    batch = _batch()
    ref = reference_cett(tiny_model, batch)  # [L, B, T, N]
    real = batch["attention_mask"].bool()
    first = real.clone()
    first[:, -4:] = False
    last = real & ~first
    got = cett.cett_means(tiny_model, batch, {"first": first, "last": last})
    for name, mask in {"first": first, "last": last}.items():
        want = torch.where(mask[None, :, :, None], ref, 0.0).sum(2) / mask.sum(1)[None, :, None]  # [L, B, N]
        want = want.permute(1, 0, 2)
        rel = (got[name] - want).abs() / want.abs().clamp_min(1e-12)
        assert got[name].shape == (3, tiny_model.adapter.n_layers, tiny_model.adapter.n_neurons)
        assert rel.max() < 1e-5


def test_activation_measure_is_the_mean_absolute_down_projection_input(tiny_model):
    """measure="activation" (chapter 3's baseline) averages |z_j,t| itself over each mask, with
    neither CETT factor; CETT divided by it token by token is ||W_down[:, j]|| / ||h_t||, so the
    two measures differ exactly by those factors. An unknown measure is refused."""
    batch = _batch()
    real = batch["attention_mask"].bool()
    store = hooked_down_proj(tiny_model, batch)
    z = torch.stack([store[i][0].abs() for i in range(tiny_model.adapter.n_layers)])  # [L, B, T, N]
    got = cett.cett_means(tiny_model, batch, {"all": real}, measure="activation")["all"]
    want = (torch.where(real[None, :, :, None], z, 0.0).sum(2) / real.sum(1)[None, :, None]).permute(1, 0, 2)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-7)
    one = real.clone()
    one[:, :-1] = False  # the last token alone: CETT / |z| = ||W_down[:, j]|| / ||h_t||
    c = cett.cett_means(tiny_model, batch, {"t": one})["t"]
    a = cett.cett_means(tiny_model, batch, {"t": one}, measure="activation")["t"]
    ref = reference_cett(tiny_model, batch)[:, :, -1].permute(1, 0, 2)  # [B, L, N]
    assert torch.allclose(c, ref, rtol=1e-5) and not torch.allclose(c, a)
    inv_h = c / a / cett.column_norms(tiny_model)[None]  # 1 / ||h_t||: one value per row and layer
    assert torch.allclose(inv_h, inv_h[..., :1].expand_as(inv_h), rtol=1e-4)
    with pytest.raises(ValueError, match="measure must be one of"):
        cett.cett_means(tiny_model, batch, {"all": real}, measure="z")


def test_empty_mask_gives_nan_not_zero(tiny_model):
    """A row with no tokens in a mask yields NaN (never a silent 0 that looks like data)."""
    batch = _batch(pad=False)
    mask = batch["attention_mask"].bool().clone()
    mask[1] = False
    got = cett.cett_means(tiny_model, batch, {"m": mask})["m"]
    assert torch.isnan(got[1]).all() and torch.isfinite(got[0]).all()


def test_scaling_one_neuron_scales_its_numerator(tiny_model):
    """scale={layer: (idx, alpha)} multiplies z_j: at alpha=0 that neuron's CETT is exactly 0."""
    batch = _batch(pad=False)
    mask = {"all": batch["attention_mask"].bool()}
    idx = torch.tensor([0, 5])
    got = cett.cett_means(tiny_model, batch, mask, scale={1: (idx, 0.0)})["all"]
    base = cett.cett_means(tiny_model, batch, mask)["all"]
    assert (got[:, 1, idx] == 0).all()
    assert torch.allclose(got[:, 0], base[:, 0])  # layer 0 is upstream of the edit
    assert not torch.allclose(got[:, 1], base[:, 1])


def test_bad_masks_and_layers_are_refused(tiny_model):
    """A mask reaching into padding, or a scaled layer the model lacks, is an error, not a
    silently wrong mean or an intervention that never happens."""
    batch = _batch(pad=True)
    with pytest.raises(ValueError, match=r"\['ans'\] include padding"):
        cett.cett_means(tiny_model, batch, {"ans": torch.ones(3, 9, dtype=torch.bool)})
    mask = {"all": batch["attention_mask"].bool()}
    with pytest.raises(ValueError, match=r"layers \[7\].*0\.\.1"):
        cett.cett_means(tiny_model, batch, mask, scale={7: (torch.tensor([0]), 2.0)})


@pytest.mark.parametrize("bad, err, problem", [
    (torch.ones(3, 1, dtype=torch.bool), ValueError, r"shape \(3, 1\).*\(3, 9\)"),  # broadcast
    (torch.ones(9, dtype=torch.bool), ValueError, r"shape \(9,\)"),
    (torch.ones(3, 9, dtype=torch.long), TypeError, "must be a bool"),
    (torch.full((3, 9), 0.5), TypeError, "must be a bool")])
def test_masks_must_be_bool_and_exactly_batch_shaped(tiny_model, bad, err, problem):
    """A [B, 1] mask would broadcast over the tokens and mix rows, a [T] one fail deep inside,
    a 0/1 or weighted one weight tokens: each is refused, naming the mask."""
    batch = _batch(pad=False)
    with pytest.raises(err, match=f"token mask 'm'.*{problem}"):
        cett.cett_means(tiny_model, batch, {"m": bad})


@pytest.mark.parametrize("scale, problem", [({0: ([-1], 0.0)}, r"scale\[0\].*\[-1\] are outside"),
                                            ({0: ([10_000], 0.0)}, r"\[10000\] are outside"),
                                            ({0: ([1], float("nan"))}, "alpha must be finite"),
                                            ({-1: ([1], 0.0)}, r"layers \[-1\] are outside")])
def test_scale_outside_the_model_or_non_finite_is_refused(tiny_model, scale, problem):
    """A negative neuron index would scale a neuron counted from the end, a NaN alpha fill the
    CETT with NaN: refused before the forward pass."""
    batch = _batch(pad=False)
    with pytest.raises(ValueError, match=problem):
        cett.cett_means(tiny_model, batch, {"all": batch["attention_mask"].bool()}, scale=scale)


@pytest.mark.parametrize("layers", [[5], [-1]])
def test_cett_tokens_refuses_layers_the_model_lacks(tiny_model, layers):
    """A layer outside 0..n_layers-1 is a ValueError naming it (not an error from nnsight)."""
    with pytest.raises(ValueError, match=rf"layers \[{layers[0]}\] are outside .* 0\.\.1"):
        cett.cett_tokens(tiny_model, _batch(pad=False), layers=layers)


def test_left_pad_positions_count_from_each_rows_first_real_token():
    att = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 1]])
    assert cett.left_pad_positions(att).tolist() == [[0, 0, 0, 1, 2], [0, 1, 2, 3, 4],
                                                     [0, 0, 0, 0, 0]]
    assert cett.left_pad_positions(att.bool()).dtype == torch.long


def test_on_device_moves_every_tensor_and_keeps_keys(tiny_model):
    batch = _batch()
    moved = cett.on_device(tiny_model, batch)
    assert moved.keys() == batch.keys()
    assert all(v.device == torch.device(tiny_model.device) and torch.equal(v.cpu(), batch[k])
               for k, v in moved.items())


def test_column_norms_shape_and_values(tiny_model):
    """||W_down[:, j]|| per layer, with GPT-2's transposed Conv1D handled."""
    norms = cett.column_norms(tiny_model)
    a = tiny_model.adapter
    assert norms.shape == (a.n_layers, a.n_neurons)
    w = a.down_weight(tiny_model.hf, 1)
    assert torch.allclose(norms[1], w.norm(dim=0))


def test_remote_branches_read_the_same_numbers(tiny_model, monkeypatch):
    """The NDIF route (``remote=True``: weights read inside a trace, inputs kept on the CPU)
    gives the local route's norms and masked means. NDIF itself is out of reach here, so the
    trace runs locally with ``remote`` recorded and dropped."""
    from dataclasses import replace

    batch = _batch()
    real = batch["attention_mask"].bool()
    local_norms = cett.column_norms(tiny_model)
    local = cett.cett_means(tiny_model, batch, {"all": real}, norms=local_norms)["all"]
    seen, trace = [], tiny_model.lm.trace

    def fake_trace(*args, remote=False, **kw):
        seen.append(remote)
        return trace(*args, **kw)

    monkeypatch.setattr(tiny_model.lm, "trace", fake_trace)
    far = replace(tiny_model, remote=True)
    norms = cett.column_norms(far)
    assert torch.allclose(norms, local_norms, rtol=1e-6)
    got = cett.cett_means(far, batch, {"all": real})["all"]
    assert torch.allclose(got, local, rtol=1e-5)
    assert seen == [True] * 3  # the norms twice (once inside cett_means), then the means


@pytest.mark.slow
def test_real_model_cett(real_model):
    """The embedded model: 30 layers x 1536 neurons, finite non-negative CETT on a real prompt."""
    batch = cett.encode(real_model, ["What is the capital of Australia?"])
    got = cett.cett_means(real_model, batch, {"all": batch["attention_mask"].bool()})["all"]
    assert got.shape == (1, 30, 1536)
    assert torch.isfinite(got).all() and (got >= 0).all()
    # CETT of one neuron cannot exceed... its share can be >1 only if h is smaller than the
    # neuron's own write; on real prompts the typical value is far below 1.
    assert got.median() < 0.05


def test_eq7_ratios_reference_points(tiny_model):
    """Eq. 7 measured: the ratio is exactly 1 at alpha = 1 and 0 at alpha = 0, error = ratio -
    alpha, one row per alpha and neuron; without alpha = 1 there is no reference."""
    batch = _batch(pad=False)
    chosen = {1: torch.tensor([0, 3])}
    eq7 = cett.eq7_ratios(tiny_model, batch, chosen, [0.0, 1.0, 2.0])
    assert len(eq7) == 3 * 2 and set(eq7.neuron) == {"L1/0", "L1/3"}
    assert np.allclose(eq7[eq7.alpha == 1.0].ratio, 1.0)
    assert np.allclose(eq7[eq7.alpha == 0.0].ratio, 0.0)
    assert np.allclose(eq7.error, eq7.ratio - eq7.alpha)
    assert (eq7[eq7.alpha == 2.0].ratio > 1.0).all()  # the numerator doubles, ||h|| moves less
    assert "2 neurons; measured ratio at alpha = 2" in cett.eq7_reading(eq7)
    with pytest.raises(ValueError, match="lack 1.0"):
        cett.eq7_ratios(tiny_model, batch, chosen, [0.0, 2.0])


def test_eq7_ratios_refuses_repeated_alphas_and_no_neuron(tiny_model):
    """A repeated alpha (once a pandas InvalidIndexError), an empty ``chosen`` (once an
    AttributeError) and a neuron listed twice are named."""
    batch = _batch(pad=False)
    with pytest.raises(ValueError, match=r"repeat \[1.0\]"):
        cett.eq7_ratios(tiny_model, batch, {1: torch.tensor([0])}, [0.5, 1.0, 1.0])
    with pytest.raises(ValueError, match="chosen names no neuron"):
        cett.eq7_ratios(tiny_model, batch, {}, [0.5, 1.0])
    with pytest.raises(ValueError, match=r"neurons \['L1/3'\] twice"):
        cett.eq7_ratios(tiny_model, batch, {1: torch.tensor([3, 3])}, [0.5, 1.0])


def test_template_token_share_counts_the_tokens_that_are_not_the_question():
    from hneurons_utils.cett import template_token_share

    words = lambda text, add_special_tokens=False: {"input_ids": text.split()}  # noqa: E731  one token a word
    prompts = ["<sys> be brief </sys> <user> Who wrote Emma ? </user>", "<user> Capital of France ? </user>"]
    questions = ["Who wrote Emma ?", "Capital of France ?"]
    assert template_token_share(words, prompts, questions) == pytest.approx(1 - 8 / 16)
    assert template_token_share(words, questions, questions) == 0.0
    with pytest.raises(ValueError, match="as many questions as prompts"):
        template_token_share(words, prompts, questions[:1])
