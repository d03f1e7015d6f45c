"""Progress lines in executed notebooks (stderr is not a terminal there)."""

import itertools
import os
from pathlib import Path

import pytest

from hneurons_utils import progress as progress_module
from hneurons_utils.progress import progress


@pytest.fixture(autouse=True)
def default_mode(monkeypatch):
    """Every test starts from the default mode, whatever the shell that runs pytest set."""
    monkeypatch.delenv("HNEURONS_PROGRESS", raising=False)


def fake_clock(monkeypatch, step: float):
    """time.monotonic advances by ``step`` seconds per call (the loop reads it once per item)."""
    ticks = itertools.count()
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: step * next(ticks))


def test_updates_come_at_doubling_intervals_then_one_done_line(monkeypatch, capsys):
    fake_clock(monkeypatch, 5.0)  # item i ends at 5 i seconds
    assert list(progress(range(20), "work", "items", every=10.0)) == list(range(20))
    err = capsys.readouterr().err.splitlines()
    # updates after 10 s, then 20 s and 40 s later (items 2, 6, 14), never one per item
    assert err == ["work: 2/20 items (10 s, about 90 s left)", "work: 6/20 items (30 s, about 70 s left)",
                   "work: 14/20 items (70 s, about 30 s left)", "work: 20/20 items, done in 105 s"]


def test_done_mode_keeps_only_the_closing_line_and_a_bad_mode_is_named(monkeypatch, capsys):
    """What the book build sets (HNEURONS_PROGRESS=done): the page keeps each loop's cost."""
    monkeypatch.setenv("HNEURONS_PROGRESS", "done")
    fake_clock(monkeypatch, 5.0)
    list(progress(range(20), "work", "items", every=10.0))
    assert capsys.readouterr().err.splitlines() == ["work: 20/20 items, done in 105 s"]
    monkeypatch.setenv("HNEURONS_PROGRESS", "quiet")
    with pytest.raises(ValueError, match="HNEURONS_PROGRESS='quiet'"):
        list(progress(range(3), "work"))


def test_a_short_loop_leaves_one_line_and_a_cached_one_none(monkeypatch, capsys):
    fake_clock(monkeypatch, 0.5)
    list(progress(range(4), "short", every=60.0))
    assert capsys.readouterr().err.splitlines() == ["short: 4/4 batch, done in 2 s"]
    fake_clock(monkeypatch, 0.01)
    list(progress(range(4), "cached", every=60.0))
    assert capsys.readouterr().err == ""


def test_empty_loop_is_silent(capsys):
    assert list(progress([], "nothing")) == []
    assert capsys.readouterr().err == ""


def test_generators_without_length(monkeypatch, capsys):
    fake_clock(monkeypatch, 1.0)
    assert list(progress((i for i in range(3)), "gen", every=1.5)) == [0, 1, 2]
    assert capsys.readouterr().err.splitlines() == ["gen: 2 batch (2 s)", "gen: 3 batch, done in 4 s"]


def test_atomic_writes_of_one_file_from_two_threads_never_collide(tmp_path):
    """Each write has a temporary name of its own: concurrent writers of one file (two runs
    sharing an OUTPUT_DIR) leave one whole version and no stray temporary file."""
    import threading

    from hneurons_utils.files import write_text_atomic

    path, errors = tmp_path / "r.json", []

    def write(i):
        try:
            for _ in range(50):
                write_text_atomic(path, f"writer {i}\n" * 200)
        except Exception as e:  # noqa: BLE001 - any failure is the finding
            errors.append(e)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    text = path.read_text()
    assert len(set(text.splitlines())) == 1 and text.count("\n") == 200
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
    assert path.stat().st_mode & 0o044  # readable beyond its owner, like any other result


def test_a_killed_writer_leaves_no_stale_lock(tmp_path):
    """The writer lock names its holder while held, and the system frees it when the holder is
    killed (no stale lock to delete by hand after a crash)."""
    import signal
    import subprocess
    import sys

    from hneurons_utils.files import FileBusyError, lock_path, writer_lock

    path = tmp_path / "responses.jsonl"
    code = ("import sys, time; from hneurons_utils.files import writer_lock\n"
            "with writer_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)")
    child = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE,
                             text=True, cwd=Path(__file__).resolve().parent.parent)
    try:
        assert child.stdout.readline().strip() == "held"
        with pytest.raises(FileBusyError, match=f"process {child.pid}"):
            with writer_lock(path):
                pass
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    with writer_lock(path) as lp:  # free after the kill
        assert lp == lock_path(path) and lp.name == ".responses.jsonl.lock"
    assert not path.exists()  # locking never creates the result file itself


def test_the_windows_lock_branch_with_msvcrt_simulated(tmp_path, monkeypatch):
    """Where fcntl is missing (Windows) the writer lock goes through msvcrt's byte-range lock:
    simulated here by a stand-in that records where it locks and refuses a second holder.
    The logic is the same (a second writer is refused, naming the holder; the lock is free
    after); that Windows itself honours msvcrt.locking is not tested on this machine."""
    import fcntl
    from types import SimpleNamespace

    import hneurons_utils.files as F

    where = []

    def locking(fd, mode, n):
        where.append((os.lseek(fd, 0, os.SEEK_CUR), n))
        fcntl.flock(fd, fcntl.LOCK_UN if mode == 0 else fcntl.LOCK_EX | fcntl.LOCK_NB)

    monkeypatch.setattr(F, "fcntl", None)
    monkeypatch.setattr(F, "msvcrt", SimpleNamespace(LK_UNLCK=0, LK_NBLCK=2, locking=locking))
    path = tmp_path / "r.jsonl"
    with F.writer_lock(path) as lp:
        assert lp.read_text() == str(os.getpid())
        with pytest.raises(F.FileBusyError, match=f"process {os.getpid()}"):
            with F.writer_lock(path):
                pass
    assert lp.read_text() == "" and set(where) == {(F._WIN_LOCK_AT, 1)}
    with F.writer_lock(path):  # free again
        pass
    monkeypatch.setattr(F, "msvcrt", None)  # neither lock: nothing is locked, nothing fails
    with F.writer_lock(path), F.writer_lock(path):
        pass
