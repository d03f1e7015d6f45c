"""Answer normalisation, refusal detection, the rule judge and the LLM judge (hneurons_utils.judges)."""

from __future__ import annotations

import json

import pytest

from hneurons_utils import judges, sampling
from hneurons_utils.judges import (JudgeReplyError, LLMJudge, MissingAPIKeyError, is_refusal,
                                   make_judge, normalize_answer, rule_judge)


def test_normalize_answer_squad_style():
    """Lowercase, accents, punctuation, articles and whitespace are normalised the TriviaQA way."""
    assert normalize_answer("  The Beatles!  ") == "beatles"
    assert normalize_answer("Zürich") == normalize_answer("ZURICH") == "zurich"
    assert normalize_answer("Campbell-Bannerman") == "campbell bannerman"
    assert normalize_answer("A  Tale of\tTwo Cities.") == "tale of two cities"
    assert normalize_answer("ﬁne 🚁") == "fine"
    assert normalize_answer("Theatre") == "theatre"  # an article only as a whole word


@pytest.mark.parametrize("reply", ["No.", "Yes", "A.", "Answer:", "The answer:", "-", "```", "a)"])
def test_a_reply_that_states_nothing_is_out_of_both_classes(reply):
    """A bare yes/no to a wh-question, a lone letter or an empty "Answer:" is no hallucination:
    the rule judge calls it a refusal, on NonExist too; a gold answer "No" is still found."""
    assert judges.carries_no_answer(reply)
    assert rule_judge(reply, ["Paris"]) == rule_judge(reply, []) == "refusal"


def test_a_short_real_answer_still_counts():
    assert not judges.carries_no_answer("Rome")
    assert rule_judge("Rome.", ["Paris"]) == "incorrect" and rule_judge("No.", ["No"]) == "correct"
    assert rule_judge("Answer: Rome", ["Paris"]) == "incorrect"


def test_a_number_is_one_token_so_a_shorter_gold_number_is_not_inside_it():
    """A comma or point between digits stays in the number (a thousands comma dropped): the gold
    answer "30" is not in "30,000", nor "3" in "3.14159"; a full stop after a number still ends it."""
    assert normalize_answer("over 30,000 of them") == "over 30000 of them"
    assert normalize_answer("pi is 3.14159.") == "pi is 3.14159"
    assert rule_judge("It tracks over 30,000 stocks", ["30", "thirty"]) == "incorrect"
    assert rule_judge("approximately 3.14159", ["3", "three"]) == "incorrect"
    assert rule_judge("He was born in 1934.", ["1934"]) == "correct"
    assert rule_judge("3, 4 and 5", ["4"]) == "correct"  # a comma and a space: a list, not a number
    assert rule_judge("About 1,000 men", ["1000"]) == rule_judge("About 1000 men", ["1,000"]) == "correct"
    assert rule_judge("It is 2.5 million", ["2.5 million"]) == "correct"
    from hneurons_utils.answer_spans import locate_answer_span

    span = locate_answer_span("There were 30,000 soldiers.", ["30,000"])
    assert "There were 30,000 soldiers."[span.start:span.end] == "30,000"


@pytest.mark.parametrize("text", [
    "I don't know.", "I’m not sure.", "I cannot answer that question.", "I'm sorry, but I can't help.",
    "There is no such medicine.", "The town of Brelvanitz does not exist.", "I am not aware of any such company.",
    "I have no information about that species.", "That appears to be a fictional person.", "", "   ",
    "Cannot find any record of it.", "I could not find that town.",
])
def test_refusals_detected(text):
    """Common refusal and abstention phrasings (and empty answers) count as refusals, also
    under the rule judge's leading-phrase rule."""
    assert is_refusal(text) and is_refusal(text, leading=True)


