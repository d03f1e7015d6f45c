"""GPU check: the CUDA code paths against the CPU, and their speed at a real model's shape.

    python bench/gpu_check.py [--device cuda] [--shape llama-7b] [--dtype bfloat16] [--out DIR]

Needs no download: every model is built in code with random weights.

Part 1 (correctness; the tests' tiny Llama and GPT-2, float32): on ``--device`` against the
CPU, CETT means over two token masks; the four steering methods (weight edit, forward hook,
nnsight, per-row factors) giving the unsteered greedy tokens at alpha = 1 and the weight
edit's tokens at alpha = 0 and 3; keyed sampling (``sampling.KeyedSampler``) drawing a row's
sample from its key alone (alone vs inside a wide call, and two rows sharing a key), and its
token frequencies against the model's own probabilities beside ``generate``'s sampler on the
same draws; a ``device_map="auto"`` load of a saved model giving the same CETT.

Part 2 (speed and memory; random weights of ``--shape``, in ``--dtype``): CETT means against a
plain forward pass (target at most 1.3x, as on the CPU), the peak memory of each above the
weights, steering overhead during greedy generation for each method, and keyed against plain
sampling. Times are the best of ``--repeats`` after a warm-up, with the device synchronised.

Exits 1 if a correctness check fails; prints every figure and writes them to
``--out/gpu_check.json``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tests' tiny models
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_cett's timer

import numpy as np
import torch

from bench_cett import best_of, cett_calls
from hneurons_utils import cett, models, steering
from hneurons_utils.probe import NeuronSet
from hneurons_utils.sampling import GenConfig, row_seed

# Shapes of real models (random weights): layers, d_model, FFN neurons, heads, KV heads, vocab.
SHAPES = {
    "smollm2-135m": (30, 576, 1536, 9, 3, 49152),
    "llama-7b": (32, 4096, 11008, 32, 32, 32000),
    "llama3-8b": (32, 4096, 14336, 32, 8, 128256),
    "mistral-7b": (32, 4096, 14336, 32, 8, 32768),
}

results: dict = {"checks": [], "speed": []}
failed: list[str] = []


def check(name: str, ok: bool, detail: str = "") -> None:
    results["checks"].append({"check": name, "ok": bool(ok), "detail": detail})
    print(f"[{'ok' if ok else 'FAIL'}] {name}{': ' + detail if detail else ''}", flush=True)
    if not ok:
        failed.append(name)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rel_error(got: torch.Tensor, want: torch.Tensor) -> float:
    """The largest ``|got - want|`` relative to ``|want|``, floored at a thousandth of the
    largest ``|want|`` (a value near zero has no meaningful relative error)."""
    floor = 1e-3 * float(want.abs().max())
    return float(((got - want).abs() / want.abs().clamp_min(floor)).max())


def random_set(m: models.LoadedModel, k: int, seed: int) -> NeuronSet:
    a = m.adapter
    flat = np.random.default_rng(seed).choice(a.n_layers * a.n_neurons, size=k, replace=False)
    return NeuronSet.from_flat(flat, a.n_layers, a.n_neurons)


def word_prompts(n: int, vocab: int, seed: int, lo: int = 3, hi: int = 12) -> list[str]:
    """Prompts of random words ``w<i>`` of the tests' word-level tokenizer, of varied length
    (so the batch is padded)."""
    rng = np.random.default_rng(seed)
    return [" ".join(f"w{i}" for i in rng.integers(0, vocab - 3, rng.integers(lo, hi)))
            for _ in range(n)]


# ---------------------------------------------------------------- part 1: correctness

def part1(device: torch.device) -> None:
    from conftest import tiny_gpt2, tiny_llama, tiny_tokenizer

    prompts = word_prompts(6, 100, 0)
    for fam, build in (("llama", tiny_llama), ("gpt2", tiny_gpt2)):
        cpu = models.wrap_model(build(), tiny_tokenizer(), name=f"tiny-{fam}")
        dev = models.wrap_model(build().to(device), tiny_tokenizer(), name=f"tiny-{fam}")
        batch = cett.encode(cpu, prompts)
        real = batch["attention_mask"].bool()
        masks = {"last3": real & (torch.arange(real.shape[1]) >= real.shape[1] - 3), "all": real}
        want = cett.cett_means(cpu, batch, masks)
        got = cett.cett_means(dev, batch, masks)
        err = max(rel_error(got[k], want[k]) for k in masks)
        check(f"{fam}: CETT means on {device} equal the CPU's", err < 1e-4, f"max relative error {err:.1e}")

        h = random_set(dev, 12, 1)
        enc = cett.encode(dev, prompts, add_special_tokens=False)
        cfg = GenConfig(do_sample=False, top_k=0, top_p=1.0, max_new_tokens=8, stop_at_newline=False)
        plain = steering.generate_ids_scaled(dev, enc, cfg, None, 1.0)
        cpu_plain = steering.generate_ids_scaled(cpu, enc, cfg, None, 1.0)
        check(f"{fam}: greedy tokens on {device} equal the CPU's", torch.equal(plain, cpu_plain))
        for alpha in (1.0, 0.0, 3.0):
            ref = steering.generate_ids_scaled(dev, enc, cfg, h, alpha, method="weights")
            same = {meth: torch.equal(steering.generate_ids_scaled(dev, enc, cfg, h, alpha, method=meth), ref)
                    for meth in ("hook", "nnsight")}
            rows_txt = steering.generate_rows(dev, prompts, cfg, [(h, alpha)] * len(prompts))
            ref_txt = dev.tokenizer.batch_decode(ref[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
            same["rows"] = rows_txt == ref_txt
            if alpha == 1.0:
                same["unsteered"] = torch.equal(ref, plain)
            check(f"{fam}: steering methods agree at alpha {alpha:g} on {device}", all(same.values()),
                  ", ".join(f"{k} {'same' if v else 'DIFFERENT'}" for k, v in same.items()))
            logits = {meth: steering.logits_scaled(dev, enc, h, alpha, meth) for meth in steering.METHODS}
            real_pos = enc["attention_mask"].bool()
            dl = max(float((logits[meth] - logits["hook"])[real_pos].abs().max()) for meth in logits)
            check(f"{fam}: steered logits agree at alpha {alpha:g} on {device}", dl < 1e-4,
                  f"max difference {dl:.1e}")

        # keyed sampling: a row's sample depends on its key, not on the rows around it
        sample = GenConfig(temperature=0.7, top_k=20, top_p=0.8, max_new_tokens=12, stop_at_newline=False)
        keys = [row_seed("gpu-check", fam, i) for i in range(len(prompts))]
        alone = steering.generate_rows(dev, prompts[:2], sample, [(h, 3.0)] * 2, keys=keys[:2])
        wide = steering.generate_rows(dev, prompts, sample, [(h, 3.0)] * 2 + [(None, 1.0)] * 4, keys=keys)
        same_alone = sum(a == b for a, b in zip(alone, wide[:2]))
        twins = steering.generate_rows(dev, [prompts[0]] * 2, sample, [(None, 1.0)] * 2, keys=[keys[0]] * 2)
        check(f"{fam}: keyed samples on {device} do not depend on the other rows",
              same_alone == 2 and twins[0] == twins[1],
              f"alone vs wide {same_alone}/2 identical; two rows with one key {'agree' if twins[0] == twins[1] else 'DIFFER'}")

        # keyed sampling's token frequencies against the model's probabilities (one step)
        n = 8192
        free = GenConfig(temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=1, stop_at_newline=False)
        one = cett.encode(dev, [prompts[0]], add_special_tokens=False)
        with torch.no_grad():
            p = dev.hf(**cett.on_device(dev, one)).logits[0, -1].float().softmax(-1).cpu()
        rep = {"input_ids": one["input_ids"].repeat(n, 1), "attention_mask": one["attention_mask"].repeat(n, 1)}
        start = rep["input_ids"].shape[1]
        keyed = steering.generate_ids_scaled(dev, rep, free, None, 1.0,
                                             keys=[row_seed("freq", fam, i) for i in range(n)])[:, start]
        torch_s = steering.generate_ids_scaled(dev, rep, free, None, 1.0, seed=0)[:, start]
        tv = {name: 0.5 * float((torch.bincount(t, minlength=p.numel()).float() / n - p).abs().sum())
              for name, t in (("keyed", keyed), ("generate", torch_s))}
        check(f"{fam}: keyed sampling on {device} matches the model's probabilities",
              tv["keyed"] < max(2 * tv["generate"], 0.05),
              f"total variation to p over {n} draws: keyed {tv['keyed']:.3f}, generate's sampler {tv['generate']:.3f}")

    # chapter 2's sampling path: the n samples of a prompt share one prefill (sampling.generate_texts)
    from hneurons_utils.sampling import generate_texts

    dev = models.wrap_model(tiny_llama().to(device), tiny_tokenizer(), name="tiny-llama")
    cfg = GenConfig(num_return_sequences=4, max_new_tokens=6, stop_at_newline=False)
    shared = generate_texts(dev, prompts[:3], cfg, seed=3)
    enc = cett.encode(dev, prompts[:3], add_special_tokens=False)
    torch.manual_seed(3)
    with torch.no_grad():
        out = dev.hf.generate(**cett.on_device(dev, enc), max_new_tokens=6, do_sample=True,
                              temperature=1.0, top_k=50, top_p=0.9, num_return_sequences=4, pad_token_id=0)
    plain = dev.tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    check(f"shared-prefill sampling on {device} gives generate's own samples",
          [t for row in shared for t in row] == [t.strip() for t in plain])

    # chapter 5's offline twin: a few tuning steps on the device against the CPU
    from hneurons_utils import finetune as ft

    tok = ft.set_chat_template(tiny_tokenizer())
    exs = [ft.sft_example(tok, f"q{i}", f"w{i + 3} w{i + 20}", f"w{i + 40}", None) for i in range(12)]
    sft = ft.SFTConfig(steps=6, batch_size=4, lr=1e-3)
    losses = {str(d): ft.train_sft(tiny_llama().to(d), exs, sft, tok.pad_token_id, log=None)
              for d in (torch.device("cpu"), device)}
    a, b = np.array(losses["cpu"]), np.array(losses[str(device)])
    err = float(np.abs(a - b).max() / np.abs(a).max())
    check(f"instruction tuning on {device} follows the CPU's losses", err < 1e-3,
          f"6 steps, largest difference {err:.1e} of the loss")

    # device_map="auto": a saved model loads sharded over the visible GPUs, same CETT
    with tempfile.TemporaryDirectory() as tmp:
        tiny_llama().save_pretrained(f"{tmp}/m")
        tiny_tokenizer().save_pretrained(f"{tmp}/m")
        whole = models.load_model(f"{tmp}/m")
        sharded = models.load_model(f"{tmp}/m", device="auto")
        where = sorted({str(p.device) for p in sharded.hf.parameters()})
        batch = cett.encode(whole, prompts)
        mask = {"all": batch["attention_mask"].bool()}
        a, b = cett.cett_means(whole, batch, mask)["all"], cett.cett_means(sharded, batch, mask)["all"]
        err = rel_error(b, a)
        check('DEVICE "auto" (device_map) gives the CPU\'s CETT', err < 1e-4,
              f"weights on {', '.join(where)}; max relative error {err:.1e}")


# ---------------------------------------------------------------- part 2: speed and memory

def build_shape(shape: str, dtype: torch.dtype, device: torch.device) -> models.LoadedModel:
    from conftest import tiny_tokenizer
    from transformers import LlamaConfig, LlamaForCausalLM

    layers, d, n, heads, kv, vocab = SHAPES[shape]
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=d, intermediate_size=n, num_hidden_layers=layers,
                      num_attention_heads=heads, num_key_value_heads=kv, pad_token_id=0,
                      eos_token_id=1, bos_token_id=1, max_position_embeddings=4096)
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            hf = LlamaForCausalLM(cfg).eval()
    finally:
        torch.set_default_dtype(default)
    return models.wrap_model(hf, tiny_tokenizer(vocab), name=f"random-{shape}")


def part2(device: torch.device, shape: str, dtype: torch.dtype, batch_size: int, tokens: int,
          new_tokens: int, repeats: int) -> dict:
    def wait() -> None:
        sync(device)

    t0 = time.perf_counter()
    m = build_shape(shape, dtype, device)
    wait()
    n_params = sum(p.numel() for p in m.hf.parameters())
    a = m.adapter
    print(f"\n{shape}: {a.n_layers} layers x {a.n_neurons} neurons, {n_params / 1e9:.2f}B parameters "
          f"in {dtype} on {device} (random weights, built in {time.perf_counter() - t0:.0f} s)", flush=True)
    tm = dict(shape=shape, dtype=str(dtype), device=str(device), params=n_params,
              batch=batch_size, tokens=tokens, new_tokens=new_tokens)

    vocab = SHAPES[shape][5]
    rng = torch.Generator().manual_seed(0)
    ids = torch.randint(3, vocab, (batch_size, tokens), generator=rng)
    mask = torch.ones_like(ids)
    for r in range(batch_size):  # left padding of varied length, as in a real batch
        mask[r, : int(torch.randint(0, tokens // 4, (1,), generator=rng))] = 0
    ids = ids.masked_fill(mask == 0, 0)
    batch = {"input_ids": ids, "attention_mask": mask}  # on the CPU, as the pipeline passes it
    real = mask.bool()
    masks = {"answer": real & (torch.arange(tokens) >= tokens - 8), "other": real & (torch.arange(tokens) < tokens - 8)}
    forward, trace_only, means = cett_calls(m, batch, masks, cett.column_norms(m))
    t_fwd = best_of(forward, repeats, wait)
    t_trace = best_of(trace_only, repeats, wait)
    t_cett = best_of(means, repeats, wait)
    tm.update(forward_s=t_fwd, trace_s=t_trace, cett_means_s=t_cett, cett_ratio=t_cett / t_fwd)
    print(f"plain forward pass ({batch_size} x {tokens} tokens)  {t_fwd * 1e3:8.1f} ms")
    print(f"empty nnsight trace                  {t_trace * 1e3:8.1f} ms  ({t_trace / t_fwd:.2f}x forward)")
    print(f"CETT means, 2 masks, all layers      {t_cett * 1e3:8.1f} ms  ({t_cett / t_fwd:.2f}x forward; target <= 1.30x)")
    if device.type == "cuda":
        for name, fn in (("forward", forward), ("cett_means", means)):
            gc.collect()  # nothing of an earlier call may be freed inside this one
            torch.cuda.empty_cache()
            base = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
            fn()
            sync(device)
            tm[f"peak_above_weights_{name}_mib"] = (torch.cuda.max_memory_allocated(device) - base) / 2**20
        print(f"peak memory above the weights: forward {tm['peak_above_weights_forward_mib']:.0f} MiB, "
              f"CETT means {tm['peak_above_weights_cett_means_mib']:.0f} MiB")

    # steering overhead in greedy generation (no EOS in random weights: every row runs to new_tokens)
    prompts = word_prompts(batch_size, vocab, 1, 8, 40)
    enc = cett.encode(m, prompts, add_special_tokens=False)
    cfg = GenConfig(do_sample=False, top_k=0, top_p=1.0, max_new_tokens=new_tokens, stop_at_newline=False)
    h = random_set(m, max(1, a.n_layers * a.n_neurons // 10000), 2)  # about 0.1 per mille
    out: dict[str, torch.Tensor] = {}

    def run(name, fn):
        t = best_of(lambda: out.__setitem__(name, fn()), repeats, wait)
        tm[f"generate_{name}_s"] = t
        return t

    t_plain = run("plain", lambda: steering.generate_ids_scaled(m, enc, cfg, None, 1.0))
    print(f"greedy generate, {batch_size} prompts x {new_tokens} tokens  {t_plain:7.2f} s")
    for meth in steering.METHODS:
        t = run(meth, lambda meth=meth: steering.generate_ids_scaled(m, enc, cfg, h, 1.0, method=meth))
        print(f"  {meth:8s} at alpha 1 ({h.size} neurons)  {t:7.2f} s  ({100 * (t / t_plain - 1):+.0f}%; "
              f"tokens {'same' if torch.equal(out[meth], out['plain']) else 'DIFFERENT'})")
    t = run("rows", lambda: steering.generate_rows(m, prompts, cfg, [(h, 1.0)] * len(prompts)))
    plain_txt = m.tokenizer.batch_decode(out["plain"][:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    print(f"  rows     at alpha 1 ({h.size} neurons)  {t:7.2f} s  ({100 * (t / t_plain - 1):+.0f}%; "
          f"tokens {'same' if out['rows'] == plain_txt else 'DIFFERENT'})")

    # keyed sampling against generate's own sampler (chapter 4's sampled replies)
    sample = GenConfig(temperature=0.7, top_k=20, top_p=0.8, max_new_tokens=new_tokens, stop_at_newline=False)
    keys = [row_seed("bench", i) for i in range(batch_size)]
    t_s = run("sampled", lambda: steering.generate_ids_scaled(m, enc, sample, None, 1.0, seed=0))
    t_k = run("keyed", lambda: steering.generate_ids_scaled(m, enc, sample, None, 1.0, keys=keys))
    print(f"sampled generate {t_s:7.2f} s; keyed sampling {t_k:7.2f} s ({100 * (t_k / t_s - 1):+.0f}%)")
    alone = steering.generate_ids_scaled(m, {k: v[:2] for k, v in enc.items()}, sample, None, 1.0, keys=keys[:2])
    wide = out["keyed"][:2, -new_tokens:]
    same = sum(torch.equal(x, y) for x, y in zip(alone[:, -new_tokens:], wide))
    tm["keyed_alone_vs_wide_identical"] = f"{same}/2"
    print(f"keyed samples of 2 rows generated alone vs in the batch of {batch_size}: {same}/2 identical "
          f"({dtype}: a differently shaped batch may round differently)")
    return tm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--shape", default="llama-7b",
                    help=f"comma-separated shapes for part 2, of {sorted(SHAPES)}")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--out", default=".")
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit(f"--device {args.device}, but torch {torch.__version__} sees no CUDA GPU")
    import transformers
    import nnsight
    results["versions"] = {"torch": torch.__version__, "transformers": transformers.__version__,
                           "nnsight": nnsight.__version__,
                           "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None}
    print(json.dumps(results["versions"]), flush=True)
    shapes = [x for x in args.shape.split(",") if x]
    unknown = [x for x in shapes if x not in SHAPES]
    if unknown:
        sys.exit(f"unknown --shape {unknown}; choose from {sorted(SHAPES)}")
    part1(device)
    for shape in [] if args.skip_speed else shapes:
        results["speed"].append(part2(device, shape, getattr(torch, args.dtype), args.batch,
                                      args.tokens, args.new_tokens, args.repeats))
        if device.type == "cuda":
            torch.cuda.empty_cache()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    Path(args.out, "gpu_check.json").write_text(json.dumps(results, indent=1, default=str))
    print(f"\n{len(results['checks']) - len(failed)} of {len(results['checks'])} checks passed"
          + (f"; FAILED: {failed}" if failed else ""))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
