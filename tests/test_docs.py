"""The prose names only things that exist: every ``module.name`` of the package, every
upper-case name (a chapter parameter, a package constant or an environment variable the code
reads) and every repository path quoted in backticks in the book's pages, the README, the
contributor guide and the chapters' text. A rename that leaves the prose behind fails here,
before a reader or a teacher's exercise meets it. (Paths of results, like
``identification/probe.json``, are checked against the smoke build in ``test_book.py``.)"""

from __future__ import annotations

import importlib
import re

import pytest

from hneurons_utils.profiles import REPO_ROOT, all_parameters

PAGES = sorted([*REPO_ROOT.glob("book/*.md"), REPO_ROOT / "README.md", REPO_ROOT / "CONTRIBUTING.md"])
CHAPTERS = sorted(REPO_ROOT.glob("notebooks/[0-9][0-9]_*.py"))
MODULES = {p.stem for p in (REPO_ROOT / "hneurons_utils").glob("*.py")}
FILE_ENDINGS = {"json", "jsonl", "npz", "yaml", "yml", "md", "py", "txt", "png", "ipynb", "sh",
                "safetensors", "gguf", "html", "csv", "tsv", "parquet", "bib", "toml"}


def quoted(path) -> list[str]:
    """The backticked spans of a page, or of a chapter's comment and markdown lines."""
    text = path.read_text()
    if path.suffix == ".py":
        text = "\n".join(line[2:] for line in text.splitlines() if line.startswith("# "))
    return re.findall(r"`([^`\n]+)`", text)


def is_path(span: str) -> bool:
    return "/" in span and " " not in span and not span.startswith(("http", "-"))


def package_references(span: str) -> list[tuple[str, str]]:
    """``(module, name)`` for each ``module.name`` or ``hneurons_utils.module.name`` in a span
    that is not a path or a file name (``probe.json`` names a file, not ``probe.json``)."""
    if is_path(span):
        return []
    return [(mod, name) for mod, name in
            re.findall(r"(?<![\w./])(?:hneurons_utils\.)?([a-z_]+)\.([A-Za-z_]\w*)", span)
            if mod in MODULES and name not in FILE_ENDINGS]


def known_upper_names() -> set[str]:
    """Chapter parameters, the package's module-level names, the files at the top of the
    repository (``LICENSE``), and every upper-case word of the scripts, the Makefile, the CI
    entry and the package's source (environment variables the code reads, sets or names in its
    messages)."""
    names = set(all_parameters()) | {p.name for p in REPO_ROOT.iterdir()}
    for mod in MODULES:
        names |= {n for n in vars(importlib.import_module(f"hneurons_utils.{mod}")) if n.isupper()}
    sources = [*REPO_ROOT.glob("scripts/*"), REPO_ROOT / "Makefile", REPO_ROOT / ".ci" / "run",
               *(REPO_ROOT / "hneurons_utils").glob("*.py")]
    for src in sources:
        names |= set(re.findall(r"\b[A-Z][A-Z0-9_]{2,}\b", src.read_text()))
    return names


@pytest.mark.parametrize("page", PAGES + CHAPTERS, ids=lambda p: p.name)
def test_package_names_in_the_prose_exist(page):
    missing = [f"{mod}.{name}" for span in quoted(page) for mod, name in package_references(span)
               if not hasattr(importlib.import_module(f"hneurons_utils.{mod}"), name)]
    assert not missing, f"{page.name} names what the package lacks: {missing}"


@pytest.mark.parametrize("page", PAGES + CHAPTERS, ids=lambda p: p.name)
def test_upper_case_names_in_the_prose_are_parameters_constants_or_environment(page):
    known = known_upper_names()
    unknown = [s for s in quoted(page) if re.fullmatch(r"[A-Z][A-Z0-9_]{2,}", s) and s not in known]
    assert not unknown, f"{page.name} names no parameter, constant or variable: {unknown}"


def repository_paths(page) -> list[str]:
    """Backticked paths that start at a top-level entry of the repository (others are results
    paths, relative to a chapter's output folder) and are not placeholders or build outputs."""
    top = {p.name for p in REPO_ROOT.iterdir()}
    return [s.rstrip("/") for s in quoted(page) if is_path(s) and s.split("/")[0] in top
            and not re.search(r"[<>*{}]|NN_|\.\.\.", s) and not re.match(r"book/(\.|_build)", s)]


@pytest.mark.parametrize("page", PAGES + CHAPTERS, ids=lambda p: p.name)
def test_repository_paths_in_the_prose_exist(page):
    missing = [s for s in repository_paths(page) if not (REPO_ROOT / s).exists()]
    assert not missing, f"{page.name} names paths that do not exist: {missing}"


def test_the_checks_catch_a_stale_name(tmp_path):
    """Each check finds what it is for: a missing function, an unknown upper-case name, a
    missing path; file names and results paths are not mistaken for either."""
    page = tmp_path / "page.md"
    page.write_text("Call `detection.no_such_function(x)` with `NO_SUCH_PARAMETER`, read "
                    "`data/no_such_file.json`; `probe.json` and `identification/probe.json` are files, "
                    "`stats.detection_metrics` and `MODEL_ID` exist.")
    refs = [r for span in quoted(page) for r in package_references(span)]
    assert refs == [("detection", "no_such_function"), ("stats", "detection_metrics")]
    assert not hasattr(importlib.import_module("hneurons_utils.detection"), "no_such_function")
    known = known_upper_names()
    assert "MODEL_ID" in known and "HNEURONS_DATA_DIR" in known and "NO_SUCH_PARAMETER" not in known
    assert repository_paths(page) == ["data/no_such_file.json"]
