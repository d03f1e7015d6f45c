"""Section 2 end to end on a tiny model: screening, consistency filter, features, probe, Table 1 cell."""

from __future__ import annotations

import json

import numpy as np
import pytest

import hneurons_utils.sampling as S
from hneurons_utils.data import QAItem
from hneurons_utils.pipeline import IdentifyConfig, identify, load_identification
from hneurons_utils.sampling import EmptyBalancedSetError

CHAT = "{% for m in messages %}{{ m['content'] }} {% endfor %}{% if add_generation_prompt %}w2 {% endif %}"


def judge(question, response, answers):
    """Even-numbered questions are always answered right, odd ones always wrong."""
    if not response.strip():
        return "refusal"
    return "correct" if int(question.split()[0][1:]) % 2 == 0 else "incorrect"


def qa(n: int, start: int = 3, dataset: str = "toy") -> list[QAItem]:
    """Toy questions whose gold answer is not in the question (the loaders drop such questions,
    and the answer-span rule refuses them)."""
    return [QAItem(f"{dataset}{i}", f"w{start + i} w{start + i + 1}", [f"w{start + i + 2}"], dataset)
            for i in range(n)]


CFG = IdentifyConfig(n_samples=2, train_per_class=5, val_fraction=0.4, max_new_tokens=3,
                     stop_at_newline=False, gen_batch=4, screen_batch=8, Cs=(0.1, 1e4))


@pytest.fixture
def chat_model(tiny_model):
    tiny_model.tokenizer.chat_template = CHAT
    return tiny_model


def test_identify_end_to_end_and_rerun(chat_model, tmp_path, monkeypatch):
    """Yields add up, the split is balanced and by question, artefacts load, a rerun generates nothing."""
    res = identify(chat_model, qa(16), CFG, tmp_path, judge=judge)
    c = res.counts
    assert c["greedy"] == {"answered": 16, "correct": 8, "incorrect": 8, "refusal": 0}
    assert c["consistent"]["correct"] == 8 and c["consistent"]["mixed"] == 0
    assert c["consistent"]["incorrect"] >= 5  # incorrect candidates are sampled only as needed
    assert c["greedy_origin"] == {  # the toy judge never changes its mind between greedy and sampled
        "faithful": {"correct": 8, "incorrect": 0, "refusal": 0},
        "hallucinated": {"correct": 0, "incorrect": c["consistent"]["incorrect"], "refusal": 0}}
    for part in ("train", "val"):
        labels = res.split[part]["labels"]
        assert labels.count(0) == labels.count(1) > 0
    qids = [set(k.split("#")[0] for k in res.split[p]["keys"]) for p in ("train", "val")]
    assert not qids[0] & qids[1]
    probe, split, fs = load_identification(tmp_path, chat_model.name)
    assert np.array_equal(probe.weights, res.probe.weights) and split == res.split
    with pytest.raises(ValueError, match="probe of .*, not of 'another/model'"):
        load_identification(tmp_path, "another/model")
    probe.model_id = "another/model"  # a probe re-saved for another model beside this one's features
    probe.save(tmp_path / "probe.json")
    with pytest.raises(ValueError, match="features of .*, not of 'another/model'"):
        load_identification(tmp_path, "another/model")
    res.probe.save(tmp_path / "probe.json")
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["n_h_neurons"] == res.probe.h_neurons().size
    assert results["c_criterion"] == "held-out accuracy"

    monkeypatch.setattr(S, "generate_texts", lambda *a, **k: pytest.fail("regenerated"))
    import hneurons_utils.probe as P

    monkeypatch.setattr(P, "_liblinear", lambda *a, **k: pytest.fail("refitted"))  # fits/ has them
    again = identify(chat_model, qa(16), CFG, tmp_path, judge=judge)
    assert np.array_equal(again.probe.weights, res.probe.weights) and again.grid == res.grid


def test_identify_builds_the_papers_suppression_term(chat_model, tmp_path, monkeypatch):
    """suppression_questions > 0: every C on the grid is scored with its H-Neurons silenced on
    that many greedy-correct and as many greedy-incorrect questions, once per distinct neuron
    set, and the two accuracies are weighed by the screen's share of correct answers (an
    estimate of TriviaQA accuracy, the paper's term); 'known' scores the known stratum alone;
    with no question known to be correct there is no such term."""
    import hneurons_utils.steering as steering

    calls = []

    def fake(m, neurons, items, alpha=1.0, batch_size=16, method="weights", **k):
        calls.append(([it.qid for it in items], alpha, method))
        return 0.75 if items[0].qid == "toy1" else 0.25  # known stratum 0.75, unknown 0.25

    monkeypatch.setattr(steering, "suppression_accuracy", fake)
    res = identify(chat_model, qa(16), CFG, tmp_path, judge=judge, suppression_questions=3)
    share = 8 / 16  # the toy judge: every other question right in the greedy screen
    for g in res.grid:
        assert (g["known_kept"], g["unknown_right"]) == (0.75, 0.25)
        assert g["suppression"] == pytest.approx(share * 0.75 + (1 - share) * 0.25)
        assert g["score"] == pytest.approx(g["val_accuracy"] + g["suppression"])
    assert calls[:2] == [(["toy1", "toy3", "toy5"], 0.0, "weights"),  # greedy-correct, in order
                         (["toy0", "toy2", "toy4"], 0.0, "weights")]  # greedy-incorrect
    assert json.loads((tmp_path / "results.json").read_text())["c_criterion"] == \
        "held-out accuracy + estimated TriviaQA accuracy with the H-Neurons silenced"
    n = len(calls)
    again = identify(chat_model, qa(16), CFG, tmp_path, judge=judge, suppression_questions=3)
    assert len(calls) == n and again.grid == res.grid  # every score read from suppression/
    from hneurons_utils.pipeline import suppression_hook, suppression_set

    assert suppression_hook(chat_model, []) is None  # no known-correct question: no term
    with pytest.raises(ValueError, match="needs a SuppressionSet"):
        suppression_hook(chat_model, qa(2))
    with pytest.raises(ValueError, match="unknown suppression term 'paper'.*SUPPRESSION_TERM"):
        suppression_hook(chat_model, qa(2), term="paper")
    calls.clear()
    hook = suppression_hook(chat_model, qa(2), term="known")
    assert hook(res.probe) == hook(res.probe) == {"known_kept": 0.25, "score": 0.25}
    assert len(calls) == 1  # the same neuron set twice: one run
    qs = suppression_set(qa(6), [{"qid": f"toy{i}", "labels": ["correct" if i in (1, 4) else "incorrect"]}
                                 for i in range(5)], [], 2)
    assert ([it.qid for it in qs.known], [it.qid for it in qs.unknown], qs.share, qs.judged) == \
        (["toy1", "toy4"], ["toy0", "toy2"], 2 / 5, 5)  # toy5 was not screened: in neither