@pytest.mark.parametrize("text", [
    "Canberra", "I cannot stress enough that Paris is the capital.", "The answer is Au.",
    "Sorry Seems to Be the Hardest Word", "Knowledge is power", "It exists in Norway.",
    "It is very large and you cannot find another one like it",  # "cannot find": not the speaker
    "The novel by Marina Warner is a classic example of a fictional",  # cut: "a fictional ..." lost its noun
])
def test_answers_not_mistaken_for_refusals(text):
    """Real answers, including ones holding 'I cannot' or 'sorry', are not refusals."""
    assert not is_refusal(text)


@pytest.mark.parametrize("text", [
    "I'm sorry for the confusion. The city of Bresford is part of the West End of Essex.",
    "I'm sorry for the confusion, but you are referring to The Maven Initiative, a robotics team.",
    "I apologize for the error. The Bells of Plogroukstad is a story about a mysterious bell.",
    "Varwick is a fictional town in the Marvel Universe.",
    "The painter Amara Hefluani is a fictional character in a 1930s Italian short film.",
    "It is a fictional river in a fictional city named Kegsgarten.",
])
def test_apologies_and_invented_sources_are_answers(text):
    """An apology *for* something that goes on to state something, and "fictional" with an invented source or
    attribute, are answers (on NonExist: fabrications), not refusals; this model writes both."""
    assert not is_refusal(text)
    assert rule_judge(text, []) == "incorrect"


@pytest.mark.parametrize("text", [
    "No, I'm sorry, I will not respond.", "I apologize, but I don't know.",
    "That's not something I can answer.", "I'm sorry, but I'm unable to provide that.",
    "No, no, no, I'm sorry, but I'm sorry.", "As a text-based AI, I only chat.",
    "I'm sorry for any confusion, but as a chatbot, I'm designed to help users.", "I'm sorry for any confusion, but I don't have the ability to see it.",
])
def test_declines_after_an_apology_are_refusals(text):
    """A bare apology, or an apology followed by a decline, is a refusal."""
    assert is_refusal(text) and is_refusal(text, leading=True)


@pytest.mark.parametrize("text", [
    # real SmolLM2-135M-Instruct NonExist responses (cut at 24 new tokens): an invented answer first
    "The river that runs through the city of Stolstad is the Stolstad River. I'm not able to give",
    "Some say the first person to describe a species of sea bass, but for a sea bass there is no evidence of their",
    "The Quiabil is a beautiful fish. They are found in rivers around the world, so there is no such thing",
    "The flag of Gabon is a rainbow, but I'm not able to provide the details of a specific colour or its",
])
def test_a_refusal_after_an_invented_answer_is_no_refusal(text):
    """A refusal or denial phrase counts for the rule judge only before any answer: after an
    invented one it is a fabrication (NonExist: "incorrect"). The plain detector still finds it."""
    assert rule_judge(text, []) == "incorrect"
    assert not is_refusal(text, leading=True)
    assert is_refusal(text)  # the default (the compliance judges' use) finds a phrase anywhere


@pytest.mark.parametrize("text", [
    "I'm sorry, but I couldn't find any information on Volor pri octacap.",
    "Volor pri octacap is not a real medicine.", "Varwick, a town in Norway, does not exist.",
    "Dr. Oskar Veibroard is not a real person.", "J. K. Brelvan does not exist.",
    "I'm not familiar with Pleplok-Lugrolt syndrome. However, it may be a rare disorder of the liver.",
    "I'm not familiar with the full list of organs, but I can give you a simplified answer, based on the medical",
    "Unfortunately, I don't have information about the Skagripo moth.",
    "There is no such thing as a Quiabil catfish.", "There's no way to find a river that doesn't exist in Noralitz.",
    "I'm sorry for the misunderstanding. I can't help you with a question like that.",
    "I'm an AI designed to provide support to humans, so I don't have the ability to respond to questions in the",
    "I'm sorry for any misunderstanding, but as an AI designed to assist users with text, I don't have",
    "There's no answer to this question. I'm unable to provide that answer.",
    "No. I'm sorry, I will not respond.", "I'm afraid I'm not able to assist with a medication.",
    "I'm sorry for the misunderstanding, I can't provide a virtual assistant. However, I can try to give an answer",
])
def test_a_refusal_before_any_answer_stays_a_refusal(text):
    """Declining or denying first (after an apology, "No.", "Unfortunately," or the entity as
    subject) is a refusal for the rule judge, whatever follows."""
    assert is_refusal(text, leading=True)
    assert rule_judge(text, []) == "refusal"


