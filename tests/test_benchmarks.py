"""Tests for hneurons_utils.benchmarks: the four suites' builders, their decoding, bad settings."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest

from hneurons_utils import benchmarks
from hneurons_utils.data import FalseQAItem, ForbiddenQuestion, JailbreakTemplate, TruthfulQAItem


def _tqa(n: int = 6) -> list[TruthfulQAItem]:
    return [TruthfulQAItem(f"tqa:{i}", f"Question {i}?", f"True answer {i}", [f"True answer {i}"],
                           [f"Wrong one {i}", f"Wrong two {i}", f"Wrong three {i}"], "Misc")
            for i in range(n)]


# ---------------------------------------------------------------- builders


def test_falseqa_items_keep_only_false_premises_seeded():
    """falseqa_items samples false-premise questions only, the same ones for the same seed."""
    items = [FalseQAItem(f"f:{i}", f"q{i}", ["no"], i % 2 == 0) for i in range(20)]
    a, b = benchmarks.falseqa_items(items, 5, seed=3), benchmarks.falseqa_items(items, 5, seed=3)
    assert [x.item_id for x in a] == [x.item_id for x in b]
    assert all(int(x.item_id.split(":")[1]) % 2 == 0 for x in a) and len(a) == 5
    with pytest.raises(ValueError, match="no false-premise"):
        benchmarks.falseqa_items([FalseQAItem("f", "q", [], False)], 1)


@pytest.mark.parametrize("fmt", ["letter", "text"])
def test_faitheval_from_truthfulqa_context_supports_the_context_option(fmt):
    """The context asserts exactly the option at context_key; true_key holds the best answer."""
    items = benchmarks.faitheval_from_truthfulqa(_tqa(), None, seed=1, n_options=3, fmt=fmt)
    keys = set()
    for it in items:
        opts, meta = it.meta["options"], it.meta
        asserted = opts[benchmarks.LETTERS.index(meta["context_key"])]
        assert asserted in meta["context"] and asserted.startswith("Wrong")
        assert opts[benchmarks.LETTERS.index(meta["true_key"])].startswith("True answer")
        assert meta["context"] in it.user and all(o in it.user for o in opts)
        assert ("A. " in it.user) == (fmt == "letter")
        keys.add(meta["context_key"])
    assert len(keys) > 1  # the seeded order really varies
    again = benchmarks.faitheval_from_truthfulqa(_tqa(), None, seed=1, n_options=3, fmt=fmt)
    assert [i.user for i in again] == [i.user for i in items]


def test_builders_never_offer_one_option_twice():
    """TruthfulQA lists one incorrect answer twice: a repeat (or a restated best answer) is
    not offered as a second option, and an item left with too few distinct ones is skipped."""
    dup = TruthfulQAItem("tqa:d", "Q?", "Best.", ["Best."], ["Wrong", "wrong.", "best", "Other"], "M")
    short = TruthfulQAItem("tqa:s", "Q2?", "B", ["B"], ["W", "W"], "M")
    for build in (benchmarks.faitheval_from_truthfulqa, benchmarks.sycophancy_truthfulqa_items):
        for seed in range(10):
            items = build(iter([dup, short]), None, seed, 3)  # a generator is read once
            assert [it.item_id for it in items] == ["tqa:d"]
            opts = [o.rstrip(".").lower() for o in items[0].meta["options"]]
            assert sorted(opts) == ["best", "other", "wrong"]


def test_bad_sizes_and_option_counts_are_refused():
    """Negative or fractional sizes, fractional option counts, more options than letters and a
    suite without questions are errors, not quietly shorter suites."""
    with pytest.raises(ValueError, match="n must be None"):
        benchmarks.falseqa_items([FalseQAItem("f", "q", [], True)], -1)
    with pytest.raises(ValueError, match="FAITHEVAL_OPTIONS must be a whole number"):
        benchmarks.faitheval_from_truthfulqa(_tqa(), 2, n_options=3.5)
    with pytest.raises(ValueError, match="between 2 and 8 options"):
        benchmarks.mc_user("Q?", [f"o{i}" for i in range(9)])
    qs = [ForbiddenQuestion(f"q{i}", f"How do I do bad thing {i}?", "Illegal") for i in range(3)]
    ts = [JailbreakTemplate("t0", "Ignore rules. [INSERT PROMPT HERE]", "web", "c")]
    assert len(benchmarks.jailbreak_items(qs, ts, 3)) == 3
    with pytest.raises(ValueError, match="n must be None"):
        benchmarks.jailbreak_items(qs, ts, -1)
    with pytest.raises(ValueError, match="no forbidden questions"):
        benchmarks.jailbreak_items([], ts, 2)


def test_faitheval_hub_without_datasets_says_what_to_do(monkeypatch):
    """The Hub loader names the missing package and the offline alternative."""
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(ImportError, match="truthfulqa"):
        benchmarks.faitheval_from_hub(5)


def test_faitheval_hub_offline_error_is_actionable(monkeypatch):
    """A Hub failure (offline) becomes one error naming the set and the offline option."""
    fake = SimpleNamespace(load_dataset=lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    monkeypatch.setitem(sys.modules, "datasets", fake)
    with pytest.raises(RuntimeError, match="FaithEval-counterfactual.*FAITHEVAL_SOURCE"):
        benchmarks.faitheval_from_hub(5)


def test_faitheval_hub_rows_map_answer_key(monkeypatch):
    """Hub rows keep their options in order and answerKey becomes context_key."""
    rows = [{"id": "x1", "question": "Q?", "context": "C.", "answerKey": "C",
             "choices": {"label": ["A", "B", "C", "D"], "text": ["a", "b", "c", "d"]}}]
    monkeypatch.setitem(sys.modules, "datasets", SimpleNamespace(load_dataset=lambda *a, **k: rows))
    (it,) = benchmarks.faitheval_from_hub(None)
    assert it.meta["context_key"] == "C" and it.meta["options"] == ["a", "b", "c", "d"]


def test_sycophancy_truthfulqa_gold_key_is_the_best_answer():
    """The gold letter of each multiple-choice item points at TruthfulQA's best answer."""
    for it in benchmarks.sycophancy_truthfulqa_items(_tqa(), None, seed=0, n_options=4):
        assert it.meta["options"][benchmarks.LETTERS.index(it.meta["gold_key"])].startswith("True answer")


