"""Figure and result-file helpers shared by every chapter.

Every figure is saved beside a JSON file holding the numbers drawn in it, so each number
quoted in the book traces to a file and a notebook.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from .files import write_text_atomic
from .paper import dataset_label
from .sampling import agreement_threshold, greedy_labels

PAPER_STYLE = dict(color="0.35", linestyle="--", marker="x")  # how the paper's numbers are drawn


def legend_right(ax: plt.Axes, *args: Any, **kw: Any) -> Any:
    """The legend of ``ax`` beside it, right of the plotting area, so it can cover no data
    (``savefig.bbox = "tight"`` keeps it in the saved file). ``args``: handles and labels,
    as for ``ax.legend``."""
    return ax.legend(*args, **{"fontsize": 8, "loc": "upper left", "bbox_to_anchor": (1.01, 1),
                               "borderaxespad": 0, **kw})


def legend_below(ax: plt.Axes, *args: Any, pad: float = 0.2, **kw: Any) -> Any:
    """The legend of ``ax`` under it (``pad``: axes heights below the bottom edge, enough to
    clear the tick labels and the x label), so it can cover no data."""
    return ax.legend(*args, **{"fontsize": 8, "loc": "upper center", "bbox_to_anchor": (0.5, -pad),
                               "borderaxespad": 0, **kw})


def setup_style() -> None:
    """One look for the whole book (seaborn's whitegrid, readable sizes)."""
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 150, "savefig.bbox": "tight"})


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None  # JSON has no NaN; None reads as "not available"
    return x


def write_results(out_dir: str | Path, name: str, results: dict) -> Path:
    """Write ``results`` as ``<out_dir>/<name>.json`` (numpy values converted, NaN -> null),
    atomically."""
    return write_text_atomic(Path(out_dir) / f"{name}.json",
                             json.dumps(_jsonable(results), indent=2, sort_keys=True))


def save_figure(fig: plt.Figure, out_dir: str | Path, name: str,
                numbers: dict | None = None) -> Path:
    """Save ``fig`` as ``<out_dir>/<name>.png`` and, if given, its numbers as ``<name>.json``."""
    path = Path(out_dir) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    if numbers is not None:
        write_results(out_dir, name, numbers)
    return path


def token_heatmap(ax: plt.Axes, view: Any, columns: list[str], title: str = "",
                  scale: dict[str, float] | None = None) -> Any:
    """Draw ``neurons.token_view`` output: one row per neuron, one column per token.

    Each neuron's row is divided by ``scale[neuron]`` (default: that neuron's largest value in
    ``view``; pass the maximum over several views to compare them), so neurons with different
    CETT scales share one colour bar (0 to 1); answer tokens have red, bold labels. Returns the
    image (for a colour bar).
    """
    vals = np.stack([np.asarray(view[c], dtype=np.float64) for c in columns])  # [k, T]
    peak = (vals.max(axis=1, keepdims=True) if scale is None
            else np.array([[scale[c]] for c in columns], dtype=np.float64))
    img = ax.imshow(np.divide(vals, peak, out=np.zeros_like(vals), where=peak > 0),
                    aspect="auto", cmap="viridis", vmin=0, vmax=1)
    ax.set_yticks(range(len(columns)), columns)
    ax.set_xticks(range(len(view)), [repr(t)[1:-1] for t in view["token"]], rotation=90, fontsize=8)
    for label, is_answer in zip(ax.get_xticklabels(), view["answer"]):
        if is_answer:
            label.set_color("C3")
            label.set_fontweight("bold")
    ax.grid(False)
    ax.set_title(title, fontsize=10, loc="left")
    return img


# ---- one function per figure: each returns (figure, the numbers drawn in it) ----------------
# The chapters call these, then ``save_figure`` and ``plt.show``; none of them saves or shows.

