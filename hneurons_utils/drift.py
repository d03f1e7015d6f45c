"""Parameter drift of each FFN neuron between base and instruct model (paper Section 4, Figure 4b).

For FFN neuron j, ``drift_up = 1 - cos(W_up[j, :] base, W_up[j, :] instruct)`` and
``drift_down = 1 - cos(W_down[:, j] base, W_down[:, j] instruct)``, each z-scored over all
neurons and averaged (Section 6.3.2); neurons are ranked by that score and the ranks normalised
to [0, 1] with the paper's convention (0 = changed most, 1 = changed least), so H-Neurons
inherited from pre-training sit at high ranks. The weights are read straight from the two
models' safetensors folders (sharded or not), one tensor pair at a time, so at most one FFN
matrix of each model is in memory; the tests, the verdict and Figure 4b's histogram follow.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from .checks import positive_int
from .models import ffn_adapter, fused_part
from .wording import noun, p_value


class SafetensorsFolder:
    """Read single tensors from a (possibly sharded) safetensors checkpoint folder.

    ``reads`` counts the tensors read, so a test can check that drift is streamed.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        index = self.folder / "model.safetensors.index.json"
        if index.is_file():
            self.files = {k: self.folder / v for k, v in json.loads(index.read_text())["weight_map"].items()}
        elif (self.folder / "model.safetensors").is_file():
            from safetensors import safe_open

            with safe_open(str(self.folder / "model.safetensors"), "pt") as f:
                self.files = {k: self.folder / "model.safetensors" for k in f.keys()}
        else:
            raise FileNotFoundError(f"{self.folder}: no model.safetensors or "
                                    "model.safetensors.index.json; is this a model folder?")
        self.reads = 0

    def resolve(self, name: str) -> str:
        """The checkpoint key of module weight ``name``: the name itself, or the one key ending in
        its ``layers.<i>...`` part (checkpoints of multimodal models nest the text model
        differently from the loaded module tree)."""
        if name in self.files:
            return name
        tail = name[name.rfind("layers."):] if "layers." in name else name
        found = [k for k in self.files if k.endswith("." + tail)]
        if len(found) != 1:
            near = [k for k in self.files if k.split(".")[-2:] == name.split(".")[-2:]][:3]
            raise KeyError(f"{self.folder}: {len(found)} tensors match {name!r} "
                           f"(tensors with a similar name: {near})")
        return found[0]

    def get(self, name: str) -> torch.Tensor:
        """One tensor, read from disk (float32 on the CPU)."""
        from safetensors import safe_open

        name = self.resolve(name)
        with safe_open(str(self.files[name]), "pt") as f:
            self.reads += 1
            return f.get_tensor(name).float()


