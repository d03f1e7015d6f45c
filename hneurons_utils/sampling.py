"""Response generation: prompts, batched sampling, stop-at-newline (paper Section 2.2).

The paper samples 10 answers per TriviaQA question at temperature 1.0, top_k 50, top_p 0.9,
with the question followed by "Respond with the answer only, without any explanation."
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import torch

from .models import LoadedModel

INSTRUCTION = "Respond with the answer only, without any explanation."


@dataclass(frozen=True)
class GenConfig:
    """Decoding settings. The defaults are the paper's identification sampling (Section 2.2)."""

    do_sample: bool = True
    temperature: float = 1.0
    top_k: int = 50
    top_p: float = 0.9
    max_new_tokens: int = 24
    num_return_sequences: int = 1
    stop_at_newline: bool = True  # cut each answer at its first newline

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


def generate_texts(m: LoadedModel, prompts: Sequence[str], cfg: GenConfig = GREEDY,
                   seed: int | None = None) -> list[list[str]]:
    """Generate for one batch of prompts; returns ``num_return_sequences`` answers per prompt.

    Prompts are left-padded so every row's continuation starts at the same position. Chat
    prompts already carry their special tokens, so none are added.
    """
    if seed is not None:
        torch.manual_seed(seed)
    enc = m.tokenizer(list(prompts), return_tensors="pt", padding=True, add_special_tokens=False)
    enc = {k: v.to(m.device) for k, v in enc.items()}
    kw = dict(max_new_tokens=cfg.max_new_tokens, do_sample=cfg.do_sample,
              num_return_sequences=cfg.num_return_sequences,
              pad_token_id=m.tokenizer.pad_token_id)
    if cfg.do_sample:
        kw.update(temperature=cfg.temperature, top_k=cfg.top_k, top_p=cfg.top_p)
    else:
        kw.update(temperature=None, top_k=None, top_p=None)
    if cfg.stop_at_newline:
        kw.update(stop_strings=["\n"], tokenizer=m.tokenizer)
    with torch.no_grad():
        out = m.hf.generate(**enc, **kw)
    texts = m.tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    n = cfg.num_return_sequences
    return [[_cut(t, cfg.stop_at_newline) for t in texts[i * n:(i + 1) * n]]
            for i in range(len(prompts))]
