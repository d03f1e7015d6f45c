"""Scaling H-Neurons during generation (paper Section 3, "Impact").

The paper's intervention multiplies the activations of the selected neurons by a factor alpha
before the down-projection, at every token the model reads or writes::

    z'_{j,t} = alpha * z_{j,t}   for every H-Neuron j of a layer,   h_t = W_down z'_t

alpha < 1 suppresses the neurons (alpha = 0 silences them), alpha > 1 amplifies them. Since
``W_down z'`` only sees ``z_j`` through column j, the same map is ``(W_down with column j scaled
by alpha) z``, so three implementations exist here, all with one meaning:

- ``"weights"``: :func:`scaled_down_proj` scales the columns of W_down in place for the length of
  a ``with`` block and restores them bit for bit afterwards (no run-time cost; the fast path).
- ``"nnsight"``: the paper's equation written as an nnsight intervention on the down-projection's
  input at every generation step (also runs remotely on NDIF, where weights cannot be edited).
- ``"hook"``: a plain PyTorch forward pre-hook, the reference the other two are tested against.

:func:`scaled_rows` is the hook form with one factor table per batch row, so one generate call
can hold several conditions (neuron set, alpha) of a sweep; :func:`generate_rows` uses it.
The weight edit computes ``z_j (alpha w_ij)`` instead of ``(alpha z_j) w_ij``: equal up to float
rounding (bit-equal for alpha = 0, 0.5, 1, 2), so the tests compare logits with a tolerance
and tokens exactly.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Mapping, Sequence

import torch

from .cett import encode, left_pad_positions, on_device
from .checks import check_alpha, positive_int, text_list
from .models import LoadedModel
from .probe import NeuronSet
from .sampling import (GREEDY, INSTRUCTION, GenConfig, _cut, build_prompt, check_keys,
                       generate_traced, keyed_generate_kwargs)

METHODS = ("weights", "nnsight", "hook")
# Greedy short answers cut at the first newline, as in the identification chapter's screening.
SHORT_GREEDY = GenConfig(do_sample=False, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=24)


def layer_indices(m: LoadedModel, neurons: NeuronSet | None) -> dict[int, torch.Tensor]:
    """``{layer: neuron index tensor}`` of ``neurons``, checked against the model's shape.

    Raises if the set was built for another model (different layer count or FFN width): that
    usually means a probe from another ``MODEL_ID`` was loaded.
    """
    if neurons is None:
        return {}
    if not isinstance(neurons, NeuronSet):
        raise TypeError(f"neurons must be a NeuronSet (probe.h_neurons(), neurons.random_like) or "
                        f"None, got {type(neurons).__name__}")
    a = m.adapter
    if (neurons.n_layers, neurons.n_neurons) != (a.n_layers, a.n_neurons):
        raise ValueError(
            f"neuron set is for {neurons.n_layers} layers x {neurons.n_neurons} neurons but "
            f"{m.name} ({a.model_class}) has {a.n_layers} x {a.n_neurons}: was the probe "
            "identified on another MODEL_ID?")
    return {layer: torch.as_tensor(idx, dtype=torch.long)
            for layer, idx in neurons.by_layer().items()}


def _columns(m: LoadedModel, layer: int, idx: torch.Tensor) -> tuple[torch.Tensor, tuple]:
    """The stored weight of ``layer``'s down-projection and the index selecting neurons ``idx``.

    ``nn.Linear`` keeps W_down as ``[d_model, N]`` (neuron j = column j); GPT-2's Conv1D keeps
    it as ``[N, d_model]`` (neuron j = row j).
    """
    w = m.adapter.down_proj(m.hf, layer).weight
    idx = idx.to(w.device)
    return w, ((idx, slice(None)) if m.adapter.down_transposed else (slice(None), idx))


@contextmanager
def scaled_down_proj(m: LoadedModel, neurons: NeuronSet | None, alpha: float
                     ) -> Iterator[LoadedModel]:
    """Scale the W_down columns of ``neurons`` by ``alpha`` inside the block (Section 3).

    Equivalent to multiplying those neurons' activations by ``alpha`` at every token. The
    original columns are copied first and written back on exit, also when the block raises, so
    the model is restored bit for bit (dividing by alpha would not be exact, nor possible at 0).
    """
    require_local(m, "weights")
    alpha = check_alpha(alpha)
    saved: list[tuple[torch.Tensor, tuple, torch.Tensor]] = []
    try:
        with torch.no_grad():
            for layer, idx in layer_indices(m, neurons).items():
                w, sel = _columns(m, layer, idx)
                saved.append((w, sel, w[sel].clone()))
                w[sel] = w[sel] * alpha
        yield m
    finally:
        with torch.no_grad():
            for w, sel, orig in reversed(saved):
                w[sel] = orig


def require_local(m: LoadedModel, method: str) -> None:
    """Raise if ``method`` needs the local PyTorch module but ``m`` runs remotely (NDIF).

    Weight edits and hooks act on ``m.hf``; on a remote model that copy is not what runs, so
    they would silently leave the remote model unsteered. Only ``"nnsight"`` runs remotely.
    """
    if m.remote:
        raise ValueError(f"steering method {method!r} edits weights or installs hooks on the local "
                         "model and cannot act on a remote (NDIF) model; use method 'nnsight' "
                         "(STEER_METHOD = \"nnsight\")")


@contextmanager
def _down_proj_pre_hooks(m: LoadedModel, hooks: Mapping[int, Any]) -> Iterator[None]:
    """Forward pre-hooks ``{layer: hook}`` on the down-projections, always removed on exit."""
    handles = []
    try:
        for layer, hook in hooks.items():
            handles.append(m.adapter.down_proj(m.hf, layer).register_forward_pre_hook(hook))
        yield
    finally:
        for h in handles:
            h.remove()


@contextmanager
def scaled_by_hook(m: LoadedModel, neurons: NeuronSet | None, alpha: float
                   ) -> Iterator[LoadedModel]:
    """The same intervention as a forward pre-hook on each down-projection (the reference)."""
    require_local(m, "hook")
    alpha = check_alpha(alpha)

    def make_hook(idx: torch.Tensor):
        def hook(_module: torch.nn.Module, args: tuple) -> tuple:
            z = args[0].clone()  # [B, T, N]
            z[..., idx.to(z.device)] *= alpha
            return (z, *args[1:])
        return hook

    with _down_proj_pre_hooks(m, {layer: make_hook(idx)
                                  for layer, idx in layer_indices(m, neurons).items()}):
        yield m


@contextmanager
def scaled_rows(m: LoadedModel, rows: Sequence[tuple[NeuronSet | None, float]]
                ) -> Iterator[LoadedModel]:
    """Row ``r`` of every batch gets its own intervention ``rows[r] = (neurons, alpha)``.

    One generate call can then cover several conditions of a sweep (the same prompts under
    H-Neurons and random sets at several alphas), which keeps the batch wide: a decode step
    costs less per row in a wide batch (``bench/bench_steering.py`` measures by how much on the
    machine at hand). Implemented as pre-hooks multiplying
    ``z [B, T, N]`` by a per-row factor table ``[B, N]`` (1 for untouched neurons, so an
    unscaled row is reproduced exactly).
    """
    require_local(m, "rows")
    factors: dict[int, torch.Tensor] = {}
    for r, (neurons, alpha) in enumerate(rows):
        alpha = check_alpha(alpha)
        for layer, idx in layer_indices(m, neurons).items():
            table = factors.setdefault(layer, torch.ones(len(rows), m.adapter.n_neurons))
            table[r, idx] = alpha

    batch: dict[str, int] = {}

    def note_rows(_module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        """The forward pass's batch size, read from its input (a layer may flatten tokens)."""
        x = next((v for v in (kwargs.get("input_ids"), kwargs.get("inputs_embeds"), *args[:1])
                  if v is not None), None)
        if x is not None:
            batch["rows"] = x.shape[0]

    def make_hook(table: torch.Tensor):
        placed: dict[tuple, torch.Tensor] = {}  # the table where the layer runs, copied once

        def hook(_module: torch.nn.Module, args: tuple) -> tuple:
            z = args[0]  # [B, T, N], or [B*T, N] where the layer flattens tokens (OPT)
            rows = batch.get("rows", z.shape[0])
            if rows != table.shape[0]:
                raise ValueError(f"batch has {rows} rows but {table.shape[0]} row "
                                 "interventions were given (num_return_sequences must be 1)")
            key = (z.device, z.dtype)
            if key not in placed:  # not at every decode step: a GPU would copy [B, N] each time
                placed[key] = table.to(z.device, z.dtype)[:, None, :]
            scaled = z.reshape(rows, -1, z.shape[-1]) * placed[key]
            return (scaled.reshape(z.shape), *args[1:])
        return hook

    handle = m.hf.register_forward_pre_hook(note_rows, with_kwargs=True)
    try:
        with _down_proj_pre_hooks(m, {layer: make_hook(table) for layer, table in factors.items()}):
            yield m
    finally:
        handle.remove()


