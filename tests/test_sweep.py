"""Tests for hneurons_utils.sweep: the condition grid, resumable sweeps, remote models."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from hneurons_utils import benchmarks, sweep
from hneurons_utils.probe import NeuronSet


# ---------------------------------------------------------------- resumable sweep


@pytest.fixture
def chat_model(tiny_model):
    """The tiny model with a minimal chat template (the benchmarks need chat prompts)."""
    tiny_model.tokenizer.chat_template = (
        "{% for m in messages %}{{ m['content'] }} {% endfor %}{% if add_generation_prompt %}w9{% endif %}")
    return tiny_model


def _suite():
    return [benchmarks.BenchItem("sycophancy", "truthfulqa-mc", f"s{i}", f"w{i} w{i + 1}",
                                 {"options": ["w5", "w6"], "gold_key": "A", "format": "text"})
            for i in range(5)]


@pytest.mark.parametrize("method", ["rows", "weights"])
def test_sweep_resumes_to_identical_files(chat_model, tmp_path, method):
    """An interrupted sweep (torn last line, missing chunk) resumes to the uninterrupted files."""
    a = chat_model.adapter
    h = NeuronSet(np.zeros(8, int), np.arange(8), a.n_layers, a.n_neurons)
    conds = sweep.condition_grid(h, [0.0, 1.0, 3.0])
    cfg = benchmarks.decoding("jailbreak", max_new_tokens=4)  # sampled: resume must reuse the seeds
    sweep.run_sweep(chat_model, _suite(), conds, cfg, tmp_path / "full", 6, 0, method)
    partial = tmp_path / "part"
    df = sweep.run_sweep(chat_model, _suite(), conds, cfg, partial, 6, 0, method)
    files = sorted(partial.glob("*.jsonl"))
    lines = files[0].read_text().splitlines()
    files[0].write_text("\n".join(lines[:-2]) + "\n" + lines[-2][:15])  # torn write, one lost
    files[1].unlink()
    sweep.run_sweep(chat_model, _suite(), conds, cfg, partial, 6, 0, method)
    for f in files:
        want = [json.loads(x) for x in (tmp_path / "full" / f.name).read_text().splitlines()]
        got = [json.loads(x) for x in f.read_text().splitlines()]
        key = lambda r: r["item_id"]  # noqa: E731
        strip = lambda r: {k: v for k, v in r.items() if k != "seconds"}  # noqa: E731
        assert [strip(r) for r in sorted(got, key=key)] == [strip(r) for r in sorted(want, key=key)]
    assert len(df) == 5 * len(conds) and {"first", "response"} <= set(df.columns)


def test_sweep_refuses_files_another_run_is_writing(chat_model, tmp_path):
    """A sweep whose files another run holds fails before generating anything, and leaves
    them as they were."""
    from hneurons_utils.files import FileBusyError, writer_lock

    a = chat_model.adapter
    conds = sweep.condition_grid(NeuronSet(np.zeros(2, int), np.arange(2), a.n_layers, a.n_neurons),
                                 [0.0, 1.0])
    cfg = benchmarks.decoding("falseqa", max_new_tokens=2)
    sweep.run_sweep(chat_model, _suite(), conds, cfg, tmp_path, 4, 0)
    files = sorted(tmp_path.glob("*.jsonl"))
    files[0].write_text(files[0].read_text().splitlines(keepends=True)[0])  # work left to do
    before = [f.read_text() for f in files]
    with writer_lock(files[1]):
        with pytest.raises(FileBusyError, match=files[1].name):
            sweep.run_sweep(chat_model, _suite(), conds, cfg, tmp_path, 4, 0)
    assert [f.read_text() for f in files] == before
    df = sweep.run_sweep(chat_model, _suite(), conds, cfg, tmp_path, 4, 0)  # free again
    assert len(df) == 5 * len(conds) and not df.duplicated(["item_id", "set", "alpha"]).any()


def test_sweep_refuses_mixed_suites_and_empty_or_bad_settings(chat_model, tmp_path):
    """Items of two benchmarks (the first item's would decide the turns and file names), no
    condition, a batch size below 1, an empty ALPHAS and a control from another model are
    refused before anything is written."""
    a = chat_model.adapter
    h = NeuronSet(np.zeros(2, int), np.arange(2), a.n_layers, a.n_neurons)
    conds = sweep.condition_grid(h, [0.0, 2.0])
    cfg = benchmarks.decoding("falseqa", max_new_tokens=2)
    fq = [benchmarks.BenchItem("falseqa", "falseqa", "f0", "w3 w4", {"question": "w3", "rebuttals": []})]
    with pytest.raises(ValueError, match="one sweep takes one suite"):
        sweep.run_sweep(chat_model, fq + _suite(), conds, cfg, tmp_path)
    with pytest.raises(ValueError, match="no conditions"):
        sweep.run_sweep(chat_model, fq, [], cfg, tmp_path)
    with pytest.raises(ValueError, match="batch_size must be a whole number >= 1"):
        sweep.run_sweep(chat_model, fq, conds, cfg, tmp_path, -4, method="weights")
    with pytest.raises(ValueError, match="ALPHAS is empty"):
        sweep.condition_grid(h, [])
    other = NeuronSet(np.zeros(2, int), np.arange(2), a.n_layers + 1, a.n_neurons)
    with pytest.raises(ValueError, match="'random-0' is for .* a control must come from the same model"):
        sweep.condition_grid(h, [0.0], {"random-0": other})
    assert not any(tmp_path.iterdir())


def test_changed_item_content_starts_new_files(chat_model, tmp_path):
    """Same item ids with another prompt or option format are other results: new files, not
    the stored replies of the old format."""
    a = chat_model.adapter
    conds = sweep.condition_grid(NeuronSet(np.zeros(2, int), np.arange(2), a.n_layers, a.n_neurons), [1.0])
    cfg = benchmarks.decoding("faitheval", max_new_tokens=2)
    sweep.run_sweep(chat_model, _suite(), conds, cfg, tmp_path, 6, 0)
    first = set(tmp_path.glob("*.jsonl"))
    letter = [benchmarks.BenchItem(it.bench, it.source, it.item_id, it.user, {**it.meta, "format": "letter"})
              for it in _suite()]
    df = sweep.run_sweep(chat_model, letter, conds, cfg, tmp_path, 6, 0)
    assert set(tmp_path.glob("*.jsonl")) - first  # a new file for the new format
    assert {m["format"] for m in df["meta"]} == {"letter"}
    sweep.run_sweep(chat_model, _suite(), conds, cfg, tmp_path, 6, 0)
    assert len(set(tmp_path.glob("*.jsonl"))) == 2  # the old format reuses its own file


def test_another_chat_template_starts_new_files(chat_model, tmp_path):
    """Under the same model name a changed chat template renders other prompts: its replies go
    to files of their own, never appended to (or read from) the old template's."""
    a = chat_model.adapter
    conds = sweep.condition_grid(NeuronSet(np.zeros(2, int), np.arange(2), a.n_layers, a.n_neurons), [1.0])
    cfg = benchmarks.decoding("faitheval", max_new_tokens=2)
    sweep.run_sweep(chat_model, _suite(), conds, cfg, tmp_path, 6, 0)
    first = set(tmp_path.glob("*.jsonl"))
    chat_model.tokenizer.chat_template = "w8 " + chat_model.tokenizer.chat_template
    sweep.run_sweep(chat_model, _suite(), conds, cfg, tmp_path, 6, 0)
    assert len(set(tmp_path.glob("*.jsonl")) - first) == len(first)


def test_reply_only_steering_keeps_the_unsteered_first_answer(chat_model, tmp_path):
    """steer_first_turn=False: every condition continues the one unsteered first answer (so the
    same items count as "first answered correctly" at every alpha); the default steers both
    turns, so there the first answers move with alpha. Other benchmarks refuse the option."""
    a = chat_model.adapter
    h = NeuronSet(np.repeat(np.arange(a.n_layers), a.n_neurons),
                  np.tile(np.arange(a.n_neurons), a.n_layers), a.n_layers, a.n_neurons)
    conds = sweep.condition_grid(h, [0.0, 100.0])  # far from 1: tiny random MLPs write little
    cfg = benchmarks.decoding("sycophancy", "truthfulqa-mc", 4)  # greedy
    firsts = {}
    for steer_first in (True, False):
        df = sweep.run_sweep(chat_model, _suite(), conds, cfg, tmp_path / str(steer_first), 30, 0,
                             "rows", steer_first_turn=steer_first)
        firsts[steer_first] = {(r.item_id, r.set, r.alpha): r.first for r in df.itertuples()}
    plain = {i: f for (i, s, _), f in firsts[True].items() if s == "none"}
    assert {i: f for (i, s, _), f in firsts[False].items() if s == "none"} == plain
    assert all(f == plain[i] for (i, _, _), f in firsts[False].items())
    assert any(f != plain[i] for (i, _, _), f in firsts[True].items())  # steered first turns move
    names = {p.name.rsplit("__", 1)[1] for p in (tmp_path / "False").glob("*.jsonl")}
    assert names.isdisjoint(p.name.rsplit("__", 1)[1] for p in (tmp_path / "True").glob("*.jsonl"))
    item = benchmarks.BenchItem("falseqa", "falseqa", "f:1", "q")
    with pytest.raises(ValueError, match="sycophancy suites, not to 'falseqa'"):
        sweep.run_sweep(chat_model, [item], conds, cfg, tmp_path, steer_first_turn=False)


def test_keyed_sweep_draws_the_same_replies_under_a_larger_grid(chat_model, tmp_path):
    """Sampled replies are keyed by item and turn: adding a random set (other chunks, wider
    generate calls) leaves the other conditions' replies as they were, which the unkeyed
    stream does not; greedy files are the same either way, sampled ones get their own hash."""
    from hneurons_utils.probe import random_neuron_set

    a = chat_model.adapter
    h = NeuronSet(np.zeros(8, int), np.arange(8), a.n_layers, a.n_neurons)
    rand = {"random-0": random_neuron_set(8, a.n_layers, a.n_neurons, seed=5)}
    small, large = sweep.condition_grid(h, [0.0, 3.0]), sweep.condition_grid(h, [0.0, 3.0], rand)
    cfg = benchmarks.decoding("sycophancy", "triviaqa", 6)  # sampled, two turns
    assert cfg.do_sample
    runs = {}
    for keyed in (True, False):
        for name, conds in (("small", small), ("large", large)):
            df = sweep.run_sweep(chat_model, _suite(), conds, cfg, tmp_path / f"{keyed}-{name}", 12,
                                 0, "rows", keyed=keyed)
            runs[keyed, name] = {(r.item_id, r.set, r.alpha): (r.first, r.response)
                                 for r in df.itertuples() if r.set != "random-0"}
    assert runs[True, "small"] == runs[True, "large"]
    assert runs[False, "small"] != runs[False, "large"]  # one stream: the grid re-draws replies
    hashes = lambda d: {p.name.rsplit("__", 1)[1] for p in d.glob("*.jsonl")}  # noqa: E731
    assert hashes(tmp_path / "True-small").isdisjoint(hashes(tmp_path / "False-small"))
    greedy = benchmarks.decoding("sycophancy", "truthfulqa-mc", 2)
    for keyed in (True, False):
        sweep.run_sweep(chat_model, _suite(), small, greedy, tmp_path / f"g{keyed}", 12, 0, keyed=keyed)
    assert hashes(tmp_path / "gTrue") == hashes(tmp_path / "gFalse")


def test_sweep_reports_progress_over_chunks(chat_model, tmp_path, capsys):
    conds = [sweep.Condition("none", None, 1.0)]
    cfg = benchmarks.decoding("sycophancy", "truthfulqa-mc", 2)
    sweep.run_sweep(chat_model, _suite(), conds, cfg, tmp_path, 2, 0, progress_every=0.0)
    err = capsys.readouterr().err
    assert "truthfulqa-mc sweep (1 conditions): 1/3 chunk (" in err and "3/3 chunk, done" in err
    sweep.run_sweep(chat_model, _suite(), conds, cfg, tmp_path, 2, 0, progress_every=None)
    assert capsys.readouterr().err == ""


# ---------------------------------------------------------------- conditions, bad inputs


def test_condition_grid_shares_alpha_one_and_uses_the_control_grid():
    """alpha = 1 runs once (set "none"); random sets run at control_alphas (default: alphas)."""
    h = NeuronSet([0], [1], 2, 8)
    r = NeuronSet([0], [2], 2, 8)
    tags = [c.tag for c in sweep.condition_grid(h, [0.0, 1.0, 3.0], {"random-0": r}, [0.0, 3.0])]
    assert tags == ["none__a1", "h_neurons__a0", "h_neurons__a3", "random-0__a0", "random-0__a3"]
    same = [c.tag for c in sweep.condition_grid(h, [0.0, 1.0, 2.0], {"random-0": r})]
    assert "random-0__a2" in same and len(same) == 5


def test_condition_grid_refuses_empty_sets_repeated_alphas_and_a_foreign_control_grid():
    h, r = NeuronSet([0], [1], 2, 8), NeuronSet([0], [2], 2, 8)
    empty = NeuronSet([], [], 2, 8)
    with pytest.raises(ValueError, match="'h_neurons' is empty"):
        sweep.condition_grid(empty, [0.0, 3.0])
    with pytest.raises(ValueError, match="'random-0' is empty"):
        sweep.condition_grid(h, [0.0, 3.0], {"random-0": empty})
    with pytest.raises(ValueError, match="ALPHAS repeats"):
        sweep.condition_grid(h, [0.0, 3.0, 3])
    with pytest.raises(ValueError, match="subset of ALPHAS"):
        sweep.condition_grid(h, [0.0, 3.0], {"random-0": r}, [0.0, 4.0])


def test_sweep_refuses_duplicate_item_ids_and_condition_tags(tmp_path):
    m = SimpleNamespace(remote=False)
    item = benchmarks.BenchItem("falseqa", "falseqa", "f:1", "q")
    conds = sweep.condition_grid(NeuronSet([0], [1], 2, 8), [0.0])
    with pytest.raises(ValueError, match="'f:1' occurs more than once"):
        sweep.run_sweep(m, [item, item], conds, None, tmp_path)
    with pytest.raises(ValueError, match="share a tag"):
        sweep.run_sweep(m, [item], conds + conds[-1:], None, tmp_path)
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_sweep_on_a_remote_model_needs_nnsight(tmp_path):
    """run_sweep refuses hook/weight methods on a remote model before generating anything."""
    m = SimpleNamespace(remote=True)
    item = benchmarks.BenchItem("falseqa", "falseqa", "f:1", "q")
    with pytest.raises(ValueError, match="STEER_METHOD='rows'.*nnsight"):
        sweep.run_sweep(m, [item], [sweep.Condition("none", None, 1.0)], None, tmp_path, method="rows")
