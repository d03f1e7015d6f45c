"""Locating the answer inside a response and mapping it to tokens (hneurons_utils.answer_spans)."""

from __future__ import annotations

import numpy as np
import pytest

from hneurons_utils.answer_spans import (AnswerSpan, locate_answer_span, span_stats,
                                         token_mask_from_span)


def _span(response, answers, question=None):
    sp = locate_answer_span(response, answers, question)
    return sp.text(response), sp.method


@pytest.mark.parametrize("response,answers,expected", [
    # real greedy outputs of the embedded SmolLM2-135M-Instruct
    ("The capital of Australia is Canberra.", ["Canberra"], ("Canberra", "alias")),
    ("The chemical symbol for gold is Au.", ["Au", "Gold"], ("Au", "alias")),
    ("The constellation Aldebaran is in the constellation Sagittarius.", ["Taurus"],
     ("Sagittarius", "content")),
    ("Capricorn", ["Taurus"], ("Capricorn", "content")),
    # accents and case in the response map back to its own characters
    ("It is in Zürich, Switzerland.", ["zurich"], ("Zürich", "alias")),
    ("**Boxing**", ["Boxing match", "Boxing"], ("Boxing", "alias")),
    ("The answer is: Sunset Boulevard.", ["Sunset Blvd", "Sunset Boulevard"], ("Sunset Boulevard", "alias")),
])
def test_alias_and_content_spans(response, answers, expected):
    """The span is the gold alias when present, else the content after the question echo."""
    assert _span(response, answers) == expected


@pytest.mark.parametrize("response,expected", [
    ("The answer is Lyon.", "Lyon"),
    ("I think it's Canberra, which is a planned city.", "Canberra"),
    ("It is Taurus.", "Taurus"),
    ("I\u2019d say it\u2019s Paris", "Paris"),
    ("The Chipmunks were created by Ross Bagdasarian.", "created by Ross Bagdasarian"),
    ("Dr. No was directed by Terence Young. It was released in 1962.", "directed by Terence Young"),
    ("1,000 metres", "1,000 metres"),
    ("The answer is 7. It was first.", "7"),  # a period after a lone digit ends the sentence
    ("J. K. Rowling wrote it.", "J. K. Rowling wrote it"),  # after a lone letter: an initial
    ("Sure! The answer is Lyon.", "Lyon"),  # an interjection that ends its own sentence
    ("Well. I think it's Canberra.", "Canberra"),
])
def test_content_span_strips_filler(response, expected):
    """Filler ('The answer is', 'I think it's', 'It is'), clauses and the trailing period are dropped."""
    assert _span(response, ["not present"]) == (expected, "content")


def test_word_boundaries_and_question_echo():
    """Alias 'au' does not match inside 'Australia'; with the question, an echoed Y yields X."""
    assert _span("Australia", ["au"]) == ("Australia", "content")
    q = "What is the capital of France?"
    assert _span("Lyon is the capital of France.", ["Paris"], q) == ("Lyon", "content")
    assert _span("The capital of France is Lyon.", ["Paris"], q) == ("Lyon", "content")


@pytest.mark.parametrize("question,response,expected", [
    # real SmolLM2-135M-Instruct TriviaQA responses that restate the question before the claim
    ("In World War II, on which of the Pacific islands was the bloodiest battle fought, resulting in "
     "the deaths of 12,000 American troops and 121,000 Japanese?",
     "In World War II, on which of the Pacific islands was the bloodiest battle fought? The answer is 20", "20"),
    ("Who preceded Hosni Mubarak as President of Egypt?",
     "Hosni Mubarak's predecessor, Fais el-Fihari, is one of the few who", "Fais el-Fihari"),
    ("In Indian cuisine what is \u2018murgh\u2019?",
     "In Indian cuisine, \u2018murgh\u2019 is a type of spicy madeleine, which is d", "type of spicy madeleine"),
    ("Which Spanish poet and playwright was murdered by Falangist soldiers in 1936?",
     "The Spanish poet and playwright who was murdered by Falangist soldiers in 1936 is Elena Kaf", "Elena Kaf"),
    ("What is Europe's highest volcano called",
     "Europe's most infamous volcano, El Chabar, is not known for its volcanoes.", "El Chabar"),
    # an answer that repeats some question words is kept, not passed over
    ("What is comedian Frank Skinner's real name?",
     "Frank Martin Skinner, a comedian, is a man named Frank Martin Skinner.", "Martin Skinner"),
    ("Which river flows through Paris?", "The Seine River, famous for its bridges, flows through Paris.",
     "Seine River"),
    ("Which character did Tom Hanks play in early episodes of Family Ties?",
     "Tom Hanks played in early episodes of Family Ties in 2012 as James Hurt. He appeared",
     "played in early episodes of Family Ties in 2012 as James Hurt"),
    ("The city of Belgrade lies at the confluence of the River Sava and which other river?",
     "The city of Belgrade lies at the confluence of the River Sava and the River Ibar, the Sava being", "Ibar"),
    ("What is the capital of Australia?", "Canberra is the capital of Australia, which is a planned city.",
     "Canberra"),
    # all of it echoes: the first clause's span, as before
    ("Which Pacific Island is known as Rapa Nui to the local inhabitants?", "Rapa Nui.", "Nui"),
])
def test_content_span_passes_over_an_echo_of_the_question(question, response, expected):
    """A content span that restates the question (mostly its words, or "<its word>'s <relation>")
    gives way to the next clause or sentence whose span does not; without that, the old span."""
    assert _span(response, ["not present"], question) == (expected, "content")


