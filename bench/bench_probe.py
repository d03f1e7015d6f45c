"""Time and memory of the probe's fit (Eq. 4), by route: ``full`` against ``working-set``.

Handed every neuron, liblinear copies each feature value three times (a float64 copy, then its
own row and column copies); ``probe.fit_memory_bytes`` estimates that at
``probe.FULL_BYTES_PER_VALUE`` bytes a value, and ``fit_probe`` refuses a full fit that would
not fit in free memory. The working set reaches the same minimiser reading the features a
block of columns at a time. This script measures both, each fit in a fresh process (its peak
resident memory, polled every 2 ms, over the memory it held just before the fit; Linux):

1. on chapter 2's own training rows and chosen C, when a build has left them
   (``--results``, default ``results/default``); otherwise this part is skipped, saying so;
2. on random CETT-like features (gamma-distributed, a few weak planted signals: timing only,
   no result of the book) of ``--rows`` rows at the widths of ``--widths`` (default: the
   default model's 30 x 1536 and a 7B model's 32 x 14336 neurons);

and prints each fit's seconds, extra memory, bytes per feature value, Eq. 4's objective and
H-Neurons, and the seconds ``probe.rows_key`` takes to digest the same rows (what a
``probe.FitCache`` adds to a fit, and all a rerun pays for a stored one), then the estimate at the paper's scale (4,000 rows: 1,000 questions per class, two
rows per response) for 7B, 8B and 70B widths.

    OMP_NUM_THREADS=1 python bench/bench_probe.py [--rows 400] [--widths 46080,458752]
        [--tol 1e-8] [--C 30] [--results results/default] [--model SmolLM2-135M-Instruct]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

def rows_of(spec: dict) -> tuple:
    """The rows, labels, C and fit settings that ``spec`` names: chapter 2's own, or random."""
    import numpy as np

    from hneurons_utils import probe as P

    if spec["source"] == "chapter":
        from hneurons_utils import features as F, pipeline as PL

        d = Path(spec["dir"])
        saved = P.Probe.load(d / "probe.json")
        X, y = PL.probe_training_rows(saved, F.load_features(d / "features_triviaqa.npz"),
                                      json.loads((d / "split.json").read_text()))
        return X, y, saved.C, P.refit_kw(saved, tol=spec["tol"])
    rng = np.random.default_rng(0)
    n, k = spec["rows"], spec["width"]
    y = np.repeat([0, 1], n // 2)
    X = np.empty((n, k), dtype=np.float32)
    for a in range(0, n, 16):  # a few rows at a time: no float64 copy of the whole matrix
        X[a:a + 16] = rng.standard_gamma(2.0, size=(min(16, n - a), k), dtype=np.float32) * 0.01
    X[:, :200] += (0.01 * y[:, None] * rng.random((n, 200))).astype(np.float32)
    return X, y, spec["C"], {"n_layers": k, "n_neurons": 1, "tol": spec["tol"]}


def child(spec: dict) -> None:
    """Fit once as ``spec`` says and print one JSON line: seconds, the fit's extra resident
    memory (polled every 2 ms, since loading the rows may have peaked higher), its result."""
    import importlib
    import os
    import resource
    import threading
    import time

    from hneurons_utils import probe as P

    importlib.import_module("sklearn.linear_model")  # before the baseline: its memory is not the fit's

    X, y, C, kw = rows_of(spec)
    page = os.sysconf("SC_PAGE_SIZE")

    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * page

    peak, done = [0], threading.Event()

    def poll() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss())
            time.sleep(0.002)

    base, before_max = rss(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    t0 = time.perf_counter()
    p = P.fit_probe(X, y, C, **dict(kw, solve=spec["solve"]))
    seconds = time.perf_counter() - t0
    done.set()
    watcher.join()
    after_max = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    extra = max(peak[0], after_max if after_max > before_max else 0) - base
    t0 = time.perf_counter()
    P.rows_key(X, y)
    digest = time.perf_counter() - t0
    print(json.dumps({"rows": int(X.shape[0]), "width": int(X.shape[1]), "C": float(C), "seconds": seconds,
                      "extra_bytes": extra, "objective": P.eq4_objective(p, X, y),
                      "h": int(p.h_neurons().size), "nonzero": int(p.flat.size),
                      "rounds": p.config.get("ws_rounds"), "ws_size": p.config.get("ws_size"),
                      "digest_seconds": digest}))


def run(spec: dict) -> dict:
    """:func:`child` in a fresh process (its memory figure is its own): its result, or its error."""
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], cwd=ROOT,
                         capture_output=True, text=True)
    if out.returncode:
        return {"error": (out.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def line(name: str, solve: str, r: dict) -> str:
    if "error" in r:
        return f"{name:<26} {solve:<12} {r['error']}"
    per = r["extra_bytes"] / (r["rows"] * r["width"])
    ws = f"  {r['rounds']} rounds, {r['ws_size']:,} columns" if r.get("rounds") else ""
    return (f"{name:<26} {solve:<12} {r['rows']:>5} x {r['width']:>9,} {r['seconds']:>8.1f} s "
            f"{r['extra_bytes'] / 2 ** 20:>9.0f} MiB {per:>6.1f} B/value  objective {r['objective']:.7g}  "
            f"{r['h']} H-Neurons ({r['nonzero']} non-zero){ws}; rows digested in {r['digest_seconds']:.2f} s")


def main() -> None:
    from hneurons_utils import probe as P
    from hneurons_utils.profiles import model_key

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=400)
    ap.add_argument("--widths", default="46080,458752")
    ap.add_argument("--tol", type=float, default=P.DEFAULT_TOL)
    ap.add_argument("--C", type=float, default=30.0)
    ap.add_argument("--results", default=str(ROOT / "results" / "default"))
    ap.add_argument("--model", default="SmolLM2-135M-Instruct")
    ap.add_argument("--child", help=argparse.SUPPRESS)  # one fit, in a fresh process (run)
    args = ap.parse_args()
    if args.child:
        return child(json.loads(args.child))
    print(f"{'rows':<26} {'route':<12} {'rows x neurons':>17} {'fit':>10} {'extra memory':>13} "
          f"{'':>13}  (tolerance {args.tol:g})")
    d = Path(args.results) / model_key(args.model) / "identification"
    if all((d / f).exists() for f in ("probe.json", "features_triviaqa.npz", "split.json")):
        for solve in P.SOLVES:
            print(line("chapter 2's training rows", solve,
                       run({"source": "chapter", "dir": str(d), "tol": args.tol, "solve": solve})), flush=True)
    else:
        print(f"chapter 2's training rows: none under {d} (build chapter 2 first; skipped)")
    for width in (int(w) for w in args.widths.split(",")):
        for solve in P.SOLVES:
            spec = {"source": "random", "rows": args.rows, "width": width, "C": args.C, "tol": args.tol,
                    "solve": solve}
            print(line("random CETT-like rows", solve, run(spec)), flush=True)
    print(f"\nEstimated extra memory at the paper's scale (4,000 rows; full: "
          f"{P.FULL_BYTES_PER_VALUE} bytes a value, probe.fit_memory_bytes):")
    for name, width in (("7B/8B (32 x 14,336)", 32 * 14336), ("70B (80 x 28,672)", 80 * 28672)):
        print(f"  {name:<22} full {P.fit_memory_bytes(4000, width) / 2 ** 30:7.1f} GiB   working-set "
              f"{P.fit_memory_bytes(4000, width, 'working-set') / 2 ** 30:5.1f} GiB   (the float16 "
              f"features themselves: {4000 * width * 2 / 2 ** 30:.1f} GiB)")


if __name__ == "__main__":
    main()
