"""Tests for hneurons_utils.behaviour: compliance arithmetic, slopes, what the chapter shows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hneurons_utils import behaviour


# ---------------------------------------------------------------- compliance arithmetic


def _frame(rows):
    df = pd.DataFrame(rows, columns=["bench", "set", "alpha", "item_id", "complied"])
    df["group"] = df["set"].map(lambda s: "random" if s.startswith("random") else s)
    return df


def test_compliance_table_excludes_unreadable_and_shares_baseline():
    """Items are the unit: NaN labels are excluded and counted, random seeds of one item are
    averaged (not counted as two items), alpha=1 rows join every curve."""
    df = _frame([("falseqa", "none", 1.0, "a", 1.0), ("falseqa", "none", 1.0, "b", 0.0),
                 ("falseqa", "h_neurons", 3.0, "a", 1.0), ("falseqa", "h_neurons", 3.0, "b", np.nan),
                 ("falseqa", "random-0", 3.0, "a", 0.0), ("falseqa", "random-1", 3.0, "a", 1.0)])
    t = behaviour.compliance_table(df).set_index(["group", "alpha"])
    assert t.loc[("h_neurons", 3.0), ["k", "n_scored", "n_excluded"]].tolist() == [1, 1, 1]
    assert t.loc[("h_neurons", 1.0), "rate"] == 0.5 and t.loc[("random", 1.0), "rate"] == 0.5
    # two seeds of item "a": 2 responses, 1 item, its rate the mean over the seeds
    assert t.loc[("random", 3.0), ["k", "n_responses", "n_scored"]].tolist() == [1, 2, 1]
    assert t.loc[("random", 3.0), "rate"] == 0.5
    assert t.loc[("random", 3.0), ["seed_min", "seed_max"]].tolist() == [0.0, 1.0]
    assert np.isnan(t.loc[("h_neurons", 3.0), "seed_min"])
    assert (t.ci_lo <= t.rate).all() and (t.rate <= t.ci_hi).all()


def test_compliance_table_bootstraps_items_not_seeds():
    """The interval resamples items: 10 seeds of one item do not narrow it as 10 items would."""
    rows = [("falseqa", "none", 1.0, f"i{i}", float(i % 2)) for i in range(4)]
    rows += [("falseqa", f"random-{s}", 0.0, f"i{i}", float(i % 2)) for i in range(4) for s in range(10)]
    t = behaviour.compliance_table(_frame(rows), n_boot=500, seed=0).set_index(["group", "alpha"])
    r0, r1 = t.loc[("random", 0.0)], t.loc[("random", 1.0)]
    assert r0.n_scored == 4 and r0.n_responses == 40 and r0.rate == 0.5
    # each item is identical across seeds, so the seeds add no information: same interval
    assert (r0.ci_lo, r0.ci_hi) == pytest.approx((r1.ci_lo, r1.ci_hi))
    assert r0.ci_hi - r0.ci_lo > 0.4


def test_random_control_is_the_mean_of_its_sets_when_they_score_different_items():
    """Set 0 scores items a (complies) and b (not), set 1 scores b (not) and c (complies): each
    set's rate is 50%. Averaging each item over the sets first would give 2/3, above both sets;
    the control's rate and slope are the mean of the sets', inside their range."""
    rows = [("sycophancy", "none", 1.0, i, 0.5) for i in "abc"]
    rows += [("sycophancy", "h_neurons", 3.0, i, 1.0) for i in "abc"]
    rows += [("sycophancy", "random-0", 3.0, "a", 1.0), ("sycophancy", "random-0", 3.0, "b", 0.0),
             ("sycophancy", "random-0", 3.0, "c", np.nan), ("sycophancy", "random-1", 3.0, "a", np.nan),
             ("sycophancy", "random-1", 3.0, "b", 0.0), ("sycophancy", "random-1", 3.0, "c", 1.0)]
    rows += [(b, s, 0.0, i, c) for b, s, _, i, c in rows if s.startswith("random")]  # flat at 50%
    df = _frame(rows)
    t = behaviour.compliance_table(df, n_boot=200).set_index(["group", "alpha"]).loc[("random", 3.0)]
    assert t.seed_min == t.seed_max == 0.5
    assert t.rate == pytest.approx(0.5) and t.n_scored == 3
    assert t.ci_lo <= t.rate <= t.ci_hi
    s = behaviour.slope_table(df, n_boot=200).set_index("group")
    assert s.loc["random", "slope_pp"] == pytest.approx(0.0, abs=1e-9)
    assert s.loc["random", "set_min"] == pytest.approx(0.0, abs=1e-9) == s.loc["random", "set_max"]
    assert not np.signbit(s.loc["random", ["set_min", "set_max"]].to_numpy(float)).any()  # no -0.00
    assert s.loc["diff", "slope_pp"] == pytest.approx(25.0)  # H: 50% -> 100% over alpha 1 -> 3


def test_slope_table_recovers_a_known_slope_and_difference():
    """A curve 0%, 50%, 100% over alpha 0, 1, 2 has slope 50 pp; a flat control gives diff 50."""
    rows = []
    for i in range(10):
        rows += [("jailbreak", "none", 1.0, f"i{i}", float(i < 5)),
                 ("jailbreak", "h_neurons", 0.0, f"i{i}", 0.0), ("jailbreak", "h_neurons", 2.0, f"i{i}", 1.0),
                 ("jailbreak", "random-0", 0.0, f"i{i}", float(i < 5)),
                 ("jailbreak", "random-0", 2.0, f"i{i}", float(i < 5))]
    s = behaviour.slope_table(_frame(rows), n_boot=200, seed=0).set_index("group")
    assert s.loc["h_neurons", "slope_pp"] == pytest.approx(50.0)
    assert s.loc["random", "slope_pp"] == pytest.approx(0.0, abs=1e-9)
    assert s.loc["diff", "slope_pp"] == pytest.approx(50.0)
    assert s.loc["diff", "ci_lo"] > 0  # the paired interval excludes zero here
    assert (s.ci_lo <= s.slope_pp + 1e-9).all() and (s.slope_pp <= s.ci_hi + 1e-9).all()


def test_slope_diff_uses_the_controls_alphas():
    """H minus random is fitted on the control's alphas only, not on the H-Neurons' finer grid."""
    rows = []
    for i in range(6):  # H: 0% at alpha 0, 100% at 0.5..3 (steep start); random: flat 0%
        rows += [("faitheval", "none", 1.0, f"i{i}", 1.0), ("faitheval", "h_neurons", 0.0, f"i{i}", 0.0)]
        rows += [("faitheval", "h_neurons", a, f"i{i}", 1.0) for a in (0.5, 1.5, 2.0, 3.0)]
        rows += [("faitheval", "random-0", a, f"i{i}", 0.0) for a in (0.0, 3.0)]
    s = behaviour.slope_table(_frame(rows), n_boot=50, seed=0).set_index("group")
    assert s.loc["h_neurons", "alphas"] == "0, 0.5, 1, 1.5, 2, 3"
    assert s.loc["diff", "alphas"] == s.loc["h_neurons_control_grid", "alphas"] == "0, 1, 3"
    # on alphas 0, 1, 3 the H curve is 0, 100, 100 %, the random one 0, 100, 0 %
    h3 = np.polyfit([0, 1, 3], [0, 100, 100], 1)[0]
    r3 = np.polyfit([0, 1, 3], [0, 100, 0], 1)[0]
    assert s.loc["h_neurons_control_grid", "slope_pp"] == pytest.approx(h3)
    assert s.loc["diff", "slope_pp"] == pytest.approx(h3 - r3)
    assert s.loc["h_neurons", "slope_pp"] != pytest.approx(h3)  # the full-grid fit differs


def test_slope_diff_refits_the_control_on_the_shared_alphas():
    """A control alpha the H-Neurons lack (4) is left out of both curves of the difference."""
    rows = []
    for i in range(6):  # H: 0% at 0, 100% at 3; random: 0% at 0 and 3, 100% at 4
        rows += [("falseqa", "none", 1.0, f"i{i}", 1.0), ("falseqa", "h_neurons", 0.0, f"i{i}", 0.0),
                 ("falseqa", "h_neurons", 3.0, f"i{i}", 1.0)]
        rows += [("falseqa", "random-0", a, f"i{i}", float(a == 4.0)) for a in (0.0, 3.0, 4.0)]
    s = behaviour.slope_table(_frame(rows), n_boot=50, seed=0).set_index("group")
    assert s.loc["random", "alphas"] == "0, 1, 3, 4"
    assert s.loc["diff", "alphas"] == "0, 1, 3"
    h = np.polyfit([0, 1, 3], [0, 100, 100], 1)[0]
    r = np.polyfit([0, 1, 3], [0, 100, 0], 1)[0]
    assert s.loc["diff", "slope_pp"] == pytest.approx(h - r)


def test_common_items_removes_a_slope_made_by_which_items_are_scored():
    """Items 0-4 always comply, 5-9 never; the first five are unscored at alpha 3 for the
    H-Neurons, so the all-items curve falls while no item changed. On the items scored at every
    point the slope is 0. A random-control item counts as scored if one of its seeds is."""
    rows = []
    for i in range(10):
        c = float(i < 5)
        rows += [("sycophancy", "none", 1.0, f"i{i}", c), ("sycophancy", "h_neurons", 0.0, f"i{i}", c),
                 ("sycophancy", "h_neurons", 3.0, f"i{i}", np.nan if i < 5 else c),
                 ("sycophancy", "random-0", 0.0, f"i{i}", np.nan if i == 7 else c),
                 ("sycophancy", "random-1", 0.0, f"i{i}", c),
                 ("sycophancy", "random-0", 3.0, f"i{i}", c), ("sycophancy", "random-1", 3.0, f"i{i}", c)]
    rows += [("falseqa", "none", 1.0, "f0", 1.0), ("falseqa", "h_neurons", 0.0, "f0", np.nan)]
    df = _frame(rows)
    common = behaviour.common_items(df)
    assert sorted(common[common.bench == "sycophancy"].item_id.unique()) == [f"i{i}" for i in range(5, 10)]
    assert "falseqa" not in set(common.bench)  # its only item is unscored at alpha 0
    full_t, same_t = (behaviour.slope_table(d, n_boot=100, seed=0) for d in (df, common))
    full, same = (t.set_index(["bench", "group"]) for t in (full_t, same_t))
    assert full.loc[("sycophancy", "h_neurons"), "slope_pp"] < -10
    assert same.loc[("sycophancy", "h_neurons"), "slope_pp"] == pytest.approx(0.0, abs=1e-9)
    assert same.loc[("sycophancy", "diff"), "n_items"] == 5
    # n_items is what the bootstrap resamples; n_scored what one alpha actually scores
    assert full.loc[("sycophancy", "h_neurons"), "n_items"] == 10
    assert full.loc[("sycophancy", "h_neurons"), "n_scored"] == "5-10"
    assert same.loc[("sycophancy", "h_neurons"), "n_scored"] == "5"
    # the difference counts items both curves score (random: scored by one of its sets)
    assert full.loc[("sycophancy", "diff"), "n_scored"] == "5-10"
    text = behaviour.common_items_reading(full_t, same_t, min_items=5)
    assert "5 of 10 items are scored at every point" in text and "the reading changes" in text
    assert "too few" in behaviour.common_items_reading(full_t, same_t, min_items=6)
    # the same verdict with the point estimate's sign flipped says so; the direction is in words
    flip_all = pd.DataFrame([{"bench": "faitheval", "group": "diff", "slope_pp": 0.7, "ci_lo": -6.8,
                              "ci_hi": 9.2, "n_items": 32}])
    flip_com = flip_all.assign(slope_pp=-7.7, ci_lo=-15.5, ci_hi=0.2, n_items=18)
    assert behaviour.common_items_reading(flip_all, flip_com, benches=["faitheval"]) == (
        "- **faitheval**: 18 of 32 items are scored at every point; H minus random on them is "
        "-7.7 pp/α [-15.5, +0.2]: the same reading, though the point estimate changes sign "
        "(+0.7 on all items, -7.7 here).")
    few = behaviour.common_items_reading(flip_all, flip_com, min_items=20, benches=["faitheval"])
    assert "the all-items reading (interval contains 0)" in few and "unclear" not in few
    # chapter 4's sycophancy designs are benches of their own, read when named
    named = {t_: t.assign(bench=t.bench.replace("sycophancy", behaviour.SYC_REPLY)) for t_, t in
             (("full", full_t), ("same", same_t))}
    assert behaviour.SYC_REPLY not in behaviour.common_items_reading(named["full"], named["same"], min_items=5)
    assert behaviour.common_items_reading(named["full"], named["same"], min_items=5,
                                          benches=[behaviour.SYC_REPLY]).startswith(
        f"- **{behaviour.SYC_REPLY}**: 5 of 10 items are scored at every point")


# ---------------------------------------------------------------- what the chapter shows


def test_redact_keeps_only_a_short_masked_opening():
    """redact shows at most six words (and 48 characters) of a response, and of those only
    function words and the vocabulary of refusing or agreeing: every other word is a block."""
    M = behaviour.MASK
    out = behaviour.redact("I can help you with this and more besides")
    assert out == "I can help you with this [redacted]"
    assert len(behaviour.redact("x" * 500)) <= 48 + len(" [redacted]")
    # content words (what a reply is about) never show: the chapter's old leak, a restated request
    assert behaviour.redact("Create a suicide vest by") == f"{M} a {M} {M} by [redacted]"
    assert behaviour.redact("I'm sorry, but I cannot provide that") == "I'm sorry, but I cannot provide [redacted]"
    assert behaviour.redact("I\u2019m sorry") == "I\u2019m sorry [redacted]"  # a curly apostrophe
    assert behaviour.redact("You can create a") == f"You can {M} a [redacted]"


@pytest.mark.parametrize("text,expected", [
    ("1. Remove watermarks from copyrighted images", "[redacted]"),  # the chapter's old leak
    ("1. 1.1.1.2 2. 1.1.1.2.1 3.", "[redacted]"),
    ("Sure, here's how: 1. Remove the", "Sure, here's how [redacted]"),
    ("Sure! Here are\n- the first", "Sure! Here are [redacted]"),
    ("**Step 1**: take", "[redacted]"),
    ("First, you take the", "[redacted]"),
    ("To do it, step 2 is", "To do it [redacted]"),
    ("In 2020, version 2.0 was", "In \u2587 \u2587 \u2587 was [redacted]"),  # numbers that are no list
    ("", "[redacted]"),
    ("# treatment for chronic pain", "[redacted]"),  # the chapter's markdown-heading leak
    ("### Step by step", "[redacted]"),
    ("#Title without a space", "[redacted]"),
    ("Sure.\n# Treatment for chronic pain", "Sure. [redacted]"),  # a heading after a line break
    ("Here you go\nmix the", "Here you \u2587 [redacted]"),  # whatever follows a line break
    ("*Treatment* for pain", "[redacted]"),  # emphasis
    ("> Quoted instructions", "[redacted]"),
    ("| step | what |", "[redacted]"),
    ("```bash\nrm", "[redacted]"),
    ("a) take the", "[redacted]"),  # lettered and roman lists
    ("(ii) take the", "[redacted]"),
    ("+ take the", "[redacted]"),
    ("\u2013 take the", "[redacted]"),  # an en-dash bullet
    ("Sure, step one is to", "Sure [redacted]"),
    ("Okay. Next, you take", "Okay. [redacted]"),
    ("Mr. Blonde would say", "\u2587 \u2587 would \u2587 [redacted]"),  # an abbreviation is no list
])
def test_redact_cuts_before_anything_that_could_start_the_help(text, expected):
    """No list item, step or text after a colon is ever shown, even within the word budget."""
    assert behaviour.redact(text) == expected


def _labelled(bench="faitheval"):
    rows = []
    for i, (lo, hi) in enumerate([(0.0, 1.0), (1.0, 1.0), (0.0, np.nan)]):
        for a, v in [(0.0, lo), (3.0, hi)]:
            rows.append({"bench": bench, "set": "h_neurons", "group": "h_neurons", "alpha": a,
                         "item_id": f"i{i}", "complied": v, "response": f"reply {i} at {a:g}",
                         "meta": {"question": f"Question {i}?"}})
    return pd.DataFrame(rows)


def test_side_by_side_shows_changed_items_first_and_checks_alphas():
    """Items whose label changed come first; default alphas are the grid's ends; a missing alpha
    is named with the ones the sweep has."""
    t = behaviour.side_by_side(_labelled(), "faitheval", n=2)
    assert list(t.columns) == ["question", "α = 0", "α = 3"]
    assert t.question.iloc[0] == "Question 0?"
    assert t["α = 0"].iloc[0].startswith("[does not comply] reply 0")
    assert t["α = 3"].iloc[0].startswith("[complies]")
    with pytest.raises(ValueError, match=r"alpha\(s\) \[2.0\].*\[0.0, 3.0\]"):
        behaviour.side_by_side(_labelled(), "faitheval", alphas=(0.0, 2.0))
    lab = _labelled()
    r0 = lab[(lab.item_id == lab.item_id.iloc[0])].response.tolist()
    hand = [{"response": r, "label": "comply"} for r in r0]  # by hand every reply of item 0 complies
    th = behaviour.side_by_side(lab, "faitheval", n=2, hand=hand)
    assert th["α = 0"].iloc[0].startswith("[does not comply; by hand: comply, the rule errs] reply 0")
    assert th["α = 3"].iloc[0].startswith("[complies; by hand: comply]")


def test_findings_table_puts_our_slopes_beside_each_finding():
    """Each finding gets our H slope and H-minus-random cells; "all" lists every benchmark; no -0.0."""
    slopes = pd.DataFrame([
        {"bench": "faitheval", "group": "h_neurons", "slope_pp": 5.64, "ci_lo": -4.36, "ci_hi": 15.3},
        {"bench": "faitheval", "group": "diff", "slope_pp": -0.01, "ci_lo": -0.04, "ci_hi": 2.0}])
    findings = [{"benchmark": "faitheval", "claim": "c1", "where": "w1"},
                {"benchmark": "all", "claim": "c2", "where": "w2"},
                {"benchmark": "all", "claim": "c3", "where": "w3", "ours_note": "one model here"}]
    t = behaviour.findings_table(findings, slopes)
    assert t["ours: H-Neurons slope (pp/α)"].iloc[2] == "one model here"  # no slopes for a size trend
    assert t["ours: H minus random (pp/α, control's alphas)"].iloc[2] == ""
    assert t["ours: H-Neurons slope (pp/α)"].iloc[0] == "faitheval: +5.6 [-4.4, +15.3]"
    assert t["ours: H minus random (pp/α, control's alphas)"].iloc[0] == "faitheval: +0.0 [-0.04, +2.0]"
    assert "falseqa: n/a" in t["ours: H-Neurons slope (pp/α)"].iloc[1] and t["paper (Gao et al. 2025)"].iloc[1] == "c2"


def test_findings_table_marks_shape_claims_and_adds_notes():
    """A claim about a curve's shape is marked as not tested by a slope, with the computed shape
    check where a rate table is given; notes are added for every benchmark a finding covers."""
    slopes = pd.DataFrame([{"bench": b, "group": "h_neurons", "slope_pp": 1.0, "ci_lo": -1.0, "ci_hi": 3.0}
                           for b in ("sycophancy", "jailbreak")])
    findings = [{"benchmark": "sycophancy", "where": "w",
                 "claim": "Gemma-3-4B first shows increased compliance that then declines."},
                {"benchmark": "jailbreak", "where": "w", "claim": "fluctuations (not strictly monotonic)."},
                {"benchmark": "all", "where": "w", "claim": "A consistent positive correlation."}]
    rows = [("sycophancy", "h_neurons", a, f"i{i}", float(i < k)) for a, k in [(0.0, 1), (1.0, 3), (3.0, 0)]
            for i in range(4)]
    table = behaviour.compliance_table(_frame(rows), 50)
    t = behaviour.findings_table(findings, slopes, table, notes={"sycophancy": "backs down"})
    note = t["ours: note"].tolist()
    assert note[0].startswith("a claim about the curve's shape: not tested by a slope")
    assert "highest 75% at α = 1 [" in note[0] and "] (an interior α, above both ends; 25% at α = 0, 0% at α = 3)" in note[0]
    assert "2 changes" not in note[0] and "1 change of direction over 3 α (point estimates)" in note[0]
    assert note[0].endswith("sycophancy: backs down")
    assert "jailbreak: 0 α, too few for a shape" in note[1]
    assert note[2] == "sycophancy: backs down"  # not a shape claim; the note for its sycophancy part
    assert behaviour.findings_table(findings[1:2], slopes)["ours: note"].iloc[0] == \
        "a claim about the curve's shape: not tested by a slope"
    flat = behaviour.compliance_table(_frame([("falseqa", "h_neurons", a, "i", 1.0) for a in (0.0, 1.0, 2.0)]), 20)
    assert behaviour.shape_text(flat, "falseqa") == "flat at 100% at every α: no shape to see"


def test_reading_is_computed_from_the_results():
    """The reading states each slope's direction against the paper and the control, the number
    of scored items where it changes, and the jailbreak judge's precision."""
    rows = []
    for i in range(6):
        rows += [("jailbreak", "none", 1.0, f"i{i}", float(i < 3)),
                 ("jailbreak", "h_neurons", 0.0, f"i{i}", 1.0), ("jailbreak", "h_neurons", 3.0, f"i{i}", 0.0),
                 ("jailbreak", "random-0", 0.0, f"i{i}", float(i < 3)),
                 ("jailbreak", "random-0", 3.0, f"i{i}", float(i < 3) if i else np.nan)]
    df = _frame(rows)
    agreement = pd.DataFrame([{"benchmark": "jailbreak", "split": "test", "judge_complies": 9,
                               "both_comply": 2, "precision": 2 / 9, "precision_ci": (0.06, 0.55), "n_frozen": 20,
                               "n_labelled": 20}])
    text = behaviour.reading(behaviour.compliance_table(df, 200), behaviour.slope_table(df, 200), agreement)
    assert "**jailbreak**" in text and "a negative slope, the opposite of the paper's" in text
    assert "the H-Neurons' slope lies below the random neurons': steering them moves compliance less" in text
    assert "fewer items scored" not in text  # 6 items scored on both sides
    assert "0.22 [0.06, 0.55]" in text and "20 of 20 verdicts frozen" in text
    renamed = df.assign(bench="Sycophancy: only the reply steered")  # chapter 4's second design
    t2, s2 = behaviour.compliance_table(renamed, 200), behaviour.slope_table(renamed, 200)
    assert behaviour.reading(t2, s2) == ""  # not one of the four benchmarks: named explicitly
    assert behaviour.reading(t2, s2, benches=["Sycophancy: only the reply steered"]).startswith(
        "- **Sycophancy: only the reply steered**: H-Neuron slope")
    full = _frame([("falseqa", "none", 1.0, f"i{i}", 1.0) for i in range(4)]
                  + [("falseqa", "h_neurons", a, f"i{i}", 1.0) for i in range(4) for a in (0.0, 3.0)])
    ceiling = behaviour.reading(behaviour.compliance_table(full, 50), behaviour.slope_table(full, 50))
    assert "Every point, α = 0 included, is at 100%" in ceiling and "already comply" not in ceiling
    pattern = {0.0: (1, 1, 1, 1, 1, 0), 3.0: (0, 0, 0, 1, 0, 0)}  # random falls almost as the H-Neurons
    same = _frame([r for r in rows if r[1] != "random-0"]
                  + [("jailbreak", "random-0", a, f"i{i}", float(pattern[a][i])) for i in range(6)
                     for a in (0.0, 3.0)])
    s3 = behaviour.slope_table(same, 200)
    t4 = behaviour.reading(behaviour.compliance_table(same, 200), s3)
    d = s3.set_index("group").loc["diff"]
    assert d.ci_lo < 0 <= d.ci_hi and "not distinguishable" in t4
    # both ends named: an interval need not be symmetric about 0
    assert (f"That interval is {d.ci_hi - d.ci_lo:.1f} pp/α wide: any true difference from "
            f"{d.ci_lo:+.1f} to {d.ci_hi:+.1f} pp/α is one this run cannot tell from none") in t4
    assert "That interval is" not in text  # a difference was found: no such sentence
    # the H-Neurons pinned at 100% at every alpha: a narrow interval is the bound's, not precision
    pinned = _frame([("falseqa", "none", 1.0, f"i{i}", 1.0) for i in range(6)]
                    + [("falseqa", "h_neurons", a, f"i{i}", 1.0) for i in range(6) for a in (0.0, 3.0)]
                    + [("falseqa", "random-0", a, f"i{i}", float(a > 0 or i > 0)) for i in range(6) for a in (0.0, 3.0)])
    sp = behaviour.slope_table(pinned, 200)
    dp = sp.set_index("group").loc["diff"]
    assert dp.ci_lo < 0 <= dp.ci_hi or dp.ci_lo <= 0 < dp.ci_hi
    tp = behaviour.reading(behaviour.compliance_table(pinned, 200), sp)
    assert "wide: narrow only because every H-Neuron point sits at the same bound" in tp
    assert "a true difference of less than" not in tp
    notes = behaviour.judge_notes(pd.DataFrame([{"benchmark": "falseqa", "human_not_complies": 0,
                                                 "human_complies": 22, "n_frozen": 0,
                                                 "n_labelled": 24}]), "llm")
    assert "measures the **rule** judge" in notes and "no non-compliant" in notes
    assert "not one is a refutation of the premise" in notes and "recall of non-compliant" in notes
    t3 = behaviour.compliance_table(df, 200)
    extra = behaviour.reading(t3, behaviour.slope_table(df, 200), extra={"jailbreak": "Measured as X."})
    assert "Measured as X." in extra


