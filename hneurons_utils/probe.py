"""Neuron sets and the sparse hallucination probe (paper Section 6.1.3, Eq. 4).

A neuron is addressed by (layer, index in the FFN intermediate layer). Features are laid out
layer-major: flat index = layer * n_neurons + neuron. The probe is an L1-regularised logistic
regression on response-level CETT features,

    min_w  sum_i log(1 + exp(-y_i (w . x_i + b))) + lambda ||w||_1,    C = 1 / lambda,

and the H-Neurons are the neurons it gives a positive weight. :class:`Probe` is saved as JSON.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from .checks import positive_int, positive_number
from .files import code_digest, settings_hash, write_text_atomic
from .progress import progress
from .wording import noun

DEFAULT_TOL = 1e-8  # the solver's stopping tolerance: tight enough to reach Eq. 4's minimum here
SKLEARN_TOL = 1e-4  # scikit-learn's default tolerance, which stops short of it (chapter 2)
MAX_ITER = 2000  # the solver's iteration cap
SOLVES = ("full", "working-set")  # how fit_probe reaches Eq. 4's minimum (fit_probe's docstring)
WS_NEAR = 0.7  # a round also adds neurons this near the L1 threshold (|g_j| > WS_NEAR), saving rounds
WS_START = 1000  # the working set starts with this many neurons (or twice the rows, if more): the largest gradients at w = 0
_BLOCK = 4096  # columns read at a time by the working-set fit's gradient pass
FULL_BYTES_PER_VALUE = 44  # a full liblinear L1 fit: 40-42 measured by bench/bench_probe.py, and a margin


def _indices(values: Sequence, what: str) -> np.ndarray:
    """Whole-number indices as int64 (a float like 3.7 would be truncated to another neuron)."""
    a = np.asarray(values).ravel()
    if a.size and not (np.issubdtype(a.dtype, np.integer)
                       or (np.issubdtype(a.dtype, np.floating) and np.all(a == np.round(a)))):
        raise ValueError(f"{what} indices must be whole numbers, got {a[:5].tolist()}")
    return a.astype(np.int64)


_FINITE_VALUES = 2 ** 22  # values _check_finite reads at a time


def _check_finite(X: np.ndarray, what: str, cols: np.ndarray | None = None) -> None:
    """Raise if ``X`` ``[n, features]`` (its columns ``cols``, when given) holds NaN or infinite
    values, with the number of such rows: a NaN score would silently count as class 0 and a NaN
    row would corrupt a fit. Read a block of rows at a time, so a wide ``X`` is never copied."""
    n = len(X)
    width = int(np.prod(np.shape(X)[1:], dtype=np.int64)) if cols is None else len(cols)
    step = max(1, _FINITE_VALUES // max(1, width))
    bad = np.zeros(n, dtype=bool)
    for a in range(0, n, step):
        block = X[a:a + step] if cols is None else X[a:a + step][:, cols]
        bad[a:a + step] = ~np.isfinite(block).reshape(len(block), -1).all(axis=1)
    if bad.any():
        raise ValueError(f"{what} holds NaN or infinite values in {int(bad.sum())} of {n} "
                         f"rows (first: row {int(np.flatnonzero(bad)[0])}); a response with no "
                         "answer token has NaN features: drop those rows first (training_rows "
                         "does)")


@dataclass(frozen=True)
class NeuronSet:
    """A set of FFN neurons: parallel arrays ``layers`` and ``neurons`` (sorted, unique)."""

    layers: np.ndarray  # [k] int
    neurons: np.ndarray  # [k] int
    n_layers: int
    n_neurons: int  # per layer

    def __post_init__(self) -> None:
        layers, neurons = (_indices(x, what) for x, what in ((self.layers, "layer"),
                                                              (self.neurons, "neuron")))
        if layers.shape != neurons.shape:
            raise ValueError(f"layers and neurons differ in length: {layers.shape} vs {neurons.shape}")
        if layers.size and (layers.min() < 0 or layers.max() >= self.n_layers):
            raise ValueError(f"layer index out of range [0, {self.n_layers})")
        if neurons.size and (neurons.min() < 0 or neurons.max() >= self.n_neurons):
            raise ValueError(f"neuron index out of range [0, {self.n_neurons})")
        flat = np.unique(layers * self.n_neurons + neurons)
        object.__setattr__(self, "layers", flat // self.n_neurons)
        object.__setattr__(self, "neurons", flat % self.n_neurons)

    @classmethod
    def from_flat(cls, flat: np.ndarray, n_layers: int, n_neurons: int) -> "NeuronSet":
        """Build from layer-major flat indices (``layer * n_neurons + neuron``)."""
        flat = _indices(flat, "flat neuron")
        return cls(flat // n_neurons, flat % n_neurons, n_layers, n_neurons)

    @property
    def flat(self) -> np.ndarray:
        return self.layers * self.n_neurons + self.neurons

    @property
    def size(self) -> int:
        return int(self.layers.size)

    def __len__(self) -> int:
        return self.size

    @property
    def per_mille(self) -> float:
        """Share of all FFN neurons, in per mille (the paper's unit)."""
        return 1000.0 * self.size / (self.n_layers * self.n_neurons)

    def by_layer(self) -> dict[int, np.ndarray]:
        """``{layer: neuron indices}`` for the layers that hold at least one neuron."""
        return {int(l): self.neurons[self.layers == l] for l in np.unique(self.layers)}

    def layer_counts(self) -> np.ndarray:
        """Number of neurons in each layer: ``[n_layers]``."""
        return np.bincount(self.layers, minlength=self.n_layers)

    def to_dict(self) -> dict:
        return {"layers": self.layers.tolist(), "neurons": self.neurons.tolist(),
                "n_layers": self.n_layers, "n_neurons": self.n_neurons}

    @classmethod
    def from_dict(cls, d: dict) -> "NeuronSet":
        return cls(np.asarray(d["layers"]), np.asarray(d["neurons"]), int(d["n_layers"]),
                   int(d["n_neurons"]))


def flat_set(exclude: "NeuronSet | Sequence[int] | np.ndarray | None", n_layers: int,
              n_neurons: int) -> np.ndarray:
    """Layer-major flat indices of ``exclude`` (a NeuronSet or flat indices), checked."""
    if exclude is None:
        return np.array([], dtype=np.int64)
    if isinstance(exclude, NeuronSet):
        if (exclude.n_layers, exclude.n_neurons) != (n_layers, n_neurons):
            raise ValueError(f"exclude is a {exclude.n_layers} x {exclude.n_neurons} neuron set, "
                             f"the draw {n_layers} x {n_neurons}")
        return np.asarray(exclude.flat, dtype=np.int64)
    flat = _indices(exclude, "excluded neuron")
    if flat.size and (flat.min() < 0 or flat.max() >= n_layers * n_neurons):
        raise ValueError(f"excluded neuron index out of range [0, {n_layers * n_neurons})")
    return flat


def random_neuron_set(k: int, n_layers: int, n_neurons: int, seed: int,
                      like: NeuronSet | None = None,
                      exclude: "NeuronSet | Sequence[int] | np.ndarray | None" = None) -> NeuronSet:
    """``k`` distinct random neurons; with ``like``, as many per layer as ``like`` has.

    The layer-matched version is the behaviour chapter's negative control; the unmatched one
    is Table 1's random-neuron baseline. ``exclude`` (a NeuronSet or flat indices): neurons
    never drawn, e.g. every neuron the probe weighs, so a control cannot contain an H-Neuron.
    Each draw is uniform over the neurons allowed: a first draw from all neurons keeps its
    allowed picks and replaces the excluded ones from a second, independent stream, so a set
    that drew no excluded neuron is the one drawn without ``exclude`` (same seed, same set).
    """
    rng = np.random.default_rng(seed)
    banned = flat_set(exclude, n_layers, n_neurons)
    refill = np.random.default_rng([seed, 1])  # replacements only: other draws stay as they were

    def draw(pool_size: int, count: int, offset: int) -> np.ndarray:
        out = rng.choice(pool_size, size=count, replace=False)
        bad = np.isin(out + offset, banned)
        if bad.any():
            allowed = np.setdiff1d(np.arange(pool_size), np.concatenate([out, banned - offset]))
            if len(allowed) < bad.sum():
                raise ValueError(f"cannot draw {count} neurons: too few left after excluding {banned.size}")
            out = out.copy()
            out[bad] = refill.choice(allowed, size=int(bad.sum()), replace=False)
        return out

    if like is None:
        if k > n_layers * n_neurons:
            raise ValueError(f"cannot draw {k} neurons from {n_layers * n_neurons}")
        return NeuronSet.from_flat(draw(n_layers * n_neurons, k, 0), n_layers, n_neurons)
    layers, neurons = [], []
    for layer, count in enumerate(like.layer_counts()):
        if count:
            layers.append(np.full(count, layer))
            neurons.append(draw(n_neurons, count, layer * n_neurons))
    if not layers:
        return NeuronSet(np.array([], int), np.array([], int), n_layers, n_neurons)
    return NeuronSet(np.concatenate(layers), np.concatenate(neurons), n_layers, n_neurons)


def size_matched_neuron_set(like: NeuronSet, size: np.ndarray, seed: int, window: int = 10,
                            exclude: "NeuronSet | Sequence[int] | np.ndarray | None" = None) -> NeuronSet:
    """The partners of :func:`size_matched_pairs` as a neuron set (see there)."""
    pairs = size_matched_pairs(like, size, seed, window, exclude)
    return NeuronSet.from_flat(pairs[:, 1], like.n_layers, like.n_neurons)


def size_matched_pairs(like: NeuronSet, size: np.ndarray, seed: int, window: int = 10,
                       exclude: "NeuronSet | Sequence[int] | np.ndarray | None" = None) -> np.ndarray:
    """Random neurons matched to ``like`` by layer *and* by activation size (not in the paper).

    ``size``: ``[n_layers, n_neurons]``, a typical activation size per neuron (e.g. its mean
    CETT, :func:`activation_size`). For each neuron of ``like``, one neuron of the same layer,
    not in ``like`` and not drawn already, is drawn at random among the ``window`` whose size is
    closest to its own. The layer-matched control (:func:`random_neuron_set` with ``like``)
    draws typical neurons, and neurons selected for a large CETT are large: scaling them moves
    the residual stream more whatever they encode. This control separates the two. Returns
    ``[k, 2]`` flat indices: each neuron of ``like`` and its partner. A neuron at the very top
    of its layer can only get smaller partners (compare ``size`` at the two columns).
    ``exclude`` (a NeuronSet or flat indices): neurons never drawn as partners, e.g. every
    neuron the probe weighs, so no control holds a neuron of the probe.
    """
    size = np.asarray(size, dtype=np.float64)
    if size.shape != (like.n_layers, like.n_neurons):
        raise ValueError(f"size is {size.shape}, the neuron set {like.n_layers} x {like.n_neurons}")
    if not np.isfinite(size).all():
        raise ValueError("size holds NaN or infinite values")
    positive_int(window, "window")
    rng = np.random.default_rng(seed)
    banned = flat_set(exclude, like.n_layers, like.n_neurons)
    pairs = []
    for layer, idx in like.by_layer().items():
        out = banned[(banned >= layer * like.n_neurons) & (banned < (layer + 1) * like.n_neurons)]
        free = np.setdiff1d(np.arange(like.n_neurons), np.concatenate([idx, out - layer * like.n_neurons]))
        if len(free) < len(idx):
            raise ValueError(f"layer {layer}: {len(idx)} neurons to match but only {len(free)} others")
        for j in idx[np.argsort(-size[layer, idx], kind="stable")]:  # largest first: fewest peers
            near = free[np.argsort(np.abs(size[layer, free] - size[layer, j]), kind="stable")[:window]]
            pick = int(rng.choice(near))
            free = free[free != pick]
            pairs.append((layer * like.n_neurons + int(j), layer * like.n_neurons + pick))
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def activation_size(fs_other: np.ndarray) -> np.ndarray:
    """A neuron's typical activation size: its mean CETT over responses ``[n, L, N]`` (the
    features' non-answer tokens, whatever the label), as float64 ``[L, N]``."""
    arr = np.asarray(fs_other)
    if arr.ndim != 3 or not len(arr):
        raise ValueError(f"need features [responses, layers, neurons], got shape {arr.shape}")
    return arr.mean(axis=0, dtype=np.float64)  # accumulated in float64, never copied whole


def size_percentiles(neurons: NeuronSet, size: np.ndarray) -> np.ndarray:
    """Each neuron's percentile of ``size`` within its own layer (0-100; 100: the layer's largest)."""
    size = np.asarray(size, dtype=np.float64)
    out = []
    for layer, j in zip(neurons.layers, neurons.neurons):
        row = size[layer]
        out.append(100.0 * (row < row[j]).sum() / max(len(row) - 1, 1))
    return np.array(out)


def screened_neuron_set(auc: np.ndarray, k: int, n_layers: int, n_neurons: int,
                        two_sided: bool = False) -> NeuronSet:
    """The ``k`` neurons that best predict the label one at a time (not in the paper).

    ``auc`` [n_layers * n_neurons] is each neuron's AUROC alone (layer-major, from
    :func:`stats.column_aurocs` on the training rows); the ``k`` highest are kept (neurons more
    active on label 1, like H-Neurons), or with ``two_sided`` the ``k`` furthest from 0.5 in
    either direction. A univariate screen: the baseline that asks whether the L1 probe's joint
    selection finds more than the individually best neurons. Ties go to the lower flat index.
    """
    auc = np.asarray(auc, dtype=np.float64)
    if auc.shape != (n_layers * n_neurons,):
        raise ValueError(f"auc has shape {auc.shape}, expected ({n_layers} x {n_neurons},)")
    if not 0 < k <= auc.size:
        raise ValueError(f"k must be in 1..{auc.size}, got {k}")
    if np.isnan(auc).all():
        raise ValueError("cannot screen neurons: no AUROC (do the labels hold one class only?)")
    key = np.abs(auc - 0.5) if two_sided else auc
    order = np.argsort(-np.nan_to_num(key, nan=-np.inf), kind="stable")
    return NeuronSet.from_flat(order[:k], n_layers, n_neurons)


# ---------------------------------------------------------------- the probe (Section 6.1.3)

LABEL_SCHEMES = ("3-vs-1", "1-vs-1")


def training_rows(answer: np.ndarray, other: np.ndarray | None, y: np.ndarray,
                  scheme: str = "3-vs-1") -> tuple[np.ndarray, np.ndarray]:
    """Rows and labels of the classifier's training set (Section 6.1.3, Eq. 4).

    ``y``: 1 = hallucinated response, 0 = faithful. "3-vs-1" (the paper): hallucinated
    answer-token features are 1; faithful answer-token features and the other-token features
    of every response are 0. "1-vs-1": answer-token features only, labelled ``y``. Rows with a
    NaN (a response with no token of that kind) are dropped.
    """
    y = np.asarray(y, dtype=np.int64)
    if scheme not in LABEL_SCHEMES:
        raise ValueError(f"unknown label scheme {scheme!r}; choose one of {LABEL_SCHEMES}")
    if answer.shape[0] != y.shape[0]:
        raise ValueError(f"{answer.shape[0]} feature rows but {y.shape[0]} labels")
    X, labels = answer, y
    if scheme == "3-vs-1":
        if other is None:
            raise ValueError("the 3-vs-1 scheme needs the other-token features")
        X, labels = np.concatenate([answer, other]), np.concatenate([y, np.zeros_like(y)])
    keep = ~np.isnan(X).any(axis=1)
    return X[keep], labels[keep]


@dataclass
class Probe:
    """A sparse linear hallucination classifier over all FFN neurons (Section 6.1.3).

    Only the neurons with a non-zero weight are stored (``flat``: layer-major indices).
    ``decision_function`` takes full-width features ``[n, n_layers * n_neurons]``; with
    ``standardize`` the used columns are first centred and scaled by the training ``mean`` and
    ``std``. Saved as plain JSON (float64 values written exactly); never pickled.
    """

    model_id: str
    n_layers: int
    n_neurons: int
    flat: np.ndarray  # [k] int64, layer-major neuron indices with non-zero weight
    weights: np.ndarray  # [k] float64
    intercept: float
    C: float
    mean: np.ndarray  # [k] float64 (zeros without standardisation)
    std: np.ndarray  # [k] float64 (ones without standardisation)
    standardize: bool = False
    label_scheme: str = "3-vs-1"
    config: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.flat = _indices(self.flat, "Probe neuron")
        for name in ("weights", "mean", "std"):
            setattr(self, name, np.asarray(getattr(self, name), dtype=np.float64).ravel())
            if getattr(self, name).shape != self.flat.shape:
                raise ValueError(f"Probe.{name} has {getattr(self, name).size} values for "
                                 f"{self.flat.size} neurons")
        if self.flat.size and (self.flat.min() < 0 or self.flat.max() >= self.n_features):
            raise ValueError(f"Probe neuron index out of range [0, {self.n_features}) "
                             f"({self.n_layers} layers x {self.n_neurons} neurons)")
        if np.unique(self.flat).size < self.flat.size:
            raise ValueError("Probe lists a neuron twice (its flat indices must be unique)")
        if not (np.isfinite(self.std).all() and (self.std > 0).all()):
            raise ValueError("Probe.std must be finite and positive (it divides the features)")
        for name in ("weights", "mean"):
            if not np.isfinite(getattr(self, name)).all():
                raise ValueError(f"Probe.{name} holds a NaN or infinite value (a NaN weight would "
                                 "silently drop its neuron from the H-Neurons)")
        if not np.isfinite(self.intercept):
            raise ValueError("Probe.intercept must be finite")

    @property
    def n_features(self) -> int:
        return self.n_layers * self.n_neurons

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Logit of "hallucinated" for full-width features ``[n, n_layers * n_neurons]``.
        Rows with a NaN or infinite value at the probe's neurons are refused (never a NaN score)."""
        return self._standardised(X) @ self.weights + self.intercept

    def _standardised(self, X: np.ndarray) -> np.ndarray:
        """``Z``: full-width features ``X`` at the probe's neurons, standardised as in the fit;
        a wrong width, or a NaN or infinite value there, is refused."""
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"expected features [n, {self.n_features}] ({self.n_layers} layers x "
                             f"{self.n_neurons} neurons), got {X.shape}")
        used = X[:, self.flat].astype(np.float64)
        _check_finite(used, "X (at the probe's neurons)")
        return (used - self.mean) / self.std

    def part_scores(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """The decision function split by the sign of the weights, for full-width features
        ``[n, n_layers * n_neurons]``: ``"positive"`` = ``Z[:, pos] @ w[pos]`` (the H-Neurons'
        part), ``"negative"`` = ``Z[:, neg] @ w[neg]`` (the negative-weight neurons' part), and
        ``"full"`` = their sum plus the intercept (:meth:`decision_function`). ``Z``: the
        features at the probe's neurons, standardised as in the fit. A part with no neuron is
        all zeros. Each part read as a detector on its own tells which neurons carry the
        probe's detection (the whole probe's score is not the H-Neurons' alone)."""
        Z = self._standardised(X)
        pos, neg = self.weights > 0, self.weights < 0
        parts = {"positive": Z[:, pos] @ self.weights[pos], "negative": Z[:, neg] @ self.weights[neg]}
        return {**parts, "full": parts["positive"] + parts["negative"] + self.intercept}

    def predict(self, X: np.ndarray) -> np.ndarray:
        """1 (hallucinated) where the logit is above 0; NaN rows are refused, as above."""
        return (self.decision_function(X) > 0).astype(np.int64)

    def neurons(self, sign: int = 1) -> NeuronSet:
        """Neurons with positive (``sign=1``), negative (-1) or any non-zero (0) weight."""
        keep = self.weights > 0 if sign > 0 else self.weights < 0 if sign < 0 else self.weights != 0
        return NeuronSet.from_flat(self.flat[keep], self.n_layers, self.n_neurons)

    def h_neurons(self) -> NeuronSet:
        """The H-Neurons: the neurons with a positive weight (Section 3, official code)."""
        return self.neurons(1)

    def composition(self) -> str:
        """What the probe reads, in words: how many neurons, how many of them H-Neurons (positive
        weight) and how many with a negative weight, with the largest weight of each sign; and,
        where the largest weight in size is a negative one, that scores of the whole probe are
        not the H-Neurons' alone. Weights are on the probe's own feature scale."""
        w = self.weights[self.weights != 0]
        pos, neg = w[w > 0], w[w < 0]
        text = f"the probe reads {noun(w.size, 'neuron')}: {noun(pos.size, 'H-Neuron')} (positive weight"
        text += f", largest {pos.max():+.2f})" if pos.size else ")"
        text += f" and {neg.size} with a negative weight" + (f" (largest in size {neg.min():+.2f})" if neg.size else "")
        if neg.size and pos.size and -neg.min() > pos.max():
            text += ("; the largest weight is a negative one, so a score of the whole probe is not "
                     "the H-Neurons' alone")
        return text

    def to_dict(self) -> dict:
        return {"model_id": self.model_id, "n_layers": self.n_layers, "n_neurons": self.n_neurons,
                "flat": self.flat.tolist(), "weights": self.weights.tolist(),
                "intercept": float(self.intercept), "C": float(self.C), "mean": self.mean.tolist(),
                "std": self.std.tolist(), "standardize": self.standardize,
                "label_scheme": self.label_scheme, "config": self.config, "format": "hneurons-probe/1"}

    def save(self, path: str | Path) -> Path:
        return write_text_atomic(path, json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: str | Path, model: str | None = None) -> "Probe":
        """The probe stored at ``path``; with ``model`` (a loaded model's ``name``) it must have
        been trained on that model, since a probe of another model of the same shape would
        otherwise read the wrong neurons without complaint."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no probe at {path}: run the identification chapter "
                                    "(notebooks/02_identification.py) for this model first")
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{path} is not valid JSON ({e}): rerun the identification chapter") from None
        if not isinstance(d, dict) or d.get("format") != "hneurons-probe/1":
            raise ValueError(f"{path} is not a probe file (format "
                             f"{d.get('format') if isinstance(d, dict) else None!r})")
        d.pop("format")
        if model is not None and d.get("model_id") != model:
            raise ValueError(f"{path} holds a probe of {d.get('model_id')!r}, not of {model!r}: "
                             "two models share this results folder; give this one its own "
                             "OUTPUT_DIR (or rerun chapter 02 for it)")
        fields = dataclasses.fields(cls)
        required = {f.name for f in fields
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
        missing, unknown = sorted(required - set(d)), sorted(set(d) - {f.name for f in fields})
        if missing or unknown:
            raise ValueError(f"{path} is a damaged probe file (missing {missing}, unknown "
                             f"{unknown}): rerun the identification chapter")
        return cls(**d)


def _penalty_kw(penalty: str) -> dict:
    """scikit-learn >= 1.8 spells the penalty ``l1_ratio`` (``penalty`` is deprecated there)."""
    import sklearn

    major, minor = (int(x) for x in sklearn.__version__.split(".")[:2])
    if (major, minor) >= (1, 8):
        return {"l1_ratio": 1.0 if penalty == "l1" else 0.0}
    return {"penalty": penalty}


def _available_bytes() -> int | None:
    """Memory the operating system can still hand out (``MemAvailable``), or None off Linux."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _ws_start(n_rows: int) -> int:
    """How many neurons the working set starts with (and may add in a round): :data:`WS_START`,
    or twice the rows where that is more."""
    return max(WS_START, 2 * int(n_rows))


def fit_memory_bytes(n_rows: int, n_columns: int, solve: str = "full") -> int:
    """About how many bytes :func:`fit_probe` allocates beyond ``X`` itself for ``n_rows`` rows
    and ``n_columns`` neurons. A full fit copies every value three times (float64 for
    scikit-learn, then liblinear's own row and column copies, 16 bytes a value each):
    :data:`FULL_BYTES_PER_VALUE`, as ``bench/bench_probe.py`` measures it. A working-set fit
    holds a float64 block of columns and its product, a full fit of its working set (allowed
    for at twice its first size: one round's growth) and a few numbers per neuron."""
    if solve == "full":
        return int(n_rows) * int(n_columns) * FULL_BYTES_PER_VALUE
    start = min(int(n_columns), _ws_start(n_rows))
    return int(n_rows) * (2 * _BLOCK * 8 + 2 * start * FULL_BYTES_PER_VALUE) + 3 * int(n_columns) * 8


def _refuse_if_short(n_rows: int, n_columns: int, way_out: str) -> None:
    """Raise :class:`MemoryError` before a liblinear fit of ``n_rows`` x ``n_columns`` that would
    not fit in this machine's free memory (:func:`fit_memory_bytes`), naming ``way_out``."""
    need, free = fit_memory_bytes(n_rows, n_columns), _available_bytes()
    if free is not None and need > free:
        raise MemoryError(
            f"a full fit of the probe on {n_rows} rows x {n_columns} neurons needs about "
            f"{need / 2 ** 30:.1f} GiB beyond the features, and this machine has "
            f"{free / 2 ** 30:.1f} GiB free: {way_out}")


def _liblinear(Xc: np.ndarray, y: np.ndarray, C: float, penalty: str, seed: int, tol: float):
    """scikit-learn's liblinear logistic regression on the float64 matrix ``Xc``: (weights,
    intercept, iterations)."""
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=C, solver="liblinear", max_iter=MAX_ITER, random_state=seed,
                             tol=float(tol), **_penalty_kw(penalty))
    clf.fit(Xc, y)
    return clf.coef_[0], float(clf.intercept_[0]), int(np.max(clf.n_iter_))