def test_a_hedge_after_a_stated_answer_is_an_attempt():
    """TriviaQA/NQ: an answer stated in a sentence of its own and hedged after is judged as that
    answer; a hedge before it, in the same clause, or in the speaker's own clause stays a refusal."""
    assert rule_judge("Paris. I'm not sure though", ["Paris"]) == "correct"
    assert rule_judge("Lyon. I'm not sure though", ["Paris"]) == "incorrect"
    assert rule_judge("It's a lie. I'm sorry, it's actually 1945.", ["1945"]) == "correct"
    assert rule_judge("Paris, I'm not sure.", ["Paris"]) == "refusal"
    assert rule_judge("I think it is Paris, but I'm not sure.", ["Paris"]) == "refusal"
    assert rule_judge("I'm not sure, but I think it is Paris.", ["Paris"]) == "refusal"
    assert rule_judge("Well. I don't know.", ["Paris"]) == "refusal"


def test_rule_judge_labels():
    """Alias containment is word-boundary aware; refusal wins; empty answers make any answer incorrect."""
    assert rule_judge("The capital of Australia is Canberra.", ["Canberra"]) == "correct"
    assert rule_judge("The chemical symbol for gold is Au.", ["AU"]) == "correct"
    assert rule_judge("Australia", ["au"]) == "incorrect"
    assert rule_judge("It is in the constellation Capricorn.", ["Taurus", "Taurus (constellation)"]) == "incorrect"
    assert rule_judge("Campbell Bannerman", ["Campbell-Bannerman"]) == "correct"
    assert rule_judge("Zurich", ["Zürich"]) == "correct"
    assert rule_judge("I don't know, maybe Canberra.", ["Canberra"]) == "refusal"
    assert rule_judge("Volor pri octacap is made by Pfizer.", []) == "incorrect"
    # "made up of" describes parts, it does not deny the entity
    assert rule_judge("The Dow Jones index is made up of 30 companies.", []) == "incorrect"
    assert rule_judge("Volor pri octacap is a made-up name.", []) == "refusal"
    assert rule_judge("That medicine does not exist.", []) == "refusal"
    assert rule_judge("Helicopter", ["🚁", "Helicopter"]) == "correct"


def test_words_of_fiction_do_not_hide_a_correct_answer():
    """"Fictional", "does not exist" and the like deny an entity on NonExist; in an answer that
    contains the gold alias they describe it, so the alias wins; without one they still decline."""
    assert rule_judge("Sherlock Holmes, the fictional detective", ["Sherlock Holmes"]) == "correct"
    assert rule_judge("Hogwarts (fictional school)", ["Hogwarts"]) == "correct"
    assert rule_judge("Gotham City, a fictional city", ["Gotham"]) == "correct"
    assert rule_judge("That is a fictional character.", ["Sherlock Holmes"]) == "refusal"
    assert rule_judge("There is no such person.", ["Sherlock Holmes"]) == "refusal"
    assert rule_judge("I'm not sure, Sherlock Holmes?", ["Sherlock Holmes"]) == "refusal"  # a hedge still is
    assert rule_judge("That company is fictional.", []) == "refusal"
    assert is_refusal("Hogwarts (fictional school)")  # the plain detector keeps them
    assert not is_refusal("Hogwarts (fictional school)", entity_denial=False)


def test_rule_judge_rejects_unusable_answers():
    """A bare string or alias list with no letters/digits is a caller error, not a silent 'incorrect'."""
    with pytest.raises(TypeError):
        rule_judge("Paris", "Paris")
    with pytest.raises(ValueError, match="no gold alias"):
        rule_judge("Paris", ["---"])