def cett_layer_figure(neuron_mean: np.ndarray) -> tuple[plt.Figure, dict]:
    """Chapter 1: quantiles of the neurons' mean CETT in each layer, and the share of each
    layer's summed CETT held by its top 1% of neurons (1% if CETT were uniform).

    ``neuron_mean``: [layers, neurons], each neuron's mean CETT over the prompts.
    """
    q = np.quantile(neuron_mean, [0.5, 0.9, 0.99, 1.0], axis=1)  # [4, layers]
    ranked = np.sort(neuron_mean, axis=1)[:, ::-1]
    top_share = ranked[:, : max(1, neuron_mean.shape[1] // 100)].sum(1) / ranked.sum(1)  # [layers]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for row, label in zip(q, ["median", "90th pct", "99th pct", "max"]):
        axes[0].plot(row, label=label)
    axes[0].set(yscale="log", xlabel="layer", ylabel="mean CETT of a neuron (log)",
                title="CETT quantiles across each layer's neurons")
    legend_below(axes[0], ncol=4)  # below the axes: on no curve
    axes[1].bar(range(len(top_share)), 100 * top_share)
    axes[1].axhline(1, color="0.3", ls="--", label="uniform: 1%")
    axes[1].set(xlabel="layer", ylabel="% of the layer's summed CETT",
                title="share held by the top 1% of neurons")
    legend_below(axes[1])  # on no bar
    return fig, {"quantiles": q, "top1pct_share": top_share}


def cett_histogram_figure(neuron_mean: np.ndarray, n_prompts: int) -> tuple[plt.Figure, dict]:
    """Chapter 1: histogram of every neuron's mean CETT (log10), with the tail's reach
    (99.9th percentile over the median) among the returned numbers.

    A neuron whose mean CETT is exactly 0 never fired on the prompts (a ReLU model such as OPT
    has many): it has no logarithm, so it is counted (``n_silent``) and left out of the
    histogram and of the ratios, which describe the neurons that fired."""
    flat = np.asarray(neuron_mean).ravel()
    if (flat < 0).any() or not np.isfinite(flat).all():
        raise ValueError("mean CETT must be finite and >= 0 for every neuron")
    fired = flat[flat > 0]
    if fired.size == 0:
        raise ValueError("no neuron has a mean CETT above 0: nothing fired on these prompts")
    n_silent = flat.size - fired.size
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(np.log10(fired), bins=100, color="C0")
    silent = f"; {n_silent:,} silent (CETT 0) not shown" if n_silent else ""
    ax.set(xlabel="log10 mean CETT of a neuron", ylabel="neurons",
           title=f"{flat.size:,} neurons, {n_prompts} prompts{silent}")
    return fig, {"p999_over_median": float(np.quantile(fired, 0.999) / np.median(fired)),
                 "median": float(np.median(fired)), "max": float(fired.max()),
                 "log10_max_over_min": float(np.log10(fired.max() / fired.min())),
                 "n_silent": int(n_silent)}


def eq7_figure(eq7: Any) -> tuple[plt.Figure, dict]:
    """Chapter 1: measured CETT(alpha) / CETT(1) (each a neuron's mean over the prompts' tokens)
    against alpha per neuron, beside Eq. 7's ratio = alpha (left), and the relative error
    (ratio - alpha) / alpha in percent for alpha > 0 (right), the quantity ``cett.eq7_reading``
    prints. ``eq7``: ``cett.eq7_ratios`` output."""
    alphas = sorted(eq7.alpha.unique())
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    layer_then_index = lambda n: tuple(int(v) for v in n[1:].split("/"))  # noqa: E731  "L<l>/<j>"
    for name in sorted(eq7.neuron.unique(), key=layer_then_index):  # L2 before L10
        g = eq7[eq7.neuron == name]
        axes[0].plot(g.alpha, g.ratio, marker="o", ms=3, label=name)
        pos = g[g.alpha > 0]  # relative error, as cett.eq7_reading prints it (alpha = 0 has none)
        axes[1].plot(pos.alpha, 100 * pos.error / pos.alpha, marker="o", ms=3)
    (ref,) = axes[0].plot(alphas, alphas, **PAPER_STYLE, label=r"Eq. 7: ratio = $\alpha$")
    axes[0].set(xlabel=r"$\alpha$", ylabel=r"CETT($\alpha$) / CETT(1), token means",
                title="measured ratio")
    axes[1].axhline(0, color="0.3")
    axes[1].set(xlabel=r"$\alpha$", ylabel=r"(ratio $-\ \alpha$) / $\alpha$ (%)",
                title=r"relative error (Eq. 7 predicts 0; $\alpha > 0$)")
    # the Eq. 7 line's legend under the panel that draws it; the neurons' legend (same colour in
    # both panels) right of both: neither on a curve
    legend_below(axes[0], [ref], [ref.get_label()], pad=0.16)
    handles, labels = axes[0].get_legend_handles_labels()
    legend_right(axes[1], handles[:-1], labels[:-1], fontsize=7)
    return fig, {"rows": eq7.to_dict(orient="records")}


def consistency_figure(sampled: list[dict], greedy: list[dict] | None, n_samples: int,
                       min_agreement: float) -> tuple[plt.Figure, dict]:
    """Chapter 2: correct answers ``c`` among each question's ``n_samples`` samples, one histogram
    per label of the question's greedy answer, with both rules of the consistency filter
    (``k = sampling.agreement_threshold(n_samples, min_agreement)``, the filter's own):
    faithful when ``c >= k`` (dashed line), hallucinated when the incorrect answers ``w >= k``,
    which is ``c <= n - k`` for a question without refusals (dotted line; a refusal lowers ``w``
    too, so such a question left of that line can still miss the rule)."""
    greedy_label = greedy_labels(greedy)
    per_q: dict[str, list[int]] = {}
    for r in sampled:
        per_q.setdefault(greedy_label.get(r["qid"], "not screened"), []).append(r["labels"].count("correct"))
    k = agreement_threshold(n_samples, min_agreement)
    fig, ax = plt.subplots(figsize=(7, 4))
    bins = np.arange(n_samples + 2) - 0.5
    names = sorted(per_q)  # side by side within each bin: no bar hides another
    ax.hist([per_q[n] for n in names], bins=bins, rwidth=0.9,
            label=[f"greedy {n} ({len(per_q[n])})" for n in names])
    ax.axvline(k - 0.5, color="0.15", ls="--", label=f"faithful: c \u2265 {k}")
    ax.axvline(n_samples - k + 0.5, color="0.15", ls=":", lw=2,
               label=f"hallucinated: w \u2265 {k} (c \u2264 {n_samples - k} without refusals)")
    ax.set(xlabel=f"correct answers c among n = {n_samples} samples (w: incorrect ones)",
           ylabel="questions", title="How consistently the model answers")
    legend_right(ax)  # beside the axes: on no bar or rule line
    return fig, {"n_correct_by_greedy": {k_: per_q[k_] for k_ in sorted(per_q)},
                 "min_agreement": min_agreement, "n_samples": n_samples,
                 "faithful_min_correct": k, "hallucinated_min_incorrect": k,
                 "hallucinated_max_correct_without_refusals": n_samples - k}


def c_grid_figure(grid: list[dict], chosen_C: float) -> tuple[plt.Figure, dict]:
    """Chapter 2: held-out accuracy and AUROC against C (and, where the grid measured it, the
    suppression term: the share of known answers kept and the estimated TriviaQA accuracy with
    the candidate H-Neurons silenced, or the known-question accuracy alone, and the selection
    score, held-out accuracy plus the term), the number of H-Neurons on a right axis, and the
    chosen C dashed, with a legend entry."""
    C = [g["C"] for g in grid]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(C, [g["val_accuracy"] for g in grid], marker="o", label="held-out accuracy (detection)")
    ax.plot(C, [g["val_auroc"] for g in grid], marker="s", label="held-out AUROC (detection)")
    ax.set(xscale="log", xlabel="C (inverse L1 strength)", ylabel="held-out accuracy / AUROC", ylim=(0, 1.05))
    if any(g.get("suppression") is not None for g in grid):
        val = lambda k: [np.nan if g.get(k) is None else g[k] for g in grid]  # noqa: E731
        sup = val("suppression")
        estimated = any(g.get("unknown_right") is not None for g in grid)
        if estimated:  # term (2) estimates TriviaQA accuracy; the known answers kept beside it
            ax.plot(C, val("known_kept"), marker="v", label="known answers kept, H-Neurons silenced")
            ax.plot(C, sup, marker="x", color="C4",  # not C3: the H-Neurons' count is drawn in C3
                    label="estimated TriviaQA accuracy, H-Neurons silenced (term 2)")
        else:
            ax.plot(C, sup, marker="v", label="QA accuracy with H-Neurons silenced")
        empty = [g for g in grid if g["n_h_neurons"] == 0 and g.get("suppression") is not None]
        if empty:  # the kept answers' 1.0 there is no finding: those probes silence nothing
            at = max(empty, key=lambda g: g["C"])
            y = at["known_kept"] if estimated and at.get("known_kept") is not None else at["suppression"]
            where = ", ".join(f"{g['C']:g}" for g in sorted(empty, key=lambda g: g["C"]))
            ax.annotate(f"C = {where}: no H-Neuron,\nnothing silenced", xy=(at["C"], y),
                        xytext=(14, -30), textcoords="offset points", fontsize=7,
                        arrowprops={"arrowstyle": "-", "lw": 0.6, "color": "0.3"})
        score = [g["val_accuracy"] + s for g, s in zip(grid, sup)]
        ax.plot(C, score, marker="D", color="k",
                label="selection score (held-out accuracy + term 2)")
        ax.set(ylim=(0, max(1.05, np.nanmax(score) + 0.05)),
               ylabel="detection metrics, QA accuracy\nand their sum (score)")
    ax.axvline(chosen_C, color="0.3", ls="--", label=f"chosen C = {chosen_C:g}")
    ax2 = ax.twinx()
    ax2.plot(C, [g["n_h_neurons"] for g in grid], color="C3", marker="^", label="H-Neurons")
    ax2.set(yscale="symlog", ylabel="H-Neurons (positive weights)")
    ax2.grid(False)  # one grid (the left axis) is enough
    handles, labels = (a + b for a, b in zip(ax.get_legend_handles_labels(), ax2.get_legend_handles_labels()))
    legend_below(ax, handles, labels, pad=0.18, ncol=2)  # below the axes: on no line
    return fig, {"grid": grid, "chosen_C": chosen_C}


def layer_counts_figure(h: Any, whose: str = "") -> tuple[plt.Figure, dict]:
    """Chapters 2 and 5: the number of H-Neurons in each layer (``h``: a ``probe.NeuronSet``)."""
    counts = h.layer_counts()
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.bar(np.arange(h.n_layers), counts, color="C3")
    one = h.size == 1  # "the 1 H-Neuron sits", "the 3 H-Neurons sit"
    ax.set(xlabel="layer", ylabel="H-Neurons",
           title=f"Where the {whose}{'one' if one else h.size} H-Neuron{'' if one else 's'} sit{'s' if one else ''}")
    ax.yaxis.get_major_locator().set_params(integer=True)  # whole neurons
    ax.xaxis.get_major_locator().set_params(integer=True)  # whole layers
    return fig, {"layer_counts": counts, "n_h_neurons": h.size, "per_mille": h.per_mille}


def neuron_values_figure(values: dict[str, dict[str, np.ndarray]], titles: dict[str, str]
                         ) -> tuple[plt.Figure, dict]:
    """Chapter 2: per H-Neuron, a box and its points for each of the probe's three groups
    (``neurons.neuron_values``: hallucinated answers, faithful answers, other tokens).

    ``values``: neuron name -> group -> values; ``titles``: neuron name -> panel title.
    """
    fig, axes = plt.subplots(1, len(values), figsize=(2.1 * len(values) + 1, 3.4), squeeze=False)
    for ax, (name, groups) in zip(axes[0], values.items()):
        ax.boxplot(list(groups.values()), widths=0.6, showfliers=False)
        for i, v in enumerate(groups.values()):
            jitter = np.random.default_rng(i).uniform(-0.15, 0.15, len(v))  # fixed: same look every run
            ax.scatter(i + 1 + jitter, v, s=6, alpha=0.5, color=("C3", "C0", "0.5")[i])
        ax.set_xticks([1, 2, 3], ["halluc.\nanswers", "faithful\nanswers", "other\ntokens"], fontsize=8)
        ax.set_title(titles[name], fontsize=9)
    axes[0][0].set_ylabel("mean CETT")
    fig.tight_layout()
    return fig, {name: {k: np.asarray(v).tolist() for k, v in g.items()} for name, g in values.items()}


def token_pair_figure(views: list[Any], titles: list[str], columns: list[str],
                      about: list[dict] | None = None) -> tuple[plt.Figure, dict]:
    """Chapter 2: ``token_heatmap`` of several responses (``neurons.token_view`` outputs), one
    panel each, every neuron's row scaled by its maximum over all of them so colours compare.
    ``about``: per response, entries added to its record in the numbers (key, label, ...)."""
    peak = {c: max(float(v[c].max()) for v in views) for c in columns}
    fig, axes = plt.subplots(len(views), 1, figsize=(min(16, 3 + 0.33 * max(len(v) for v in views)),
                                                     3.2 * len(views)), layout="constrained", squeeze=False)
    for ax, v, title in zip(axes[:, 0], views, titles):
        img = token_heatmap(ax, v, columns, title, scale=peak)
    fig.colorbar(img, ax=list(axes[:, 0]), label="CETT / neuron's max", fraction=0.03, pad=0.01)
    return fig, {"neurons": columns, "scale": peak,
                 "responses": [{**a, "tokens": v["token"].tolist(), "answer": v["answer"].tolist(),
                                **{c: v[c].tolist() for c in columns}}
                               for a, v in zip(about or [{}] * len(views), views)]}


def stability_figure(stability: dict, n_neurons: int) -> tuple[plt.Figure, dict]:
    """Chapters 2 and 5: how often each H-Neuron is selected again over bootstrap refits
    (``pipeline.selection_stability``), most stable first; dashed: half of the resamples."""
    from .neurons import neuron_name

    freq = np.asarray(stability["frequency"], dtype=float)
    order = np.argsort(freq, kind="stable")[::-1]
    names = [neuron_name(j, n_neurons) for j in stability["h_neurons"]]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.bar([names[i] for i in order], freq[order], color="C3")
    ax.axhline(0.5, color="0.3", ls="--", lw=1, label="half of the resamples")
    legend_right(ax)
    ax.set(ylim=(0, 1.05), ylabel="share of resamples selecting it", xlabel="H-Neuron (layer/neuron)",
           title=f"Selection frequency over {stability['n_resamples']} resamples")
    ax.tick_params(axis="x", labelrotation=90, labelsize=8)
    return fig, dict(stability)


def _sft_title(base_name: str, steps: int, batch: int, n_examples: int) -> str:
    """How much of the tuning set the run saw: steps x batch of the examples, in epochs."""
    epochs = steps * batch / max(1, n_examples)
    return (f"Tuning {base_name}: {steps} steps x batch {batch} = {steps * batch} of "
            f"{n_examples} chat examples ({epochs:.2g} epoch{'s' if epochs > 1 else ''})")


def sft_loss_figure(meta: dict, base_name: str, window: int = 8) -> tuple[plt.Figure, dict]:
    """Chapter 5: answer-token cross-entropy per optimiser step of the offline instruction
    tuning (``finetune.sft_meta``), with its running mean over ``window`` steps."""
    loss = np.asarray(meta["losses"], dtype=float)
    steps = np.arange(1, loss.size + 1)
    running = np.array([loss[max(0, i + 1 - window):i + 1].mean() for i in range(loss.size)])
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(steps, loss, color="0.7", lw=1, label="per step")
    ax.plot(steps, running, color="C0", label=f"mean of {window} steps")
    ax.set(xlabel="optimiser step", ylabel="answer-token cross-entropy (nats)",
           title=_sft_title(base_name, loss.size, meta['config']['batch_size'], meta['n_examples']))
    legend_right(ax)  # beside the axes: on no curve
    return fig, {k: v for k, v in meta.items() if k != "qids"} | {"qids": len(meta.get("qids", []))}


def roc_figure(sets: dict[str, Any], probe_scores: dict[str, np.ndarray], rows: list[dict],
               control: dict | None = None, min_per_class: int = 2) -> tuple[plt.Figure | None, dict]:
    """Chapter 3: ROC curves per balanced evaluation set (``detection.EvalSet``): the probe
    (``probe_scores``), the random-neuron classifiers of ``rows`` (one thin line per seed;
    ``detection.baseline_metrics(..., keep_scores=True)``), the one-span-rule refit
    (``control``, ``detection.span_rule_control``) and answer-span length alone.

    Sets with fewer than ``min_per_class`` responses in a class are left out; with none left
    the figure is None. Each panel's legend, under the panel (never on a curve), gives its
    curves' AUROCs. The numbers are each curve's points and AUROC.
    """
    from sklearn.metrics import roc_curve

    from .stats import MIN_PER_CLASS, auroc

    per_class = {k: min(int(es.y.sum()), int((es.y == 0).sum())) for k, es in sets.items()}
    shown = [k for k, n in per_class.items() if n >= min_per_class]
    if not shown:
        return None, {}
    fig, axes = plt.subplots(1, len(shown), figsize=(3.7 * len(shown) + 0.6, 5.2), squeeze=False,
                             layout="constrained")
    drawn: dict[str, dict] = {}
    for ax, k in zip(axes[0], shown):
        es, drawn[k] = sets[k], {}
        curves = [("H-Neuron probe", es.y, probe_scores[k], dict(color="C3", lw=2))]
        if control is not None and k in control["datasets"]:
            c = control["datasets"][k]
            curves.append(("one span rule (control)", np.array(c["y"]), np.array(c["scores"]),
                           dict(color="C2", lw=1.8)))
        curves.append(("span length alone", es.y, es.answer_tokens.astype(float), dict(color="0.3", ls="--")))
        rand = [r for r in rows if r["dataset"] == k and r["kind"].startswith("random_")]
        curves += [(r["kind"], es.y, np.array(r["scores"]), dict(color="C0", lw=0.8, alpha=0.5)) for r in rand]
        for name, y, sc, style in curves:
            fpr, tpr, _ = roc_curve(y, sc)
            drawn[k][name] = {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "auroc": auroc(y, sc)}
            ax.plot(fpr, tpr, label=None if name.startswith("random") else
                    f"{name} {drawn[k][name]['auroc']:.2f}", **style)
        if rand:  # one legend entry for all seeds, with their mean AUROC
            ax.plot([], [], color="C0", lw=0.8, label=f"random neurons, mean of {len(rand)} seeds "
                    f"{np.mean([drawn[k][r['kind']]['auroc'] for r in rand]):.2f}")
        ax.plot([0, 1], [0, 1], color="0.5", ls=":", lw=1)
        ax.set(xlabel="false positive rate", ylabel="true positive rate" if k == shown[0] else None,
               title=f"{dataset_label(k)}: {per_class[k]} per class" + (" (too few)" if per_class[k] < MIN_PER_CLASS else ""),
               xlim=(0, 1), ylim=(0, 1.02), aspect="equal")
        # each panel's legend under it (its AUROCs differ per panel), where it covers no curve
        legend_below(ax, pad=0.2, fontsize=8, title="AUROC", title_fontsize=8)
    return fig, drawn


PAPER_MARKERS = ("^", "v", "<", ">", "P", "*", "X", "h")  # one per model of the paper's Table 1


def _table1_ours(ax: plt.Axes, ours: dict[str, dict], rows: list[dict], x: dict[str, int],
                 metric: str, scale: float, probe_label: str) -> dict[str, str]:
    """Our classifiers on one panel of :func:`table1_figure` (``metric``: "accuracy" or
    "auroc"), each at its own offset: the probe with its interval (none drawn, and a note
    written, where the interval is degenerate), random neurons of the probe's count (each seed
    and their mean), the H-Neurons refit (with its interval where stored) and random neurons
    of the H-Neurons' count (mean). Returns dataset -> the note of a degenerate interval."""
    from .detection import degenerate_accuracy_note

    notes = {}
    for i, (k, d) in enumerate(ours.items()):
        if k not in x or metric not in d:
            continue
        a, (lo, hi) = scale * d[metric], scale * np.asarray(d[f"{metric}_ci"], dtype=float)
        note = degenerate_accuracy_note(d) if metric == "accuracy" else ""
        err = None if note else [[a - lo], [hi - a]]
        ax.errorbar(x[k] - 0.05, a, err, fmt="D", color="C3", capsize=3,
                    label=None if i else f"ours, {probe_label} (95% CI)")
        if note:
            notes[k] = note
            ax.annotate("probe: " + note.replace(": ", ":\n"), (x[k], 0.02), xycoords=("data", "axes fraction"),
                        ha="center", va="bottom", fontsize=7, color="C3")  # at the foot: on no point
    k_of = lambda kind: next((r.get("k") for r in rows if r["kind"].startswith(kind)), None)  # noqa: E731
    count = lambda kind: f"{k_of(kind)} neurons, " if k_of(kind) is not None else ""  # noqa: E731
    for prefix, off, colour, what in (("random_", 0.1, "C0", "random neurons"),
                                      ("hsize_random_", 0.38, "C2", "random neurons")):
        rand = [r for r in rows if r["kind"].startswith(prefix) and r["dataset"] in x and metric in r]
        if not rand:
            continue
        if prefix == "random_":
            ax.scatter([x[r["dataset"]] + off for r in rand], [scale * r[metric] for r in rand], color=colour,
                       s=12, alpha=0.5, label=f"ours, {what} ({count(prefix)}L2, standardised), each seed")
        sets = list(dict.fromkeys(r["dataset"] for r in rand))
        mean = [scale * np.mean([r[metric] for r in rand if r["dataset"] == k]) for k in sets]
        ax.scatter([x[k] + off for k in sets], mean, color=colour, marker="s", s=45,
                   label=f"ours, {what} ({count(prefix)}L2, standardised), mean over seeds")
    refit = [r for r in rows if r["kind"] == "h_neurons_refit" and r["dataset"] in x and metric in r]
    for i, r in enumerate(refit):
        a = scale * r[metric]
        ci = r.get(f"{metric}_ci")
        err = None if ci is None else [[a - scale * ci[0]], [scale * ci[1] - a]]
        ax.errorbar(x[r["dataset"]] + 0.24, a, err, fmt="o", color="C1", capsize=3,
                    label=None if i else f"ours, H-Neurons alone, refit ({count('h_neurons_refit')}L2, "
                    "standardised; 95% CI where stored)")
    return notes


def table1_figure(ours: dict[str, dict], rows: list[dict], datasets: list[str], model: str = "",
                  probe_label: str = "H-Neuron probe") -> tuple[plt.Figure, dict]:
    """Chapter 3: Table 1 as a figure, for ``model``. Top, accuracy: the paper's models (one
    marker each, named in the legend; H-Neurons filled, random hollow), our probe with its
    bootstrap interval (``ours``: dataset -> ``stats.detection_metrics``; a degenerate interval
    is not drawn but named), and our baselines (``rows``: ``detection.baseline_metrics``):
    random neurons of the probe's count (each seed and their mean), the H-Neurons refit and
    random neurons of the H-Neurons' count (the like-for-like pair), each labelled with its
    neuron count and recipe (``probe_label`` names the probe's). Bottom, AUROC, the
    threshold-free comparison, for ours only (the paper's Table 1 gives accuracy alone). Our
    responses per class are under each dataset's name."""
    from .paper import table1_frame
    from .stats import MIN_PER_CLASS

    ref, x = table1_frame(), {k: i for i, k in enumerate(datasets)}
    ref = ref[ref.dataset.isin(x)]
    has_auroc = any("auroc" in d for d in ours.values())
    fig, axes = plt.subplots(2 if has_auroc else 1, 1, figsize=(10, 8.5 if has_auroc else 4.8),
                             sharex=True, squeeze=False)
    acc_ax = axes[0, 0]
    models = list(dict.fromkeys(ref.model))
    for j, name in enumerate(models):
        g = ref[ref.model == name]
        jit = 0.03 * (j - (len(models) - 1) / 2)
        mk = PAPER_MARKERS[j % len(PAPER_MARKERS)]
        acc_ax.scatter(g.dataset.map(x) - 0.38 + jit, g.h_neurons, color="0.35", marker=mk, s=28,
                       label=f"paper, {name}")
        acc_ax.scatter(g.dataset.map(x) - 0.22 + jit, g.random, facecolors="none", edgecolors="0.45",
                       marker=mk, s=28)
    acc_ax.scatter([], [], color="0.35", marker="o", s=28, label="paper: H-Neurons (filled, left)")
    acc_ax.scatter([], [], facecolors="none", edgecolors="0.45", marker="o", s=28,
                   label="paper: random (hollow, right)")
    notes = _table1_ours(acc_ax, ours, rows, x, "accuracy", 100.0, probe_label)
    acc_ax.axhline(50, color="0.3", ls=":", lw=1)
    acc_ax.set(ylabel="detection accuracy (%)", ylim=(0, 105),
               title="accuracy on balanced sets (chance = 50%), beside the paper's Table 1")
    if has_auroc:
        _table1_ours(axes[1, 0], ours, rows, x, "auroc", 1.0, probe_label)
        axes[1, 0].axhline(0.5, color="0.3", ls=":", lw=1)
        axes[1, 0].set(ylabel="AUROC", ylim=(0, 1.05),
                       title="AUROC, the threshold-free comparison (ours only; the paper gives accuracy)")
    ticks = [f"{dataset_label(k)}\n(ours: none)" if k not in ours else
             f"{dataset_label(k)}\n(ours: {ours[k]['n_pos']} per class"
             + (",\ntoo few)" if ours[k]["n_pos"] < MIN_PER_CLASS else ")") for k in x]
    axes[-1, 0].set(xticks=list(x.values()), xticklabels=ticks)
    fig.suptitle(f"Table 1{': ' + model if model else ''}: hallucination detection")
    legend_right(acc_ax)  # beside the axes: on no point
    return fig, {"ours": ours, "baselines": rows, "model": model, "degenerate": notes}


def recipe_figure(res: dict) -> tuple[plt.Figure, dict]:
    """Chapter 3's recipe refits (``detection.recipe_control``): left, each recipe's
    AUROC with its bootstrap interval per dataset (chance dotted); right, each variant's paired
    difference from the reference (reference minus variant) with its interval, 0 dotted. A
    dataset under ``stats.MIN_PER_CLASS`` responses per class is marked "too few"."""
    from .detection import recipe_name
    from .stats import MIN_PER_CLASS

    names = list(res["datasets"])
    ref = res["reference"]
    recipes = [("reference", f"reference refit ({recipe_name(ref)})")]  # a refit, not the chapter's probe
    recipes += [(k, v["alt"]) for k, v in res["variants"].items()]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True,
                                      gridspec_kw={"width_ratios": [3, 2]})
    y = np.arange(len(names))[::-1].astype(float)
    step = 0.8 / max(len(recipes), 1)
    drawn = {}
    for j, (key, label) in enumerate(recipes):
        off = 0.4 - step / 2 - j * step
        pts = [(y[i] + off, res["datasets"][n][key]["metrics"]) for i, n in enumerate(names)
               if key in res["datasets"][n]]
        if not pts:
            continue
        yy = np.array([p[0] for p in pts])
        a = np.array([p[1]["auroc"] for p in pts])
        lo, hi = (np.array([p[1]["auroc_ci"][k] for p in pts]) for k in (0, 1))
        left.errorbar(a, yy, xerr=[a - lo, hi - a], fmt="o", color=f"C{j}", capsize=3, label=label)
        drawn[label] = a.tolist()
        if key == "reference":
            continue
        d = [res["datasets"][n][key]["diff"] for n in names if key in res["datasets"][n]]
        v = res["variants"][key]
        dd = np.array([x["drop"] for x in d])
        dlo, dhi = (np.array([x["drop_ci"][k] for x in d]) for k in (0, 1))
        right.errorbar(dd, yy, xerr=[dd - dlo, dhi - dd], fmt="s", color=f"C{j}", capsize=3,
                       label=f"{v['ref']} minus {v['alt']}")
    left.axvline(0.5, color="0.3", ls=":", lw=1)
    right.axvline(0.0, color="0.3", ls=":", lw=1)
    n_min = {n: min(res["datasets"][n]["reference"]["metrics"]["n_pos"],
                    res["datasets"][n]["reference"]["metrics"]["n_neg"]) for n in names}
    ticks = [f"{dataset_label(n)}\n({n_min[n]} per class" + (", too few)" if n_min[n] < MIN_PER_CLASS else ")")
             for n in names]
    left.set(yticks=y, yticklabels=ticks, xlim=(-0.02, 1.02), xlabel="AUROC (95% bootstrap CI)",
             title="each recipe, C by held-out accuracy")
    right.set(xlabel="paired AUROC difference (95% CI)", title="reference minus variant")
    legend_below(left, ncol=1)
    legend_below(right, ncol=1)
    return fig, {"auroc": drawn, "datasets": names}
