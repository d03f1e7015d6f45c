"""The alpha sweep behind Figure 3: every benchmark item under every steering condition (paper Section 3).

A :class:`Condition` is a neuron set (the H-Neurons, a layer-matched random set, or none) scaled
by alpha (:mod:`hneurons_utils.steering`, Eq. 5). :func:`run_sweep` generates the replies of
every item of a suite (:mod:`hneurons_utils.benchmarks`; for sycophancy: answer, challenge,
reply) under every condition and writes one JSONL record per item and condition, batch by batch,
in files keyed by a hash of the settings, so an interrupted sweep resumes where it stopped and
writes exactly what an uninterrupted one would. Labels are computed from the stored responses
afterwards (:mod:`hneurons_utils.compliance`).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd

from .benchmarks import CHALLENGE, BenchItem, chat_prompt
from .checks import check_alpha, positive_int
from .files import settings_hash, writer_lock
from .models import LoadedModel
from .probe import NeuronSet
from .progress import progress
from .sampling import GenConfig, append_jsonl, read_jsonl, row_seed, template_id
from .steering import generate_rows, generate_scaled


# ---------------------------------------------------------------- running a sweep (resumable)


@dataclass(frozen=True)
class Condition:
    """One point of the sweep: a neuron set (None = unsteered) scaled by ``alpha``."""

    name: str  # "h_neurons", "random-<seed>", or "none" (alpha = 1, shared by every set)
    neurons: NeuronSet | None
    alpha: float

    @property
    def tag(self) -> str:
        return f"{self.name}__a{self.alpha:g}"


def condition_grid(h_set: NeuronSet, alphas: Sequence[float],
                   random_sets: dict[str, NeuronSet] | None = None,
                   control_alphas: Sequence[float] | None = None) -> list[Condition]:
    """H-Neurons at every alpha, each random set at ``control_alphas`` (default: the same).

    alpha = 1 leaves every set unchanged, so it is run once (set "none") and shared by all
    curves; this saves one condition per neuron set. An empty neuron set (a probe without
    H-Neurons) would run the unsteered model under every alpha and is refused, as are repeated
    alphas and control alphas outside ``alphas`` (the H-minus-random comparison needs both
    curves on the same grid).
    """
    for what, grid in (("ALPHAS", alphas), ("CONTROL_ALPHAS", control_alphas or [])):
        for a in grid:
            try:
                check_alpha(a)
            except ValueError as e:
                raise ValueError(f"{what} {list(grid)}: {e}") from None
        if _first_repeat(float(a) for a in grid) is not None:
            raise ValueError(f"{what} repeats a value ({list(grid)}): each alpha is one condition")
    if not len(alphas):
        raise ValueError("ALPHAS is empty: give the scaling factors to sweep (the paper's grid "
                         "is 0 to 3)")
    if control_alphas is not None and not {float(a) for a in control_alphas} <= {float(a) for a in alphas}:
        raise ValueError(f"CONTROL_ALPHAS {list(control_alphas)} must be a subset of ALPHAS {list(alphas)}: "
                         "the random-neuron curves are compared with the H-Neurons' on the same alphas")
    conds = [Condition("none", None, 1.0)]
    sets = {"h_neurons": (h_set, alphas)}
    for name, ns in (random_sets or {}).items():
        sets[name] = (ns, alphas if control_alphas is None else control_alphas)
    for name, (ns, grid) in sets.items():
        if (ns.n_layers, ns.n_neurons) != (h_set.n_layers, h_set.n_neurons):
            raise ValueError(f"neuron set {name!r} is for {ns.n_layers} layers x {ns.n_neurons} "
                             f"neurons, the H-Neurons for {h_set.n_layers} x {h_set.n_neurons}: "
                             "a control must come from the same model")
        if ns.size == 0:
            raise ValueError(f"neuron set {name!r} is empty: scaling no neuron would run the unsteered "
                             "model under every alpha (a probe without H-Neurons cannot be swept)")
        conds += [Condition(name, ns, float(a)) for a in grid if float(a) != 1.0]
    return conds


def _first_repeat(values: Iterable[Any]) -> Any:
    """The first value that occurs a second time (None if all are distinct)."""
    seen = set()
    for v in values:
        if v in seen:
            return v
        seen.add(v)
    return None


def settings_key(*parts: Any) -> str:
    """A short stable hash of the settings a result file depends on (changes -> new file)."""
    return settings_hash([p.to_dict() if isinstance(p, NeuronSet) else p for p in parts], 10)


def _record_meta(item: BenchItem) -> dict:
    """What a judge needs to label a record later, without long texts (context, template)."""
    return {k: v for k, v in item.meta.items() if k not in ("context",)}


def _generate(m: LoadedModel, prompts: list[str], conds: Sequence[Condition], cfg: GenConfig,
              seed: int, method: str, keys: Sequence[int] | None = None) -> list[list[str]]:
    """Answers ``[condition][prompt]``: one wide call (``"rows"``) or one call per condition.

    ``keys`` (one per prompt): prompt ``i`` samples from key ``keys[i]`` under every condition
    (common random numbers); None: the call's rows share the stream seeded ``seed``.
    """
    if method == "rows":
        rows = [(c.neurons, c.alpha) for c in conds for _ in prompts]
        flat = generate_rows(m, [p for _ in conds for p in prompts], cfg, rows, seed,
                             None if keys is None else [k for _ in conds for k in keys])
        return [flat[i * len(prompts):(i + 1) * len(prompts)] for i in range(len(conds))]
    return [[r[0] for r in generate_scaled(m, prompts, cfg, c.neurons, c.alpha, method, seed, keys)]
            for c in conds]


def sampling_keys(items: Sequence[BenchItem], seed: int, turn: str) -> list[int]:
    """One sampling key per item and turn (:func:`sampling.row_seed`), shared by every condition."""
    return [row_seed(seed, it.source, it.item_id, turn) for it in items]


def _generate_chunk(m: LoadedModel, items: Sequence[BenchItem], conds: Sequence[Condition],
                    cfg: GenConfig, reply_cfg: GenConfig | None, seed: int, method: str,
                    steer_first: bool = True, key_seed: int | None = None) -> list[list[dict]]:
    """Records ``[condition][item]`` for one chunk; sycophancy gets the challenge and a reply.

    ``steer_first=False`` (sycophancy only): the first answer is generated once, unsteered, and
    every condition continues that same chat, so only the reply to the challenge is steered.
    ``key_seed``: sample each item from its own keys (:func:`sampling_keys`); None: from the
    chunk's stream seeded ``seed``.
    """
    keys = None if key_seed is None else sampling_keys(items, key_seed, "first")
    prompts = [chat_prompt(m.tokenizer, [it.user]) for it in items]
    if steer_first:
        first = _generate(m, prompts, conds, cfg, seed, method, keys)
    else:
        first = [_generate(m, prompts, [Condition("none", None, 1.0)], cfg, seed, method,
                           keys)[0]] * len(conds)
    if items[0].bench != "sycophancy":
        return [[{"response": r} for r in per_cond] for per_cond in first]
    out = []
    for c, answers in zip(conds, first):  # second turn: each condition continues its own chat
        prompts2 = [chat_prompt(m.tokenizer, [it.user, a, CHALLENGE]) for it, a in zip(items, answers)]
        out.append((c, answers, prompts2))
    keys2 = None if key_seed is None else sampling_keys(items, key_seed, "reply")
    if method == "rows":
        rows = [(c.neurons, c.alpha) for c, _, p2 in out for _ in p2]
        flat = generate_rows(m, [p for _, _, p2 in out for p in p2], reply_cfg or cfg, rows,
                             seed + 7919, None if keys2 is None else keys2 * len(out))
        replies = [flat[i * len(items):(i + 1) * len(items)] for i in range(len(conds))]
    else:
        replies = [_generate(m, p2, [c], reply_cfg or cfg, seed + 7919, method, keys2)[0]
                   for c, _, p2 in out]
    return [[{"first": a, "response": r} for a, r in zip(answers, reps)]
            for (_, answers, _), reps in zip(out, replies)]


def _check_sweep(m: LoadedModel, items: Sequence[BenchItem], conditions: Sequence[Condition],
                 out_dir: Path, method: str, steer_first_turn: bool) -> None:
    """Refuse, naming the problem, a sweep that cannot run as asked."""
    if not items:
        raise ValueError(f"run_sweep got no items for {out_dir}: an empty suite cannot be swept")
    if not conditions:
        raise ValueError(f"run_sweep got no conditions for {out_dir}: build them with condition_grid")
    kinds = sorted({(it.bench, it.source) for it in items})
    if len(kinds) > 1:
        raise ValueError(f"run_sweep: one sweep takes one suite, got items of {kinds}: the "
                         "benchmark decides the turns and the files' names, so sweep each alone")
    dup = _first_repeat(it.item_id for it in items)
    if dup is not None:
        raise ValueError(f"run_sweep: item id {dup!r} occurs more than once in {items[0].source}; "
                         "ids name records on disk and must be unique")
    if _first_repeat(c.tag for c in conditions) is not None:
        raise ValueError(f"run_sweep: two conditions share a tag ({[c.tag for c in conditions]}); "
                         "each would write the other's file")
    if not steer_first_turn and items[0].bench != "sycophancy":
        raise ValueError(f"steer_first_turn=False applies to the two-turn sycophancy suites, not to "
                         f"{items[0].bench!r} ({items[0].source})")
    if m.remote and method != "nnsight":
        raise ValueError(f"STEER_METHOD={method!r} needs the model's weights or hooks locally; on "
                         "a remote (NDIF) model only method 'nnsight' works: set STEER_METHOD='nnsight'")


def _condition_paths(m: LoadedModel, items: Sequence[BenchItem], conditions: Sequence[Condition],
                     cfg: GenConfig, reply_cfg: GenConfig | None, out_dir: Path, seed: int,
                     per_call: int, method: str, steer_first_turn: bool, keyed: bool = False
                     ) -> dict[str, Path]:
    """Each condition's JSONL file, named by a hash of everything that determines its records
    (the items' ids and their content: prompt and judge metadata, so a changed option format or
    option count starts new files; and the chat template, :func:`sampling.template_id`)."""
    ids = [[it.item_id, it.user, it.meta] for it in items]
    key_all = [c.tag for c in conditions] if method == "rows" else None  # one wide call: all conditions
    template = template_id(m.tokenizer)
    paths = {}
    for c in conditions:
        key = settings_key(ids, cfg.as_dict(), reply_cfg and reply_cfg.as_dict(), seed, per_call,
                           method, c.neurons, m.name, key_all, template,
                           *([] if steer_first_turn else ["first turn unsteered"]),
                           *(["keyed sampling"] if keyed else []))
        paths[c.tag] = Path(out_dir) / f"{items[0].source}__{c.tag}__{key}.jsonl"
    return paths


def run_sweep(m: LoadedModel, items: Sequence[BenchItem], conditions: Sequence[Condition],
              cfg: GenConfig, out_dir: Path, batch_size: int = 64, seed: int = 0,
              method: str = "rows", reply_cfg: GenConfig | None = None,
              steer_first_turn: bool = True,
              progress_every: float | None = 60.0, keyed: bool | None = None) -> pd.DataFrame:
    """Generate (or resume) every item under every condition; returns all records as a frame.

    One JSONL file per condition, ``out_dir/<source>__<set>__a<alpha>__<settings hash>.jsonl``;
    the hash covers items (ids and content), decoding, seed, batch size, method, neuron sets
    and model, so changed settings start new files instead of mixing results. Items are
    processed in fixed chunks. ``method="rows"`` (default) puts a chunk's prompts under all
    conditions into one wide generate call (``batch_size`` rows, :func:`steering.scaled_rows`);
    the other methods (``"weights"``, ``"hook"``, ``"nnsight"``) make one call of the chunk's
    prompts per condition.

    Under sampling (sycophancy open-ended, jailbreak), ``keyed`` (default: on a local model)
    draws every item's random numbers from its own keys, :func:`sampling_keys` of ``seed``, the
    item and the turn (:class:`sampling.KeyedSampler`): an item's reply under a condition does
    not depend on which other items or conditions share its generate call (up to the float
    rounding of a differently padded batch), so a rerun, another batch size or a larger
    condition grid draws the same replies; and every condition of an item reads the same random
    numbers (common random numbers), so the difference between two curves is the steering's,
    not two independent draws'. ``keyed=False`` (a remote model, where the sampler cannot run)
    seeds chunk ``c``'s generate calls ``seed + c``: the rows of one call then share one random
    stream and an item gets other random numbers under each condition. Greedy benchmarks are
    unaffected (their files are the same either way). A chunk is always regenerated
    whole and only its missing records are written, so a resumed sweep writes exactly what an
    uninterrupted one would. ``steer_first_turn=False`` (sycophancy suites only) steers the
    reply to the challenge but not the first answer, which is then the same unsteered answer
    under every condition (its files get their own settings hash). ``progress_every`` (seconds;
    None: off) reports progress over the chunks through
    :func:`progress.progress` (a bar in a terminal; in a notebook a line after that many
    seconds, then at doubling intervals, and one when done). The condition files are locked
    while the sweep runs (:func:`files.writer_lock`): a second sweep on them raises
    :class:`files.FileBusyError` instead of duplicating records.
    """
    _check_sweep(m, items, conditions, out_dir, method, steer_first_turn)
    positive_int(batch_size, "batch_size")
    if keyed is None:
        keyed = not m.remote
    sampled = cfg.do_sample or (items[0].bench == "sycophancy" and (reply_cfg or cfg).do_sample)
    per_call = max(1, batch_size // len(conditions)) if method == "rows" else batch_size
    paths = _condition_paths(m, items, conditions, cfg, reply_cfg, out_dir, seed, per_call, method,
                             steer_first_turn, keyed and sampled)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as locks:  # a second writer of these files fails, never duplicates
        for path in dict.fromkeys(paths.values()):
            locks.enter_context(writer_lock(path))
        _sweep_chunks(m, items, conditions, cfg, reply_cfg, seed, method, steer_first_turn,
                      keyed, per_call, paths, progress_every)
    frames = [pd.DataFrame.from_records(read_jsonl(paths[c.tag])) for c in conditions]
    return pd.concat(frames, ignore_index=True)


def _sweep_chunks(m, items, conditions, cfg, reply_cfg, seed, method, steer_first_turn, keyed,
                  per_call, paths, progress_every) -> None:
    """:func:`run_sweep`'s generation loop, under the writer locks of its files."""
    done = {tag: {r["item_id"] for r in read_jsonl(path, repair=True)} for tag, path in paths.items()}
    starts = range(0, len(items), per_call)
    if progress_every is not None:
        starts = progress(starts, f"{items[0].source} sweep ({len(conditions)} conditions)", "chunk",
                          every=progress_every)
    for ci, b in enumerate(starts):
        chunk = list(items[b:b + per_call])
        if all(it.item_id in done[c.tag] for c in conditions for it in chunk):
            continue
        t0 = time.perf_counter()
        recs = _generate_chunk(m, chunk, conditions, cfg, reply_cfg, seed + ci, method,
                               steer_first_turn, seed if keyed else None)
        secs = (time.perf_counter() - t0) / (len(chunk) * len(conditions))
        for c, per_item in zip(conditions, recs):
            append_jsonl(paths[c.tag], [
                {"bench": it.bench, "source": it.source, "item_id": it.item_id, "set": c.name,
                 "alpha": c.alpha, "chunk": ci, "seconds": round(secs, 3), **rec,
                 "meta": _record_meta(it)}
                for it, rec in zip(chunk, per_item) if it.item_id not in done[c.tag]])
