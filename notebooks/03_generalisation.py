# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Table 1: do H-Neurons generalise?
#
# **The paper's question.** The H-Neurons were selected on TriviaQA answers. Do they still
# tell hallucinated answers from faithful ones on questions they never saw: held-out TriviaQA,
# NQ-Open (same kind of questions, other source), BioASQ (biomedical) and NonExist (questions
# about entities that do not exist)? And are they better than the same number of randomly
# chosen neurons? Gao et al. (2025, Section 2, Table 1) report accuracy well above the
# random baseline on almost every dataset of six models (one exception: Llama-3.1-8B on
# NonExist), with H-Neurons under one per mille of all neurons.
#
# **This chapter regenerates** Table 1 for the model named by `MODEL_ID` (the first code cell
# prints which one this run loaded, and its size): accuracy and AUROC with bootstrap 95%
# intervals on the four datasets, for the H-Neuron probe and for classifiers on random neurons
# over several seeds, beside the paper's published rows. Controls the paper does not run
# follow: the individually best neurons, one answer-span rule for both classes, and the same
# probe on raw activations instead of CETT, with the other label scheme, or with its features
# standardised.
#
# **Inputs:** `probe.json`, `split.json` and `features_triviaqa.npz` from the identification
# chapter (`notebooks/02_identification.py`), run with the same `OUTPUT_DIR` and `MODEL_ID`.

# %% tags=["parameters"]
PROFILE = "default"  # named parameter set (params/<profile>.yaml); this cell holds "default"
MODEL_ID = "SmolLM2-135M-Instruct"  # HF hub id, local folder, or the embedded default
DEVICE = "cpu"  # "cuda" for a GPU; "auto" shards a model too big for one GPU over all of them
DTYPE = "float32"  # "bfloat16" for 7B+ models on GPUs
REMOTE = False  # True: run the traces on NDIF through nnsight (remote execution)
DATA_DIR = None  # benchmark folder; None: $HNEURONS_DATA_DIR, then the Hugging Face Hub
OUTPUT_DIR = "results/default"  # artefacts land in OUTPUT_DIR/<model>/<chapter>
SEED = 0  # every random choice in the chapter
N_EVAL_TRIVIAQA = 600  # TriviaQA test questions, one sampled answer each
N_EVAL_NQ = 1000  # NQ-Open test questions (sized for ten or more right answers at a rate of a few %: default model, one run)
N_EVAL_BIOASQ = 1200  # BioASQ factoid questions (800 gave 9 right answers, one short of a verdict: default model, one run)
N_EVAL_NONEXIST = 1000  # generated NonExist questions (the faithful answer, declining, was rare too: default model, one run)
QA_FILES = {}  # your own QA sets (not in the paper): {"name": "path.jsonl"}, {"question", "answers"} per line
N_EVAL_FILES = 1000  # questions drawn from each of QA_FILES (None: all)
EVAL_PER_CLASS = 500  # cap per class of each balanced evaluation set
EVAL_BATCH = 32  # questions per sampling call
N_RANDOM_SEEDS = 5  # random-neuron classifiers (Table 1's "Random" row)
N_BOOT = 1000  # bootstrap resamples for the 95% intervals
ALL_ANSWERS = True  # also score larger sets (up to ALL_ANSWERS_MAX answers per class) than the balanced one
ALL_ANSWERS_MAX = 300  # cap per class of those sets (seeded draw); None: no cap
SPAN_CONTROL = True  # also refit and score with one span rule for both classes (see below)
PROBE_VARIANTS = ["measure", "scheme", "standardize"]  # recipe refits (see below): raw |z| for CETT; the other label scheme; (un)standardised; [] skips
JUDGE = "rule"  # "rule": alias match + refusal phrases (offline); "llm": OpenAI-compatible endpoint
JUDGE_BASE_URL = "https://api.openai.com/v1"  # used when JUDGE is "llm"
JUDGE_MODEL = "gpt-4o"  # the paper's judge
JUDGE_KEY_ENV = "OPENAI_API_KEY"  # environment variable holding the key (never a parameter)

# %%
import time

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

from hneurons_utils import detection, features, judges, models, pipeline, plots, profiles, sampling, stats

profiles.check_parameters("03_generalisation", globals())  # a list given as text (papermill -p) stops here

plots.setup_style()
ID_DIR = profiles.run_dir(OUTPUT_DIR, MODEL_ID, "identification")
OUT = profiles.run_dir(OUTPUT_DIR, MODEL_ID, "generalisation")
judge = judges.from_params(JUDGE, JUDGE_BASE_URL, JUDGE_MODEL, JUDGE_KEY_ENV)  # None: rule judge
m = models.load_model(MODEL_ID, dtype=DTYPE, device=DEVICE, remote=REMOTE)
profiles.record_environment(OUT, m)  # what the numbers were computed with (environment.json)
probe, split, train_fs = pipeline.load_identification(ID_DIR, m.name)  # refused if another model's
h = probe.h_neurons()
if PROFILE == "smoke":
    display(Markdown("**Smoke profile.** Tiny evaluation sets: every number below only shows "
                     "that the code runs. None of them means anything."))