def ffn_tensor_names(folder: str | Path) -> tuple[list[dict[str, tuple[str, int | None]]], bool]:
    """Checkpoint names of each layer's FFN weights, found through the architecture adapter.

    The model is built on the meta device (no weights), so :func:`models.ffn_adapter` resolves
    the module paths without loading anything. Returns ``([{"up", "down"[, "gate"]: (tensor
    name, fused)} per layer], down_transposed)``; ``fused`` is True where the tensor is a fused
    gate/up weight and this part one half of it (:func:`models.fused_part`).
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder))
    ad = ffn_adapter(model)
    names = []
    for i in range(ad.n_layers):
        prefix = f"{ad.layers_path}.{i}."
        fused = ad.fused_gate_up
        layer = {"up": (prefix + ad.up_path + ".weight", fused),
                 "down": (prefix + ad.down_path + ".weight", False)}
        if ad.gate_path:
            layer["gate"] = (prefix + ad.gate_path + ".weight", fused)
        names.append(layer)
    return names, ad.down_transposed


def _part(t: torch.Tensor, kind: str, fused: bool) -> torch.Tensor:
    """``t`` itself, or the ``kind`` ("gate"/"up") half of a fused gate/up weight."""
    return fused_part(t, kind == "gate") if fused else t


def cosine_drift(base: torch.Tensor, tuned: torch.Tensor, dim: int) -> np.ndarray:
    """``1 - cos`` between matching slices of two weight matrices, reducing over ``dim``.

    Computed as ``||a/|a| - b/|b|||^2 / 2`` in float64, which equals ``1 - cos(a, b)`` and keeps
    its precision when the vectors are nearly parallel (small fine-tuning updates). The cosine
    of an all-zero slice is undefined: such neurons get ``NaN`` (never a made-up 0 or 0.5), and
    :func:`parameter_drift` refuses tables that hold any.
    """
    if base.shape != tuned.shape:
        raise ValueError(f"weight shapes differ: base {tuple(base.shape)} vs tuned {tuple(tuned.shape)}")
    a, b = base.double(), tuned.double()
    na, nb = a.norm(dim=dim, keepdim=True), b.norm(dim=dim, keepdim=True)
    d = 0.5 * (a / na - b / nb).pow(2).sum(dim=dim)
    zero = (na == 0).squeeze(dim) | (nb == 0).squeeze(dim)
    return torch.where(zero, torch.full_like(d, float("nan")), d).numpy()


def _neuron_axis_reduced(kind: str, transposed: bool) -> int:
    """The axis to reduce so one value per neuron remains (rows of W_up, columns of W_down)."""
    reduce_rows = kind == "down"  # nn.Linear: W_down [d_model, N] -> reduce dim 0
    return (1 if reduce_rows else 0) if transposed else (0 if reduce_rows else 1)


def iter_layer_drift(base_folder: str | Path, tuned_folder: str | Path, with_norms: bool = False
                     ) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """``(layer, {"up", "down"[, "gate"]: drift [N]})`` one layer at a time, streamed from disk.

    Only one tensor of each model is in memory at any moment. Raises ``ValueError`` when the
    two checkpoints are not a matched pair (different layer count, FFN parts or shapes).
    ``with_norms``: also ``"norm_up"``, ``"norm_down"``[, ``"norm_gate"``]: the L2 norm of each
    neuron's weight slice in the *tuned* model (``||W_up[j, :]||``, ``||W_down[:, j]||``), read
    in the same pass.
    """
    names, transposed = ffn_tensor_names(base_folder)
    tuned_names, tuned_transposed = ffn_tensor_names(tuned_folder)
    if len(names) != len(tuned_names) or transposed != tuned_transposed or \
            [sorted(n) for n in names] != [sorted(n) for n in tuned_names]:
        raise ValueError(f"not a matched pair: {base_folder} has {len(names)} layers with FFN parts "
                         f"{sorted(names[0]) if names else []}, {tuned_folder} has {len(tuned_names)} "
                         f"with {sorted(tuned_names[0]) if tuned_names else []}")
    base, tuned = SafetensorsFolder(base_folder), SafetensorsFolder(tuned_folder)
    for layer, parts in enumerate(names):
        by_tensor: dict[str, list[str]] = {}  # a fused gate/up tensor is read once for both parts
        for kind, (name, _) in parts.items():
            by_tensor.setdefault(name, []).append(kind)
        out = {}
        for name, kinds in by_tensor.items():
            b_all, t_all = base.get(name), tuned.get(tuned_names[layer][kinds[0]][0])
            for kind in kinds:
                b = _part(b_all, kind, parts[kind][1])
                t = _part(t_all, kind, tuned_names[layer][kind][1])
                if b.shape != t.shape:
                    raise ValueError(f"not a matched pair: layer {layer} {kind} weight is "
                                     f"{tuple(b.shape)} in {base_folder}, {tuple(t.shape)} in {tuned_folder}")
                out[kind] = cosine_drift(b, t, _neuron_axis_reduced(kind, transposed))
                if with_norms:
                    out[f"norm_{kind}"] = t.double().norm(dim=_neuron_axis_reduced(kind, transposed)).numpy()
            del b_all, t_all, b, t
        yield layer, out


def parameter_drift(base_folder: str | Path, tuned_folder: str | Path,
                    log: Callable[[str], None] | None = None) -> dict[str, np.ndarray]:
    """Raw drift of every FFN neuron: ``{"up", "down"[, "gate"]: [layers, neurons]}`` (Sec. 6.3.2).

    Reads the two safetensors folders (sharded or not) one tensor pair at a time. Raises
    ``ValueError`` naming the count when some neuron has an all-zero weight slice in either
    model (its cosine, hence its drift, is undefined).
    """
    return _drift_tables(base_folder, tuned_folder, log, with_norms=False)[0]


def parameter_drift_with_norms(base_folder: str | Path, tuned_folder: str | Path,
                               log: Callable[[str], None] | None = None
                               ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """:func:`parameter_drift` and, from the same streamed pass, the tuned (instruct) model's
    per-neuron weight norms ``{"up", "down"[, "gate"]: [layers, neurons]}`` (not in the paper):
    ``1 - cos`` of a small update scales like ``||dw_perp||^2 / ||w||^2``, so a neuron with
    large weights can rank as "changed less" for that reason alone (:func:`neuron_weight_norm`,
    the ``norm`` of :func:`drift_tests`)."""
    return _drift_tables(base_folder, tuned_folder, log, with_norms=True)


def neuron_weight_norm(norms: dict[str, np.ndarray]) -> np.ndarray:
    """One weight size per neuron ``[L, N]``: ``||W_up[j, :]|| * ||W_down[:, j]||`` (how strongly
    the neuron reads and writes; the gate is left out, as in the paper's drift)."""
    return np.asarray(norms["up"], dtype=np.float64) * np.asarray(norms["down"], dtype=np.float64)


def _drift_tables(base_folder: str | Path, tuned_folder: str | Path,
                  log: Callable[[str], None] | None, with_norms: bool
                  ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    rows: dict[str, list[np.ndarray]] = {}
    for layer, parts in iter_layer_drift(base_folder, tuned_folder, with_norms):
        for kind, values in parts.items():
            rows.setdefault(kind, []).append(values)
        if log:
            log(f"drift: layer {layer + 1} done")
    norms = {k[len("norm_"):]: np.stack(v) for k, v in rows.items() if k.startswith("norm_")}
    out = {k: np.stack(v) for k, v in rows.items() if not k.startswith("norm_")}
    bad = {k: int(np.isnan(v).sum()) for k, v in out.items() if np.isnan(v).any()}
    if bad:
        where = {k: sorted({int(i) for i in np.argwhere(np.isnan(v))[:, 0]})[:5] for k, v in out.items() if k in bad}
        raise ValueError(f"drift undefined for neurons with an all-zero weight slice: {bad} "
                         f"(layers {where}); a pruned or dead neuron has no direction to compare")
    if out and all(np.all(v == 0) for v in out.values()):
        raise ValueError(f"{base_folder} and {tuned_folder} have identical FFN weights (every "
                         "neuron's drift is 0): the base and the instruct model must differ "
                         "(is BASE_MODEL_ID the same as INSTRUCT_MODEL_ID?)")
    return out, norms


def zscore(x: np.ndarray) -> np.ndarray:
    """``(x - mean) / std`` over all entries; a constant array gives zeros. NaN or inf entries
    are refused (one would turn the whole array into zeros or NaN)."""
    x = np.asarray(x, dtype=np.float64)
    bad = int((~np.isfinite(x)).sum())
    if bad:
        raise ValueError(f"z-score of an array with {bad} NaN or infinite entries of {x.size}")
    sd = x.std()
    return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x, dtype=np.float64)


def drift_score(raw: dict[str, np.ndarray], parts: tuple[str, ...] = ("up", "down")) -> np.ndarray:
    """The paper's combined drift: the mean of each part's z-score over all neurons ``[L, N]``.

    ``parts=("up", "down")`` is the paper's definition; add ``"gate"`` for gated MLPs.
    """
    missing = [p for p in parts if p not in raw]
    if missing:
        raise KeyError(f"no raw drift for {missing}; available: {sorted(raw)}")
    return np.mean([zscore(raw[p].astype(np.float64)) for p in parts], axis=0)


def normalized_rank(score: np.ndarray) -> np.ndarray:
    """Rank of each neuron by drift, scaled to [0, 1]: 0 = largest drift, 1 = smallest.

    The paper's convention (Figure 4b: "smaller normalized rank means larger change"); ties
    share their average rank.
    """
    from scipy.stats import rankdata

    flat = np.asarray(score, dtype=np.float64).ravel()
    if flat.size < 2:
        raise ValueError("ranking needs at least two neurons")
    ascending = rankdata(flat)  # 1 = smallest drift
    return ((flat.size - ascending) / (flat.size - 1)).reshape(np.shape(score))


def _flat_mask(neurons: Any, shape: tuple[int, int]) -> np.ndarray:
    """Boolean ``[L * N]`` mask of a :class:`probe.NeuronSet` (shape checked against ``shape``)."""
    if (neurons.n_layers, neurons.n_neurons) != tuple(shape):
        raise ValueError(f"neuron set is for {neurons.n_layers} x {neurons.n_neurons} neurons, "
                         f"the drift table is {shape[0]} x {shape[1]}: different models?")
    mask = np.zeros(shape[0] * shape[1], dtype=bool)
    mask[neurons.flat] = True
    return mask


MIN_FOR_INTERVAL = 5  # fewer H-Neurons: their ranks are listed, with no bootstrap interval
MIN_FOR_HISTOGRAM = 10  # fewer: Figure 4b marks each rank instead of a density histogram


NORM_WINDOW = 10  # norm-matched control: each H-Neuron's partner is drawn among this many neurons


def _left_out(neurons: Any, exclude: Any) -> set[int]:
    """Flat indices no norm-matched partner may be: ``neurons`` themselves and ``exclude`` (a
    ``NeuronSet`` or flat indices, :func:`probe.flat_set`)."""
    from .probe import flat_set

    return (set(flat_set(exclude, neurons.n_layers, neurons.n_neurons).tolist())
            | set(np.asarray(neurons.flat).tolist()))


def norm_matched_sets(neurons: Any, norm: np.ndarray, n_sets: int, seed: int = 0,
                      exclude: Any = None, window: int = NORM_WINDOW) -> np.ndarray:
    """``n_sets`` random neuron sets matched to ``neurons`` by layer and weight norm, as flat
    indices ``[n_sets, k]`` (not in the paper).

    For each neuron of ``neurons`` (a ``NeuronSet``), its partner in every set is drawn from the
    ``window`` neurons of the same layer whose ``norm`` (``[L, N]``, e.g.
    :func:`neuron_weight_norm`) is closest to its own on a log scale, leaving out ``neurons``
    themselves and every neuron of ``exclude`` (a ``NeuronSet`` or flat indices: e.g. all the
    probe's non-zero weights); no neuron is drawn twice within one set.
    """
    positive_int(window, "window")
    norm = np.asarray(norm, dtype=np.float64)
    if norm.shape != (neurons.n_layers, neurons.n_neurons):
        raise ValueError(f"norm is {norm.shape}, the neuron set {neurons.n_layers} x {neurons.n_neurons}")
    if not (np.isfinite(norm).all() and (norm > 0).all()):
        raise ValueError("weight norms must be finite and positive")
    N = neurons.n_neurons
    out_flat = _left_out(neurons, exclude)
    log = np.log(norm)
    windows = []
    for layer, j in zip(np.asarray(neurons.layers), np.asarray(neurons.neurons)):
        free = np.setdiff1d(np.arange(N), [f - layer * N for f in out_flat if f // N == layer])
        if len(free) < window:
            raise ValueError(f"layer {layer}: only {len(free)} neurons outside the excluded ones "
                             f"for a window of {window}")
        near = free[np.argsort(np.abs(log[layer, free] - log[layer, j]), kind="stable")[:window]]
        windows.append(layer * N + near)
    rng = np.random.default_rng(seed)
    sets = np.empty((n_sets, len(windows)), dtype=np.int64)
    for s in range(n_sets):
        taken: set[int] = set()
        for i, w in enumerate(windows):
            left = [int(v) for v in w if int(v) not in taken]
            pick = left[rng.integers(len(left))] if left else int(w[rng.integers(len(w))])
            sets[s, i] = pick
            taken.add(pick)
    return sets


def drift_tests(score: np.ndarray, neurons: Any, n_random: int = 1000, seed: int = 0,
                n_boot: int = 1000, norm: np.ndarray | None = None, exclude: Any = None,
                window: int = NORM_WINDOW) -> dict:
    """Did the H-Neurons change less than other neurons? (Section 4, Figure 4b.)

    ``score``: combined drift ``[L, N]``; ``neurons``: the H-Neurons (a ``NeuronSet``).
    Returns the H-Neurons' normalised ranks (``ranks``) and their mean with a bootstrap
    interval (``mean_rank_ci``; None under ``MIN_FOR_INTERVAL`` neurons, where a bootstrap of
    so few values only spans their own range); the paper's
    one-sided Welch t-test (H-Neurons' drift smaller than the others') and a one-sided
    Mann-Whitney U test; and the mean rank of ``n_random`` random sets of as many neurons,
    drawn uniformly and drawn with the same count per layer (drift differs between layers, so
    the layer-matched draw separates "these neurons" from "these layers"), each with empirical
    one-sided p-values: ``p_value`` for "changed less" (random sets ranking at least as high),
    ``p_value_more`` for "changed more" (random sets ranking at least as low).

    With ``norm`` (``[L, N]`` weight sizes, :func:`neuron_weight_norm`; not in the paper) two
    keys more: ``norm_spearman`` (Spearman correlation of the drift score with the norm over all
    neurons, and the H-Neurons' within-layer norm percentiles ``h_percentiles``) and
    ``random_norm_matched`` (``n_random`` sets from :func:`norm_matched_sets`, same layer and
    closest norm, leaving out ``exclude``; the same fields as ``random_layer_matched``). Its
    random draws use their own generator, so the other numbers do not change with it.
    """
    from scipy.stats import mannwhitneyu, ttest_ind

    from .probe import random_neuron_set

    for name, v in (("n_random", n_random), ("n_boot", n_boot)):
        positive_int(v, name)
    if np.ndim(score) != 2:
        raise ValueError(f"drift score must be [layers, neurons], got shape {np.shape(score)}")
    if not np.isfinite(np.asarray(score, dtype=np.float64)).all():
        raise ValueError("drift score holds NaN or infinite values: ranks would be undefined")
    rank = normalized_rank(score).ravel()
    flat = np.asarray(score, dtype=np.float64).ravel()
    h = _flat_mask(neurons, score.shape)
    k = int(h.sum())
    if k == 0 or k == h.size:
        raise ValueError(f"need some H-Neurons and some other neurons, got {k} of {h.size}")
    rng = np.random.default_rng(seed)
    ci = None
    if k >= MIN_FOR_INTERVAL:
        boot = [rng.choice(rank[h], size=k).mean() for _ in range(n_boot)]
        ci = [float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))]
    out = {"n_h_neurons": k, "n_neurons": int(h.size), "mean_rank": float(rank[h].mean()),
           "mean_rank_ci": ci, "ranks": sorted(float(r) for r in rank[h]),
           "t_test": _test(ttest_ind(flat[h], flat[~h], equal_var=False, alternative="less")),
           "mann_whitney": _test(mannwhitneyu(flat[h], flat[~h], alternative="less"))}
    L, N = score.shape
    for name, like in (("random", None), ("random_layer_matched", neurons)):
        means = np.array([rank[random_neuron_set(k, L, N, seed + 1 + i, like=like).flat].mean()
                          for i in range(n_random)])
        out[name] = {"mean_rank_mean": float(means.mean()),
                     "mean_rank_95": [float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))],
                     "p_value": float((1 + (means >= out["mean_rank"]).sum()) / (n_random + 1)),
                     "p_value_more": float((1 + (means <= out["mean_rank"]).sum()) / (n_random + 1))}
    if norm is not None:
        out.update(_norm_tests(score, rank, neurons, norm, n_random, seed, exclude, window, out["mean_rank"]))
    return out


