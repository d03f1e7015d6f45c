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
# # Finding the H-Neurons
#
# **The paper's question.** Is there a small set of FFN neurons whose activity tells, from
# the inside, whether the model is about to state a falsehood? Gao et al. (2025, Section 2)
# answer yes: a sparse logistic regression on per-neuron CETT features, trained on answers
# the model gets consistently right or consistently wrong, keeps fewer than one neuron in a
# thousand, and those neurons (the *H-Neurons*) predict hallucination.
#
# **This chapter regenerates** the identification pipeline of Sections 2 and 6.1, by default
# on the embedded SmolLM2-135M-Instruct (any supported model through the parameters, e.g.
# `params/paper.yaml`): sampling with the paper's settings, the consistency
# filter, answer-token CETT features, the L1 probe and its choice of $C$, the H-Neuron count
# as a per-mille ratio (Table 1's "Ratio" column) and where in the network the H-Neurons sit.
# It writes `probe.json`, which the next three chapters read.
#
# **Inputs:** TriviaQA training questions; the CETT definition of the previous chapter.

# %% tags=["parameters"]
PROFILE = "default"  # named parameter set (params/<profile>.yaml); this cell holds "default"
MODEL_ID = "SmolLM2-135M-Instruct"  # HF hub id, local folder, or the embedded default
DEVICE = "cpu"  # "cuda" for a GPU; "auto" shards a model too big for one GPU over all of them
DTYPE = "float32"  # "bfloat16" for 7B+ models on GPUs
REMOTE = False  # True: run the traces on NDIF through nnsight (remote execution)
DATA_DIR = None  # benchmark folder; None: $HNEURONS_DATA_DIR, then the Hugging Face Hub
OUTPUT_DIR = "results/default"  # artefacts land in OUTPUT_DIR/<model>/<chapter>
SEED = 0  # every random choice in the chapter
N_SCREEN = 1300  # TriviaQA training questions considered (params/paper.yaml: 8,837, all of the local file, whose 8,833 usable rows are then taken; the Hub split is larger)
SCREEN = True  # answer greedily first, sample only candidates (CPU budget; paper: no screening)
N_SAMPLES = 10  # sampled answers per candidate question (paper: 10)
MIN_AGREEMENT = 0.6  # share of the samples that must agree (paper: 1.0; see the filter below)
TRAIN_PER_CLASS = 1000  # cap on consistent questions per class (paper: 1,000)
VAL_FRACTION = 0.25  # share of each class's questions held out to choose C
RESPONSES_PER_QUESTION = 4  # distinct same-label responses per question (paper: 1)
SCREEN_BATCH = 64  # questions per greedy generate call
SAMPLE_BATCH = 8  # questions per sampling call (each with N_SAMPLES sequences)
QA_MAX_NEW_TOKENS = 24  # answer length cap (answers also stop at their first newline)
FEATURE_BATCH = 8  # responses per traced forward pass
OTHER_TOKENS = "all"  # "all": every non-answer token (paper, Eq. 3); "output": response only
SPAN_RULE = "alias"  # answer tokens: "alias" (gold alias first) or "content" (one rule for both classes)
LABEL_SCHEME = "3-vs-1"  # the paper's labels; "1-vs-1": answer tokens only
STANDARDIZE = False  # True: z-score each neuron before the L1 fit (paper: raw CETT)
PROBE_TOL = 1e-8  # the L1 solver's stopping tolerance (scikit-learn's default, 1e-4, stops short of Eq. 4's minimum: see below)
PROBE_SOLVE = "full"  # "full": liblinear on every neuron; "working-set": the same minimiser in far less memory (params/paper.yaml)
C_GRID = [0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0]  # inverse L1 strengths searched
SUPPRESSION_QUESTIONS = 32  # >0: add accuracy with H-Neurons silenced to the C score (paper): questions per stratum
SUPPRESSION_TERM = "triviaqa"  # "triviaqa": estimated TriviaQA accuracy, silenced (the paper's term); "known": known questions only
SHOW_NEURONS = 12  # H-Neurons listed one by one below (largest weight first)
STABILITY_RESAMPLES = 20  # bootstrap refits of the probe to test the H-Neuron set (0: skip; not in the paper)
ROUNDING_SHARES = [0.0001, 0.001, 0.01]  # shares of the stored features moved one float16 step before a refit
ROUNDING_DRAWS = 5  # refits per share (0: skip; not in the paper)
CHECK_TOL = 1e-4  # the probe refit at this solver tolerance (scikit-learn's default) for comparison (0: skip; not in the paper)
CHECK_SOLVE = True  # refit the probe by the other PROBE_SOLVE route and compare (False: skip)
JUDGE = "rule"  # "rule": alias match + refusal phrases (offline); "llm": OpenAI-compatible endpoint
JUDGE_BASE_URL = "https://api.openai.com/v1"  # used when JUDGE is "llm"
JUDGE_MODEL = "gpt-4o"  # the paper's judge
JUDGE_KEY_ENV = "OPENAI_API_KEY"  # environment variable holding the key (never a parameter)

# %%
import textwrap
import time

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

from hneurons_utils import answer_spans, data, detection, features, judges, models, paper, pipeline
from hneurons_utils import neurons, plots, profiles, sampling
from hneurons_utils.probe import FitCache

profiles.check_parameters("02_identification", globals())  # a list given as text (papermill -p) stops here

plots.setup_style()
OUT = profiles.run_dir(OUTPUT_DIR, MODEL_ID, "identification")
judge = judges.from_params(JUDGE, JUDGE_BASE_URL, JUDGE_MODEL, JUDGE_KEY_ENV)  # None: rule judge
if SUPPRESSION_TERM not in pipeline.SUPPRESSION_TERMS:
    raise ValueError(f"SUPPRESSION_TERM = {SUPPRESSION_TERM!r}: choose one of {sorted(pipeline.SUPPRESSION_TERMS)}")