def test_suppression_scores_are_kept_per_model_questions_and_method(chat_model, tmp_path, monkeypatch, capsys):
    """Each score is written as it is measured and read back by a later hook of the same model,
    questions, batch, method and term; any of those changed, or the measuring code, is another
    file; a damaged file is reported and measured again."""
    import hneurons_utils.steering as steering
    from hneurons_utils.pipeline import suppression_hook, suppression_set, suppression_store
    from hneurons_utils.probe import Probe

    calls = []
    monkeypatch.setattr(steering, "suppression_accuracy",
                        lambda m, neurons, items, **k: calls.append(neurons.flat.tolist()) or 0.5)
    qs = suppression_set(qa(6), [{"qid": f"toy{i}", "labels": ["correct" if i % 2 else "incorrect"]}
                                 for i in range(6)], [], 2)
    shape = chat_model.adapter.n_layers, chat_model.adapter.n_neurons
    probes = [Probe(chat_model.name, *shape, np.array(f), np.ones(len(f)), 0.0, 1.0, np.zeros(len(f)),
                    np.ones(len(f))) for f in ([1, 5], [2])]
    first = suppression_hook(chat_model, qs, 4, store=tmp_path)
    scores = [first(p) for p in probes]
    assert len(calls) == 4  # two neuron sets, two strata each
    again = suppression_hook(chat_model, qs, 4, store=tmp_path)
    assert [again(p) for p in probes] == scores and len(calls) == 4
    path = suppression_store(chat_model, qs, 4, "weights", "triviaqa", tmp_path)
    assert path.exists() and len(list(tmp_path.iterdir())) == 1
    others = {suppression_store(chat_model, qs, 8, "weights", "triviaqa", tmp_path),
              suppression_store(chat_model, qs, 4, "nnsight", "triviaqa", tmp_path),
              suppression_store(chat_model, qs, 4, "weights", "known", tmp_path),
              suppression_store(chat_model, suppression_set(qa(6), [{"qid": "toy1", "labels": ["correct"]}], [], 2),
                                4, "weights", "triviaqa", tmp_path)}
    assert len(others) == 4 and path not in others
    path.write_text('{"format": "hneurons-suppression-scores/1", "scores": {"x": {"score": "high"}}}')
    assert suppression_hook(chat_model, qs, 4, store=tmp_path)(probes[1]) == scores[1]
    assert len(calls) == 6 and "are damaged" in capsys.readouterr().out
    import hneurons_utils.pipeline as pipeline

    monkeypatch.setattr(pipeline, "suppression_code", lambda: "the measuring code, changed")
    assert suppression_store(chat_model, qs, 4, "weights", "triviaqa", tmp_path) not in others | {path}
    suppression_hook(chat_model, qs, 4, store=tmp_path)(probes[1])  # stored by other code: measured again
    assert len(calls) == 8


def test_criterion_choices_reads_each_rule_off_one_grid():
    """Held-out accuracy alone picks the most accurate C; the known-question analogue can pick
    an empty probe (nothing silenced costs nothing); the estimated TriviaQA term weighs the
    cost by the share of known answers."""
    from hneurons_utils.pipeline import criterion_choices

    def row(C, acc, n_h, kept, chosen=False, share=0.06):
        return {"C": C, "val_accuracy": acc, "val_auroc": acc, "n_h_neurons": n_h, "known_kept": kept,
                "unknown_right": 0.0, "suppression": share * kept, "chosen": chosen}

    grid = [row(0.3, 0.5, 0, 1.0), row(3, 0.78, 13, 0.62), row(300, 0.95, 247, 0.44, chosen=True)]
    got = {c["rule"]: (c["C"], c["the chapter's choice"]) for c in criterion_choices(grid)}
    assert got == {"held-out accuracy alone": (300, True),
                   "+ accuracy on the known questions, silenced": (0.3, False),
                   "+ estimated TriviaQA accuracy, silenced (the paper's term)": (300, True)}
    bare = [{k: v for k, v in r.items() if k not in ("known_kept", "unknown_right")} for r in grid]
    assert [c["rule"] for c in criterion_choices(bare)] == ["held-out accuracy alone"]


def test_no_consistent_correct_question_is_a_clear_error(chat_model, tmp_path):
    """When no question is answered right every time, identification stops and says why."""
    with pytest.raises(EmptyBalancedSetError, match="TriviaQA training set: .* 0 of class 0"):
        identify(chat_model, qa(6), CFG, tmp_path, judge=lambda q, r, a: "incorrect")


def test_split_uses_responses_of_the_class_label():
    """With a looser filter, a 2/3-correct question contributes only its correct answers."""
    from hneurons_utils.pipeline import split_examples
    from hneurons_utils.sampling import consistency_split

    def r(qid, resp, labels):
        return {"qid": qid, "prompt": "p ", "question": "q", "answers": ["a"],
                "responses": resp, "labels": labels}

    recs = [r("c", ["wrong", "right", "right"], ["incorrect", "correct", "correct"]),
            r("h", ["x", "y", "x"], ["incorrect"] * 3)]
    cfg = IdentifyConfig(min_agreement=0.6, val_fraction=0.0, responses_per_question=3)
    split = split_examples(consistency_split(recs, 0.6), cfg)
    got = {(e.meta["qid"], e.response, e.label) for e in split["train"]}
    assert got == {("c", "right", 0), ("h", "x", 1), ("h", "y", 1)}


def test_val_fraction_zero_holds_out_nothing_and_a_bad_fraction_is_refused():
    from hneurons_utils.pipeline import split_examples

    recs = [{"qid": f"{k}{i}", "prompt": "p ", "question": "q", "answers": ["a"], "responses": [k],
             "labels": [lab]} for i in range(4) for k, lab in (("c", "correct"), ("h", "incorrect"))]
    cons = {"correct": recs[0::2], "incorrect": recs[1::2]}
    split = split_examples(cons, IdentifyConfig(val_fraction=0.0))
    assert split["val"] == [] and len(split["train"]) == 8
    split = split_examples(cons, IdentifyConfig(val_fraction=0.25))
    assert len(split["val"]) == 2 and len(split["train"]) == 6  # one question per class
    with pytest.raises(ValueError, match="VAL_FRACTION must be in"):
        split_examples(cons, IdentifyConfig(val_fraction=1.0))


def test_agreement_yields_shrink_with_threshold():
    """Consistent questions per class at each threshold: the paper's 1.0 keeps the fewest."""
    from hneurons_utils.pipeline import agreement_yields

    recs = [{"labels": ["correct"] * 10}, {"labels": ["correct"] * 7 + ["incorrect"] * 3},
            {"labels": ["incorrect"] * 9 + ["refusal"]}, {"labels": ["correct"] * 5 + ["incorrect"] * 5}]
    rows = agreement_yields(recs, [1.0, 0.9, 0.7])
    assert [(r["correct"], r["incorrect"], r["mixed"]) for r in rows] == [(1, 0, 3), (1, 1, 2), (2, 1, 1)]