def _norm_tests(score: np.ndarray, rank: np.ndarray, neurons: Any, norm: np.ndarray, n_random: int,
                seed: int, exclude: Any, window: int, mean_rank: float) -> dict:
    """:func:`drift_tests`' weight-norm keys (see there)."""
    from scipy.stats import spearmanr

    from .probe import size_percentiles

    norm = np.asarray(norm, dtype=np.float64)
    if norm.shape != np.shape(score):
        raise ValueError(f"norm is {norm.shape}, the drift score {np.shape(score)}")
    rho = spearmanr(np.asarray(score, dtype=np.float64).ravel(), norm.ravel())
    sets = norm_matched_sets(neurons, norm, n_random, seed=int(seed) + 7_000_003, exclude=exclude,
                             window=window)
    means = rank[sets].mean(axis=1)
    n_excl = len(_left_out(neurons, exclude))
    return {"norm_spearman": {"rho": float(rho.statistic), "p_value": float(rho.pvalue),
                              "n_neurons": int(norm.size),
                              "h_percentiles": [float(v) for v in size_percentiles(neurons, norm)]},
            "random_norm_matched": {
                "mean_rank_mean": float(means.mean()),
                "mean_rank_95": [float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))],
                "p_value": float((1 + (means >= mean_rank).sum()) / (n_random + 1)),
                "p_value_more": float((1 + (means <= mean_rank).sum()) / (n_random + 1)),
                "window": int(window), "n_excluded": int(n_excl)}}


