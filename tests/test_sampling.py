"""Collection of sampled answers (Section 6.1.1): batching, resumption, the consistency filter."""

from __future__ import annotations

import json
import os
from dataclasses import replace

import pytest
import torch

from hneurons_utils.data import QAItem
from hneurons_utils.sampling import (EmptyBalancedSetError, GenConfig, balanced_sample,
                                     collect_responses, consistency_split, generate_texts,
                                     read_jsonl, representative_response)

CHAT = ("{% for m in messages %}{{ m['content'] }} {% endfor %}"
        "{% if add_generation_prompt %}w2 {% endif %}")
TINY_GEN = GenConfig(num_return_sequences=2, max_new_tokens=3, stop_at_newline=False)


def with_chat(m):
    """The tiny tokenizer with a minimal chat template, so build_prompt works as for SmolLM2."""
    m.tokenizer.chat_template = CHAT
    return m


def items(n: int) -> list[QAItem]:
    return [QAItem(f"q{i}", f"w{3 + i} w{4 + i}", [f"w{10 + i}"], "toy") for i in range(n)]


def test_collect_resumes_with_exact_contents(tiny_model, tmp_path):
    """An interrupted collection, resumed, writes exactly what an uninterrupted one writes."""
    m = with_chat(tiny_model)
    full = tmp_path / "full.jsonl"
    ref = collect_responses(m, items(7), full, TINY_GEN, batch_size=3, seed=5)

    part = tmp_path / "part.jsonl"

    def stop_after_two(i, recs):
        if i == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        collect_responses(m, items(7), part, TINY_GEN, batch_size=3, seed=5, on_batch=stop_after_two)
    assert len(read_jsonl(part)) == 6  # two whole batches were written before the interruption
    with open(part, "a") as f:
        f.write('{"qid": "q6", "trunc')  # a torn line, as a kill in mid-write leaves it
    got = collect_responses(m, items(7), part, TINY_GEN, batch_size=3, seed=5)
    assert part.read_text() == full.read_text()
    assert [r["qid"] for r in got] == [r["qid"] for r in ref] == [f"q{i}" for i in range(7)]
    assert all(len(r["responses"]) == len(r["labels"]) == 2 for r in got)


def test_collect_regenerates_a_partly_written_batch_whole(tiny_model, tmp_path):
    """A batch with some of its records on disk (a torn multi-line write) is generated whole
    again and only its missing records are written: each record is the uninterrupted one."""
    m = with_chat(tiny_model)
    full = tmp_path / "full.jsonl"
    collect_responses(m, items(7), full, TINY_GEN, batch_size=3, seed=5)
    lines = full.read_text().splitlines(keepends=True)
    part = tmp_path / "part.jsonl"
    part.write_text("".join(lines[:4]))  # batch 2 of 3 holds only its first record
    calls = []
    collect_responses(m, items(7), part, TINY_GEN, batch_size=3, seed=5,
                      on_batch=lambda i, recs: calls.append([r["qid"] for r in recs]))
    assert len(calls) == 2 and sum(map(len, calls)) == 3  # batch 2's two missing, batch 3's one
    by_qid = lambda path: {r["qid"]: r for r in read_jsonl(path)}  # noqa: E731
    assert by_qid(part) == by_qid(full)


def test_collect_draws_depend_on_the_question_not_the_batch(tiny_model, tmp_path):
    """Each question samples from its own keys: another batch size, or another list of
    questions around it, gives it the same answers; another seed gives other ones."""
    m = with_chat(tiny_model)
    cfg = replace(TINY_GEN, num_return_sequences=3, max_new_tokens=4)

    def answers(name, its, batch_size, seed=5):
        recs = collect_responses(m, its, tmp_path / name, cfg, batch_size=batch_size, seed=seed)
        return {r["qid"]: r["responses"] for r in recs}

    ref = answers("a.jsonl", items(5), 5)
    assert answers("b.jsonl", items(5), 1) == ref
    assert answers("c.jsonl", items(5)[3:] + items(5)[1:2], 2) == {q: ref[q] for q in ("q1", "q3", "q4")}
    assert answers("d.jsonl", items(5), 5, seed=6) != ref