def test_known_correct_uses_greedy_labels_or_sample_majority():
    """The suppression questions: greedy-correct when screened, else mostly-correct samples
    (the paper profile does not screen, and used to get an empty list)."""
    from hneurons_utils.pipeline import known_correct

    items = qa(4)
    greedy = [{"qid": "toy0", "labels": ["incorrect"]}, {"qid": "toy1", "labels": ["correct"]},
              {"qid": "toy3", "labels": ["correct"]}]
    sampled = [{"qid": "toy0", "labels": ["correct"] * 3 + ["incorrect"]},
               {"qid": "toy2", "labels": ["correct", "incorrect"]}]
    assert [it.qid for it in known_correct(items, greedy, sampled, 10)] == ["toy1", "toy3"]
    assert [it.qid for it in known_correct(items, greedy, sampled, 1)] == ["toy1"]
    assert [it.qid for it in known_correct(items, None, sampled, 10)] == ["toy0"]  # 1 of 2 is no majority
    assert known_correct(items, None, [], 10) == []


def test_grid_reading_states_the_trade_off_from_the_rows():
    """The C-grid sentence is read from the grid (held-out accuracy, suppression, the choice)."""
    from hneurons_utils.pipeline import grid_reading

    grid = [{"C": 10.0, "val_accuracy": 0.9, "n_h_neurons": 40, "suppression": 0.5, "chosen": False},
            {"C": 1.0, "val_accuracy": 0.6, "n_h_neurons": 5, "suppression": 1.0, "chosen": False},
            {"C": 3.0, "val_accuracy": 0.9, "n_h_neurons": 18, "suppression": 0.8, "chosen": True}]
    text = grid_reading(grid)
    assert text.startswith("held-out accuracy goes from 0.60 at C = 1 to 0.90 at C = 10")
    assert "first reached at C = 3, with 18 H-Neurons" in text
    assert "silenced goes from 1.00 to 0.50 as C admits up to 40" in text
    assert "; accuracy with the H-Neurons silenced" in text  # a plain term: no strata to name
    strata = [dict(r, known_kept=r["suppression"], unknown_right=0.0, suppression=0.06 * r["suppression"])
              for r in grid]
    text = grid_reading(strata)
    assert "; the share of known answers kept with the H-Neurons silenced goes from 1.00 to 0.50" in text
    assert "(the estimated TriviaQA accuracy, the score's term (2), from 0.060 to 0.030)" in text
    text = grid_reading(grid)
    assert text.endswith("chose C = 3 (18 H-Neurons, held-out accuracy 0.90).")
    dip = grid + [{"C": 30.0, "val_accuracy": 0.9, "n_h_neurons": 60, "suppression": 0.6, "chosen": False}]
    dip[0] = dict(dip[0], suppression=0.1)  # the lowest sits inside the grid, not at its end
    assert "silenced goes from 1.00 to 0.60, lowest 0.10 at C = 10 as C admits up to 60" in grid_reading(dip)
    no_sup = [dict(r, suppression=None) for r in grid]
    assert "silenced" not in grid_reading(no_sup)
    assert "The choice is close" not in text  # no score stored: no margin to read


def test_grid_margin_names_a_close_choice_and_what_decided_it():
    """A chosen C ahead of the runner-up by less than 0.01 is called close, with the margin;
    where it has the lower held-out accuracy, the suppression term is named as what decided."""
    from hneurons_utils.pipeline import grid_margin_text, grid_reading

    def r(C, acc, term, chosen=False, unknown=None):
        return {"C": C, "val_accuracy": acc, "n_h_neurons": 5, "suppression": term, "score": acc + term,
                "chosen": chosen, "known_kept": 0.5, "unknown_right": unknown}

    grid = [r(30.0, 0.875, 0.0895, unknown=0.0625), r(100.0, 0.875, 0.0895, unknown=0.0625),
            r(1000.0, 0.85, 0.1154, True, unknown=0.09375), r(1.0, 0.55, 0.085, unknown=0.03125)]
    text = grid_margin_text(grid)
    assert text == ("The choice is close: C = 1000 scores 0.9654 against 0.9645 at C = 30, a margin "
                    "of 0.0009; C = 1000 has the lower held-out accuracy (0.850 against 0.875) and "
                    "wins on the suppression term alone (0.115 against 0.090; other questions answered "
                    "right with the neurons silenced: 0.094 against 0.062), so a question or two of "
                    "that term decided it: another draw of questions could reverse it.")
    assert text in grid_reading(grid)
    assert grid_margin_text([r(30.0, 0.8, 0.09), r(1000.0, 0.9, 0.09, True)]) == ""  # 0.1 apart
    assert grid_margin_text([r(30.0, 0.85, 0.1), r(1000.0, 0.86, 0.095, True)]).endswith(
        "wins on held-out accuracy (0.860 against 0.850) while its suppression term is lower "
        "(0.095 against 0.100): another draw of questions could reverse it.")
    assert grid_margin_text([r(30.0, 0.85, 0.1, True)]) == ""  # nothing to compare with


def _planted_features(n_q: int = 16, L: int = 2, N: int = 8, seed: int = 0):
    """Two responses per question; neuron (1, 3) carries the label in the answer tokens."""
    from hneurons_utils.features import Example, FeatureSet

    rng = np.random.default_rng(seed)
    ex = [Example(f"q{q}#{i}", "", "", [], "", q % 2) for q in range(n_q) for i in range(2)]
    answer = rng.random((len(ex), L, N)).astype(np.float16) * 0.1
    answer[:, 1, 3] += np.array([e.label for e in ex], dtype=np.float16)
    other = (rng.random((len(ex), L, N)) * 0.1).astype(np.float16)
    fs = FeatureSet(np.array([e.key for e in ex]), answer, other, np.array(["alias"] * len(ex)),
                    np.ones((len(ex), 2), dtype=np.int64), {})
    return fs, ex


def test_float16_nudge_moves_the_chosen_share_by_one_step():
    """Moved entries are exactly one float16 step away (zeros only upwards), the rest are
    untouched, the count is returned; recomputed (non-float16) values and bad shares are refused."""
    from hneurons_utils.pipeline import float16_nudge

    rng = np.random.default_rng(0)
    X = (rng.random((40, 50)) * 0.5).astype(np.float16).astype(np.float32)
    X[:, 0] = 0.0
    out, moved = float16_nudge(X, 0.3, np.random.default_rng(1))
    changed = out != X
    assert changed.sum() == moved and 0.2 * X.size < moved < 0.4 * X.size
    x16, o16 = X.astype(np.float16), out.astype(np.float16)
    up, down = np.nextafter(x16, np.float16(np.inf)), np.nextafter(x16, np.float16(-np.inf))
    assert np.all((o16 == up) | (o16 == down) | ~changed)
    assert np.all(out[:, 0] >= 0) and np.all(out[changed[:, 0], 0] > 0)
    assert np.array_equal(out, out.astype(np.float16).astype(np.float32))  # still storable
    assert float16_nudge(X, 0.0, rng)[1] == 0 and np.array_equal(float16_nudge(X, 0.0, rng)[0], X)
    assert float16_nudge(X, 1.0, rng)[1] == X.size
    with pytest.raises(ValueError, match="float16 cannot store"):
        float16_nudge(X + 1e-6, 0.1, rng)
    with pytest.raises(ValueError, match=r"share must lie in \[0, 1\]"):
        float16_nudge(X, 1.5, rng)


