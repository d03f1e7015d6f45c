"""Counts in generated sentences, with the noun and verb in the right number, and signed numbers
whose side of 0 shows."""

from __future__ import annotations


def noun(n: int, word: str, plural: str | None = None) -> str:
    """``n`` and ``word`` in the right number: "1 refusal", "0 refusals", "3 changes"
    (``plural``: an irregular plural, else ``word + "s"``)."""
    return f"{n} {word if n == 1 else plural or word + 's'}"


def probe_name(n_h: int | None, n_neg: int | None, name: str = "the probe") -> str:
    """"the probe (37 H-Neurons + 31 negative-weight neurons)": a score of the whole probe is not
    the H-Neurons' alone, so a reading or a legend that quotes it says what it reads (the
    negative part left out when there is none). ``name`` alone when the counts are unknown
    (None)."""
    if n_h is None or n_neg is None:
        return name
    parts = [noun(n_h, "H-Neuron")] + ([noun(n_neg, "negative-weight neuron")] if n_neg else [])
    return f"{name} ({' + '.join(parts)})"


def are(n: int) -> str:
    """The verb for ``n`` things: "is" for one, else "are"."""
    return "is" if n == 1 else "are"


def signed(x: float, digits: int = 1, max_digits: int | None = None) -> str:
    """``x`` with a sign and ``digits`` decimals, never "-0.0"; a non-zero value that would
    print as 0 gets more decimals, up to ``max_digits`` (default: none more), so its side of 0
    shows. A value still at 0 then prints "+0.0..."."""
    max_digits = digits if max_digits is None else max_digits
    out = f"{x:+.{digits}f}"
    while float(out) == 0 and x != 0 and digits < max_digits:
        digits += 1
        out = f"{x:+.{digits}f}"
    return out.replace("-", "+", 1) if float(out) == 0 else out


def p_value(p: float, digits: int = 2) -> str:
    """A p-value with ``digits`` significant digits, or "undefined" where the test has none
    (NaN: one neuron, no variance), rather than "nan"."""
    return "undefined" if p != p else f"{p:.{digits}g}"


def ordinal(n: float) -> str:
    """``n`` rounded to a whole number with its English ordinal suffix: 1st, 2nd, 72nd, 97th, 11th."""
    k = int(round(float(n)))
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


def param_count(n: int) -> str:
    """A parameter count in short form: "135M", "7.2B"."""
    return f"{n / 1e9:.1f}B" if n >= 1e9 else f"{n / 1e6:.0f}M"