def test_generate_texts_keys_belong_to_their_prompt(tiny_model):
    """With keys, a prompt's samples are the same alone or in a batch, and the n samples of
    one prompt differ from each other; a wrong key count is named."""
    import hneurons_utils.sampling as S

    m = with_chat(tiny_model)
    prompts = [S.build_prompt(m.tokenizer, q.question) for q in items(3)]
    cfg = GenConfig(num_return_sequences=4, max_new_tokens=5, stop_at_newline=False)
    keys = [S.row_seed("t", i) for i in range(3)]
    both = generate_texts(m, prompts, cfg, seed=1, keys=keys)
    assert generate_texts(m, prompts[2:], cfg, seed=2, keys=keys[2:]) == both[2:]
    assert len(set(both[0])) > 1
    with pytest.raises(ValueError, match="3 prompts but 2 sampling keys"):
        generate_texts(m, prompts, cfg, keys=keys[:2])


def test_collect_skips_done_questions(tiny_model, tmp_path):
    """A rerun generates nothing for questions already on disk and adds no duplicate line."""
    m = with_chat(tiny_model)
    path = tmp_path / "r.jsonl"
    collect_responses(m, items(4), path, TINY_GEN, batch_size=2)
    calls = []
    collect_responses(m, items(5), path, TINY_GEN, batch_size=2, on_batch=lambda i, r: calls.append(r))
    assert [r["qid"] for batch in calls for r in batch] == ["q4"]
    qids = [json.loads(line)["qid"] for line in path.read_text().splitlines()]
    assert sorted(qids) == [f"q{i}" for i in range(5)]


def test_a_second_writer_of_one_file_is_refused(tiny_model, tmp_path):
    """Two runs appending to one file would both write the questions still missing: the second
    fails at once, naming the file and this process, and the first finishes with no duplicate."""
    from hneurons_utils.files import FileBusyError

    m = with_chat(tiny_model)
    path, errors = tmp_path / "r.jsonl", []

    def second_run(i, recs):
        if i == 0:
            with pytest.raises(FileBusyError, match=rf"r\.jsonl.*process {os.getpid()}") as e:
                collect_responses(m, items(4), path, TINY_GEN, batch_size=2)
            errors.append(e.value)

    collect_responses(m, items(4), path, TINY_GEN, batch_size=2, on_batch=second_run)
    assert len(errors) == 1
    qids = [json.loads(line)["qid"] for line in path.read_text().splitlines()]
    assert qids == sorted(set(qids)) == [f"q{i}" for i in range(4)]
    collect_responses(m, items(5), path, TINY_GEN, batch_size=2)  # the lock went with the run
    assert len(read_jsonl(path)) == 5


def test_bad_decoding_settings_are_refused_when_made():
    """Settings generate would reject deep inside transformers (or read as zero answers) fail
    where they are written, naming the field."""
    for kw, field in ((dict(max_new_tokens=0), "max_new_tokens"),
                      (dict(num_return_sequences=0), "num_return_sequences"),
                      (dict(top_k=-1), "top_k"), (dict(top_p=0.0), "top_p"),
                      (dict(temperature=0.0), "temperature"),
                      (dict(do_sample=False, num_return_sequences=3), "greedy")):
        with pytest.raises(ValueError, match=field):
            GenConfig(**kw)
    with pytest.raises(ValueError, match="max_new_tokens"):
        replace(TINY_GEN, max_new_tokens=-3)  # replace() checks too
    assert GenConfig(do_sample=False, temperature=0.0).temperature == 0.0  # unused when greedy


def test_collect_refuses_other_settings(tiny_model, tmp_path):
    """Appending samples drawn with other decoding settings to a file is an error, not a mix."""
    m = with_chat(tiny_model)
    path = tmp_path / "r.jsonl"
    collect_responses(m, items(2), path, TINY_GEN, batch_size=2)
    with pytest.raises(ValueError, match="other settings"):
        collect_responses(m, items(3), path, replace(TINY_GEN, temperature=0.5), batch_size=2)
    with pytest.raises(ValueError, match="other settings"):  # another SEED draws other answers
        collect_responses(m, items(3), path, TINY_GEN, batch_size=2, seed=1)


def test_collect_refuses_another_chat_template(tiny_model, tmp_path):
    """The model name does not pin the chat template: questions asked in another template are
    not appended to a file of the old one. Records written before the template's id joined
    them (no "template" field) are taken as they are."""
    m = with_chat(tiny_model)
    path = tmp_path / "r.jsonl"
    collect_responses(m, items(2), path, TINY_GEN, batch_size=2)
    m.tokenizer.chat_template = "SYSTEM: be brief. " + CHAT
    with pytest.raises(ValueError, match="q0.*another chat template"):
        collect_responses(m, items(4), path, TINY_GEN, batch_size=2)
    assert len(read_jsonl(path)) == 2  # nothing appended
    m.tokenizer.chat_template = CHAT
    old = [{k: v for k, v in r.items() if k != "template"} for r in read_jsonl(path)]
    path.write_text("".join(json.dumps(r) + "\n" for r in old))
    assert len(collect_responses(m, items(4), path, TINY_GEN, batch_size=2)) == 4