def test_a_difference_from_the_control_on_fewer_scored_items_is_named():
    """Where the H-Neurons leave far fewer items scored than the random sets at a control alpha,
    the reading of a directional difference says it may come from which items are scored."""
    rows = []
    for i in range(12):
        rows += [("falseqa", "h_neurons", 0.0, f"i{i}", 0.0), ("falseqa", "random-0", 0.0, f"i{i}", 0.0),
                 ("falseqa", "none", 1.0, f"i{i}", float(i % 2 == 0)),
                 ("falseqa", "h_neurons", 3.0, f"i{i}", 1.0 if i < 3 else np.nan),  # 3 of 12 readable
                 ("falseqa", "random-0", 3.0, f"i{i}", 0.0)]
    df = _frame(rows)
    table = behaviour.compliance_table(df, 50)
    assert behaviour.scored_gap_text(table, "falseqa", "0, 1, 3") == (
        " The H-Neurons leave fewer items scored than the random sets (3 against 12 at α = 3), "
        "so this difference may come from which replies are scored rather than from compliance.")
    assert behaviour.scored_gap_text(table, "falseqa", "0, 1") == ""
    assert behaviour.scored_gap_text(table, "falseqa", [0.0, 3.0]) == behaviour.scored_gap_text(
        table, "falseqa", "0, 1, 3")  # numbers work as well as the slope table's cell
    text = behaviour.reading(table, behaviour.slope_table(df, 50))
    assert "lies above the random neurons'" in text and "(3 against 12 at α = 3)" in text


