"""Response-level CETT features (Section 6.1.2, Eq. 3): masks, batching, the on-disk cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import hneurons_utils.features as F
from hneurons_utils import cett
from hneurons_utils.cett import cett_tokens
from hneurons_utils.features import (Example, FeatureConfig, extract_features, load_features,
                                     token_masks)


def ex(key: str, response: str, prompt: str = "w3 w4 w5 ", answers=("w7",)) -> Example:
    return Example(key, prompt, response, list(answers), "w3 w4", 1)


def test_token_masks_answer_and_other(tiny_model):
    """The answer mask covers the alias's token; "all" is every other token, "output" the response's."""
    tok = tiny_model.tokenizer
    e = ex("a", "w6 w7 w8")
    ids, ans, other, method = token_masks(tok, e, "all", suffix=" <eos>")
    assert tok.convert_ids_to_tokens(ids) == ["w3", "w4", "w5", "w6", "w7", "w8", "<eos>"]
    assert method == "alias" and ans.tolist() == [0, 0, 0, 0, 1, 0, 0]
    assert other.tolist() == [1, 1, 1, 1, 0, 1, 1]
    _, _, out, _ = token_masks(tok, e, "output", suffix=" <eos>")
    assert out.tolist() == [0, 0, 0, 1, 0, 1, 1]


def test_content_span_rule_ignores_the_gold_alias(tiny_model):
    """span_rule="content" finds the span by the content rule even when an alias occurs, and
    keys its cache apart from the default rule (old caches keep their key)."""
    tok = tiny_model.tokenizer
    e = ex("a", "w6 w7 w8")
    _, ans, _, method = token_masks(tok, e, "all", " <eos>", span_rule="content")
    assert method == "content" and ans.tolist() == [0, 0, 0, 1, 1, 1, 0]
    default = F.feature_settings(tiny_model, FeatureConfig())
    assert "span_rule" not in default
    assert F.feature_settings(tiny_model, FeatureConfig(span_rule="content"))["span_rule"] == "content"
    with pytest.raises(ValueError, match="span_rule must be one of"):
        FeatureConfig(span_rule="gold")


def test_an_alias_the_question_repeats_marks_no_answer(tiny_model):
    """As for the judge, a gold alias that the question contains is not the answer span: an
    echo of the question is not where the (wrong) answer sits."""
    tok = tiny_model.tokenizer
    e = Example("a", "w3 w4 w5 ", "w3 w6 w8", ["w3", "w9"], "w3 w4", 1)  # "w3" echoes the question
    _, ans, _, method = token_masks(tok, e, "all", " <eos>")
    assert method != "alias" and not ans[3]  # the echoed w3 is not the answer token
    # what chapter 2 displays is the span the features use
    assert F.example_span(e).method == method
    only = Example("b", "w3 w4 w5 ", "w3 w6 w8", ["w3"], "w3 w4", 1)  # every alias in the question
    with pytest.raises(ValueError, match="written in the question"):  # the loaders drop these
        token_masks(tok, only, "all", " <eos>")
    assert F.example_span(only, "content").method != "alias"  # one rule for all needs no alias


def test_features_of_an_older_code_version_are_recomputed(tiny_model, tmp_path, capsys):
    """A cache with the same settings but an older feature version is redone, with a note;
    other settings stay an error."""
    path = tmp_path / "f.npz"
    extract_features(tiny_model, [ex("a", "w6 w7")], path)
    z = dict(np.load(path, allow_pickle=False))
    import json
    old = dict(json.loads(str(z["settings"])), version=F.FEATURE_VERSION - 1)
    z["settings"], z["settings_hash"] = np.array(json.dumps(old)), np.array(F.settings_hash(old))
    np.savez(path, **z)
    fs = extract_features(tiny_model, [ex("a", "w6 w7")], path)
    assert "older version" in capsys.readouterr().err and fs.settings["version"] == F.FEATURE_VERSION
    assert F.load_features(path, F.feature_settings(tiny_model, FeatureConfig())) is not None


def test_token_masks_reject_empty_response(tiny_model):
    """An empty response has no answer token: a clear error naming the example."""
    with pytest.raises(ValueError, match="k1: empty response"):
        token_masks(tiny_model.tokenizer, ex("k1", "  "), "all", "")


def reference(m, e: Example, other_tokens: str) -> tuple[np.ndarray, np.ndarray]:
    """Mean CETT of one unpadded example from the per-token definition (cett_tokens)."""
    ids, a, o, _ = token_masks(m.tokenizer, e, other_tokens, F.turn_suffix(m.tokenizer))
    batch = {"input_ids": torch.tensor([ids]), "attention_mask": torch.ones(1, len(ids), dtype=torch.long)}
    c = cett_tokens(m, batch)[:, 0]  # [L, T, N]
    return c[:, torch.from_numpy(a)].mean(1).numpy(), c[:, torch.from_numpy(o)].mean(1).numpy()


@pytest.mark.parametrize("other_tokens", ["all", "output"])
def test_batched_features_match_per_token_definition(tiny_model, tmp_path, other_tokens):
    """Padded batches give each response the means of Eq. 3 computed alone, token by token."""
    exs = [ex("a", "w6 w7 w8 w9 w10 w11"), ex("b", "w7"), ex("c", "w12 w7 w13", prompt="w3 ")]
    fs = extract_features(tiny_model, exs, tmp_path / "f.npz", FeatureConfig(other_tokens, batch_size=3))
    for i, e in enumerate(exs):
        ans, oth = reference(tiny_model, e, other_tokens)
        np.testing.assert_allclose(fs.answer[i].astype(np.float32), ans, rtol=2e-3, atol=1e-4)
        np.testing.assert_allclose(fs.other[i].astype(np.float32), oth, rtol=2e-3, atol=1e-4)
    assert fs.answer.dtype == np.float16
    assert fs.answer.shape == (3, tiny_model.adapter.n_layers, tiny_model.adapter.n_neurons)
    assert fs.span_stats() == {"alias": 3, "content": 0, "fallback": 0, "total": 3}


def test_cache_is_reused_and_extended(tiny_model, tmp_path, monkeypatch):
    """Stored features are not recomputed; new examples are appended; old rows stay as they were."""
    path = tmp_path / "f.npz"
    first = extract_features(tiny_model, [ex("a", "w6 w7"), ex("b", "w7 w8")], path)
    calls = []
    real = F._featurise_batch
    def spy(m, batch, *args):
        calls.append([e.key for e in batch])
        return real(m, batch, *args)

    monkeypatch.setattr(F, "_featurise_batch", spy)
    again = extract_features(tiny_model, [ex("a", "w6 w7"), ex("b", "w7 w8"), ex("c", "w7")], path)
    assert calls == [["c"]]
    assert again.keys.tolist() == ["a", "b", "c"]
    np.testing.assert_array_equal(again.answer[:2], first.answer)
    np.testing.assert_array_equal(again.flat("answer", ["b"]), first.flat("answer", ["b"]))


def test_features_beyond_float16_are_an_error_naming_the_response(tiny_model, tmp_path, monkeypatch):
    """CETT means that would overflow the float16 store (inf) stop the run, naming the
    responses; NaN (no token of a kind) stays allowed."""
    real = F.cett_means

    def huge(m, enc, masks, **kw):
        out = real(m, enc, masks, **kw)
        out["answer"][1, 0, 0] = 1e6
        return out

    monkeypatch.setattr(F, "cett_means", huge)
    with pytest.raises(ValueError, match=r"answer-token means of \['b'\] are infinite or beyond float16"):
        extract_features(tiny_model, [ex("a", "w6 w7"), ex("b", "w7 w8")], tmp_path / "f.npz")
    assert not (tmp_path / "f.npz").exists()


def test_activation_features_are_cached_apart_and_read_raw_activations(tiny_model, tmp_path):
    """FeatureConfig(measure="activation") stores mean |z| under its own settings (a CETT file
    is refused for it, and the default settings stay as they were); an unknown measure is refused."""
    exs = [ex("a", "w6 w7 w8"), ex("b", "w7")]
    path = tmp_path / "f.npz"
    cfg = FeatureConfig(batch_size=2, measure="activation")
    fs = extract_features(tiny_model, exs, path, cfg)
    assert "measure" not in F.feature_settings(tiny_model, FeatureConfig())
    assert F.feature_settings(tiny_model, cfg)["measure"] == "activation"
    with pytest.raises(ValueError, match="other settings"):
        extract_features(tiny_model, exs, path)
    ids, a, o, _ = token_masks(tiny_model.tokenizer, exs[0], "all", F.turn_suffix(tiny_model.tokenizer))
    batch = {"input_ids": torch.tensor([ids]), "attention_mask": torch.ones(1, len(ids), dtype=torch.long)}
    want = cett.cett_means(tiny_model, batch, {"a": torch.tensor(a)[None]}, measure="activation")["a"][0]
    np.testing.assert_allclose(fs.answer[0].astype(np.float32), want.numpy(), rtol=2e-3, atol=1e-4)
    with pytest.raises(ValueError, match="measure must be one of"):
        FeatureConfig(measure="raw")


def test_cache_with_other_settings_is_an_error(tiny_model, tmp_path):
    """Features computed with other settings are never silently mixed with new ones."""
    path = tmp_path / "f.npz"
    extract_features(tiny_model, [ex("a", "w6 w7")], path, FeatureConfig("all"))
    with pytest.raises(ValueError, match="other settings"):
        extract_features(tiny_model, [ex("a", "w6 w7")], path, FeatureConfig("output"))


def test_a_damaged_features_file_is_named(tiny_model, tmp_path):
    """A truncated npz, or one without its settings, is an error naming the file and what to do
    (not numpy's advice about pickled data, nor a bare KeyError)."""
    path = tmp_path / "f.npz"
    extract_features(tiny_model, [ex("a", "w6 w7")], path)
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match=r"f.npz is not a readable features file .*delete it"):
        load_features(path)
    np.savez(tmp_path / "g.npz", keys=np.array(["a"]))
    with pytest.raises(ValueError, match=r"g.npz is not a readable features file \(KeyError"):
        load_features(tmp_path / "g.npz")