def _block(X: np.ndarray, cols: np.ndarray, a: int) -> np.ndarray:
    """``X[:, cols[a:a + _BLOCK]]`` as float64; a run of consecutive columns is read as a slice
    (one copy, not a gather and a copy)."""
    c = cols[a:a + _BLOCK]
    if c.size and np.all(np.diff(c) == 1):
        return X[:, c[0]:c[-1] + 1].astype(np.float64)
    return X[:, c].astype(np.float64)


def _column_stats(X: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of ``X[:, cols]``, a block of columns at a time."""
    mean, std = np.empty(cols.size), np.empty(cols.size)
    for a in range(0, cols.size, _BLOCK):
        block = _block(X, cols, a)
        mean[a:a + _BLOCK], std[a:a + _BLOCK] = block.mean(0), block.std(0)
    return mean, std


def _loss_gradient(X: np.ndarray, cols: np.ndarray, mean: np.ndarray, std: np.ndarray,
                   r: np.ndarray, C: float) -> np.ndarray:
    """``C * sum_i r_i x'_ij`` for every column ``j`` of ``X[:, cols]`` (``x'`` centred by
    ``mean``, scaled by ``std``): the gradient of Eq. 4's loss term when ``r`` is the residual
    ``s_i (sigmoid(s_i m_i) - 1)``, read a block of columns at a time."""
    g = np.empty(cols.size)
    for a in range(0, cols.size, _BLOCK):
        block = _block(X, cols, a)
        g[a:a + _BLOCK] = (r @ block - mean[a:a + _BLOCK] * r.sum()) / std[a:a + _BLOCK]
    return C * g


def _working_set(X: np.ndarray, y: np.ndarray, cols: np.ndarray, mean: np.ndarray,
                 std: np.ndarray, C: float, seed: int, tol: float
                 ) -> tuple[np.ndarray, float, int, dict]:
    """Eq. 4's L1 minimiser over ``X[:, cols]`` without copying ``X``: liblinear on a working set
    of columns, grown until every column left out meets the minimum's condition.

    At the minimum of ``|w|_1 + |b| + C * loss`` every neuron with a weight has a loss gradient
    ``g_j = -sign(w_j)`` and every weightless one ``|g_j| <= 1``. So: fit on the
    :data:`WS_START` columns (or twice as many as rows) with the largest ``|g_j|`` at ``w = 0``;
    compute ``g`` over every column at that fit; add every column left out with ``|g_j| > 1``
    (and, to save rounds, those nearest to it, ``|g_j| >`` :data:`WS_NEAR`); refit; stop when no
    column left out has ``|g_j| > 1``. The fit then meets the full problem's optimality conditions
    (the columns inside to liblinear's tolerance, those outside exactly): it is the minimiser a
    fit on all columns reaches, without the full fit's three copies of every value."""
    s = 2.0 * y - 1.0
    g = _loss_gradient(X, cols, mean, std, -0.5 * s, C)  # at w = 0, b = 0
    start = _ws_start(len(y))
    work = np.sort(np.argsort(-np.abs(g), kind="stable")[:start])
    rounds = 0
    while True:
        rounds += 1
        _refuse_if_short(len(y), work.size, f"the working set has grown to {work.size} neurons in "
                         f"{rounds - 1} rounds: use fewer training rows or a machine with more memory")
        Xw = X[:, cols[work]].astype(np.float64)
        Xw -= mean[work]
        Xw /= std[work]
        w, b, n_iter = _liblinear(Xw, y, C, "l1", seed, tol)
        m = Xw @ w + b
        g = _loss_gradient(X, cols, mean, std, s * (0.5 * (1.0 + np.tanh(0.5 * s * m)) - 1.0), C)
        out = np.ones(cols.size, dtype=bool)
        out[work] = False
        if not np.any(out & (np.abs(g) > 1.0)):
            break
        # every neuron that breaks the condition, and with them the nearest to breaking it
        # (|g_j| > WS_NEAR, largest first, as many as the set started with): the next fit
        # costs about the same however many columns it has, and each round saved is a fit
        near = np.flatnonzero(out & (np.abs(g) > WS_NEAR))
        near = near[np.argsort(-np.abs(g[near]), kind="stable")]
        grow = max(start, int(np.sum(np.abs(g[near]) > 1.0)))
        work = np.union1d(work, near[:grow])
    full = np.zeros(cols.size)
    full[work] = w
    return full, b, n_iter, {"ws_rounds": rounds, "ws_size": int(work.size)}


def fit_probe(X: np.ndarray, y: np.ndarray, C: float, penalty: str = "l1",
              standardize: bool = False, solver: str = "liblinear", seed: int = 0,
              columns: np.ndarray | None = None, n_layers: int = 0, n_neurons: int = 0,
              model_id: str = "", label_scheme: str = "3-vs-1", config: dict | None = None,
              tol: float = DEFAULT_TOL, solve: str = "full") -> Probe:
    """Fit the logistic regression of Eq. 4 on ``X`` ``[n, features]`` and return a :class:`Probe`.

    ``penalty="l1"`` gives the paper's sparse probe (``C`` = 1/lambda). ``standardize=False``
    (the paper and official code) fits raw CETT means, so the L1 penalty favours neurons with
    large CETT; ``True`` centres and scales each neuron first, so all compete on equal terms.
    ``columns`` restricts the fit to those flat neuron indices (the random-neuron baseline).
    ``n_layers`` and ``n_neurons`` (the model's shape) are required and must multiply to ``X``'s
    width; rows with a NaN or infinite value are refused (drop them: :func:`training_rows`).
    ``tol`` is the solver's stopping tolerance, :data:`DEFAULT_TOL`: with many more neurons
    than rows, liblinear at scikit-learn's default (:data:`SKLEARN_TOL`) stops well short of
    Eq. 4's minimum, with many more non-zero weights than the minimiser has
    (:func:`eq4_objective` measures the gap; chapter 2 shows it).

    ``solve``: ``"full"`` hands every column to liblinear, which copies each value three times
    (:func:`fit_memory_bytes`: 4,000 rows of a 7B model's 458,752 neurons need about 70 GiB; a
    full fit that would not fit in this machine's free memory is refused with that figure).
    ``"working-set"`` (L1 only) reaches the same minimiser reading ``X`` a block of columns at
    a time (:func:`_working_set`): what the paper's scale needs; the config records its rounds
    and final set size.
    """
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must be a matrix [n, features], got shape {X.shape}")
    if n_layers < 1 or n_neurons < 1:
        raise ValueError(f"pass the model's shape, n_layers= and n_neurons= (got {n_layers} and "
                         f"{n_neurons}); their product must be X's width, {X.shape[1]} columns")
    if X.shape[1] != n_layers * n_neurons:
        raise ValueError(f"X has {X.shape[1]} columns, but n_layers x n_neurons = {n_layers} x "
                         f"{n_neurons} = {n_layers * n_neurons}: features must be full-width, "
                         "layer-major")
    from .stats import _binary

    y = _binary(y)  # 0/1 only: 0.7 or -1 would be cast or read as another class without a word
    if len(y) != len(X):
        raise ValueError(f"{len(y)} labels for {len(X)} rows of X")
    if len(np.unique(y)) < 2:
        raise ValueError(f"the probe needs both labels in its training set, got {np.unique(y)}")
    cols = np.arange(X.shape[1]) if columns is None else np.asarray(columns, dtype=np.int64)
    if cols.size and (cols.min() < 0 or cols.max() >= X.shape[1]):
        raise ValueError(f"columns must lie in [0, {X.shape[1]}), got {cols.min()} to {cols.max()}")
    if penalty not in ("l1", "l2"):
        raise ValueError(f"penalty must be 'l1' or 'l2', got {penalty!r}")
    positive_number(tol, "tol")
    if solve not in SOLVES:
        raise ValueError(f"solve must be one of {SOLVES}, got {solve!r}")
    if solver != "liblinear":
        raise ValueError(f"only scikit-learn's liblinear solver fits Eq. 4 here (it penalises the "
                         f"intercept, as eq4_objective assumes), got solver={solver!r}")
    if solve == "working-set" and penalty != "l1":
        raise ValueError("solve='working-set' needs penalty='l1': an L2 fit gives every neuron a "
                         "weight, so no column can be left out")
    _check_finite(X, "X", None if columns is None else cols)
    t0 = time.monotonic()
    extra = {"ws_rounds": 0, "ws_size": int(cols.size)} if solve == "working-set" else {}
    if solve == "working-set" and cols.size > _ws_start(len(y)):
        mean, std = _column_stats(X, cols) if standardize else (np.zeros(cols.size), np.ones(cols.size))
        std[std == 0] = 1.0
        w, b, n_iter, extra = _working_set(X, y, cols, mean, std, C, seed, tol)
    else:
        _refuse_if_short(len(X), cols.size,
                         "fit with solve='working-set' (PROBE_SOLVE: working-set), which reaches the "
                         "same minimiser a block of columns at a time")
        Xc = X.astype(np.float64) if columns is None else X[:, cols].astype(np.float64)
        if standardize:
            mean, std = Xc.mean(0), Xc.std(0)
            std[std == 0] = 1.0
            Xc -= mean
            Xc /= std
        else:
            mean, std = np.zeros(cols.size), np.ones(cols.size)
        w, b, n_iter = _liblinear(Xc, y, C, penalty, seed, tol)
        del Xc
    nz = np.flatnonzero(w)
    return Probe(model_id, n_layers, n_neurons, cols[nz], w[nz], b, C,
                 mean[nz], std[nz], standardize, label_scheme,
                 dict(config or {}, penalty=penalty, solver=solver, seed=seed, tol=float(tol),
                      n_iter=n_iter, max_iter=MAX_ITER, solve=solve, **extra,
                      fit_s=round(time.monotonic() - t0, 3)))


FIT_INFO = ("penalty", "solver", "seed", "tol", "n_iter", "max_iter", "solve", "ws_rounds", "ws_size",
            "fit_s")  # what fit_probe adds to a probe's config: the fit's own record
FIT_CACHE_VERSION = 1  # part of a stored fit's key, beside the fitting code's own text (fit_code)
_HASH_BYTES = 1 << 26  # bytes of X hashed at a time by rows_key


# the code that computes a fit, as defined here (bound now: a function patched later, in a test
# say, does not change what fit_code reads)
_FIT_CODE_OF = (fit_probe, _working_set, _liblinear, _loss_gradient, _column_stats, _block, _penalty_kw,
                _ws_start, _check_finite)


@functools.lru_cache(maxsize=1)
def fit_code() -> str:
    """A digest of the code that computes a fit (:func:`fit_probe` and the functions it calls,
    :func:`files.code_digest`): part of a stored fit's key."""
    return code_digest(_FIT_CODE_OF)


def rows_key(X: np.ndarray, y: np.ndarray) -> str:
    """A digest of training rows ``X, y``: their shapes, types and every byte (``X`` read a block
    of rows at a time, so a memory-mapped matrix is not loaded whole)."""
    X, y = np.asarray(X), np.asarray(y)
    h = hashlib.blake2b(digest_size=20)
    h.update(repr((X.shape, X.dtype.str, y.shape, y.dtype.str)).encode())
    step = max(1, _HASH_BYTES // max(1, X.itemsize * (X.shape[1] if X.ndim > 1 else 1)))
    for a in range(0, len(X), step):
        h.update(np.ascontiguousarray(X[a:a + step]).data)
    h.update(np.ascontiguousarray(y).data)
    return h.hexdigest()


class FitCache:
    """Fitted probes kept on disk, so that a long run resumes after an interruption without
    fitting again what it fitted before: chapter 2's C grid and its checks are some 25 fits,
    minutes each at the paper's scale (``bench/bench_probe.py``).

    :meth:`fit` is :func:`fit_probe` that first looks for ``<folder>/<key>.json``. The key is a
    digest of everything that decides the fit's weights: the training rows (:func:`rows_key`:
    every byte), ``C`` and every other argument of :func:`fit_probe` but ``config`` (which it
    only records), scikit-learn's version, this module's solver constants and the fitting
    code itself (:func:`fit_code`). A stored fit is
    returned exactly as it was fitted (JSON keeps float64 values exactly), with the ``config``
    of the call that asks for it and its own record of the fit (:data:`FIT_INFO`, its seconds
    ``fit_s`` included). A damaged file is reported and fitted again. ``hits`` and ``misses``
    count the fits reused and the fits computed."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.hits = self.misses = 0

    def key(self, X: np.ndarray, y: np.ndarray, C: float, rows: str | None = None, **kw) -> str:
        """The name a fit of ``X, y`` at ``C`` with :func:`fit_probe`'s ``kw`` is stored under;
        ``rows``: :func:`rows_key` of ``X, y`` when already computed (a C grid hashes its rows once)."""
        import inspect

        import sklearn

        call = inspect.signature(fit_probe).bind(X, y, C, **kw)
        call.apply_defaults()  # an argument left out and the same one given by its default: one key
        kw = {k: v for k, v in call.arguments.items() if k not in ("X", "y", "C", "config", "columns")}
        cols = call.arguments["columns"]
        spec = {"rows": rows or rows_key(X, y), "C": float(C), "kw": kw,
                "columns": None if cols is None else hashlib.blake2b(
                    np.asarray(cols, dtype=np.int64).tobytes(), digest_size=20).hexdigest(),
                "sklearn": sklearn.__version__, "version": FIT_CACHE_VERSION, "code": fit_code(),
                "constants": [MAX_ITER, WS_START, WS_NEAR, _BLOCK]}
        return settings_hash(spec, 40)

    def fit(self, X: np.ndarray, y: np.ndarray, C: float, rows: str | None = None, **kw) -> Probe:
        """:func:`fit_probe` ``(X, y, C, **kw)``, or the same fit read from the folder."""
        path = self.folder / f"{self.key(X, y, C, rows, **kw)}.json"
        if path.exists():
            try:
                stored = Probe.load(path)
            except (ValueError, TypeError) as e:
                print(f"the stored fit {path} is damaged ({e}): fitting it again")
            else:
                self.hits += 1
                record = {k: v for k, v in stored.config.items() if k in FIT_INFO}
                stored.config = dict(kw.get("config") or {}, **record)
                return stored
        p = fit_probe(X, y, C, **kw)
        p.save(path)
        self.misses += 1
        return p

    def summary(self) -> str:
        """How many fits were reused and computed, in words."""
        if not self.hits:
            return f"{noun(self.misses, 'probe fit')} computed (kept in {self.folder})"
        return (f"{noun(self.hits, 'probe fit')} read from {self.folder} (an earlier run's), "
                f"{self.misses} computed")


def fit_with(fits: FitCache | None, X: np.ndarray, y: np.ndarray, C: float, **kw) -> Probe:
    """:func:`fit_probe`, through ``fits`` (:class:`FitCache`) when one is given."""
    return fits.fit(X, y, C, **kw) if fits is not None else fit_probe(X, y, C, **kw)


def refit_kw(probe: Probe, **overrides) -> dict:
    """The keyword arguments of :func:`fit_probe` (and :func:`select_C`) that refit ``probe``'s
    recipe on other rows: its penalty, standardisation, solver seed, tolerance and route, the model's
    shape, id and label scheme; ``overrides`` replace any of them."""
    return {"penalty": probe.config.get("penalty", "l1"), "standardize": probe.standardize,
            "seed": probe.config.get("seed", 0), "tol": probe.config.get("tol", DEFAULT_TOL),
            "solve": probe.config.get("solve", "full"),
            "n_layers": probe.n_layers, "n_neurons": probe.n_neurons, "model_id": probe.model_id,
            "label_scheme": probe.label_scheme, **overrides}


def eq4_objective(probe: Probe, X: np.ndarray, y: np.ndarray) -> float:
    """Eq. 4 as :func:`fit_probe` fits it (liblinear penalises the intercept like a weight), at
    ``probe``'s weights on its training rows ``X, y``: ``|w|_1 + |b| + C * sum of log-losses``
    for L1 (``(|w|^2 + b^2) / 2`` for L2). Two fits of the same rows and C compare by it: the
    lower is nearer the minimum."""
    from .stats import _binary

    y = _binary(y)
    if len(y) != len(np.asarray(X)):
        raise ValueError(f"{len(y)} labels for {len(np.asarray(X))} rows of X")
    z = probe.decision_function(X)
    loss = float(np.sum(np.logaddexp(0.0, -(2 * y - 1) * z)))
    w, b = np.asarray(probe.weights, dtype=np.float64), float(probe.intercept)
    penalty = (np.abs(w).sum() + abs(b) if probe.config.get("penalty", "l1") == "l1"
               else (np.square(w).sum() + b * b) / 2)
    return float(penalty + probe.C * loss)


def select_C(X: np.ndarray, y: np.ndarray, X_val: np.ndarray, y_val: np.ndarray,
             Cs: Sequence[float], suppression_score: Callable[[Probe], float] | None = None,
             fits: FitCache | None = None, **fit_kw) -> tuple[Probe, list[dict]]:
    """Grid search over ``C`` (Section 6.1.3): fit on ``X, y``, score on held-out answers.

    Score = held-out accuracy (``X_val``: answer-token features, ``y_val``: 1 = hallucinated)
    plus, when given, ``suppression_score(probe)`` (the paper adds the model's TriviaQA accuracy
    with the probe's H-Neurons suppressed): a number, or a dict with the number as ``"score"``
    and its parts, which join the row. Ties go to the higher held-out AUROC, then to the
    sparser probe (:func:`chosen_row`). Returns the chosen probe and one row per ``C``. ``fit_kw`` must give
    ``n_layers`` and ``n_neurons`` (:func:`fit_probe`); NaN or infinite rows in ``X`` or
    ``X_val`` are refused. ``fits``: a :class:`FitCache`, so that a rerun after an interruption
    refits only the values of ``C`` not yet fitted.
    """
    from .stats import accuracy, auroc

    if not len(Cs):
        raise ValueError("the C grid is empty")
    _check_finite(np.asarray(X_val), "X_val")  # X is checked by fit_probe
    rows, probes = [], []
    data = rows_key(X, y) if fits is not None else None  # hashed once for the whole grid
    for C in progress(list(Cs), "C grid", "C values"):
        p = fits.fit(X, y, C, rows=data, **fit_kw) if fits is not None else fit_probe(X, y, C, **fit_kw)
        s = p.decision_function(X_val)
        row = {"C": float(C), "n_nonzero": int(p.flat.size), "n_h_neurons": p.h_neurons().size,
               "per_mille": p.h_neurons().per_mille, "train_accuracy": accuracy(y, p.predict(X)),
               "val_accuracy": accuracy(y_val, (s > 0).astype(int)), "val_auroc": auroc(y_val, s)}
        v = suppression_score(p) if suppression_score else None
        if isinstance(v, dict):  # the term and its parts (pipeline.suppression_hook)
            row.update({k: float(x) for k, x in v.items() if k != "score"})
            v = v["score"]
        row["suppression"] = None if v is None else float(v)
        row["score"] = row["val_accuracy"] + (row["suppression"] or 0.0)
        rows.append(row)
        probes.append(p)
    best = chosen_row(rows)
    for i, r in enumerate(rows):
        r["chosen"] = i == best
    return probes[best], rows


def chosen_row(rows: Sequence[dict], score: Callable[[dict], float] | None = None) -> int:
    """The index of the grid row :func:`select_C` chooses: the highest ``score(row)`` (default:
    the row's ``"score"``; rounded to 12 decimals, so sums equal on paper tie), then the higher
    held-out AUROC, then fewer H-Neurons. Another ``score`` tells what another criterion would
    have chosen on the same fits."""
    score = score or (lambda r: r["score"])
    key = [(round(score(r), 12), np.nan_to_num(r["val_auroc"], nan=0.0), -r["n_h_neurons"])
           for r in rows]
    return max(range(len(rows)), key=lambda i: key[i])


def subset_probes(X: np.ndarray, y: np.ndarray, neuron_sets: Sequence[NeuronSet], C: float = 1.0,
                  penalty: str = "l2", standardize: bool = True, **fit_kw) -> list[Probe]:
    """One classifier per neuron set, trained on those neurons only (Table 1's baseline).

    The paper's random baseline is a classifier on as many randomly selected neurons (chapter
    3 trains one on as many as the probe reads and one on as many as there are H-Neurons). By
    default an L2 classifier on standardised features: with a handful of neurons sparsity is
    not wanted, and this gives the baseline its best chance.
    Training the H-Neurons themselves the same way gives the like-for-like comparison.
    """
    out = []
    for i, ns in enumerate(neuron_sets):
        if ns.size == 0:
            raise ValueError("cannot train a classifier on an empty neuron set")
        if ns.n_layers * ns.n_neurons != np.shape(X)[-1]:
            raise ValueError(f"neuron set {i} is of a {ns.n_layers} x {ns.n_neurons} model "
                             f"({ns.n_layers * ns.n_neurons} neurons), but X has "
                             f"{np.shape(X)[-1]} columns: use a set of the features' model")
        out.append(fit_probe(X, y, C, penalty=penalty, standardize=standardize, columns=ns.flat,
                             n_layers=ns.n_layers, n_neurons=ns.n_neurons, **fit_kw))
    return out
