"""How much the CPU's arithmetic moves sampled answers (one way two machines can differ).

The book's sampled answers are seeded per question, so one machine reproduces them byte for
byte. Another machine need not: torch picks its CPU kernels by the vector instructions the
processor has (``torch.backends.cpu.get_cpu_capability()``: AVX-512, AVX2, or plain code), and
kernels that add in another order round differently. A rounding difference of 1e-6 in a
logit changes nothing until a sampled token sits at the edge between two candidates (or the
top-p cut-off); from there on the answer differs, and so may its label, the consistent
questions, the probe and its C.

This script measures that on this machine. It draws chapter 2's answers to the first
``--questions`` of chapter 2's TriviaQA questions (``data.load_qa`` with the chapter's seed)
through the chapter's own functions: the greedy screen (``pipeline.screen_greedy``) and the
paper's 10 samples (``pipeline.sample_consistency`` without screening: T = 1.0, top_k 50,
top_p 0.9, keyed per question, batched by prompt length as in the chapter), judged by the
rule judge. It does so under each kernel setting, each in a fresh process (the setting must be
made before torch starts): ``native`` (what this processor gets), ``avx2`` and ``default`` (no
vector kernels) for torch's own kernels, through ``ATEN_CPU_CAPABILITY``; the native kernels
with two threads (``2-threads``); and ``mkl-compatible``, the portable code path of the matrix
products (MKL, torch's BLAS on x86, picks its path by processor too; ``MKL_CBWR``). Each
process also computes the mean CETT of every neuron over the tokens of fixed texts (the first
8 prompts with their first gold alias appended): the features chapter 2's probe is fitted on,
on identical input. It prints, against ``native``, the largest logit difference on the first
prompt, the largest CETT difference relative to the largest feature, the share of features
stored differently (chapter 2 stores them as float16: chapter 2's rounding table shows what
moving such a share one float16 step does to the probe), how many sampled answers
and questions differ, how many answer labels change, and how many greedy answers differ. A
setting the processor lacks is reported by torch as a fallback (the capability column says
what ran).

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


def run_one(model: str, n: int, seed: int | None, out: str) -> None:
    """Answer and featurise in this process (its kernel setting came from the environment);
    write JSON to ``out``."""
    from pathlib import Path

    import numpy as np
    import torch

    from hneurons_utils import cett, data, pipeline
    from hneurons_utils.models import load_model
    from hneurons_utils.profiles import notebook_parameters
    from hneurons_utils.sampling import build_prompt

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    m = load_model(model)
    chapter = notebook_parameters(Path(__file__).resolve().parents[1] / "notebooks" / "02_identification.py")
    seed = chapter["SEED"] if seed is None else seed
    items = data.load_qa("triviaqa", "train", limit=chapter["N_SCREEN"], seed=seed)[:n]
    cfg = pipeline.IdentifyConfig(seed=seed)  # chapter 2's batches, lengths and sampling
    prompts = [build_prompt(m.tokenizer, it.question) for it in items[:8]]
    batch = cett.encode(m, [p + it.answers[0] for p, it in zip(prompts, items)],
                        add_special_tokens=False)
    with torch.no_grad():
        logits = m.hf(**cett.encode(m, prompts[:1], add_special_tokens=False)).logits[0, -1]
        feats = cett.cett_means(m, batch, {"all": batch["attention_mask"].bool()})["all"]
    with tempfile.TemporaryDirectory() as tmp:
        greedy = pipeline.screen_greedy(m, items, Path(tmp), cfg)
        sampled = pipeline.sample_consistency(m, items, None, Path(tmp), cfg)
    with open(out, "w") as f:
        json.dump({"capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads(),
                   "logits": logits.double().tolist(), "features": np.asarray(feats).tolist(),
                   "sampled": [r["responses"] for r in sampled], "labels": [r["labels"] for r in sampled],
                   "greedy": [r["responses"][0] for r in greedy]}, f)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="SmolLM2-135M-Instruct")
    ap.add_argument("--questions", type=int, default=16)
    ap.add_argument("--seed", type=int, help="default: chapter 2's SEED")
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
                            *(["--seed", str(a.seed)] if a.seed is not None else []), "--child", out],
                           env=child_env, check=True)
            with open(out) as f:
                runs[name] = json.load(f)
    ref = runs["native"]

    def stored(f: np.ndarray) -> np.ndarray:
        """Features as chapter 2 stores them."""
        return f.astype(np.float32).astype(np.float16)

    print(f"{a.model}: {a.questions} TriviaQA questions x 10 keyed samples (T=1.0, top_k 50, "
          f"top_p 0.9) and 1 greedy answer, each kernel setting against 'native'")
    ref_feats = np.array(ref["features"])
    print(f"CETT features: 8 texts x {ref_feats.shape[1]} layers x {ref_feats.shape[2]} neurons, "
          f"largest {ref_feats.max():.3g}, median {np.median(ref_feats):.3g}")
    print(f"{'setting':<16} {'capability':<11} {'thr':>3} {'max |dlogit|':>13} {'max |dCETT|/max':>16} "
          f"{'float16 differ':>15} {'answers differ':>15} "
          f"{'questions':>10} {'labels':>7} {'greedy':>7}")
    n_ans = sum(len(s) for s in ref["sampled"])
    for name, r in runs.items():
        dlogit = float(np.abs(np.array(r["logits"]) - np.array(ref["logits"])).max())
        diff = sum(x != y for a_, b_ in zip(r["sampled"], ref["sampled"]) for x, y in zip(a_, b_))
        qdiff = sum(a_ != b_ for a_, b_ in zip(r["sampled"], ref["sampled"]))
        ldiff = sum(x != y for a_, b_ in zip(r["labels"], ref["labels"]) for x, y in zip(a_, b_))
        gdiff = sum(x != y for x, y in zip(r["greedy"], ref["greedy"]))
        feats = np.array(r["features"])
        dfeat = float(np.abs(feats - ref_feats).max() / ref_feats.max())
        f16 = float(np.mean(stored(feats) != stored(ref_feats)))
        print(f"{name:<16} {r['capability']:<11} {r['threads']:>3} {dlogit:>13.2e} {dfeat:>16.2e} "
              f"{f16:>15.2e} "
              f"{f'{diff}/{n_ans}':>15} {f'{qdiff}/{a.questions}':>10} {ldiff:>7} "
              f"{f'{gdiff}/{a.questions}':>7}")


if __name__ == "__main__":
    main()
