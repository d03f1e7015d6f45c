"""Response generation and collection: prompts, batched sampling, the consistency filter
(paper Section 6.1.1).

The paper samples 10 answers per TriviaQA question at temperature 1.0, top_k 50, top_p 0.9,
with the question followed by "Respond with the answer only, without any explanation.", and
keeps the questions answered correctly in all 10 samples or incorrectly in all 10.
:func:`collect_responses` writes one JSONL record per question as it goes and resumes after an
interruption (one writer per file: a second run on it fails, :func:`files.writer_lock`);
:func:`consistency_split` and :func:`balanced_sample` build the training set.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import sys
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch
from .judges import RULE_JUDGE_VERSION, aliases_outside
from .checks import positive_int, text_list
from .files import settings_hash, write_text_atomic, writer_lock
from .progress import progress

from .cett import encode, left_pad_positions, on_device
from .models import LoadedModel

INSTRUCTION = "Respond with the answer only, without any explanation."


@dataclass(frozen=True)
class GenConfig:
    """Decoding settings. The defaults are the paper's identification sampling (Section 6.1.1)."""

    do_sample: bool = True
    temperature: float = 1.0
    top_k: int = 50
    top_p: float = 0.9
    max_new_tokens: int = 24
    num_return_sequences: int = 1
    stop_at_newline: bool = True  # cut each answer at its first newline

    def __post_init__(self) -> None:
        """Refuse settings generate would reject deep inside transformers, or read wrongly."""
        positive_int(self.max_new_tokens, "GenConfig.max_new_tokens")
        positive_int(self.num_return_sequences, "GenConfig.num_return_sequences")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 0:
            raise ValueError(f"GenConfig.top_k must be a whole number >= 0 (0: off), got {self.top_k!r}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"GenConfig.top_p must lie in (0, 1], got {self.top_p!r}")
        if self.do_sample and not self.temperature > 0:
            raise ValueError(f"GenConfig.temperature must be > 0 when sampling, got "
                             f"{self.temperature!r} (for greedy decoding set do_sample=False)")
        if not self.num_return_sequences == 1 and not self.do_sample:
            raise ValueError("GenConfig: greedy decoding (do_sample=False) returns one answer per "
                             f"prompt, not {self.num_return_sequences}")

    def as_dict(self) -> dict:
        return asdict(self)


GREEDY = GenConfig(do_sample=False, temperature=1.0, top_k=0, top_p=1.0)


def build_prompt(tokenizer, question: str, instruction: str | None = INSTRUCTION,
                 chat: bool = True) -> str:
    """The model input for one question: chat template (instruct models) or plain text.

    Base models have no chat template; the paper prompts them with ``question + "\\nAnswer:"``
    (pass ``chat=False, instruction=None`` and append the suffix yourself).
    """
    text = question if not instruction else f"{question} {instruction}"
    if not chat:
        return text
    if getattr(tokenizer, "chat_template", None) is None:
        raise ValueError(f"{type(tokenizer).__name__} has no chat template: this looks like a base "
                         "model; use chat=False (and the base-model prompt format)")
    return tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                         add_generation_prompt=True)


def _cut(text: str, stop_at_newline: bool) -> str:
    text = text.lstrip()
    return text.split("\n", 1)[0].strip() if stop_at_newline else text.strip()


def _can_share_prefill(m: LoadedModel, cfg: GenConfig, enc: dict) -> bool:
    """Whether the prompt can be encoded once for all ``num_return_sequences`` samples."""
    return (cfg.num_return_sequences > 1 and not m.remote and enc["input_ids"].shape[1] > 1
            and m.hf.config.model_type != "gpt2")  # GPT-2's absolute positions need position_ids


