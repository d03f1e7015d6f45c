"""Where the answer sits in a response: the tokens whose CETT is averaged (paper Section 6.1.1).

The paper computes CETT features on the answer tokens only (Section 6.1.1, "answer tokens"),
found there by asking an LLM to extract the answer string. Here a rule does it, in order:

1. ``alias``: a gold alias occurs in the response (case/accent-insensitive, whole tokens, the
   same normalisation as the rule judge); its shortest occurrence, preferring one inside the
   content span below, mapped back to the response's own character offsets.
2. ``content``: otherwise the answer-bearing part of the first sentence: filler ("The answer
   is", "I think", "It is") and the trailing period dropped; for "X is Y." sentences, Y, less
   leading prepositions and words echoed from X or the question ("The constellation Aldebaran
   is in the constellation Sagittarius." -> "Sagittarius"). Given the question, a span that
   restates it is passed over for the next clause, or sentence, whose span does not ("Hosni
   Mubarak's predecessor, Fais el-Fihari, is ..." -> "Fais el-Fihari"; see :func:`content_span`).
3. ``fallback``: the whole response, when nothing else is left (empty or filler-only replies).

``span_stats`` counts the methods so a chapter can report how often the heuristics fell back.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Literal, Sequence

import numpy as np

from .judges import alias_token_lists, normalized_tokens

Method = Literal["alias", "content", "fallback"]


@dataclass(frozen=True)
class AnswerSpan:
    """Character offsets ``[start, end)`` into the response and how they were found."""

    start: int
    end: int
    method: Method

    def text(self, response: str) -> str:
        """The span's text in ``response``."""
        return response[self.start:self.end]


_INTERJECTIONS = r"(?:sure|well|okay|ok|yes|so|hmm)[,!.]"  # "Sure!", "Well,": filler of their own
_FILLER = re.compile(
    r"(?:(?:the |my )?(?:correct |final |short |best )?answer(?: is:?|:)"
    r"|i(?: think| believe| guess| would say|['\u2019]d say)(?: that)?"
    r"|(?:it|this|that)(?: is| was| would be|['\u2019]s)"
    rf"|{_INTERJECTIONS}|probably|perhaps|maybe|answer\s*:)(?:\s+|$)",
    re.IGNORECASE)
_INTERJECTION = re.compile(rf"\s*{_INTERJECTIONS}(?:\s+|$)", re.IGNORECASE)
_COPULA = re.compile(r"\b(?:is|are|was|were)\s+", re.IGNORECASE)
_CLAUSE_BREAK = re.compile(r",\s|;|\(|\s(?:which|who|where|whose)\s")
_ABBREV = frozenset({"dr", "mr", "mrs", "ms", "st", "jr", "sr", "no", "vs", "mt", "ft", "prof"})
_LEADING_STOP = frozenset({"a", "an", "the", "in", "on", "at", "of", "from", "by", "to", "for",
                           "with", "as", "called", "named", "known"})
_TRIM = " \t\n\"'*`.,;:!?\u201c\u201d\u2018\u2019"


def _first_sentence(text: str, start: int = 0) -> tuple[int, int]:
    """Bounds of the first sentence from ``start``: up to the first ``.!?`` + space that ends
    no abbreviation.

    A period after a single letter ends no sentence (an initial: "J. K. Rowling"); after a
    single digit it does ("The answer is 7. It ..."), unless the digit opens the text (a list
    marker: "1. Paris").
    """
    start = len(text) - len(text[start:].lstrip())
    line_end = text.find("\n", start)
    end = len(text) if line_end < 0 else line_end
    for m in re.finditer(r"[.!?](?=\s|$)", text[:end]):
        before = text[start:m.start()]
        word = re.findall(r"[^\W_]+$", before)
        w = word[0] if word else ""
        initial = len(w) == 1 and (w.isalpha() or before.strip() == w)
        if m.start() <= start or initial or w.lower() in _ABBREV:
            continue
        return start, m.start()
    return start, end


def _trim(text: str, s: int, e: int) -> tuple[int, int]:
    """Shrink ``[s, e)`` past surrounding whitespace, quotes, asterisks and punctuation."""
    while s < e and text[s] in _TRIM:
        s += 1
    while e > s and text[e - 1] in _TRIM:
        e -= 1
    return s, e


def _words(text: str) -> set[str]:
    """Lowercase word set of ``text``."""
    return set(re.findall(r"[^\W_]+", text.lower()))


def _strip_leading(text: str, s: int, e: int, echo: set[str]) -> int:
    """New start after dropping leading stopwords and echoed words, keeping at least one word."""
    words = list(re.finditer(r"\S+", text[s:e]))
    for w in words[:-1]:
        key = re.sub(r"[\W_]+", "", w.group().lower())
        if key not in _LEADING_STOP and key not in echo:
            return s + w.start()
    return s + words[-1].start() if words else s


# Words that say nothing about whether a clause repeats the question (echo_share).
_NOT_COUNTED = _LEADING_STOP | {"and", "or", "but", "is", "are", "was", "were", "be", "been", "it",
                                "this", "that", "its"}