def test_rounding_stability_keeps_a_planted_neuron_and_reads_the_refits():
    """The unchanged refit gives the probe's own set; every nudged refit is recorded, seeded; the
    reading and the table follow the rows (changed sets are named as such); bad settings are refused."""
    from hneurons_utils.pipeline import rounding_reading, rounding_stability, rounding_table, scheme_rows
    from hneurons_utils.probe import fit_probe

    fs, ex = _planted_features()
    X, y = scheme_rows(fs, ex, "3-vs-1")
    probe = fit_probe(X, y, C=1.0, n_layers=2, n_neurons=8)
    r = rounding_stability(fs, ex, probe, shares=[0.01, 0.5], draws=3, seed=2)
    assert r["h_neurons"] == probe.h_neurons().flat.size and r["entries"] == X.size
    assert [x["share"] for x in r["rows"]] == [0.0] + [0.01] * 3 + [0.5] * 3
    assert r["rows"][0] == {"share": 0.0, "draw": 0, "moved": 0, "size": r["h_neurons"], "jaccard": 1.0}
    assert all(x["moved"] > 0 for x in r["rows"][1:])
    assert rounding_stability(fs, ex, probe, shares=[0.01, 0.5], draws=3, seed=2) == r
    table = rounding_table(r)
    assert list(table.index) == [0.0, 0.01, 0.5] and list(table.refits) == [1, 3, 3]
    stable = dict(r, rows=[dict(x, jaccard=1.0) for x in r["rows"]])
    assert "with 1% of the entries moved, 0 of 3 refits give another set" in rounding_reading(stable)
    assert rounding_reading(stable).endswith("does not turn on the last bit of its features.")
    moved = dict(r, rows=[dict(x, jaccard=0.6 if x["draw"] == 1 and x["share"] else 1.0) for x in r["rows"]])
    text = rounding_reading(moved)
    assert "with 50% of the entries moved, 1 of 3 refits give another set (Jaccard 0.60 with" in text
    two = dict(r, rows=[dict(x, jaccard=0.5 + 0.1 * x["draw"] if x["share"] else 1.0) for x in r["rows"]])
    assert "3 of 3 refits give another set (Jaccard 0.50-0.70 with the probe's)" in rounding_reading(two)
    assert "can turn on rounding" in text and "not deterministic" not in text
    assert "not deterministic" in rounding_reading(dict(r, rows=[dict(r["rows"][0], jaccard=0.9)]))
    with pytest.raises(ValueError, match="at least 1"):
        rounding_stability(fs, ex, probe, draws=0)
    for bad in ([], [0.0], [1.5]):
        with pytest.raises(ValueError, match=r"shares must be one or more numbers in \(0, 1\]"):
            rounding_stability(fs, ex, probe, shares=bad)


