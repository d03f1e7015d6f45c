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
# # CETT: measuring a neuron's contribution
#
# **The paper's question.** Before asking which neurons are tied to hallucination, Gao et al.
# (2025, Section 6.1.2) need a number that says how much one FFN neuron contributes to its
# layer's output at one token. They use CETT, and every later chapter is built on it.
#
# **This chapter regenerates** the definition (Eq. 1-2) as code, checks the fast
# implementation against the literal definition, shows how CETT is distributed over the layers
# and neurons of the model on TriviaQA prompts (most of whose tokens are the chat template,
# system prompt and instruction that every prompt shares; the share is printed below), and
# measures the paper's approximation
# (Eq. 7) that scaling a neuron's activation by $\alpha$ scales its CETT by about $\alpha$.
#
# **Inputs:** no earlier chapter's files (only the model and a few TriviaQA questions).

# %% tags=["parameters"]
PROFILE = "default"  # named parameter set (params/<profile>.yaml); this cell holds "default"
MODEL_ID = "SmolLM2-135M-Instruct"  # HF hub id, local folder, or the embedded default
DEVICE = "cpu"  # "cuda" for a GPU; "auto" shards a model too big for one GPU over all of them
DTYPE = "float32"  # "bfloat16" for 7B+ models on GPUs
REMOTE = False  # True: run the traces on NDIF through nnsight remote execution
DATA_DIR = None  # benchmark folder; None: $HNEURONS_DATA_DIR, then the Hugging Face Hub
OUTPUT_DIR = "results/default"  # artefacts land in OUTPUT_DIR/<model>/<chapter>
SEED = 0  # every random choice in the chapter
N_PROMPTS = 48  # TriviaQA questions whose CETT distribution is shown
BATCH_SIZE = 16  # prompts per traced forward pass
CHECK_NEURONS = 64  # neurons compared with the literal definition
EQ7_ALPHAS = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0]  # activation scales for the Eq. 7 check
EQ7_NEURONS_PER_LAYER = 2  # neurons scaled per checked layer
EQ7_LAYERS = [2, 10, 18, 26]  # layers whose neurons are scaled (clipped to the model's depth; fixed indices, so a deeper model, e.g. 80 layers, is checked in its first third only: give its own list)

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

from hneurons_utils import cett, data, models, plots, profiles
from hneurons_utils.sampling import build_prompt

profiles.check_parameters("01_cett", globals())  # a list given as text (papermill -p) stops here

plots.setup_style()
torch.manual_seed(SEED)
OUT = profiles.run_dir(OUTPUT_DIR, MODEL_ID, "cett")
m = models.load_model(MODEL_ID, dtype=DTYPE, device=DEVICE, remote=REMOTE)
profiles.record_environment(OUT, m)  # what the numbers were computed with (environment.json)
print(m.adapter)
print(f"{m.adapter.n_layers} layers x {m.adapter.n_neurons} neurons = "
      f"{m.adapter.total_neurons:,} FFN neurons")

# %% [markdown]
# ## The definition
#
# In layer $l$ the FFN maps its input $x_t$ (the residual stream after the layer's
# normalisation) to neuron activations $z_t$, and the down-projection writes them back: for a
# gated MLP
#
# ```{math}
# z_t = \operatorname{act}(W_\text{gate} x_t) \odot W_\text{up} x_t, \qquad h_t = W_\text{down} z_t ,
# ```
#
# with $\operatorname{act}$ the model's activation function (SiLU for Llama and SmolLM, GELU
# for Gemma; the next chapter keeps $\sigma$ for the logistic function). A plain MLP (GPT-2,
# OPT) has $z_t = \operatorname{act}(W_\text{in} x_t)$.
#
# Neuron $j$ alone would have written $z_{j,t} W_\text{down}[:, j]$. CETT compares the size of
# that vector with the size of the whole output:
#
# ```{math}
# \mathrm{CETT}_{j,t} = \frac{\lVert z_{j,t}\, W_\text{down}[:, j] \rVert_2}{\lVert h_t \rVert_2}
#   = \frac{|z_{j,t}|\;\lVert W_\text{down}[:, j] \rVert_2}{\lVert h_t \rVert_2}. \tag{paper, Eq. 1-2}
# ```
#
# A response-level feature is the mean of this CETT over a set of tokens (the answer
# tokens, the other tokens). `cett.cett_means` reads $z$ (the input of the down-projection)
# and $h$ (its output) for all layers inside one nnsight trace and reduces each layer to
# per-neuron means as soon as the forward pass reaches it.
#
# ## Check: the fast path equals the literal definition
#
# We capture $z$ and $h$ of one layer with a plain PyTorch hook and compute
# $\lVert z_{j,t} W_\text{down}[:,j]\rVert / \lVert h_t\rVert$ neuron by neuron, then compare it
# with both fast functions: token by token with `cett.cett_tokens`, and as the mean over each
# prompt's real tokens with `cett.cett_means`, the function that computes every feature of the
# later chapters.

