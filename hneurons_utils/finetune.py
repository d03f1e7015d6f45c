"""A small, seeded instruction-tuning run: the offline "instruct" twin of a base model (Section 4).

The paper compares six vendor base / instruction-tuned pairs (Section 4, Figure 4). No such
matched pair installs offline, so the origin chapter builds its own: the base model is tuned
with plain supervised fine-tuning on chat-formatted TriviaQA questions (the prompt exactly as
:func:`hneurons_utils.sampling.build_prompt` writes it, the target a gold alias followed by the
end-of-turn marker), with the loss on the answer tokens only. This is a controlled, small
alignment step, not the vendor's instruction tuning (which adds far more data, RLHF and
safety tuning); the chapter says what that does and does not let us conclude.

The tuned model is written once to a safetensors folder under ``models.cache_dir()/sft``,
keyed by the base model, the settings and the training questions, and reused afterwards. A
run interrupted part-way resumes from its last checkpoint (trainable weights and AdamW moments
as safetensors, step count as JSON; never pickle).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from .files import settings_hash
from .judges import normalize_answer
from .sampling import INSTRUCTION, build_prompt

START_OF_TURN, END_OF_TURN = "<start_of_turn>", "<end_of_turn>"  # Gemma's turn markers
CHAT_TEMPLATE = (
    "{% if bos_token %}{{ bos_token }}{% endif %}"
    "{% for message in messages %}" + START_OF_TURN +
    "{% if message['role'] == 'assistant' %}model{% else %}{{ message['role'] }}{% endif %}{{ '\\n' }}"
    "{{ message['content'] | trim }}" + END_OF_TURN + "\n{% endfor %}"
    "{% if add_generation_prompt %}" + START_OF_TURN + "model\n{% endif %}")
IGNORE = -100  # label of tokens that carry no loss (the prompt, padding)


def set_chat_template(tokenizer: Any) -> Any:
    """Give a base model's tokenizer the simple Gemma-style chat template used for tuning.

    Gemma's own turn markers are single tokens in its vocabulary; for other tokenizers they
    are plain text. Returns the tokenizer (modified in place).
    """
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def end_of_turn_id(tokenizer: Any) -> int | None:
    """The id of the end-of-turn marker when it is one token of the vocabulary, else None."""
    ids = tokenizer.encode(END_OF_TURN, add_special_tokens=False)
    return ids[0] if len(ids) == 1 else None


def _usable_alias(alias: str) -> bool:
    a = alias.strip()
    return (0 < len(a) <= 40 and a.isascii() and not any(c in a for c in "(),%")
            and "list of" not in a.lower() and any(c.isalnum() for c in a))


def _capitalised(alias: str) -> bool:
    words = alias.split()
    return not alias.isupper() and all(w[0].isupper() or w[0].isdigit() for w in words)


def pick_answer(aliases: Sequence[str]) -> str | None:
    """The alias the tuned model is taught to say for a TriviaQA question, or None.

    TriviaQA lists aliases in no useful order ("Prize fight" before "Boxing"), so the target is
    the clean alias (ASCII, no parentheses or commas, at most 40 characters) contained, as
    whole normalised words, in the most other aliases; ties go to capitalised words, then to
    the shorter alias.
    """
    clean = [a.strip() for a in aliases if _usable_alias(a)]
    norms = [normalize_answer(a) for a in clean]
    keep = [i for i, n in enumerate(norms) if n]
    if not keep:
        return None

    def support(i: int) -> int:
        return sum(f" {norms[i]} " in f" {norms[k]} " for k in keep)

    best = max(keep, key=lambda i: (support(i), _capitalised(clean[i]), -len(clean[i])))
    return clean[best]


@dataclass
class SFTExample:
    """One tokenised chat exchange: ``labels`` is ``IGNORE`` on the prompt, the ids elsewhere."""

    qid: str
    input_ids: list[int]
    labels: list[int]


def sft_example(tokenizer: Any, qid: str, question: str, answer: str,
                instruction: str | None = INSTRUCTION) -> SFTExample:
    """Tokenise prompt and answer separately so the prompt is an exact prefix of the sequence.

    The prompt is :func:`build_prompt` (chat template, the paper's instruction); the target is
    ``answer + END_OF_TURN + "\\n"``, so the model learns to answer and then to stop.
    """
    prompt = build_prompt(tokenizer, question, instruction)
    p_ids = tokenizer.encode(prompt, add_special_tokens=False)
    a_ids = tokenizer.encode(answer + END_OF_TURN + "\n", add_special_tokens=False)
    return SFTExample(qid, p_ids + a_ids, [IGNORE] * len(p_ids) + a_ids)


def sft_examples(tokenizer: Any, items: Sequence[Any], instruction: str | None = INSTRUCTION,
                 max_len: int = 96) -> list[SFTExample]:
    """Chat examples from QA items (``qid``, ``question``, ``answers``); unusable items dropped.

    An item is dropped when no alias is a clean target (:func:`pick_answer`) or the exchange
    is longer than ``max_len`` tokens.
    """
    out = []
    for it in items:
        answer = pick_answer(it.answers)
        if answer is None:
            continue
        ex = sft_example(tokenizer, it.qid, it.question, answer, instruction)
        if len(ex.input_ids) <= max_len:
            out.append(ex)
    return out


@dataclass(frozen=True)
class SFTConfig:
    """Settings of the tuning run; the cache key is built from all of them.

    Embeddings (tied to the output layer in Gemma) stay frozen by default: they are 60% of
    Gemma-3-270M's weights, the drift analysis does not read them, and freezing them saves
    most of the optimiser's memory. Every transformer block (attention, FFN, norms) is tuned.
    """

    steps: int = 120
    batch_size: int = 8
    lr: float = 3e-5
    warmup_fraction: float = 0.125  # share of the steps with a linear warm-up
    weight_decay: float = 0.0
    seed: int = 0
    max_len: int = 96
    train_embeddings: bool = False
    checkpoint_every: int = 40

    def as_dict(self) -> dict:
        return asdict(self)


def batch_schedule(n_examples: int, cfg: SFTConfig) -> np.ndarray:
    """Example indices of every step, ``[steps, batch_size]``: seeded epochs without replacement."""
    if n_examples < cfg.batch_size:
        raise ValueError(f"{n_examples} training examples cannot fill a batch of {cfg.batch_size}")
    rng = np.random.default_rng(cfg.seed)
    need = cfg.steps * cfg.batch_size
    order = np.concatenate([rng.permutation(n_examples)
                            for _ in range(math.ceil(need / n_examples))])
    return order[:need].reshape(cfg.steps, cfg.batch_size)


def exposure(n_examples: int, cfg: SFTConfig | dict) -> dict:
    """How much of its ``n_examples`` chat examples a run with ``cfg`` (an :class:`SFTConfig` or
    its ``as_dict()``, as :func:`sft_meta` stores it) saw, from its :func:`batch_schedule`:
    ``presentations`` (steps x batch size), ``distinct`` examples seen at least once,
    ``n_examples`` and ``epochs`` (presentations / n_examples)."""
    if isinstance(cfg, dict):
        from dataclasses import fields

        cfg = SFTConfig(**{f.name: cfg[f.name] for f in fields(SFTConfig) if f.name in cfg})
    order = batch_schedule(n_examples, cfg)
    return {"presentations": int(order.size), "distinct": int(np.unique(order).size),
            "n_examples": int(n_examples), "epochs": order.size / n_examples}


def collate(examples: Sequence[SFTExample], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` ``[B, T]``."""
    t = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), t), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), t), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), t), dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e.input_ids)
        ids[i, :n], labels[i, :n], mask[i, :n] = (torch.tensor(e.input_ids),
                                                  torch.tensor(e.labels), 1)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def answer_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean next-token cross-entropy over the answer tokens only.

    The output layer is applied only where a label exists: with Gemma's 262k-word vocabulary
    that is most of the saving of a step. Gemma 2's final logit soft-capping is honoured.
    """
    dev = next(model.parameters()).device  # batches are collated on the CPU
    batch = {k: v.to(dev) for k, v in batch.items()}
    hidden = model.base_model(input_ids=batch["input_ids"],
                              attention_mask=batch["attention_mask"]).last_hidden_state
    target = batch["labels"][:, 1:]  # position t predicts token t + 1
    keep = target != IGNORE  # [B, T-1]
    logits = model.get_output_embeddings()(hidden[:, :-1][keep])  # [n_answer_tokens, vocab]
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return torch.nn.functional.cross_entropy(logits.float(), target[keep])


def trainable_parameters(model: torch.nn.Module, cfg: SFTConfig) -> dict[str, torch.nn.Parameter]:
    """Name -> parameter of everything tuned (all but the input/output embeddings by default)."""
    frozen = set()
    if not cfg.train_embeddings:
        frozen = {id(model.get_input_embeddings().weight), id(model.get_output_embeddings().weight)}
    params = {}
    for name, p in model.named_parameters():
        p.requires_grad_(id(p) not in frozen)
        if p.requires_grad:
            params[name] = p
    return params


def _lr_factor(step: int, cfg: SFTConfig) -> float:
    """Linear warm-up, then cosine decay to zero."""
    warm = max(1, round(cfg.warmup_fraction * cfg.steps))
    if step < warm:
        return (step + 1) / warm
    done = (step - warm) / max(1, cfg.steps - warm)
    return 0.5 * (1 + math.cos(math.pi * done))


def save_checkpoint(ckpt: Path, params: dict[str, torch.nn.Parameter],
                    opt: torch.optim.AdamW, step: int, losses: list[float]) -> None:
    """Weights and AdamW moments as safetensors plus the step count as JSON, written atomically."""
    from safetensors.torch import save_file

    tensors = {f"param/{n}": p.detach().cpu().contiguous() for n, p in params.items()}
    for n, p in params.items():
        state = opt.state.get(p, {})
        for k in ("exp_avg", "exp_avg_sq"):
            if k in state:
                tensors[f"{k}/{n}"] = state[k].cpu().contiguous()
    tmp = ckpt.with_name(ckpt.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(tmp / "state.safetensors"))
    (tmp / "state.json").write_text(json.dumps({"step": step, "losses": losses}))
    old = ckpt.with_name(ckpt.name + ".old")
    if ckpt.exists():  # the old checkpoint is set aside, not deleted, until the new one is in place
        shutil.rmtree(old, ignore_errors=True)
        ckpt.rename(old)
    tmp.rename(ckpt)
    shutil.rmtree(old, ignore_errors=True)


def recover_checkpoint(ckpt: Path) -> None:
    """After a crash between :func:`save_checkpoint`'s two renames only ``<ckpt>.old`` is
    whole: put it back, so the run resumes from it instead of from step 0."""
    old = ckpt.with_name(ckpt.name + ".old")
    if not (ckpt / "state.json").exists() and (old / "state.json").exists():
        shutil.rmtree(ckpt, ignore_errors=True)
        old.rename(ckpt)


def load_checkpoint(ckpt: Path, params: dict[str, torch.nn.Parameter],
                    opt: torch.optim.AdamW) -> tuple[int, list[float]]:
    """Restore what :func:`save_checkpoint` wrote; returns ``(next step, losses so far)``."""
    from safetensors.torch import load_file

    tensors = load_file(str(ckpt / "state.safetensors"))
    meta = json.loads((ckpt / "state.json").read_text())
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(tensors[f"param/{n}"])
            if f"exp_avg/{n}" in tensors:
                opt.state[p] = {"step": torch.tensor(float(meta["step"])),  # on the parameter's device
                                "exp_avg": tensors[f"exp_avg/{n}"].to(p.device, copy=True),
                                "exp_avg_sq": tensors[f"exp_avg_sq/{n}"].to(p.device, copy=True)}
    return int(meta["step"]), list(meta["losses"])


def train_sft(model: torch.nn.Module, examples: Sequence[SFTExample], cfg: SFTConfig,
              pad_id: int, ckpt: Path | None = None,
              log: Callable[[str], None] | None = print) -> list[float]:
    """Tune ``model`` in place with AdamW on the answer-token loss; returns the loss of each step.

    With ``ckpt`` a checkpoint is written every ``cfg.checkpoint_every`` steps and an existing
    one is resumed from (the batch schedule is a function of the seed, so a resumed run sees
    the same batches).
    """
    torch.manual_seed(cfg.seed)
    params = trainable_parameters(model, cfg)
    opt = torch.optim.AdamW(params.values(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if ckpt:
        recover_checkpoint(ckpt)
    start, losses = (load_checkpoint(ckpt, params, opt) if ckpt and (ckpt / "state.json").exists()
                     else (0, []))
    schedule, t0 = batch_schedule(len(examples), cfg), time.perf_counter()
    model.train()
    for step in range(start, cfg.steps):
        for group in opt.param_groups:  # the schedule is a function of the step: exact on resume
            group["lr"] = cfg.lr * _lr_factor(step, cfg)
        loss = answer_loss(model, collate([examples[i] for i in schedule[step]], pad_id))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        done = step + 1
        if log and (done % max(1, cfg.steps // 10) == 0 or done == cfg.steps):
            rate = (time.perf_counter() - t0) / (done - start)
            log(f"SFT step {done}/{cfg.steps}  loss {np.mean(losses[-10:]):.3f}  "
                f"{rate:.1f} s/step  ~{rate * (cfg.steps - done) / 60:.1f} min left")
        if ckpt and done % cfg.checkpoint_every == 0 and done < cfg.steps:
            save_checkpoint(ckpt, params, opt, done, losses)
    model.eval()
    return losses


def sft_key(base_id: str, cfg: SFTConfig, qids: Sequence[str],
            instruction: str | None = INSTRUCTION, device: str = "cpu") -> str:
    """A short hash of everything that determines the tuned weights (the device type too,
    other than the CPU's, since a GPU rounds differently: the CPU's key stays as it was)."""
    settings = {"base": str(base_id), "cfg": cfg.as_dict(), "qids": sorted(qids),
                "instruction": instruction, "template": CHAT_TEMPLATE}
    if torch.device(device).type != "cpu":
        settings["device"] = torch.device(device).type
    return settings_hash(settings, 12)


def sft_meta(folder: str | Path) -> dict:
    """What :func:`instruct_twin` recorded about a tuned folder (settings, losses, timing)."""
    path = Path(folder) / "sft_meta.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {folder} was not written by instruct_twin")
    return json.loads(path.read_text())


def instruct_twin(base_source: str | Path, items: Sequence[Any], cfg: SFTConfig,
                  cache: Path | None = None, instruction: str | None = INSTRUCTION,
                  log: Callable[[str], None] | None = print, device: str = "cpu") -> Path:
    """The base model after our small instruction-tuning run, as a cached safetensors folder.

    ``base_source``: a folder (or hub id) ``from_pretrained`` reads; ``items``: TriviaQA
    training questions, which the caller keeps disjoint from every identification and
    evaluation question. The folder name holds :func:`sft_key`, so other settings write
    another folder; an interrupted run resumes from ``<folder>.ckpt``. ``device``: where to
    train (``"cuda"`` on a GPU; ``"auto"``: the first GPU if there is one, else the CPU); the
    folder is written from the CPU either way.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .models import cache_dir
    from .profiles import model_key

    tok = set_chat_template(AutoTokenizer.from_pretrained(base_source))
    examples = sft_examples(tok, items, instruction, cfg.max_len)
    if device == "auto":  # a model this small needs no sharding
        device = "cuda" if torch.cuda.is_available() else "cpu"
    key = sft_key(model_key(str(base_source)), cfg, [e.qid for e in examples], instruction, device)
    folder = (cache or cache_dir()) / "sft" / f"{model_key(str(base_source))}-sft-{key}"
    if (folder / "config.json").exists():
        return folder
    if log:
        log(f"tuning {base_source} on {len(examples)} chat examples ({len(items) - len(examples)} "
            f"items dropped: no clean target, or longer than {cfg.max_len} tokens) -> {folder}")
    model = AutoModelForCausalLM.from_pretrained(base_source, dtype=torch.float32).to(device)
    t0 = time.perf_counter()
    ckpt = folder.with_name(folder.name + ".ckpt")
    losses = train_sft(model, examples, cfg, tok.pad_token_id, ckpt, log)
    model.to("cpu")
    eot = end_of_turn_id(tok)
    if eot is not None:  # generation stops at the end of the model's turn
        model.generation_config.eos_token_id = sorted({tok.eos_token_id, eot})
    tmp = folder.with_name(folder.name + ".partial")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    (tmp / "sft_meta.json").write_text(json.dumps({
        "base": str(base_source), "config": cfg.as_dict(), "instruction": instruction,
        "device": torch.device(device).type,
        "n_examples": len(examples), "qids": [e.qid for e in examples], "losses": losses,
        "train_seconds": time.perf_counter() - t0}, indent=1))
    tmp.rename(folder)
    shutil.rmtree(ckpt, ignore_errors=True)
    return folder


def disjoint_items(pool: Sequence[Any], n: int, exclude: Sequence[Any], seed: int = 0) -> list:
    """``n`` seeded items of ``pool`` sharing neither id nor question text with ``exclude``.

    The tuning questions must never be identification or evaluation questions: a question
    seen in tuning would be answered from memory, not from the knowledge the probe reads.
    Question texts are compared after answer normalisation (case, punctuation, articles).
    """
    import random

    ids = {it.qid for it in exclude}
    texts = {normalize_answer(it.question) for it in exclude}
    free = [it for it in pool if it.qid not in ids and normalize_answer(it.question) not in texts]
    if n > len(free):
        raise ValueError(f"asked for {n} tuning questions, only {len(free)} of {len(pool)} are "
                         "disjoint from the identification and evaluation questions")
    return random.Random(seed).sample(free, n)