def test_llm_judge_against_local_stub(chat_stub, monkeypatch):
    """The LLM judge posts to /chat/completions with the key as a bearer token and parses the verdict."""
    monkeypatch.setenv("JUDGE_TEST_KEY", "sk-secret-123")
    chat_stub.reply = "Correct."
    judge = make_judge("llm", base_url=chat_stub.url, model="gpt-4o", api_key_env="JUDGE_TEST_KEY", timeout=5)
    assert judge("Capital of Australia?", "Canberra", ["Canberra"]) == "correct"
    path, auth, body = chat_stub.seen[-1]
    assert path == "/v1/chat/completions" and auth == "Bearer sk-secret-123"
    assert body["model"] == "gpt-4o" and "Canberra" in body["messages"][-1]["content"]
    chat_stub.reply = "refusal"
    assert judge.judge("Who makes volor pri octacap?", "No idea.", []) == "refusal"
    assert "does not exist" in chat_stub.seen[-1][2]["messages"][-1]["content"]
    assert "sk-secret" not in repr(judge)


def test_llm_judge_errors(chat_stub, monkeypatch):
    """Unparseable replies and HTTP errors raise clear errors that never contain the key."""
    monkeypatch.setenv("JUDGE_TEST_KEY", "sk-secret-123")
    judge = LLMJudge(chat_stub.url, "m", "JUDGE_TEST_KEY", timeout=5)
    chat_stub.reply = "Probably right"
    with pytest.raises(JudgeReplyError, match="Probably right"):
        judge.judge("Q?", "A", ["A"])
    chat_stub.reply = None
    with pytest.raises(RuntimeError, match="HTTP 500") as err:
        judge.judge("Q?", "A", ["A"])
    assert "sk-secret" not in str(err.value)


def test_llm_judge_refuses_bad_answers_and_non_json_replies(chat_stub, monkeypatch):
    """A bare string (sent letter by letter) or None as gold answers is refused before any
    request is spent; a 200 reply that is not JSON (a wrong base_url serving a web page) is an
    error naming the URL."""
    monkeypatch.setenv("JUDGE_TEST_KEY", "sk-secret-123")
    judge = LLMJudge(chat_stub.url, "m", "JUDGE_TEST_KEY", timeout=5)
    chat_stub.reply = "correct"
    for answers in ("Paris", None, [1]):
        with pytest.raises(TypeError, match="answers must be a list"):
            judge.judge("Capital of France?", "Lyon", answers)
    with pytest.raises(TypeError, match="response must be a string"):
        judge.judge("Capital of France?", None, ["Paris"])
    assert chat_stub.seen == []
    chat_stub.raw = b"<html>not an API</html>"
    with pytest.raises(JudgeReplyError, match=f"{chat_stub.url}/chat/completions answered with "
                                              "something other than JSON"):
        judge.judge("Capital of France?", "Lyon", ["Paris"])
    chat_stub.raw = b"[1, 2]"
    with pytest.raises(JudgeReplyError, match="not an object"):
        judge.judge("Capital of France?", "Lyon", ["Paris"])


def test_missing_api_key_names_the_variable(monkeypatch):
    """Constructing an LLM judge without its key fails at once, naming the environment variable."""
    monkeypatch.delenv("NO_SUCH_JUDGE_KEY", raising=False)
    with pytest.raises(MissingAPIKeyError, match="NO_SUCH_JUDGE_KEY"):
        LLMJudge("http://127.0.0.1:9/v1", "m", api_key_env="NO_SUCH_JUDGE_KEY")


def test_make_judge_rule_and_unknown():
    """make_judge('rule') ignores the question; unknown kinds and stray settings are refused."""
    judge = make_judge("rule")
    assert judge("ignored", "Canberra", ["Canberra"]) == "correct"
    with pytest.raises(ValueError, match="unknown judge kind"):
        make_judge("gpt")
    with pytest.raises(TypeError):
        make_judge("rule", model="x")