def test_another_judge_relabels_stored_responses(tiny_model, tmp_path, capsys):
    """Records labelled by another judge (or rule version) keep their responses and get the
    current judge's labels, in the file too; the same judge labels nothing twice."""
    m = with_chat(tiny_model)
    path = tmp_path / "r.jsonl"
    first = collect_responses(m, items(3), path, TINY_GEN, batch_size=2, judge=lambda q, r, a: "incorrect")
    calls = []

    def refusing(q, r, a):
        calls.append(r)
        return "refusal"

    refusing.judge_id = "test judge v2"
    again = collect_responses(m, items(3), path, TINY_GEN, batch_size=2, judge=refusing)
    assert [r["responses"] for r in again] == [r["responses"] for r in first]
    assert all(r["labels"] == ["refusal"] * 2 and r["judge"] == "test judge v2" for r in again)
    assert read_jsonl(path) == again and len(calls) == 6
    assert "3 stored record(s) labelled again by test judge v2" in capsys.readouterr().err
    collect_responses(m, items(3), path, TINY_GEN, batch_size=2, judge=refusing)
    assert len(calls) == 6  # already labelled by this judge: not again
    refusing.judge_id = "test judge v3"  # a later run asks for two of the three questions only
    part = collect_responses(m, items(2), path, TINY_GEN, batch_size=2, judge=refusing)
    assert len(calls) == 10 and [r["judge"] for r in part] == ["test judge v3"] * 2
    assert [r["judge"] for r in read_jsonl(path)] == ["test judge v3"] * 2 + ["test judge v2"]


def test_collect_refuses_duplicate_or_changed_questions(tiny_model, tmp_path):
    """Two items with one id, or an id whose stored question differs from the item's (the
    dataset changed under the same OUTPUT_DIR), are errors, never a silent reuse."""
    m = with_chat(tiny_model)
    path = tmp_path / "r.jsonl"
    with pytest.raises(ValueError, match="'q1' occurs twice"):
        collect_responses(m, items(3) + items(2)[1:], path, TINY_GEN, batch_size=2)
    collect_responses(m, items(2), path, TINY_GEN, batch_size=2)
    changed = [items(2)[0], QAItem("q1", "w20 w21", ["w9"], "toy")]
    with pytest.raises(ValueError, match="'q1'.*the dataset changed"):
        collect_responses(m, changed, path, TINY_GEN, batch_size=2)


def test_judge_labels_are_stored(tiny_model, tmp_path):
    """Each response is judged with (question, response, answers) and the label stored beside it."""
    m = with_chat(tiny_model)
    seen = []

    def judge(q, r, a):
        seen.append((q, a))
        return "refusal"

    recs = collect_responses(m, items(2), tmp_path / "r.jsonl", TINY_GEN, judge=judge)
    assert [r["labels"] for r in recs] == [["refusal"] * 2] * 2
    assert seen[0] == ("w3 w4", ["w10"])


def test_shared_prefill_matches_generate(tiny_model):
    """One prefill shared by the n samples gives the same tokens as generate's own copies."""
    import hneurons_utils.sampling as S

    if tiny_model.hf.config.model_type == "gpt2":
        pytest.skip("GPT-2 takes the plain path")
    m = with_chat(tiny_model)
    prompts = [S.build_prompt(m.tokenizer, q.question) for q in items(3)]
    cfg = GenConfig(num_return_sequences=4, max_new_tokens=5, stop_at_newline=False)
    shared = generate_texts(m, prompts, cfg, seed=3)
    enc = m.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    torch.manual_seed(3)
    out = m.hf.generate(**enc, max_new_tokens=5, do_sample=True, temperature=1.0, top_k=50,
                        top_p=0.9, num_return_sequences=4, pad_token_id=0)
    plain = m.tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    assert [t for row in shared for t in row] == [t.strip() for t in plain]


def rec(qid, labels):
    return {"qid": qid, "labels": labels, "responses": ["x"] * len(labels)}


def test_consistency_split():
    """10/10 correct and 10/10 incorrect are kept; a mix or any refusal is not."""
    recs = [rec("a", ["correct"] * 3), rec("b", ["incorrect"] * 3),
            rec("c", ["correct", "incorrect", "correct"]), rec("d", ["incorrect", "refusal", "incorrect"]),
            rec("e", ["refusal"] * 3)]
    split = consistency_split(recs)
    assert [r["qid"] for r in split["correct"]] == ["a"]
    assert [r["qid"] for r in split["incorrect"]] == ["b"]
    assert [r["qid"] for r in split["mixed"]] == ["c", "d", "e"]