def norm_reading(t: dict) -> str:
    """:func:`drift_tests`' weight-norm keys in words: how drift tracks the weight norm, where
    the H-Neurons' norms sit in their layers, and the mean rank against norm-matched random
    sets beside the layer-matched ones. Empty without those keys."""
    if "norm_spearman" not in t:
        return ""
    c, m, lay = t["norm_spearman"], t["random_norm_matched"], t["random_layer_matched"]
    trend = ("larger-norm neurons changed less" if c["rho"] < 0 else
             "larger-norm neurons changed more" if c["rho"] > 0 else "no trend")
    pct = ", ".join(f"{v:.0f}" for v in sorted(c["h_percentiles"])[:10])
    pct += ", ..." if len(c["h_percentiles"]) > 10 else ""
    return (f"drift score vs weight norm (||W_up[j]|| x ||W_down[:, j]|| of the instruct model) over "
            f"{c['n_neurons']:,} neurons: Spearman rho = {c['rho']:+.2f} ({trend}); the H-Neurons' "
            f"norms sit at within-layer percentile(s) {pct}. Random sets matched by layer and norm "
            f"(each partner among the {m['window']} neurons of its layer with the closest norm, "
            f"leaving out the probe's {m['n_excluded']} neurons): 95% of their mean ranks in "
            f"[{m['mean_rank_95'][0]:.2f}, {m['mean_rank_95'][1]:.2f}], p = "
            f"{p_value(m['p_value'])} (changed less) / {p_value(m['p_value_more'])} (changed more); "
            f"layer-matched only: [{lay['mean_rank_95'][0]:.2f}, {lay['mean_rank_95'][1]:.2f}], p = "
            f"{p_value(lay['p_value'])} / {p_value(lay['p_value_more'])}")