def test_interval_ends_near_zero_show_their_side():
    """An interval end at 0 prints "0"; one that rounds to 0.0 gets more decimals."""
    r = pd.Series({"slope_pp": 7.1, "ci_lo": 0.0, "ci_hi": 23.8})
    assert behaviour._ci_text(r) == "+7.1 pp/α [0, +23.8]"
    assert behaviour._ci_text(pd.Series({"slope_pp": -0.9, "ci_lo": -3.0, "ci_hi": 0.004})) == \
        "-0.9 pp/α [-3.0, +0.004]"
    assert behaviour._ci_end(-0.04) == "-0.04" and behaviour._ci_end(float("nan")) == "n/a"


def test_ceiling_text_counts_points_at_the_ceiling_and_names_a_floor():
    """The ceiling check says how many points sit at 100% when alpha = 1 is near it, and names a
    curve at 0% everywhere as a floor."""
    def t(rates):
        return pd.DataFrame({"alpha": [0.0, 1.0, 2.0], "rate": rates})

    assert "a ceiling" in behaviour.ceiling_text(t([0.8, 1.0, 1.0])) and "(2 of 3 points at 100%)" in \
        behaviour.ceiling_text(t([0.8, 1.0, 1.0]))
    assert "Every point is at 0%" in behaviour.ceiling_text(t([0.0, 0.0, 0.0]))
    assert "a floor" in behaviour.ceiling_text(t([0.2, 0.05, 0.0])) and "(1 of 3 points at 0%)" in \
        behaviour.ceiling_text(t([0.2, 0.05, 0.0]))
    assert behaviour.ceiling_text(t([0.2, 0.5, 0.7])) == ""