def test_balanced_sample_sizes_and_seed():
    """Both classes get min(|pos|, |neg|, cap) examples, the same ones for the same seed."""
    pos, neg = list(range(10)), list(range(100, 104))
    p, n = balanced_sample(pos, neg, None, seed=1)
    assert len(p) == len(n) == 4 and set(n) == set(neg)
    p2, _ = balanced_sample(pos, neg, 3, seed=1)
    assert len(p2) == 3
    assert balanced_sample(pos, neg, None, seed=1) == (p, n)


def test_empty_balanced_set_is_a_clear_error():
    """A class with no example raises, naming the set and both counts."""
    with pytest.raises(EmptyBalancedSetError, match=r"NQ-Open evaluation set: 3 .* and 0"):
        balanced_sample([1, 2, 3], [], 10, seed=0, what="NQ-Open evaluation set")


def test_representative_response():
    """The most frequent sampled answer represents the question; ties go to the first drawn."""
    assert representative_response(["b", "a", "a", "b", "a"]) == "a"
    assert representative_response(["x", "y"]) == "x"
    with pytest.raises(ValueError):
        representative_response([])


def test_consistent_label_thresholds():
    """min_agreement=1 is the paper's all-10 rule; 0.8 accepts 8/10; refusals count against."""
    from hneurons_utils.sampling import consistent_label

    eight = ["correct"] * 8 + ["incorrect", "refusal"]
    assert consistent_label(eight) == "mixed"
    assert consistent_label(eight, 0.8) == "correct"
    assert consistent_label(["incorrect"] * 7 + ["refusal"] * 3, 0.8) == "mixed"
    assert consistent_label(["incorrect"] * 10, 1.0) == "incorrect"
    with pytest.raises(ValueError, match="min_agreement"):
        consistent_label(eight, 0.5)


def test_echo_free_rule_judge():
    """An alias that the question already contains does not make an echo "correct"."""
    from hneurons_utils.judges import rule_judge
    from hneurons_utils.sampling import echo_free_rule_judge

    q = "How is the Chilean Pine or auricaria known more familiarly in the UK?"
    gold = ["Monkey-puzzle tree", "Chilean pine"]
    echo = "The Chilean Pine is known in the UK as the Leopardate Apero."
    assert rule_judge(echo, gold) == "correct"  # the plain rule is fooled
    assert echo_free_rule_judge(q, echo, gold) == "incorrect"
    assert echo_free_rule_judge(q, "It is the monkey puzzle tree.", gold) == "correct"
    assert echo_free_rule_judge("What is x?", "I don't know.", gold) == "refusal"


def test_echo_free_judge_refuses_a_question_holding_all_its_answers():
    """When every alias is in the question, an echo cannot be told from an answer: an error
    names the question (the loaders drop such questions) instead of a wrong "correct"."""
    from hneurons_utils.sampling import echo_free_aliases, echo_free_rule_judge

    with pytest.raises(ValueError, match="men or women"):
        echo_free_rule_judge("Is gout more common in men or women?", "Men or women.", ["men"])
    assert echo_free_aliases("Who made volor?", []) == []  # NonExist: nothing to drop


def test_echo_free_rule_judge_with_symbol_alias():
    """An alias with no letters (TriviaQA has emoji aliases) neither crashes nor counts as echo."""
    from hneurons_utils.sampling import echo_free_rule_judge

    assert echo_free_rule_judge("Which fruit is a tomato?", "A berry.", ["🍅", "berry"]) == "correct"


def test_traced_generation_matches_generate(tiny_model, monkeypatch):
    """The nnsight path used on NDIF (remote models have no local weights) gives the tokens of
    plain ``generate``; a remote model's ``generate_texts`` takes that path."""
    from dataclasses import replace as dc_replace

    import hneurons_utils.sampling as S

    m = with_chat(tiny_model)
    cfg = GenConfig(num_return_sequences=1, max_new_tokens=4, do_sample=False, stop_at_newline=False)
    enc = m.tokenizer(["w3 w4", "w5 w6 w7"], return_tensors="pt", padding=True, add_special_tokens=False)
    enc = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
    kw = S.generate_kwargs(m, cfg)
    with torch.no_grad():
        plain = m.hf.generate(**enc, **kw)
    assert torch.equal(S.generate_traced(m, enc, kw), plain)
    calls = []
    remote = dc_replace(m, remote=True)
    assert remote.device == torch.device("cpu")  # inputs stay here; the weights are elsewhere
    orig = S.generate_traced
    monkeypatch.setattr(S, "generate_traced",
                        lambda mm, e, k, step=None: calls.append(mm.remote) or orig(m, e, k))
    assert S.generate_texts(remote, ["w3 w4"], cfg) == S.generate_texts(m, ["w3 w4"], cfg)
    assert calls == [True]