def test_npz_needs_no_pickle(tiny_model, tmp_path):
    """The stored file opens with allow_pickle=False and carries its settings hash."""
    path = tmp_path / "f.npz"
    extract_features(tiny_model, [ex("a", "w6 w7")], path)
    with np.load(path, allow_pickle=False) as z:
        assert set(z.files) >= {"keys", "answer", "other", "settings", "settings_hash"}
        assert z["answer"].dtype == np.float16


def test_missing_key_is_named(tiny_model, tmp_path):
    """Asking for features of an example that was never featurised names it."""
    fs = extract_features(tiny_model, [ex("a", "w6 w7")], tmp_path / "f.npz")
    with pytest.raises(KeyError, match="'zz'"):
        fs.flat("answer", ["a", "zz"])


def test_cached_row_for_a_changed_response_is_recomputed(tiny_model, tmp_path, capsys):
    """Features are keyed by example key; a key whose response changed since it was cached
    (a new judge picked other responses) never reuses the old row: it is recomputed, with a
    note, and the other rows are kept."""
    path = tmp_path / "f.npz"
    first = extract_features(tiny_model, [ex("a", "w6 w7"), ex("b", "w5 w9")], path, FeatureConfig("all"))
    again = extract_features(tiny_model, [ex("a", "w6 w7")], path, FeatureConfig("all"))
    assert again.digests.tolist()[0] == F.example_digest(ex("a", "w6 w7"))
    assert "recomputing" not in capsys.readouterr().err
    new = extract_features(tiny_model, [ex("a", "w6 w8")], path, FeatureConfig("all"))
    assert "1 stored rows were computed on another response" in capsys.readouterr().err
    fresh = extract_features(tiny_model, [ex("a", "w6 w8")], tmp_path / "g.npz", FeatureConfig("all"))
    assert sorted(new.keys.tolist()) == ["a", "b"] and len(new.keys) == 2
    ia, ib = new.index(["a"])[0], new.index(["b"])[0]
    np.testing.assert_array_equal(new.answer[ia], fresh.answer[0])
    assert new.digests[ia] == F.example_digest(ex("a", "w6 w8"))
    np.testing.assert_array_equal(new.answer[ib], first.answer[first.index(["b"])[0]])


