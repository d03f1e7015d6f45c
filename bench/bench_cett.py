"""Benchmark: CETT extraction vs a plain forward pass on the same batch (target: <= 1.3x),
and vs the per-neuron loop of the literal definition on a subset of neurons.

    OMP_NUM_THREADS=1 python bench/bench_cett.py [--model ID] [--batch 16] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import torch

from hneurons_utils import cett, data, models
from hneurons_utils.sampling import build_prompt


def best_of(fn, repeats: int, sync=lambda: None) -> float:
    """The shortest wall time of ``repeats`` calls after one warm-up call; ``sync()`` runs after
    each call inside the timing (``torch.cuda.synchronize`` on a GPU, where calls return early)."""
    fn()  # warm-up
    sync()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return min(times)


def cett_calls(m: models.LoadedModel, batch: dict, masks: dict, norms: torch.Tensor):
    """The three calls the CETT benchmarks time on one ``batch`` (on the CPU, as the pipeline
    passes it): a plain forward pass with its inputs on the model's device, an empty nnsight
    trace, and :func:`cett.cett_means` over ``masks``."""
    on_device = cett.on_device(m, batch)
    pos = cett.left_pad_positions(on_device["attention_mask"])

    def forward():
        with torch.no_grad():
            m.hf(**on_device, position_ids=pos)

    def trace_only():
        with torch.no_grad(), m.lm.trace(dict(batch)):
            pass

    def means():
        cett.cett_means(m, batch, masks, norms=norms)

    return forward, trace_only, means


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default=models.EMBEDDED_DEFAULT)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--loop-neurons", type=int, default=32, help="neurons per layer in the loop")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))

    m = models.load_model(args.model)
    qs = data.load_qa("triviaqa", split="train", limit=args.batch, seed=0)
    batch = cett.encode(m, [build_prompt(m.tokenizer, q.question) for q in qs],
                        add_special_tokens=False)
    real = batch["attention_mask"].bool()
    masks = {"answer": real & (torch.arange(real.shape[1]) >= real.shape[1] - 8), "all": real}
    forward, trace_only, means = cett_calls(m, batch, masks, cett.column_norms(m))
    t_fwd = best_of(forward, args.repeats)
    t_trace = best_of(trace_only, args.repeats)
    t_cett = best_of(means, args.repeats)

    # The literal definition, neuron by neuron, on a subset (extrapolated to all neurons).
    store = {}
    hooks = [m.adapter.down_proj(m.hf, i).register_forward_hook(
        lambda mod, inp, out, i=i: store.__setitem__(i, (inp[0], out)))
        for i in range(m.adapter.n_layers)]
    forward()  # fills the store; the loop alone is timed, so the extrapolation stays positive
    t0 = time.perf_counter()
    k = args.loop_neurons
    for i in range(m.adapter.n_layers):
        z, h = (t.reshape(*real.shape, -1) for t in store[i])  # OPT flattens tokens
        w = m.adapter.down_weight(m.hf, i)
        hn = h.norm(dim=-1)
        for j in range(k):
            ((z[..., j:j + 1] * w[:, j]).norm(dim=-1) / hn * real).sum(-1)
    t_loop = time.perf_counter() - t0
    for hk in hooks:
        hk.remove()
    t_loop_all = t_fwd + t_loop * m.adapter.n_neurons / k

    n_tok = int(real.sum())
    print(f"model {args.model}: {m.adapter.n_layers} layers x {m.adapter.n_neurons} neurons; "
          f"batch {args.batch} prompts, {n_tok} tokens; threads {torch.get_num_threads()}")
    print(f"plain forward pass            {t_fwd * 1e3:8.1f} ms")
    print(f"empty nnsight trace           {t_trace * 1e3:8.1f} ms   ({t_trace / t_fwd:.2f}x forward)")
    print(f"CETT means, 2 masks, all L    {t_cett * 1e3:8.1f} ms   ({t_cett / t_fwd:.2f}x forward; target <= 1.30x)")
    print(f"per-neuron loop ({k}/layer)     {t_loop * 1e3:8.1f} ms   (after one forward pass)")
    print(f"per-neuron loop, all neurons  {t_loop_all:8.1f} s    (extrapolated; "
          f"{t_loop_all / t_cett:.0f}x the fast path)")


if __name__ == "__main__":
    main()