m = models.load_model(MODEL_ID, dtype=DTYPE, device=DEVICE, remote=REMOTE)
profiles.record_environment(OUT, m)  # what the numbers were computed with (environment.json)
cfg = pipeline.IdentifyConfig(
    n_samples=N_SAMPLES, min_agreement=MIN_AGREEMENT, train_per_class=TRAIN_PER_CLASS,
    val_fraction=VAL_FRACTION, responses_per_question=RESPONSES_PER_QUESTION, screen=SCREEN,
    screen_batch=SCREEN_BATCH, gen_batch=SAMPLE_BATCH, max_new_tokens=QA_MAX_NEW_TOKENS,
    label_scheme=LABEL_SCHEME, standardize=STANDARDIZE, tol=PROBE_TOL, solve=PROBE_SOLVE, Cs=tuple(C_GRID), seed=SEED,
    features=features.FeatureConfig(OTHER_TOKENS, batch_size=FEATURE_BATCH, span_rule=SPAN_RULE))
if PROFILE == "smoke":
    display(Markdown("**Smoke profile.** A few dozen questions and a few samples each: every "
                     "number below only shows that the code runs. None of them means anything."))
print(f"{MODEL_ID}: {m.adapter.total_neurons:,} FFN neurons ({m.adapter.n_layers} layers)")

# %% [markdown]
# ## Step 1: sampling answers
#
# Each question is put to the model in its chat template, followed by *"Respond with the
# answer only, without any explanation."*, and answered with the paper's decoding settings:
# temperature 1.0, top-$k$ 50, top-$p$ 0.9, 10 samples per question (Section 6.1.1), each cut
# at its first newline and at `QA_MAX_NEW_TOKENS` new tokens (a CPU budget): an answer still
# going at the cap is judged on what it said so far, so an alias it would have reached later
# is missed and the answer counts as incorrect. A rule
# judge labels each answer *correct* (a gold TriviaQA alias occurs in it), *incorrect*, or
# *refusal*; aliases that the question itself contains are ignored, so that echoing the
# question does not count as knowing the answer.
#
# **The CPU budget.** The paper samples 10 answers for every question on GPUs. On a CPU that
# would take hours, and a small model answers few TriviaQA questions correctly (with
# screening, its greedy accuracy is printed below), so most of that work would be thrown
# away. With `SCREEN = True` every question is first answered greedily, and sampling then runs
# in two stages (`pipeline.sample_consistency`): the `N_SAMPLES` samples are drawn for *every*
# question answered correctly; then questions answered incorrectly are sampled in rounds until
# they alone give as many consistently incorrect questions (Step 2) as the first stage gave
# consistently correct ones (at most `TRAIN_PER_CLASS`), or run out. A round samples
# $\lceil 1.5\,k \rceil$ new greedy-incorrect questions, $k$ being the consistently incorrect
# ones still missing (`IdentifyConfig.pool_factor`): not every greedy-incorrect question turns
# out consistently incorrect, so a round takes half as many again as it needs. Questions answered
# greedily with a refusal are not sampled. The screen only chooses which questions are
# sampled; a question's label comes from its samples alone, as in the paper, which looks at
# no greedy answer. At temperature 1.0 a model can lose an answer it gives greedily, so a
# greedy-correct question can end up consistently *incorrect* and join the hallucinated class
# on top of the greedy-incorrect ones; Step 2 counts how often that happened, as a rate within
# each group: how many of the class come from each group is set by this sampling budget (every
# greedy-correct question, only as many greedy-incorrect ones as needed), not by the model. With
# `SCREEN = False` every question is sampled, as in the paper. Collection is written to JSONL
# question by question and resumes where it stopped; so do the later steps (features, each
# probe fit in `fits/`, each suppression score in `suppression/`): a rerun after an
# interruption redoes only what is missing, and a rerun of a finished chapter recomputes nothing
# it has.

# %%
items = data.load_qa("triviaqa", "train", DATA_DIR, limit=N_SCREEN, seed=SEED)
files = {"screen": "responses_triviaqa_greedy.jsonl", "sampling": "responses_triviaqa.jsonl",
         "features": "features_triviaqa.npz"}
reused = {k: (OUT / f).exists() for k, f in files.items()}  # an earlier run's file: reused
took = lambda k: (f"reused from {files[k]}, an earlier run's file ({timings[k + '_s']:.0f} s to read it "  # noqa: E731
                  "and compute what it lacked)" if reused[k] else f"in {timings[k + '_s']:.0f} s")
t0 = time.monotonic()
greedy = pipeline.screen_greedy(m, items, OUT, cfg, judge=judge) if SCREEN else None
timings = {"screen_s": time.monotonic() - t0}
if greedy is not None:
    g = sampling.label_counts(greedy)
    print(f"{len(greedy)} questions answered greedily, {took('screen')}: {g}; "
          f"greedy accuracy {g['correct'] / len(greedy):.1%}")

# %%
t0 = time.monotonic()
sampled = pipeline.sample_consistency(m, items, greedy, OUT, cfg, judge=judge)
timings["sampling_s"] = time.monotonic() - t0
consistent = sampling.consistency_split(sampled, MIN_AGREEMENT)
counts = pipeline.yield_counts(items, greedy, sampled, consistent)
print(f"{counts['sampled']['samples']} answers sampled for {len(sampled)} questions, {took('sampling')}")

# %% [markdown]
# ## Step 2: the consistency filter
#
# The paper keeps a question only if all 10 sampled answers are correct, or all 10 are
# incorrect (refusals are neither), so that a label describes what the model *knows* rather
# than a lucky or unlucky draw. Write $c_q$ for the number of correct answers among the
# $n$ samples of question $q$ and $w_q$ for the incorrect ones; the filter with agreement
# threshold $\tau$ keeps
#
# ```{math}
# \text{faithful: } c_q \ge \lceil \tau n \rceil, \qquad
# \text{hallucinated: } w_q \ge \lceil \tau n \rceil, \qquad \tau_\text{paper} = 1 .
# ```
#
# The histogram shows $c_q$ for the sampled questions, split by what the greedy answer was,
# with both rules drawn.

# %% mystnb={"figure": {"caption": "How consistently the model answers: correct answers c among each question's n samples, split by the label of its greedy answer. Dashed: the faithful rule, c >= k with k = ceil(tau n) for the threshold tau used; dotted: the hallucinated rule, at least k incorrect samples, which is c <= n - k for a question without refusals (a question with refusals needs fewer correct answers still).", "name": "fig-consistency"}, "image": {"alt": "How consistently the model answers"}}
fig, numbers = plots.consistency_figure(sampled, greedy, N_SAMPLES, MIN_AGREEMENT)
plots.save_figure(fig, OUT, "consistency_histogram", numbers)
plt.show()

