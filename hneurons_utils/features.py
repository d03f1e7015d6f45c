"""Response-level CETT features: the classifier's input (paper Section 6.1.2, Eq. 3).

For each response the paper averages CETT (Eq. 2) over its answer tokens and, separately, over
all other tokens, in every layer, giving two vectors of ``layers x neurons`` values::

    x_answer = mean_{t in A} CETT_{., t},     x_other = mean_{t not in A} CETT_{., t}

The answer tokens ``A`` come from :mod:`answer_spans` (a rule stands in for the paper's GPT-4o
extraction); "other" is every other token of prompt and response (``other_tokens="all"``, as in
Eq. 3 and the official code) or only the response's other tokens (``"output"``), including the
end-of-turn marker so that the set is never empty. One traced forward pass per batch over
prompt + response gives both means (:func:`cett.cett_means`). Features are stored as float16
npz, keyed by example, with a hash of the settings inside that is checked on load, so a rerun
reuses them and an interrupted run resumes.
"""

from __future__ import annotations

import json
import os
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from .checks import positive_int
from .progress import progress

from .answer_spans import AnswerSpan, locate_answer_span, span_stats, token_mask_from_span
from .cett import MEASURES, cett_means, column_norms, left_pad_positions
from .judges import check_aliases
from .models import LoadedModel
from .files import settings_hash
from .sampling import echo_free_aliases

OTHER_TOKENS = ("all", "output")
# "alias": the gold alias where the response holds one, else the content rule (answer_spans);
# "content": the content rule for every response, so both classes' spans come from one rule
SPAN_RULES = ("alias", "content")
_MARK = "\u2063RESPONSE\u2063"


@dataclass(frozen=True)
class FeatureConfig:
    """How features are computed. ``other_tokens``, ``span_rule`` and ``measure`` are part of the
    cache key; ``batch_size`` and ``save_every_s`` only pace the work (padding masks keep a
    response's features independent of its batch). ``batch_size`` must be an int >= 1."""

    other_tokens: str = "all"  # "all" (paper, Eq. 3) or "output" (response tokens only)
    batch_size: int = 8  # responses per traced forward pass
    save_every_s: float = 60.0  # rewrite the npz at most this often while extracting
    span_rule: str = "alias"  # "alias": gold alias first (the default rule); "content": one rule for all
    measure: str = "cett"  # "cett" (the paper); "activation": mean |z| (cett.MEASURES)

    def __post_init__(self) -> None:
        positive_int(self.batch_size, "FeatureConfig.batch_size")
        if self.measure not in MEASURES:
            raise ValueError(f"measure must be one of {MEASURES}, got {self.measure!r}")
        if self.other_tokens not in OTHER_TOKENS:
            raise ValueError(f"other_tokens must be one of {OTHER_TOKENS}, got {self.other_tokens!r}")
        if self.span_rule not in SPAN_RULES:
            raise ValueError(f"span_rule must be one of {SPAN_RULES}, got {self.span_rule!r}")


@dataclass
class Example:
    """One response to featurise: ``key`` is unique (e.g. ``qid#0``); ``label`` 1 = hallucinated.
    Refused: a key that is not a str (the features file stores keys as text, so another type
    would never match its cached row again) and ``answers`` that is not a list or tuple of str
    (a bare string would be read letter by letter)."""

    key: str
    prompt: str
    response: str
    answers: list[str]
    question: str
    label: int = -1
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_key(self.key)
        check_aliases(self.answers, f"{self.key}: ")


def check_key(key) -> str:
    """``key`` if it is a str, else a TypeError naming it."""
    if not isinstance(key, str):
        raise TypeError(f"example keys must be str (e.g. 'qid#0'), got {key!r} of type "
                        f"{type(key).__name__}: the features file stores keys as text, so it "
                        "would never match this key again and append a duplicate row each run")
    return key


@dataclass
class FeatureSet:
    """Features of many responses: ``answer`` and ``other`` are ``[n, layers, neurons]`` float16."""

    keys: np.ndarray  # [n] str
    answer: np.ndarray  # [n, L, N] float16
    other: np.ndarray  # [n, L, N] float16
    methods: np.ndarray  # [n] str: how the answer span was found
    n_tokens: np.ndarray  # [n, 2] int: answer tokens, other tokens
    settings: dict
    digests: np.ndarray | None = None  # [n] str: what each row was computed on ("" = unknown)

    def __post_init__(self) -> None:
        if self.digests is None:  # files written before digests were stored
            self.digests = np.full(len(self.keys), "", dtype="<U1")

    def index(self, keys: Sequence[str]) -> np.ndarray:
        """Row numbers of ``keys`` (KeyError naming the first missing one)."""
        pos = {k: i for i, k in enumerate(self.keys.tolist())}
        missing = [k for k in keys if k not in pos]
        if missing:
            raise KeyError(f"no features for {missing[0]!r} ({len(missing)} keys missing)")
        return np.array([pos[k] for k in keys], dtype=np.int64)

    def flat(self, which: str, keys: Sequence[str]) -> np.ndarray:
        """``[len(keys), layers * neurons]`` float32, layer-major (``probe.NeuronSet`` order)."""
        arr = getattr(self, which)[self.index(keys)]
        return arr.reshape(len(keys), -1).astype(np.float32)

    def span_stats(self) -> dict[str, int]:
        """How each answer span was found: counts of ``alias``/``content``/``fallback``."""
        return span_stats(AnswerSpan(0, 0, m) for m in self.methods.tolist())