def drift_variants(raw: dict[str, np.ndarray]) -> dict[str, tuple[str, ...]]:
    """The drift scores to test: the paper's (up and down projections) and, for gated MLPs,
    the same with the gate projection added (a variant the paper does not define)."""
    variants = {"up + down (paper)": ("up", "down")}
    if "gate" in raw:
        variants["up + gate + down"] = ("up", "gate", "down")
    return variants


def tests_table(tests: dict[str, dict]) -> Any:
    """One row per drift variant of :func:`drift_tests`: mean rank with its interval, the
    one-sided t-test and Mann-Whitney p-values (the paper's direction: changed less), and the
    random-set comparisons in both directions, rounded to three decimals for reading."""
    import pandas as pd

    r3 = lambda v: round(float(v), 3)  # noqa: E731  (a table to read, not to compute with)
    return pd.DataFrame({name: {
        "mean rank": r3(t["mean_rank"]),
        "95% CI": (np.round(t["mean_rank_ci"], 3) if t.get("mean_rank_ci") is not None else
                   f"none ({noun(t['n_h_neurons'], 'neuron')})"),
        "t-test p (H-Neurons changed less)": r3(t["t_test"]["p_value"]),
        "Mann-Whitney p (changed less)": r3(t["mann_whitney"]["p_value"]),
        "random sets (any layer): 2.5-97.5% of their mean ranks": np.round(t["random"]["mean_rank_95"], 3),
        "p vs random sets, any layer (less / more)":
            f"{r3(t['random']['p_value'])} / {r3(t['random'].get('p_value_more', np.nan))}",
        "p vs layer-matched sets (less / more)":
            f"{r3(t['random_layer_matched']['p_value'])} / {r3(t['random_layer_matched']['p_value_more'])}",
        **({"p vs norm-matched sets (less / more)":
            f"{r3(t['random_norm_matched']['p_value'])} / {r3(t['random_norm_matched']['p_value_more'])}",
            "Spearman rho (drift, weight norm)": r3(t["norm_spearman"]["rho"])}
           if "random_norm_matched" in t else {})}
        for name, t in tests.items()}).T