def _syc_records(labels):
    """Labelled sycophancy rows: ``labels`` maps (source, item, alpha) -> complied."""
    return pd.DataFrame([{"bench": "sycophancy", "source": src, "item_id": i, "set": "h_neurons",
                          "group": "h_neurons", "alpha": a, "complied": v}
                         for (src, i, a), v in labels.items()])


def test_sycophancy_views_split_measures_and_sources_and_flag_a_ceiling():
    """Each measure becomes a pooled and a per-source curve; the multiple-choice source pinned at
    100% is named as a ceiling, the strict measure at 0% as a floor; switch_share counts the
    backing-down replies that name a wrong answer."""
    wide, narrow = {}, {}
    for a in (0.0, 1.0, 2.0):
        for i in range(3):
            wide[("truthfulqa-mc", f"m{i}", a)] = 1.0
            narrow[("truthfulqa-mc", f"m{i}", a)] = 0.0
            wide[("triviaqa", f"t{i}", a)] = float(i == 0)
            narrow[("triviaqa", f"t{i}", a)] = float(i == 0 and a == 2.0)
    views = behaviour.sycophancy_views({"backs down": _syc_records(wide), "switches": _syc_records(narrow)})
    names = list(dict.fromkeys(views.bench))
    assert names == ["sycophancy, backs down: all items", "sycophancy, backs down: TriviaQA, open-ended",
                     "sycophancy, backs down: TruthfulQA, multiple choice", "sycophancy, switches: all items",
                     "sycophancy, switches: TriviaQA, open-ended", "sycophancy, switches: TruthfulQA, multiple choice"]
    table = behaviour.compliance_table(views, 50)
    cells = behaviour.rate_cells(table)
    assert cells.loc[("sycophancy, backs down: all items", "h_neurons"), 0.0].startswith("67 [")
    assert cells.loc[("sycophancy, backs down: all items", "h_neurons"), 0.0].endswith("(4/6)")
    text = behaviour.sycophancy_reading(table, names)
    mc = next(x for x in text.split("\n") if "backs down: TruthfulQA" in x)
    assert "100% at every α (9 of 9 scored replies over the 3 α)" in mc and "Every point, α = 0 included" in mc
    assert "Every point is at 0%" in next(x for x in text.split("\n") if "switches: TruthfulQA" in x)
    assert "between 0% (α = 0, 1) and 33% [" in next(x for x in text.split("\n") if "switches: TriviaQA" in x)
    share = behaviour.switch_share(views, names[0], names[3])
    assert "12 replies count as backing down; 1 of them name a wrong answer, and the other 11" in share
    slopes = behaviour.slope_table(views, 50)
    note = behaviour.measure_note(table, slopes, names[3], "switching")
    assert note.startswith("switching: H-Neuron slope ") and "H-Neuron rate between 0%" in note


def test_smallest_paper_model_reads_sizes_from_names():
    """The paper's smallest model is found from the "<n>B" in its name."""
    names = ["Mistral-7B-v0.3", "Gemma-3-4B", "Llama-3.3-70B"]
    assert behaviour.smallest_paper_model(names) == ("Gemma-3-4B", 4.0)


def test_reading_names_why_sycophancy_items_drop_out():
    """Where the scored items vary, the reading says why, per sycophancy design."""
    rows = []
    for i in range(4):
        rows += [("x", "none", 1.0, f"i{i}", 1.0), ("x", "h_neurons", 0.0, f"i{i}", 0.0),
                 ("x", "h_neurons", 3.0, f"i{i}", np.nan if i == 0 else 1.0)]
    for bench, why in [("sycophancy", "the others were not first answered correctly or are unreadable"),
                       (behaviour.SYC_REPLY, "the others were not first answered correctly (the same "
                                             "items at every α"),
                       ("faitheval", "the others are unreadable to the judge, yet the slope weighs every α's rate alike")]:
        df = _frame(rows).assign(bench=bench)
        text = behaviour.reading(behaviour.compliance_table(df, 50), behaviour.slope_table(df, 50),
                                 benches=[bench])
        assert "between 3 (α = 3) and 4 (α = 0) of 4" in text and why in text, text
        if bench == "faitheval":  # unreadable replies: the slope if they all complied or none did
            assert "Unreadable H-Neuron replies, of 4 per α: 0 (α = 0), 0 (α = 1), 1 (α = 3)." in text
            lo = np.polyfit([0, 1, 3], [0, 100, 75], 1)[0]
            hi = np.polyfit([0, 1, 3], [0, 100, 100], 1)[0]
            assert f"not complying they give a slope of {lo:+.1f}, counted as complying {hi:+.1f} pp/α." in text
        else:  # sycophancy's unscored items are not unreadable replies: no bounds
            assert "Unreadable H-Neuron replies" not in text


def test_side_by_side_shows_line_breaks_as_slashes():
    """A response's line breaks become " / " in the table (pandas would print a literal \\n)."""
    from hneurons_utils.behaviour import one_line

    assert one_line("The answer is: A.\n\nThis is  why.\n") == "The answer is: A. / This is  why."


def test_a_weak_judge_is_named_on_any_benchmark():
    """The reading quotes the judge's precision wherever its held-out interval reaches below
    0.5 (as the scorecard flags it), not only on jailbreak; a strong judge goes unmentioned."""
    rows = []
    for i in range(6):
        rows += [("sycophancy", "h_neurons", 0.0, f"i{i}", 0.0), ("sycophancy", "h_neurons", 3.0, f"i{i}", 1.0)]
    df = _frame(rows)
    t, s = behaviour.compliance_table(df, 50), behaviour.slope_table(df, 50)

    def agreement(lo):
        return pd.DataFrame([{"benchmark": "sycophancy", "split": "test", "judge_complies": 5,
                              "both_comply": 4, "precision": 0.8, "precision_ci": (lo, 0.96), "n_frozen": 0,
                              "n_labelled": 24}])

    assert behaviour.weak_judge(agreement(0.38), "sycophancy")
    assert not behaviour.weak_judge(agreement(0.6), "sycophancy")
    # a re-reading of the labels under another definition does not stand for the panel's judge
    other = pd.concat([agreement(0.6).assign(labels="label"),
                       agreement(0.1).assign(labels="label_switches")], ignore_index=True)
    assert not behaviour.weak_judge(other.iloc[::-1], "sycophancy")
    assert behaviour.precision_text(other.iloc[::-1], "sycophancy").startswith(
        "0.80 [0.60, 0.96] on the test labels (of the 5 replies it calls compliant, 4 are")
    assert not behaviour.weak_judge(agreement(0.38), "falseqa")  # no labels for it: not weak
    assert "0.80 [0.38, 0.96]" in behaviour.reading(t, s, agreement(0.38))
    assert "precision" not in behaviour.reading(t, s, agreement(0.6))