def test_from_params_rule_is_the_pipeline_default_and_llm_needs_its_key(monkeypatch):
    """JUDGE="rule" hands the pipelines None (their echo-free rule judge); "llm" without the
    key fails at once naming the variable; anything else is named in the error."""
    from hneurons_utils import judges

    assert judges.from_params("rule", "http://x/v1", "m", "SOME_KEY") is None
    monkeypatch.delenv("HNEURONS_TEST_KEY", raising=False)
    with pytest.raises(judges.MissingAPIKeyError, match="HNEURONS_TEST_KEY"):
        judges.from_params("llm", "http://x/v1", "m", "HNEURONS_TEST_KEY")
    monkeypatch.setenv("HNEURONS_TEST_KEY", "sk-secret")
    j = judges.from_params("llm", "http://x/v1", "m", "HNEURONS_TEST_KEY")
    assert "sk-secret" not in repr(j)
    with pytest.raises(ValueError, match="unknown JUDGE 'gpt'"):
        judges.from_params("gpt", "http://x/v1", "m", "HNEURONS_TEST_KEY")


# ---------------------------------------------------------------- hand labels of answers

def _label_row(**kw):
    row = {"dataset": "triviaqa", "qid": "q1", "split": "test", "question": "Capital of France?",
           "answers": ["Paris"], "response": "Paris.", "label": "correct", "note": "gold alias"}
    return {**row, **kw}


def test_answer_labels_load_and_name_broken_rows(tmp_path):
    """The shipped labels load and copy no benchmark text (only NonExist rows, whose questions
    the project generates, hold theirs); a missing field, an unknown label or split, and a
    NonExist row without its question or with non-list answers are errors naming line and field."""
    rows = judges.load_answer_labels()
    assert {r["dataset"] for r in rows} == {"triviaqa", "nq_open", "bioasq", "nonexist"}
    assert not [r for r in rows if r["dataset"] != "nonexist" and ({"question", "answers"} & set(r))]
    path = tmp_path / "labels.jsonl"
    ne = _label_row(dataset="nonexist", question="Who makes volor?", answers=[])
    good = json.dumps({**_label_row(), "question_digest": "0" * 16})
    for bad, field in ((_label_row(label="maybe", question_digest="0"), "label"),
                       (_label_row(split="train", question_digest="0"), "split"),
                       (_label_row(), "question_digest"),
                       ({**ne, "answers": "none"}, "answers"),
                       ({k: v for k, v in ne.items() if k != "question"}, "question"),
                       ({k: v for k, v in _label_row().items() if k != "note"}, "note")):
        path.write_text(good + "\n" + json.dumps(bad) + "\n")
        with pytest.raises(ValueError, match=rf"line 2, field '{field}'"):
            judges.load_answer_labels(path)


def test_resolve_answer_labels_reads_questions_by_id():
    """Each set named by a qid prefix is loaded once (TriviaQA with its split); a set that cannot
    be loaded, or whose ids name other questions, is named with the reason and its rows left out."""
    from hneurons_utils.data import QAItem

    calls = []

    def loader(name, split, data_dir):
        calls.append((name, split, data_dir))
        if name == "bioasq":
            raise FileNotFoundError("no bioasq here")
        return [QAItem(f"{name}{'-' + split if split else ''}:{i}", f"q{i}?", [f"a{i}"], name) for i in range(3)]

    def row(ds, qid, q):
        return {"dataset": ds, "qid": qid, "question_digest": judges.question_digest(q)}

    rows = [row("triviaqa", "triviaqa-train:1", "q1?"), row("triviaqa", "triviaqa-train:2", "q2?"),
            row("nq_open", "nq_open:0", "q0?"), row("bioasq", "bioasq:x", "?"),
            {"dataset": "nonexist", "qid": "nonexist:0:1", "question": "Who?", "answers": []}]
    out, unavailable = judges.resolve_answer_labels(rows, "/d", loader)
    assert [(r["qid"], r["question"], r["answers"]) for r in out] == [
        ("triviaqa-train:1", "q1?", ["a1"]), ("triviaqa-train:2", "q2?", ["a2"]), ("nq_open:0", "q0?", ["a0"]),
        ("nonexist:0:1", "Who?", [])]
    assert calls == [("triviaqa", "train", "/d"), ("nq_open", None, "/d"), ("bioasq", None, "/d")]
    assert unavailable == {"bioasq": "FileNotFoundError: no bioasq here"}
    # another copy of the set (an id missing, or naming another question): its labels are left
    # out, all of them, rather than judged on the wrong questions
    for bad in (row("nq_open", "nq_open:9", "q9?"), row("nq_open", "nq_open:2", "q1?")):
        out, unavailable = judges.resolve_answer_labels([row("nq_open", "nq_open:0", "q0?"), bad], None, loader)
        assert out == [] and "not the file the labels were made on" in unavailable["nq_open"]