n_params = sum(p.numel() for p in m.hf.parameters())
print(f"model: {MODEL_ID}, {n_params / 1e6:,.0f}M parameters, {m.adapter.total_neurons:,} MLP neurons")
print(f"probe: {h.size} H-Neurons ({h.per_mille:.3f} per mille), C = {probe.C}, "
      f"{probe.label_scheme}, trained on {len(split['train']['keys'])} responses")

# %% [markdown]
# ## The evaluation sets
#
# For each dataset the model answers each question **once**, with the same prompt and decoding
# settings as in identification (Section 6.1.3, "Evaluation Protocol"). A response is
# *hallucinated* if judged incorrect and *faithful* if judged correct; refusals are left out.
# NonExist has no true answer: there a refusal ("I don't know", "does not exist") is the
# faithful response and any answer a hallucination (the paper does not say how it labels
# NonExist; this is our reading). Your own QA sets join the same way through `QA_FILES`. Each
# set is then balanced, so chance accuracy is 50%. The probe reads only the answer-token CETT
# means of each response (the paper's Eq. 3, built in the previous chapter).

# %%
idc = probe.config  # generation and feature settings of the identification run
ecfg = detection.EvalConfig(per_class=EVAL_PER_CLASS, gen_batch=EVAL_BATCH, max_new_tokens=idc["max_new_tokens"],
                            stop_at_newline=idc["stop_at_newline"], n_boot=N_BOOT, seed=SEED,
                            features=features.FeatureConfig(**idc["features"]))
sizes = {"triviaqa": N_EVAL_TRIVIAQA, "nq_open": N_EVAL_NQ, "bioasq": N_EVAL_BIOASQ,
         "nonexist": N_EVAL_NONEXIST, **{name: N_EVAL_FILES for name in QA_FILES}}
trained_on = pipeline.trained_questions(split, ID_DIR / "responses_triviaqa.jsonl")  # not asked again
sets, empty, seconds = {}, {}, {}
for name, n in sizes.items():  # one dataset at a time, to time each
    cached = (OUT / f"responses_{name}.jsonl").exists()
    t0 = time.monotonic()
    s_, e_ = detection.table1_sets(m, {name: n}, ecfg, OUT, DATA_DIR, judge, files=QA_FILES,
                                   exclude_questions=trained_on)
    sets.update(s_)
    empty.update(e_)
    seconds[name] = time.monotonic() - t0
    print(f"{name}: answers and features in {seconds[name] / 60:.1f} min, "
          f"{seconds[name] / max(n or 1, 1):.2f} s per question"
          + (" (answers partly or wholly reused from an earlier run)" if cached else ""))
counts = detection.counts_frame(sets, empty)
print("faithful answers per hundred questions:", ", ".join(
    f"{k} {100 * r['faithful'] / r['questions']:.1f}" for k, r in counts.iterrows() if r["questions"]))
counts

# %% [markdown]
# The table counts every step: questions asked, how their single answers were judged, how
# many hallucinated and faithful responses that gives, and the size of each balanced class.
# A dataset with a `balanced_per_class` of 0 has no response in one class and cannot be scored.
# The columns up to `faithful` count every answer; `balanced_per_class` and the
# `balanced_span_*` columns count the balanced set only (twice `balanced_per_class` responses):
# how their answer tokens were found (alias match, rule on the first sentence, or the whole
# response as a fallback).
#
# **Do the two classes get different spans?** The next table splits that by class (*alias
# spans*: the share of the class's responses whose span is a gold alias; *answer tokens*: the
# mean span length), with the AUROC that span length alone (more answer tokens = "hallucinated") would reach on each
# balanced set: 0.5 means the spans carry no label information; far from 0.5 means a
# detector could in part read where the span is rather than what the neurons do (see the
# caveat in chapter 2).

# %%
spans = {k: detection.span_diagnostic(es.y, es.answer_tokens, es.span_methods) for k, es in sets.items()}
pd.DataFrame(spans).T.round(2)

# %% [markdown]
# **What counts as faithful on NonExist.** There the faithful class is whatever the rule
# judge calls a refusal (`judges.is_refusal`, with `leading=True`): declining, hedging, or
# saying the entity does not exist, *before* giving any answer; a reply that invents facts
# first and only then says "I'm not able to give ..." or "there is no evidence" counts as an
# answer. A small model apologises often and invents freely, so the rule decides a great deal;
# here are the responses of that class in the balanced set (the first 30, with the count), for
# you to check (an apology *for* something followed by an answer, and "a fictional town in
# ..." with an invented source, are not refusals to the rule; a bare "I'm sorry" and "as an
# AI" are). The converse holds too: a reply that opens by declining and then invents anyway
# ("I can't provide a list without explanation. The X shrew is a large mammal of ...") is a
# decline to the rule, which reads the opening phrase, so this class can hold fabrications:
# read the list for them. Each answer was cut at the identification run's token cap, so a
# decline that was about to go on to an answer still counts as a decline: the cell counts how
# many were cut.

