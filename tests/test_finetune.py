"""Tests of hneurons_utils.finetune: the offline pair's tuning run (paper Section 4)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import tiny_llama, tiny_tokenizer
from hneurons_utils import finetune as ft
from hneurons_utils.drift import parameter_drift


class _Item:
    def __init__(self, qid, question, answers):
        self.qid, self.question, self.answers = qid, question, answers


def _chat_tokenizer():
    return ft.set_chat_template(tiny_tokenizer())


def test_chat_template_layout():
    """The template writes Gemma's turn layout, with a newline after each role name."""
    tok = ft.set_chat_template(tiny_tokenizer())
    text = tok.apply_chat_template([{"role": "user", "content": "w1 w2"},
                                    {"role": "assistant", "content": "w3"}], tokenize=False)
    assert text == "<start_of_turn>user\nw1 w2<end_of_turn>\n<start_of_turn>model\nw3<end_of_turn>\n"
    prompt = tok.apply_chat_template([{"role": "user", "content": "w1"}], tokenize=False,
                                     add_generation_prompt=True)
    assert prompt.endswith("<start_of_turn>model\n")


def test_pick_answer_prefers_the_alias_others_contain():
    """The tuning target is the clean alias most other aliases contain, capitalised on ties."""
    assert ft.pick_answer(["Prize fight", "Boxing", "Boxing match", "Boxing (sport)", "Boxers"]) == "Boxing"
    assert ft.pick_answer(["\U0001F681", "Helicopters", "Helicopter", "Cargo helicopter"]) == "Helicopter"
    assert ft.pick_answer(["Henry james", "Henry James", "James, Henry"]) == "Henry James"
    assert ft.pick_answer(["Zaire, formerly Congo"]) is None


def test_sft_example_masks_the_prompt():
    """Only the answer and the end-of-turn marker carry loss; the prompt is an exact prefix."""
    tok = _chat_tokenizer()
    ex = ft.sft_example(tok, "q1", "w4 w5", "w7 w8", instruction=None)
    prompt_ids = tok.encode(ft.build_prompt(tok, "w4 w5", None), add_special_tokens=False)
    n = len(prompt_ids)
    assert ex.input_ids[:n] == prompt_ids
    assert ex.labels[:n] == [ft.IGNORE] * n and ex.labels[n:] == ex.input_ids[n:]
    assert tok.decode(ex.input_ids[n:n + 1]) == "w7" and len(ex.input_ids) > n + 1


def test_answer_loss_matches_the_library_loss():
    """The answer-only loss equals transformers' own shifted loss on the same labels."""
    tok, model = _chat_tokenizer(), tiny_llama()
    exs = [ft.sft_example(tok, "a", "w4 w5 w6", "w7", None), ft.sft_example(tok, "b", "w9", "w10 w11", None)]
    batch = ft.collate(exs, tok.pad_token_id)
    with torch.no_grad():
        ours = ft.answer_loss(model, batch)
        ref = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                    labels=batch["labels"]).loss
    assert ours.item() == pytest.approx(ref.item(), rel=1e-5)


def test_batch_schedule_is_seeded_epochs():
    """Each epoch visits every example once; the schedule depends only on the seed."""
    cfg = ft.SFTConfig(steps=5, batch_size=4, seed=3)
    s = ft.batch_schedule(10, cfg)
    assert s.shape == (5, 4) and np.array_equal(s, ft.batch_schedule(10, cfg))
    assert sorted(s.ravel()[:10]) == list(range(10))
    with pytest.raises(ValueError, match="batch of 4"):
        ft.batch_schedule(3, cfg)


def test_exposure_counts_what_the_run_saw():
    """48 steps of 8 from 952 examples see 384 of them (0.4 epoch), not all 952; a run longer
    than an epoch sees every example, some twice; the stored config dict works as well."""
    part = ft.exposure(952, ft.SFTConfig(steps=48, batch_size=8))
    assert part == {"presentations": 384, "distinct": 384, "n_examples": 952,
                    "epochs": pytest.approx(384 / 952)}
    long = ft.exposure(10, ft.SFTConfig(steps=5, batch_size=4).as_dict() | {"unknown": 1})
    assert (long["presentations"], long["distinct"], long["epochs"]) == (20, 10, 2.0)


def _examples(tok, n=12):
    return [ft.sft_example(tok, f"q{i}", f"w{i + 3} w{i + 20}", f"w{i + 40}", None) for i in range(n)]