def test_content_span_without_question_is_unchanged():
    """Without the question there is nothing to compare: the first clause is the span."""
    r = "In World War II, on which of the Pacific islands was the bloodiest battle fought? The answer is 20"
    assert _span(r, ["not present"]) == ("World War II", "content")


@pytest.mark.xfail(strict=True, reason="an echo in other words ('starts with the letter M' for "
                   "'beginning with M') shares one word of three with the question: not seen")
def test_content_span_misses_a_paraphrased_echo():
    """The claimed answer "mare" sits after a clause that restates the question in other words."""
    r = 'The word labyrinth starts with the letter M, but the corresponding English language word is "mare".'
    q = "What is another word for labyrinth beginning with 'M'?"
    assert _span(r, ["not present"], q) == ("mare", "content")


def test_alias_inside_content_is_preferred():
    """When the alias also appears in the echoed question part, the occurrence in the answer wins."""
    r = "The symbol for gold is gold."
    sp = locate_answer_span(r, ["Gold"])
    assert (sp.start, sp.method) == (r.rindex("gold"), "alias")


def test_fallback_for_empty_or_filler_only():
    """Empty and filler-only responses fall back to the whole response."""
    assert locate_answer_span("", ["x"]) == AnswerSpan(0, 0, "fallback")
    assert locate_answer_span("The answer is.", ["x"]) == AnswerSpan(0, 14, "fallback")
    assert locate_answer_span("Sure!", ["x"]) == AnswerSpan(0, 5, "fallback")


def test_token_mask_from_offsets():
    """Tokens overlapping the span are marked; special (0, 0) tokens and non-overlapping ones are not."""
    response = "The capital of Australia is Canberra."
    offsets = [(0, 0), (0, 3), (3, 11), (11, 14), (14, 24), (24, 27), (27, 31), (31, 36), (36, 37)]
    span = locate_answer_span(response, ["Canberra"])
    mask = token_mask_from_span(offsets, span)
    assert mask.dtype == np.bool_ and mask.tolist() == [False] * 6 + [True, True, False]
    with pytest.raises(ValueError, match="no token overlaps"):
        token_mask_from_span([(0, 3)], AnswerSpan(10, 12, "alias"))
    with pytest.raises(ValueError, match=r"\[tokens, 2\]"):
        token_mask_from_span([(0, 1, 2)], span)


def test_span_stats_counts_methods():
    """span_stats reports how many spans came from each method, fallbacks included."""
    spans = [locate_answer_span(r, ["Canberra"]) for r in ["Canberra.", "Sydney.", ""]]
    assert span_stats(spans) == {"alias": 1, "content": 1, "fallback": 1, "total": 3}


def test_token_mask_with_fast_tokenizer_offsets():
    """Offsets from a real fast tokenizer's return_offsets_mapping select exactly the answer tokens."""
    from conftest import tiny_tokenizer

    response = "w5 w6 w7 w8"
    enc = tiny_tokenizer()(response, return_offsets_mapping=True, add_special_tokens=False)
    mask = token_mask_from_span(enc["offset_mapping"], AnswerSpan(3, 8, "alias"))  # "w6 w7"
    assert mask.tolist() == [False, True, True, False]


def test_marked_keeps_the_span_and_a_little_context():
    """The table cell shows the whole span in [[ ]] with cut context marked by an ellipsis."""
    from hneurons_utils.answer_spans import marked

    r = "x" * 50 + " The answer is Lyon, a city.\nMore text follows here for a while."
    sp = locate_answer_span(r, ["Lyon"])
    out = marked(r, sp, context=10)
    assert out == "…answer is [[Lyon]], a city. / …"
    assert marked("Lyon", locate_answer_span("Lyon", ["Lyon"])) == "[[Lyon]]"


def test_echo_note_flags_a_span_made_of_the_question_s_words():
    from hneurons_utils.answer_spans import echo_note

    q = "Which planet is known as the Red Planet?"
    assert echo_note("Mars", q) == "0% of its words are the question's"
    flagged = echo_note("the Red Planet", q)
    assert flagged.startswith("100% of its words are the question's: most of the span echoes the question")
    # a paraphrase of the question escapes the word count: no flag (the docstring says so)
    assert "echoes" not in echo_note("starts with the letter M", "What is another word for labyrinth beginning with 'M'?")
