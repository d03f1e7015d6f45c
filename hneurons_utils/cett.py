"""CETT: the contribution of each FFN neuron to its layer's output (paper Section 6.1.2, Eq. 1-2).

For layer l, token t and neuron j, with z_t the input of the down-projection (the neuron
activations) and h_t = W_down z_t its output::

    CETT_{j,t} = || z_{j,t} W_down[:, j] ||_2 / || h_t ||_2 = |z_{j,t}| * ||W_down[:, j]||_2 / ||h_t||_2

Response-level features are means of CETT over a token mask (answer tokens, other tokens, ...).
``cett_means`` computes them for every layer inside one nnsight trace; each layer is reduced to
``[masks, batch, neurons]`` as soon as the forward pass reaches it, so memory never holds
``layers x tokens x neurons``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Sequence

import nnsight
import numpy as np
import torch

from .checks import check_alpha
from .models import LoadedModel

if TYPE_CHECKING:
    import pandas as pd

EPS = 1e-12


def column_norms(m: LoadedModel) -> torch.Tensor:
    """``||W_down[:, j]||_2`` for every layer and neuron: ``[layers, neurons]`` (float32)."""
    if m.remote:
        with m.lm.trace("norms", remote=True):
            norms = nnsight.save([
                m.adapter.down_proj(m.lm, i).weight.float().norm(
                    dim=1 if m.adapter.down_transposed else 0)
                for i in range(m.adapter.n_layers)])
        return torch.stack([n.cpu() for n in norms])
    with torch.no_grad():
        return torch.stack([m.adapter.down_weight(m.hf, i).float().norm(dim=0).cpu()
                            for i in range(m.adapter.n_layers)])


def encode(m: LoadedModel, texts: Sequence[str], add_special_tokens: bool = True
           ) -> dict[str, torch.Tensor]:
    """Tokenise a batch with left padding; returns ``input_ids`` and ``attention_mask`` [B, T]."""
    enc = m.tokenizer(list(texts), return_tensors="pt", padding=True,
                      add_special_tokens=add_special_tokens)
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def on_device(m: LoadedModel, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``batch`` with every tensor moved to the model's device."""
    return {k: v.to(m.device) for k, v in batch.items()}


