"""Progress reporting that suits both a terminal and an executed notebook.

In a terminal this is a tqdm bar. In a notebook kernel run by papermill (stderr is not a
terminal) a bar would leave one line per update in the saved notebook and so in the book;
there it prints plain lines instead, few enough to read on the rendered page: an update after
``every`` seconds, then after twice as long again, four times, ... (with the elapsed time and
an estimate of the time left), and one line when the loop ends. A loop done within a second
that printed nothing stays silent (a rerun that finds everything on disk). The same lines are
what you see with ``papermill --log-output``. With ``HNEURONS_PROGRESS=done`` (what the book
build sets, so that the rendered page keeps each loop's cost and not its updates) only that
last line is printed.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")


def progress(items: Iterable[T], desc: str, unit: str = "batch", total: int | None = None,
             every: float = 60.0) -> Iterator[T]:
    """Iterate ``items`` while reporting progress (nothing for an empty or a sub-second loop).

    Outside a terminal, updates come ``every`` seconds after the start, then at doubling
    intervals (``every``, ``2 * every``, ...), so a long loop leaves a handful of lines; none
    with ``HNEURONS_PROGRESS=done`` in the environment (the closing line only).
    """
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
    mode = os.environ.get("HNEURONS_PROGRESS", "updates")
    if mode not in ("updates", "done"):
        raise ValueError(f"HNEURONS_PROGRESS={mode!r}: use 'updates' (the default) or 'done' "
                         "(only the line that closes each loop)")
    t0 = last = time.monotonic()
    of, wait, said = (f"/{total}" if total else ""), (every if mode == "updates" else float("inf")), False
    i = 0
    for i, item in enumerate(items, 1):
        yield item
        now = time.monotonic()
        if now - last >= wait and (total is None or i < total):
            left = f", about {(now - t0) / i * (total - i):.0f} s left" if total else ""
            print(f"{desc}: {i}{of} {unit} ({now - t0:.0f} s{left})", file=sys.stderr, flush=True)
            last, wait, said = now, 2 * wait, True
    took = time.monotonic() - t0
    if said or took >= 1.0:
        print(f"{desc}: {i}{of} {unit}, done in {took:.0f} s", file=sys.stderr, flush=True)
