"""scripts/build_book.sh's scheduling: which chapter waits for which, and failures in either lane.

The script runs in a throw-away copy of the project whose ``.venv`` puts stub ``papermill``,
``jupytext`` and ``jupyter-book`` commands first on the PATH. Each stub papermill logs when a
chapter starts and ends, so the tests read the real script's order of events in seconds
(the smoke build in test_book.py runs the real commands).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = ["01_cett", "02_identification", "03_generalisation", "04_behaviour", "05_origin",
            "06_summary"]

PAPERMILL = """#!/usr/bin/env bash
name=$(basename "$2" .ipynb) out=$2
echo "start $name" >> "$LANES_LOG"
case " $STUB_SLOW " in *" $name "*) sleep 2 ;; *) sleep 0.2 ;; esac
[ "$name" = "${STUB_FAIL:-}" ] && { echo "fail $name" >> "$LANES_LOG"; exit 1; }
if [ "$name" = "${STUB_NO_KERNEL:-}" ] && [ "$(grep -c "^race $name" "$LANES_LOG")" -lt "${STUB_RACES:-1}" ]; then
  echo "race $name" >> "$LANES_LOG"
  echo "RuntimeError: Kernel died before replying to kernel_info" >&2; exit 1
fi
while [ $# -gt 0 ]; do [ "$1" = -f ] && sed "s/^/$name /" "$2" >> "$LANES_LOG.params"; shift; done
echo '{}' > "$out"
echo "end $name" >> "$LANES_LOG"
"""
JUPYTEXT = """#!/usr/bin/env bash
while [ $# -gt 0 ]; do [ "$1" = -o ] && { echo '{}' > "$2"; shift; }; shift; done
"""
JUPYTER_BOOK = """#!/usr/bin/env bash
echo "book" >> "$LANES_LOG"
echo "$*" >> "$LANES_LOG.book"
mkdir -p book/_build/html && touch book/_build/html/index.html
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the scripts, params and requirement files, six trivial chapters, and a stub venv."""
    for name in ["scripts", "params"]:
        shutil.copytree(ROOT / name, tmp_path / name)
    for name in ["requirements.txt", "requirements-models.txt", "pyproject.toml"]:
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "notebooks").mkdir()
    for ch in CHAPTERS:
        (tmp_path / "notebooks" / f"{ch}.py").write_text(
            '# %% tags=["parameters"]\nPROFILE = "default"\nOUTPUT_DIR = "results/default"\n')
    (tmp_path / "book" / "_mathjax" / "_static" / "mathjax").mkdir(parents=True)
    (tmp_path / "book" / "_mathjax" / "_static" / "mathjax" / "tex-mml-chtml.js").touch()
    (tmp_path / "book" / "intro.md").touch()
    (tmp_path / "book" / "references.bib").touch()
    bin_ = tmp_path / ".venv" / "bin"
    bin_.mkdir(parents=True)
    stubs = {"papermill": PAPERMILL, "jupytext": JUPYTEXT, "jupyter-book": JUPYTER_BOOK,
             "python": f'#!/usr/bin/env bash\nexec "{sys.executable}" "$@"\n'}
    for name, text in stubs.items():
        (bin_ / name).write_text(text)
        (bin_ / name).chmod(0o755)
    (bin_ / "activate").write_text(f'export PATH="{bin_}:$PATH"\n')
    digest = subprocess.run(
        "cat requirements.txt requirements-models.txt pyproject.toml | sha256sum | cut -c1-16",
        shell=True, cwd=tmp_path, capture_output=True, text=True, check=True).stdout.strip()
    (tmp_path / ".venv" / f".installed-{digest}").touch()  # setup_env.sh: nothing to install
    return tmp_path


def build(project: Path, **env: str) -> tuple[int, list[str], str]:
    """Run the copied build script; its exit code, the stubs' event log, and its output."""
    log = project / "lanes.log"
    log.unlink(missing_ok=True)
    full = {**os.environ, "LANES_LOG": str(log), "HNEURONS_DATA_DIR": str(project), "CHECK_DATA": "0", **env}
    proc = subprocess.run(["bash", "scripts/build_book.sh"], cwd=project, env=full,
                          capture_output=True, text=True, timeout=120)
    time.sleep(2.5)  # a side-lane chapter left running would log its end by now
    events = log.read_text().split("\n")[:-1] if log.exists() else []
    return proc.returncode, events, proc.stdout + proc.stderr


def at(events: list[str], event: str) -> int:
    assert event in events, f"{event!r} missing from {events}"
    return events.index(event)


def test_two_lanes_run_origin_beside_chapters_1_to_3_and_behaviour_after_the_probe(project):
    rc, ev, out = build(project, JOBS="2", STUB_SLOW="02_identification")
    assert rc == 0, out
    assert at(ev, "start 05_origin") < at(ev, "end 02_identification")  # side lane at once
    assert at(ev, "start 04_behaviour") > at(ev, "end 02_identification")  # needs the probe
    assert at(ev, "start 04_behaviour") > at(ev, "end 05_origin")
    for ch in ["04_behaviour", "05_origin", "03_generalisation"]:
        assert at(ev, "start 06_summary") > at(ev, f"end {ch}")  # the scorecard reads them all
    assert ev[-1] == "book" and (project / "book" / "_build" / "html" / "index.html").exists()
    assert not (project / "book" / ".done-02_identification").exists()


def test_one_lane_runs_the_chapters_in_order(project):
    rc, ev, out = build(project, JOBS="1")
    assert rc == 0, out
    assert [e.split()[1] for e in ev if e.startswith("start")] == CHAPTERS


@pytest.mark.parametrize("failing", ["05_origin", "04_behaviour"])
def test_a_failed_side_lane_chapter_fails_the_build(project, failing):
    rc, ev, out = build(project, JOBS="2", STUB_FAIL=failing)
    assert rc != 0 and "side lane" in out
    assert "start 06_summary" not in ev and "book" not in ev
    if failing == "05_origin":
        assert "start 04_behaviour" not in ev  # the lane stops at its first failure


def test_a_failed_main_lane_chapter_fails_the_build_and_stops_the_side_lane(project):
    rc, ev, out = build(project, JOBS="2", STUB_FAIL="01_cett", STUB_SLOW="05_origin")
    assert rc != 0
    assert "start 05_origin" in ev and "end 05_origin" not in ev  # stopped, not left running
    assert "start 02_identification" not in ev and "book" not in ev


def test_an_unknown_profile_is_named(project):
    rc, ev, out = build(project, PROFILE="nosuch")
    assert rc == 2 and "unknown profile nosuch" in out and ev == []


def test_a_failed_run_leaves_no_scratch_notebooks_in_the_book(project, tmp_path_factory):
    """Unexecuted notebooks and parameter files live in a scratch folder that is removed on
    failure too; leftovers of older runs in the book folder (which made jupyter-book warn, and
    so fail) are removed."""
    (project / "book" / ".src-05_origin.ipynb").write_text("{}")
    (project / "book" / ".params-05_origin.yaml").write_text("{}")
    tmp = tmp_path_factory.mktemp("scratch-root")
    rc, ev, out = build(project, JOBS="2", STUB_FAIL="05_origin", TMPDIR=str(tmp))
    assert rc != 0
    assert not list((project / "book").glob(".src-*")) and not list((project / "book").glob(".params-*"))
    left = [list(p.iterdir()) for p in tmp.iterdir()]
    assert left == [], left  # the scratch folder went with the failed run


def test_a_parameter_file_reaches_every_chapter_and_a_misspelt_one_stops_the_build(project):
    """PARAMS=file.yaml lays the user's overrides over the profile for every chapter (a path
    relative to where the command was typed); a name that is no chapter's parameter fails
    before any chapter runs, naming it."""
    (project / "mine.yaml").write_text("OUTPUT_DIR: results/mine\n")
    rc, ev, out = build(project, JOBS="1", PARAMS="mine.yaml")
    assert rc == 0, out
    lines = (project / "lanes.log.params").read_text().splitlines()
    assert sorted(ln for ln in lines if "OUTPUT_DIR" in ln) == sorted(
        f"{ch} OUTPUT_DIR: results/mine" for ch in CHAPTERS)
    (project / "typo.yaml").write_text("MODLE_ID: gpt2\n")
    rc, ev, out = build(project, JOBS="1", PARAMS="typo.yaml")
    assert rc != 0 and "MODLE_ID is not a parameter of any chapter" in out and ev == []
    rc, ev, out = build(project, PARAMS="nosuch.yaml")
    assert rc == 2 and "no file nosuch.yaml" in out and ev == []


def test_a_kernel_that_does_not_start_is_started_again_but_other_failures_are_not(project):
    """A kernel that dies before its first reply (a TCP port race between the lanes) is started
    again, at most twice; the chapter then runs once. A third such failure fails the build."""
    rc, ev, out = build(project, JOBS="2", STUB_NO_KERNEL="05_origin")
    assert rc == 0, out
    assert ev.count("race 05_origin") == 1 and ev.count("end 05_origin") == 1
    assert at(ev, "race 05_origin") < at(ev, "end 05_origin")
    rc, ev, out = build(project, JOBS="1", STUB_NO_KERNEL="01_cett", STUB_RACES="3")
    assert rc != 0 and ev.count("race 01_cett") == 3 and "start 02_identification" not in ev


def test_a_missing_benchmark_file_stops_the_build_before_any_chapter(project):
    """With no BioASQ or FalseQA file in the data directory (neither has a public copy), the
    build stops before the first chapter, naming each file and how to get it; a build of
    chapter 1 alone reads no benchmark and is not stopped."""
    rc, events, out = build(project, CHECK_DATA="1")
    assert rc != 0 and not any(e.startswith("start") for e in events)
    assert "bioasq/factoid.jsonl: BioASQ cannot be redistributed" in out and "falseqa/test.csv" in out
    rc, events, out = build(project, CHECK_DATA="1", NOTEBOOKS="01_cett")
    assert rc == 0 and "start 01_cett" in events


def test_one_chapter_alone_renders_without_the_others_and_says_so(project):
    """NOTEBOOKS="01_cett" on a fresh folder renders a site without the other chapters (whose
    missing pages would fail a -W build) and names them; the full build keeps -W, and so does
    a one-chapter rebuild where the others were executed before."""
    book_args = project / "lanes.log.book"
    rc, events, out = build(project, NOTEBOOKS="01_cett")
    assert rc == 0 and events[-1] == "book", out
    assert " -W " not in f" {book_args.read_text()} " and "no executed 02_identification" in out
    book_args.unlink()
    rc, events, out = build(project, JOBS="1")
    assert rc == 0 and " -W " in f" {book_args.read_text()} " and "no executed" not in out
    book_args.unlink()
    rc, events, out = build(project, NOTEBOOKS="03_generalisation")
    assert rc == 0 and " -W " in f" {book_args.read_text()} " and "no executed" not in out
