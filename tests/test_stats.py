"""Metrics and their intervals (Table 1's accuracy and AUROC, rates in Section 3)."""

from __future__ import annotations

import numpy as np
import pytest

from hneurons_utils.stats import (accuracy, auroc, bootstrap_ci, detection_metrics, mean_spread,
                                  paired_bootstrap_ci, verdict_agreement, wilson_ci)


def test_auroc_matches_sklearn_with_ties():
    """AUROC equals scikit-learn's, ties included; one class only gives NaN, not an error."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = np.round(rng.normal(size=200) + y, 1)
    assert auroc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert np.isnan(auroc(np.ones(5), np.arange(5)))


def test_bootstrap_ci_brackets_and_narrows():
    """The interval contains the point estimate and shrinks as n grows; stratified keeps balance."""
    rng = np.random.default_rng(1)

    def width(n):
        y = np.repeat([0, 1], n)
        s = rng.normal(size=2 * n) + y
        lo, hi = bootstrap_ci(auroc, y, s, n_boot=300, seed=0)
        assert lo <= auroc(y, s) <= hi
        return hi - lo

    assert width(200) < width(20)
    seen = []
    bootstrap_ci(lambda yt, yp: seen.append(yt.mean()) or 0.0, np.repeat([0, 1], 5),
                 np.zeros(10), n_boot=20)
    assert set(seen) == {0.5}


def test_detection_metrics_threshold_and_counts():
    """Accuracy uses score > threshold as 'hallucinated'; counts are reported."""
    y = np.array([1, 1, 0, 0])
    d = detection_metrics(y, np.array([2.0, -1.0, -3.0, 0.5]), n_boot=50)
    assert d["accuracy"] == 0.5 and d["auroc"] == 0.75
    assert (d["n"], d["n_pos"], d["n_neg"]) == (4, 2, 2)
    assert d["flagged"] == 0.5  # 2.0 and 0.5 lie above the threshold
    assert detection_metrics(y, np.array([-2.0, -1.0, -3.0, -0.5]), n_boot=0)["flagged"] == 0.0
    assert accuracy(y, y) == 1.0
    with pytest.raises(ValueError, match="0/1"):
        detection_metrics(np.array([2, 0]), np.zeros(2))
    with pytest.raises(ValueError, match="2 of 4 scores are NaN or infinite"):  # never a silent 0
        detection_metrics(y, np.array([np.nan, np.inf, -3.0, 0.5]))


def test_wilson_ci_known_values():
    """Wilson interval for 0/10 and 5/10 (textbook values) and a clear error for k > n."""
    lo, hi = wilson_ci(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = wilson_ci(5, 10)
    assert (lo, hi) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    with pytest.raises(ValueError):
        wilson_ci(11, 10)


def test_mean_spread():
    """Mean and sample SD over seeds, NaNs ignored."""
    d = mean_spread([0.5, 0.7, np.nan])
    assert d["mean"] == pytest.approx(0.6) and d["std"] == pytest.approx(np.sqrt(0.02)) and d["n"] == 2


def test_wilson_interval_contains_the_rate_exactly_at_the_ends():
    """At 0% and 100% the bound equals the rate exactly (a rounding residue would give a
    negative error bar)."""
    from hneurons_utils.stats import wilson_ci

    for n in (1, 3, 7, 24, 48, 101):
        assert wilson_ci(0, n)[0] == 0.0 and wilson_ci(n, n)[1] == 1.0
        for k in range(n + 1):
            lo, hi = wilson_ci(k, n)
            assert lo <= k / n <= hi


def test_item_bootstrap_means_resamples_items_and_skips_unscored():
    """Column means skip NaN (unscored) entries; replicates resample rows, paired across calls."""
    from hneurons_utils.stats import item_bootstrap_means

    v = np.array([[1.0, 0.0], [0.0, np.nan], [1.0, 1.0], [0.5, 1.0]])
    point, boot = item_bootstrap_means(v, n_boot=400, seed=1)
    assert point == pytest.approx([0.625, 2 / 3])
    assert boot.shape == (400, 2) and np.nanmin(boot) >= 0 and np.nanmax(boot) <= 1
    # the same draws give paired replicates: a copy of the data gives identical replicates
    draws = np.random.default_rng(0).multinomial(4, [0.25] * 4, size=50)
    _, b1 = item_bootstrap_means(v, draws=draws)
    _, b2 = item_bootstrap_means(v.copy(), draws=draws)
    np.testing.assert_array_equal(b1, b2)
    # all items equal: zero-width interval (the documented limit of the percentile bootstrap)
    _, flat = item_bootstrap_means(np.ones((5, 1)), n_boot=100)
    assert np.ptp(flat) == 0
    with pytest.raises(ValueError, match="draws cover 3 items"):
        item_bootstrap_means(v, draws=np.ones((2, 3)))


def test_column_aurocs_match_auroc_column_by_column():
    """The one-rank-transform AUROC of every column equals :func:`auroc` per column, ties included;
    one class only gives NaN; a shape mismatch is an error."""
    from hneurons_utils.stats import auroc, column_aurocs

    rng = np.random.default_rng(0)
    X = np.round(rng.normal(size=(40, 7)), 1)  # rounding makes ties
    X[:, 3] = 1.0  # a constant column: 0.5
    y = rng.integers(0, 2, 40)
    got = column_aurocs(X, y)
    assert got == pytest.approx([auroc(y, X[:, j]) for j in range(7)])
    assert got[3] == 0.5
    assert column_aurocs(X, y, chunk=3) == pytest.approx(got)  # chunks of columns, same answer
    assert np.isnan(column_aurocs(X, np.ones(40, int))).all()
    with pytest.raises(ValueError, match="one row per label"):
        column_aurocs(X, y[:-1])


def test_bootstrap_ci_keeps_its_resampling_stream():
    """The shared resampler draws what the original loop drew: same seed, same interval."""
    rng = np.random.default_rng(3)
    y = np.repeat([0, 1], [7, 9])
    s = rng.normal(size=16) + y
    gen = np.random.default_rng(5)
    groups = [np.flatnonzero(y == c) for c in (0, 1)]
    stats = [auroc(y[i], s[i]) for i in (np.concatenate([gen.choice(g, size=g.size, replace=True)
                                                          for g in groups]) for _ in range(200))]
    assert bootstrap_ci(auroc, y, s, n_boot=200, seed=5) == pytest.approx(
        tuple(np.nanquantile(stats, [0.025, 0.975])))


def test_paired_bootstrap_ci_of_a_difference():
    """The difference of two scores on the same examples, resampled together: identical scores
    give exactly 0; a clearly better score gives an interval above 0; replicates are paired."""
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 30)
    good = y + 0.3 * rng.normal(size=60)
    noise = rng.normal(size=60)
    same = paired_bootstrap_ci(auroc, y, good, good, n_boot=200)
    assert same["diff"] == 0.0 and same["diff_ci"] == [0.0, 0.0]  # paired: no noise at all
    d = paired_bootstrap_ci(auroc, y, good, noise, n_boot=300, seed=1)
    assert d["a"] == pytest.approx(auroc(y, good)) and d["b"] == pytest.approx(auroc(y, noise))
    assert d["diff"] == pytest.approx(d["a"] - d["b"]) and d["diff_ci"][0] > 0
    assert d["n_boot"] == 300 and d["ci_level"] == 0.95
    # a monotone transform of a score has the same AUROC on every resample: difference 0
    assert paired_bootstrap_ci(auroc, y, noise, np.exp(noise), n_boot=50)["diff_ci"] == [0.0, 0.0]
    none = paired_bootstrap_ci(auroc, np.ones(4, dtype=int), np.arange(4.0), np.arange(4.0), n_boot=20)
    assert np.isnan(none["diff"]) and all(np.isnan(none["diff_ci"]))  # one class: undefined
    with pytest.raises(ValueError, match="differ in length"):
        paired_bootstrap_ci(auroc, y, good, good[:10])


def test_verdict_agreement_precision_recall_and_empty():
    """Precision over the judge's yeses, recall over the human's; no yes at all gives nan, not 0."""
    a = verdict_agreement([(True, True), (True, False), (False, True), (False, False), (False, False)])
    assert (a["n_used"], a["judge_yes"], a["human_yes"], a["human_no"], a["both_yes"]) == (5, 2, 2, 3, 1)
    assert (a["precision"], a["recall"], a["agreement"]) == (0.5, 0.5, 0.6)
    assert a["precision_ci"] == wilson_ci(1, 2)
    e = verdict_agreement([(False, False)])
    assert np.isnan(e["precision"]) and np.isnan(e["recall"]) and e["agreement"] == 1.0


def test_column_means_skip_unscored_entries_and_give_nan_for_an_empty_column():
    import warnings

    from hneurons_utils.stats import column_means

    v = np.array([[1.0, np.nan, np.nan], [0.0, 1.0, np.nan], [1.0, 0.0, np.nan]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an all-NaN column warns nothing
        m = column_means(v)
    assert m[0] == pytest.approx(2 / 3) and m[1] == 0.5 and np.isnan(m[2])


def test_a_level_outside_0_1_is_refused():
    """95 for 0.95 would give Wilson (0, 1) and percentile nonsense."""
    with pytest.raises(ValueError, match="0.95, not 95"):
        wilson_ci(3, 10, level=95)
    with pytest.raises(ValueError, match="between 0 and 1"):
        bootstrap_ci(accuracy, np.array([0, 1, 0, 1]), np.array([0, 1, 1, 1]), level=0)
    assert wilson_ci(3, 10, level=0.9)[0] > wilson_ci(3, 10, level=0.99)[0]


def test_labels_and_predictions_of_different_lengths_are_refused():
    """numpy would broadcast one prediction over four labels and report an accuracy."""
    with pytest.raises(ValueError, match="4 labels but 1 predictions"):
        accuracy([0, 1, 0, 1], [1])
    with pytest.raises(ValueError, match="4 labels but 3 scores"):
        auroc([0, 1, 0, 1], [0.1, 0.2, 0.3])


def test_an_undefined_p_value_reads_undefined_not_nan():
    from hneurons_utils.wording import p_value

    assert p_value(float("nan")) == "undefined" and p_value(0.0123) == "0.012"


def test_ordinals_take_their_english_suffix():
    """Percentiles are printed as ordinals: 1st, 2nd, 3rd, 11th-13th, 21st, 72nd, 97th."""
    from hneurons_utils.wording import ordinal

    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 72, 97.4, 100, 111, 112)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "72nd", "97th", "100th",
        "111th", "112th"]


def test_mcnemar_exact_is_the_two_sided_binomial_test_of_the_discordant_pairs():
    from hneurons_utils.stats import mcnemar_exact
    assert mcnemar_exact(11, 2) == pytest.approx(2 * (1 + 13 + 78) / 2 ** 13)
    assert mcnemar_exact(2, 11) == mcnemar_exact(11, 2)
    assert mcnemar_exact(0, 0) == 1.0 and mcnemar_exact(3, 3) == 1.0
    with pytest.raises(ValueError, match="discordant"):
        mcnemar_exact(-1, 2)
