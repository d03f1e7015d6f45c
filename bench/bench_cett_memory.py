"""Benchmark: peak memory of CETT extraction. ``cett.cett_means`` reduces each layer to
per-neuron means as the forward pass reaches it, so its peak should stay near a plain forward
pass's and not grow as layers x tokens x neurons, which ``cett.cett_tokens`` (all layers, per
token) materialises.

Each measurement runs in a fresh process (the peak resident set size, ``ru_maxrss``, only
grows), and is reported above a process that loads the model and the batch and stops.

    OMP_NUM_THREADS=1 python bench/bench_cett_memory.py [--model ID] [--batch 32] [--tokens 128]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys

os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

MODES = ("load", "forward", "cett_means", "cett_tokens")


def child(mode: str, model_id: str, batch: int, tokens: int) -> None:
    """Load, build a [batch, tokens] batch of real text, run ``mode`` once, print peak RSS (KiB)."""
    import torch

    from hneurons_utils import cett, data, models

    torch.set_num_threads(1)
    m = models.load_model(model_id)
    qs = data.load_qa("triviaqa", split="train", limit=batch * 8, seed=0)
    text = " ".join(q.question for q in qs)
    ids = m.tokenizer(text, add_special_tokens=False)["input_ids"][: batch * tokens]
    enc = {"input_ids": torch.tensor(ids).view(batch, tokens),
           "attention_mask": torch.ones(batch, tokens, dtype=torch.long)}
    with torch.no_grad():
        if mode == "forward":  # logits of the last token only: cett_means skips the LM head too
            m.hf(**enc, logits_to_keep=1)
        elif mode == "cett_means":
            cett.cett_means(m, enc, {"all": enc["attention_mask"].bool()})
        elif mode == "cett_tokens":
            cett.cett_tokens(m, enc)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="SmolLM2-135M-Instruct")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.model, args.batch, args.tokens)
    peak = {}
    for mode in MODES:
        out = subprocess.run([sys.executable, __file__, "--child", mode, "--model", args.model,
                              "--batch", str(args.batch), "--tokens", str(args.tokens)],
                             check=True, capture_output=True, text=True).stdout
        peak[mode] = int(out.strip().splitlines()[-1]) / 1024  # MiB
    from hneurons_utils import models

    a = models.load_model(args.model).adapter
    full = a.n_layers * args.batch * args.tokens * a.n_neurons * 4 / 2**20
    print(f"model {args.model}: {a.n_layers} layers x {a.n_neurons} neurons; batch {args.batch} x "
          f"{args.tokens} tokens; peak memory above loading the model ({peak['load']:.0f} MiB):")
    for mode in MODES[1:]:
        print(f"  {mode:<12} {peak[mode] - peak['load']:8.0f} MiB")
    print(f"  (one float32 [layers, tokens, neurons] tensor of this batch: {full:.0f} MiB; target: "
          f"cett_means within 1.5x the forward pass's extra memory)")


if __name__ == "__main__":
    main()