def test_answers_must_be_a_list_of_str_and_keys_str(tiny_model, tmp_path):
    """A str of answers would be read letter by letter (another answer span); an int key is
    stored as text, never matches the cache again and is appended anew on every run."""
    with pytest.raises(TypeError, match="answers must be a list of alias strings"):
        Example("a", "w3 ", "w6 w7", "w7", "w3", 1)
    with pytest.raises(TypeError, match="answers must be a list"):
        Example("a", "w3 ", "w6 w7", ["w7", 7], "w3", 1)
    with pytest.raises(TypeError, match="example keys must be str.*got 5"):
        Example(5, "w3 ", "w6 w7", ["w7"], "w3", 1)
    e = ex("a", "w6 w7")
    e.key = 5  # a key changed after construction is refused too
    with pytest.raises(TypeError, match="example keys must be str"):
        extract_features(tiny_model, [e], tmp_path / "f.npz")
    assert not (tmp_path / "f.npz").exists()


@pytest.mark.parametrize("size, err", [(0, ValueError), (-1, ValueError), (2.5, ValueError)])
def test_batch_size_must_be_a_whole_number_from_one(size, err):
    """batch_size -1 once featurised nothing without a word (and 2.5 would fail in slicing)."""
    with pytest.raises(err, match="batch_size must be"):
        FeatureConfig(batch_size=size)


def test_mean_other_reads_one_array_and_checks_the_model(tiny_model, tmp_path):
    """The size the size-matched control matches: the mean over responses of the other-token
    features, read from the file alone; features of another model are refused."""
    import numpy as np

    from hneurons_utils.features import Example, extract_features, mean_other

    ex = [Example("a#0", "w3 w4", "w5 w6 w7", ["w6"], "w3", 1),
          Example("b#0", "w4 w5", "w8 w9 w7", ["w9"], "w4", 0)]
    path = tmp_path / "f.npz"
    fs = extract_features(tiny_model, ex, path)
    np.testing.assert_allclose(mean_other(path, tiny_model.name), fs.other.astype(np.float64).mean(0))
    with pytest.raises(ValueError, match="not of 'other-model'"):
        mean_other(path, "other-model")
    with pytest.raises(FileNotFoundError, match="identification"):
        mean_other(tmp_path / "none.npz")