def _generate_shared_prefill(m: LoadedModel, enc: dict, kw: dict) -> torch.Tensor:
    """``generate`` with ``num_return_sequences`` copies sharing one prefill of the prompt.

    ``generate`` copies each prompt n times *before* the forward pass, so the prompt (the
    dominant cost for short answers on a CPU) would be encoded n times. Here all but the last
    prompt token are encoded once, the KV cache is repeated n times, and ``generate`` continues
    from it: the same distribution of samples for about 1/n of the prompt cost.
    """
    n = kw.pop("num_return_sequences")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    pos = left_pad_positions(mask)
    prefix = m.hf(input_ids=ids[:, :-1], attention_mask=mask[:, :-1], position_ids=pos[:, :-1],
                  use_cache=True, logits_to_keep=1).past_key_values
    if not hasattr(prefix, "batch_repeat_interleave"):  # a cache type that cannot be copied:
        # the n copies made here, as generate would (keyed decoding is greedy in its eyes)
        return m.hf.generate(**{k: v.repeat_interleave(n, 0) for k, v in enc.items()}, **kw)
    prefix.batch_repeat_interleave(n)
    return m.hf.generate(input_ids=ids.repeat_interleave(n, 0),
                         attention_mask=mask.repeat_interleave(n, 0),
                         past_key_values=prefix, num_return_sequences=1, **kw)


def generate_kwargs(m: LoadedModel, cfg: GenConfig) -> dict[str, Any]:
    """``generate`` keyword arguments for ``cfg`` (shared by sampling and steering)."""
    kw: dict[str, Any] = dict(max_new_tokens=cfg.max_new_tokens, do_sample=cfg.do_sample,
                              num_return_sequences=cfg.num_return_sequences,
                              pad_token_id=m.tokenizer.pad_token_id)
    if cfg.do_sample:
        kw.update(temperature=cfg.temperature, top_k=cfg.top_k, top_p=cfg.top_p)
    else:
        kw.update(temperature=None, top_k=None, top_p=None)
    if cfg.stop_at_newline:
        kw.update(stop_strings=["\n"], tokenizer=m.tokenizer)
    return kw


