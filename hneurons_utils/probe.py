"""Neuron sets and the sparse hallucination probe (paper Section 2.3).

A neuron is addressed by (layer, index in the FFN intermediate layer). Features are laid out
layer-major: flat index = layer * n_neurons + neuron.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class NeuronSet:
    """A set of FFN neurons: parallel arrays ``layers`` and ``neurons`` (sorted, unique)."""

    layers: np.ndarray  # [k] int
    neurons: np.ndarray  # [k] int
    n_layers: int
    n_neurons: int  # per layer

    def __post_init__(self) -> None:
        layers = np.asarray(self.layers, dtype=np.int64).ravel()
        neurons = np.asarray(self.neurons, dtype=np.int64).ravel()
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
        flat = np.asarray(flat, dtype=np.int64)
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


def random_neuron_set(k: int, n_layers: int, n_neurons: int, seed: int,
                      like: NeuronSet | None = None) -> NeuronSet:
    """``k`` distinct random neurons; with ``like``, as many per layer as ``like`` has.

    The layer-matched version is the behaviour chapter's negative control; the unmatched one
    is Table 1's random-neuron baseline.
    """
    rng = np.random.default_rng(seed)
    if like is None:
        if k > n_layers * n_neurons:
            raise ValueError(f"cannot draw {k} neurons from {n_layers * n_neurons}")
        return NeuronSet.from_flat(rng.choice(n_layers * n_neurons, size=k, replace=False),
                                   n_layers, n_neurons)
    layers, neurons = [], []
    for layer, count in enumerate(like.layer_counts()):
        if count:
            layers.append(np.full(count, layer))
            neurons.append(rng.choice(n_neurons, size=count, replace=False))
    if not layers:
        return NeuronSet(np.array([], int), np.array([], int), n_layers, n_neurons)
    return NeuronSet(np.concatenate(layers), np.concatenate(neurons), n_layers, n_neurons)
