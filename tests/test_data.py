"""Loaders of the benchmark files, the NonExist generator and jailbreak templates (hneurons_utils.data)."""

from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path

import pytest

from hneurons_utils import data as D
from hneurons_utils.data import DataFormatError

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("HNEURONS_DATA_DIR") or REPO.parent / "shared" / "data")
def needs(*files: str):
    """Skip unless every one of ``files`` is in the data directory (BioASQ and FalseQA have no
    public copy: without them the other data tests still run)."""
    missing = [f for f in files if not (SHARED / f).is_file()]
    return pytest.mark.skipif(bool(missing), reason=f"{', '.join(missing)} not found at {SHARED}")


TRIVIAQA = ("triviaqa/train.tsv", "triviaqa/test.tsv")


@pytest.fixture(scope="module")
def triviaqa():
    """Both TriviaQA splits, loaded once for this module."""
    return {split: D.load_triviaqa(split, SHARED) for split in ("train", "test")}


@needs(*TRIVIAQA)
@pytest.mark.parametrize("split,rows", [("train", 8837), ("test", 11313)])
def test_triviaqa_row_counts(triviaqa, split, rows):
    """Every TriviaQA row listed in the data README loads, with a stable line-numbered qid."""
    items = triviaqa[split]
    assert len(items) == rows
    assert items[0].qid == f"triviaqa-{split}:1" and items[-1].qid == f"triviaqa-{split}:{rows}"
    assert len({it.qid for it in items}) == rows


@needs(*TRIVIAQA)
def test_triviaqa_quoting_quirk_rows_parse(triviaqa):
    """Alias lists and questions wrapped in extra CSV quoting come out unquoted."""
    items = {it.qid: it for it in triviaqa["train"]}
    boxing = items["triviaqa-train:3"]  # "['Prize fight', ..." wrapped in one layer of quotes
    assert boxing.question == "Ezzard Charles was a world champion in which sport?"
    assert "Boxing" in boxing.answers and "Gentleman's sport" in boxing.answers
    quoted = items["triviaqa-train:1900"]  # question under two layers of quoting
    assert quoted.question.startswith('"The 59th Street Bridge Song" was an early')
    assert '""' not in quoted.question
    assert "🚁" in items["triviaqa-train:1"].answers  # non-ASCII aliases are kept as written


@needs("nq_open/test.jsonl")
def test_nq_open_skips_symbol_only_answers_with_a_logged_count(caplog):
    """NQ-Open's two rows whose only answers are punctuation ('---', ')') are skipped and logged."""
    with caplog.at_level(logging.WARNING, logger="hneurons_utils.data"):
        items = D.load_nq_open(SHARED)
    assert len(items) == 3610 - 2
    assert "skipped 2 of 3610 rows" in caplog.text
    assert "nq_open:291" not in {it.qid for it in items}


@needs("bioasq/factoid.jsonl")
def test_bioasq_uses_file_ids():
    """BioASQ loads all 1,600 factoid questions, keyed by the file's own ids."""
    items = D.load_bioasq(SHARED)
    assert len(items) == 1600
    assert items[0].qid == "bioasq:56bc751eac7ad10019000013"
    assert items[0].answers == ["bazex syndrome", "Bazex syndrome"]


@needs("nq_open/test.jsonl")
def test_load_qa_limit_is_a_seeded_subset():
    """load_qa(limit, seed) is deterministic per seed, differs across seeds, and keeps file order."""
    a = D.load_qa("nq_open", None, SHARED, limit=50, seed=3)
    b = D.load_qa("nq_open", "test", SHARED, limit=50, seed=3)
    c = D.load_qa("nq_open", None, SHARED, limit=50, seed=4)
    assert [x.qid for x in a] == [x.qid for x in b] != [x.qid for x in c]
    lines = [x.meta["line"] for x in a]
    assert len(a) == 50 and lines == sorted(lines)
    with pytest.raises(ValueError, match="single"):
        D.load_qa("nq_open", "train", SHARED)
    with pytest.raises(ValueError, match="unknown QA dataset"):
        D.load_qa("squad", None, SHARED)