# %%
questions = data.load_qa("triviaqa", split="train", data_dir=DATA_DIR, limit=N_PROMPTS, seed=SEED)
chat = getattr(m.tokenizer, "chat_template", None) is not None  # a base model gets plain text
prompts = [build_prompt(m.tokenizer, q.question) if chat else f"{q.question}\nAnswer:" for q in questions]
print("prompt format:", "chat template" if chat else "plain 'question + \\nAnswer:' (no chat template)")
share = cett.template_token_share(m.tokenizer, prompts, [q.question for q in questions])
print(f"{100 * share:.0f}% of the prompts' tokens are not the question's own (template, system prompt, "
      "instruction: the same in every prompt)" + (", so statistics over all prompt tokens are mostly "
                                                  "theirs" if share > 0.5 else ""))

# %%
if m.remote:  # the literal check hooks local weights; tests/test_cett.py checks the same locally
    print("REMOTE run: the hook-based check is skipped (no local weights to hook)")
else:
    batch = cett.encode(m, prompts[:4], add_special_tokens=False)
    layer = m.adapter.n_layers // 2
    fast = cett.cett_tokens(m, batch, layers=[layer])[0]  # [B, T, N]
    captured = {}
    bt = (*batch["input_ids"].shape, -1)  # [B, T, .]: OPT's layers flatten tokens to [B*T, .]
    # captured and computed in float32 on the CPU, as the fast path computes (a bfloat16 model's
    # own products would carry its rounding, about 1e-2)
    hook = m.adapter.down_proj(m.hf, layer).register_forward_hook(lambda mod, inp, out: captured.update(
        z=inp[0].reshape(bt).float().cpu(), h=out.reshape(bt).float().cpu()))
    plain = cett.on_device(m, batch)
    with torch.no_grad():  # a plain forward pass
        m.hf(**plain, position_ids=cett.left_pad_positions(plain["attention_mask"]))
    hook.remove()
    W = m.adapter.down_weight(m.hf, layer).float().cpu()
    neurons = torch.randperm(m.adapter.n_neurons)[:CHECK_NEURONS]
    literal = torch.stack([(captured["z"][..., j, None] * W[:, j]).norm(dim=-1)
                           / captured["h"].norm(dim=-1) for j in neurons.tolist()], dim=-1)
    real = batch["attention_mask"].bool()
    rel_err = ((fast[..., neurons] - literal).abs() / literal.abs().clamp_min(1e-12))[real]
    print(f"layer {layer}, {CHECK_NEURONS} neurons, {int(real.sum())} tokens: cett_tokens' "
          f"max relative error {rel_err.max().item():.2e}")
    # the per-prompt mean over real tokens, as the literal definition gives it and as cett_means does
    literal_mean = (literal.where(real[..., None], torch.zeros(())).sum(1)
                    / real.sum(1, keepdim=True))  # [B, neurons]; padding left out
    means = cett.cett_means(m, batch, {"real": real})["real"][:, layer, neurons]  # [B, neurons]
    mean_err = (means - literal_mean).abs() / literal_mean.abs().clamp_min(1e-12)
    print(f"the same neurons averaged over each of the {real.shape[0]} prompts' real tokens: "
          f"cett_means' max relative error {mean_err.max().item():.2e}")
    assert rel_err.max() < 1e-4, "fast CETT (cett_tokens) disagrees with the definition"
    assert mean_err.max() < 1e-4, "mean CETT (cett_means) disagrees with the definition"

