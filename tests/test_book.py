"""The whole book in the smoke profile: every chapter executes and the site renders offline."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from hneurons_utils.profiles import REPO_ROOT

BUILD = REPO_ROOT / "book" / "_build" / "html"


@pytest.fixture(scope="module")
def smoke_book():
    """Run scripts/build_book.sh with PROFILE=smoke once (papermill every notebook, then jupyter-book)."""
    env = dict(os.environ, PROFILE="smoke")
    proc = subprocess.run(["scripts/build_book.sh"], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc


@pytest.mark.slow
def test_every_chapter_renders(smoke_book):
    """Each chapter of _toc.yml has an executed notebook and an HTML page."""
    assert (BUILD / "index.html").exists()
    for name in ("01_cett", "02_identification", "03_generalisation", "04_behaviour", "05_origin",
                 "06_summary"):
        nb = json.loads((REPO_ROOT / "book" / f"{name}.ipynb").read_text())
        errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, f"{name} has error outputs"
        assert (BUILD / f"{name}.html").exists(), name


@pytest.mark.slow
def test_figures_are_embedded(smoke_book):
    """Chapter 1's figures are in the rendered page (images produced by executed code)."""
    html = (BUILD / "01_cett.html").read_text()
    assert len(re.findall(r"<img[^>]+\.png", html)) >= 3


@pytest.mark.slow
def test_pages_load_nothing_from_the_internet(smoke_book):
    """No page loads a script, stylesheet or font from another host (MathJax is local)."""
    offenders = []
    for page in BUILD.glob("*.html"):
        for tag in re.findall(r"<(?:script|link)[^>]+(?:src|href)=\"(https?:)?//[^\"]+\"", page.read_text()):
            offenders.append(page.name)
    assert not offenders, f"remote assets in {sorted(set(offenders))}"
    assert (BUILD / "_static" / "mathjax" / "tex-mml-chtml.js").exists()