# %%
nonexist_kinds = None
if "nonexist" in sets and (sets["nonexist"].y == 0).any():
    faithful = detection.class_responses(OUT, sets["nonexist"], 0)
    print(f"{len(faithful)} responses in the faithful (declining) class; the first {min(30, len(faithful))}:")
    with pd.option_context("display.max_colwidth", None):
        display(faithful.head(30))
    recs = detection.class_records(OUT, sets["nonexist"])
    full = [r["responses"][0] for r in recs[0]]  # uncut
    nonexist_kinds = pd.Series([judges.refusal_kind(t) for t in full]).value_counts().to_dict()
    print(f"of these {len(faithful)}: " + ", ".join(f"{nonexist_kinds.get(k, 0)} {k}" for k in
                                                  ("denies the entity", "as an AI", "other"))
          + " (judges.refusal_kind)")
    print(detection.faithful_class_reading(nonexist_kinds, len(faithful)))
    cut = detection.at_token_cap(m.tokenizer, full, idc["max_new_tokens"])
    cut_h = detection.at_token_cap(m.tokenizer, [r["responses"][0] for r in recs[1]], idc["max_new_tokens"])
    print(detection.token_cap_note(int(cut.sum()), len(full), idc["max_new_tokens"],
                                   others=(int(cut_h.sum()), len(cut_h))))
else:
    print("NonExist has no faithful response in this run (or was not evaluated)")

# %% [markdown]
# **The judge against hand labels.** As in chapter 2, answers of the default model on these
# datasets were read by hand (`data/judge_labels/answers.jsonl`: single answers from one
# default run, drawn at random within each label the rule gave, labelled after the rule was
# frozen) and the chapter's judge re-labels them. On NonExist the two labels that count are
# *incorrect* (an invented answer: the hallucinated class) and *refusal* (the faithful one).
# Whatever `MODEL_ID` is, these are the default model's answers: the precisions and cautions
# below describe the judge on that model's answers (the cell says so when this run's model
# is another).

# %%
others = [name for name in sizes if name != "triviaqa"]  # chapter 2 checks TriviaQA's
label_summary, label_differ, unavailable = judges.hand_label_check(  # questions read from DATA_DIR, by id
    others, judge or sampling.echo_free_rule_judge, DATA_DIR)
if unavailable:
    print(f"hand labels left out, their questions not readable: {unavailable}")
plots.write_results(OUT, "answer_judge_agreement", {"judge": JUDGE, "rows": label_summary})
judge_name = "the rule judge" if judge is None else f"the {JUDGE} judge"
display(Markdown("\n\n".join(judges.agreement_text(label_summary, name, judge_name) for name in others)))
print(judges.labels_model_note(MODEL_ID) or
      f"(the hand-labelled answers are {judges.LABELS_MODEL}'s, this run's model: the cautions apply as they stand)")
with pd.option_context("display.max_colwidth", None):  # each disagreement, with the human's note
    display(pd.DataFrame(label_differ, columns=["dataset", "question", "judge", "human", "response", "note"]))

# %% [markdown]
# ## The H-Neuron probe on each dataset
#
# Accuracy uses the probe's own decision ($w^\top x + b > 0$ means "hallucinated"), as the
# paper's Table 1 does; AUROC needs no threshold. Intervals are percentile bootstraps over
# responses, resampled within each class. Where the threshold flags every response (or none),
# every resample of a balanced set is right on exactly half: the accuracy interval collapses
# onto 0.5 and means nothing, which the `note` column says.

# %%
ours = {name: stats.detection_metrics(es.y, probe.decision_function(es.X), n_boot=N_BOOT, seed=SEED)
        for name, es in sets.items()}
detection.metrics_frame(ours).round(3)

# %% [markdown]
# ## Random neurons
#
# The paper's baseline is a classifier on as many randomly chosen neurons as the detector
# uses. Our probe reads every neuron with a non-zero weight: the H-Neurons (positive) and
# the negative-weight neurons that vote "faithful", which can outnumber them (both counts are
# printed below). So per seed we train two random
# classifiers on the same training responses and labels (an L2 logistic regression on
# standardised features): one on as many random neurons as the probe reads (Table 1's
# "Random" row below), and one on as many as there are H-Neurons, beside a classifier refit
# on the H-Neurons alone with that same recipe (it gets a bootstrap interval of its own, so it
# is judged by the same rule as the probe). Each comparison is like for like in neuron
# count; the second one also in recipe.

# %%
seeds = [SEED + 1000 + s for s in range(N_RANDOM_SEEDS)]
rows = (detection.baseline_metrics(probe, train_fs, split, sets, seeds, keep_scores=True, n_boot=N_BOOT, seed=SEED)
        if sets and h.size else [])
baselines = detection.baseline_summary(rows) if rows else pd.DataFrame()
print("baselines:", f"{N_RANDOM_SEEDS} seeds x {probe.neurons(0).size} random neurons (the probe's "
      f"count: {h.size} H-Neurons and {probe.neurons(-1).size} negative-weight neurons) and x {h.size} "
      "(the H-Neurons' count)" if rows else
      "none (no H-Neuron was selected, or no dataset could be balanced)")