def _counted_words(text: str) -> list[str]:
    """Lowercase words of ``text`` for :func:`echo_share`: a possessive "'s" is cut ("Mubarak's"
    is "mubarak"), and :data:`_NOT_COUNTED` words are left out."""
    words = re.findall(r"[^\W_]+(?:['\u2019][^\W_]+)*", text.lower())
    words = [re.sub(r"['\u2019]s$", "", w) for w in words]
    return [w for w in words if w not in _NOT_COUNTED]


def echo_share(text: str, question: str) -> float:
    """The share of the words of ``text`` (function words aside, see :func:`_counted_words`)
    that ``question`` holds too; 1.0 when ``text`` has no such word (it names nothing new:
    "on", "in the")."""
    words = _counted_words(text)
    if not words:
        return 1.0
    asked = set(_counted_words(question)) | _words(question)
    return sum(w in asked for w in words) / len(words)


def echo_note(span_text: str, question: str, echo_limit: float = 0.5) -> str:
    """A note for a reader checking a marked span: the share of its words the question holds
    (:func:`echo_share`) and, above ``echo_limit``, a flag that the span probably restates the
    question rather than states the answer. Word overlap misses a paraphrase of the question
    ("starts with the letter M" for "beginning with 'M'"), so a low share does not prove that
    the span is the answer."""
    share = echo_share(span_text, question)
    note = f"{100 * share:.0f}% of its words are the question's"
    if share > echo_limit:
        note += ": most of the span echoes the question, so it is probably not the answer itself"
    return note


_POSSESSIVE = re.compile(r"([^\W_]+)['\u2019]s\b")


def echoes_question(text: str, question: str, echo_limit: float = 0.5) -> bool:
    """Whether a content span ``text`` restates the question rather than answer it: more than
    ``echo_limit`` of its words are the question's (:func:`echo_share`: "II" in "In World War
    II, ..."), or it is a short phrase of at most four words that opens with a question word
    in the possessive, naming the answer by its relation to what was asked ("Mubarak's
    predecessor" to "Who preceded Hosni Mubarak ...?", "England's captain")."""
    if echo_share(text, question) > echo_limit:
        return True
    m = _POSSESSIVE.match(text)
    return (m is not None and m.group(1).lower() in _words(question)
            and len(text.split()) <= 4)


def _clause_span(response: str, s: int, e: int, q_words: set[str], question: str | None
                 ) -> tuple[int, int] | None:
    """The content span of the clause ``[s, e)``, filler already dropped: for "X is Y", Y
    unless Y only echoes the question; leading stopwords and echoed words dropped."""
    echo = set(q_words)
    if (m := _COPULA.search(response, s, e)) is not None and m.start() > s:
        x, y = (s, m.start()), _trim(response, m.end(), e)
        x_words = _words(response[x[0]:x[1]]) - _LEADING_STOP
        y_words = _words(response[y[0]:y[1]]) - _LEADING_STOP
        if question and y_words and y_words <= q_words and not x_words <= q_words:
            s, e = x  # "Lyon is the capital of France." answering "What is the capital of France?"
        elif y[1] > y[0]:
            s, e = y
            echo |= x_words
    s, e = _trim(response, s, e)
    s = _strip_leading(response, s, e, echo)
    s, e = _trim(response, s, e)
    return (s, e) if e > s else None


def _skip_filler(response: str, s: int, e: int) -> int:
    """New start past whitespace and filler ("The answer is", "I think it's") at ``s``."""
    s = len(response) - len(response[s:].lstrip()) if s < e else s
    while (m := _FILLER.match(response, s, e)) is not None and m.end() > s:
        s = m.end()
    return s


def _clauses(response: str, s: int, e: int) -> list[tuple[int, int]]:
    """The clauses of the sentence ``[s, e)``, cut at :data:`_CLAUSE_BREAK` (", ", ";", "(",
    " which "/" who "/...). A break right at ``s`` cuts nothing: the sentence is one clause,
    as the first clause always was under the rule."""
    b = _CLAUSE_BREAK.search(response, s, e)
    if b is None or b.start() <= s:
        return [(s, e)]
    out, pos = [(s, b.start())], b.end()
    for b in _CLAUSE_BREAK.finditer(response, pos, e):
        out.append((pos, b.start()))
        pos = b.end()
    out.append((pos, e))
    return out


