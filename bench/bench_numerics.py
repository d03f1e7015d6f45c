"""How much the CPU's arithmetic moves sampled answers (one way two machines can differ).

The book's sampled answers are seeded per question, so one machine reproduces them byte for
byte. Another machine need not: torch picks its CPU kernels by the vector instructions the
processor has (``torch.backends.cpu.get_cpu_capability()``: AVX-512, AVX2, or plain code), and
kernels that add in another order round differently. A rounding difference of 1e-6 in a
logit changes nothing until a sampled token sits at the edge between two candidates (or the
top-p cut-off); from there on the answer differs, and so may its label, the consistent
questions, the probe and its C.

This script measures that on this machine. It samples the paper's 10 answers (T = 1.0,
top_k 50, top_p 0.9, keyed per question as in chapter 2) and one greedy answer for the first
``--questions`` TriviaQA questions under each kernel setting, each in a fresh process (the
setting must be made before torch starts): ``native`` (what this processor gets), ``avx2`` and
``default`` (no vector kernels) for torch's own kernels, through ``ATEN_CPU_CAPABILITY``; the
native kernels with two threads (``2-threads``); and ``mkl-compatible``, the portable code path
of the matrix products (MKL, torch's BLAS on x86, picks its path by processor too; ``MKL_CBWR``).
It prints, against ``native``, the largest logit difference on the first prompt,
how many sampled answers and questions differ, how many answer labels (rule judge) change, and
how many greedy answers differ. A setting the processor lacks is reported by torch as a
fallback (the capability column says what ran).

    OMP_NUM_THREADS=1 python bench/bench_numerics.py [--model ID] [--questions 16]
        [--settings native,default,...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

SETTINGS = {"native": {}, "avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
            "default": {"ATEN_CPU_CAPABILITY": "default"}, "2-threads": {"OMP_NUM_THREADS": "2"},
            "mkl-compatible": {"MKL_CBWR": "COMPATIBLE"}}


def run_one(model: str, n: int, seed: int, out: str) -> None:
    """Sample in this process (its kernel setting came from the environment) and write JSON."""
    import numpy as np
    import torch

    from hneurons_utils.data import load_triviaqa
    from hneurons_utils.models import load_model
    from hneurons_utils.sampling import (GREEDY, PAPER_SAMPLING, build_prompt, echo_free_rule_judge,
                                         generate_texts, row_seed)

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    m = load_model(model)
    items = load_triviaqa("train")[:n]
    prompts = [build_prompt(m.tokenizer, it.question) for it in items]
    enc = m.tokenizer(prompts[:1], return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        logits = m.hf(**enc).logits[0, -1].double().numpy()
    sampled, greedy = [], []
    for i in range(0, n, 8):
        batch = prompts[i:i + 8]
        sampled += generate_texts(m, batch, PAPER_SAMPLING, seed=seed,
                                  keys=[row_seed(seed, it.qid) for it in items[i:i + 8]])
        greedy += [g[0] for g in generate_texts(m, batch, GREEDY)]
    labels = [[echo_free_rule_judge(it.question, r, it.answers) for r in rs] for it, rs in zip(items, sampled)]
    with open(out, "w") as f:
        json.dump({"capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads(),
                   "logits": np.asarray(logits).tolist(), "sampled": sampled, "labels": labels,
                   "greedy": greedy}, f)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="SmolLM2-135M-Instruct")
    ap.add_argument("--questions", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--settings", default=",".join(SETTINGS),
                    help=f"comma-separated, 'native' first; known: {', '.join(SETTINGS)}")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.questions < 1:
        ap.error("--questions must be at least 1")
    chosen = [x.strip() for x in a.settings.split(",") if x.strip()]
    unknown = [x for x in chosen if x not in SETTINGS]
    if unknown or not chosen or chosen[0] != "native":
        ap.error(f"--settings: unknown {unknown} or 'native' not first; known: {', '.join(SETTINGS)}")
    if a.child:
        return run_one(a.model, a.questions, a.seed, a.child)

    import numpy as np

    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in chosen:
            env = SETTINGS[name]
            out = os.path.join(tmp, "run.json")
            child_env = {**os.environ, "OMP_NUM_THREADS": "1", **env}
            subprocess.run([sys.executable, __file__, "--model", a.model, "--questions", str(a.questions),
                            "--seed", str(a.seed), "--child", out], env=child_env, check=True)
            with open(out) as f:
                runs[name] = json.load(f)
    ref = runs["native"]
    print(f"{a.model}: {a.questions} TriviaQA questions x 10 keyed samples (T=1.0, top_k 50, "
          f"top_p 0.9) and 1 greedy answer, each kernel setting against 'native'")
    print(f"{'setting':<20} {'capability':<11} {'thr':>3} {'max |dlogit|':>13} {'answers differ':>15} "
          f"{'questions':>10} {'labels':>7} {'greedy':>7}")
    n_ans = sum(len(s) for s in ref["sampled"])
    for name, r in runs.items():
        dlogit = float(np.abs(np.array(r["logits"]) - np.array(ref["logits"])).max())
        diff = sum(x != y for a_, b_ in zip(r["sampled"], ref["sampled"]) for x, y in zip(a_, b_))
        qdiff = sum(a_ != b_ for a_, b_ in zip(r["sampled"], ref["sampled"]))
        ldiff = sum(x != y for a_, b_ in zip(r["labels"], ref["labels"]) for x, y in zip(a_, b_))
        gdiff = sum(x != y for x, y in zip(r["greedy"], ref["greedy"]))
        print(f"{name:<20} {r['capability']:<11} {r['threads']:>3} {dlogit:>13.2e} "
              f"{f'{diff}/{n_ans}':>15} {f'{qdiff}/{a.questions}':>10} {ldiff:>7} "
              f"{f'{gdiff}/{a.questions}':>7}")


if __name__ == "__main__":
    main()