def test_figure3_legend_gives_the_like_for_like_slope_and_scored_counts():
    """The H-Neuron legend entry adds its slope on the control's alphas; n= appears where the
    number of scored items changes along the H-Neuron curve."""
    import matplotlib

    matplotlib.use("Agg")
    rows = []
    for i in range(6):
        rows += [("faitheval", "none", 1.0, f"i{i}", 1.0), ("faitheval", "h_neurons", 0.0, f"i{i}", 0.0)]
        rows += [("faitheval", "h_neurons", a, f"i{i}", 1.0 if i else np.nan) for a in (0.5, 3.0)]
        rows += [("faitheval", "random-0", a, f"i{i}", 0.0) for a in (0.0, 3.0)]
    df = _frame(rows)
    fig = behaviour.figure3(behaviour.compliance_table(df, 50), behaviour.slope_table(df, 50), ["faitheval"])
    notes = [t.get_text() for t in fig.axes[0].texts if t.get_text().startswith(("H-Neurons", "random"))]
    assert notes[0].startswith("H-Neurons: slope ") and notes[0].endswith(" on α = 0, 1, 3)")
    assert notes[1].startswith("random: slope ")
    assert "n=5" in [t.get_text() for t in fig.axes[0].texts]
    syc = df.assign(bench="sycophancy")
    fig = behaviour.figure3(behaviour.compliance_table(syc, 20), behaviour.slope_table(syc, 20), ["sycophancy"])
    assert "backs down" in fig.axes[0].get_title()  # the panel names the measure it plots


def test_judge_notes_name_the_definition_and_thin_labels():
    """Where one benchmark is checked under two definitions, each note names its definition; a
    definition with few compliant labels is named."""
    a = pd.DataFrame([{"benchmark": "sycophancy", "definition": d, "human_not_complies": n, "human_complies": p,
                       "n_frozen": 0, "n_labelled": 30} for d, n, p in [("backs down", 7, 27), ("switches", 32, 1)]])
    notes = behaviour.judge_notes(a, "rule")
    assert notes == ("- **sycophancy**, switches: only 1 compliant hand label; the judge's precision "
                     "and recall rest on it alone.")


def test_shape_text_names_a_tied_maximum_and_no_interior_peak_at_an_end():
    """A highest rate shared with an end of the grid is a tie, not an interior peak; an interior
    peak must lie strictly above both ends."""
    def table(rates):
        rows = [("jailbreak", "h_neurons", a, f"i{i}", float(i < k)) for a, k in rates for i in range(6)]
        return behaviour.compliance_table(_frame(rows), 20)

    tied = behaviour.shape_text(table([(0.0, 3), (1.0, 2), (2.0, 4), (3.0, 4)]), "jailbreak")
    assert tied.startswith("highest 67% at α = 2 [") and "] and α = 3 [" in tied
    assert "(tied with an end of the grid, so no interior peak; 50% at α = 0, 67% at α = 3)" in tied
    assert "an interior α" not in tied
    assert tied.endswith("(point estimates; no step between neighbouring α moves more than 2 items' worth, "
                         "so these turns are within what a few items' noise gives)")
    end = behaviour.shape_text(table([(0.0, 1), (1.0, 2), (2.0, 4)]), "jailbreak")
    assert "(an end of the grid;" in end
    plateau = behaviour.shape_text(table([(0.0, 1), (1.0, 4), (2.0, 4), (3.0, 2)]), "jailbreak")
    assert "(tied, all interior α, above both ends;" in plateau
    # a top less than one item above an end (12 of 13 against 11 of 12) is no interior peak,
    # and rates that differ are printed so that they differ
    rows = ([("jailbreak", "h_neurons", 0.0, f"i{i}", float(i < 6)) for i in range(11)]
            + [("jailbreak", "h_neurons", 0.5, f"i{i}", float(i < 12)) for i in range(13)]
            + [("jailbreak", "h_neurons", 3.0, f"i{i}", float(i < 11)) for i in range(12)])
    close = behaviour.shape_text(behaviour.compliance_table(_frame(rows), 20), "jailbreak")
    assert close.startswith("highest 92.3% at α = 0.5 [")
    assert ("(an interior α, above both ends, but less than one item above α = 3, so no clear "
            "interior peak; 54.5% at α = 0, 91.7% at α = 3)") in close
    assert "less than one item" not in plateau  # 4 of 6 against 2 of 6: two items apart


def test_findings_table_quotes_the_paper_not_the_books_remark():
    """A finding the reference marks "Covered only by the general claim (1)" has no words of its
    own in the paper: its paper column quotes claim (1), and the remark moves to the note."""
    slopes = pd.DataFrame([{"bench": "faitheval", "group": "h_neurons", "slope_pp": 1.0, "ci_lo": -1.0,
                            "ci_hi": 3.0}])
    findings = [{"benchmark": "all", "claim": "A consistent positive correlation.",
                 "where": "Section 3, observation (1)"},
                {"benchmark": "faitheval", "where": "Section 3",
                 "claim": "Covered only by the general claim (1); no FaithEval-specific number in the text."}]
    t = behaviour.findings_table(findings, slopes)
    assert t["paper (Gao et al. 2025)"].iloc[1] == "A consistent positive correlation."
    assert t["where"].iloc[1] == "Section 3, observation (1)"
    assert t["ours: note"].iloc[1] == "Covered only by the general claim (1); no FaithEval-specific number in the text"
    assert not t["paper (Gao et al. 2025)"].str.contains("Covered only").any()
    alone = behaviour.findings_table(findings[1:], slopes)  # the general claim not among them
    assert alone["paper (Gao et al. 2025)"].iloc[0] == "(no claim of its own in the text)"


def test_unsteered_designs_note_quotes_both_alpha1_values_and_shared_first_answers():
    """At alpha = 1 both sycophancy designs run the unsteered model: the note quotes each
    design's value there and counts, per source, the first answers the designs share."""
    rows = []
    for d, ks in [(behaviour.SYC_BOTH, (1, 1, 1, 0)), (behaviour.SYC_REPLY, (1, 1, 0, np.nan))]:
        for i, k in enumerate(ks):
            src = "triviaqa" if i < 2 else "truthfulqa-mc"
            first = f"answer {i}" + (f" in {d}" if src == "triviaqa" else "")  # sampled: they differ
            rows.append({"bench": d, "set": "none", "group": "none", "alpha": 1.0, "item_id": f"i{i}",
                         "complied": k, "source": src, "first": first})
            rows.append({"bench": d, "set": "h_neurons", "group": "h_neurons", "alpha": 3.0,
                         "item_id": f"i{i}", "complied": 0.0, "source": src, "first": first})
    df = pd.DataFrame(rows)
    t = behaviour.compliance_table(df, 20)
    note = behaviour.unsteered_designs_note(t, df, [behaviour.SYC_BOTH, behaviour.SYC_REPLY])
    assert note.startswith("At α = 1 nothing is steered, so both designs run the same unsteered model")
    assert ("75% (3 of 4 scored replies) with both turns steered; 67% (2 of 3 scored replies) with only "
            "the reply steered.") in note
    assert "TriviaQA, open-ended: 0 of 2 first answers identical" in note
    assert "TruthfulQA, multiple choice: 2 of 2 first answers identical" in note
    assert behaviour.unsteered_designs_note(t, df, [behaviour.SYC_BOTH]) == ""  # one design: nothing to compare
    same = df.copy()  # keyed sampling: both designs' unsteered runs are one and the same
    same["first"] = same["item_id"]
    same.loc[same.bench == behaviour.SYC_REPLY, "complied"] = same.loc[same.bench == behaviour.SYC_BOTH,
                                                                       "complied"].values
    t2 = behaviour.compliance_table(same, 20)
    note = behaviour.unsteered_designs_note(t2, same, [behaviour.SYC_BOTH, behaviour.SYC_REPLY])
    assert "coincide by construction and measure no noise" in note and "A gap of that size" not in note


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_figure3_text_never_overlaps():
    """Panel titles (the long sycophancy ones included) clear each other, the legend below all
    panels covers no axis label or slope line, and the per-set marks have a legend entry of
    their own (not the error bars' caps)."""
    import matplotlib

    matplotlib.use("Agg")
    rows = []
    for bench in (behaviour.SYC_BOTH, behaviour.SYC_REPLY):
        for i in range(6):
            rows += [(bench, "none", 1.0, f"i{i}", 1.0), (bench, "h_neurons", 0.0, f"i{i}", float(i < 3)),
                     (bench, "h_neurons", 3.0, f"i{i}", float(i < 2) if i else np.nan),
                     (bench, "random-0", 0.0, f"i{i}", 0.0), (bench, "random-1", 0.0, f"i{i}", 1.0),
                     (bench, "random-0", 3.0, f"i{i}", 1.0), (bench, "random-1", 3.0, f"i{i}", 0.0)]
    df = _frame(rows)
    fig = behaviour.figure3(behaviour.compliance_table(df, 20), behaviour.slope_table(df, 20),
                            [behaviour.SYC_BOTH, behaviour.SYC_REPLY])
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    titles = [ax.title.get_window_extent(r) for ax in fig.axes]
    assert not _overlap(*titles)
    assert all("backs down" in ax.get_title() for ax in fig.axes)
    assert all(len(line) <= int(behaviour.TITLE_WIDTH * 4.2) for ax in fig.axes
               for line in ax.get_title().split("\n"))
    (legend,) = fig.legends
    box = legend.get_window_extent(r)
    for ax in fig.axes:
        assert ax.get_legend() is None  # one legend for the figure, not one under each panel
        assert not _overlap(box, ax.xaxis.label.get_window_extent(r))
        for t in ax.texts:
            assert not _overlap(box, t.get_window_extent(r))
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels == ["H-Neurons", "random, layer-matched (mean of the sets)",
                      "single random set: lowest and highest"]
    from matplotlib.collections import PathCollection
    from matplotlib.colors import to_rgba

    (spread,) = [c for c in fig.axes[0].collections if isinstance(c, PathCollection)]  # the scatter
    assert spread.get_offsets().shape[0] == 6  # 3 alphas x (lowest, highest); NaN where one set
    colour = tuple(spread.get_edgecolor()[0])
    assert colour != to_rgba(behaviour.GROUP_STYLE["random"]["color"])  # not the caps' grey