# %%
plots.write_results(OUT, "yields", counts)
print({k: v for k, v in counts.items() if k in ("questions", "greedy", "sampled")})
pd.DataFrame(pipeline.agreement_yields(sampled, [1.0, 0.9, 0.8, 0.7, 0.6])).set_index("min_agreement")

# %% [markdown]
# The table counts the consistent questions for several thresholds $\tau$ on the same samples
# (the first row is the paper's filter). On GPUs the paper obtains 1,000 questions per class
# with $\tau = 1$. For a small model such as the default one the binding constraint is the
# *faithful* class: few questions are answered correctly even greedily (with screening, the
# greedy accuracy above), and at temperature 1.0 many of those are answered correctly only
# some of the time, so the strict rule keeps few or none (read the first row). That is a
# property of a small model, not of the method. The default profile therefore lowers the
# threshold to `MIN_AGREEMENT` (a majority of the samples, the rule above) and uses only the
# responses that carry the question's label; the `paper` profile keeps $\tau = 1$. A few kept
# questions of each class, with the first of the up to `RESPONSES_PER_QUESTION` distinct
# responses the features use (`pipeline.examples_of`): the most frequent of the samples that
# carry the question's label (a correct one for a faithful question, an incorrect one for a
# hallucinated question; the first such sample where all differ, as at temperature 1.0 they
# often do). The `given` column says how often that
# response came among the `N_SAMPLES` samples, `correct samples` how many of them the judge
# called correct:

# %%
def show(recs, label, k=4):
    rows = []
    for r in recs[:k]:
        rep = pipeline.examples_of(r, label, 1, ("correct", "incorrect")[label])[0].response
        rows.append((("faithful", "hallucinated")[label], r["question"], rep.strip(),
                     f"{r['responses'].count(rep)}/{len(r['responses'])}",
                     f"{r['labels'].count('correct')}/{len(r['labels'])}"))
    return rows


with pd.option_context("display.max_colwidth", None):  # whole questions and answers, to check by eye
    display(pd.DataFrame(show(consistent["correct"], 0) + show(consistent["incorrect"], 1),
                         columns=["class", "question", "response used (most frequent of the label's samples)",
                                  "given", "correct samples"]))

# %% [markdown]
# **Where each class comes from.** The screen chose which questions were sampled; the labels
# come from the samples. The next table counts, for each class kept at $\tau$ =
# `MIN_AGREEMENT`, the greedy label of its questions (`pipeline.greedy_origin`).

# %%
origin = counts.get("greedy_origin")  # pipeline.yield_counts counted it (None: no screening)
if origin is None:
    print("no screening (SCREEN = False): every question was sampled and none has a greedy answer")
else:
    display(pd.DataFrame(origin).T.fillna(0).astype(int).add_prefix("greedy ")
            .rename_axis(f"kept at tau = {MIN_AGREEMENT}"))
    print(pipeline.greedy_origin_text(origin, counts.get("sampled_by_greedy"), counts.get("greedy")))

# %% [markdown]
# **How far to trust the judge.** Every label above is the rule judge's, and the probe learns
# whatever the labels say. To measure the judge, answers of the default model were read by hand
# and labelled correct, incorrect or refusal against the gold aliases
# (`data/judge_labels/answers.jsonl`; for TriviaQA, sampled answers of kept questions of one
# default run, labelled after the rule was frozen; each row says why). How they were drawn is
# read from the file below: not at random, but per label the rule gave them, so the precision
# of each judge label holds and the recall figures do not carry over to a run's answers. The
# chapter's judge re-labels those answers here, so a changed rule or
# `JUDGE = "llm"` is measured afresh. Precision of *incorrect* is the one that matters most:
# of the answers the rule calls incorrect, the share that really is a hallucination. A small
# model often replies with neither an answer nor a decline (it rambles around the question);
# the hand labels call those *unclear*, the rule calls them *incorrect*, so they sit in the
# hallucinated class too: the line below counts them, gives the precision over the clear
# answers, and the share over all of them (the unclear counted as not hallucinations).

# %%
label_summary, label_differ, unavailable = judges.hand_label_check(  # questions read from DATA_DIR, by id
    ["triviaqa"], judge or sampling.echo_free_rule_judge, DATA_DIR)
if unavailable:
    print(f"hand labels left out, their questions not readable: {unavailable}")
print(pipeline.hand_label_draw_text([r for r in judges.load_answer_labels() if r["dataset"] == "triviaqa"],
                                    counts["sampled"]))
if note := judges.labels_model_note(MODEL_ID):
    print(note)
plots.write_results(OUT, "answer_judge_agreement", {"judge": JUDGE, "rows": label_summary})
display(Markdown(judges.agreement_text(label_summary, "triviaqa",
                                       "the rule judge" if judge is None else f"the {JUDGE} judge")))
with pd.option_context("display.max_colwidth", None):  # each disagreement, with the human's note
    display(pd.DataFrame(label_differ, columns=["dataset", "question", "judge", "human", "response", "note"])
            .drop(columns="dataset"))

# %% [markdown]
# A greedy-correct question in the hallucinated class is one whose answer the model can give
# but, sampled at temperature 1.0, mostly does not. The paper's filter, which sees only the
# samples, labels such a question hallucinated too; the class then mixes questions the model
# does not know with questions it answers unreliably, and the probe is trained to tell both
# from the consistently correct ones.