def drift_direction(t: dict, alpha: float = 0.05) -> str:
    """The outcome of :func:`drift_tests`: "too few" (under two H-Neurons); "less" (the
    paper's one-sided t-test at ``alpha``, mean rank above 0.5); "more" (mean-rank interval
    below 0.5 and, where the result has it, beyond what layer-matched random sets of as many
    neurons reach: ``p_value_more < alpha / 2``); "more, within random sets" (below 0.5, but
    such sets often rank as low: with few neurons the bootstrap interval alone is too narrow);
    or "none". Under ``MIN_FOR_INTERVAL`` neurons there is no interval and a t-test on so few
    values means little: the layer-matched random sets alone decide ("less" where their
    one-sided p-value is under ``alpha``, "more" under ``alpha / 2``, else "none").

    "less" is the paper's one-sided hypothesis, tested at ``alpha``. "more" was not anyone's
    hypothesis: claiming it whenever either tail is under ``alpha`` would test at twice
    ``alpha``, so the opposite direction needs ``alpha / 2`` (two-sided ``alpha``), as the 95%
    interval below 0.5 does."""
    if t.get("n_h_neurons", 0) < 2:
        return "too few"
    layer = t.get("random_layer_matched", {})
    if t.get("mean_rank_ci") is None:
        if layer.get("p_value", 1.0) < alpha and t["mean_rank"] > 0.5:
            return "less"
        if layer.get("p_value_more", 1.0) < alpha / 2 and t["mean_rank"] < 0.5:
            return "more"
        return "none"
    if t["t_test"]["p_value"] < alpha and t["mean_rank"] > 0.5:
        return "less"
    if t["mean_rank_ci"][1] < 0.5:
        p_more = layer.get("p_value_more")
        return "more" if p_more is None or p_more < alpha / 2 else "more, within random sets"
    return "none"