def test_checks_rerun_from_their_stored_fits_but_the_determinism_refit_fits_again(tmp_path, monkeypatch):
    """With a FitCache the resamples, nudged refits, tolerance and route refits of a rerun are
    read, not fitted, and give the same results; the refit of the rows as stored is fitted every
    time, since a stored fit would be the probe's own and the check could not fail."""
    import hneurons_utils.probe as P
    from hneurons_utils.pipeline import (rounding_stability, scheme_rows, selection_stability, solve_check,
                                         tolerance_check)

    fs, ex = _planted_features()
    X, y = scheme_rows(fs, ex, "3-vs-1")
    fits = P.FitCache(tmp_path)
    probe = fits.fit(X, y, 1.0, n_layers=2, n_neurons=8)
    split = {"train": ex, "val": []}

    def run():
        return (rounding_stability(fs, ex, probe, shares=[0.01], draws=2, seed=2, fits=fits),
                selection_stability(fs, ex, probe, 3, seed=1, fits=fits),
                tolerance_check(fs, split, probe, fits=fits), solve_check(fs, split, probe, fits=fits))

    first = run()
    calls, real = [], P._liblinear
    monkeypatch.setattr(P, "_liblinear", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    assert run() == first
    assert len(calls) == 1 and fits.hits == 2 + 3 + 1 + 1  # all but the rows as stored, fitted again
    assert first[3]["refit_s"] >= 0


def test_tolerance_check_compares_the_probe_with_a_refit_and_reads_it():
    """The refit uses the other tolerance with the probe's C and rows; the objectives, counts and
    overlap are recorded; the reading names the fit nearer the minimum, or says both are at it."""
    from hneurons_utils.pipeline import (objective_gap, probe_short_of_minimum, scheme_rows, tolerance_cell,
                                         tolerance_check, tolerance_reading, tolerance_table)
    from hneurons_utils.probe import eq4_objective, fit_probe

    fs, ex = _planted_features()
    split = {"train": ex[:24], "val": ex[24:]}
    X, y = scheme_rows(fs, split["train"], "3-vs-1")
    probe = fit_probe(X, y, C=1.0, n_layers=2, n_neurons=8)
    r = tolerance_check(fs, split, probe, 1e-4)
    assert r["probe"]["tol"] == 1e-8 and r["refit"]["tol"] == 1e-4 and r["held_out"] and r["n_rows"] == len(y)
    assert r["probe"]["objective"] == pytest.approx(eq4_objective(probe, X, y))
    assert r["probe"]["n_h_neurons"] == probe.h_neurons().size and 0 <= r["jaccard"] <= 1
    assert tolerance_check(fs, {"train": ex, "val": []}, probe, 1e-4)["held_out"] is False
    fake = {"C": 1.0, "held_out": True, "n_rows": 240, "max_iter": 2000, "jaccard": 0.11,
            "probe": {"objective": 600.0, "tol": 1e-8, "n_iter": 36, "n_h_neurons": 19, "per_mille": 0.41,
                      "n_nonzero": 44, "val_auroc": 0.925, "val_accuracy": 0.8},
            "refit": {"objective": 793.0, "tol": 1e-4, "n_iter": 7, "n_h_neurons": 146, "per_mille": 3.17,
                      "n_nonzero": 302, "val_auroc": 0.958, "val_accuracy": 0.9}}
    text = tolerance_reading(fake)
    assert "The refit (tolerance 0.0001) stops 32% above the probe (tolerance 1e-08)" in text
    assert "a minimiser with no more than about 240 non-zero weights" in text and "set `PROBE_TOL`" not in text
    assert text.startswith("At the same C = 1, Eq. 4's objective (times C, as liblinear scales it) is 600")
    # held-out accuracy (the C criterion's term) beside the AUROC: two fits can differ in one only
    assert ("held-out AUROC 0.93 against 0.96, held-out accuracy 0.800 against 0.900 (the C "
            "criterion's term (1))") in text
    table = tolerance_table(fake)
    assert list(table.index) == ["the probe", "refit"] and list(table.tol) == ["1e-08", "0.0001"]
    assert list(table.n_h_neurons) == [19, 146]
    assert objective_gap(fake) < 0 and not probe_short_of_minimum(fake)
    assert tolerance_cell(fake) == ("refit at solver tolerance 0.0001 (the probe: 1e-08): 146 H-Neurons "
                                    "(3.17 per mille), Eq. 4's objective 32% above the probe's")
    swapped = dict(fake, probe=fake["refit"], refit=fake["probe"])
    assert probe_short_of_minimum(swapped) and "set `PROBE_TOL`" in tolerance_reading(swapped)
    assert "The probe (tolerance 0.0001) stops 32% above" in tolerance_reading(swapped)
    assert tolerance_cell(swapped).endswith("the probe's objective 32% above the refit's")
    same = dict(fake, refit=dict(fake["refit"], objective=600.3), jaccard=1.0)
    assert "Both are at the minimum to within 0.1%, with the same H-Neurons." in tolerance_reading(same)
    assert "the same objective (within 0.1%)" in tolerance_cell(same)
    flat = dict(same, jaccard=0.5)
    assert "yet their H-Neuron sets differ (Jaccard 0.50)" in tolerance_reading(flat)
    capped = dict(fake, refit=dict(fake["refit"], n_iter=2000))
    assert "(the refit (tolerance 0.0001) stopped at the solver's cap of 2000 iterations)" in tolerance_reading(capped)
    with pytest.raises(ValueError, match="other_tol must be a positive number"):
        tolerance_check(fs, split, probe, 0)


def test_solve_check_refits_by_the_other_route_and_reads_it(monkeypatch):
    """A full-fit probe is refitted by the working set (which really runs: the model is wider
    than its first set) and the other way round; both reach the same minimiser, and the reading
    says so; a full refit that cannot fit in memory is skipped with the reason; the readings of
    a flat minimum and of a fit stopped short name what they show."""
    from hneurons_utils import probe as P
    from hneurons_utils.pipeline import scheme_rows, solve_check, solve_reading, tolerance_table

    monkeypatch.setattr(P, "WS_START", 5)
    fs, ex = _planted_features(L=4, N=50)
    split = {"train": ex[:24], "val": ex[24:]}
    X, y = scheme_rows(fs, split["train"], "3-vs-1")
    assert X.shape[1] > 2 * len(y)
    for first in ("full", "working-set"):
        probe = P.fit_probe(X, y, C=10.0, n_layers=4, n_neurons=50, solve=first)
        r = solve_check(fs, split, probe)
        assert r["probe"]["solve"] == first and r["refit"]["solve"] != first
        assert r["ws_rounds"] >= 1 and 2 * len(y) <= r["ws_size"] < 200 and r["n_neurons"] == 200
        assert r["jaccard"] == 1.0 and r["max_weight_diff"] < 1e-3 and r["refit_s"] >= 0
        assert r["probe"]["objective"] == pytest.approx(r["refit"]["objective"], rel=1e-6)
        text = solve_reading(r)
        assert f"the probe ({first})" in text and "Both routes reach the same minimiser" in text
        assert list(tolerance_table(r, by="solve").solve) == [first, r["refit"]["solve"]]
    monkeypatch.setattr(P, "_available_bytes", lambda: 10)
    skipped = solve_check(fs, split, probe)  # a working-set probe; the full refit cannot fit
    assert set(skipped) == {"skipped"} and "PROBE_SOLVE" in skipped["skipped"]
    assert solve_reading(skipped).startswith("Not compared: a full fit of the probe on 48 rows x 200 neurons")
    # one negative weight more on one route: the same H-Neurons, and the reading says the supports differ
    edge = dict(r, probe=dict(r["probe"], n_nonzero=50), refit=dict(r["refit"], n_nonzero=49))
    assert ("Both routes reach the same minimum: the same " in solve_reading(edge)
            and "(non-zero weights 50 and 49: a negative weight at the edge" in solve_reading(edge))
    flat = dict(r, jaccard=0.5)
    assert "the H-Neuron sets differ" in solve_reading(flat) and "minimum is flat" in solve_reading(flat)
    short = dict(r, refit=dict(r["refit"], objective=1.2 * r["probe"]["objective"]))
    assert f"The {r['refit']['solve']} fit stops 20% above the {first} fit" in solve_reading(short)


def test_selection_stability_finds_a_planted_neuron_every_time():
    """Every resample selects the planted neuron; the outputs have the documented shapes and
    ranges, and the same seed gives the same resamples."""
    from hneurons_utils.pipeline import scheme_rows, selection_stability, stability_reading
    from hneurons_utils.probe import fit_probe

    fs, ex = _planted_features()
    X, y = scheme_rows(fs, ex, "3-vs-1")
    probe = fit_probe(X, y, C=1.0, n_layers=2, n_neurons=8)
    assert 1 * 8 + 3 in probe.h_neurons().flat.tolist()
    r = selection_stability(fs, ex, probe, n_resamples=6, seed=1)
    freq = dict(zip(r["h_neurons"], r["frequency"]))
    assert freq[11] == 1.0 and len(r["sizes"]) == len(r["jaccard"]) == 6
    assert all(0 <= j <= 1 for j in r["jaccard"]) and all(s >= 1 for s in r["sizes"])
    assert selection_stability(fs, ex, probe, n_resamples=6, seed=1) == r
    assert "Too few resamples" in stability_reading(r)
    weak = dict(r, n_resamples=20, jaccard=[0.3] * 20, frequency=[0.4] * len(freq))
    assert "does not reproduce" in stability_reading(weak)
    assert "largely reproduces" in stability_reading(dict(weak, jaccard=[0.8] * 20))
    assert "a core of the set reproduces" in stability_reading(dict(weak, frequency=[0.9] * len(freq)))
    one = stability_reading(dict(weak, frequency=[0.65], others_half=1))  # one H-Neuron, one other
    assert "The one H-Neuron is selected in 65% of the resamples; 1 neuron outside the set is" in one
    assert "this chapter's one (Jaccard)" in one and "20 bootstrap resamples" in one
    with pytest.raises(ValueError, match="at least 1"):
        selection_stability(fs, ex, probe, n_resamples=0)
    with pytest.raises(ValueError, match="both labels"):
        selection_stability(fs, [e for e in ex if e.label == 1], probe)


def test_stability_clause_reads_the_saved_check(tmp_path):
    """Later chapters quote chapter 2's resampling check, and say nothing when it did not run."""
    from hneurons_utils.pipeline import stability_clause

    assert stability_clause(tmp_path) == ""
    (tmp_path / "stability.json").write_text(json.dumps(
        {"n_resamples": 20, "frequency": [0.9, 0.5, 0.2], "jaccard": [0.4] * 20}))
    assert stability_clause(tmp_path) == (" (2 of them are selected again in at least half of "
                                          "chapter 2's 20 bootstrap refits, so a steered set is "
                                          "partly one draw among correlated neurons)")
    (tmp_path / "stability.json").write_text(json.dumps(
        {"n_resamples": 20, "frequency": [0.9, 0.5, 0.2], "jaccard": [0.6] * 20}))
    assert stability_clause(tmp_path).endswith("refits; the set largely reproduces)")
    (tmp_path / "stability.json").write_text("{torn")
    from hneurons_utils.summary import ResultsFileError

    with pytest.raises(ResultsFileError, match="stability.json: not valid JSON"):
        stability_clause(tmp_path)


def test_trained_questions_are_read_back_from_the_responses(tmp_path):
    """The split's keys (qid#i, both parts) name the questions an evaluation must not ask again."""
    import json as _json

    from hneurons_utils.pipeline import trained_questions

    path = tmp_path / "responses_triviaqa.jsonl"
    path.write_text("".join(_json.dumps({"qid": f"q{i}", "question": f"Question {i}?"}) + "\n" for i in range(4)))
    split = {"train": {"keys": ["q0#0", "q0#1", "q2#0"], "labels": [1, 1, 0]},
             "val": {"keys": ["q3#0"], "labels": [0]}}
    assert trained_questions(split, path) == ["Question 0?", "Question 2?", "Question 3?"]


def test_greedy_origin_counts_the_greedy_label_of_each_kept_class():
    """A greedy-correct question whose samples are mostly wrong is counted in the hallucinated
    class; a question without a greedy answer is "not screened"; no screening gives None."""
    from hneurons_utils.pipeline import greedy_origin
    from hneurons_utils.sampling import consistency_split

    sampled = [{"qid": "a", "labels": ["correct"] * 3}, {"qid": "b", "labels": ["incorrect"] * 3},
               {"qid": "c", "labels": ["incorrect"] * 2 + ["correct"]},
               {"qid": "d", "labels": ["incorrect"] * 3}, {"qid": "e", "labels": ["correct", "incorrect", "refusal"]}]
    greedy = [{"qid": "a", "labels": ["correct"]}, {"qid": "b", "labels": ["correct"]},
              {"qid": "c", "labels": ["incorrect"]}, {"qid": "e", "labels": ["correct"]}]
    cons = consistency_split(sampled, 0.6)
    assert greedy_origin(cons, greedy) == {
        "faithful": {"correct": 1, "incorrect": 0, "refusal": 0},
        "hallucinated": {"correct": 1, "incorrect": 1, "refusal": 0, "not screened": 1}}
    assert greedy_origin(cons, None) is None


def test_split_greedy_origin_counts_each_question_once_per_part_and_class():
    from hneurons_utils.features import Example
    from hneurons_utils.pipeline import split_greedy_origin

    def ex(key, label, qid=None):
        return Example(key, "", "", [], "", label, {"qid": qid} if qid else {})

    split = {"train": [ex("a#0", 1, "a"), ex("a#1", 1, "a"), ex("b#0", 1, "b"), ex("c#0", 0, "c")],
             "val": [ex("d#0", 0)]}  # no meta: the qid is read from the key
    greedy = [{"qid": q, "labels": [lab]} for q, lab in
              (("a", "correct"), ("b", "incorrect"), ("c", "correct"), ("d", "refusal"))]
    got = split_greedy_origin(split, greedy)
    assert got["train"]["hallucinated"] == {"correct": 1, "incorrect": 1, "refusal": 0}  # a once
    assert got["train"]["faithful"] == {"correct": 1, "incorrect": 0, "refusal": 0}
    assert got["val"] == {"hallucinated": {"correct": 0, "incorrect": 0, "refusal": 0},
                          "faithful": {"correct": 0, "incorrect": 0, "refusal": 1}}
    assert split_greedy_origin(split, None) is None


def _span_case(answer_tokens, scores, labels):
    """A one-neuron probe whose decision value is ``scores`` and features whose answer spans
    have ``answer_tokens`` tokens, on held-out examples with ``labels``."""
    from hneurons_utils.features import Example, FeatureSet
    from hneurons_utils.probe import Probe

    n = len(labels)
    ans = np.zeros((n, 1, 2), np.float16)
    ans[:, 0, 1] = scores
    fs = FeatureSet(np.array([f"q{i}#0" for i in range(n)]), ans, np.zeros_like(ans),
                    np.array(["alias"] * n), np.c_[answer_tokens, np.ones(n, int)], {})
    probe = Probe("tiny", 1, 2, np.array([1]), np.array([1.0]), 0.0, 1.0, np.zeros(1), np.ones(1))
    val = [Example(f"q{i}#0", "", "", [], "", y) for i, y in enumerate(labels)]
    return probe, fs, {"train": [], "val": val}


def test_span_length_check_compares_on_the_held_out_responses():
    from hneurons_utils.pipeline import span_length_check, span_length_reading

    labels = [1, 1, 0, 0]
    # span length ranks perfectly, the probe half the pairs: the probe does not beat it
    r = span_length_check(*_span_case([5, 4, 1, 2], [1.0, 0.0, 1.0, 0.0], labels))
    assert r == {"held_out": True, "hallucinated": 2, "faithful": 2,
                 "span_length_auroc": pytest.approx(1.0), "probe_auroc": pytest.approx(0.5),
                 "n_h_neurons": 1, "n_negative": 0}
    text = span_length_reading(r)
    assert "reaches an AUROC of 1.00 and the probe (1 H-Neuron) 0.50" in text
    assert "does not beat" in text
    # the other way round: the probe beats span length
    r = span_length_check(*_span_case([1, 1, 1, 1], [3.0, 2.0, 1.0, 0.0], labels))
    assert r["span_length_auroc"] == pytest.approx(0.5) and r["probe_auroc"] == pytest.approx(1.0)
    assert "the probe beats span length alone" in span_length_reading(r)
    # within the margin: not a win
    assert "within 0.02 of each other" in span_length_reading(
        dict(r, span_length_auroc=0.80, probe_auroc=0.81))
    # one class held out: NaN, nothing compared
    r = span_length_check(*_span_case([1, 2], [0.0, 1.0], [1, 1]))
    assert np.isnan(r["probe_auroc"]) and "one class only" in span_length_reading(r)
    # nothing held out
    probe, fs, split = _span_case([1, 2], [0.0, 1.0], [1, 0])
    r = span_length_check(probe, fs, {"train": split["val"], "val": []})
    assert r["held_out"] is False and r["span_length_auroc"] is None
    assert span_length_reading(r).startswith("No question was held out")


def test_greedy_origin_text_weighs_greedy_correct_questions_in_the_hallucinated_class():
    """The share of hallucinated questions the model answered correctly greedily, named as the
    larger part where it is."""
    from hneurons_utils.pipeline import greedy_origin_text

    origin = {"faithful": {"correct": 26, "incorrect": 0}, "hallucinated": {"correct": 48, "incorrect": 39}}
    text = greedy_origin_text(origin)
    assert text.startswith("48 of 87 questions of the hallucinated class (55%) were answered correctly greedily")
    assert "larger part" not in text and "depends on which questions were sampled" in text
    # with the sampled counts: the rates within each group, and the mix put down to the budget
    text = greedy_origin_text(origin, {"correct": 77, "incorrect": 39, "refusal": 0},
                              {"correct": 77, "incorrect": 1211, "refusal": 12})
    assert ("of the greedy-correct questions (all 77 sampled), 26 (34%) are consistently correct "
            "and 48 (62%) consistently incorrect") in text
    assert "of the greedy-incorrect questions (39 of 1,211 sampled), 0 (0%)" in text
    assert "39 (100%) consistently incorrect" in text and "sampling budget" in text
    assert "refusal questions" not in text  # no refusal was sampled
    assert greedy_origin_text({"hallucinated": {"correct": 1, "incorrect": 9}}).endswith(
        "not only on the model.")
    assert "none is a fact" in greedy_origin_text({"hallucinated": {"correct": 0, "incorrect": 9}})
    assert greedy_origin_text(None) == "" and greedy_origin_text({"hallucinated": {}}) == ""


@pytest.mark.parametrize("part", ["train", "val"])
def test_fit_identification_refuses_a_split_with_one_label(tiny_model, part):
    """All-hallucinated training answers would still give the 3-vs-1 fit two classes (answer
    tokens against other tokens): a probe of 'is this an answer', refused; so is a one-label
    validation split, which has no AUROC to choose C by. Both labels in both: a probe."""
    from hneurons_utils.features import Example, FeatureSet
    from hneurons_utils.pipeline import fit_identification

    a = tiny_model.adapter
    ex = [Example(f"q{i}#0", "p", "w7", ["w7"], "w5", i % 2, {"qid": f"q{i}"}) for i in range(12)]
    rng = np.random.default_rng(0)
    fs = FeatureSet(np.array([e.key for e in ex]),
                    rng.random((12, a.n_layers, a.n_neurons)).astype(np.float16),
                    rng.random((12, a.n_layers, a.n_neurons)).astype(np.float16),
                    np.array(["alias"] * 12), np.ones((12, 2), int), {})
    good = {"train": ex[:8], "val": ex[8:]}
    probe, grid = fit_identification(tiny_model, fs, good, IdentifyConfig(Cs=(1.0,)))
    assert probe.n_neurons == a.n_neurons and len(grid) == 1
    one_label = {**good, part: [e for e in good[part] if e.label == 1]}
    with pytest.raises(EmptyBalancedSetError, match=f"'{part}' split has 0 faithful"):
        fit_identification(tiny_model, fs, one_label, IdentifyConfig(Cs=(1.0,)))
    with pytest.raises(EmptyBalancedSetError, match="'train' split has 0 faithful and 0"):
        fit_identification(tiny_model, fs, {"train": [], "val": []}, IdentifyConfig(Cs=(1.0,)))


def test_yield_counts_counts_sampled_questions_by_greedy_label():
    from hneurons_utils.pipeline import yield_counts

    greedy = [{"qid": q, "labels": [lab]} for q, lab in (("a", "correct"), ("b", "incorrect"),
                                                          ("c", "incorrect"), ("d", "refusal"))]
    sampled = [{"qid": q, "responses": ["x"] * 2, "labels": ["correct"] * 2} for q in ("a", "b")]
    counts = yield_counts(list("abcd"), greedy, sampled, {"correct": sampled, "incorrect": []})
    assert counts["sampled_by_greedy"] == {"correct": 1, "incorrect": 1, "refusal": 0}
    assert "sampled_by_greedy" not in yield_counts(list("ab"), None, sampled, {"correct": [], "incorrect": []})


def _row(C, acc, auc, n, sup=None, chosen=False):
    return {"C": C, "val_accuracy": acc, "val_auroc": auc, "n_h_neurons": n, "suppression": sup,
            "score": acc + (sup or 0.0), "chosen": chosen}


def test_grid_reading_names_a_tie_and_the_tie_break_that_decided():
    """The grid's tie-break is select_C's (score, then held-out AUROC, then fewer H-Neurons, then
    grid order); the reading names the tied C values and the criterion that decided each."""
    from hneurons_utils.pipeline import grid_edge_warning, grid_reading, grid_tie_text

    grid = [_row(1.0, 0.5, 0.8, 5, 1.0), _row(3.0, 0.9, 0.987, 27, 0.625),
            _row(10.0, 0.9, 0.995, 37, 0.625, True), _row(30.0, 0.9, 1.0, 85, 0.4)]
    text = grid_tie_text(grid)
    assert text.startswith("C = 10 tied on the selection score (1.525) with C = 3")
    assert "the higher held-out AUROC decided against C = 3 (0.995 against 0.987)" in text
    assert text in grid_reading(grid)
    # AUROC tied too: fewer H-Neurons decided
    g2 = [_row(3.0, 0.9, 0.99, 27, 0.5), _row(10.0, 0.9, 0.99, 20, 0.5, True), _row(30.0, 0.1, 0.5, 90, 0.0)]
    assert "fewer H-Neurons decided against C = 3 (20 against 27)" in grid_tie_text(g2)
    # every criterion tied: grid order
    g3 = [_row(3.0, 0.9, 0.99, 20, 0.5, True), _row(10.0, 0.9, 0.99, 20, 0.5), _row(30.0, 0.1, 0.5, 90, 0.0)]
    assert "C = 10 tied on every criterion, and the one listed first in the grid won" in grid_tie_text(g3)
    # no tie, no text; a choice at either end of the grid is warned about
    assert grid_tie_text([_row(1.0, 0.5, 0.8, 5), _row(3.0, 0.9, 0.9, 8, chosen=True), _row(9.0, 0.6, 0.7, 9)]) == ""
    assert grid_edge_warning([_row(1.0, 0.5, 0.8, 5), _row(3.0, 0.9, 0.9, 8, chosen=True), _row(9.0, 0.6, 0.7, 9)]) == ""
    edge = [_row(1.0, 0.5, 0.8, 5), _row(3.0, 0.9, 0.9, 8, chosen=True)]
    assert "is the largest value of the grid" in grid_edge_warning(edge)
    assert "is the smallest value" in grid_edge_warning([_row(3.0, 0.9, 0.9, 8, chosen=True), _row(9.0, 0.6, 0.7, 9)])
    assert "Warning" in grid_reading(edge)


def _parts_case():
    """Two neurons: H-Neuron 0 ranks the classes half right, negative-weight neuron 1 perfectly
    (it fires less on hallucinated answers)."""
    from hneurons_utils.features import Example, FeatureSet
    from hneurons_utils.probe import Probe

    labels = [1, 1, 0, 0]
    ans = np.zeros((4, 1, 3), np.float16)
    ans[:, 0, 0] = [1.0, 0.0, 1.0, 0.0]  # H-Neuron: AUROC 0.5
    ans[:, 0, 1] = [0.0, 0.0, 1.0, 2.0]  # negative weight: low on hallucinated, AUROC 1 of its part
    fs = FeatureSet(np.array([f"q{i}#0" for i in range(4)]), ans, np.zeros_like(ans),
                    np.array(["alias"] * 4), np.ones((4, 2), int), {})
    probe = Probe("tiny", 1, 3, np.array([0, 1]), np.array([2.0, -1.0]), 0.5, 1.0, np.zeros(2), np.ones(2))
    return probe, fs, [Example(f"q{i}#0", "", "", [], "", y) for i, y in enumerate(labels)]


def test_probe_parts_check_separates_the_h_neurons_from_the_negative_weights():
    from hneurons_utils.pipeline import probe_parts_check, probe_parts_reading, single_vs_parts_reading

    probe, fs, held = _parts_case()
    r = probe_parts_check(probe, fs, held)
    assert (r["n_h_neurons"], r["n_negative"], r["hallucinated"], r["faithful"]) == (1, 1, 2, 2)
    assert r["h_neurons_auroc"] == pytest.approx(0.5) and r["negative_auroc"] == pytest.approx(1.0)
    # full score 2 x0 - x1 + 0.5: [2.5, 0.5, 1.5, -1.5] ranks 3 of 4 pairs right
    assert r["probe_auroc"] == pytest.approx(0.75)
    text = probe_parts_reading(r)
    assert "the probe (1 H-Neuron + 1 negative-weight neuron) separates" in text
    assert "its H-Neuron part alone (the score summed over the H-Neurons only) reaches 0.500" in text
    assert "most of the probe's detection comes from its negative-weight neurons" in text
    flipped = dict(r, h_neurons_auroc=0.9, negative_auroc=0.6)
    assert "the H-Neurons carry more" in probe_parts_reading(flipped)
    # the best single H-Neuron is compared with the H-Neurons' part, not with the whole probe
    line = single_vs_parts_reading(r, ["L0/0"], [0.5])
    assert line.startswith("The best single H-Neuron, L0/0, reaches 0.500 on the same responses; "
                           "the 1 H-Neuron read together (the probe's H-Neuron part) reach 0.500: about the same")
    assert line.endswith("the whole probe, with its 1 negative-weight neuron, reaches 0.750.")
    assert "together they detect better" in single_vs_parts_reading(dict(r, h_neurons_auroc=0.9), ["a", "b"], [0.6, 0.7])
    assert single_vs_parts_reading(dict(r, h_neurons_auroc=None), ["a"], [0.6]) == ""
    # a probe without negative weights: that part is None, no verdict
    probe.weights[1] = 0.5
    r = probe_parts_check(probe, fs, held)
    assert r["negative_auroc"] is None and r["n_negative"] == 0
    assert probe_parts_reading(r).endswith("its negative-weight part alone none (no such neuron).")
    one = probe_parts_check(probe, fs, [e for e in held if e.label == 1])
    assert np.isnan(one["probe_auroc"]) and "one class only" in probe_parts_reading(one)


def test_suppression_notes_and_caveats_follow_the_run():
    """The chapter's caveats come from the run: the held-out size, the suppression questions
    (screened or not), the consistency rule and the judge."""
    from types import SimpleNamespace

    from hneurons_utils.features import Example
    from hneurons_utils.pipeline import identification_caveats, suppression_term_notes

    ex = lambda q, i, y: Example(f"{q}#{i}", "", "", [], "", y, {"qid": q})  # noqa: E731
    split = {"train": [ex("a", 0, 1), ex("b", 0, 0)],
             "val": [ex("c", 0, 1), ex("c", 1, 1), ex("d", 0, 0)]}
    keep = [SimpleNamespace(qid=q) for q in ("a", "x", "y", "d")]
    notes = suppression_term_notes(keep, True, split, 24)
    assert "4 questions the model answered correctly in the greedy screen" in notes
    assert "2 of its 4 questions are questions of the balanced set" in notes
    assert "weighs a lost answer 1/p times as much" in notes
    assert "cut at 24 new tokens (`steering.SHORT_GREEDY`), as the chapter's answers are" in notes
    notes = suppression_term_notes(keep, False, split, 50, "the llm judge")
    assert "whose sampled answers were mostly correct (no screening ran)" in notes
    assert "while the chapter's answers may run to 50" in notes and "the llm judge" in notes
    assert suppression_term_notes([], True, split, 24) == ""
    from hneurons_utils.pipeline import SuppressionSet

    qs = SuppressionSet(keep[:2], keep[2:] + [SimpleNamespace(qid="c")], 0.059, 1300, True)
    notes = suppression_term_notes(qs, True, split, 24)
    assert "from two strata of the greedy screen" in notes and "p = 0.059 (of 1,300)" in notes
    assert "accuracy on 2 known questions" in notes and "accuracy on 3 other questions" in notes
    assert "on a model that knows 6% of TriviaQA, losing every known answer costs the score 0.059" in notes
    assert "{" not in notes  # every number filled in
    assert "3 of its 5 questions are questions of the balanced set" in notes
    assert "one lost known answer moves the term by 0.029, one other question answered right " \
        "with the neurons silenced by 0.314: the larger step" in notes
    assert "outweigh" not in notes  # 1/3 held-out responses: a larger step than 0.314
    wide = dict(split, val=split["val"] + [ex("e", 0, 0)])
    assert ("can decide between C values of equal held-out accuracy, and even outweigh a held-out "
            "response (one moves term (1) by 1/4 = 0.250)") in suppression_term_notes(qs, True, wide, 24)
    assert "estimates TriviaQA accuracy from 2 known questions and 3 other questions" in \
        identification_caveats(split, {}, 1.0, 10, qs, True)
    # the "known" term of the same strata reads as the known stratum alone, in notes and caveats
    known = suppression_term_notes(qs, True, split, 24, term="known")
    assert known == suppression_term_notes(keep[:2], True, split, 24)
    assert "2 questions the model answered correctly" in known and "strata" not in known
    assert "greedy accuracy on 2 questions" in identification_caveats(split, {}, 1.0, 10, qs, True,
                                                                      term="known")
    with pytest.raises(ValueError, match="needs a SuppressionSet"):
        suppression_term_notes(keep, True, split, 24, term="triviaqa")
    with pytest.raises(ValueError, match="unknown suppression term 'paper'"):
        identification_caveats(split, {}, 1.0, 10, qs, True, term="paper")
    counts = {"consistent_all_samples": {"correct": 0, "incorrect": 9}}
    text = identification_caveats(split, counts, 0.6, 10, keep, True)
    assert "holds 1 hallucinated and 1 faithful questions (2 and 1 responses" in text
    assert "within noise" in text and "loosened to tau = 0.6" in text
    assert "the strict rule keeps 0 faithful questions" in text
    assert "answered correctly in the greedy screen" in text
    text = identification_caveats(split, counts, 1.0, 10, [], False, "the llm judge")
    assert "the paper's consistency rule is used (all 10 samples agree)" in text
    assert "held-out accuracy alone" in text and "judged by the llm judge" in text
    assert "no question was held out" in identification_caveats({"train": split["train"], "val": []},
                                                                 counts, 1.0, 10, [], False)


def test_hand_label_draw_text_reads_the_draw_from_the_rows():
    from hneurons_utils.pipeline import hand_label_draw_text

    rows = [{"qid": q, "rule": r} for q, r in (("a", "correct"), ("b", "refusal"), ("b", "incorrect"),
                                               ("c", "refusal"))]
    text = hand_label_draw_text(rows, {"correct": 30, "incorrect": 69, "refusal": 1})
    assert text.startswith("The 4 hand-labelled answers come from 3 questions (b more than once); "
                           "the rule calls 1 of them correct, 1 incorrect and 2 refusals")
    assert "refusal: 50% of them against 1.0% of this run's samples" in text
    assert "drawn per rule label, not at random" in text and "recall" in text
    same = hand_label_draw_text(rows, {"correct": 25, "incorrect": 25, "refusal": 50})
    assert same.endswith("about the mix of this run's samples.")
    assert hand_label_draw_text([]) == ""


def test_ratio_verdicts_read_both_ratios_against_one_per_mille():
    from hneurons_utils.pipeline import ratio_verdicts

    text = ratio_verdicts(0.803, 1.476)
    assert "the H-Neurons alone, 0.803 per mille, are below 1 per mille" in text
    assert "'selected for classifiers'), 1.476 per mille, not below 1 per mille" in text
    assert "1.000 per mille, not below" in ratio_verdicts(0.5, 1.0)