# %% [markdown]
# ## Step 3: a balanced set, and the answer tokens
#
# Both classes are cut to the same number of questions (at most `TRAIN_PER_CLASS`), and a
# share `VAL_FRACTION` of each class is held out, by question, to choose $C$ later. The
# official code uses one response per question, the most frequent one; with so few questions
# the default profile also uses up to `RESPONSES_PER_QUESTION` distinct responses of the
# question's label (samples of one question share a label, never a split). The first table
# below counts, for each part and class of this balanced set, the greedy labels of its
# questions, as in Step 2 (`pipeline.split_greedy_origin`).
#
# The features are read on the **answer tokens**, meant to be the part of the response that
# states the fact. The paper asks GPT-4o to mark them; here a rule does (`answer_spans`): the
# gold alias where the response contains one, otherwise the content of the first sentence with
# filler such as "The answer is" removed, and the whole response as a last resort. Without an
# alias the rule can miss the stated answer (a sentence that restates the question before
# giving it, for example), and it can mark a fragment that states nothing: a word of a
# restated question, or of a framing sentence such as "A user asks ...", in place of the
# answer further on. The marked responses below show what it found, failures included; chapter
# 3 measures how often the span rule decides a verdict.
#
# **A caveat this rule brings.** A correct answer contains a gold alias by definition, so the
# faithful class gets alias spans (a name, often one or two tokens) while every hallucinated
# answer, holding no alias, gets the content rule's span (often a longer phrase). Span length
# and position then differ *by class*, and a probe could in part pick that up. The span
# diagnostic printed with the features below and the span-length check after the probe measure
# how well span length alone separates the classes here; chapter 3 refits the probe without
# the difference. `SPAN_RULE = "content"` applies the content rule to both classes (the
# paper's GPT-4o extraction is also one rule for both) at the price of looser spans.

# %%
split = pipeline.split_examples(consistent, cfg)
examples = split["train"] + split["val"]
spans = [features.example_span(e, SPAN_RULE) for e in examples]  # the spans the features use
print({p: len(v) for p, v in split.items()}, "examples;", answer_spans.span_stats(spans))
split_origin = pipeline.split_greedy_origin(split, greedy)
plots.write_results(OUT, "greedy_origin", {"kept": origin, "split": split_origin})
if split_origin is None:
    print("no screening (SCREEN = False): no question of the balanced set has a greedy answer")
else:
    display(pd.DataFrame({f"{part}: {cls}": c for part, by_cls in split_origin.items()
                          for cls, c in by_cls.items()}).T.fillna(0).astype(int).add_prefix("greedy ")
            .rename_axis("questions (val: held out)"))