# 2: answer spans skip gold aliases that the question repeats (as the judge does), and a
# period after a lone digit ends the first sentence ("The answer is 7. It ...").
# 3: an opening interjection that ends its own sentence ("Sure! The answer is Lyon") is
# skipped before the first sentence is taken.
# 4: a content span that restates the question gives way to the next clause or sentence
# (answer_spans.content_span), so an echoed question is not taken for the answer.
FEATURE_VERSION = 4


FEATURE_TEXT = {"cett": "mean CETT (Eq. 2) over answer / other tokens",
                "activation": "mean |z| (down-projection input) over answer / other tokens"}


def feature_settings(m: LoadedModel, cfg: FeatureConfig) -> dict:
    """What the cached features depend on (their cache key)."""
    return {**m.identity(), "other_tokens": cfg.other_tokens,
            "feature": FEATURE_TEXT[cfg.measure], "version": FEATURE_VERSION,
            **({"span_rule": cfg.span_rule} if cfg.span_rule != "alias" else {}),  # old keys stay valid
            **({"measure": cfg.measure} if cfg.measure != "cett" else {})}


def turn_suffix(tokenizer) -> str:
    """What the chat template writes after an assistant message (e.g. ``<|im_end|>\\n``)."""
    if getattr(tokenizer, "chat_template", None) is None:
        return tokenizer.eos_token or ""
    text = tokenizer.apply_chat_template([{"role": "user", "content": "q"},
                                          {"role": "assistant", "content": _MARK}], tokenize=False)
    return text[text.index(_MARK) + len(_MARK):] if _MARK in text else ""


def token_layout(tokenizer, ex: Example, suffix: str, span_rule: str = "alias"
                 ) -> tuple[list[int], np.ndarray, np.ndarray, str]:
    """Token ids of prompt + response + suffix, each token's character offsets relative to
    the start of the response (``[T, 2]``; prompt tokens are negative), the answer-token mask
    and how the answer span was found (``span_rule="content"`` ignores the gold aliases)."""
    if not ex.response.strip():
        raise ValueError(f"{ex.key}: empty response, no answer tokens to average (Eq. 3)")
    sep = "" if ex.prompt[-1:].isspace() or ex.response[:1].isspace() else " "
    start = len(ex.prompt) + len(sep)
    enc = tokenizer(ex.prompt + sep + ex.response + suffix, add_special_tokens=False,
                    return_offsets_mapping=True)
    offsets = np.asarray(enc["offset_mapping"], dtype=np.int64).reshape(-1, 2) - start
    span = example_span(ex, span_rule)
    return list(enc["input_ids"]), offsets, token_mask_from_span(offsets, span), span.method


def example_span(ex: Example, span_rule: str = "alias") -> AnswerSpan:
    """The answer span the features of ``ex`` average over (what chapter 2 displays, too):
    under ``"alias"`` the gold aliases the judge used (one the question repeats marks no
    answer, an echo), under ``"content"`` none."""
    aliases = ([] if span_rule != "alias" else
               echo_free_aliases(ex.question, ex.answers) if ex.question else ex.answers)
    return locate_answer_span(ex.response, aliases, ex.question)


def token_masks(tokenizer, ex: Example, other_tokens: str, suffix: str, span_rule: str = "alias"
                ) -> tuple[list[int], np.ndarray, np.ndarray, str]:
    """Token ids of prompt + response + suffix, the answer and other masks, and the span method
    (``span_rule="content"`` ignores the gold aliases: see ``SPAN_RULES``)."""
    ids, offsets, answer, method = token_layout(tokenizer, ex, suffix, span_rule)
    other = ~answer if other_tokens == "all" else (~answer & (offsets[:, 1] > 0))
    return ids, answer, other, method


