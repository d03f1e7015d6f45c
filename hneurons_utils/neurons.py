"""What single H-Neurons do: per-neuron statistics and token-level CETT (chapter 2).

The probe's weights say which neurons it uses together; they do not say how strongly any one
of them separates the classes. :func:`neuron_table` reads each selected neuron's own CETT
features, class by class, with a single-neuron AUROC for each of the probe's two contrasts;
:func:`token_view` shows one neuron's CETT token by token on one response, with the answer
tokens marked, so a reader can see where in a response it fires.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import torch

from .features import Example, FeatureSet, token_layout, turn_suffix
from .models import LoadedModel
from .probe import Probe
from .stats import auroc


def neuron_name(flat: int, n_neurons: int) -> str:
    """``"L<layer>/<neuron>"`` for a layer-major flat index."""
    return f"L{int(flat) // n_neurons}/{int(flat) % n_neurons}"


def top_h_neurons(probe: Probe, k: int | None = None) -> np.ndarray:
    """Flat indices of the H-Neurons (positive weights), largest weight first; at most ``k``."""
    keep = probe.weights > 0
    order = np.argsort(-probe.weights[keep], kind="stable")
    flat = probe.flat[keep][order]
    return flat if k is None else flat[:k]


def neuron_table(probe: Probe, fs: FeatureSet, examples: Sequence[Example],
                 k: int | None = None) -> pd.DataFrame:
    """One row per H-Neuron (largest weight first, at most ``k``): its weight and, over
    ``examples`` (labels 1 = hallucinated, 0 = faithful), its mean answer-token CETT per class,
    its mean other-token CETT, and two single-neuron AUROCs.

    ``AUROC vs faithful``: hallucinated against faithful answer tokens (the question Table 1
    asks). ``AUROC 3-vs-1``: hallucinated answer tokens against faithful answer tokens and the
    other tokens of every response, the probe's own labels. 0.5 is no separation; a value
    below 0.5 means the neuron fires *less* on hallucinated answers.
    """
    labels = np.array([e.label for e in examples])
    if not set(labels.tolist()) <= {0, 1}:
        raise ValueError("neuron_table needs labelled examples (label 1 = hallucinated, 0 = faithful)")
    if not ((labels == 1).any() and (labels == 0).any()):
        raise ValueError(f"neuron_table needs both classes; got {int((labels == 1).sum())} "
                         f"hallucinated and {int((labels == 0).sum())} faithful examples")
    flat = top_h_neurons(probe, k)
    if flat.size and fs.answer.shape[1:] != (probe.n_layers, probe.n_neurons):
        raise ValueError(f"features are {fs.answer.shape[1]} x {fs.answer.shape[2]} but the probe "
                         f"was fitted on {probe.n_layers} x {probe.n_neurons} neurons")
    weight = dict(zip(probe.flat.tolist(), probe.weights.tolist()))
    rows = []
    for f in flat.tolist():
        v = neuron_values(probe, fs, examples, f)
        hall, faith, other = v["hallucinated answers"], v["faithful answers"], v["other tokens"]
        rest = np.concatenate([faith, other])
        rows.append({"neuron": neuron_name(f, probe.n_neurons), "layer": f // probe.n_neurons,
                     "weight": weight[f],
                     "CETT hallucinated answers": float(hall.mean()),
                     "CETT faithful answers": float(faith.mean()),
                     "CETT other tokens": float(other.mean()) if other.size else np.nan,
                     "AUROC vs faithful": auroc(np.r_[np.ones(hall.size), np.zeros(faith.size)],
                                                np.r_[hall, faith]),
                     "AUROC 3-vs-1": auroc(np.r_[np.ones(hall.size), np.zeros(rest.size)],
                                           np.r_[hall, rest])})
    cols = ["neuron", "layer", "weight", "CETT hallucinated answers", "CETT faithful answers",
            "CETT other tokens", "AUROC vs faithful", "AUROC 3-vs-1"]
    return pd.DataFrame(rows, columns=cols)


def neuron_values(probe: Probe, fs: FeatureSet, examples: Sequence[Example], flat: int
                  ) -> dict[str, np.ndarray]:
    """One neuron's CETT features over ``examples``, in the probe's three groups:
    hallucinated answer tokens, faithful answer tokens, other tokens (NaN rows dropped).
    ``flat`` must be a whole number in ``0..n_layers * n_neurons - 1`` (a negative one would
    silently name another neuron)."""
    if isinstance(flat, bool) or not isinstance(flat, (int, np.integer)):
        raise TypeError(f"flat must be a layer-major neuron index (int), got {flat!r}")
    if not 0 <= flat < probe.n_features:
        raise ValueError(f"flat = {flat} is outside the probe's neurons 0..{probe.n_features - 1} "
                         f"({probe.n_layers} layers x {probe.n_neurons} neurons)")
    labels = np.array([e.label for e in examples])
    idx = fs.index([e.key for e in examples])
    l, j = int(flat) // probe.n_neurons, int(flat) % probe.n_neurons
    a = fs.answer[idx, l, j].astype(np.float64)
    o = fs.other[idx, l, j].astype(np.float64)
    out = {"hallucinated answers": a[labels == 1], "faithful answers": a[labels == 0],
           "other tokens": o}
    return {k: v[~np.isnan(v)] for k, v in out.items()}


def token_view(m: LoadedModel, ex: Example, flat: Sequence[int], span_rule: str = "alias",
               whole_prompt: bool = False) -> pd.DataFrame:
    """CETT of the neurons ``flat`` (layer-major indices) at every token of one response.

    Tokenised exactly as the features are (prompt + response + turn suffix, no special tokens
    added), one forward pass. One row per response token (``whole_prompt=True``: every token)
    with its text, whether it is an answer token (the span rule of the features), and one
    column per neuron named ``L<layer>/<neuron>``.
    """
    from .cett import cett_tokens

    flat = [int(f) for f in flat]
    n_neurons, n_layers = m.adapter.n_neurons, m.adapter.n_layers
    bad = [f for f in flat if not 0 <= f < n_layers * n_neurons]
    if bad:
        raise ValueError(f"neuron indices {bad} are outside this model's {n_layers} x {n_neurons}")
    ids, offsets, answer, _ = token_layout(m.tokenizer, ex, turn_suffix(m.tokenizer), span_rule)
    batch = {"input_ids": torch.tensor([ids], device=m.device),
             "attention_mask": torch.ones(1, len(ids), dtype=torch.long, device=m.device)}
    layers = sorted({f // n_neurons for f in flat})
    per_layer = cett_tokens(m, batch, layers)  # [len(layers), 1, T, N]
    keep = np.ones(len(ids), bool) if whole_prompt else (
        (offsets[:, 1] > 0) & (offsets[:, 0] < len(ex.response)))
    out = pd.DataFrame({"token": [m.tokenizer.decode([t]) for t in ids], "answer": answer})
    for f in flat:
        out[neuron_name(f, n_neurons)] = per_layer[layers.index(f // n_neurons), 0, :,
                                                   f % n_neurons].float().cpu().numpy()
    return out[keep].reset_index(drop=True)


def held_out_summary(probe: Probe, fs: FeatureSet, held: Sequence[Example], held_out: bool = True
                     ) -> dict:
    """The whole probe's AUROC on the answer tokens of ``held`` (the yardstick for the single
    neurons of :func:`neuron_table`) and what ``held`` holds: responses per class, questions,
    and whether they were held out (False: the training responses, for runs too small to hold
    any question out)."""
    from .pipeline import answer_matrix

    X, y = answer_matrix(fs, held)
    return {"probe_held_out_auroc": auroc(y, probe.decision_function(X)),
            "held_out_counts": {"hallucinated": int(y.sum()), "faithful": int((y == 0).sum()),
                                "questions": len({e.key.rsplit("#", 1)[0] for e in held}),
                                "held_out": bool(held_out)}}


def side_by_side(train: pd.DataFrame, held: pd.DataFrame, k: int | None = None) -> pd.DataFrame:
    """:func:`neuron_table` on the training responses with the held-out AUROCs beside them
    (first ``k`` rows), indexed by neuron; every column computed on the training responses (the
    CETT means and the AUROCs) is tagged ``(train)``."""
    auc = ["AUROC vs faithful", "AUROC 3-vs-1"]
    trained = [c for c in train.columns if c.startswith(("CETT ", "AUROC "))]
    out = (train.rename(columns={c: f"{c} (train)" for c in trained})
           .join(held[auc].rename(columns={c: f"{c} (held out)" for c in auc})))
    return out.head(len(out) if k is None else k).set_index("neuron")


def neuron_reading(train: pd.DataFrame, held: pd.DataFrame, probe_auroc: float | None = None,
                   strong: float = 0.7) -> str:
    """What :func:`neuron_table` shows, in words: how many H-Neurons separate hallucinated
    from faithful answers on their own (held-out AUROC at least ``strong``), how many point
    the other way (below 0.5), the median and the best against the whole probe's held-out
    AUROC, and how many separate the probe's 3-vs-1 contrast better than the faithful-answer one."""
    if not len(train):
        return "The probe selected no H-Neuron: there is no single neuron to read."
    if list(held["neuron"]) != list(train["neuron"]):
        raise ValueError("the two tables must list the same neurons in the same order")
    a_held, a_train = held["AUROC vs faithful"].to_numpy(), train["AUROC vs faithful"].to_numpy()
    n = len(held)
    med = float(np.nanmedian(a_held))
    # a value that two decimals would print as the threshold (0.698 as 0.70 beside "at least 0.7")
    fmt = ".3f" if (np.abs(np.r_[a_held, med] - strong) < 0.005).any() else ".2f"
    out = [f"On their own, {int((a_held >= strong).sum())} of {n} H-Neurons separate held-out "
           f"hallucinated from faithful answers with an AUROC of at least {strong:g}, and "
           f"{(k := int((a_held < 0.5).sum()))} fire{'s' if k == 1 else ''} more on faithful answers "
           "(AUROC below 0.5); the "
           f"median is {med:{fmt}} held out against {float(np.nanmedian(a_train)):{fmt}} on the "
           "training responses they were selected on"]
    if probe_auroc is not None and np.isfinite(probe_auroc):
        i = int(np.nanargmax(a_held))
        best, name = float(a_held[i]), held["neuron"].iloc[i]
        if probe_auroc > best + 0.02:
            tail = (f": above every single H-Neuron (the best, {name}, reaches {best:{fmt}}), so the "
                    "detection combines neurons none of which does it alone")
        elif best > probe_auroc + 0.02:
            tail = (f": below the best single H-Neuron, {name}, at {best:{fmt}}, the largest of {n} "
                    "values on the same few responses (so favoured by its selection): on these "
                    "responses the probe's other weights do not add to it, which does not show that "
                    "one neuron carries the signal")
        else:
            tail = f": about what the best single H-Neuron, {name}, reaches ({best:{fmt}})"
        out.append(f"the whole probe reaches {probe_auroc:.2f} on the same held-out responses "
                   "(which chose its C, so slightly in its favour)" + tail)
    top = held.iloc[0]
    out.append(f"the H-Neuron with the largest weight, {top['neuron']}, reaches "
               f"{top['AUROC vs faithful']:{fmt}} against faithful answers and "
               f"{top['AUROC 3-vs-1']:.2f} on the probe's contrast, held out")
    three = held["AUROC 3-vs-1"]
    more = int(((three > held["AUROC vs faithful"]) & (three > 0.5)).sum())
    neither = int(((three > held["AUROC vs faithful"]) & (three <= 0.5)).sum())
    out.append(f"on the held-out responses, {more} of {n} separate the probe's own contrast "
               "(hallucinated answer tokens against faithful answers and all other tokens) above "
               "chance and better than hallucinated from faithful answers"
               + (": for those, part of what they carry is 'this is an answer token', which the "
                  "3-vs-1 labels reward" if more else "")
               + (f" ({neither} more score{'s' if neither == 1 else ''} higher on that contrast "
                  f"but not above 0.5, so separate{'s' if neither == 1 else ''} neither)"
                  if neither else ""))
    return "; ".join(out) + "."