def test_read_jsonl_refuses_a_corrupt_middle_line(tmp_path):
    """Only a torn last line is forgiven; a corrupt line elsewhere raises with its number."""
    from hneurons_utils.sampling import read_jsonl

    p = tmp_path / "x.jsonl"
    p.write_text('{"a": 1}\nnot json\n{"a": 2}\n')
    with pytest.raises(ValueError, match="line 2"):
        read_jsonl(p)


def test_read_jsonl_keeps_a_whole_last_line_without_newline(tmp_path):
    """A hand-edited file often lacks the final newline: its last record is kept (and, with
    repair, the newline added so appends stay whole lines); a torn tail is still dropped."""
    from hneurons_utils.sampling import append_jsonl, read_jsonl

    p = tmp_path / "x.jsonl"
    p.write_text('{"a": 1}\n{"a": 2}')
    assert read_jsonl(p) == [{"a": 1}, {"a": 2}]
    assert p.read_text().endswith("}")  # read-only without repair
    assert read_jsonl(p, repair=True) == [{"a": 1}, {"a": 2}]
    append_jsonl(p, [{"a": 3}])
    assert read_jsonl(p) == [{"a": 1}, {"a": 2}, {"a": 3}]
    one = tmp_path / "one.jsonl"
    one.write_text('{"a": 1}')
    assert read_jsonl(one, repair=True) == [{"a": 1}] and one.read_text() == '{"a": 1}\n'
    torn = tmp_path / "torn.jsonl"
    torn.write_text('{"a": 1}\n{"a": ')
    assert read_jsonl(torn, repair=True) == [{"a": 1}] and torn.read_text() == '{"a": 1}\n'


# ---------------------------------------------------------------- keyed sampling


def test_keyed_sampler_draws_from_the_warped_softmax():
    """Greedy over warped scores plus per-row Gumbel noise samples the same distribution as
    generate's do_sample (temperature, then top-k, then top-p); filtered tokens never occur."""
    from types import SimpleNamespace

    from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    from hneurons_utils.sampling import GenConfig, keyed_generate_kwargs, row_seed

    logits = torch.tensor([[2.0, 1.5, 1.0, 0.5, 0.0, -0.5, -1.0, -3.0]])
    cfg = GenConfig(temperature=0.7, top_k=6, top_p=0.95)
    n = 20000
    m = SimpleNamespace(tokenizer=SimpleNamespace(pad_token_id=0), remote=False)
    procs = keyed_generate_kwargs(m, cfg, [row_seed("test", i) for i in range(n)])["logits_processor"]
    scores = procs(torch.zeros(n, 1, dtype=torch.long), logits.repeat(n, 1))
    freq = torch.bincount(scores.argmax(-1), minlength=8).float() / n
    warped = TopPLogitsWarper(0.95)(None, TopKLogitsWarper(6)(None, TemperatureLogitsWarper(0.7)(None, logits)))
    p = warped.softmax(-1)[0]
    assert (freq[p == 0] == 0).all() and (p == 0).sum() >= 2  # top-k and top-p both cut here
    assert torch.allclose(freq, p, atol=0.015)


def test_keyed_sampler_rows_follow_their_keys_only():
    """A row's noise depends on its key alone: same key, same numbers; the batch around it
    does not matter; greedy settings ignore keys; a wrong key count is named."""
    from types import SimpleNamespace

    from hneurons_utils.sampling import GREEDY, GenConfig, KeyedSampler, generate_kwargs, keyed_generate_kwargs

    scores = torch.zeros(3, 5)
    a = KeyedSampler([7, 8, 7])(None, scores)
    assert torch.equal(a[0], a[2]) and not torch.equal(a[0], a[1])
    assert torch.equal(KeyedSampler([8])(None, scores[:1])[0], a[1])
    with pytest.raises(ValueError, match="2 row keys but the batch has 3 rows"):
        KeyedSampler([1, 2])(None, scores)
    m = SimpleNamespace(tokenizer=SimpleNamespace(pad_token_id=0), remote=True)
    assert keyed_generate_kwargs(m, GREEDY, [1]) == generate_kwargs(m, GREEDY)
    with pytest.raises(ValueError, match="remote"):
        keyed_generate_kwargs(m, GenConfig(), [1])