# %% [markdown]
# Both agree with the literal definition to float32 rounding. (Position ids follow the attention mask in both paths:
# nnsight corrects them for left padding, so the plain call gets them explicitly.)
#
# ## How CETT is distributed over layers and neurons
#
# We average CETT over every real token of the prompts, per neuron, and ask how unevenly it is
# spread: over a few neurons per layer, or over all of them. CETT values do not add up to 1
# (each is one neuron's contribution relative to the block's output, and contributions point
# in different directions and partly cancel), so "share" below means a share of the layer's
# summed CETT, not of its output.

# %%
norms = cett.column_norms(m)
per_prompt = []
for i in range(0, len(prompts), BATCH_SIZE):
    b = cett.encode(m, prompts[i:i + BATCH_SIZE], add_special_tokens=False)
    mean = cett.cett_means(m, b, {"all": b["attention_mask"].bool()}, norms=norms)["all"]
    per_prompt.append(mean)  # [B, L, N]
neuron_mean = torch.cat(per_prompt).mean(0).numpy()  # [L, N]: mean over prompts
n_silent = int((neuron_mean == 0).sum())  # never fired on these prompts (a ReLU FFN has many)
print(f"{len(prompts)} prompts; mean CETT per neuron: median {np.median(neuron_mean):.2e}, "
      f"max {neuron_mean.max():.2e}" + (f"; {n_silent:,} neurons never fired (mean CETT 0, "
                                        "counted in this median)" if n_silent else ""))

# %% mystnb={"figure": {"caption": "CETT across layers: quantiles, across each layer's neurons, of their mean CETT over the prompts (left, log scale) and the share of each layer's summed CETT held by its top 1% of neurons (right; a uniform layer gives 1%).", "name": "fig-cett-layers"}, "image": {"alt": "CETT across layers"}}
fig, layer_numbers = plots.cett_layer_figure(neuron_mean)
plots.save_figure(fig, OUT, "cett_by_layer", {"model": MODEL_ID, "n_prompts": len(prompts), **layer_numbers})
plt.show()

# %% mystnb={"figure": {"caption": "The mean CETT of every FFN neuron over the chapter's prompts (log10 scale).", "name": "fig-cett-histogram"}, "image": {"alt": "The mean CETT of every FFN neuron over the chapter's prompts"}}
fig, tail = plots.cett_histogram_figure(neuron_mean, len(prompts))
plots.save_figure(fig, OUT, "cett_histogram", tail)
plt.show()
top_share = layer_numbers["top1pct_share"]
print(f"99.9th percentile / median = {tail['p999_over_median']:.1f}; max / min = "
      f"10^{tail['log10_max_over_min']:.1f}; the top 1% of neurons hold {100 * top_share.min():.1f}-"
      f"{100 * top_share.max():.1f}% of their layer's CETT (median {100 * np.median(top_share):.1f}%, "
      "uniform 1%)")
if tail["n_silent"]:
    print(f"{tail['n_silent']:,} neurons never fired on these prompts (mean CETT exactly 0, as a "
          "ReLU FFN allows): they are left out of the histogram and of its ratios")

# %% [markdown]
# Read the printed figures as the answer to "how concentrated is CETT?". A uniform layer would
# give its top 1% of neurons 1% of the summed CETT; a handful of dominant neurons would give
# them tens of percent. The ratio of the 99.9th percentile to the median says how far the
# tail reaches. Whatever the concentration, it is a property of this model's FFNs on ordinary
# prompts, not yet anything about hallucination: the probe of the next chapter looks for
# neurons that *differ between* faithful and hallucinated answers, whatever the tail's shape.
#
# ## Eq. 7: scaling an activation scales its CETT by about $\alpha$
#
# The behaviour chapter multiplies H-Neuron activations by $\alpha$. Scaling $z_{j,t}$ by
# $\alpha$ scales the numerator of the CETT definition by $\alpha$ exactly; the denominator changes
# too, because $h_t$ contains the neuron's own contribution:
#
# ```{math}
# \mathrm{CETT}_{j,t}(\alpha) = \frac{\alpha\,|z_{j,t}|\,\lVert W_\text{down}[:, j]\rVert}
#   {\lVert h_t + (\alpha - 1)\, z_{j,t} W_\text{down}[:, j] \rVert} \approx \alpha\,
#   \mathrm{CETT}_{j,t} \quad \text{when } \mathrm{CETT}_{j,t} \ll 1 . \tag{paper, Eq. 7}
# ```
#
# We scale a few neurons in several layers at once (as the intervention does), rerun the
# prompts, and compare the measured ratio $\mathrm{CETT}(\alpha)/\mathrm{CETT}(1)$ with $\alpha$.
# Neurons are picked as each layer's highest-CETT neurons, where the approximation is weakest.
# Each value in the table below is such a ratio of averages, not an average of ratios: the
# neuron's CETT averaged over every real token of the first `BATCH_SIZE` prompts (each
# prompt's token mean, then the mean over prompts), with its activations scaled by $\alpha$,
# divided by the same average at $\alpha = 1$ (`cett.eq7_ratios`). Rows: neurons
# (`L<layer>/<index>`); columns: $\alpha$.

