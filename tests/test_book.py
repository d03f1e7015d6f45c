"""The whole book in the smoke profile: every chapter executes and the site renders offline.

It is built in a temporary folder (``BOOK_OUT``), so a ``make book`` run's executed notebooks
and site in ``book/`` survive ``make test``."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from hneurons_utils.profiles import REPO_ROOT



@pytest.fixture(scope="module")
def smoke_book(tmp_path_factory):
    """Run scripts/build_book.sh with PROFILE=smoke once (papermill every notebook, then
    jupyter-book) into a temporary folder; returns that folder."""
    out = tmp_path_factory.mktemp("smoke-book")
    before = _book_state()
    from conftest import HUB_OFFLINE_GIVEN

    env = dict(os.environ, PROFILE="smoke", BOOK_OUT=str(out))
    if HUB_OFFLINE_GIVEN is None:  # the test command left the Hub on: files absent here are fetched
        env.pop("HF_HUB_OFFLINE")
    proc = subprocess.run(["scripts/build_book.sh"], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    out.joinpath(".book-state-before").write_text(json.dumps(before))
    return out


def _book_state() -> dict:
    """Executed notebooks and the site index in book/ with their modification times."""
    book = REPO_ROOT / "book"
    paths = [*book.glob("*.ipynb"), book / "_build" / "html" / "index.html"]
    return {p.name: p.stat().st_mtime_ns for p in paths if p.exists()}


@pytest.mark.slow
def test_smoke_build_leaves_the_book_folder_alone(smoke_book):
    """A `make book` run's executed notebooks and site in book/ survive `make test`."""
    assert json.loads((smoke_book / ".book-state-before").read_text()) == _book_state()