def test_shape_text_lists_a_wide_tie_without_intervals():
    rows = [("falseqa", "h_neurons", a, f"i{i}", float(a != 2.0 or i > 1)) for a in (0.0, 1.0, 2.0, 3.0)
            for i in range(4)]
    text = behaviour.shape_text(behaviour.compliance_table(_frame(rows), 20), "falseqa")
    assert text.startswith("highest 100% at α = 0, 1 and 3 (tied with an end of the grid, so no interior peak;")


def test_rate_range_names_tied_extremes():
    """A lowest or highest rate reached at several α is named as a tie, never as one α (which
    would suggest a rise from that α that the table does not show)."""
    def table(rates):
        return pd.DataFrame({"bench": "b", "group": "h_neurons", "alpha": [0, 0.5, 1, 1.5, 2, 2.5, 3][:len(rates)],
                             "rate": rates, "k": 1, "n_responses": 5, "ci_lo": 0.1, "ci_hi": 0.9})

    assert behaviour.rate_range(table([0.0, 0.2, 0.4]), "b").startswith(
        "between 0% (α = 0) and 40% [10, 90] (α = 1);")
    tied_top = behaviour.rate_range(table([1.0, 1.0, 0.8, 1.0, 1.0, 1.0, 1.0]), "b")
    assert tied_top.startswith("between 80% (α = 1) and 100% (6 of the 7 α);")
    tied_low = behaviour.rate_range(table([0.0, 0.0, 0.5]), "b")
    assert tied_low.startswith("between 0% (α = 0, 0.5) and 50% [10, 90] (α = 1);")
    assert behaviour.rate_range(table([0.3, 0.3]), "b").startswith("30% at every α")


def test_cost_reading_names_a_difference_only_where_the_intervals_part():
    """Silencing the H-Neurons against silencing random sets: a difference only where the Wilson
    intervals do not overlap; overlapping ones are no evidence either way."""
    from hneurons_utils.stats import wilson_ci

    def row(name, c, n=32):
        return {"condition": name, "correct": c, "n": n, "accuracy": c / n, "ci (Wilson)": wilson_ci(c, n)}

    rows = [row("unsteered (α=1)", 32), row("H-Neurons α=0", 15), row("random-1 α=0", 27), row("random-2 α=0", 31)]
    text = behaviour.cost_reading(rows)
    assert text.startswith("Silencing the H-Neurons leaves 15 of 32 (47% [")
    assert "against 32 of 32 (100% [" in text and "leaves 27 of 32 (84% [" in text
    assert "Its interval lies below every random set's" in text
    assert "does not show" in behaviour.cost_reading(rows[:2] + [row("random-1 α=0", 20), rows[3]])
    assert "no random set" in behaviour.cost_reading(rows[:2])
    assert behaviour.cost_reading([]).startswith("Not measured")


def test_cost_reading_weighs_the_size_matched_control_apart():
    """Sets matched by layer and CETT size are read apart from the layer-matched ones: the
    H-Neurons' extra cost is put down to what they encode only if it holds against those too,
    and an overlap with them says their size may explain it."""
    from hneurons_utils.stats import wilson_ci

    def row(name, c, n=32):
        return {"condition": name, "correct": c, "n": n, "accuracy": c / n, "ci (Wilson)": wilson_ci(c, n)}

    base = [row("unsteered (α=1)", 32), row("H-Neurons α=0", 12), row("random-0 α=0", 31)]
    similar = base + [row("size-matched-0 α=0", 14), row("size-matched-1 α=0", 16)]
    assert behaviour.cost_parts(similar)[2] == [base[2]]  # size-matched rows are not random rows
    assert behaviour.cost_verdict(similar) == "more"
    assert behaviour.cost_verdict(similar, sized=True) == "not distinguishable"
    text = behaviour.cost_reading(similar)
    assert "random ones of the same layers." in text and "not their size alone" not in text
    assert "leave 14 of 32" in text and "the gap to typical random neurons may be their size" in text
    assert "median 97th percentile" in behaviour.cost_reading(similar, 97.4)
    assert "percentile" not in text  # not claimed unless measured
    apart = base + [row("size-matched-0 α=0", 30)]
    assert behaviour.cost_verdict(apart, sized=True) == "more"
    assert "so in this run their cost is not their size alone" in behaviour.cost_reading(apart)
    assert "size" not in behaviour.cost_reading(base)  # no size-matched set: no such sentence


def test_figure3_names_the_control_it_plots():
    """The legend says how the random sets were matched; an unknown match is refused."""
    import matplotlib.pyplot as plt

    table = pd.DataFrame([{"bench": "falseqa", "group": g, "alpha": a, "rate": 0.5, "ci_lo": 0.4,
                           "ci_hi": 0.6, "n_scored": 10, "seed_min": np.nan, "seed_max": np.nan}
                          for g in ("h_neurons", "random") for a in (0.0, 3.0)])
    slopes = pd.DataFrame(columns=["bench", "group", "slope_pp", "alphas"])
    for control, words in (("layer", "layer-matched"), ("size", "matched by layer and CETT size")):
        fig = behaviour.figure3(table, slopes, ["falseqa"], control=control)
        labels = [t.get_text() for lg in fig.legends for t in lg.get_texts()]
        assert any(words in x for x in labels), labels
        plt.close(fig)
    with pytest.raises(ValueError, match="unknown control 'weight'"):
        behaviour.figure3(table, slopes, ["falseqa"], control="weight")


def test_cost_records_judge_each_reply_and_read_what_replaces_a_lost_answer():
    """cost_records labels every reply by the rule judge; an answer lost to silencing is read
    as another answer, none (the reply only restates the question) or a refusal; loss_text
    counts them per condition, and gains too."""
    from hneurons_utils.data import QAItem

    items = [QAItem("q1", "Which city was founded by Sir Stamford Raffles in 1819?", ["Singapore"], "triviaqa"),
             QAItem("q2", "The volcano Chimborazo is in which South American country?", ["Ecuador"], "triviaqa"),
             QAItem("q3", "Who invented the electric battery?", ["Volta"], "triviaqa"),
             QAItem("q4", "What is the capital of Peru?", ["Lima"], "triviaqa")]
    replies = {"plain": ["It was Singapore.", "It is in Ecuador.", "Alessandro Volta.", "Cusco."],
               "silenced": ["The city founded by Sir Stamford Raffles in 1819 was Sydney.",
                            "The volcano Chimborazo is located in the South American country.",
                            "I don't know.", "Lima."]}
    recs = behaviour.cost_records(items, replies)
    assert [r["replies"]["silenced"]["kind"] for r in recs] == ["another answer", "no answer", "refusal", None]
    assert [r["replies"]["plain"]["label"] for r in recs] == ["correct", "correct", "correct", "incorrect"]
    assert behaviour.cost_counts(recs, "plain") == (3, 4) and behaviour.cost_counts(recs, "silenced") == (1, 4)
    lost = behaviour.lost_answers(recs, "silenced", "plain")
    assert [x["kind"] for x in lost] == ["another answer", "no answer", "refusal"]
    assert lost[0]["gold"] == "Singapore" and lost[0]["plain"] == "It was Singapore."
    recs[1]["gold"] = ["Independence Day of Ecuador", "ecuador"]  # TriviaQA's alias lists
    assert behaviour.lost_answers(recs, "silenced", "plain")[1]["gold"] == "Ecuador"  # as the reply has it
    assert behaviour.loss_text(recs, "plain", ["silenced"]) == (
        "silenced: 3 answers lost (1 names a wrong answer instead, 1 names none, 1 declines); 1 gained.")
    assert behaviour.loss_text(recs, "plain", ["plain"]) == "plain: no answer lost."
    with pytest.raises(ValueError, match="silenced: 1 replies for 4 questions"):
        behaviour.cost_records(items, {"silenced": ["x"]})


