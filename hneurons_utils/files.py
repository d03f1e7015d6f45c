"""Writing result files so that an interruption never leaves a half-written one behind, and
naming them: the digests that key every stored artefact (settings, code)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterable, Iterator

try:
    import fcntl
except ImportError:  # Windows: a byte-range lock through msvcrt instead; see writer_lock
    fcntl = None
try:
    import msvcrt
except ImportError:  # every system but Windows
    msvcrt = None

_WIN_LOCK_AT = 1 << 20  # the byte msvcrt locks: past the holder's id, which others must read


def settings_hash(settings: Any, n: int = 16) -> str:
    """A short, stable hash of JSON-able settings (keys sorted; a value JSON cannot write is
    written as its ``str``): ``n`` hex digits of SHA-256, the key of an artefact."""
    blob = json.dumps(settings, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:n]


def code_digest(functions: Iterable[Callable | ModuleType]) -> str:
    """A digest of the source text of ``functions`` (or modules; their compiled code where no
    source is shipped): part of the key of an artefact those functions compute, so that one stored before
    a change to that code is never read back as if the changed code had made it."""
    h = hashlib.blake2b(digest_size=16)
    for fn in functions:
        h.update(_code_bytes(fn))
    return h.hexdigest()


def _code_bytes(obj: Any) -> bytes:
    """The source of a function or module; without source, the compiled code (of a module: of
    each function defined in it, by name)."""
    import inspect
    import marshal

    try:
        return inspect.getsource(obj).encode()
    except (OSError, TypeError):
        if inspect.ismodule(obj):
            return b"".join(_code_bytes(v) for _, v in sorted(vars(obj).items())
                            if inspect.isfunction(v) and v.__module__ == obj.__name__)
        return marshal.dumps(obj.__code__)


class FileBusyError(RuntimeError):
    """Another process is writing the result file this run wants to write."""


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder and an atomic
    rename: a reader sees the old file or the new one, never a truncated mix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:  # a name of its own, so two writers of one file do not share (and remove) one
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide results from the rest of a group
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def lock_path(path: str | Path) -> Path:
    """The lock file of a result file: ``.<name>.lock`` beside it (hidden, and never matched
    by the ``*.jsonl`` patterns that read results)."""
    path = Path(path)
    return path.with_name(f".{path.name}.lock")


def _lock(fd: int) -> bool:
    """Take the exclusive writer lock on the open lock file ``fd`` without waiting; False if
    another process holds it."""
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True
    os.lseek(fd, _WIN_LOCK_AT, os.SEEK_SET)  # msvcrt locks bytes from the file position
    try:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError:
        return False
    return True


def _unlock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
    else:
        os.lseek(fd, _WIN_LOCK_AT, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


def _holder(fd: int) -> str:
    """The process id written in the lock file by the run that holds it ("" if none)."""
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, 64).decode("ascii", "replace").strip()


def _name_holder(fd: int) -> None:
    """Write this process's id into the lock file it now holds."""
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, str(os.getpid()).encode())


@contextlib.contextmanager
def writer_lock(path: str | Path) -> Iterator[Path]:
    """Hold an exclusive lock on ``path``'s lock file while a run appends to ``path``.

    Two runs that append to one JSONL at once (two notebooks, or a notebook and a script, on
    one OUTPUT_DIR) would both see a question as missing and both write it: resumption relies
    on being the only writer. The second run therefore fails at once with
    :class:`FileBusyError`, naming the file and the other run's process id, instead of
    duplicating records. The lock is an advisory ``flock`` (on Windows, an ``msvcrt`` lock of
    one byte of the lock file) that the system releases when its holder exits, even when
    killed, so a crashed run never leaves a stale lock behind (the empty lock file stays and
    is reused). A system with neither (no known one) locks nothing, and the caller must not
    start two writers.
    """
    lp = lock_path(path)
    lp.parent.mkdir(parents=True, exist_ok=True)
    if fcntl is None and msvcrt is None:
        yield lp
        return
    fd = os.open(lp, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o644)
    try:
        if not _lock(fd):
            holder = _holder(fd) or "unknown"
            raise FileBusyError(
                f"{path} is being written by another run (process {holder}); wait for it to "
                "finish (it resumes from the same file) or give this run another OUTPUT_DIR"
            ) from None
        _name_holder(fd)
        try:
            yield lp
        finally:
            os.ftruncate(fd, 0)
            _unlock(fd)
    finally:
        os.close(fd)