if rows:
    print(f"recipes: the probe is {detection.probe_recipe_text(probe)}; every classifier in this table "
          "is an L2 fit on standardised features. 'random' vs the probe differs in recipe as well as "
          "neurons; 'H-Neurons refit' vs 'random (H-Neuron count)' differs in neurons only.")
baselines.round(3)

# %% [markdown]
# ## A stronger baseline: the individually best neurons (not in the paper)
#
# Random neurons are a low bar: most of them carry nothing about the answer. A sharper
# question is whether the L1 probe's *joint* selection finds more than a simple screen would.
# On the same training rows we score every neuron alone by its AUROC, keep the best ones
# (as many as there are H-Neurons, ranked by AUROC: more active on hallucinations, like the
# H-Neurons; and as many as the probe reads, ranked by distance from 0.5 in either
# direction), and train them with the random baseline's recipe. If the screened neurons do as
# well as the H-Neurons, what Table 1 shows is a property of the training signal, not of the
# particular neurons L1 picked; the overlap says how many H-Neurons a screen would have found
# anyway. One caution for reading it: the screen is picked on the same training rows as the
# probe, whose answer spans differ in length by class (the span control below), so it can
# pick up span length as readily as the probe can. The reading ends by naming any classifier
# whose AUROC lies further below 0.5 than the noise guide: a reversal, where neurons trained
# (and, for the screen, chosen) on the training rows separate the classes the other way on an
# evaluation set.

# %%
if sets and h.size:
    screen_rows, overlap = detection.screen_baseline(probe, train_fs, split, sets)
    screen = detection.screen_frame(ours, rows, screen_rows)
    plots.write_results(OUT, "screen_baseline", {"rows": screen_rows, "overlap": overlap,
                                                 "table": screen.reset_index().to_dict("records")})
    print("\n".join(detection.screen_reading(screen, overlap)))
    print("table: AUROC (as a fraction) of each classifier on the balanced sets; 'probe CI "
          "half-width': half the width of the probe's 95% bootstrap interval")
    display(screen.round(3))
else:
    print("skipped (no H-Neuron was selected, or no dataset could be balanced)")

# %% [markdown]
# ## Up to `ALL_ANSWERS_MAX` answers per class, not only a balanced subset
#
# A balanced set is as large as its smaller class. When the model answers few questions
# correctly (the counts table says whether it does here), most of its hallucinated answers
# are left out above. AUROC does not depend on the ratio of the classes: scoring a larger
# draw of the judged answers (`ALL_ANSWERS`; a seeded draw of at most `ALL_ANSWERS_MAX` per
# class, to bound the CPU time, made apart from the balanced one: a class under the cap is
# whole in both sets, a capped class need not hold every answer the balanced set took from
# it; the cell prints how many of each class it keeps) uses far more of the larger class, at
# the price of departing from the paper's balanced protocol (whose accuracy, in Table 1, needs
# balance to have 50% as chance). The smaller class does not grow, so the intervals narrow
# only as far as the noise from the larger class shrinks (compare them with the balanced ones
# above: how far depends on the set); what the larger sets add is a score on many more of the
# model's hallucinations, and a check that the balanced draw was not a lucky one. Same probe,
# same random classifiers; only the evaluation sets grow. These sets use
# the same answer-span rules as the balanced ones, so their verdicts face the same span
# confound: the span control below is scored on them too, and the reading at the end applies
# the same credit rule to them.

# %%
full, ours_all, base_all = {}, {}, pd.DataFrame()
if ALL_ANSWERS and sets:
    full = {k: detection.full_eval_set(m, es, ecfg, OUT, ALL_ANSWERS_MAX) for k, es in sets.items()}
    ours_all = {k: stats.detection_metrics(es.y, probe.decision_function(es.X), n_boot=N_BOOT,
                                           seed=SEED) for k, es in full.items()}
    rows_all = detection.baseline_metrics(probe, train_fs, split, full, seeds) if h.size else []
    base_all = detection.baseline_summary(rows_all) if rows_all else pd.DataFrame()
    spans_all = {k: detection.span_diagnostic(es.y, es.answer_tokens, es.span_methods) for k, es in full.items()}
    counts_all = {k: {c: v for c, v in es.counts.items() if c != "answer_spans"} for k, es in full.items()}
    all_table = detection.all_answers_frame(ours_all, base_all)
    plots.write_results(OUT, "all_answers", {"ours": ours_all, "baselines": rows_all, "spans": spans_all,
                                             "counts": counts_all})
    print("\n".join(f"{k}: {detection.capped_label(counts_all[k], d['n_pos'], d['n_neg'])}"
                    for k, d in ours_all.items()))
    print("\n".join(detection.reading(ours_all, base_all, {})))
    print("(under the default span rule; the span check of these verdicts is in the reading at the end)")
    display(all_table.round(3))
else:
    print("skipped (ALL_ANSWERS = False, or no dataset could be balanced)")