@pytest.mark.slow
def test_every_chapter_renders(smoke_book):
    """Each chapter of _toc.yml has an executed notebook and an HTML page."""
    build = smoke_book / "_build" / "html"
    assert (build / "index.html").exists()
    chapters = sorted(p.stem for p in (REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
    assert len(chapters) == 7, chapters
    for name in chapters:
        nb = json.loads((smoke_book / f"{name}.ipynb").read_text())
        errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, f"{name} has error outputs"
        assert (build / f"{name}.html").exists(), name


@pytest.mark.slow
def test_figures_are_embedded(smoke_book):
    """Chapter 1's figures are in the rendered page (images produced by executed code)."""
    html = (smoke_book / "_build" / "html" / "01_cett.html").read_text()
    assert len(re.findall(r"<img[^>]+\.png", html)) >= 3
    for page in (smoke_book / "_build" / "html").glob("0*.html"):  # alt text, not a file hash
        assert 'alt="_images/' not in page.read_text(), page.name


@pytest.mark.slow
def test_numbers_on_the_page_are_the_papers(smoke_book):
    """No book-wide "Fig. 12" beside the text's "Figure 3": figures are unnumbered, and the
    displayed equations that are the paper's carry its numbers."""
    build = smoke_book / "_build" / "html"
    for page in build.glob("0*.html"):
        assert "caption-number" not in page.read_text(), page.name
    assert r"\tag{paper, Eq. 7}" in (build / "01_cett.html").read_text()
    assert r"\tag{paper, Eq. 5}" in (build / "04_behaviour.html").read_text()


@pytest.mark.slow
def test_pages_load_nothing_from_the_internet(smoke_book):
    """No page loads a script, stylesheet, image, frame or font from another host (MathJax is
    local), and no stylesheet pulls a remote url()."""
    build, offenders = smoke_book / "_build" / "html", []
    for page in build.glob("*.html"):
        if re.search(r"<(?:script|link|img|iframe|source)[^>]+(?:src|href)=\"(?:https?:)?//", page.read_text()):
            offenders.append(page.name)
    for css in build.rglob("*.css"):
        if re.search(r"url\(\s*['\"]?(?:https?:)?//", css.read_text(errors="replace")):
            offenders.append(str(css.relative_to(build)))
    assert not offenders, f"remote assets in {sorted(set(offenders))}"
    assert (build / "_static" / "mathjax" / "tex-mml-chtml.js").exists()
    assert (build / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").is_dir()
    for page in build.glob("*.html"):  # MathJax at most once (pages with math: once), and its
        # font file only as MathJax loads it
        scripts = re.findall(r"<script[^>]+src=\"([^\"]+)\"", page.read_text())
        loads = sum("tex-mml-chtml.js" in s for s in scripts)
        assert loads == 1 if page.name in ("01_cett.html", "04_behaviour.html") else loads <= 1, \
            (page.name, scripts)
        assert not any("fonts/" in s for s in scripts), (page.name, scripts)


@pytest.mark.slow
def test_chapters_record_their_environment_and_the_scorecard_reads_it(smoke_book):
    """Chapters 1-5 and the package tour write environment.json beside their results, and the
    scorecard page states the environment the build ran in (one, in one smoke build)."""
    for chapter in ("cett", "identification", "generalisation", "behaviour", "api", "origin"):
        found = list(REPO_ROOT.glob(f"results/smoke/*/{chapter}/environment.json"))
        assert found, chapter
        assert all(len(json.loads(f.read_text())) >= 1 for f in found)
    nb = json.loads((smoke_book / "06_summary.ipynb").read_text())
    text = "".join("".join(o.get("data", {}).get("text/markdown", "")) for c in nb["cells"]
                   for o in c.get("outputs", []))
    assert "**Environment.** Every chapter of this build that recorded one ran on" in text, text[-2000:]


@pytest.mark.slow
def test_results_files_named_in_the_prose_are_written(smoke_book):
    """Every results file the pages and chapters name (``identification/probe.json``,
    ``generalisation/*.json``: paths relative to a chapter's output folder) is one the smoke
    build wrote, so a reader who looks for it finds it."""
    from test_docs import CHAPTERS, PAGES, is_path, quoted

    from hneurons_utils.data import BOOK_FILES

    top = {p.name for p in REPO_ROOT.iterdir()}
    benchmarks = {f.split("/")[0] for f in BOOK_FILES}  # files of the data directory, not results
    named = {s for page in PAGES + CHAPTERS for s in quoted(page)
             if is_path(s) and s.split("/")[0] not in top | benchmarks and not s.startswith((".", "~"))
             and re.search(r"\.\w+$", s) and not re.search(r"[<>]", s)}
    assert len(named) >= 10, sorted(named)
    missing = sorted(s for s in named if not list(REPO_ROOT.glob(f"results/smoke/*/{s}")))
    assert not missing, f"named in the prose, not written by the smoke build: {missing}"


@pytest.mark.slow
@pytest.mark.parametrize("family, dtype", [("gpt2", "float32"), ("opt", "bfloat16")])
def test_chapter_1_runs_on_another_architecture_by_parameters_only(tmp_path, family, dtype):
    """The CETT chapter on a tiny random GPT-2 (Conv1D down-projection, no chat template) or OPT
    (layers that flatten tokens before the FFN) saved as a local folder: only MODEL_ID,
    OUTPUT_DIR and DTYPE change (bfloat16, the paper profile's, for OPT: the chapter's literal
    check must hold there too), and its results describe that model."""
    import torch
    import yaml
    from conftest import tiny_tokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, OPTConfig, OPTForCausalLM

    from hneurons_utils.profiles import profile_for_notebook

    folder = tmp_path / f"tiny-{family}"
    torch.manual_seed(0)
    ids = dict(vocab_size=100, pad_token_id=0, eos_token_id=1, bos_token_id=1)
    hf = (GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=3, n_head=4, n_positions=256, **ids))
          if family == "gpt2" else
          OPTForCausalLM(OPTConfig(hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                                   ffn_dim=128, word_embed_proj_dim=32, **ids)))
    hf.save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    nb_py = REPO_ROOT / "notebooks" / "01_cett.py"
    params = {**profile_for_notebook("smoke", nb_py), "MODEL_ID": str(folder), "DTYPE": dtype,
              "OUTPUT_DIR": str(tmp_path / "results")}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(params))
    cmd = (f"jupytext --quiet --to ipynb -o {tmp_path}/src.ipynb {nb_py} && papermill "
           f"{tmp_path}/src.ipynb {tmp_path}/out.ipynb -k python3 --cwd {REPO_ROOT} "
           f"-f {tmp_path}/p.yaml --no-progress-bar")
    proc = subprocess.run(cmd, shell=True, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = json.loads((tmp_path / "out.ipynb").read_text())
    text = "".join("".join(o.get("text", "")) for c in out["cells"] for o in c.get("outputs", []))
    assert type(hf).__name__ in text and "3 layers x 128 neurons" in text
    layer = json.loads((tmp_path / "results" / folder.name / "cett" / "cett_by_layer.json").read_text())
    assert len(layer["top1pct_share"]) == 3