shown = list(zip(examples, spans))[::max(1, len(examples) // 8)]  # about 8, both classes
with pd.option_context("display.max_colwidth", None):  # the marks must not be cut off
    display(pd.DataFrame([(e.label, answer_spans.marked(e.response, sp), sp.method) for e, sp in shown],
                         columns=["hallucinated", "response with [[answer span]]", "found by"]))

# %% [markdown]
# ## Step 4: CETT features
#
# For each response and each neuron $j$ (all layers), the CETT of the previous chapter is
# averaged over the answer tokens $A$ and, separately, over all other tokens (Eq. 3):
#
# ```{math}
# x^{\text{ans}}_j = \frac{1}{|A|}\sum_{t \in A} \mathrm{CETT}_{j,t}, \qquad
# x^{\text{other}}_j = \frac{1}{|\bar A|}\sum_{t \notin A} \mathrm{CETT}_{j,t}. \tag{paper, Eq. 3}
# ```
#
# One traced forward pass per batch over prompt + response gives both vectors; they are stored
# as float16 in `features_triviaqa.npz` with a hash of the settings, so a rerun reuses them.

# %%
t0 = time.monotonic()
fs = features.extract_features(m, examples, OUT / "features_triviaqa.npz", cfg.features)
timings["features_s"] = time.monotonic() - t0
idx = fs.index([e.key for e in examples])
print(f"{len(examples)} responses x 2 x {fs.answer.shape[1]} layers x {fs.answer.shape[2]} "
      f"neurons, {took('features')}; mean answer tokens {fs.n_tokens[idx, 0].mean():.1f}")
diag = detection.span_diagnostic([e.label for e in examples], fs.n_tokens[idx, 0], fs.methods[idx])
print("answer spans by class (the caveat above; training and held-out responses together; 'alias "
      "spans': the share of responses whose span is a gold alias; 'answer tokens': mean per response):",
      {k: round(v, 2) for k, v in diag.items()})

# %% [markdown]
# ## Step 5: the sparse probe
#
# The classifier is a logistic regression with an L1 penalty over all
# $L \times N$ features (Eq. 4), with $\sigma$ the logistic function:
#
# ```{math}
# \min_{w, b}\; \sum_i -\big[y_i \log \sigma(w^\top x_i + b) + (1 - y_i) \log (1 - \sigma(w^\top x_i + b))\big]
#   + \tfrac{1}{C}\, \big(\lVert w \rVert_1 + |b|\big) . \tag{Eq. 4, as fitted}
# ```
#
# This is the paper's Eq. 4 with one difference: the paper writes the model as
# $\sigma(\theta^\top x)$, without an intercept, while our fit (`probe.fit_probe`, scikit-learn's
# `liblinear` solver) adds an intercept $b$, and liblinear penalises $|b|$ like a weight (it
# fits $b$ as the weight of a constant feature), hence the $|b|$ above.
# We fit to a tight stopping tolerance (`PROBE_TOL`, 1e-8): at scikit-learn's default, 1e-4,
# the solver stops here well short of this minimum, with many more non-zero weights (the
# check after the stability section measures by how much).
#
# Each training row $x_i$ is one response's CETT averaged over its answer tokens, or over its
# other tokens (Step 4). The paper's labels ("3-vs-1") make the hallucinated answer-token rows
# the positive class and put the faithful answer-token rows *and* the other-token rows of every
# response in the negative class. The
# labels aim at neurons that fire on false answers specifically, but a neuron can also earn a
# positive weight by separating answer tokens from the rest of the response, whatever the
# answer's truth; the single-neuron table below shows which of the two each H-Neuron does.
# The H-Neurons are the neurons with $w_j > 0$; the neurons with $w_j < 0$ vote "not a
# hallucinated answer span" (under 3-vs-1: a faithful answer or any other token), and the
# probe's score is both together (the reading after the $C$ grid measures how much each part
# detects alone). The paper fits raw CETT (`STANDARDIZE = False`), so the one penalty
# $\lVert w \rVert_1$ weighs neurons of very different scales alike: a neuron with large CETT
# values needs a smaller weight for the same effect on the score, pays less penalty, and is
# favoured by the L1 selection.
#
# **Choosing $C$.** The paper picks $C$ by grid search, maximising the sum of (1) accuracy on
# held-out questions and (2) the model's TriviaQA accuracy when the selected H-Neurons are
# suppressed ($\alpha = 0$, Section 6.1.3): a larger $C$ admits more neurons, which may detect
# a little better but, silenced, damage the model's knowledge. We estimate the paper's term
# (2) by strata (`pipeline.suppression_set`, `pipeline.suppression_hook`): the greedy
# accuracy, with the candidate probe's H-Neurons silenced, on up to `SUPPRESSION_QUESTIONS`
# questions the model answered correctly in the screen ("known") and as many it did not,
# weighed by the share $p$ of screened questions it answered correctly:
# $p \cdot \text{known kept} + (1 - p) \cdot \text{others now right}$. Silencing mostly
# costs known answers, so the known stratum gives the measurement its resolution, and the
# weight keeps the term on the paper's scale: a model that knows 6 % of TriviaQA can lose
# at most about 0.06 of it. `SUPPRESSION_TERM = "known"` scores the known questions alone,
# an analogue on a 0-1 scale that weighs a lost answer $1/p$ times as much as the paper's term
# (earlier versions of this book used it; the table after the grid shows what it would
# choose). The next cell lists how the term is measured and how it differs from the paper's,
# read from this run. With `SUPPRESSION_QUESTIONS = 0` only term (1) is used. Ties go to the
# higher held-out AUROC, then to fewer neurons; the reading after the table says whether a
# tie decided. The next cell prints which criterion ran.
#
# Term (1) is the probe's held-out accuracy at its own threshold (logit 0). Under 3-vs-1 the
# probe is trained on about three label-0 rows to one label-1 row, so its threshold sits
# where that mix puts it, not where the balanced held-out responses would: held-out accuracy
# mixes how well the probe separates the classes (AUROC, threshold-free) with how well its
# threshold suits them. A probe that keeps no neuron calls every response faithful and scores
# about 0.5.

# %%
strata = pipeline.suppression_set(items, greedy, sampled, SUPPRESSION_QUESTIONS)
# a weight edit cannot reach a model on NDIF: silence through nnsight there
hook = pipeline.suppression_hook(m, strata, SCREEN_BATCH, "nnsight" if REMOTE else "weights", SUPPRESSION_TERM,
                                store=OUT / "suppression")  # each score kept as it is measured
fits = FitCache(OUT / "fits")  # each fit kept: a rerun refits nothing it has (probe.FitCache)
if SUPPRESSION_QUESTIONS and not strata.known:
    print("no question is known to be answered correctly: the suppression term cannot be measured")
t0 = time.monotonic()
probe, grid = pipeline.fit_identification(m, fs, split, cfg, hook, fits)
timings["probe_s"] = time.monotonic() - t0
print(f"C grid: {fits.summary()}")
print("C chosen by", hook.criterion if hook else "held-out accuracy only")
if edge := pipeline.grid_edge(grid):  # the criterion may prefer a C past the grid
    print(f"C = {probe.C:g} is the {edge} value of the grid: "
          "the criterion's best may lie beyond it (widen C_GRID to see), and the rows below show by "
          "how much it beat its neighbours")
if hook:  # how term (2) differs from the paper's, read from this run
    display(Markdown(pipeline.suppression_term_notes(
        strata, SCREEN, split, QA_MAX_NEW_TOKENS,
        None if judge is None else f"the {JUDGE} judge ({JUDGE_MODEL})", SUPPRESSION_TERM)))
print(f"train accuracy: on the probe's own {LABEL_SCHEME} training rows"
      + (" (answer and other-token rows, most of them label 0)" if LABEL_SCHEME == "3-vs-1" else "")
      + "; held-out accuracy and AUROC: on held-out responses, hallucinated vs faithful")
pd.DataFrame(grid).set_index("C").rename(columns={
    "train_accuracy": f"train accuracy ({LABEL_SCHEME} rows)", "val_accuracy": "held-out accuracy",
    "val_auroc": "held-out AUROC", "known_kept": "known answers kept, silenced",
    "unknown_right": "other questions now right, silenced",
    "suppression": "term (2): " + ("est. TriviaQA accuracy, silenced" if SUPPRESSION_TERM == "triviaqa"
                                   else "known answers kept, silenced")}).round(3).assign(
    **({"score": [round(g["score"], 4) for g in grid]} if all(g.get("score") is not None for g in grid) else {}))

# %% mystnb={"figure": {"caption": "Choosing C: held-out detection (accuracy and AUROC, hallucinated vs faithful responses) and, when measured, the suppression term with the candidate H-Neurons silenced (the share of known answers kept, and the estimated TriviaQA accuracy that enters the score) and the selection score (held-out accuracy + the term), against C; right axis: the number of H-Neurons; dashed: the chosen C. The left axis mixes detection metrics with QA accuracy and their sum. A C whose probe has no H-Neuron silences nothing, so its kept answers are 1.0 by construction (marked where it happens).", "name": "fig-c-grid"}, "image": {"alt": "Held-out accuracy and AUROC against C, with the number of H-Neurons"}}
fig, numbers = plots.c_grid_figure(grid, probe.C)
plots.save_figure(fig, OUT, "c_grid", numbers)
plt.show()

# %%
res = pipeline.write_identification(OUT, probe, grid, counts, split, fs, timings, hook)
h = probe.h_neurons()
nonzero = probe.neurons(0)  # every neuron the probe reads: positive and negative weights
POS, NZ, TAB1 = ("ours: H-Neurons (positive weights), per mille", "ours: non-zero weights, per mille",
                 "paper, Table 1 'Ratio' (neurons 'selected for classifiers'), per mille")
ours = pd.DataFrame([{"model": f"ours ({MODEL_ID})", "H-Neurons": str(h.size), POS: round(h.per_mille, 3),
                      NZ: round(nonzero.per_mille, 3), TAB1: "-"}])
ref = paper.table1_frame().drop_duplicates("model")[["model", "ratio_permille"]].rename(columns={"ratio_permille": TAB1})
ref = ref.assign(model="paper: " + ref.model, **{"H-Neurons": "not stated", POS: "-", NZ: "-"})
votes = ("not a hallucinated answer span: a faithful answer or any other token" if LABEL_SCHEME == "3-vs-1"
         else "a faithful answer")
print(f"{h.size} H-Neurons of {m.adapter.total_neurons:,} ({h.per_mille:.3f} per mille) at "
      f"C = {probe.C}; {probe.neurons(-1).size} more neurons have negative weights (they "
      f"vote '{votes}'); counted with them, the probe reads {nonzero.size} neurons "
      f"({nonzero.per_mille:.3f} per mille); saved {OUT / 'probe.json'}")
print(pipeline.ratio_verdicts(h.per_mille, nonzero.per_mille))
pd.concat([ours, ref], ignore_index=True)[["model", "H-Neurons", POS, NZ, TAB1]]

# %% mystnb={"figure": {"caption": "Where the H-Neurons sit: their number in each layer of the model.", "name": "fig-h-neurons-by-layer"}, "image": {"alt": "Where the H-Neurons sit"}}
fig, numbers = plots.layer_counts_figure(h)
plots.save_figure(fig, OUT, "h_neurons_by_layer", numbers)
plt.show()

# %% [markdown]
# ## Reading the result
#
# The $C$ grid is built for a trade-off: held-out detection should improve as the first
# neurons enter the probe and then saturate, while silencing the selected neurons should cost
# more of the model's TriviaQA accuracy as a larger $C$ admits more of them, so that their
# sum peaks at a moderate $C$. The next cell reads what this run's grid actually shows, then
# sets the probe beside span length alone on the same held-out responses (the caveat of
# Step 3; `pipeline.span_length_check`), then splits the probe's score into its H-Neuron part
# and its negative-weight part and reads each alone as a detector on those responses
# (`pipeline.probe_parts_check`: a number for the whole probe is not a number for the
# H-Neurons), then prints the range of Table 1's ratio column with
# the paper's models, and this model's size. The paper also claims "less than one per mille".
# Compare our ratio with those, keeping in mind how many FFN neurons each model has: in a
# small model one neuron is a larger share. Which neurons that ratio counts is not settled
# by the paper: its Section 2 names the neurons with non-zero weights, its Section 3, Figure 1
# and its code the positive ones (which this book calls H-Neurons). Both of our ratios are
# printed above.

# %%
print(pipeline.grid_reading(grid))
display(pd.DataFrame(pipeline.criterion_choices(grid)).set_index("rule").round(3))  # each rule on the same fits
span_check = pipeline.span_length_check(probe, fs, split)
plots.write_results(OUT, "span_length_check", span_check)
print(pipeline.span_length_reading(span_check))
held = split["val"] or split["train"]  # no held-out question (tiny runs): the training set, as said
parts = pipeline.probe_parts_check(probe, fs, held, held_out=bool(split["val"]))
plots.write_results(OUT, "probe_parts", parts)
print(pipeline.probe_parts_reading(parts))
lo, hi = paper.ratio_range()
n_params = sum(p.numel() for p in m.hf.parameters())  # shared (tied) tensors counted once
print(f"paper, Table 1: 'Ratio' of {lo:g} to {hi:g} per mille over "
      f"{', '.join(paper.table1_frame().model.unique())}; {MODEL_ID}: {n_params / 1e6:,.0f}M "
      f"parameters, {m.adapter.total_neurons:,} FFN neurons, so one neuron is "
      f"{1000 / m.adapter.total_neurons:.3f} per mille; ours: {h.per_mille:.3f} per mille "
      f"({h.size} H-Neurons), {nonzero.per_mille:.3f} per mille counting every non-zero weight")

# %% [markdown]
# What the numbers can and cannot carry, read from this run (`pipeline.identification_caveats`):

# %%
display(Markdown(pipeline.identification_caveats(
    split, counts, MIN_AGREEMENT, N_SAMPLES, strata, SCREEN,
    None if judge is None else f"the {JUDGE} judge ({JUDGE_MODEL})", SUPPRESSION_TERM)))

# %% [markdown]
# And in any run: held-out scores are not yet evidence that these neurons *detect*
# hallucination. The next chapter tests the probe on unseen TriviaQA questions, NQ-Open,
# BioASQ and NonExist, against random neurons.
#
# ## What single H-Neurons do
#
# The probe reads its H-Neurons together, each with its weight. How much does any one of them
# separate the classes by itself? The next cell reads every H-Neuron's own features
# (`neurons.neuron_table`): its mean answer-token CETT on hallucinated and on faithful answers,
# its mean over all other tokens, and two single-neuron AUROCs: *vs faithful* (hallucinated
# against faithful answer tokens, the question Table 1 asks) and *3-vs-1* (hallucinated
# answer tokens against faithful answers and every other token, the probe's own labels).
# The AUROCs are given on the training responses the neurons were selected on and on the
# held-out ones (which only chose $C$), the CETT means on the training responses (columns
# tagged "train" and "held out"). The table lists the `SHOW_NEURONS` with the largest
# weights; the reading above it covers them all, and sets the best single H-Neuron beside the
# H-Neurons read together (the probe's H-Neuron part above), the like-for-like comparison: the
# whole probe also reads its negative-weight neurons. The held-out responses come from few
# questions (printed below), and responses to one question are not independent, so a single
# neuron's held-out AUROC is a rough reading, not a measurement.

# %%
if h.size and len({e.label for e in held}) == 2:  # held: the responses of the probe's parts above
    t_train, t_held = neurons.neuron_table(probe, fs, split["train"]), neurons.neuron_table(probe, fs, held)
    summary = neurons.held_out_summary(probe, fs, held, held_out=bool(split["val"]))
    plots.write_results(OUT, "neuron_table", {"train": t_train.to_dict("records"),
                                              "held_out": t_held.to_dict("records"), **summary})
    n_held = summary["held_out_counts"]
    print(f"held-out responses: {n_held['hallucinated']} hallucinated, {n_held['faithful']} faithful, "
          f"from {n_held['questions']} questions" + ("" if n_held["held_out"] else
                                                      " (no held-out question: these are the training responses)"))
    print(neurons.neuron_reading(t_train, t_held))  # compared below with the H-Neurons' part, not the whole probe
    print(pipeline.single_vs_parts_reading(parts, list(t_held["neuron"]), t_held["AUROC vs faithful"]))
    display(neurons.side_by_side(t_train, t_held, SHOW_NEURONS).round(3))
else:
    t_train = None
    print("skipped: no H-Neuron, or the held-out responses hold only one class")

# %% [markdown]
# The figure below shows the H-Neurons with the largest weights on the *training* responses,
# the ones the probe saw when it chose them (the readings above are on held-out responses):
# how far apart the two classes' answer-token CETT lies for each neuron, and where the
# other-token rows, which the probe also puts in its negative class, sit beside them.

# %% mystnb={"figure": {"caption": "Up to six H-Neurons, those with the largest weights: each one's answer-token CETT on hallucinated and faithful training answers, and its CETT averaged over all other tokens (the other-token rows, in the probe's negative class; this box pools the responses of both classes). Titles: weight and the single neuron's AUROC, hallucinated vs faithful answers, on the training responses.", "name": "fig-h-neuron-values"}, "image": {"alt": "Up to six H-Neurons with the largest weights"}}
if t_train is not None:
    rows = t_train.head(6).to_dict("records")  # largest weight first
    values = {r["neuron"]: neurons.neuron_values(probe, fs, split["train"], f)
              for r, f in zip(rows, neurons.top_h_neurons(probe, 6))}
    fig, numbers = plots.neuron_values_figure(values, {
        r["neuron"]: f"{r['neuron']}, w = {r['weight']:.2f}\nAUROC halluc. vs faithful\n(train) {r['AUROC vs faithful']:.2f}"
        for r in rows})
    plots.save_figure(fig, OUT, "h_neuron_values", numbers)
    plt.show()

# %% [markdown]
# Token by token: the CETT of the three H-Neurons with the largest weights at every token of
# two held-out responses, the first hallucinated and the first faithful one in the held-out
# list (taken in order, not picked for looks; `neurons.token_view`). Red labels are the answer
# tokens the features average over. Each neuron's row is scaled by its largest value over
# both responses, so colours compare across the two panels. The span is the rule's, not a
# reader's: for a wrong answer (no gold alias to find) it is the content the question does not
# already hold, and an echo of the question in other words can pass for that content while
# the answer itself is left out (chapter 3 measures how often the span rule decides a
# verdict). The line under the figure names each panel's span, so it can be checked, with the
# share of its words the question holds (`answer_spans.echo_note`, flagged above one half).
# That count misses a paraphrase ("starts with the letter M" for "beginning with 'M'"), so
# read the span itself: where it restates the question rather than the false answer, the
# hallucinated panel shows the neurons on an echo, not on a falsehood.

# %% mystnb={"figure": {"caption": "CETT of the top three H-Neurons at each token of one hallucinated and one faithful held-out response (rows scaled by each neuron's maximum over both; red labels: answer tokens).", "name": "fig-h-neuron-tokens"}, "image": {"alt": "CETT of the top three H-Neurons at each token of one hallucinated and one faithful held-out response"}}
pair = [next((e for e in held if e.label == lab), None) for lab in (1, 0)]
if t_train is not None and all(pair):
    top3 = neurons.top_h_neurons(probe, 3)
    views = [neurons.token_view(m, e, top3, span_rule=SPAN_RULE) for e in pair]
    fig, numbers = plots.token_pair_figure(
        views, [f"{what}: {textwrap.shorten(e.question, 90, placeholder=' ...')}"  # whole words
                for e, what in zip(pair, ("hallucinated", "faithful"))],
        [neurons.neuron_name(f, probe.n_neurons) for f in top3],
        about=[{"key": e.key, "label": e.label} for e in pair])
    plots.save_figure(fig, OUT, "h_neuron_tokens", numbers)
    plt.show()
    for e, v, what in zip(pair, views, ("hallucinated", "faithful")):
        span = "".join(v.token[v.answer]).strip()
        print(f"{what}: answer tokens {span!r} of the response {e.response.strip()[:80]!r} "
              f"({answer_spans.echo_note(span, e.question)}), to the question {e.question!r}")
else:
    print("skipped: no H-Neuron, or no held-out response of each class")

# %% [markdown]
# ## Is it the same set every time?
#
# The paper reports one fit. An L1 penalty, though, keeps one neuron of a group of correlated
# ones and drops the rest, and which one it keeps can hinge on a few training examples. So we
# refit the probe, with the same $C$, on `STABILITY_RESAMPLES` bootstrap resamples of the
# training *questions* (a question brings all its responses; each label is resampled
# separately) and count how often each H-Neuron above is selected again
# (`pipeline.selection_stability`). A neuron picked in nearly every resample is a robust finding;
# one picked in a few is one draw among neurons that carry similar information.

# %%
t0 = time.monotonic()
stability = pipeline.selection_stability(fs, split["train"], probe, STABILITY_RESAMPLES, SEED, fits) \
    if h.size and STABILITY_RESAMPLES else None
timings["stability_s"] = time.monotonic() - t0
if stability:
    plots.write_results(OUT, "stability", stability)

# %% mystnb={"figure": {"caption": "How often each H-Neuron is selected again when the probe is refitted on bootstrap resamples of the training questions (same C); dashed: half of the resamples.", "name": "fig-stability"}, "image": {"alt": "How often each H-Neuron is selected again when the probe is refitted on bootstrap resamples of the training questions"}}
if stability:
    fig, numbers = plots.stability_figure(stability, m.adapter.n_neurons)
    plots.save_figure(fig, OUT, "stability", numbers)
    plt.show()

# %%
print(pipeline.stability_reading(stability) if stability else
      "not measured (no H-Neuron, or STABILITY_RESAMPLES = 0)")

# %% [markdown]
# ### Does it turn on rounding?
#
# Resampling asks what other *answers* would give. A smaller question: what does the last bit
# of the *same* features do? Features are stored as float16; another processor, thread count
# or BLAS adds in another order and computes CETT values that differ in the sixth or seventh
# digit, and a value that sits by the edge between two float16 numbers is then stored one
# step away (`bench/bench_numerics.py` measures how many do on your machine). So we refit
# the probe, same $C$, same rows, with a random share `ROUNDING_SHARES` of the feature entries
# moved one float16 step up or down, `ROUNDING_DRAWS` times per share
# (`pipeline.rounding_stability`), and once unchanged, which must give the probe's own set.

# %%
t0 = time.monotonic()
rounding = pipeline.rounding_stability(fs, split["train"], probe, ROUNDING_SHARES, ROUNDING_DRAWS, SEED, fits) \
    if h.size and ROUNDING_DRAWS else None
timings["rounding_s"] = time.monotonic() - t0
if rounding:
    plots.write_results(OUT, "rounding", rounding)
    display(pipeline.rounding_table(rounding))
print(pipeline.rounding_reading(rounding) if rounding else
      "not measured (no H-Neuron, or ROUNDING_DRAWS = 0)")

# %% [markdown]
# ### Does the solver's tolerance matter?
#
# A solver stops when its progress falls under a tolerance. We found none stated in the
# paper; scikit-learn's default is 1e-4. With tens of thousands of neurons and a few hundred
# rows, liblinear's coordinate descent can stop there far from Eq. 4's minimum, with non-zero
# weights the minimiser would not keep, and then the count of H-Neurons measures the solver as
# much as the model. This chapter fits to `PROBE_TOL` (1e-8 by default); here the probe is
# refitted, same $C$ and rows, at `CHECK_TOL` (scikit-learn's default), and the two fits
# compared by Eq. 4's objective (`probe.eq4_objective`, in liblinear's scaling: $C$ times the
# expression above, so its printed values are $C$ times larger; the lower is nearer the minimum), their
# H-Neurons and their held-out detection (`pipeline.tolerance_check`).

# %%
t0 = time.monotonic()
tolerance = pipeline.tolerance_check(fs, split, probe, CHECK_TOL, fits) if CHECK_TOL else None
timings["tolerance_s"] = time.monotonic() - t0
if tolerance:
    plots.write_results(OUT, "tolerance", tolerance)
    display(pipeline.tolerance_table(tolerance))
print(pipeline.tolerance_reading(tolerance) if tolerance else "not measured (CHECK_TOL = 0)")

# %% [markdown]
# ### Does the route to the minimum matter?
#
# Handed every neuron at once (`PROBE_SOLVE = "full"`), liblinear copies each feature value
# three times: about 40 bytes a value, some 70 GiB for 4,000 rows of a 7B model's 458,752
# neurons, far more for a 70B model. Eq. 4's minimum can be reached without that copy. Written
# as liblinear minimises it, $\|w\|_1 + |b| + C \sum_i \ell_i(w, b)$: at its minimum, with
# $g_j$ the gradient of the loss term $C \sum_i \ell_i$ in neuron $j$'s weight, every neuron
# with a weight has $|g_j| = 1$ and every weightless one $|g_j| \le 1$. So the working-set
# route fits the columns with the
# largest $|g_j|$ at $w = 0$, computes every neuron's $g_j$ at that fit (reading the
# features a block of columns at a time), adds every neuron left out that breaks the
# condition (and, to save a round, those nearest to breaking it), and refits, until none
# does: then the fit meets the full problem's optimality
# conditions. Here the probe is refitted by the route it was not fitted by, same $C$, rows and
# tolerance (`pipeline.solve_check`). The paper profile fits by the working set and switches
# this check off (`CHECK_SOLVE`: its full refit needs the memory the working set saves); run
# at the default scale, it is what says the two routes give the same probe. Where a full refit
# would not fit in free memory, it is skipped, saying why.

# %%
t0 = time.monotonic()
solve = pipeline.solve_check(fs, split, probe, fits) if CHECK_SOLVE else None
timings["solve_s"] = time.monotonic() - t0
if solve:
    plots.write_results(OUT, "solve", solve)
    if "skipped" not in solve:
        display(pipeline.tolerance_table(solve, by="solve"))
print(pipeline.solve_reading(solve) if solve else "not measured (CHECK_SOLVE = False)")
print(f"all fits of this chapter: {fits.summary()}")

# %% [markdown]
# ## Exercises
#
# 1. The paper's rule is `MIN_AGREEMENT = 1.0`: read its row in the yield table above. How
#    many questions per class survive, and what does that tell you about 10/10 consistency on
#    small models? To train on it, raise `N_SCREEN` until that row has a few correct
#    questions (with none, the balanced set is empty and the chapter stops with an error
#    that says so).
# 2. Set `LABEL_SCHEME = "1-vs-1"`. The official README says it detects better (chapter 3
#    compares the two schemes like for like on its evaluation sets); does it select more or
#    fewer neurons, and in which layers?
# 3. With `STANDARDIZE = True` every neuron competes on equal terms under the L1 penalty. Do the
#    H-Neurons move to other layers?
# 4. Set `RESPONSES_PER_QUESTION = 1` (the paper's one response per question) and compare the
#    resampling overlap above. Do several responses per question make the set more stable, or
#    only make the training set look larger?
# 5. Write a response yourself, true and then false, to one question, e.g.
#    `features.Example("mine", sampling.build_prompt(m.tokenizer, question), response, [gold], question)`,
#    and draw `neurons.token_view(m, example, neurons.top_h_neurons(probe, 3))` with
#    `plots.token_heatmap`. Does the top H-Neuron fire on the false answer's tokens more than on
#    the true one's, or on answer-like tokens either way?
# 6. The table after the $C$ grid shows what three selection rules choose on the same fits.
#    Rerun with `SUPPRESSION_TERM = "known"` (the cost of silencing measured on known
#    questions alone, on a 0-1 scale) and with `SUPPRESSION_QUESTIONS = 0` (held-out accuracy
#    alone). How many H-Neurons does each give, and which of chapter 3's and chapter 4's
#    readings change with them? What does that say about the paper's "fewer than one neuron
#    in a thousand" as a property of the model rather than of the rule?
# 7. Set `PROBE_TOL = 1e-4` (scikit-learn's default, the tolerance many reproductions will
#    use without choosing it) and rerun. How many H-Neurons does the $C$ grid now give at
#    each $C$, does the rounding table still find the set stable, and which readings of
#    chapters 3 and 4 change? What would you ask of a paper's "H-Neurons are fewer than one in
#    a thousand" before comparing it with your own count?
# 8. The working-set route stops when no neuron left at weight 0 has $|g_j| > 1$. Compute
#    $g_j$ yourself for the probe (with `STANDARDIZE = False`): with
#    `X, y = pipeline.scheme_rows(fs, split["train"], LABEL_SCHEME)`, $s = 2y - 1$ and
#    $m$ the probe's decision function on `X`, $g = C \, X^\top [s \, (\sigma(s m) - 1)]$. Every H-Neuron
#    should sit at $g_j = -1$ (why the sign?). Which neurons without a weight come closest to
#    $|g_j| = 1$, and are they among those the resampling table above selects now and then?
#    What does a crowd of neurons just under the threshold say about how stable any one set
#    can be?