# %% [markdown]
# ## Control: one span rule for both classes
#
# The span table above shows that, under the default rule, the two classes get different
# answer spans (the gold alias for faithful answers, the content rule's longer span for
# hallucinated ones) and how well span length alone would detect. To see how much of the
# probe's result survives without that difference, `SPAN_CONTROL` re-featurises the training
# responses and these evaluation sets with the content rule for every response (no gold
# alias is used anywhere), refits the probe with the same $C$, and scores it again, on the
# balanced sets and on the larger ones above. If the refit stays above chance while span
# length alone drops towards 0.5, detection survives without the span difference, even if its
# AUROC falls part of the way (the paired drop below measures how far; how much of the margin
# over random neurons survives is another question: those were fit on the default spans); if
# it falls to chance, it rested on the spans.
#
# Both scores are computed on the same responses, so the fall can be measured directly: the
# *paired drop* is the probe's AUROC under the default rule minus the refit's under one rule,
# with a bootstrap interval that resamples the responses (within each class) once per
# replicate and scores both on that resample. Three outcomes follow. The refit stays above
# chance: the detection survives the control. The refit is not distinguishable from chance
# and the drop's interval lies above 0: it does not survive. The refit is not
# distinguishable from chance but the drop's interval includes 0: the control is too
# uncertain to tell, and the detection is *not shown* to survive; it is not credited to the
# H-Neurons either way, but only the second outcome counts against it.

# %%
rule = idc["features"].get("span_rule", "alias")
if SPAN_CONTROL and sets and rule == "alias":
    ctl = detection.span_rule_control(m, probe, split, sets, ecfg, ID_DIR, OUT, n_boot=N_BOOT,
                                      also={"all_answers": full} if full else None)
    plots.write_results(OUT, "span_control", ctl)
    print("\n".join(detection.span_control_reading(ctl, ours)))
    if full:
        print("\n".join(detection.span_control_reading(
            ctl, ours_all, group="all_answers",
            label=f"up to {ALL_ANSWERS_MAX} per class, " if ALL_ANSWERS_MAX else "every judged answer, ")))
else:
    ctl = None
    print("skipped:", "SPAN_CONTROL is False" if not SPAN_CONTROL else "no evaluation set" if not sets
          else f"chapter 2 already used one rule ({rule!r}) for both classes")

# %% [markdown]
# ## The detection and its confound, in one figure
#
# ROC curves on each balanced set: the H-Neuron probe, the classifiers on as many random
# neurons (one thin line per seed), the probe refit with one span rule for both classes (the
# control above), and span length alone (more answer tokens = "hallucinated", under the
# default rule). A curve on the diagonal detects nothing. Where span length alone runs as high
# as the probe and the control falls towards the diagonal, the probe's curve cannot be read as
# the H-Neurons' doing. Sets with fewer than ten responses per class are drawn but carry no
# verdict.

# %% mystnb={"figure": {"caption": "ROC curves of hallucination detection on each balanced evaluation set: the H-Neuron probe, random-neuron classifiers (each seed), the probe refit with one span rule for both classes, and answer-span length alone; dotted: chance. Legend values are AUROCs.", "name": "fig-roc"}, "image": {"alt": "ROC curves of hallucination detection on each balanced evaluation set"}}
fig, drawn = plots.roc_figure(sets, {k: probe.decision_function(es.X) for k, es in sets.items()}, rows, ctl)
if fig is not None:
    plots.save_figure(fig, OUT, "roc_curves", drawn)
    plt.show()
else:
    print("no evaluation set has two or more responses per class: no ROC curve to draw")

# %% [markdown]
# ## Three design choices, each tested by a recipe refit (not in the paper)
#
# The probe rests on three choices the paper does not test against alternatives on held-out
# sets. **The measure:** CETT weighs each activation $|z_{j,t}|$ by
# $\lVert W_{down}[:, j]\rVert / \lVert h_t\rVert$, so a neuron counts for what it adds to
# the layer's output at that token, not for its raw size (here $h_t = W_{down} z_t$ is the FFN
# block's output at token $t$, the sum of every neuron's contribution). Does detection need that, or do raw
# activations do as well? **The labels:** the paper's "3-vs-1" scheme puts faithful answer
# tokens and every non-answer token in the negative class; "1-vs-1" contrasts hallucinated
# with faithful answer tokens only, which the official repository's README says detects
# better. **The scaling:** the paper fits raw CETT means, so the L1 penalty favours neurons
# whose CETT is large; z-scoring each neuron first lets all compete on equal terms (and makes
# the column norm $\lVert W_{down}[:, j]\rVert$ irrelevant).
#
# Each alternative is set against a *reference* recipe (the chapter probe's: CETT, its label
# scheme, its scaling), and all get one protocol so that only the choice differs: the probe's
# penalty, fitted on chapter 2's training responses, with $C$ chosen on the same grid
# by held-out accuracy alone (chapter 2's probe also weighs a suppression run, which this
# comparison leaves out for every recipe), then scored on the balanced sets above. The
# reference is therefore a refit of the chapter probe's recipe, not the probe itself: its $C$,
# and so its number of H-Neurons, can differ from the probe's (the last lines below give each
# refit's $C$ and size, with its H-Neurons per mille of all neurons, flagged above the paper's
# one per mille: such a refit is not sparse like the chapter's probe, and a comparison with it
# is a comparison of denser probes), and so can its AUROC on a set. The
# *paired difference* is the reference's AUROC minus the alternative's on the same responses,
# with a bootstrap interval that resamples the responses once per replicate for both. With
# unstandardised features (the default, as in the paper) raw activations and CETT also differ
# in scale, so the L1 penalty picks different kinds of neurons under each: that is part of
# what is being compared.

