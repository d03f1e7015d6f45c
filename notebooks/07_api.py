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
# # The package in your own code
#
# **What this page is.** The chapters call `hneurons_utils` step by step, between long
# explanations. This page is the short version for an engineer who wants to use the pieces in
# a script of their own: load a model, read CETT with nnsight, load a saved probe, score new
# answers with it, look at its neurons token by token, and scale the H-Neurons during
# generation. Every cell is a few lines and runs on the chosen model; nothing here is a new
# result (a few dozen answers are anecdotes: chapters 3 and 4 have the statistics).
#
# **Inputs:** the probe of chapter 2 (`identification/probe.json`), for the same `MODEL_ID`
# and `OUTPUT_DIR`. The full list of functions and their contracts is in `CONTRIBUTING.md`.

# %% tags=["parameters"]
PROFILE = "default"  # named parameter set (params/<profile>.yaml); this cell holds "default"
MODEL_ID = "SmolLM2-135M-Instruct"  # HF hub id, local folder, or the embedded default
DEVICE = "cpu"  # "cuda" for a GPU; "auto" shards a model too big for one GPU over all of them
DTYPE = "float32"  # "bfloat16" for 7B+ models on GPUs
REMOTE = False  # True: run on NDIF through nnsight (steering then uses method "nnsight")
DATA_DIR = None  # benchmark folder; None: $HNEURONS_DATA_DIR, then the Hugging Face Hub
OUTPUT_DIR = "results/default"  # where chapter 2 wrote its probe; this page writes OUTPUT_DIR/<model>/api
SEED = 0  # every random choice on the page
N_QUESTIONS = 48  # TriviaQA test questions answered and scored by the probe (the model gets few right)
SHOW_PER_LABEL = 4  # answers shown per judge label (all are scored and saved)
ALPHAS = [0.0, 1.0, 3.0]  # scaling factors shown for one FalseQA question
TOKENS_FALSEQA = 40  # new tokens per steered answer
FALSEQA_PICK = 8  # which false-premise question of FalseQA's test split (0: the first); the cell prints it

# %%
import textwrap
from dataclasses import replace

import matplotlib.pyplot as plt
import pandas as pd
import torch
from IPython.display import Markdown, display

from hneurons_utils import cett, data, features, models, neurons, pipeline, plots, profiles, sampling, wording
import nnsight  # after hneurons_utils, which silences tqdm's notebook warning
from hneurons_utils.benchmarks import chat_prompt
from hneurons_utils.probe import Probe, random_neuron_set
from hneurons_utils.steering import generate_scaled, scaled_down_proj

profiles.check_parameters("07_api", globals())  # a list given as text (papermill -p) stops here

plots.setup_style()
pd.set_option("display.max_colwidth", 400)  # show whole answers
torch.manual_seed(SEED)
OUT = profiles.run_dir(OUTPUT_DIR, MODEL_ID, "api")
if PROFILE == "smoke":
    display(Markdown("**Smoke profile.** Chapter 2's probe was fitted on a handful of answers: "
                     "the calls below run, but what they print means nothing."))

# %% [markdown]
# ## Load a model
#
# `models.load_model` takes a Hugging Face id, a local folder or the embedded default, and
# returns the Hugging Face model (`m.hf`), its nnsight wrapper (`m.lm`), the tokenizer, and an
# adapter that knows where this architecture keeps each layer's FFN down-projection.

# %%
m = models.load_model(MODEL_ID, dtype=DTYPE, device=DEVICE, remote=REMOTE)
profiles.record_environment(OUT, m)  # what the numbers were computed with (environment.json)
print(m.adapter)

# %% [markdown]
# ## Read a neuron with nnsight
#
# The down-projection's input is the vector $z_t$ of neuron activations and its output is
# $h_t$. Inside `m.lm.trace`, saving both for one layer takes two lines; CETT of neuron $j$
# is then $|z_{j,t}|\,\lVert W_\text{down}[:, j]\rVert / \lVert h_t\rVert$. `cett.cett_means`
# does this for every layer at once (chapter 1); here is the bare version, for the last
# token of one prompt. The neurons with the largest raw activations $|z_{j,t}|$ need not be
# those with the largest CETT: the column norm can reorder them (`measure="activation"` in
# `cett.cett_means` and `features.FeatureConfig` gives mean $|z|$ instead, the baseline of
# chapter 3's recipe refits).

# %%
prompt = sampling.build_prompt(m.tokenizer, "What is the capital of Australia?")
enc = m.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)  # the template has its own
layer = m.adapter.n_layers // 2
bt = (*enc["input_ids"].shape, -1)  # [B, T, .] (OPT's layers flatten tokens to [B*T, .])
with torch.no_grad(), m.lm.trace(dict(enc), remote=m.remote):
    z = nnsight.save(m.adapter.down_proj(m.lm, layer).input.reshape(bt)[0, -1])  # [neurons]
    h = nnsight.save(m.adapter.down_proj(m.lm, layer).output.reshape(bt)[0, -1])  # [d_model]