def _loss_rows():
    """Self-contained (nonexist-style) hand-label rows: question and aliases in the row."""
    q = "Which city was founded by Sir Stamford Raffles in 1819?"
    base = dict(dataset="nonexist", qid="n:1", split="test", question=q, answers=["Singapore"],
                condition="H-Neurons α=0", note="n")
    return [dict(base, response="It was Sydney.", label="another answer"),
            dict(base, response="The city founded by Sir Stamford Raffles in 1819.", label="no answer"),
            dict(base, response="I don't know.", label="refusal"),
            dict(base, response="Singapur, the island city.", label="correct"),  # the rule misses it
            dict(base, response="Sing sing ga.", label="unclear")]


def test_loss_label_check_compares_the_rule_with_hand_labels(tmp_path):
    """Every labelled reply is read afresh by the rule (correct, or its loss kind); the table
    counts hand label against rule, unclear rows are left out, disagreements carry the note,
    and the sentence gives the agreement with its interval and the commonest confusion."""
    import json

    path = tmp_path / "lost.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _loss_rows()))
    rows, unavailable = behaviour.load_loss_labels(path)
    table, wrong = behaviour.loss_label_check(rows)
    assert int(table.to_numpy().sum()) == 4 and unavailable == {}
    assert [table.loc[k, k] for k in ("another answer", "no answer", "refusal")] == [1, 1, 1]
    assert table.loc["correct", "another answer"] == 1
    assert wrong == [{"condition": "H-Neurons α=0", "reply": "Singapur, the island city.",
                      "hand label": "correct", "rule": "another answer", "note": "n"}]
    text = behaviour.loss_label_text(table)
    assert text.startswith("The rule reads 3 of 4 hand-labelled replies as the labeller did (75%, 95% CI ")
    assert "1 the labeller reads as 'correct', the rule as 'another answer'" in text
    # the rule's "another answer" has a precision of 1 of 2 here: the loss counts overstate it
    assert ("Of the 2 replies the rule reads as naming a wrong answer, 1 does by hand (50%, 95% CI "
            in text and text.endswith("than they suggest."))
    sure = table.copy()
    sure.loc["correct", "another answer"] = 0
    sure.loc["another answer", "another answer"] = 60
    assert behaviour.loss_label_text(sure).endswith("60 do by hand (100%, 95% CI 94%-100%).")
    assert behaviour.loss_label_text(table * 0, {"triviaqa": "no file"}) == (
        "No hand label of a lost answer could be read here (triviaqa: no file).")


def test_loss_labels_with_an_unknown_label_are_refused(tmp_path):
    import json

    from hneurons_utils.data import DataFormatError

    path = tmp_path / "lost.jsonl"
    path.write_text(json.dumps(dict(_loss_rows()[0], label="hallucination")) + "\n")
    with pytest.raises(DataFormatError, match="line 1.*label.*'hallucination' is not one of"):
        behaviour.load_loss_labels(path)


def test_lost_answers_carry_their_hand_labels():
    """A lost answer whose question and reply text a label row holds gets that label (in the
    table, the counts and the sentence); others stay unlabelled and are counted as such."""
    from hneurons_utils.data import QAItem

    items = [QAItem("q1", "Which city was founded by Sir Stamford Raffles in 1819?", ["Singapore"], "triviaqa"),
             QAItem("q2", "Who invented the electric battery?", ["Volta"], "triviaqa")]
    recs = behaviour.cost_records(items, {"plain": ["Singapore.", "Volta."],
                                          "silenced": ["It was Sydney the the.", "Galvani."]})
    hand = [{"qid": "q1", "response": "It was Sydney the the.", "label": "no answer"},
            {"qid": "q2", "response": "Galvani, surely.", "label": "another answer"}]  # another reply
    lost = behaviour.lost_answers(recs, "silenced", "plain", hand)
    assert [x["by hand"] for x in lost] == ["no answer", ""] and [x["kind"] for x in lost] == ["another answer"] * 2
    assert "by hand" not in behaviour.lost_answers(recs, "silenced", "plain")[0]
    c = behaviour.hand_loss_counts(recs, "plain", "silenced", hand)
    assert (c["lost"], c["labelled"], c["no answer"], c["another answer"]) == (2, 1, 1, 0)
    assert behaviour.loss_text(recs, "plain", ["silenced"], hand) == (
        "silenced: 2 answers lost (2 name a wrong answer instead, 0 name none, 0 decline); by hand "
        "(1 of 2 labelled): 0 name a wrong answer, 1 names none, 0 decline, 0 are right after all, 0 unclear.")
    assert behaviour.loss_text(recs, "plain", ["silenced"], []) == behaviour.loss_text(recs, "plain", ["silenced"])


def test_the_shipped_lost_answer_labels_load():
    """data/judge_labels/lost_answers.jsonl is well formed and labels every kind it may."""
    from hneurons_utils.judges import load_answer_labels

    rows = load_answer_labels(behaviour.LOSS_LABELS_FILE, behaviour.HUMAN_LOSS_LABELS)
    assert len(rows) >= 20 and {r["dataset"] for r in rows} == {"triviaqa"}
    assert {"another answer", "no answer"} <= {r["label"] for r in rows}


def test_slope_table_gives_the_range_of_single_random_sets():
    """The random row carries the lowest and highest slope of its single sets, each fitted with
    the shared unsteered rows; other rows carry NaN, as does a control of one set."""
    rows = [("falseqa", "none", 1.0, i, 0.5 * (i == "a")) for i in "ab"]
    # set 0: 0 at alpha 0 and 3 (both items); set 1: 0 at alpha 0, 1 at alpha 3 (both items)
    rows += [("falseqa", f"random-{s}", a, i, float(s == 1 and a == 3.0)) for s in (0, 1) for a in (0.0, 3.0)
             for i in "ab"]
    rows += [("falseqa", "h_neurons", a, i, a / 3) for a in (0.0, 3.0) for i in "ab"]
    t = behaviour.slope_table(_frame(rows), 20).set_index("group")
    # set 0: rates 0, 0.25, 0 at alpha 0, 1, 3; set 1: 0, 0.25, 1 (least squares in pp per alpha)
    a = np.array([0.0, 1.0, 3.0])
    s0, s1 = (np.polyfit(a, 100 * np.array(r), 1)[0] for r in ([0, 0.25, 0], [0, 0.25, 1]))
    assert t.loc["random", "set_min"] == pytest.approx(s0) and t.loc["random", "set_max"] == pytest.approx(s1)
    assert s0 < t.loc["random", "slope_pp"] < s1  # the pooled curve lies between its sets
    assert np.isnan(t.loc["h_neurons", "set_min"]) and np.isnan(t.loc["diff", "set_max"])
    one = behaviour.slope_table(_frame([r for r in rows if r[1] != "random-1"]), 20).set_index("group")
    assert np.isnan(one.loc["random", "set_min"])


def test_reading_sets_the_h_slope_against_single_random_sets():
    """The reading places the H-Neurons' slope on the control's alphas inside, above or below
    the range of single random sets' slopes; without two sets it says nothing of them."""
    row = pd.Series({"set_min": -2.0, "set_max": 4.0})
    assert behaviour.set_range_text(1.0, row) == (
        " Single random sets' slopes run from -2.0 to +4.0 pp/α; the H-Neurons' on the same "
        "alphas (+1.0) lies inside that range: some single random set moves compliance as much.")
    assert behaviour.set_range_text(6.0, row).endswith("(+6.0) lies above every single set's.")
    assert behaviour.set_range_text(-3.0, row).endswith("lies below every single set's.")
    assert behaviour.set_range_text(1.0, pd.Series({"set_min": np.nan, "set_max": np.nan})) == ""
    three = pd.Series({"set_min": -2.0, "set_max": 4.0, "set_n": 3})
    assert behaviour.set_range_text(6.0, three).endswith(
        "lies above every single set's (were the H-Neurons one more random set, their slope would lie "
        "above all 3 by chance one time in 4: weak evidence on its own).")
    rows = [("falseqa", "none", 1.0, i, 0.0) for i in "ab"]
    rows += [("falseqa", f"random-{s}", 3.0, i, float(s == 1)) for s in (0, 1) for i in "ab"]
    rows += [("falseqa", "h_neurons", 3.0, i, 1.0) for i in "ab"]
    df = _frame(rows)
    text = behaviour.reading(behaviour.compliance_table(df, 20), behaviour.slope_table(df, 20))
    assert "Single random sets' slopes run from +0.0 to +50.0 pp/α" in text and "(+50.0) lies inside" in text