# %%
if PROBE_VARIANTS and sets:
    t0 = time.monotonic()
    rctl = detection.recipe_control(m, probe, split, sets, ecfg, ID_DIR, OUT, idc["Cs"], n_boot=N_BOOT,
                                    variants=PROBE_VARIANTS)
    plots.write_results(OUT, "recipe_control", rctl)
    print("\n".join(detection.recipe_reading(rctl)))
    print(f"({time.monotonic() - t0:.0f} s)")
else:
    rctl = None
    print("skipped:", "PROBE_VARIANTS is empty" if not PROBE_VARIANTS else "no evaluation set")

# %% mystnb={"figure": {"caption": "Recipe refits on each balanced set: left, the AUROC of the reference refit (the probe's own recipe: CETT, its label scheme, its scaling; a refit with its own C and size, not the chapter's probe) and of each alternative, all with C chosen by held-out accuracy; right, the paired AUROC difference, reference minus alternative. Dotted: chance (left) and no difference (right). Bars: 95% bootstrap intervals.", "name": "fig-recipes"}, "image": {"alt": "AUROC of the reference refit on CETT and of its variants (raw activations, the other label scheme, the other scaling), per dataset, with paired differences"}}
if rctl:
    fig, drawn = plots.recipe_figure(rctl)
    plots.save_figure(fig, OUT, "recipe_control_figure", drawn)
    plt.show()
else:
    print("no refits to draw")

# %% [markdown]
# ## Our Table 1 beside the paper's
#
# The paper's rows are accuracy (%) for six models of 4B to 70B parameters; ours are one
# model (`MODEL_ID`; the cell prints its size), with the number of responses per class.
# Every row says whose it is.
# "Ratio" is, as the paper's caption defines it, "the proportion of total neurons that are
# selected for classifiers", in per mille; "neurons read" is how many neurons a classifier of
# ours uses. Our probe reads every neuron with a non-zero weight, negative ones included, so
# it reads more than the H-Neurons (its positive weights); the random row beside it reads as
# many. The paper's text calls its selected neurons H-Neurons without settling whether the
# negative weights count (chapter 2), so its ratios are comparable with either of our two.
# The last two rows are the like-for-like pair: the H-Neurons alone (refit) against as many
# random neurons. Each of our rows names its recipe: the probe is the L1 fit of chapter 2, as
# identified; the random and refit classifiers are L2 fits on standardised CETT (an L2 fit
# keeps every neuron it is given, so each reads exactly the count it is matched to; the refit
# uses the same recipe so that the like-for-like pair differs only in its neurons).
# Dataset columns are accuracy in percent. A blank cell is one the paper does not state.

# %%
label = f"ours ({MODEL_ID})"
print(f"ours: {MODEL_ID}, {n_params / 1e6:,.0f}M parameters; responses per class",
      ", ".join(f"{k} {d['n_pos']}" for k, d in ours.items()), "(the intervals are in the tables above)")
table = detection.table1_comparison(ours, baselines, m.adapter.total_neurons, label, list(sizes),
                                    n_used=probe.neurons(0).size, n_h=h.size)
plots.write_results(OUT, "table1", {"ours": ours, "baselines": rows, "empty": empty, "spans": spans,
                                    "table": table.reset_index().to_dict("records")})
shown, footnote = detection.table1_shown(table, ours, label)  # blank: the paper does not state it
with pd.option_context("display.max_colwidth", None):  # row labels in full
    display(shown)
if footnote:
    print(footnote)

# %% mystnb={"figure": {"caption": "Table 1 as a figure, for the model named in its title. Top, detection accuracy on balanced sets: the paper's six models in grey (one marker each; H-Neurons filled, random hollow) and ours in colour, each labelled with its neuron count and recipe: the H-Neuron probe with its 95% bootstrap interval (a degenerate interval is named, not drawn), random neurons of the probe's count (each seed and their mean), and the like-for-like pair, the H-Neurons refit against as many random neurons. Bottom, AUROC of ours, the threshold-free comparison (the paper's Table 1 gives none). Below each dataset, our number of responses per class (under ten: too few for a verdict).", "name": "fig-table1"}, "image": {"alt": "Detection accuracy and AUROC per dataset: our probe, random neurons, the H-Neurons refit and the paper's six models"}}
fig, numbers = plots.table1_figure(
    ours, rows, list(sizes), model=MODEL_ID,
    probe_label=f"H-Neuron probe (L1, as identified; {probe.neurons(0).size} neurons read, {h.size} of them H-Neurons)")
