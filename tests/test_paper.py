"""Tests for ``hneurons_utils.paper``: the paper's published numbers and their loaders."""

from __future__ import annotations

import json
import math

import pytest

from hneurons_utils import paper

SIX_MODELS = ["Mistral-7B-v0.3", "Mistral-Small-3.1-24B", "Gemma-3-4B", "Gemma-3-27B",
              "Llama-3.1-8B", "Llama-3.3-70B"]


def test_reference_parses_and_names_its_source():
    """The JSON loads and says which paper, version and URL it transcribes."""
    ref = paper.load_reference()
    assert ref["source"]["arxiv"] == "2512.01797"
    assert ref["source"]["version"] == "v2"
    assert ref["source"]["url"].startswith("https://arxiv.org/")
    assert ref["models"] == SIX_MODELS


def test_every_model_has_all_four_datasets():
    """Table 1 has a complete H-Neuron / random pair for each model and dataset."""
    rows = paper.load_reference()["table1"]["rows"]
    assert set(rows) == set(SIX_MODELS)
    for model, row in rows.items():
        assert set(paper.DATASETS) <= set(row), model
        assert row["ratio_permille"] > 0


def test_accuracies_are_percentages():
    """Accuracies are stored in percent (0-100), not as fractions: a mixed unit would hide here."""
    df = paper.table1_frame()
    for col in ("h_neurons", "random"):
        assert df[col].between(0, 100).all()
        assert df[col].max() > 1.0  # percent, so at least one value exceeds 1
    assert (df["ratio_permille"] < 1.0).all()  # the paper: H-Neurons are under 1 per mille


def test_h_neurons_differ_from_random_in_every_row():
    """A row whose two accuracies coincide would signal a copied cell."""
    df = paper.table1_frame()
    assert (df["h_neurons"] != df["random"]).all()


def test_h_neurons_beat_random_except_the_one_printed_exception():
    """H-Neurons win every cell but Llama-3.1-8B / NonExist, as printed; a swapped pair would fail."""
    df = paper.table1_frame()
    losers = df[df["h_neurons"] <= df["random"]]
    assert [(r.model, r.dataset) for r in losers.itertuples()] == [("Llama-3.1-8B", "nonexist")]
    exceptions = paper.load_reference()["table1"]["known_exceptions"]
    assert [(e["model"], e["dataset"]) for e in exceptions] == [("Llama-3.1-8B", "nonexist")]


def test_table1_spot_values():
    """Two cells checked by hand against the paper (Mistral-7B TriviaQA, Llama-3.3-70B NonExist)."""
    df = paper.table1_frame().set_index(["model", "dataset"])
    assert df.loc[("Mistral-7B-v0.3", "triviaqa"), "h_neurons"] == 78.4
    assert df.loc[("Mistral-7B-v0.3", "triviaqa"), "random"] == 61.7
    assert df.loc[("Llama-3.3-70B", "nonexist"), "h_neurons"] == 96.7
    assert df.loc[("Mistral-7B-v0.3", "triviaqa"), "ratio_permille"] == 0.35


def test_table1_frame_columns_and_source():
    """The long frame has the documented columns, 24 rows and a paper label on each row."""
    df = paper.table1_frame()
    assert list(df.columns) == ["model", "dataset", "h_neurons", "random", "ratio_permille", "source"]
    assert len(df) == 6 * 4
    assert (df["source"] == "paper (Gao et al. 2025, Table 1)").all()


def test_backward_auroc_frame_keeps_figure_only_values_empty():
    """Figure 4(a) values are figure-only (NaN); only the text's lower bounds are filled."""
    df = paper.backward_auroc_frame()
    assert list(df.columns) == ["model", "dataset", "auroc", "auroc_above", "source"]
    assert len(df) == 6 * 3
    assert df["auroc"].isna().all()
    bound = df.set_index(["model", "dataset"])["auroc_above"]
    assert bound[("Mistral-Small-3.1-24B", "triviaqa")] == 86.0
    assert bound[("Gemma-3-4B", "bioasq")] == 50.0
    assert (df["source"].str.startswith("paper")).all()


def test_drift_frame_matches_the_text():
    """Figure 4(b): Mistral-Small avg ~0.97, Gemma/Llama > 0.58 with p < 0.001, Mistral-7B unknown."""
    df = paper.drift_frame().set_index("model")
    assert list(df.columns) == ["avg_rank", "avg_rank_approx", "avg_rank_above", "p_value", "source"]
    assert df.loc["Mistral-Small-3.1-24B", "avg_rank"] == pytest.approx(0.97)
    assert df.loc["Mistral-Small-3.1-24B", "avg_rank_approx"]
    for m in ("Gemma-3-4B", "Gemma-3-27B", "Llama-3.1-8B", "Llama-3.3-70B"):
        assert df.loc[m, "avg_rank_above"] == 0.58
        assert df.loc[m, "p_value"] == "< 0.001"
    assert math.isnan(df.loc["Mistral-7B-v0.3", "avg_rank"])