def generate_rows(m: LoadedModel, prompts: Sequence[str], cfg: GenConfig,
                  rows: Sequence[tuple[NeuronSet | None, float]], seed: int | None = None,
                  keys: Sequence[int] | None = None) -> list[str]:
    """One answer per prompt, prompt ``r`` generated under intervention ``rows[r]``.

    Under sampling, ``keys`` (one per row, :func:`sampling.row_seed`) give each row its own
    random numbers (:class:`sampling.KeyedSampler`): a row's answer then does not depend on the
    other rows of the call; without keys all rows share one stream seeded ``seed``.
    """
    require_local(m, "rows")
    prompts = text_list(prompts, "prompts")
    if len(prompts) != len(rows):
        raise ValueError(f"{len(prompts)} prompts but {len(rows)} row interventions")
    check_keys(prompts, keys)
    if cfg.num_return_sequences != 1:
        raise ValueError("generate_rows makes one answer per row (num_return_sequences=1)")
    enc = on_device(m, encode(m, prompts, add_special_tokens=False))
    if seed is not None:
        torch.manual_seed(seed)
    with torch.no_grad(), scaled_rows(m, rows):
        out = m.hf.generate(**enc, **keyed_generate_kwargs(m, cfg, keys))
    texts = m.tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    return [_cut(t, cfg.stop_at_newline) for t in texts]