def left_pad_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids counted from each left-padded row's first real token, as ``generate``
    counts them, so a padded row reads as it would alone (matters for GPT-2's absolute
    positions) [B, T]."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def _cett_ratio(z: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """``|z_j,t| / ||h_t||``: CETT before the per-neuron factor ``||W_down[:, j]||`` [B, T, N]."""
    return z.abs().float() / h.float().norm(dim=-1, keepdim=True).clamp_min(EPS)


def _check_layers(m: LoadedModel, layers, what: str) -> list[int]:
    """``layers`` as ints in ``0..n_layers-1``, or an error naming the bad ones (a negative
    index would silently count from the end)."""
    out, bad = [], []
    for l in layers:
        if isinstance(l, bool) or not isinstance(l, (int, np.integer)):
            raise TypeError(f"{what} must be whole layer numbers, got {l!r}")
        (out if 0 <= l < m.adapter.n_layers else bad).append(int(l))
    if bad:
        raise ValueError(f"{what}: layers {bad} are outside the model's layers 0.."
                         f"{m.adapter.n_layers - 1} (a negative one is not counted from the end)")
    return out


def _check_neurons(m: LoadedModel, idx, where: str) -> torch.Tensor:
    """Neuron indices of one layer as a 1-D int64 tensor in ``0..n_neurons-1`` (a negative index
    would silently pick a neuron counted from the end)."""
    t = torch.as_tensor(idx)
    if t.dtype == torch.bool or t.dtype.is_floating_point or t.dtype.is_complex or t.ndim > 1:
        raise ValueError(f"{where}: neuron indices must be a 1-D list or tensor of whole "
                         f"numbers, got dtype {t.dtype} and shape {tuple(t.shape)}")
    t = t.reshape(-1).long()
    bad = t[(t < 0) | (t >= m.adapter.n_neurons)]
    if bad.numel():
        raise ValueError(f"{where}: neuron indices {bad[:5].tolist()} are outside "
                         f"0..{m.adapter.n_neurons - 1} (the model's neurons per layer)")
    return t


def _check_masks_and_scale(m: LoadedModel, batch: Mapping[str, torch.Tensor],
                           masks: Mapping[str, torch.Tensor],
                           scale: Mapping[int, tuple[torch.Tensor, float]]
                           ) -> dict[int, tuple[torch.Tensor, float]]:
    """Raise if a token mask is not a bool ``[B, T]`` tensor of the batch's shape or covers
    padding, or if ``scale`` names a layer or neuron the model lacks or a non-finite alpha.
    Returns ``scale`` with int64 index tensors and float alphas."""
    if not masks:
        raise ValueError("no token masks given: pass {name: bool [B, T] mask}")
    shape = tuple(batch["input_ids"].shape)
    for n, k in masks.items():
        if not isinstance(k, torch.Tensor) or k.dtype != torch.bool:
            raise TypeError(f"token mask {n!r} must be a bool torch tensor, got "
                            f"{getattr(k, 'dtype', type(k).__name__)} (a 0/1 or weighted mask "
                            "would weight the tokens instead of selecting them)")
        if tuple(k.shape) != shape:
            raise ValueError(f"token mask {n!r} has shape {tuple(k.shape)}, but batch['input_ids'] "
                             f"has {shape}: each mask must be [B, T] like it (no broadcasting)")
    if "attention_mask" in batch:
        real = batch["attention_mask"].bool()
        bad = [n for n, k in masks.items() if (k & ~real.to(k.device)).any()]
        if bad:
            raise ValueError(f"token masks {bad} include padding positions; AND them with the "
                             "attention mask (padding CETT is meaningless)")
    _check_layers(m, scale, "scale")
    out = {}
    for l, value in scale.items():
        try:
            idx, alpha = value
        except (TypeError, ValueError):
            raise ValueError(f"scale[{l}] must be a pair (neuron indices, alpha), "
                             f"got {value!r}") from None
        out[int(l)] = (_check_neurons(m, idx, f"scale[{l}]"), check_alpha(alpha))
    return out


def _check_norms(m: LoadedModel, norms: torch.Tensor) -> None:
    """Raise unless ``norms`` is ``[n_layers, n_neurons]`` (``column_norms`` of this model)."""
    want = (m.adapter.n_layers, m.adapter.n_neurons)
    if tuple(norms.shape) != want:
        raise ValueError(f"norms has shape {tuple(norms.shape)}, but this model has {want[0]} "
                         f"layers x {want[1]} neurons: pass column_norms(m) of this model")


def _token_weights(k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """From masks ``k`` [K, B, T]: the tokens inside some mask, ``used`` [B, T], and the
    weights [K*B, M] that sum those M tokens per mask and row with one matrix product
    (``weights[k*B + b, m]`` = mask k at used token m if m belongs to row b, else 0).

    Only used tokens are read, so padding (which can hold NaN) never enters a sum.
    """
    n_k, n_b = k.shape[:2]
    used = k.bool().any(0)  # [B, T]
    rows = used.nonzero()[:, 0]  # [M]: batch row of each used token
    onehot = torch.zeros(n_b, rows.numel()).index_put_((rows, torch.arange(rows.numel())),
                                                       torch.tensor(1.0))
    return used, (k[:, used][:, None, :] * onehot[None]).reshape(n_k * n_b, -1)


# What a response-level feature measures: "cett" (the paper) or "activation", the mean
# absolute down-projection input |z_j,t| with neither CETT factor (the baseline that asks
# what CETT's normalisation adds; chapter 3).
MEASURES = ("cett", "activation")


def cett_means(m: LoadedModel, batch: Mapping[str, torch.Tensor],
               masks: Mapping[str, torch.Tensor], norms: torch.Tensor | None = None,
               scale: Mapping[int, tuple[torch.Tensor, float]] | None = None,
               measure: str = "cett") -> dict[str, torch.Tensor]:
    """Mean CETT over each token mask, for every layer, in one forward pass (Eq. 2).

    ``batch``: ``input_ids``/``attention_mask`` ``[B, T]``. ``masks``: name -> bool ``[B, T]``
    (e.g. answer tokens, other tokens); padding must be excluded by the caller. ``scale``:
    optional ``{layer: (neuron indices, alpha)}`` multiplying those activations before the
    down-projection (Eq. 7's intervention), so CETT is read on the intervened forward pass.
    Returns name -> ``[B, layers, neurons]`` float32 on the CPU; a row whose mask is empty is NaN.
    ``h`` is the down-projection's output as the model computes it: where that layer has a bias
    (GPT-2's ``c_proj``, OPT's ``fc2``, Pythia's ``dense_4h_to_h``) the bias is part of
    ``||h_t||``; the paper's models (Llama, Mistral, Gemma, Qwen) have none.
    ``measure="activation"`` returns the mean of ``|z_j,t|`` instead (no division by
    ``||h_t||``, no column norm): the raw-activation baseline (:data:`MEASURES`).
    Refused: no mask, a mask that is not bool or not exactly ``[B, T]`` (none is broadcast), a
    mask reaching into padding, ``norms`` of another shape, and in ``scale`` a layer or neuron
    index outside the model (negative ones included) or a NaN/infinite alpha.
    """
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}")
    names = list(masks)
    scale = _check_masks_and_scale(m, batch, masks, scale or {})
    k = torch.stack([masks[n].float() for n in names])  # [K, B, T]
    n_k, n_b = k.shape[:2]
    counts = k.sum(-1)  # [K, B]
    raw = measure == "activation"  # mean |z|: neither the column norms nor ||h_t|| are needed
    if norms is None and not raw:
        norms = column_norms(m)
    elif not raw:
        _check_norms(m, norms)
    used, weights = _token_weights(k)
    # the used tokens' rows in the flattened [B*T] batch, found once here: selecting them by
    # index inside the trace does not wait for the device, as a boolean mask would at each layer
    rows = used.reshape(-1).nonzero().squeeze(1)  # [M]
    if not m.remote:  # to the model's (first) device once; each layer moves them where it runs
        rows, weights = rows.to(m.device), weights.to(m.device)
        norms = None if raw else norms.to(m.device)
    with torch.no_grad(), m.lm.trace(dict(batch), remote=m.remote) as tracer:
        per_layer = []
        for i in range(m.adapter.n_layers):
            down = m.adapter.down_proj(m.lm, i)
            if i in scale:
                idx, alpha = scale[i]
                down.input[..., idx] *= alpha
            z_all, h_all = down.input, down.output  # [B, T, .], or [B*T, .] (OPT flattens tokens)
            # the layer's device: a sharded model (DEVICE "auto") or NDIF runs layers elsewhere
            dev = z_all.device
            r = rows.to(dev)
            z = z_all.reshape(-1, z_all.shape[-1]).index_select(0, r).float().abs_()  # [M, N]: |z_j,t|
            if raw:
                per_layer.append(weights.to(dev) @ z)  # [K*B, N]: sums of |z_j,t|
                continue
            h = h_all.reshape(-1, h_all.shape[-1]).index_select(0, r)
            h_norm = h.float().norm(dim=-1).clamp_min(EPS)  # [M]: ||h_t||
            per_layer.append((weights.to(dev) / h_norm) @ z * norms[i].to(dev))  # [K*B, N]
        sums = nnsight.save(per_layer)
        tracer.stop()  # nothing after the last down-projection is read: skip the LM head
    # stacked and divided where the first layer ran, then copied once: on a GPU, K x B x L x N
    # floats handled by the CPU would cost as much as the extraction itself (bench/gpu_check.py)
    dev0 = sums[0].device
    total = torch.stack([s.to(dev0) for s in sums], dim=1).reshape(n_k, n_b, -1, m.adapter.n_neurons)
    means = (total / counts.to(dev0)[:, :, None, None]).cpu()  # [K, B, L, N]
    return {n: means[i] for i, n in enumerate(names)}


def cett_tokens(m: LoadedModel, batch: Mapping[str, torch.Tensor],
                layers: Sequence[int] | None = None, norms: torch.Tensor | None = None
                ) -> torch.Tensor:
    """Per-token CETT ``[len(layers), B, T, N]`` for inspection of a few short prompts.

    This materialises layers x tokens x neurons: use ``cett_means`` for datasets. A layer
    outside ``0..n_layers-1`` (negative ones included) is refused.
    """
    layers = (list(range(m.adapter.n_layers)) if layers is None
              else _check_layers(m, layers, "cett_tokens"))
    if norms is None:
        norms = column_norms(m)
    else:
        _check_norms(m, norms)
    shape = batch["input_ids"].shape  # [B, T]: also where a layer flattens tokens (OPT)
    with torch.no_grad(), m.lm.trace(dict(batch), remote=m.remote):
        out = nnsight.save([_cett_ratio(m.adapter.down_proj(m.lm, i).input.reshape(*shape, -1),
                                        m.adapter.down_proj(m.lm, i).output.reshape(*shape, -1))
                            for i in layers])
    return torch.stack([o.cpu() * norms[i].cpu()[None, None] for o, i in zip(out, layers)])


def template_token_share(tokenizer, prompts: Sequence[str], questions: Sequence[str]) -> float:
    """The share of the prompts' tokens that are not the question's own: the chat template,
    system prompt and instruction that every prompt shares. Counted as 1 - (tokens of the
    questions alone) / (tokens of the prompts), both without special tokens added (the template
    writes its own), so a question's tokens that merge with the text around it make this an
    estimate, not an exact count."""
    if len(prompts) != len(questions) or not prompts:
        raise ValueError(f"need as many questions as prompts, at least one (got {len(questions)} "
                         f"and {len(prompts)})")
    count = lambda texts: sum(len(tokenizer(t, add_special_tokens=False)["input_ids"])  # noqa: E731
                              for t in texts)
    total = count(prompts)
    if not total:
        raise ValueError("the prompts hold no token")
    return 1.0 - count(questions) / total


def eq7_ratios(m: LoadedModel, batch: Mapping[str, torch.Tensor],
               chosen: Mapping[int, torch.Tensor], alphas: Sequence[float],
               norms: torch.Tensor | None = None) -> "pd.DataFrame":
    """Measure Eq. 7: CETT of the ``chosen`` neurons (``{layer: indices}``, all scaled together,
    as the intervention does) with their activations multiplied by each alpha, averaged over
    the real tokens of ``batch`` and divided by their CETT at alpha = 1 (which ``alphas`` must
    contain). One row per alpha and neuron: ``alpha, neuron ("L<l>/<j>"), cett, ratio,
    error = ratio - alpha`` (Eq. 7 predicts error ~ 0 when CETT << 1). Refused: no neuron
    in ``chosen``, a neuron listed twice, repeated or non-finite alphas.
    """
    import pandas as pd

    values = [check_alpha(a) for a in alphas]
    if 1.0 not in values:
        raise ValueError(f"alphas {list(alphas)} lack 1.0, the unscaled reference of the ratio")
    dup = sorted({a for a in values if values.count(a) > 1})
    if dup:
        raise ValueError(f"alphas {list(alphas)} repeat {dup}: give each alpha once")
    _check_layers(m, chosen, "chosen")
    chosen = {int(l): _check_neurons(m, idx, f"chosen[{l}]") for l, idx in chosen.items()}
    if not sum(idx.numel() for idx in chosen.values()):
        raise ValueError("chosen names no neuron: pass {layer: neuron indices} with at least one")
    twice = [f"L{l}/{j}" for l, idx in chosen.items()
             for j, c in zip(*(t.tolist() for t in idx.unique(return_counts=True))) if c > 1]
    if twice:
        raise ValueError(f"chosen lists neurons {twice} twice: give each neuron once")
    norms = column_norms(m) if norms is None else norms
    mask = {"all": batch["attention_mask"].bool()}
    rows = []
    for alpha in values:
        res = cett_means(m, batch, mask, norms=norms,
                         scale={l: (idx, alpha) for l, idx in chosen.items()})["all"]  # [B, L, N]
        rows += [{"alpha": alpha, "neuron": f"L{l}/{j}", "cett": res[:, l, j].mean().item()}
                 for l, idx in chosen.items() for j in idx.tolist()]
    eq7 = pd.DataFrame(rows)
    base = eq7[eq7.alpha == 1.0].set_index("neuron")["cett"]
    eq7["ratio"] = eq7.cett / eq7.neuron.map(base)
    eq7["error"] = eq7.ratio - eq7.alpha
    return eq7


def eq7_reading(eq7: "pd.DataFrame") -> str:
    """The measured ratio's range at the largest alpha, and the relative error (ratio - alpha) /
    alpha below and above alpha = 1 (> 0: the ratio overshoots alpha)."""
    top = eq7.alpha.max()
    at = eq7[eq7.alpha == top].ratio
    out = [f"{eq7.neuron.nunique()} neurons; measured ratio at alpha = {top:g}: "
           f"{at.min():.2f} to {at.max():.2f}"]
    for side, sel in (("0 < alpha < 1", (eq7.alpha > 0) & (eq7.alpha < 1)), ("alpha > 1", eq7.alpha > 1)):
        if sel.any():
            rel = eq7.error[sel] / eq7.alpha[sel]
            out.append(f"{side}: (ratio - alpha) / alpha from {100 * rel.min():+.0f}% to "
                       f"{100 * rel.max():+.0f}% (median {100 * rel.median():+.0f}%)")
    return "\n".join(out)