def test_questions_that_hold_every_gold_answer_are_dropped_and_counted(tmp_path, caplog):
    """A question whose every gold alias is written in it ("... men or women?", gold "women") is
    not closed-book recall and an echo of it would be judged correct: the loaders drop it, after
    drawing the subset, and log how many; a question holding only some aliases stays."""
    mk = lambda q, a: D.QAItem(q, q, a, "x")  # noqa: E731
    both = mk("Is gout more common in men or women?", ["Men", "men"])
    some = mk("How is the Chilean Pine known in the UK?", ["Chilean pine", "Monkey puzzle"])
    plain = mk("Capital of France?", ["Paris"])
    assert D.answer_in_question(both) and not D.answer_in_question(some)
    assert not D.answer_in_question(plain)
    with caplog.at_level(logging.WARNING):
        assert D.drop_answer_in_question([both, some, plain], "toy") == [some, plain]
    assert "skipped 1 of 3 rows (every gold answer is written in the question); kept 2" in caplog.text
    f = tmp_path / "own.jsonl"
    f.write_text('{"question": "Red or blue?", "answers": ["blue"]}\n'
                 '{"question": "Sky colour?", "answers": ["blue"]}\n')
    assert [it.question for it in D.load_qa_file(f, "own")] == ["Sky colour?"]


@needs("bioasq/factoid.jsonl", "nq_open/test.jsonl", "triviaqa/test.tsv")
def test_bundled_subsets_hold_no_question_that_contains_its_answers():
    """Through load_qa, no TriviaQA / BioASQ / NQ-Open question carries all its answers."""
    for name, split in (("bioasq", None), ("nq_open", None), ("triviaqa", "test")):
        items = D.load_qa(name, split, SHARED)
        assert items and not any(D.answer_in_question(it) for it in items)
    assert any(D.answer_in_question(it) for it in D.load_bioasq(SHARED))  # the raw file has some