def test_panels_of_an_imprecise_rule_judge_carry_a_caveat():
    """A benchmark whose rule judge is imprecise on held-out hand labels gets it in its panel
    title; dev-split numbers, precise judges and another judge's run do not."""
    agreement = pd.DataFrame([
        {"judge": "rule", "benchmark": "jailbreak", "split": "test", "precision": 0.22},
        {"judge": "rule", "benchmark": "jailbreak", "split": "dev", "precision": 0.1},
        {"judge": "rule", "benchmark": "falseqa", "split": "test", "precision": 1.0},
        {"judge": "rule", "benchmark": "faitheval", "split": "test", "precision": float("nan")}])
    titles = behaviour.caveated_titles(agreement, "rule")
    assert titles["jailbreak"].endswith("(rule judge's held-out precision 0.22 on hand-labelled "
                                        "SmolLM2-135M-Instruct replies:\nmost of what it counts, a "
                                        "reader would not)")
    frozen = agreement.assign(n_frozen=[4, 0, 0, 0], n_used=[4, 3, 3, 3])
    assert "replies, frozen verdicts:\n" in behaviour.caveated_titles(frozen, "rule")["jailbreak"]
    assert titles["falseqa"] == behaviour.PANEL_TITLES["falseqa"]
    assert titles["faitheval"] == behaviour.PANEL_TITLES["faitheval"]
    assert behaviour.caveated_titles(agreement, "llm") == behaviour.PANEL_TITLES


def test_control_comparison_reads_both_controls():
    """Each benchmark's H-minus-random slope against the layer-matched and the size-matched
    control, with a verdict from each paired interval, and the reading in words."""
    def rows(bench, diff):
        return [{"bench": bench, "group": "h_neurons_control_grid", "slope_pp": 5.0, "ci_lo": 1.0, "ci_hi": 9.0},
                {"bench": bench, "group": "random", "slope_pp": 5.0 - diff[0], "ci_lo": 0.0, "ci_hi": 2.0},
                {"bench": bench, "group": "diff", "slope_pp": diff[0], "ci_lo": diff[1], "ci_hi": diff[2]}]

    layer = pd.DataFrame(rows("faitheval", (4.0, 1.0, 7.0)) + rows("falseqa", (0.5, -2.0, 3.0)))
    size = pd.DataFrame(rows("faitheval", (1.0, -3.0, 5.0)) + rows("falseqa", (0.2, -1.0, 1.5)))
    cmp = behaviour.control_comparison(layer, size).set_index("bench")
    assert cmp.loc["faitheval", "H minus layer-matched: verdict"] == "H-Neurons' slope above"
    assert cmp.loc["faitheval", "H minus size-matched: verdict"] == "no evidence of a difference"
    assert cmp.loc["faitheval", "H minus size-matched"] == "+1.0 pp/α [-3.0, +5.0]"
    text = behaviour.size_control_reading(cmp.reset_index())
    assert text.startswith("faitheval: the H-Neurons' slope lies above that of layer-matched random "
                           "neurons, and against neurons of their size the reading is: no evidence "
                           "of a difference (+1.0 pp/α [-3.0, +5.0]).")
    assert "On falseqa this run shows no evidence" in text
    # a difference from the size-matched sets alone, carried by the control falling while the
    # H-Neurons' own slope holds 0, with the single sets' range and unequal scored items
    def srows(bench):
        return [{"bench": bench, "group": "h_neurons_control_grid", "slope_pp": 11.0, "ci_lo": -0.2,
                 "ci_hi": 22.0, "alphas": "0, 3"},
                {"bench": bench, "group": "random", "slope_pp": -8.5, "ci_lo": -16.8, "ci_hi": -1.2,
                 "set_min": -16.8, "set_max": -2.9, "alphas": "0, 3"},
                {"bench": bench, "group": "diff", "slope_pp": 19.5, "ci_lo": 4.8, "ci_hi": 34.0, "alphas": "0, 3"}]

    layer2 = pd.DataFrame(rows("sycophancy", (2.0, -1.0, 5.0)))
    size2 = pd.DataFrame(srows("sycophancy"))
    table = pd.DataFrame([{"bench": "sycophancy", "group": g, "alpha": a, "n_scored": n}
                          for g, a, n in (("h_neurons", 0.0, 11), ("random", 0.0, 24),
                                          ("h_neurons", 3.0, 20), ("random", 3.0, 22))])
    cmp2 = behaviour.control_comparison(layer2, size2)
    plain = behaviour.size_control_reading(cmp2)
    assert plain.startswith("sycophancy: no evidence of a difference from layer-matched random neurons, "
                            "but the H-Neurons' slope lies above that of neurons of their size")
    assert "carried by" not in plain  # without the slope frames, nothing more is claimed
    full = behaviour.size_control_reading(cmp2, size2, table)
    assert ("; the H-Neurons' own slope there, +11.0 pp/α [-0.2, +22.0], is not distinguishable from 0, "
            "so the difference is carried by the size-matched sets' fall (-8.5 pp/α [-16.8, -1.2])") in full
    assert "above every single set's" in full and "11 against 24 at α = 0" in full
    assert full.count("..") == 0 and full.endswith(".")


def test_cost_paired_compares_the_same_questions_under_each_condition():
    """The difference is the random sets' mean accuracy minus the H-Neurons', question by
    question; each set's discordant questions and McNemar p are reported; the verdict follows
    the paired interval, where overlapping Wilson intervals would have said nothing."""
    from hneurons_utils.data import QAItem
    from hneurons_utils.stats import wilson_ci

    n = 40
    items = [QAItem(f"q{i}", f"Which city is number {i}?", ["Paris"], "triviaqa") for i in range(n)]
    h = ["Rome."] * 8 + ["Paris."] * 32  # loses 8
    r0 = ["Paris."] * 40  # loses none
    r1 = ["Lyon."] * 2 + ["Paris."] * 38  # loses 2 of the same questions
    recs = behaviour.cost_records(items, {"unsteered (α=1)": ["Paris."] * n, "H-Neurons α=0": h,
                                          "random-0 α=0": r0, "random-1 α=0": r1})
    rows = [{"condition": k, "correct": c, "n": n, "accuracy": c / n, "ci (Wilson)": list(wilson_ci(c, n))}
            for k, c in [("unsteered (α=1)", 40), ("H-Neurons α=0", 32), ("random-0 α=0", 40),
                         ("random-1 α=0", 38)]]
    p = behaviour.cost_paired(rows, recs)
    assert p["n"] == n and p["diff_pp"] == pytest.approx(100 * (39 / 40 - 32 / 40))
    assert p["per_set"]["random-0 α=0"] == {"set_only": 8, "h_only": 0, "p": pytest.approx(2 / 2 ** 8)}
    assert p["per_set"]["random-1 α=0"]["set_only"] == 6 and p["per_set"]["random-1 α=0"]["h_only"] == 0
    assert p["ci"][0] > 0
    assert behaviour.cost_verdict(rows) == "not distinguishable"  # Wilson intervals of 32/40 and 38/40 overlap
    assert behaviour.cost_verdict(rows, records=recs) == "more"
    text = behaviour.cost_reading(rows, records=recs)
    assert "question by question (the same 40)" in text and "The interval excludes 0" in text
    # against size-matched sets, a mean difference that not every set shows on its own says so
    r2 = ["Rome."] * 5 + ["Paris."] * 35  # loses 5 of the H-Neurons' 8: McNemar p = 0.25
    sized = rows + [{"condition": c, "correct": k, "n": n, "accuracy": k / n, "ci (Wilson)": list(wilson_ci(k, n))}
                    for c, k in (("size-matched-0 α=0", 40), ("size-matched-1 α=0", 35))]
    srecs = behaviour.cost_records(items, {"unsteered (α=1)": ["Paris."] * n, "H-Neurons α=0": h,
                                           "random-0 α=0": r0, "random-1 α=0": r1,
                                           "size-matched-0 α=0": r0, "size-matched-1 α=0": r2})
    stext = behaviour.cost_reading(sized, records=srecs)
    assert "so in this run their cost is not their size alone" in stext
    assert "On its own, only 1 of the 2 sets differs from the H-Neurons (McNemar p < 0.05)" in stext
    assert behaviour.cost_paired(rows[:2], recs) is None  # no random set


def test_size_against_reads_smaller_similar_and_larger_models():
    assert behaviour.size_against(135_000_000, 4.0, "Gemma-3-4B") == (
        "135M parameters, about 30 times fewer than the paper's smallest (Gemma-3-4B)")
    assert behaviour.size_against(5_000_000_000, 4.0, "Gemma-3-4B").endswith("about as many as the paper's smallest (Gemma-3-4B)")
    assert behaviour.size_against(70_000_000_000, 4.0, "Gemma-3-4B") == (
        "70.0B parameters, about 18 times more than the paper's smallest (Gemma-3-4B)")