def _scale_step(m: LoadedModel, scale: Mapping[int, torch.Tensor], alpha: float) -> None:
    """Inside an nnsight trace: ``down_proj.input[..., H-Neurons of layer l] *= alpha``."""
    for layer, idx in scale.items():
        m.adapter.down_proj(m.lm, layer).input[..., idx] *= alpha


def _generate_nnsight(m: LoadedModel, enc: dict[str, torch.Tensor], kw: dict[str, Any],
                      scale: Mapping[int, torch.Tensor], alpha: float) -> torch.Tensor:
    """Generate through nnsight, scaling at each of up to ``max_new_tokens`` steps."""
    return generate_traced(m, enc, kw, step=lambda: _scale_step(m, scale, alpha))


def generate_ids_scaled(m: LoadedModel, enc: Mapping[str, torch.Tensor], cfg: GenConfig,
                        neurons: NeuronSet | None, alpha: float, method: str = "weights",
                        seed: int | None = None, keys: Sequence[int] | None = None
                        ) -> torch.Tensor:
    """Token ids ``[B * num_return_sequences, T_prompt + T_new]`` generated with the neurons scaled.

    ``enc``: left-padded ``input_ids`` / ``attention_mask`` ``[B, T_prompt]``. ``keys``: one
    sampling key per generated row (:class:`sampling.KeyedSampler`; local models), else the
    rows share the stream seeded ``seed``.
    """
    if method not in METHODS:
        raise ValueError(f"unknown steering method {method!r}; choose one of {METHODS}")
    if method != "nnsight":
        require_local(m, method)
    alpha = check_alpha(alpha)
    kw = keyed_generate_kwargs(m, cfg, keys)
    enc = on_device(m, enc)
    if seed is not None:
        torch.manual_seed(seed)
    if method == "nnsight":
        return _generate_nnsight(m, enc, kw, layer_indices(m, neurons), alpha).cpu()
    ctx = scaled_down_proj if method == "weights" else scaled_by_hook
    with torch.no_grad(), ctx(m, neurons, alpha):
        return m.hf.generate(**enc, **kw).cpu()


def generate_scaled(m: LoadedModel, prompts: Sequence[str], cfg: GenConfig = GREEDY,
                    neurons: NeuronSet | None = None, alpha: float = 1.0,
                    method: str = "weights", seed: int | None = None,
                    keys: Sequence[int] | None = None) -> list[list[str]]:
    """``sampling.generate_texts`` with ``neurons`` scaled by ``alpha`` (Section 3).

    Returns ``num_return_sequences`` answers per prompt. Chat prompts carry their own special
    tokens, so none are added.
    """
    prompts = text_list(prompts, "prompts")
    enc = encode(m, prompts, add_special_tokens=False)
    out = generate_ids_scaled(m, enc, cfg, neurons, alpha, method, seed, keys)
    texts = m.tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    n = cfg.num_return_sequences
    return [[_cut(t, cfg.stop_at_newline) for t in texts[i * n:(i + 1) * n]]
            for i in range(len(prompts))]