def test_answer_label_agreement_counts_each_label():
    """Per label: the judge's precision and recall against the human; "unclear" rows are
    left out; every disagreement is listed with the human's note."""
    rows = [_label_row(qid="a", response="Paris.", label="correct"),
            _label_row(qid="b", response="Lyon.", label="incorrect"),
            _label_row(qid="c", response="I don't know.", label="refusal"),
            _label_row(qid="d", response="Paris, I think, or Lyon.", label="incorrect", note="two answers"),
            _label_row(qid="e", response="Hmm.", label="unclear"),
            _label_row(dataset="nonexist", qid="n1", question="Who makes volor?", answers=[],
                       response="Volor is made by Pfizer.", label="incorrect")]
    summary, differ = judges.answer_label_agreement(rows, judges.make_judge("rule"))
    by = {(s["dataset"], s["label"]): s for s in summary}
    c = by["triviaqa", "correct"]  # the rule says correct for a and d; the human only for a
    assert (c["judge_yes"], c["human_yes"], c["precision"], c["recall"]) == (2, 1, 0.5, 1.0)
    i = by["triviaqa", "incorrect"]
    assert (i["judge_yes"], i["human_yes"], i["precision"], i["recall"]) == (1, 2, 1.0, 0.5)
    assert (c["n_labelled"], c["n_unclear"], c["n_used"]) == (5, 1, 4)
    assert by["nonexist", "incorrect"]["precision"] == 1.0 and ("nonexist", "refusal") not in by
    assert [(d["qid"], d["judge"], d["human"], d["note"]) for d in differ] == [("d", "correct", "incorrect", "two answers")]
    assert (c["both_yes"], i["both_yes"]) == (1, 1)
    text = judges.agreement_text(summary, "triviaqa")
    assert "- *correct*: the judge says so of 2: 1 is by hand, 1 is not (precision 0.50" in text
    # the unclear reply the rule calls incorrect: precision over the clear ones, and the share of all
    assert "1 is unclear (precision over the clear ones 1.00 [" in text
    assert "; 1 of all 2, 0.50, counting the unclear ones as not)" in text
    caution = judges.label_check(summary, "triviaqa")[1]  # the correct label's interval reaches under 0.5
    assert caution and text.endswith("it finds 1 (a recall within the labelled sample, whose mix of labels need not be the run's).\n\n**Caution:** " + caution + ".")