plots.save_figure(fig, OUT, "table1_accuracy", numbers)
plt.show()

# %% [markdown]
# ## Accuracy and where the thresholds fall
#
# Table 1's accuracy depends on each classifier's threshold as well as on how it ranks the
# responses. All of ours learn their threshold on the identification training rows (under
# the default 3-vs-1 scheme the "faithful" side there also holds every non-answer token), so
# on a balanced evaluation set it can sit far off-centre. The cell below gives, per
# classifier, the share of responses it flags as hallucinated (half of each balanced set is):
# a classifier that flags few or none, or most or all, is right on about half of the set
# whatever it knows, which pulls accuracy towards 50% for the random baselines as much as for
# the probe.

# %%
flagged = detection.flagged_frame(ours, rows)
print(detection.threshold_reading(flagged, ours, rows))
flagged.round(2)

# %% [markdown]
# ## Reading the result
#
# The cell below states, from the numbers above, where our probe's AUROC interval lies above
# chance (its lower end above 0.5) and above the random classifiers (its lower end above their
# mean AUROC), and where the evidence is too thin to say. Clearing the random *mean* is a
# weaker test than non-overlapping intervals: the random spread is printed beside it, and a
# lower end that clears the mean by less than the mean's own standard error (spread over the
# square root of the number of random sets) is marked "narrowly". The
# paragraph after it reads them together with the span control above, and sets the probe's
# comparison with random neurons (which differs in recipe as well as in neurons: an L1 fit on
# unstandardised CETT against L2 fits on standardised features) beside the like-for-like pair
# (the H-Neurons refit with the random classifiers' recipe against as many random neurons).
# Where the classes got
# different span rules and the probe refit with one span rule for both classes is not above
# chance, the default-rule verdict is not credited to the H-Neurons; the paired drop says
# whether the control shows a fall ("does not survive") or is too uncertain to tell ("not
# shown to survive"). The refit only has to clear chance, so span length alone under the same
# one rule is printed beside it. One line per scored dataset then says whether its detection
# is credited to the H-Neurons and why, with the judge's cautions from the hand labels. The
# last paragraph applies the same rule to the larger sets (up to `ALL_ANSWERS_MAX` per class).

# %%
notes = {k: f"judge caution (hand labels of {judges.LABELS_MODEL}'s answers): {c}"
         for k in ours if (c := judges.label_check(label_summary, k)[1])}
if nonexist_kinds and "nonexist" in ours:  # what the faithful class holds, read with the verdict
    notes["nonexist"] = "; ".join(filter(None, [detection.faithful_class_reading(
        nonexist_kinds, ours["nonexist"]["n_neg"], detection.metrics_verdict(ours["nonexist"])), notes.get("nonexist")]))
print("\n".join(detection.reading(ours, baselines, empty)))
print("\n" + detection.overall_reading(ours, baselines, ctl, spans, notes=notes,
                                        probe_recipe=detection.probe_recipe_text(probe)))
if ours_all:
    print("\n" + detection.capped_reading(
        ours_all, base_all, ctl, spans_all, counts_all,
        balanced=detection.credit_map(ours, baselines, (ctl or {}).get("datasets"), spans)))