def mean_rank_text(t: dict, fmt: str = ".2f") -> str:
    """The mean rank with its interval, or with the ranks themselves where there is no interval."""
    if t.get("mean_rank_ci") is None:
        if t["n_h_neurons"] == 1:
            return f"{t['mean_rank']:{fmt}} (one neuron's rank: no interval)"
        ranks = ", ".join(format(r, fmt) for r in t.get("ranks", []))
        return f"{t['mean_rank']:{fmt}} (the {t['n_h_neurons']} ranks: {ranks}; too few for an interval)"
    lo, hi = t["mean_rank_ci"]
    return f"{t['mean_rank']:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"


def drift_verdict(t: dict, alpha: float = 0.05) -> str:
    """What the drift tests support: the t-test as the paper, checked by layer-matched sets
    (which alone decide under ``MIN_FOR_INTERVAL`` H-Neurons)."""
    d = drift_direction(t, alpha)
    if d == "too few":
        return "too few H-Neurons to test (a mean of one rank)"
    p_t, layer = t["t_test"]["p_value"], t["random_layer_matched"]
    if t.get("mean_rank_ci") is None:
        n = t["n_h_neurons"]
        if d == "less":
            return (f"changed less than layer-matched random sets of {n} neurons (p = "
                    f"{layer['p_value']:.2g}; too few neurons for the t-test to mean much)")
        if d == "more":
            return (f"changed more than layer-matched random sets of {n} neurons (p = "
                    f"{layer['p_value_more']:.2g}, under the {alpha / 2:g} that a direction "
                    "opposite to the paper's needs): the paper's opposite, in this pair")
        side = ""  # a tail under its threshold with the mean rank on the other side of 0.5
        if layer["p_value"] < alpha or layer.get("p_value_more", 1.0) < alpha / 2:
            side = (f"; the mean rank ({t['mean_rank']:.2f}) sits on the other side of 0.5, so the "
                    "difference from those sets is their layers', not a direction of the H-Neurons")
        return (f"layer-matched random sets of {n} neurons reach a mean rank as high as the "
                f"H-Neurons' in {100 * layer['p_value']:.0f}% of draws and one as low in "
                f"{100 * layer.get('p_value_more', float('nan')):.1f}% (a direction needs under "
                f"{100 * alpha:g}% for the paper's, under {100 * alpha / 2:g}% for the opposite, "
                f"with the mean rank on that side of 0.5){side}: no evidence either way")
    if d == "less":
        extra = ("; also against layer-matched random sets" if layer["p_value"] < alpha else
                 "; but not against layer-matched random sets (a layer effect)")
        return f"changed less than other neurons (t-test p = {p_value(p_t)}){extra}"
    if d == "more":
        return (f"changed more than other neurons (mean rank interval below 0.5; t-test p = "
                f"{p_value(p_t)} for 'less'): the paper's opposite, in this pair")
    if d == "more, within random sets":
        return (f"mean rank below 0.5, but layer-matched random sets of {t['n_h_neurons']} neurons "
                f"reach a mean rank as low as the H-Neurons' in {100 * layer['p_value_more']:.0f}% of "
                "draws: no evidence either way")
    return f"no evidence that they changed less (t-test p = {p_value(p_t)})"


def _test(res: Any) -> dict:
    return {"statistic": float(res.statistic), "p_value": float(res.pvalue)}


# ---------------------------------------------------------------- figure (Figure 4b)


THIS_PAIR = " (the pair run here)"  # appended to the paper's model that this run's pair is


