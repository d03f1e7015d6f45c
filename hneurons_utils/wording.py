"""Counts in generated sentences, with the noun and verb in the right number."""

from __future__ import annotations


def noun(n: int, word: str, plural: str | None = None) -> str:
    """``n`` and ``word`` in the right number: "1 refusal", "0 refusals", "3 changes"
    (``plural``: an irregular plural, else ``word + "s"``)."""
    return f"{n} {word if n == 1 else plural or word + 's'}"


def are(n: int) -> str:
    """The verb for ``n`` things: "is" for one, else "are"."""
    return "is" if n == 1 else "are"
