"""Overhead of each H-Neuron scaling method versus plain generation (paper Section 3).

Prints, for the embedded SmolLM2-135M-Instruct (or ``--model``) on this machine: the wall time
of plain greedy generation, of the same generation with neurons scaled by the weight edit, the
forward pre-hook, nnsight and the per-row factor tables (``"rows"``, :func:`steering.generate_rows`,
the method the behaviour chapter uses), and of a sweep of K conditions run one call at a time
(weight edit) versus in one wide call (``"rows"``), and what keyed sampling costs and keeps
(:class:`sampling.KeyedSampler`: a row's sample alone versus inside the wide call). alpha = 1 is used for the per-method timings
so every method generates exactly the plain tokens (same number of steps); the script checks
that. ``--widths`` also times plain generation at several batch widths (seconds per row), to
show how much a wide call saves per row on this machine.

    OMP_NUM_THREADS=1 python bench/bench_steering.py [--model ID] [--prompts 8] [--tokens 24]
        [--widths 16,96]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from hneurons_utils.models import load_model
from hneurons_utils.probe import random_neuron_set
from hneurons_utils.sampling import GenConfig, build_prompt, generate_texts, row_seed
from hneurons_utils.steering import generate_rows, generate_scaled

QUESTIONS = ["How many legs does a fish have?", "Why is the sun cold at noon?",
             "When did Shakespeare write his first novel on a computer?",
             "What colour are the feathers of a cat?", "How do I water a plastic plant?",
             "Which ocean lies between Paris and Berlin?", "Why do stones grow in summer?",
             "Who was the first person to walk on the sun?"]


def timed(fn, repeats: int) -> tuple[float, object]:
    """Median wall time of ``repeats`` calls (after one warm-up call) and the last result."""
    out = fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="SmolLM2-135M-Instruct")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=24)
    ap.add_argument("--neurons", type=int, default=40, help="size of the scaled set")
    ap.add_argument("--conditions", type=int, default=6, help="K for the sweep comparison")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--widths", default="", help="comma-separated batch widths to time, e.g. 16,96")
    args = ap.parse_args()
    torch.set_num_threads(1)

    m = load_model(args.model)
    a = m.adapter
    ns = random_neuron_set(args.neurons, a.n_layers, a.n_neurons, seed=0)
    questions = (QUESTIONS * (args.prompts // len(QUESTIONS) + 1))[:args.prompts]
    prompts = [build_prompt(m.tokenizer, q, instruction=None) for q in questions]
    cfg = GenConfig(do_sample=False, top_k=0, top_p=1.0, max_new_tokens=args.tokens,
                    stop_at_newline=False)
    print(f"{m.name}: {a.n_layers} x {a.n_neurons} neurons; {args.neurons} scaled; "
          f"{args.prompts} prompts x {args.tokens} new tokens; torch threads = 1")

    base, ref = timed(lambda: generate_texts(m, prompts, cfg), args.repeats)
    print(f"{'plain generate':<28} {base:7.2f} s")
    for method in ("weights", "hook", "nnsight"):
        t, out = timed(lambda: generate_scaled(m, prompts, cfg, ns, 1.0, method), args.repeats)
        same = "same tokens" if out == ref else "DIFFERENT TOKENS"
        print(f"{method + ' (alpha=1)':<28} {t:7.2f} s  {100 * (t / base - 1):+6.1f} %  {same}")
    t, out = timed(lambda: generate_rows(m, prompts, cfg, [(ns, 1.0)] * len(prompts)), args.repeats)
    same = "same tokens" if out == [r[0] for r in ref] else "DIFFERENT TOKENS"
    print(f"{'rows (alpha=1)':<28} {t:7.2f} s  {100 * (t / base - 1):+6.1f} %  {same}")

    alphas = [0.0, 0.5, 1.5, 2.0, 2.5, 3.0][:args.conditions]
    seq = lambda: [generate_scaled(m, prompts, cfg, ns, al, "weights") for al in alphas]
    rows = [(ns, al) for al in alphas for _ in prompts]
    wide = lambda: generate_rows(m, [p for _ in alphas for p in prompts], cfg, rows)
    t_seq, out_seq = timed(seq, 1)
    t_wide, out_wide = timed(wide, 1)
    flat_seq = [x[0] for o in out_seq for x in o]
    agree = sum(x == y for x, y in zip(flat_seq, out_wide))
    print(f"{len(alphas)} alphas one call each (weights) {t_seq:7.2f} s")
    print(f"{len(alphas)} alphas in one wide call (rows)  {t_wide:7.2f} s  "
          f"x{t_seq / t_wide:.2f} faster; {agree}/{len(out_wide)} answers identical")

    # keyed sampling (sweep.run_sweep under sampling): cost of the per-row random numbers, and
    # whether a row's sample is the same alone as inside a wide, padded call of all conditions
    sampled = GenConfig(temperature=0.7, top_k=20, top_p=0.8, max_new_tokens=args.tokens,
                        stop_at_newline=False)
    keys = [row_seed("bench", i) for i in range(len(prompts))]
    plain_rows = [(None, 1.0)] * len(prompts)
    t_stream, _ = timed(lambda: generate_rows(m, prompts, sampled, plain_rows, seed=0), args.repeats)
    t_keyed, keyed = timed(lambda: generate_rows(m, prompts, sampled, plain_rows, keys=keys), args.repeats)
    print(f"{'sampled, one stream':<28} {t_stream:7.2f} s")
    print(f"{'sampled, keyed rows':<28} {t_keyed:7.2f} s  {100 * (t_keyed / t_stream - 1):+6.1f} %")
    last = alphas[-1]
    alone = [generate_rows(m, [p], sampled, [(ns, last)], keys=[k])[0] for p, k in zip(prompts, keys)]
    in_wide = generate_rows(m, [p for _ in alphas for p in prompts], sampled, rows,
                            keys=keys * len(alphas))[-len(prompts):]
    print(f"keyed samples at alpha {last:g}: {sum(x == y for x, y in zip(alone, in_wide))}/{len(prompts)} "
          f"identical alone and inside the {len(alphas)}-alpha call (differences: float rounding of padding)")

    for width in [int(w) for w in args.widths.split(",") if w.strip()]:
        batch = (prompts * (width // len(prompts) + 1))[:width]
        t, _ = timed(lambda: generate_texts(m, batch, cfg), 1)
        print(f"plain generate, {width:>4} rows       {t:7.2f} s  {1000 * t / width:7.1f} ms per row")


if __name__ == "__main__":
    main()