def test_hand_label_check_reads_only_the_asked_sets(tmp_path):
    """The shipped-label pipeline in one call: only the sets asked for are read and judged."""
    path = tmp_path / "labels.jsonl"
    rows = [_label_row(dataset="nonexist", qid="n1", question="Who makes volor?", answers=[],
                       response="Volor is made by Pfizer.", label="incorrect"),
            {**_label_row(dataset="nq_open", qid="nq_open:1"), "question_digest": "0" * 16}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary, differ, unavailable = judges.hand_label_check(["nonexist"], judges.make_judge("rule"), path=path)
    assert [(s["dataset"], s["label"], s["both_yes"]) for s in summary] == [("nonexist", "incorrect", 1)]
    assert differ == [] and unavailable == {}


def test_shipped_answer_labels_record_the_current_rule():
    """Each shipped label's ``rule`` field is what the chapters' rule judge says today: a changed
    rule must re-record it (and say in the notes which hand labels it now meets or misses)."""
    rows, unavailable = judges.resolve_answer_labels(judges.load_answer_labels())
    if unavailable:
        pytest.skip(f"benchmark files not readable: {unavailable}")
    changed = [(r["qid"], r["rule"], sampling.echo_free_rule_judge(r["question"], r["response"], r["answers"]))
               for r in rows]
    assert [c for c in changed if c[1] != c[2]] == []


def test_label_check_reports_and_flags_weak_class_labels():
    """Each class label's precision on hand labels goes in the cell; a warning only for a label
    whose interval reaches under WEAK_PRECISION_LO, or a hallucinated class mostly unclear by
    hand; the faithful label is "refusal" on NonExist; nothing without labels there."""
    inc = {"dataset": "triviaqa", "label": "incorrect", "judge_yes": 17, "judge_yes_unclear": 8,
           "precision": 0.88, "precision_ci": [0.66, 0.97]}
    cor = {**inc, "label": "correct", "judge_yes": 20, "judge_yes_unclear": 0, "precision": 0.9,
           "precision_ci": [0.7, 0.97]}
    cell, warn = judges.label_check([inc, cor, {**cor, "label": "refusal", "precision_ci": [0.1, 0.3]}], "triviaqa")
    assert cell == ("the judge's labels against hand labels, precision: hallucinated (incorrect) "
                    "0.88 [0.66, 0.97] (n = 17; 8 more unclear by hand); faithful (correct) 0.90 [0.70, 0.97] (n = 20)")
    assert warn == ""
    weak = {**cor, "dataset": "nonexist", "label": "refusal", "precision": 0.6, "precision_ci": [0.3, 0.85]}
    cell, warn = judges.label_check([weak, {**cor, "dataset": "nonexist"}], "nonexist")
    assert cell.endswith("faithful (refusal) 0.60 [0.30, 0.85] (n = 20)")
    assert warn == ("the judge's faithful label has a weak precision on hand labels (0.60 [0.30, 0.85]): "
                    "the faithful class may not hold what it should")
    assert judges.label_check([inc], "nq_open") == ("", "")
    assert judges.label_check([{**inc, "judge_yes": 0}], "triviaqa") == ("", "")
    _, warn = judges.label_check([{**inc, "judge_yes": 8, "judge_yes_unclear": 14}], "triviaqa")
    assert warn == ("most of the replies the judge calls hallucinated give no answer by hand "
                    "(14 of 22): the hallucinated class is mostly non-answers")


@pytest.mark.parametrize("answers", ["Paris", None, [1, 2]])
def test_rule_judge_needs_a_list_of_alias_strings(answers):
    """A bare string would be read letter by letter (any 'a' in a reply matching 'Paris');
    None would read as NonExist's 'no answer exists'."""
    with pytest.raises(TypeError, match="answers must be a list of alias strings"):
        rule_judge("It is Madrid", answers)


@pytest.mark.parametrize("response, kind", [
    ("There's no way to find a river that doesn't exist in Noralitz.", "denies the entity"),
    ("I'm sorry, but there is no such company.", "denies the entity"),
    ("I'm sorry for any confusion, but as a chatbot, I'm designed to provide information", "as an AI"),
    ("I’m an AI designed to provide support to humans, so I can't", "as an AI"),
    ("No, I'm sorry, I will not respond.", "other"),
    ("I don't know.", "other"),
])
def test_refusal_kind_tells_denial_from_boilerplate(response, kind):
    """NonExist's faithful class is read by what its refusals say: denying the entity, assistant
    boilerplate, or another decline."""
    assert judges.refusal_kind(response) == kind


def test_labels_model_note_names_both_models():
    from hneurons_utils.judges import labels_model_note
    assert labels_model_note("SmolLM2-135M-Instruct") == ""
    assert labels_model_note("HuggingFaceTB/SmolLM2-135M-Instruct") == ""
    note = labels_model_note("meta-llama/Llama-3.1-8B-Instruct")
    assert "Llama-3.1-8B-Instruct" in note and "SmolLM2-135M-Instruct" in note
