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
# # Scorecard: the paper's claims on this model
#
# **What this page is.** One row per claim of the paper, with the paper's published number,
# ours from this build (95% intervals), and what ours support. Nothing is recomputed here: the
# table is read from the result files that chapters 2 to 5 wrote under `OUTPUT_DIR`, and each
# reading applies the same rule as the chapter it comes from. Rerun the chapters on another
# model (same `OUTPUT_DIR`, same `MODEL_ID`), then this page, and the scorecard follows.
#
# **The rules.** Detection (Table 1, Figure 4a): an AUROC interval whose lower end is above 50
# is *above chance*; above the random-neuron probes' level as well, *above random neurons*
# (in Table 1 marked *narrowly* where it clears that mean by less than the mean's standard
# error over the random sets); with fewer than `MIN_PER_CLASS` answers in the smaller class,
# no verdict. Behaviour (Figure 3): the
# paired interval of the slope difference, H-Neurons minus layer-matched random neurons, must
# exclude 0; the reading also says which way the H-Neuron slope itself goes (compliance rising or
# falling as they are amplified) and the random neurons' slope. Suppression (Sections 5 and
# 6.1.3): the known TriviaQA answers kept with the H-Neurons silenced against the layer-matched
# random sets silenced alike, question by question (the same questions under every condition):
# the 95% bootstrap interval of the difference to the random sets' mean must exclude 0 (a
# result file without the answers falls back on each condition's Wilson interval, which must
# lie below or above every set's); the row also says what the lost answers became. A slope
# needs `MIN_PER_CLASS` items scored at every α, not only in the suite. Drift (Figure 4b): the paper's one-sided t-test at 5%,
# checked against random neuron sets drawn with the H-Neurons' layer counts. "Not distinguishable" and "too few" mean
# that this run neither confirms nor refutes the claim; they are not evidence against it.
#
# **Terms.** *CETT*: a neuron's contribution to the FFN output at a token (chapter 1). *The
# probe*: chapter 2's L1 logistic regression; its *H-Neurons* are its positive weights, and it
# also reads neurons with negative weights. *3-vs-1*: the paper's labels (hallucinated answer
# tokens against faithful answers and all other tokens; *1-vs-1* compares answer tokens only).
# *Span rule*: how the answer tokens are located (chapter 2). *Refit*: a classifier fitted
# again on a chosen set of neurons, such as the H-Neurons alone. *Offline twin*: chapter 5's
# own short supervised tuning of Gemma-3-270M, the instruct side of the offline model pair, not
# the vendor's instruct model.
#
# Besides the paper's claims, the scorecard carries checks of its own; they are listed
# below the table's inputs.

# %% tags=["parameters"]
PROFILE = "default"  # named parameter set (params/<profile>.yaml); this cell holds "default"
MODEL_ID = "SmolLM2-135M-Instruct"  # the model of chapters 2-4 (as there)
OUTPUT_DIR = "results/default"  # where chapters 2-5 wrote their results
ORIGIN_DIR = None  # chapter 5's folder; None: the newest OUTPUT_DIR/*/origin
MIN_PER_CLASS = 10  # fewer answers in the smaller class (or benchmark items): no verdict

# %%
from IPython.display import HTML, Markdown, display

from hneurons_utils import plots, profiles, summary

profiles.check_parameters("06_summary", globals())  # a list given as text (papermill -p) stops here

if PROFILE == "smoke":
    display(Markdown("**Smoke profile.** The chapters ran on a handful of items: the table shows "
                     "that the scorecard is assembled; none of its numbers means anything."))
card = summary.scorecard(OUTPUT_DIR, MODEL_ID, ORIGIN_DIR, MIN_PER_CLASS)
sources = summary.summary_inputs(OUTPUT_DIR, MODEL_ID)
plots.write_results(profiles.run_dir(OUTPUT_DIR, MODEL_ID, "summary"), "scorecard",
                    {"rows": card.to_dict("records"), "sources": sources, "min_per_class": MIN_PER_CLASS})
print("read from:", *(f"  {k}: {v}" for k, v in sources.items()), sep="\n")

# %% tags=["remove-input"]
Markdown(summary.checks_note())  # the checks that ride along, counted from summary.CHECKS

# %% [markdown]
# ## The scorecard

# %%
display(HTML(summary.scorecard_html(card)))  # an HTML table (renders in the book as is); chapters linked

# %% [markdown]
# ## How to read it
#
# The first two points are this build's own: the models it ran and how many answers per class
# its detection verdicts rest on, and the environment its chapters computed in, read from the
# same result files.

# %%
display(Markdown(summary.scale_note(OUTPUT_DIR, MODEL_ID, ORIGIN_DIR)))
display(Markdown(summary.environment_note(OUTPUT_DIR, MODEL_ID, ORIGIN_DIR)))  # what it computed with

# %% [markdown]
# - **Each row has its chapter.** "Result" names the paper's table or figure and its section;
#   "chapter" links the chapter of this book that regenerates it, with the full tables,
#   figures and caveats: {doc}`02_identification`, {doc}`03_generalisation`,
#   {doc}`04_behaviour` and {doc}`05_origin`.
# - **Units.** Accuracy and AUROC are in percent, as in the paper (chapter 3 prints AUROC as
#   a fraction: 0.84 there is 84.0 here); drift ranks run from 0 to 1, and a judge's precision
#   on hand labels is a fraction with its interval (0.88 [0.66, 0.97]), as chapters 2-4 print it.
# - **The paper's column** gives, per Table 1 dataset, the H-Neurons' accuracy minus the
#   random baseline's, paired within each of the paper's models: the lowest and highest of
#   those margins, and on how many models the H-Neurons are ahead (the models behind are
#   named). For Figures 3 and 4 it quotes the bounds the paper's text states (per-model values
#   of those figures are not in the text); the source of every number is in
#   `data/paper_reference.json`.
# - **On a 7B+ model** (`params/paper.yaml`, a GPU) the same page gives the paper-scale
#   scorecard; nothing here is specific to the default model.