# %%
layers = sorted({min(l, m.adapter.n_layers - 1) for l in EQ7_LAYERS})
chosen = {l: torch.from_numpy(np.argsort(neuron_mean[l])[::-1][:EQ7_NEURONS_PER_LAYER].copy())
          for l in layers}
b = cett.encode(m, prompts[:BATCH_SIZE], add_special_tokens=False)
eq7 = cett.eq7_ratios(m, b, chosen, EQ7_ALPHAS, norms=norms)  # one row per alpha and neuron
print(f"CETT(alpha) / CETT(1), each a mean over the real tokens of {b['input_ids'].shape[0]} prompts")
eq7.pivot(index="neuron", columns="alpha", values="ratio").loc[eq7.neuron.unique()].round(3)  # by layer

# %% mystnb={"figure": {"caption": "Eq. 7 measured: CETT(alpha) / CETT(1), each a mean over the prompts' real tokens, against alpha for each checked layer's highest-CETT neurons, scaled together (left; dashed: Eq. 7's ratio = alpha), and the relative error (ratio - alpha) / alpha in percent, for alpha > 0 (right; the quantity printed below the figure).", "name": "fig-eq7"}, "image": {"alt": "Measured CETT ratio against alpha for scaled neurons, and the approximation error"}}
fig, numbers = plots.eq7_figure(eq7)
plots.save_figure(fig, OUT, "eq7_scaling", numbers)
plt.show()
print(cett.eq7_reading(eq7))

# %% [markdown]
# Read the printed ranges against $\alpha$. At $\alpha = 0$ the ratio is 0 by construction.
# Elsewhere the approximation is only as good as the assumption $\mathrm{CETT}_{j,t} \ll 1$
# in Eq. 7: the neurons we scaled are each layer's largest contributors, so scaling them
# also changes $\lVert h_t \rVert$. Where a neuron's contribution points along $h_t$, the
# ratio overshoots $\alpha$ below 1 (the output shrinks) and falls short above 1 (it grows);
# the printed signs show which way it goes on this model. Scaling an early layer also changes every
# later layer's input, which moves the scaled neurons downstream. When the behaviour chapter
# says "$\alpha = 3$", each H-Neuron's activation is multiplied by three where it is computed,
# but that activation is computed on a residual stream the scaling of earlier layers has
# already changed, so the contribution vector $z_{j,t} W_\text{down}[:, j]$ is three times what
# it would have been on that perturbed input, not three times the unsteered one; and its CETT
# (that contribution relative to the block's output) grows by less where the neuron's share of
# the output is large. The ratios above are for each
# layer's top-CETT neurons, the case where the approximation is weakest; a neuron with a
# small CETT sits closer to $\alpha$ on its own, while scaling many at once (as chapter 4
# scales every H-Neuron) adds their effects on $\lVert h_t \rVert$.
#
# ## Exercises
#
# 1. Rerun this chapter with `-p MODEL_ID gpt2` (GPT-2 stores its down-projection as a
#    transposed `Conv1D`; the adapter handles it; it has no chat template, so the prompts are
#    plain text). Its down-projection also adds a bias, so $h_t$, the output whose norm is
#    CETT's denominator, includes that bias. Is CETT as concentrated?
# 2. Change `EQ7_LAYERS` to a single early layer. How much do downstream neurons' CETT
#    values move when only that layer is scaled?
# 3. Prove the equality in the CETT definition and derive when Eq. 7's approximation error
#    exceeds 10%.