w_norm = cett.column_norms(m)[layer]  # ||W_down[:, j]|| of every neuron, [neurons] (works on NDIF too)
cett_last = z.abs().float().cpu() * w_norm / h.float().norm().cpu()
top = torch.topk(cett_last, 5)
print(f"layer {layer}, last prompt token: the five largest CETT values",
      [f"neuron {j}: {v:.3f}" for v, j in zip(top.values.tolist(), top.indices.tolist())])
top_z = set(torch.topk(z.abs().float().cpu(), 5).indices.tolist())
print(f"of those five, {len(top_z & set(top.indices.tolist()))} are among the five largest |z| values")

# %% [markdown]
# ## Load a probe and its H-Neurons
#
# A probe is plain JSON (`Probe.load`; never a pickle): the neuron indices it reads, their
# weights and intercept, the regularisation strength $C$ and the settings it was trained
# with. The H-Neurons are the neurons with positive weight, as a `NeuronSet` (layer and
# neuron indices).

# %%
probe = Probe.load(profiles.run_dir(OUTPUT_DIR, MODEL_ID, "identification") / "probe.json",
                   m.name)  # refused if it was trained on another model
h_set = probe.h_neurons()
top_h = neurons.top_h_neurons(probe, 5)
print(f"{h_set.size} H-Neurons ({h_set.per_mille:.3f} per mille), C = {probe.C}; largest weights:",
      [neurons.neuron_name(f, probe.n_neurons) for f in top_h])

# %% [markdown]
# ## Score new answers
#
# The probe reads the mean CETT over each answer's *answer tokens*. So: generate an answer
# with the prompt the probe was trained with, here greedily (its training answers were sampled
# at temperature 1.0, chapter 3 scores sampled ones; `collect_responses` writes each answer to
# JSONL and resumes), judge it, build one `Example` per answer (the answer span
# is located inside `extract_features`), extract the features (cached in an npz file) and
# apply the probe. A positive decision value means "hallucinated".

# %%
items = data.load_qa("triviaqa", "test", DATA_DIR, limit=N_QUESTIONS, seed=SEED + 7)
cfg = replace(sampling.GREEDY, max_new_tokens=probe.config["max_new_tokens"],
              stop_at_newline=probe.config["stop_at_newline"])  # the probe's answers, decoded greedily
records = sampling.collect_responses(m, items, OUT / "answers.jsonl", cfg, batch_size=N_QUESTIONS, seed=SEED)
judged = [r for r in records if r["labels"][0] != "refusal"]  # the probe scores answers, not refusals
if not judged:
    raise ValueError(f"all {len(records)} answers were refusals: raise N_QUESTIONS to have answers to score")
examples = [pipeline.examples_of(r, int(r["labels"][0] == "incorrect"), 1)[0] for r in judged]
fs = features.extract_features(m, examples, OUT / "features.npz",
                               features.FeatureConfig(**probe.config["features"]))
score = probe.decision_function(fs.flat("answer", [e.key for e in examples]))  # w.x + b
scored = pd.DataFrame({"question": [r["question"] for r in judged],
                       "answer": [r["responses"][0] for r in judged],
                       "judge": [r["labels"][0] for r in judged], "probe score": score.round(2),
                       "probe says": ["hallucinated" if s > 0 else "faithful" for s in score]})
plots.write_results(OUT, "scored_answers", {"rows": scored.to_dict("records")})
print(f"{len(records)} questions, {wording.noun(len(records) - len(judged), 'refusal')}; "
      "mean probe score by judge label:",
      scored.groupby("judge")["probe score"].agg(["count", "mean"]).round(2).to_dict("index"))
scored.groupby("judge").head(SHOW_PER_LABEL)

# %% [markdown]
# The judge is chapter 2's rule judge, and its "correct" means only that a gold alias occurs
# somewhere in the answer: an answer can be marked correct while it states a false fact (the
# right name beside a wrong one, say), and a right answer worded unlike every alias is marked
# incorrect; read the rows before trusting a label. Read the judge's label and the probe's
# score side by side, not as a test: the table shows at most `SHOW_PER_LABEL` answers of each
# label, and a few dozen answers make agreement or disagreement luck as much as signal.
# Chapter 3 measures the probe on hundreds of answers, with intervals, against random neurons,
# and with the answer-span control that this page does not repeat.
#
# ## One answer, token by token
#
# `neurons.token_view` runs one forward pass over prompt and answer and returns the CETT of
# chosen neurons at every token of the response; `plots.token_pair_figure` draws it, one
# panel per response (here one), each with `plots.token_heatmap` (the answer tokens, which the
# probe averages over, in red).

