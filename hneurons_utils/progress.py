"""Progress reporting that suits both a terminal and an executed notebook.

In a terminal this is a tqdm bar. In a notebook kernel run by papermill (stderr is not a
terminal) a bar would leave one line per update in the saved notebook and so in the book;
there it prints a plain line when the loop starts, at most every ``every`` seconds, and when
it ends (with the elapsed time and an estimate of the time left), which is still what you
see with ``papermill --log-output``.
"""

from __future__ import annotations

import sys
import time
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")


def progress(items: Iterable[T], desc: str, unit: str = "batch", total: int | None = None,
             every: float = 60.0) -> Iterator[T]:
    """Iterate ``items`` while reporting progress (nothing at all for an empty loop)."""
    if total is None:
        try:
            total = len(items)  # type: ignore[arg-type]
        except TypeError:
            total = None
    if total == 0:
        yield from items
        return
    if sys.stderr.isatty():
        from tqdm.auto import tqdm

        yield from tqdm(items, desc=desc, unit=unit, total=total)
        return
    t0 = last = time.monotonic()
    of = f"/{total}" if total else ""
    print(f"{desc}: 0{of} {unit}", file=sys.stderr, flush=True)
    i = 0
    for i, item in enumerate(items, 1):
        yield item
        now = time.monotonic()
        if now - last >= every and (total is None or i < total):
            left = f", about {(now - t0) / i * (total - i):.0f} s left" if total else ""
            print(f"{desc}: {i}{of} {unit} ({now - t0:.0f} s{left})", file=sys.stderr, flush=True)
            last = now
    print(f"{desc}: {i}{of} {unit}, done in {time.monotonic() - t0:.0f} s", file=sys.stderr,
          flush=True)