def content_span(response: str, question: str | None = None,
                 echo_limit: float = 0.5) -> tuple[int, int] | None:
    """The answer-bearing part of the first sentence (see the module docstring), or None if empty.

    The span of the first clause of the first sentence: filler dropped ("The answer is"), for
    "X is Y" the side that does not merely echo the question, then leading stopwords and
    echoed words. Without ``question`` that is all. With it, a span that restates the question
    (:func:`echoes_question`: mostly question words, or "<question word>'s <relation>") is
    passed over for the span of the next clause, in the first sentence and then in the
    sentences after it, that does not; if every clause restates it, or the first clause has
    no span, the first clause's span (or None) is kept, as without this step. Hallucinated
    answers often restate the question before the claim: "In World War II, on which of the
    Pacific islands was the bloodiest battle fought? The answer is 20" -> "20" (not "II");
    "Hosni Mubarak's predecessor, Fais el-Fihari, is ..." -> "Fais el-Fihari"; "In Indian
    cuisine, 'murgh' is a type of spicy madeleine" -> "type of spicy madeleine" (not
    "cuisine"). A span whose words are half the question's or fewer is kept, so an answer
    that repeats a word of the question stays ("The Seine River" to "Which river ...?").
    A trade-off, not a parse: a clause that restates the question in other words is not seen
    ("The word labyrinth starts with the letter M, but ... is "mare"." keeps "starts with the
    letter M" for "... word for labyrinth beginning with 'M'?").
    """
    s = 0
    while (m := _INTERJECTION.match(response, s)) is not None:  # "Sure! ", "Well. ": own sentences
        s = m.end()
    q_words = _words(question or "")
    first: tuple[int, int] | None = None
    n_sentence = 0
    while s < len(response):
        s, e = _first_sentence(response, s)
        s = _skip_filler(response, s, e)
        for k, (cs, ce) in enumerate(_clauses(response, s, e)):
            if k:  # a later clause: past filler and an opening copula ("..., who was X is Y")
                cs = _skip_filler(response, cs, ce)
                cs = m.end() if (m := _COPULA.match(response, cs, ce)) is not None else cs
            span = _clause_span(response, cs, ce, q_words, question)
            if n_sentence == 0 and k == 0:
                first = span
                if not question or span is None:  # the rule as it was: nothing to compare
                    return first
            if span is not None and not echoes_question(response[slice(*span)], question, echo_limit):
                return span
        n_sentence += 1
        s = e + 1
    return first


def alias_occurrences(response: str, answers: Sequence[str]) -> list[tuple[int, int]]:
    """Every ``(start, end)`` where a normalised gold alias occurs in ``response`` as whole tokens."""
    toks = normalized_tokens(response)
    words = [t for t, _, _ in toks]
    found = []
    for alias in alias_token_lists(answers):
        n = len(alias)
        for i in range(len(words) - n + 1):
            if words[i:i + n] == alias:
                found.append((toks[i][1], toks[i + n - 1][2]))
    return found


def locate_answer_span(response: str, answers: Sequence[str],
                       question: str | None = None) -> AnswerSpan:
    """The shortest span of ``response`` that carries the answer (alias, content, or fallback).

    Implements the paper's "answer tokens" (Section 6.1.1) by rule. Passing ``question`` lets
    the content heuristic tell the answer from an echo of the question ("Lyon is the capital
    of France." -> "Lyon"); without it, "X is Y" sentences give Y.
    """
    content = content_span(response, question)
    occ = alias_occurrences(response, answers) if answers else []
    if occ:
        if content is not None:
            inside = [o for o in occ if o[0] < content[1] and o[1] > content[0]]
            occ = inside or occ
        start, end = min(occ, key=lambda o: (o[1] - o[0], -o[0]))
        return AnswerSpan(start, end, "alias")
    if content is not None:
        return AnswerSpan(content[0], content[1], "content")
    return AnswerSpan(0, len(response), "fallback")


def marked(response: str, span: AnswerSpan, context: int = 30) -> str:
    """``response`` with the span in ``[[ ]]`` and at most ``context`` characters either side
    ("…" where cut), line breaks as " / ": one table cell per response."""
    head = response[max(0, span.start - context):span.start]
    tail = response[span.end:span.end + context]
    text = (("…" if span.start > context else "") + f"{head}[[{span.text(response)}]]{tail}"
            + ("…" if span.end + context < len(response) else ""))
    return text.replace("\n", " / ")


def token_mask_from_span(offsets: Sequence[tuple[int, int]], span: AnswerSpan) -> np.ndarray:
    """Boolean mask ``[tokens]`` of the tokens whose character range overlaps ``span``.

    ``offsets`` are per-token ``(start, end)`` character offsets into the response text alone,
    as a fast tokenizer's ``return_offsets_mapping=True`` gives; zero-width tokens (special
    tokens, ``(0, 0)``) never count. Raises if no token overlaps, since a CETT mean over zero
    answer tokens (Section 6.1.1) is undefined.
    """
    arr = np.asarray(offsets, dtype=np.int64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"offsets must be a [tokens, 2] sequence of (start, end), got shape {arr.shape}")
    mask = (arr[:, 0] < span.end) & (arr[:, 1] > span.start) & (arr[:, 1] > arr[:, 0])
    if not mask.any():
        raise ValueError(f"no token overlaps the answer span [{span.start}, {span.end}) "
                         f"({span.method}); are the offsets for the response text alone?")
    return mask


def span_stats(spans: Iterable[AnswerSpan]) -> dict[str, int]:
    """Counts of spans per method (``alias``, ``content``, ``fallback``) and their ``total``."""
    counts = Counter(sp.method for sp in spans)
    out = {m: counts.get(m, 0) for m in ("alias", "content", "fallback")}
    out["total"] = sum(out.values())
    return out