# %% mystnb={"figure": {"caption": "CETT of the three H-Neurons with the largest weights at each token of the first scored answer (each row scaled to its maximum; red labels: the answer tokens the probe averages over).", "name": "fig-api-tokens"}, "image": {"alt": "CETT of the three H-Neurons with the largest weights at each token of the first scored answer"}}
if examples and h_set.size:
    view = neurons.token_view(m, examples[0], top_h[:3], span_rule=probe.config["features"]["span_rule"])
    fig, numbers = plots.token_pair_figure([view], [f"judged {judged[0]['labels'][0]}: {textwrap.shorten(examples[0].question, 80, placeholder='…')}"],
                                           [neurons.neuron_name(f, probe.n_neurons) for f in top_h[:3]])
    plots.save_figure(fig, OUT, "answer_tokens", numbers)
    plt.show()
else:
    print("skipped: no answer was scored, or the probe has no H-Neuron")

# %% [markdown]
# ## Scale the H-Neurons while generating
#
# `generate_scaled` multiplies the H-Neurons' activations by $\alpha$ at every token the
# model reads or writes, the prompt included (`method="weights"` edits the matching columns of $W_\text{down}$ and restores them;
# `"nnsight"` intervenes in the trace and is the one that works on NDIF). Beside it, a
# layer-matched random set of as many neurons, at the largest $\alpha$: the control chapter 4
# runs on every benchmark. One false-premise question, greedy decoding:

# %%
false_premises = [it.question for it in data.load_falseqa("test", DATA_DIR) if it.false_premise]
if not false_premises:
    raise ValueError("FalseQA's test split holds no false-premise question: check DATA_DIR")
question = false_premises[min(FALSEQA_PICK, len(false_premises) - 1)]
fq_prompt = chat_prompt(m.tokenizer, [question])
fq_cfg = replace(sampling.GREEDY, max_new_tokens=TOKENS_FALSEQA, stop_at_newline=False)
method = "nnsight" if m.remote else "weights"
runs = [("H-Neurons", h_set, a) for a in ALPHAS] if h_set.size else []  # nothing to scale without them
if runs:
    runs.append(("random neurons", random_neuron_set(h_set.size, h_set.n_layers, h_set.n_neurons, SEED,
                                                     like=h_set, exclude=probe.neurons(0)), max(ALPHAS)))
steered = pd.DataFrame([{"neurons": name, "alpha": a,
                         "answer": generate_scaled(m, [fq_prompt], fq_cfg, s, a, method)[0][0]}
                        for name, s, a in runs], columns=["neurons", "alpha", "answer"])
plots.write_results(OUT, "steered_falseqa", {"question": question, "rows": steered.to_dict("records")})
print(question)
if runs:
    plain = steered[(steered.neurons == "H-Neurons") & (steered.alpha == 1.0)].answer
    if len(plain):
        moved = [f"{r.neurons} α = {r.alpha:g}" for r in steered.itertuples()
                 if r.alpha != 1.0 and r.answer != plain.iloc[0]]
        print("answers that differ from the unsteered one (α = 1): " + (", ".join(moved) if moved else
              "none: on this question, scaling changed nothing within the token limit"))
steered

# %% [markdown]
# ## Any other code, with the weights edited
#
# `scaled_down_proj` is a context manager: inside it, the model's $W_\text{down}$ columns of
# the given neurons are multiplied by $\alpha$, so *any* code that calls `m.hf` (your own
# generation loop, a benchmark harness, `lm-eval`) runs on the steered model; on leaving, the
# original weights come back bit for bit, also after an exception. The check below silences
# the H-Neurons and compares the next-token distribution of the prompt above with and without
# them, and does the same for the random set above, the scale a KL needs to mean anything.

# %%
enc = m.tokenizer(fq_prompt, return_tensors="pt", add_special_tokens=False).to(m.device)
if not m.remote and h_set.size:
    layers = sorted(h_set.by_layer())
    w_before = [m.adapter.down_weight(m.hf, l).detach().clone() for l in layers]
    control = runs[-1][1]  # the random set of the cell above
    with torch.no_grad():
        before = m.hf(**enc).logits[0, -1].log_softmax(-1)
        with scaled_down_proj(m, h_set, 0.0):
            silenced = m.hf(**enc).logits[0, -1].log_softmax(-1)
        with scaled_down_proj(m, control, 0.0):
            silenced_random = m.hf(**enc).logits[0, -1].log_softmax(-1)
        after = m.hf(**enc).logits[0, -1].log_softmax(-1)
    kl, kl_random = (float((before.exp() * (before - s)).sum()) for s in (silenced, silenced_random))
    restored = all(torch.equal(w, m.adapter.down_weight(m.hf, l)) for w, l in zip(w_before, layers))
    print(f"KL(unsteered || H-Neurons silenced) of the next token: {kl:.4f} nats (as many random "
          f"neurons of the same layers silenced: {kl_random:.4f}, the scale to read it against); "
          f"after the block, W_down restored bit for bit: {restored}; the same logits: {torch.equal(before, after)}")
else:
    print("skipped:", "REMOTE run (the weights live on NDIF: nothing local to edit)" if m.remote
          else "the probe has no H-Neuron")