def test_figure3_alpha_range():
    """The scaling factor spans [0, 3] (Eq. 5)."""
    assert paper.figure3_alpha_range() == (0.0, 3.0)


def test_load_reference_returns_an_independent_copy():
    """Editing the returned dict must not change what the next caller sees."""
    ref = paper.load_reference()
    ref["table1"]["rows"]["Gemma-3-4B"]["triviaqa"]["h_neurons"] = -1
    assert paper.load_reference()["table1"]["rows"]["Gemma-3-4B"]["triviaqa"]["h_neurons"] == 76.9


def test_missing_file_names_the_path(tmp_path):
    """A missing reference file raises an error that names the file."""
    missing = tmp_path / "nope.json"
    with pytest.raises(paper.PaperReferenceError, match="nope.json"):
        paper.load_reference(missing)


def test_invalid_json_names_line(tmp_path):
    """Broken JSON is reported with its file and line."""
    bad = tmp_path / "bad.json"
    bad.write_text('{"source": {}\n,,}')
    with pytest.raises(paper.PaperReferenceError, match=r"bad.json.*line 2"):
        paper.load_reference(bad)


def test_incomplete_table_is_rejected(tmp_path):
    """A model without a NonExist cell is rejected with the model and dataset named."""
    ref = paper.load_reference()
    del ref["table1"]["rows"]["Gemma-3-27B"]["nonexist"]
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(ref))
    with pytest.raises(paper.PaperReferenceError, match="Gemma-3-27B.*nonexist"):
        paper.table1_frame(broken)


def test_sparsity_reading_against_the_papers_ratios():
    """Table 1's ratios run from 0.01 to 0.35 per mille: inside, below 1 per mille but outside,
    above 1 per mille, and none selected each get their own reading."""
    assert paper.sparsity_reading(18, 0.35) == "within the paper's range"
    assert paper.sparsity_reading(40, 0.8) == "sparse (under 1 per mille), but outside the paper's range"
    assert paper.sparsity_reading(145, 3.933) == "not sparse: more than 1 per mille"
    assert paper.sparsity_reading(0, 0.0) == "no H-Neuron selected"
    assert paper.sparsity_reading(1, 0.027) == ("within the paper's range, but from a single neuron: "
                                                "too few for the ratio (or any test on them) to say much")
    assert "only 3 neurons" in paper.sparsity_reading(3, 0.08)


def test_dataset_label_names_the_papers_sets_and_keeps_other_keys():
    assert [paper.dataset_label(k) for k in ("triviaqa", "nq_open", "bioasq", "nonexist", "medical")] == [
        "TriviaQA", "NQ-Open", "BioASQ", "NonExist", "medical"]


def test_table1_margins_pair_each_models_two_rows():
    """The margin is H-Neurons minus random within one model's row, never across models."""
    m = paper.table1_margins().set_index(["model", "dataset"])
    assert m.loc[("Llama-3.1-8B", "nonexist"), "margin"] == pytest.approx(43.1 - 50.6)
    assert m.loc[("Gemma-3-27B", "nonexist"), "margin"] == pytest.approx(95.9 - 58.2)
    assert len(m) == len(SIX_MODELS) * len(paper.DATASETS)


def test_margin_range_text_names_the_losing_model():
    """NonExist: the unpaired ranges (43.1-96.7 vs 50.6-80.9) would hide that one model loses;
    the per-model margins show it, and name it."""
    assert paper.margin_range_text("nonexist") == (
        "accuracy, H-Neurons minus random per model: -7.5 to +37.7 pp; H-Neurons ahead on 5 of 6 "
        "models (behind on Llama-3.1-8B)")
    tq = paper.margin_range_text("triviaqa")
    assert "ahead on 6 of 6 models" in tq and "behind" not in tq
    with pytest.raises(KeyError, match="not a dataset"):
        paper.margin_range_text("mine")


def test_margin_range_text_reads_an_edited_reference(tmp_path):
    """The text follows the reference file: a tie counts as neither ahead nor behind."""
    ref = paper.load_reference()
    for model in SIX_MODELS:
        ref["table1"]["rows"][model]["bioasq"] = {"h_neurons": 60.0, "random": 60.0}
    ref["table1"]["rows"]["Gemma-3-4B"]["bioasq"] = {"h_neurons": 50.0, "random": 62.5}
    path = tmp_path / "ref.json"
    path.write_text(json.dumps(ref))
    assert paper.margin_range_text("bioasq", path) == (
        "accuracy, H-Neurons minus random per model: -12.5 to +0.0 pp; H-Neurons ahead on 0 of 6 "
        "models (behind on Gemma-3-4B)")