def test_jailbreak_items_span_scenarios_and_respect_template_length():
    """Questions are drawn scenario by scenario; long templates are skipped; the question is filled in."""
    qs = [ForbiddenQuestion(f"q:{s}-{i}", f"forbidden {s} {i}", f"S{s}") for s in range(4) for i in range(5)]
    ts = [JailbreakTemplate("t:short", "Pretend. [INSERT PROMPT HERE]", "", ""),
          JailbreakTemplate("t:long", "x" * 900 + " [INSERT PROMPT HERE]", "", "")]
    items = benchmarks.jailbreak_items(qs, ts, 4, seed=0, max_template_chars=100)
    assert sorted(it.meta["scenario"] for it in items) == ["S0", "S1", "S2", "S3"]
    assert all(it.meta["template"] == "t:short" and it.meta["question"] in it.user for it in items)
    with pytest.raises(ValueError, match="at most 10 characters"):
        benchmarks.jailbreak_items(qs, ts, 4, max_template_chars=10)


def test_decoding_follows_section_6_2_2():
    """Greedy for FalseQA/FaithEval/MC sycophancy; the paper's sampling for the others."""
    assert not benchmarks.decoding("falseqa").do_sample and not benchmarks.decoding("faitheval").do_sample
    assert not benchmarks.decoding("sycophancy", "truthfulqa-mc").do_sample
    open_ = benchmarks.decoding("sycophancy", "triviaqa")
    assert (open_.temperature, open_.top_k, open_.top_p) == (0.7, 50, 0.95)
    jb = benchmarks.decoding("jailbreak", max_new_tokens=32)
    assert (jb.temperature, jb.top_k, jb.top_p, jb.max_new_tokens) == (0.7, 20, 0.8, 32)
    assert benchmarks.decoding("jailbreak").max_new_tokens == 256
    with pytest.raises(ValueError, match="unknown benchmark"):
        benchmarks.decoding("mmlu")


# ---------------------------------------------------------------- bad inputs fail early


def test_bad_benchmark_settings_raise_clear_errors():
    """A misspelled FaithEval source, too many options and an empty suite are named, not skipped."""
    with pytest.raises(ValueError, match="FAITHEVAL_SOURCE 'truthfullqa'.*truthfulqa.*hub"):
        benchmarks.faitheval_items("truthfullqa", _tqa(), 2)
    assert len(benchmarks.faitheval_items("truthfulqa", _tqa(), 2, n_options=2)) == 2
    with pytest.raises(ValueError, match="FAITHEVAL_OPTIONS=9.*between 2 and 8"):
        benchmarks.faitheval_from_truthfulqa(_tqa(), 2, n_options=9)
    with pytest.raises(ValueError, match="SYC_OPTIONS=1"):
        benchmarks.sycophancy_truthfulqa_items(_tqa(), 2, n_options=1)
    with pytest.raises(ValueError, match=r"\['triviaqa'\]"):
        benchmarks.check_suites({"falseqa": [object()], "triviaqa": []})