# %% [markdown]
# ## What this can and cannot show
#
# - **The smaller class decides.** A balanced set is as large as its smaller class, and for a
#   small model that is the *correct* answers: the counts table shows how many questions of
#   each dataset this model answers correctly with one sample at temperature 1.0. Only
#   datasets with at least ten answers per class get a verdict above; the others are shown for
#   completeness and carry no evidence either way. The larger sets (up to `ALL_ANSWERS_MAX`
#   per class) add answers of the larger class but cannot create more of the smaller one.
# - **NonExist needs refusals.** On fabricated entities the faithful response is to decline.
#   Small chat models rarely do (the counts cell prints this run's faithful answers per
#   hundred questions), so a thousand questions may give a faithful class of only one or two
#   dozen. Two things set this column apart: no gold alias exists, so in the evaluation set
#   both classes get their spans from the same rule (the probe's *training* spans still differ
#   by class, and the one-rule refit shows how much that alone moves the AUROC here); and a
#   refusal ("I'm sorry, I don't have information on ...") differs from an invented answer in
#   its whole form, so any probe may separate the two. Only the margin over random neurons
#   speaks for the H-Neurons there. Separating them is not the same as ranking them the right
#   way: the probe's faithful rows were correct answers, never a refusal, so nothing in its
#   training says on which side a refusal falls, and a probe that finds refusals *more*
#   hallucination-like than invented answers scores below 0.5 (an interval wholly below 0.5
#   is a reversal of that kind; a reading, not a test). The paper's NonExist column is its
#   highest on most of its models, but on Llama-3.1-8B it sits below the random neurons (the
#   paper's rows above). The refusal class rests on the rule judge, checked on a
#   few dozen hand labels (above); the listing above it shows the responses it counts as
#   declining (the first 30), and how many of them the token cap cut short.
# - **What the labels hold.** The hand labels above measure the judge, not the probe. A small
#   model often answers with neither an answer nor a decline, and the rule calls such replies
#   hallucinations; where they make up most of a set's hallucinated class (a caution above says
#   so), a detector may separate rambling from answering rather than wrong answers from right
#   ones, and a verdict on that set speaks of the former. A judge told how to treat replies
#   that state no answer (the `llm` judge's prompt is in `judges.JUDGE_TEMPLATE`), checked on
#   more hand labels, is the way to narrow the class.
# - **Accuracy versus AUROC.** Every classifier here, the probe and the random baselines alike,
#   takes its threshold from the training labels, where (under the default "3-vs-1" scheme)
#   the negative class also holds every non-answer token; on a balanced evaluation set the
#   threshold may sit off-centre, so accuracy can stay near 50% while AUROC (which needs no
#   threshold) is well above it. The threshold cell above gives each classifier's share of flagged responses:
#   a random baseline's accuracy near 50% says as little about its ranking as the probe's.
#   AUROC is the threshold-free comparison; the paper reports accuracy; we report both.
# - **Random neurons.** The random classifiers use exactly as many neurons, drawn uniformly
#   over all layers, and are trained on the same rows; "above random neurons" requires the
#   probe's interval to clear their mean. Where a random mean sits below 0.5 (the reading
#   marks it), clearing it adds nothing to clearing chance. A mean more than two spreads
#   below 0.5 (the reading marks it) is consistent across seeds, but the spread is over seeds
#   scored on the same answers, not the sampling noise of the set; if the reversal is real,
#   the random neurons carry a signal that flips between training and evaluation: trained on 3-vs-1 rows, which mostly
#   contrast answer tokens with other tokens, they can learn "answer-like", and on the
#   evaluation sets the short gold-alias spans of faithful answers may look more answer-like
#   than hallucinated answers' longer spans (a hypothesis, not tested here). That cannot be
#   the reason on NonExist, where no answer has an alias span; there the faithful class is
#   refusals, which no training row resembles (the NonExist bullet above).
# - **Screened neurons.** The stronger baseline picks its neurons on the training rows only,
#   as the probe does, so it sees no evaluation answer. Its classifiers are single fits
#   without intervals of their own, so a gap between them and the H-Neuron refit counts only
#   beyond the noise guide (half the probe's 95% interval on that set); where the screened
#   neurons sit far below chance, no comparison is drawn. The paper has no such baseline.
# - **Answer spans differ by class.** The span table above shows it: faithful answers get the
#   gold alias as their span, hallucinated ones (which contain no gold alias) the content
#   rule's longer span. Where
#   span length alone detects well, the probe's success is not cleanly attributable to the
#   H-Neurons; the span control above refits without the difference, and exercise 4 reruns
#   the whole pipeline (C selection included) that way.
# - **Design choices.** The recipe refits choose $C$ by held-out accuracy alone, so
#   their reference is not the chapter's probe (whose $C$ also weighs a suppression run) but
#   a refit of its recipe, with a $C$ and a size of its own. A difference whose interval includes 0 says the two recipes are not told apart
#   on these sets, not that they are equal; at a few dozen responses per set only a large gap
#   can show.
#
# ## Exercises
#
# 1. The evaluation sizes aim at ten or more faithful answers per dataset on the default
#    model, from the rates of earlier runs; sampling at temperature 1.0 can fall short (the
#    counts table shows how many this run got, and a set under ten gets no verdict). Halve
#    `N_EVAL_NQ`, `N_EVAL_BIOASQ` and `N_EVAL_NONEXIST`, or double them: how do the intervals
#    and verdicts move? The timings printed above the counts give the cost per question on
#    your machine, for the answers a run generates itself (a rerun that reuses stored answers
#    times only what it adds; {doc}`reproducing` gives a full run's times).
# 2. Rerun chapter 02 with `LABEL_SCHEME = "1-vs-1"` and then this chapter: which scheme
#    transfers better to NQ-Open?
# 3. Replace the rule judge with the LLM judge (`JUDGE = "llm"`). How many labels change, and
#    in which direction?
# 4. Rerun chapter 02 with `SPAN_RULE = "content"` (one span rule for both classes), then this
#    chapter. Does span length still separate the classes, and does the TriviaQA AUROC hold?
# 5. In that same rerun, compare the H-Neurons with the individually best neurons again. With
#    span length no longer a cue, does the screen still match or beat them?
# 6. The recipe refits fit raw activations unstandardised, as the reference is. Rerun
#    chapter 02 with `STANDARDIZE = True` (every neuron z-scored, so the column norm
#    $\lVert W_{down}[:, j]\rVert$ cancels and only the division by $\lVert h_t\rVert$ tells
#    the two measures apart), then this chapter: does the gap between them change?
# 7. Write twenty questions of your own, with their answers, as `mine.jsonl` (the format of
#    `data/example_qa.jsonl`) and pass `-y "QA_FILES: {mine: mine.jsonl}"`. How many of
#    them does the model answer correctly, and is that enough for a verdict?