def test_train_sft_lowers_loss_and_freezes_embeddings():
    """Tuning lowers the answer loss and leaves the embeddings untouched (the default)."""
    tok, model = _chat_tokenizer(), tiny_llama()
    exs = _examples(tok)
    emb = model.get_input_embeddings().weight.detach().clone()
    up = model.model.layers[0].mlp.up_proj.weight.detach().clone()
    batch = ft.collate(exs, tok.pad_token_id)
    with torch.no_grad():
        before = ft.answer_loss(model, batch).item()
    ft.train_sft(model, exs, ft.SFTConfig(steps=30, batch_size=4, lr=3e-3), tok.pad_token_id, log=None)
    with torch.no_grad():
        after = ft.answer_loss(model, batch).item()
    assert after < before - 0.5
    assert torch.equal(model.get_input_embeddings().weight, emb)
    assert not torch.equal(model.model.layers[0].mlp.up_proj.weight, up)


@pytest.mark.parametrize("torn", [False, True])
def test_train_sft_resumes_exactly(tmp_path, torn):
    """A run stopped at a checkpoint and resumed ends with the same weights as one straight run,
    also when the stop fell between the checkpoint's two renames (``torn``: only ``.old`` left)."""
    tok = _chat_tokenizer()
    exs = _examples(tok)
    cfg = ft.SFTConfig(steps=6, batch_size=4, lr=1e-3, checkpoint_every=3)
    straight = tiny_llama(seed=5)
    ft.train_sft(straight, exs, cfg, tok.pad_token_id, log=None)
    first = tiny_llama(seed=5)
    ft.train_sft(first, exs, ft.SFTConfig(**{**cfg.as_dict(), "steps": 6}), tok.pad_token_id,
                 ckpt=tmp_path / "ckpt", log=None)  # writes a checkpoint at step 3
    assert (tmp_path / "ckpt" / "state.json").exists()
    assert not (tmp_path / "ckpt.old").exists() and not (tmp_path / "ckpt.tmp").exists()
    if torn:
        (tmp_path / "ckpt").rename(tmp_path / "ckpt.old")
    resumed = tiny_llama(seed=5)  # a fresh process: same initial weights, then the checkpoint
    lines: list[str] = []
    losses = ft.train_sft(resumed, exs, cfg, tok.pad_token_id, ckpt=tmp_path / "ckpt", log=lines.append)
    assert len(losses) == 6
    assert [line.split()[2] for line in lines] == ["4/6", "5/6", "6/6"]  # started at the checkpoint
    for a, b in zip(straight.parameters(), resumed.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_instruct_twin_is_cached_by_settings(tmp_path, monkeypatch):
    """The tuned folder is written once, reused for the same settings, and redone for others."""
    tok = tiny_tokenizer()
    base = tmp_path / "base"
    tiny_llama().save_pretrained(base)
    tok.save_pretrained(base)
    items = [_Item(f"q{i}", f"w{i + 3} w{i + 20}", [f"w{i + 40}"]) for i in range(12)]
    cfg = ft.SFTConfig(steps=2, batch_size=4)
    folder = ft.instruct_twin(base, items, cfg, cache=tmp_path / "cache", log=None)
    meta = ft.sft_meta(folder)
    assert meta["n_examples"] == 12 and len(meta["losses"]) == 2
    assert (folder / "config.json").exists() and not folder.with_name(folder.name + ".ckpt").exists()
    def no_training(*a, **k):
        raise RuntimeError("retrained")

    monkeypatch.setattr(ft, "train_sft", no_training)
    assert ft.instruct_twin(base, items, cfg, cache=tmp_path / "cache", log=None) == folder
    with pytest.raises(RuntimeError, match="retrained"):
        ft.instruct_twin(base, items, ft.SFTConfig(steps=3, batch_size=4), cache=tmp_path / "cache", log=None)
    drift = parameter_drift(base, folder)  # the twin differs from its base in every layer
    assert (drift["down"].max(axis=1) > 0).all()


def test_disjoint_items_exclude_ids_and_question_texts():
    """Tuning questions never share an id or a normalised question with excluded ones."""
    pool = [_Item(f"q{i}", f"Question {i}?", ["a"]) for i in range(10)]
    exclude = [_Item("q0", "anything", ["a"]), _Item("other", "the QUESTION 1", ["a"])]
    got = ft.disjoint_items(pool, 8, exclude, seed=1)
    assert {it.qid for it in got} == {f"q{i}" for i in range(2, 10)}
    with pytest.raises(ValueError, match="only 8"):
        ft.disjoint_items(pool, 9, exclude)


def test_sft_key_names_a_gpu_but_keeps_the_cpu_key():
    """Tuning on a GPU rounds otherwise, so its twin gets its own folder; the CPU's key is the
    one every earlier run wrote (no device in it), whatever CPU device name is given."""
    cfg = ft.SFTConfig(steps=2, batch_size=4)
    key = ft.sft_key("base", cfg, ["q1", "q2"])
    assert ft.sft_key("base", cfg, ["q1", "q2"], device="cpu") == key
    assert ft.sft_key("base", cfg, ["q1", "q2"], device="cuda") != key
    assert ft.sft_key("base", cfg, ["q1", "q2"], device="cuda:1") == ft.sft_key("base", cfg, ["q1", "q2"], device="cuda")