def row_seed(*parts: Any) -> int:
    """A stable 63-bit seed named by ``parts`` (the same on every run and machine)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "big") >> 1


class KeyedSampler:
    """A logits processor that makes greedy decoding draw a sample, row by row, from its own seed.

    Adding independent Gumbel noise to the log-probabilities and taking the arg max draws a token
    with exactly the softmax probabilities (the Gumbel-max trick), so ``generate`` with
    ``do_sample=False`` and this processor last (after the temperature, top-k and top-p
    warpers, :func:`keyed_generate_kwargs`) samples from the same distribution as
    ``do_sample=True``. The difference is where the random numbers come from: row ``r`` reads
    its own generator, seeded ``keys[r]`` on the device of the logits (a CPU and a GPU draw
    different numbers from one key), one vocabulary-sized draw per step. A row's sample
    therefore depends on its prompt, its intervention and its key, not on which other rows
    share the generate call or in which order; and rows given the same key get the same
    random numbers at every step (common random numbers, chapter 4's conditions of one item).
    """

    def __init__(self, keys: Sequence[int]):
        self.keys = [int(k) for k in keys]
        self.generators: list[torch.Generator] = []

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if scores.shape[0] != len(self.keys):
            raise ValueError(f"KeyedSampler has {len(self.keys)} row keys but the batch has "
                             f"{scores.shape[0]} rows (one key per generated sequence)")
        if not self.generators:  # on the scores' device (a GPU draws its own numbers there)
            self.generators = [torch.Generator(device=scores.device).manual_seed(k) for k in self.keys]
        tiny = torch.finfo(torch.float32).tiny
        u = torch.stack([torch.rand(scores.shape[-1], generator=g, device=scores.device)
                         for g in self.generators])
        gumbel = -torch.log(-torch.log(u.clamp_min(tiny)))
        return scores + gumbel.to(scores.dtype)


def keyed_generate_kwargs(m: LoadedModel, cfg: GenConfig, keys: Sequence[int] | None
                          ) -> dict[str, Any]:
    """:func:`generate_kwargs`, sampling row by row from ``keys`` (:class:`KeyedSampler`).

    Greedy settings, or ``keys=None``, give :func:`generate_kwargs` unchanged (``keys`` then
    do not matter). Otherwise the warpers ``generate`` would add for ``cfg`` (temperature,
    top-k, top-p, in that order) are passed explicitly, followed by the sampler, and decoding
    is greedy over their output. Local models only: the processor holds its generators here.
    """
    kw = generate_kwargs(m, cfg)
    if keys is None or not cfg.do_sample:
        return kw
    from transformers import (LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper,
                              TopPLogitsWarper)

    if getattr(m, "remote", False):
        raise ValueError("keyed sampling runs its random numbers locally; a remote (NDIF) model "
                         "samples with generate's own seed (pass no keys)")
    warpers = ([TemperatureLogitsWarper(cfg.temperature)] if cfg.temperature != 1.0 else []) \
        + ([TopKLogitsWarper(cfg.top_k)] if cfg.top_k else []) \
        + ([TopPLogitsWarper(cfg.top_p)] if cfg.top_p < 1.0 else [])
    kw.update(do_sample=False, temperature=None, top_k=None, top_p=None,
              logits_processor=LogitsProcessorList([*warpers, KeyedSampler(keys)]))
    return kw


def generate_traced(m: LoadedModel, enc: dict, kw: dict[str, Any],
                    step: Callable[[], None] | None = None) -> torch.Tensor:
    """``generate`` through nnsight (``remote=m.remote``): the way to generate on NDIF, where
    the local model holds no weights. ``step()``, when given, runs inside the trace at each of
    up to ``max_new_tokens`` generation steps (chapter 4 scales neurons there).

    Returns the token ids ``[rows, prompt + new]`` on the CPU. A generation that stops early
    (EOS, stop string) cuts the step loop short, so the result is read in a second ``invoke``
    where it is still saved (see the nnsight pitfalls appendix).
    """
    import warnings

    import nnsight

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*was never reached.*")
        with m.lm.generate(remote=m.remote, **kw) as tracer:
            with tracer.invoke(dict(enc)):
                if step is not None:
                    for _ in tracer.iter[:kw["max_new_tokens"]]:
                        step()
            with tracer.invoke():
                out = nnsight.save(tracer.result)
    return out.cpu()


def check_keys(prompts: Sequence, keys: Sequence[int] | None) -> None:
    """Refuse sampling keys that are not one per prompt (None: no keys, nothing to check)."""
    if keys is not None and len(keys) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but {len(keys)} sampling keys")


def sample_keys(keys: Sequence[int], n: int) -> list[int]:
    """One key per generated row from one key per prompt: sample ``j`` of prompt ``i`` gets
    ``row_seed(keys[i], j)``, in ``generate``'s row order (prompt-major)."""
    return [row_seed(int(k), j) for k in keys for j in range(n)]


def generate_texts(m: LoadedModel, prompts: Sequence[str], cfg: GenConfig = GREEDY,
                   seed: int | None = None, keys: Sequence[int] | None = None
                   ) -> list[list[str]]:
    """Generate for one batch of prompts; returns ``num_return_sequences`` answers per prompt.

    Prompts are left-padded so every row's continuation starts at the same position. Chat
    prompts already carry their special tokens, so none are added. Under sampling, ``keys``
    (one per prompt, :func:`row_seed`) give each prompt's samples their own random numbers
    (:func:`sample_keys`, :class:`KeyedSampler`): what a prompt draws does not depend on the
    other prompts of the batch. Without keys, or on a remote model, all rows share one stream
    seeded ``seed``.
    """
    prompts = text_list(prompts, "prompts")
    check_keys(prompts, keys)
    if seed is not None:
        torch.manual_seed(seed)
    enc = on_device(m, encode(m, prompts, add_special_tokens=False))
    if keys is None or m.remote:
        kw = generate_kwargs(m, cfg)
    else:
        kw = keyed_generate_kwargs(m, cfg, sample_keys(keys, cfg.num_return_sequences))
    with torch.no_grad():
        if m.remote:  # NDIF: the local copy has no weights, so generation runs in a trace there
            out = generate_traced(m, enc, kw)
        elif _can_share_prefill(m, cfg, enc):
            out = _generate_shared_prefill(m, enc, kw)
        elif keys is not None and kw["num_return_sequences"] > 1:  # keyed decoding is greedy in
            n = kw.pop("num_return_sequences")  # generate's eyes: the copies are made here
            out = m.hf.generate(**{k: v.repeat_interleave(n, 0) for k, v in enc.items()}, **kw)
        else:
            out = m.hf.generate(**enc, **kw)
    texts = m.tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    n = cfg.num_return_sequences
    return [[_cut(t, cfg.stop_at_newline) for t in texts[i * n:(i + 1) * n]]
            for i in range(len(prompts))]


# ---------------------------------------------------------------- collection (Section 6.1.1)

PAPER_SAMPLING = GenConfig(num_return_sequences=10)  # 10 samples, T=1.0, top_k 50, top_p 0.9


class EmptyBalancedSetError(ValueError):
    """A class of a balanced set has no example, so no balanced set can be built."""


def template_id(tokenizer: Any) -> str:
    """A short hash of the tokenizer's chat template (its source text, so a template that
    writes today's date still has one id), "none" without one: part of what a sampled file
    depends on, as the model name does not pin it."""
    t = getattr(tokenizer, "chat_template", None)
    return "none" if t is None else settings_hash({"chat_template": t})


def _chunk_seed(seed: int, qids: Sequence[str]) -> int:
    """The RNG seed of one batch: a function of the run seed and the batch's questions only,
    so a resumed run draws exactly what an uninterrupted one would have drawn."""
    return int(settings_hash({"seed": seed, "qids": list(qids)}), 16) % (2**31)


def read_jsonl(path: str | Path, repair: bool = False) -> list[dict]:
    """The records of a JSONL file ([] if absent). A last line without its newline is kept if it
    is a whole JSON object (a file edited by hand) and dropped if not (a torn, interrupted
    write); with ``repair=True`` the file is mended so that appending continues cleanly (the
    newline added, or the torn line cut)."""
    path = Path(path)
    if not path.exists():
        return []
    raw = path.read_bytes()
    good = raw[: raw.rfind(b"\n") + 1]  # everything up to the last complete line
    tail = raw[len(good):]
    records = []
    for i, line in enumerate(good.decode("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}, line {i}: not JSON ({e}); delete the file to recollect")
    if tail.strip():
        try:
            last = json.loads(tail.decode("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            pass  # torn: dropped
        else:
            records.append(last)
            good = raw + b"\n"
    if repair and good != raw:
        if len(good) > len(raw):
            with open(path, "ab") as f:
                f.write(b"\n")
        else:
            with open(path, "r+b") as f:
                f.truncate(len(good))
    return records


def append_jsonl(path: Path, records: Sequence[dict]) -> None:
    """Append records as complete lines in one write, flushed to disk."""
    with open(path, "a", encoding="utf-8") as f:
        f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        f.flush()
        os.fsync(f.fileno())


def judge_id(judge: Callable) -> str:
    """What names a judge in the records it labelled: its ``judge_id`` attribute (the rule
    judges carry their rule version), else its qualified name or repr (an :class:`LLMJudge`'s
    names its endpoint and model)."""
    return getattr(judge, "judge_id", None) or getattr(judge, "__qualname__", None) or repr(judge)


def _resume_records(path: Path, key: str, items: Sequence, judge: Callable | None = None,
                    template: str | None = None) -> dict[str, dict]:
    """The records already in ``path`` by question id, checked against this run.

    Raises when a record was sampled with other settings (``key``), when an item's id occurs
    twice, when a stored question's text differs from the item's (the dataset changed), or when
    its record names another chat template than ``template`` (records written before the
    template's id joined them cannot tell, and pass): resuming then would mix two runs in one
    file. Records of this run's ``items`` labelled by
    another judge (or another version of the rule judge) keep their responses and are
    labelled again by ``judge``; the file is then rewritten in one atomic step, with a note on
    stderr. Records of other questions are kept as they are (a later run that asks for them
    labels them again then).
    """
    done = {r["qid"]: r for r in read_jsonl(path, repair=True)}
    for r in done.values():
        if r.get("settings") != key:
            raise ValueError(f"{path} holds question {r['qid']} sampled with other settings "
                             f"({r.get('settings')} != {key}); delete it or use another OUTPUT_DIR")
    if judge is not None:
        jid, asked = judge_id(judge), {it.qid for it in items}
        stale = [r for r in done.values() if r.get("judge") != jid and r["qid"] in asked]
        for r in stale:
            r["labels"] = [judge(r["question"], resp, r["answers"]) for resp in r["responses"]]
            r["judge"] = jid
        if stale:
            write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n"
                                            for r in done.values()))
            print(f"{path.name}: {len(stale)} stored record(s) labelled again by {jid} (their "
                  "responses kept)", file=sys.stderr)
    seen: dict[str, Any] = {}
    for it in items:
        if it.qid in seen:
            raise ValueError(f"question id {it.qid!r} occurs twice in the items to sample; "
                             "ids must be unique (each is one record of the JSONL)")
        seen[it.qid] = it
        if it.qid in done and done[it.qid]["question"] != it.question:
            raise ValueError(f"{path} holds {it.qid!r} as {done[it.qid]['question']!r}, but it is now "
                             f"{it.question!r}: the dataset changed; delete the file or use another "
                             "OUTPUT_DIR")
        stored = done[it.qid].get("template", template) if it.qid in done else template
        if template is not None and stored != template:
            raise ValueError(f"{path} holds {it.qid!r} sampled under another chat template "
                             f"({done[it.qid]['template']}, now {template}); delete the file or "
                             "use another OUTPUT_DIR")
    return done


def collect_responses(m: LoadedModel, items: Sequence, path: str | Path,
                      cfg: GenConfig = PAPER_SAMPLING, judge: Callable | None = None,
                      batch_size: int = 16, seed: int = 0, on_batch: Callable | None = None,
                      desc: str = "sampling", prompt_fn: Callable | None = None,
                      generate: Callable | None = None,
                      prompt_settings: dict | None = None) -> list[dict]:
    """Sample ``cfg.num_return_sequences`` answers per question, judge them, append to JSONL.

    Section 6.1.1: the question plus :data:`INSTRUCTION` in the chat template, sampled with the
    paper's decoding settings. One record per question (``qid, dataset, question, answers,
    prompt, responses, labels, judge, settings``) is written after each batch of ``batch_size``
    questions, so an interrupted run resumes where it stopped: questions already in ``path``
    are skipped, none is lost or written twice. Each question's samples are drawn from its own
    keys (``row_seed(seed, qid)``, :func:`sample_keys`, :class:`KeyedSampler`), so what a
    question draws does not depend on the other questions, ``batch_size`` or the ``items``
    list around it (up to float rounding in differently padded batches, which can move a
    near-tie token). Questions are batched by prompt length (a stable sort over all ``items``),
    and a batch with any missing question is generated whole and only its missing records are
    written, so a resumed run repeats the uninterrupted one's batches exactly. A remote (NDIF)
    model samples each batch from one stream seeded by the run seed and the batch's questions.
    ``judge(question, response, answers)`` returns "correct"/"incorrect"/"refusal" (default:
    :func:`echo_free_rule_judge`). ``on_batch(i, records)`` is called after batch ``i`` is
    written. Returns the records of ``items``, in their order.

    Another prompt format (the base model's in Figure 4a) plugs in through ``prompt_fn(tokenizer,
    question) -> str`` and ``generate(m, prompts, cfg, seed, keys) -> [[answer, ...], ...]`` (default
    :func:`build_prompt` and :func:`generate_texts`; ``keys`` is one sampling key per prompt, or
    None to sample from ``seed``'s stream); ``prompt_settings`` names that format in
    the settings key (default: the instruction), so files of two formats never mix. The key
    also holds the decoding settings, the model and ``seed``, and each record the chat
    template's id (:func:`template_id`): a file sampled otherwise is refused with an error,
    never mixed in. The judge is not part of it: records labelled by
    another judge (or rule version) are labelled again, their responses kept. While it runs it
    holds ``path``'s writer lock (:func:`files.writer_lock`): another run on the same file
    raises :class:`files.FileBusyError` instead of writing the same questions twice.
    """
    judge = judge or echo_free_rule_judge
    prompt_fn = prompt_fn or build_prompt
    generate = generate or generate_texts
    path = Path(path)
    positive_int(batch_size, "batch_size")
    path.parent.mkdir(parents=True, exist_ok=True)
    key = settings_hash({"gen": cfg.as_dict(), "model": m.name, "seed": seed,
                         **({"draws": "per question"} if _keyed(m, cfg) else {}),
                         **(prompt_settings or {"instruction": INSTRUCTION})})
    with writer_lock(path):  # a second writer of this file fails instead of duplicating records
        return _collect(m, items, path, cfg, judge, batch_size, seed, on_batch, desc, prompt_fn,
                        generate, key)


def _keyed(m: LoadedModel, cfg: GenConfig) -> bool:
    """Whether collection draws each question's samples from its own keys: sampling on a local
    model (a remote one samples from its batch's seeded stream, :func:`keyed_generate_kwargs`)."""
    return cfg.do_sample and not getattr(m, "remote", False)


def _collect(m, items, path, cfg, judge, batch_size, seed, on_batch, desc, prompt_fn, generate,
             key):
    """:func:`collect_responses`'s work, under its writer lock."""
    jid, tid, keyed = judge_id(judge), template_id(m.tokenizer), _keyed(m, cfg)
    done = _resume_records(path, key, items, judge, tid)
    prompt = {it.qid: prompt_fn(m.tokenizer, it.question) for it in items}
    order = sorted(items, key=lambda it: len(prompt[it.qid]))  # similar lengths share a batch
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    batches = [b for b in batches if any(it.qid not in done for it in b)]  # whole batches are skipped
    bar = progress(batches, desc, "batches")
    for i, batch in enumerate(bar):
        # a batch is always generated whole (its draws depend on all its rows) and only its
        # missing records are written: a resumed run writes what an uninterrupted one would
        prompts = [prompt[it.qid] for it in batch]
        texts = generate(m, prompts, cfg, seed=_chunk_seed(seed, [it.qid for it in batch]),
                         keys=[row_seed(seed, it.qid) for it in batch] if keyed else None)
        recs = [{"qid": it.qid, "dataset": it.dataset, "question": it.question,
                 "answers": list(it.answers), "prompt": p, "responses": rs,
                 "labels": [judge(it.question, r, it.answers) for r in rs], "judge": jid,
                 "settings": key, "template": tid}
                for it, p, rs in zip(batch, prompts, texts) if it.qid not in done]
        append_jsonl(path, recs)
        done.update((r["qid"], r) for r in recs)
        if on_batch is not None:
            on_batch(i, recs)
    return [done[it.qid] for it in items if it.qid in done]


def echo_free_aliases(question: str, answers: Sequence[str]) -> list[str]:
    """The gold aliases the question itself does not contain.

    Some TriviaQA alias lists repeat words of the question ("How is the Chilean Pine ...
    known in the UK?" lists "Chilean pine"), so a response that merely echoes the question
    would contain them. The judge and the answer-span rule both use what this returns.
    Raises when every alias is in the question ("... in men or women?", gold "women"): no
    rule can then tell an answer from an echo (the QA loaders drop such questions,
    ``data.answer_in_question``). An empty ``answers`` (NonExist) stays empty.
    """
    kept = aliases_outside(question, answers)
    if answers and not kept:
        raise ValueError(f"every gold answer of {question!r} is written in the question "
                         f"({list(answers)!r}): an echo of the question would be judged correct; "
                         "leave such questions out (data.drop_answer_in_question)")
    return kept


def echo_free_rule_judge(question: str, response: str, answers: Sequence[str]) -> str:
    """``judges.rule_judge`` on :func:`echo_free_aliases`: a response that merely echoes the
    question does not count as correct."""
    from .judges import rule_judge

    return rule_judge(response, echo_free_aliases(question, answers))


echo_free_rule_judge.judge_id = f"echo-free rule judge v{RULE_JUDGE_VERSION}"


def label_counts(records: Iterable[dict]) -> dict[str, int]:
    """How many sampled answers were judged correct / incorrect / refusal."""
    c = Counter(lab for r in records for lab in r["labels"])
    return {k: c.get(k, 0) for k in ("correct", "incorrect", "refusal")}


def greedy_labels(greedy: Iterable[dict] | None) -> dict[str, str]:
    """Question id -> the label of its one greedy answer (a greedy screen's records; empty for
    None, when no screen ran)."""
    return {r["qid"]: r["labels"][0] for r in greedy or ()}


def agreement_threshold(n_samples: int, min_agreement: float = 1.0) -> int:
    """How many of ``n_samples`` must carry one label for the question to be consistent:
    ceil(min_agreement * n), robust to float error (0.56 * 25 is 14.000000000000002)."""
    if not 0.5 < min_agreement <= 1.0:
        raise ValueError(f"min_agreement must be in (0.5, 1], got {min_agreement}")
    return math.ceil(min_agreement * n_samples - 1e-9)


def consistent_label(labels: Sequence[str], min_agreement: float = 1.0) -> str:
    """"correct" or "incorrect" if at least ``min_agreement`` of the samples carry that label
    (:func:`agreement_threshold`), else "mixed". ``min_agreement=1.0`` is the paper's filter
    (Section 6.1.1): every sample correct, or every sample incorrect (a refusal breaks
    consistency)."""
    need = agreement_threshold(len(labels), min_agreement)
    for lab in ("correct", "incorrect"):
        if labels and list(labels).count(lab) >= need:
            return lab
    return "mixed"


def consistency_split(records: Iterable[dict], min_agreement: float = 1.0
                      ) -> dict[str, list[dict]]:
    """Questions answered consistently correctly, consistently incorrectly, and the rest
    ("mixed"), by :func:`consistent_label` on each question's sampled labels."""
    out: dict[str, list[dict]] = {"correct": [], "incorrect": [], "mixed": []}
    for r in records:
        out[consistent_label(r["labels"], min_agreement)].append(r)
    return out


def representative_response(responses: Sequence[str]) -> str:
    """The most frequent of a question's sampled answers (first on ties), as the official
    code picks the one response per consistent question whose features are used."""
    if not responses:
        raise ValueError("a question with no sampled response has no representative")
    counts = Counter(responses)
    return max(responses, key=lambda r: (counts[r], -responses.index(r)))


def balanced_sample(pos: Sequence, neg: Sequence, n_per_class: int | None, seed: int,
                    what: str = "set") -> tuple[list, list]:
    """``min(len(pos), len(neg), n_per_class)`` random examples of each class (seeded).

    Raises :class:`EmptyBalancedSetError` naming ``what`` and both counts when a class is empty.
    """
    n = min(len(pos), len(neg), n_per_class if n_per_class is not None else len(pos))
    if n <= 0:
        raise EmptyBalancedSetError(
            f"cannot balance the {what}: {len(pos)} examples of class 1 (hallucinated) and "
            f"{len(neg)} of class 0 (faithful) (cap {n_per_class}); screen more questions")
    rng = random.Random(seed)
    return rng.sample(list(pos), n), rng.sample(list(neg), n)