def paper_rank_lines(frame: Any, ours: str | None = None) -> dict[str, float]:
    """Label -> value of the drift ranks the paper's text states (``paper.drift_frame()``): a
    stated average ends in "≈" or "=", a lower bound in ">". ``ours``: the paper's name of the
    pair this run uses (``origin.paper_pair_name``), marked in its label where it has a line."""
    name = lambda m: m + THIS_PAIR if m == ours else m  # noqa: E731
    lines = {f"{name(r.model)} {'≈' if r.avg_rank_approx else '='}": float(r.avg_rank)
             for r in frame.dropna(subset=["avg_rank"]).itertuples()}
    for value, g in frame.dropna(subset=["avg_rank_above"]).groupby("avg_rank_above"):
        lines[f"{', '.join(name(m) for m in g.model)} >"] = float(value)
    return lines


def paper_pair_note(frame: Any, ours: str | None, offline: bool = False) -> str:
    """What the paper's Figure 4b text says about the pair this run uses, in one sentence, and
    how its lines are drawn (``frame``: ``paper.drift_frame()``; ``ours``: the paper's name of
    this run's pair, or None where it is none of the paper's six)."""
    styles = ("The grey lines are the paper's stated numbers: dashed, an average rank it states "
              "for one model; dash-dotted, a lower bound it states on several models' average ranks (a bound, not "
              "an average itself).")
    if ours is None:
        who = ("the offline pair (Gemma-3-270M + our tuning run)" if offline else
               "the pair run here")
        return f"{styles} Neither is for this pair: {who} is not one of the paper's six."
    row = frame[frame.model == ours]
    if row.empty:
        return f"{styles} The paper's table has no row for {ours}."
    r = row.iloc[0]
    if np.isfinite(r.avg_rank):
        said = f"its text states an average rank of {'about ' if r.avg_rank_approx else ''}{r.avg_rank:g} (dashed)"
    elif np.isfinite(r.avg_rank_above):
        said = (f"its text states a mean rank above {r.avg_rank_above:g}"
                + (f" (p {r.p_value})" if r.p_value else "") + ", a lower bound (dash-dotted)")
    else:
        said = "its text gives no drift number for this model (only the figure shows it), so no line is this pair's"
    return f"{styles} This run's pair is the paper's {ours}: {said}."


def plot_rank_distribution(ax: Any, ranks: np.ndarray, mean_rank: float,
                           paper: dict[str, float] | None = None, bins: int = 20,
                           random_band: Sequence[float] | None = None) -> None:
    """Figure 4b: histogram of the H-Neurons' normalised drift ranks (one mark per neuron under
    ``MIN_FOR_HISTOGRAM`` of them), their mean, 0.5 and the paper's.

    ``paper``: label -> value of the paper's stated averages (e.g. Mistral-Small's 0.97).
    ``random_band``: the 2.5-97.5% range of the mean rank of random sets of as many neurons
    (layer-matched, :func:`drift_tests`), shaded: a mean inside it is what chance gives.
    """
    if random_band is not None:
        lo, hi = random_band
        ax.axvspan(lo, hi, color="0.85", zorder=0,
                   label=f"95% of layer-matched random sets' means [{lo:.2f}, {hi:.2f}]")
    if len(ranks) >= MIN_FOR_HISTOGRAM:
        ax.hist(ranks, bins=bins, range=(0, 1), density=True, color="C0", alpha=0.7,
                label=f"H-Neurons (ours, n={len(ranks)})")
        ax.axhline(1.0, color="k", lw=1, label="uniform (any random set)")
        ax.set_ylabel("density")
    else:  # a histogram of a handful of values is mostly empty bins: one mark per neuron
        ax.vlines(ranks, 0.35, 0.65, color="C3", lw=3,
                  label=(f"the only H-Neuron (ours): rank {ranks[0]:.3f}; one neuron, no distribution"
                         if len(ranks) == 1 else f"H-Neurons (ours, n={len(ranks)}), one mark each"))
        ax.set_ylim(0, 1)
        ax.set_yticks([])
    if len(ranks) > 1:  # one neuron's mean is its own mark
        ax.axvline(mean_rank, color="C0", lw=2, label=f"our mean {mean_rank:.3f}")
    ax.axvline(0.5, color="k", ls=":", lw=1, label="0.5 (mean rank of a random set)")
    for label, value in (paper or {}).items():  # a stated value dashed, a lower bound dash-dotted
        bound = label.endswith(">")
        ax.axvline(value, color="0.35", ls="-." if bound else "--", lw=1,
                   label=f"paper: {label} {value:g}" + (" (lower bound)" if bound else " (average)"))
    ax.set_xlabel("normalised drift rank (0 = changed most, 1 = changed least)")
    ax.set_xlim(0, 1)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)  # never over a bar
