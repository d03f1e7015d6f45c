"""Argument checks shared by the modules: a bad value is an error naming the argument, never a
silently empty or wrong result (a negative batch size used to process nothing, a bare string
used to be read as one prompt per character)."""

from __future__ import annotations

import math
import numbers
from typing import Any, Sequence


def positive_int(value: Any, name: str) -> int:
    """``value`` as an int if it is a whole number >= 1 (a bool is not), else a ValueError
    naming ``name`` (a batch size below 1 would process nothing)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    return int(value)


def positive_number(value: Any, name: str) -> float:
    """``value`` as a float if it is a finite number > 0 (a bool is not), else a ValueError
    naming ``name`` (a solver tolerance of 0, NaN or text would never stop, or never start)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
            or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def check_alpha(alpha: Any) -> float:
    """``alpha`` as a float, or a ValueError: a NaN or infinite factor would fill the logits
    (and every later layer's CETT) with NaN, and generate would return empty answers that read
    like refusals. Negative factors (flipping the neurons' sign) are allowed."""
    try:
        a = float(alpha)
    except (TypeError, ValueError):
        raise ValueError(f"alpha must be a number, got {alpha!r}") from None
    if not math.isfinite(a):
        raise ValueError(f"alpha must be finite, got {alpha!r}: a NaN or infinite scale makes "
                         "the logits NaN and the answers empty")
    return a


def text_list(value: Any, name: str, allow_empty: bool = False) -> list[str]:
    """``value`` as a list of str, else a TypeError (a bare str would be iterated character by
    character) or, when empty and not ``allow_empty``, a ValueError naming ``name``."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(f"{name} must be a list of strings, got {type(value).__name__} "
                        f"{str(value)[:60]!r}" + (" (wrap one string in a list)"
                                                  if isinstance(value, str) else ""))
    bad = [v for v in value if not isinstance(v, str)]
    if bad:
        raise TypeError(f"{name} must hold strings only, got {type(bad[0]).__name__} {bad[0]!r}")
    if not value and not allow_empty:
        raise ValueError(f"{name} is empty")
    return list(value)