@needs("falseqa/train.csv", "falseqa/valid.csv", "falseqa/test.csv")
@pytest.mark.parametrize("split,rows", [("train", 2374), ("valid", 982), ("test", 1374)])
def test_falseqa_splits(split, rows):
    """FalseQA loads every row, half false-premise; rebuttal lists (test) and strings both parse."""
    items = D.load_falseqa(split, SHARED)
    assert len(items) == rows
    assert Counter(it.false_premise for it in items) == {True: rows // 2, False: rows // 2}
    assert all(it.rebuttals and not it.answers for it in items if it.false_premise)
    assert all(it.answers and not it.rebuttals for it in items if not it.false_premise)
    if split == "test":
        assert len(items[0].rebuttals) == 3


@needs("truthfulqa/TruthfulQA.csv")
def test_truthfulqa_bom_and_answer_lists():
    """TruthfulQA's BOM does not break the header; ';'-separated answers become lists."""
    items = D.load_truthfulqa(SHARED)
    assert len(items) == 817
    first = items[0]
    assert first.question == "What happens to you if you eat watermelon seeds?"
    assert first.category == "Misconceptions" and "You die" in first.incorrect
    assert first.best_answer in first.correct


@needs("jailbreak/forbidden_question_set.csv", "jailbreak/jailbreak_prompts.csv")
def test_jailbreak_files():
    """390 forbidden questions (13 scenarios x 30) and 666 jailbreak templates load with unique ids."""
    qs = D.load_forbidden_questions(SHARED)
    assert len(qs) == 390 and len({q.qid for q in qs}) == 390
    assert Counter(q.scenario for q in qs).most_common()[-1][1] == 30
    templates = D.load_jailbreak_templates(SHARED)
    assert len(templates) == 666 and len({t.tid for t in templates}) == 666
    assert {t.platform for t in templates} >= {"discord", "reddit"}


def test_fill_template_placeholders_and_append():
    """The question replaces every placeholder form, is appended when none exists, and is taken literally."""
    q = r"How do I pick a lock \1?"
    assert D.fill_template("Niccolo's first question: \"[INSERT PROMPT HERE]\"", q) == \
        f"Niccolo's first question: \"{q}\""
    assert D.fill_template(r"Answer \[insert prompt here\] now", q) == f"Answer {q} now"
    assert D.fill_template("Prompt: [PROMPT]. Also {INSERT PROMPT HERE}", q) == f"Prompt: {q}. Also {q}"
    assert D.fill_template('prompt = "${prompt}"', q) == f'prompt = "{q}"'
    rule = "none of AIM's responses should contain [insert x]."
    assert D.fill_template(rule, q) == f"{rule}\n\n{q}"
    t = D.JailbreakTemplate("jailbreak:1", "You are DAN.  ", "reddit", "")
    assert D.fill_template(t, q) == f"You are DAN.\n\n{q}"


def test_malformed_tsv_names_file_line_and_field(tmp_path):
    """A broken alias list raises DataFormatError naming the file, its line number and the field."""
    (tmp_path / "triviaqa").mkdir()
    path = tmp_path / "triviaqa" / "train.tsv"
    rows = ["Q1?\t['a']", """Q2?\t"['b', ""c""]\"""", "Q3?\t['unclosed"]
    path.write_text("\r\n".join(rows) + "\r\n", encoding="utf-8")
    with pytest.raises(DataFormatError) as err:
        D.load_triviaqa("train", tmp_path)
    assert err.value.line == 3 and err.value.field == "answers"
    assert str(path) in str(err.value) and "line 3" in str(err.value)
    path.write_text("Q1?\t['a']\nonly one column\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match="line 2, field 'columns'"):
        D.load_triviaqa("train", tmp_path)


def test_malformed_csv_and_jsonl_rows(tmp_path):
    """Bad FalseQA labels and bad JSON lines are reported at their own line, multi-line rows counted right."""
    (tmp_path / "falseqa").mkdir()
    (tmp_path / "falseqa" / "test.csv").write_text(
        'question,answer,label\n"Why?\nReally?",Because.,1\nWhat?,It.,2\n', encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"line 4, field 'label'"):
        D.load_falseqa("test", tmp_path)
    (tmp_path / "bioasq").mkdir()
    (tmp_path / "bioasq" / "factoid.jsonl").write_text(
        '{"id": "x", "question": "Q?", "answers": ["a"]}\n{"id": "y", "question": "Q?", "answers": "a"}\n')
    with pytest.raises(DataFormatError, match=r"line 2, field 'answers'"):
        D.load_bioasq(tmp_path)


@pytest.mark.parametrize("rel, body, load", [
    ("nq_open/test.jsonl", b'{"question": "q1", "answer": ["a"]}\n{"question": "caf\xe9", "answer": ["x"]}\n',
     lambda d: D.load_nq_open(d)),
    ("triviaqa/train.tsv", b"Q1\t['a']\nQ\xff2\t['a']\n", lambda d: D.load_triviaqa("train", d)),
    ("falseqa/test.csv", b"question,answer,label\nQ\xff,x,1\n", lambda d: D.load_falseqa("test", d))])
def test_a_byte_that_is_not_utf8_is_named_with_its_line(tmp_path, rel, body, load):
    """A file saved in Latin-1 (caf\xe9) fails at its line, not with a bare UnicodeDecodeError."""
    (tmp_path / rel).parent.mkdir(parents=True)
    (tmp_path / rel).write_bytes(body)
    with pytest.raises(DataFormatError, match=r"line 2, field 'encoding': byte 0x(e9|ff) is not UTF-8"):
        load(tmp_path)


@pytest.mark.parametrize("rel, body, load", [
    ("nq_open/test.jsonl", "", lambda d: D.load_nq_open(d)),
    ("nq_open/test.jsonl", "\n\n", lambda d: D.load_nq_open(d)),
    ("triviaqa/train.tsv", "", lambda d: D.load_triviaqa("train", d)),
    ("falseqa/test.csv", "question,answer,label\n", lambda d: D.load_falseqa("test", d))])
def test_a_file_with_no_row_is_an_error_not_an_empty_benchmark(tmp_path, rel, body, load):
    """An empty file (a failed download, say) would load as a benchmark of no question and
    surface chapters later as a set that 'could not be balanced'."""
    (tmp_path / rel).parent.mkdir(parents=True)
    (tmp_path / rel).write_text(body, encoding="utf-8")
    with pytest.raises(DataFormatError, match="holds no row"):
        load(tmp_path)


def test_empty_answer_lists_are_skipped_and_logged(tmp_path, caplog):
    """A row with an empty alias list is dropped with a logged count, never silently."""
    (tmp_path / "triviaqa").mkdir()
    (tmp_path / "triviaqa" / "test.tsv").write_text("Q1?\t['x']\nQ2?\t[]\nQ3?\t[]\nQ4?\t['The The', 'a']\n",
                                                  encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="hneurons_utils.data"):
        items = D.load_triviaqa("test", tmp_path)
    assert [it.qid for it in items] == ["triviaqa-test:1"]
    assert "empty answer list" in caplog.text and "skipped" in caplog.text
    assert "no alias with a word left after normalisation" in caplog.text  # articles only: unjudgeable


def test_nonexist_collision_read_does_not_repeat_skip_warnings(tmp_path, caplog):
    """Reading the sets for NonExist's collision check keeps their texts but not their row-skip
    warnings (the chapter's own load prints those); the filter is removed afterwards."""
    (tmp_path / "triviaqa").mkdir()
    (tmp_path / "triviaqa" / "test.tsv").write_text("Q1?\t['Paris']\nQ2?\t[]\n", encoding="utf-8")
    with caplog.at_level(logging.INFO, logger="hneurons_utils.data"):
        texts = D.nonexist_exclude_texts(tmp_path)
    assert texts == ["Q1?", "Paris"]
    assert "skipped" not in caplog.text and "checking names against 2 texts" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hneurons_utils.data"):
        D.load_triviaqa("test", tmp_path)
    assert "skipped 1 of 2 rows (empty answer list)" in caplog.text


def test_missing_file_offline_gives_actionable_errors(tmp_path, monkeypatch):
    """Without a local file: FalseQA/BioASQ name where to get them; Hub sets say to set HNEURONS_DATA_DIR."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(D, "_fetch_hub", lambda src: (_ for _ in ()).throw(OSError("offline")))
    with pytest.raises(FileNotFoundError, match="thunlp/FalseQA"):
        D.load_falseqa("test", tmp_path)
    with pytest.raises(FileNotFoundError, match="bioasq"):
        D.load_bioasq(tmp_path)
    with pytest.raises(RuntimeError, match="HNEURONS_DATA_DIR.*or go online"):
        D.load_nq_open(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        D.load_nq_open(tmp_path / "nowhere")


def test_hub_rows_are_mapped_to_local_records(tmp_path, monkeypatch):
    """Hub rows (TriviaQA's nested answer, TruthfulQA's lists) load like the local files."""
    hub = {"mandarjoshi/trivia_qa": [{"question_id": "tc_1", "question": "Q?",
                                      "answer": {"aliases": ["Au", "Gold"]}}],
           "truthfulqa/truthful_qa": [{"type": "A", "category": "Law", "question": "Q?",
                                       "best_answer": "B", "correct_answers": ["B", "C; D"],
                                       "incorrect_answers": ["E"]}]}
    monkeypatch.setattr(D, "_fetch_hub", lambda src: hub[src.repo])
    assert D.load_triviaqa("train", tmp_path)[0].qid == "triviaqa-train:tc_1"
    assert D.load_triviaqa("train", tmp_path)[0].answers == ["Au", "Gold"]
    t = D.load_truthfulqa(tmp_path)[0]
    assert (t.correct, t.incorrect, t.category) == (["B", "C; D"], ["E"], "Law")


def test_malformed_hub_row_names_source_row_and_field(tmp_path, monkeypatch):
    """A Hub row without a needed field is a ValueError naming the dataset, the row and the field."""
    rows = [{"question_id": "tc_1", "question": "Q?", "answer": {"aliases": ["Au"]}},
            {"question_id": "tc_2", "question": "R?"}]  # row 2 lacks "answer"
    monkeypatch.setattr(D, "_fetch_hub", lambda src: rows)
    with pytest.raises(ValueError, match=r"trivia_qa.*row 2: field 'answer' is missing"):
        D.load_triviaqa("train", tmp_path)


def test_nonexist_is_reproducible_and_balanced():
    """Same seed gives the same questions; another seed differs; kinds are balanced and answers empty."""
    a, b, c = D.make_nonexist(48, seed=7), D.make_nonexist(48, seed=7), D.make_nonexist(48, seed=8)
    assert [x.question for x in a] == [x.question for x in b] != [x.question for x in c]
    kinds = Counter(x.meta["kind"] for x in a)
    assert len(kinds) == 8 and set(kinds.values()) == {6}
    assert all(x.answers == [] and x.dataset == "nonexist" for x in a)
    assert all(x.meta["entity"] in x.question for x in a)
    assert len({x.meta["entity"].lower() for x in a}) == 48
    assert len({x.qid for x in a}) == 48


def test_nonexist_avoids_excluded_names():
    """Names whose invented words appear in the excluded texts are regenerated, and counted."""
    first = D.make_nonexist(40, seed=1)
    exclude = [f"Who made {x.meta['entity']}?" for x in first[:20]]
    second = D.make_nonexist(40, seed=1, exclude_texts=exclude)
    blob = " ".join(exclude).lower()
    assert second.rejected >= 1
    assert not any(x.meta["entity"].lower() in blob for x in second)
    assert [x.question for x in second] == [x.question for x in D.make_nonexist(40, 1, exclude)]


def test_nonexist_parts_file_is_validated(tmp_path):
    """A parts file whose template lacks {entity} is rejected with the file and field named."""
    bad = tmp_path / "parts.json"
    bad.write_text('{"syllables": {}, "lists": {}, "real_word_lists": [], '
                   '"kinds": {"drug": {"names": ["x"], "templates": ["What is it?"]}}}')
    with pytest.raises(DataFormatError, match="kinds.drug.templates"):
        D.make_nonexist(1, parts_path=bad)


def test_load_qa_nonexist_checks_local_sets(tmp_path):
    """load_qa('nonexist') generates `limit` items, checked against the local QA files' text."""
    (tmp_path / "triviaqa").mkdir()
    (tmp_path / "triviaqa" / "test.tsv").write_text("Who wrote Emma?\t['Jane Austen']\n", encoding="utf-8")
    items = D.load_qa("nonexist", None, tmp_path, limit=8, seed=2)
    expected = D.make_nonexist(8, 2, ["Who wrote Emma?", "Jane Austen"])
    assert [x.question for x in items] == [x.question for x in expected] and len(items) == 8
    with pytest.raises(ValueError, match="single"):
        D.load_qa("nonexist", "train", tmp_path)


def test_own_qa_file_is_validated_like_the_bundled_sets(tmp_path):
    """A user's JSONL QA set loads with ids from its name; a bad name, a bundled set's name, a
    missing file, a malformed row (file, line, field) and a file with no usable row are errors."""
    path = tmp_path / "mine.jsonl"
    path.write_text('{"question": "Q1?", "answers": ["x"]}\n\n{"id": "x", "question": "Q2?", "answers": ["b", "c"]}\n')
    items = D.load_qa_file(path, "mine")
    assert [(it.qid, it.question, it.answers, it.dataset) for it in items] == [
        ("mine:1", "Q1?", ["x"], "mine"), ("mine:x", "Q2?", ["b", "c"], "mine")]
    with pytest.raises(ValueError, match="letters, digits"):
        D.load_qa_file(path, "my set")
    with pytest.raises(ValueError, match="bundled"):
        D.load_qa_file(path, "nq_open")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        D.load_qa_file(tmp_path / "nosuch.jsonl", "mine")
    path.write_text('{"question": "Q1?", "answers": ["a"]}\n{"question": "Q2?", "answers": "b"}\n')
    with pytest.raises(DataFormatError, match=r"mine.jsonl, line 2, field 'answers'"):
        D.load_qa_file(path, "mine")
    path.write_text('{"question": "Q1?", "answers": []}\n')
    with pytest.raises(ValueError, match="no usable question"):
        D.load_qa_file(path, "mine")
    path.write_text('{"id": "a", "question": "Q1?", "answers": ["x"]}\n'
                    '{"id": "a", "question": "Q2?", "answers": ["y"]}\n')  # one record on disk
    with pytest.raises(DataFormatError, match=r"line 2, field 'id': 'a' repeats the id of line 1"):
        D.load_qa_file(path, "mine")
    path.write_text('{"id": null, "question": "Q1?", "answers": ["x"]}\n')
    with pytest.raises(DataFormatError, match=r"line 1, field 'id': must be a non-empty string"):
        D.load_qa_file(path, "mine")
    with pytest.raises(ValueError, match="needs a question"):
        D.fill_template("Do [INSERT PROMPT HERE] now", None)


def test_source_report_names_local_hub_and_missing_files(tmp_path, monkeypatch):
    """Each benchmark file the book reads is local, fetched from the Hub, or missing (no public
    copy): check_sources raises naming every missing one and how to get it."""
    from hneurons_utils.data import BOOK_FILES, check_sources, source_report

    monkeypatch.delenv("HNEURONS_DATA_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "bioasq").mkdir()
    (tmp_path / "bioasq" / "factoid.jsonl").write_text("")
    by = {r["file"]: r for r in source_report(tmp_path)}
    assert set(by) == set(BOOK_FILES)
    assert by["bioasq/factoid.jsonl"]["source"] == "local"
    assert by["falseqa/test.csv"]["source"] == "missing" and "thunlp/FalseQA" in by["falseqa/test.csv"]["how"]
    assert by["triviaqa/train.tsv"]["source"] == "hub" and "only from the local Hugging Face cache" in \
        by["triviaqa/train.tsv"]["how"]
    with pytest.raises(FileNotFoundError, match=r"falseqa/test.csv: FalseQA has no official") as e:
        check_sources(tmp_path)
    assert "bioasq" not in str(e.value)
    (tmp_path / "falseqa").mkdir()
    (tmp_path / "falseqa" / "test.csv").write_text("")
    assert "falseqa/test.csv: local" in check_sources(tmp_path)
    with pytest.raises(FileNotFoundError, match="none set: HNEURONS_DATA_DIR"):
        check_sources(None)


@pytest.mark.parametrize("module", ["hneurons_utils.data", "hneurons_utils.profiles"])
def test_command_line_help_and_misuse(module):
    """``--help`` prints the usage and succeeds; an unknown option prints it and fails."""
    import subprocess
    import sys

    ok = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.startswith(f"usage: python -m {module}")
    bad = subprocess.run([sys.executable, "-m", module, "-x"], capture_output=True, text=True)
    assert bad.returncode == 1 and bad.stderr.startswith(f"usage: python -m {module}")