def _batch(tokenizer, rows: list[tuple[list[int], np.ndarray, np.ndarray]]
           ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Left-pad a batch: ``input_ids``/``attention_mask``/``position_ids`` and the two masks."""
    T = max(len(ids) for ids, _, _ in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.full((len(rows), T), pad, dtype=torch.long)
    att = torch.zeros((len(rows), T), dtype=torch.long)
    masks = {"answer": torch.zeros((len(rows), T), dtype=torch.bool),
             "other": torch.zeros((len(rows), T), dtype=torch.bool)}
    for i, (row_ids, a, o) in enumerate(rows):
        n = len(row_ids)
        ids[i, T - n:], att[i, T - n:] = torch.tensor(row_ids), 1
        masks["answer"][i, T - n:], masks["other"][i, T - n:] = torch.from_numpy(a), torch.from_numpy(o)
    pos = left_pad_positions(att)
    return {"input_ids": ids, "attention_mask": att, "position_ids": pos}, masks


class OutdatedFeaturesError(ValueError):
    """Cached features whose settings match but whose code version is older: recompute them."""


def load_features(path: str | Path, settings: dict | None = None) -> FeatureSet | None:
    """Features stored at ``path`` (None if absent); raises if stored with other settings
    (:class:`OutdatedFeaturesError` when only the feature code's version differs)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            stored, stored_hash = json.loads(str(z["settings"])), str(z["settings_hash"])
            arrays = [z[k] for k in ("keys", "answer", "other", "methods", "n_tokens")]
            digests = z["digests"] if "digests" in z.files else None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as e:
        raise ValueError(f"{path} is not a readable features file ({type(e).__name__}: {e}); "
                         "delete it and the features are computed again") from None
    if settings is not None and stored_hash != settings_hash(settings):
        if {k: v for k, v in stored.items() if k != "version"} == \
                {k: v for k, v in settings.items() if k != "version"}:
            raise OutdatedFeaturesError(
                f"{path} was computed by an older version of the feature code "
                f"(version {stored.get('version')}, now {settings.get('version')})")
        raise ValueError(f"{path} was computed with other settings ({stored}); delete it or "
                         f"use another OUTPUT_DIR to compute features for {settings}")
    return FeatureSet(*arrays, stored, digests)


def mean_other(path: str | Path, model: str | None = None) -> np.ndarray:
    """The mean over responses of the ``other``-token features in ``path``, ``[layers, neurons]``
    float64 (a neuron's typical CETT outside the answer: the size the size-matched control
    matches). Reads only that array, not the whole file; ``model`` (a loaded model's name):
    refused unless the features are that model's."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run the identification chapter first")
    try:
        with np.load(path, allow_pickle=False) as z:
            stored = json.loads(str(z["settings"]))
            other = z["other"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as e:
        raise ValueError(f"{path} is not a readable features file ({type(e).__name__}: {e})") from None
    if model is not None and stored.get("model") != model:
        raise ValueError(f"{path} holds features of {stored.get('model')!r}, not of {model!r}")
    from .probe import activation_size

    try:
        return activation_size(other)
    except ValueError as e:
        raise ValueError(f"{path}: 'other' features: {e}") from None


def save_features(path: str | Path, fs: FeatureSet) -> None:
    """Write ``fs`` atomically as npz (float16 features, settings and their hash inside)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".partial.npz")
    np.savez(tmp, keys=fs.keys.astype(str), answer=fs.answer, other=fs.other,
             methods=fs.methods.astype(str), n_tokens=fs.n_tokens, digests=fs.digests.astype(str),
             settings=np.array(json.dumps(fs.settings, sort_keys=True)),
             settings_hash=np.array(settings_hash(fs.settings)))
    os.replace(tmp, path)


def _concat(fs: FeatureSet | None, parts: list[dict], settings: dict) -> FeatureSet:
    """``fs`` with the newly computed ``parts`` appended."""
    new = FeatureSet(np.array([k for p in parts for k in p["keys"]], dtype=str),
                     np.concatenate([p["answer"] for p in parts]),
                     np.concatenate([p["other"] for p in parts]),
                     np.array([x for p in parts for x in p["methods"]], dtype=str),
                     np.concatenate([p["n_tokens"] for p in parts]), settings,
                     np.array([x for p in parts for x in p["digests"]], dtype=str))
    if fs is None:
        return new
    cat = {a: np.concatenate([getattr(fs, a), getattr(new, a)])
           for a in ("keys", "answer", "other", "methods", "n_tokens", "digests")}
    return FeatureSet(cat["keys"], cat["answer"], cat["other"], cat["methods"], cat["n_tokens"],
                      settings, cat["digests"])


def _drop_rows(fs: FeatureSet, keys: set[str]) -> FeatureSet | None:
    """``fs`` without the rows of ``keys`` (None if no row is left)."""
    keep = np.array([k not in keys for k in fs.keys.tolist()], dtype=bool)
    if not keep.any():
        return None
    return FeatureSet(fs.keys[keep], fs.answer[keep], fs.other[keep], fs.methods[keep],
                      fs.n_tokens[keep], fs.settings, fs.digests[keep])


def example_digest(ex: Example) -> str:
    """What a row's features depend on besides the settings: prompt, response, question, gold
    answers. A cached row is reused only for an example with the same digest."""
    return settings_hash({"prompt": ex.prompt, "response": ex.response, "question": ex.question,
                          "answers": list(ex.answers)})


def _featurise_batch(m: LoadedModel, batch: Sequence[Example], cfg: FeatureConfig, suffix: str,
                     norms: torch.Tensor | None) -> dict:
    """CETT means of one batch of responses (one traced forward pass)."""
    rows, methods = [], []
    for ex in batch:
        ids, a, o, method = token_masks(m.tokenizer, ex, cfg.other_tokens, suffix, cfg.span_rule)
        rows.append((ids, a, o))
        methods.append(method)
    enc, masks = _batch(m.tokenizer, rows)
    means = cett_means(m, enc, masks, norms=norms, measure=cfg.measure)  # name -> [B, L, N]
    top = float(np.finfo(np.float16).max)
    for name in ("answer", "other"):  # NaN is expected (a response with no such token); inf is not
        x = means[name].numpy()
        bad = (np.abs(x) > top).any(axis=(1, 2))  # inf counts; NaN compares False
        if bad.any():
            raise ValueError(f"{'CETT' if cfg.measure == 'cett' else 'activation'} {name}-token means of {[ex.key for ex, b in zip(batch, bad) if b]} "
                             f"are infinite or beyond float16's range ({top:g}), the storage format: "
                             "a near-zero FFN output norm ||h_t|| at some token? Check those responses.")
    return {"keys": [ex.key for ex in batch], "methods": methods,
            "digests": [example_digest(ex) for ex in batch],
            "answer": means["answer"].numpy().astype(np.float16),
            "other": means["other"].numpy().astype(np.float16),
            "n_tokens": np.array([[a.sum(), o.sum()] for _, a, o in rows], dtype=np.int64)}


def extract_features(m: LoadedModel, examples: Sequence[Example], path: str | Path,
                     cfg: FeatureConfig = FeatureConfig(), desc: str = "CETT features"
                     ) -> FeatureSet:
    """Answer-token and other-token CETT means for every example, cached at ``path``.

    Examples already in the file (same settings) are not recomputed; new ones are appended and
    the file is rewritten at most every ``cfg.save_every_s`` seconds and at the end, so an
    interrupted extraction loses at most that much work. A stored row whose key now names
    another response or prompt (its digest differs) is recomputed, with a note. Returns the
    whole stored set.
    """
    keys = [check_key(ex.key) for ex in examples]
    if len(set(keys)) != len(keys):
        raise ValueError("example keys must be unique (e.g. 'qid#k' for the k-th response)")
    settings = feature_settings(m, cfg)
    try:
        fs = load_features(path, settings)
    except OutdatedFeaturesError as e:  # same settings, older code: redo them all, say so
        print(f"{e}; recomputing them", file=sys.stderr, flush=True)
        fs = None
    have = dict(zip(fs.keys.tolist(), fs.digests.tolist())) if fs is not None else {}
    stale = {ex.key for ex in examples if have.get(ex.key) and have[ex.key] != example_digest(ex)}
    if stale:  # e.g. a new judge version chose other responses for these keys: never reuse them
        print(f"{path}: {len(stale)} stored rows were computed on another response or prompt than "
              f"the examples with their keys (e.g. {sorted(stale)[0]!r}; the responses changed): "
              "recomputing them", file=sys.stderr, flush=True)
        fs = _drop_rows(fs, stale)
        have = {k: d for k, d in have.items() if k not in stale}
    todo = [ex for ex in examples if ex.key not in have]
    suffix = turn_suffix(m.tokenizer)
    norms = column_norms(m) if cfg.measure == "cett" else None  # raw activations need none
    parts, last = [], time.monotonic()
    batches = [todo[i:i + cfg.batch_size] for i in range(0, len(todo), cfg.batch_size)]
    for batch in progress(batches, desc, "batches"):
        parts.append(_featurise_batch(m, batch, cfg, suffix, norms))
        if time.monotonic() - last > cfg.save_every_s:
            fs, parts, last = _concat(fs, parts, settings), [], time.monotonic()
            save_features(path, fs)
    if parts:
        fs = _concat(fs, parts, settings)
        save_features(path, fs)
    if fs is None:
        raise ValueError(f"no examples to featurise and no features stored at {path}")
    return fs