def logits_scaled(m: LoadedModel, enc: Mapping[str, torch.Tensor], neurons: NeuronSet | None,
                  alpha: float, method: str = "weights") -> torch.Tensor:
    """Next-token logits ``[B, T, vocab]`` of one forward pass with the neurons scaled.

    Positions are counted from each left-padded row's first token (as ``generate`` does), so an
    absolute-position model (GPT-2) reads a padded row as it would read it alone.
    """
    if method not in METHODS:
        raise ValueError(f"unknown steering method {method!r}; choose one of {METHODS}")
    alpha = check_alpha(alpha)
    if "attention_mask" not in enc:
        raise ValueError("logits_scaled needs the batch's attention_mask (cett.encode returns it): "
                         "without it left padding cannot be told from tokens")
    enc = on_device(m, enc)
    enc["position_ids"] = left_pad_positions(enc["attention_mask"])
    if method == "nnsight":
        import nnsight

        with torch.no_grad(), m.lm.trace(enc, remote=m.remote):
            _scale_step(m, layer_indices(m, neurons), alpha)
            logits = nnsight.save(m.lm.output.logits)
        return logits.cpu()
    ctx = scaled_down_proj if method == "weights" else scaled_by_hook
    with torch.no_grad(), ctx(m, neurons, alpha):
        return m.hf(**enc).logits.cpu()


def _answers_scaled(m: LoadedModel, items: Sequence[Any], neurons: NeuronSet | None, alpha: float,
                    batch_size: int, cfg: GenConfig, method: str) -> list[str]:
    """One greedy answer per item with ``neurons`` scaled by ``alpha`` (one condition, any method)."""
    out: list[str] = []
    for i in range(0, len(items), positive_int(batch_size, "batch_size")):
        chunk = items[i:i + batch_size]
        prompts = [build_prompt(m.tokenizer, it.question, INSTRUCTION) for it in chunk]
        out += [a[0] for a in generate_scaled(m, prompts, cfg, neurons, alpha, method)]
    return out


def suppression_accuracy(m: LoadedModel, neurons: NeuronSet | None, items: Sequence[Any],
                         alpha: float = 0.0, batch_size: int = 16, cfg: GenConfig = SHORT_GREEDY,
                         method: str = "weights") -> float:
    """Greedy QA accuracy with ``neurons`` scaled by ``alpha`` (the cost of suppression, Sec. 3).

    ``items``: objects with ``question`` and ``answers`` (``data.QAItem``); answers are judged
    with ``judges.rule_judge``. At ``alpha=0`` this tells how much factual recall survives
    silencing the H-Neurons; the identification chapter can use it to choose among probes of
    similar accuracy (the paper picks the L1 strength that keeps the model's ability intact).
    """
    from .judges import rule_judge

    if not items:
        raise ValueError("suppression_accuracy needs at least one QA item")
    answers = _answers_scaled(m, items, neurons, alpha, batch_size, cfg, method)
    return sum(rule_judge(a, it.answers) == "correct" for a, it in zip(answers, items)) / len(items)


def qa_answers(m: LoadedModel, items: Sequence[Any],
               conditions: Sequence[tuple[NeuronSet | None, float]], cfg: GenConfig = SHORT_GREEDY,
               batch_size: int = 64, method: str = "rows") -> list[list[str]]:
    """Greedy answers to every item under each ``(neurons, alpha)`` condition: one list per
    condition, in item order (the cost of suppression, Sec. 3, answer by answer).

    ``method="rows"``: rows of one generate call mix conditions (:func:`scaled_rows`); any of
    :data:`METHODS` instead runs one condition at a time with it (``"nnsight"`` also on a
    remote model).
    """
    if method != "rows":
        return [_answers_scaled(m, items, ns, alpha, batch_size, cfg, method) for ns, alpha in conditions]
    pairs = [(c, it) for c in range(len(conditions)) for it in range(len(items))]
    out: list[list[str]] = [[""] * len(items) for _ in conditions]
    for b in range(0, len(pairs), positive_int(batch_size, "batch_size")):
        chunk = pairs[b:b + batch_size]
        prompts = [build_prompt(m.tokenizer, items[i].question, INSTRUCTION) for _, i in chunk]
        for (c, i), a in zip(chunk, generate_rows(m, prompts, cfg, [conditions[c] for c, _ in chunk])):
            out[c][i] = a
    return out


def qa_accuracy(m: LoadedModel, items: Sequence[Any],
                conditions: Sequence[tuple[NeuronSet | None, float]], cfg: GenConfig = SHORT_GREEDY,
                batch_size: int = 64, method: str = "rows") -> list[tuple[int, int]]:
    """``(correct, n)`` of greedy QA answers under each condition (:func:`qa_answers` judged
    with ``judges.rule_judge``): the many-conditions form of :func:`suppression_accuracy`."""
    from .judges import rule_judge

    return [(sum(rule_judge(a, it.answers) == "correct" for a, it in zip(answers, items)), len(items))
            for answers in qa_answers(m, items, conditions, cfg, batch_size, method)]
