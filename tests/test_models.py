"""The architecture adapter and model loading."""

from __future__ import annotations

import pytest
import torch

from hneurons_utils import models


def test_adapter_llama_paths():
    """Gated Llama-family models resolve mlp.down_proj / up_proj / gate_proj."""
    from conftest import tiny_llama

    a = models.ffn_adapter(tiny_llama(neurons=40))
    assert (a.down_path, a.up_path, a.gate_path) == ("mlp.down_proj", "mlp.up_proj", "mlp.gate_proj")
    assert (a.n_layers, a.n_neurons, a.total_neurons) == (2, 40, 80)


def test_adapter_gpt2_transposed_weights():
    """GPT-2's Conv1D c_proj is stored [N, d]; the adapter returns W_down as [d, N]."""
    from conftest import tiny_gpt2

    hf = tiny_gpt2()
    a = models.ffn_adapter(hf)
    assert a.down_path == "mlp.c_proj" and a.down_transposed and a.gate_path is None
    w = a.down_weight(hf, 0)
    assert w.shape == (32, a.n_neurons)
    assert torch.equal(w, hf.transformer.h[0].mlp.c_proj.weight.T)
    assert a.up_weight(hf, 0).shape == (a.n_neurons, 32)


@pytest.mark.parametrize("family", ["gpt_neox", "opt"])
def test_adapter_other_families(family):
    """GPT-NeoX/Pythia (dense_4h_to_h) and OPT (fc2) resolve to their down-projections."""
    if family == "gpt_neox":
        from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

        hf = GPTNeoXForCausalLM(GPTNeoXConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2,
                                              num_attention_heads=4, intermediate_size=64))
        want = "mlp.dense_4h_to_h"
    else:
        from transformers import OPTConfig, OPTForCausalLM

        hf = OPTForCausalLM(OPTConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2,
                                      num_attention_heads=4, ffn_dim=64, word_embed_proj_dim=32))
        want = "fc2"
    a = models.ffn_adapter(hf)
    assert a.down_path == want and a.n_neurons == 64
    assert a.down_weight(hf, 1).shape == (32, 64)


def test_fused_gate_up_is_split_as_the_model_computes():
    """Phi-3 keeps W_gate and W_up in one gate_up_proj weight (gate rows first): the adapter's
    halves, put through the MLP by hand, give the model's own MLP output."""
    from transformers import Phi3Config, Phi3ForCausalLM

    torch.manual_seed(0)
    hf = Phi3ForCausalLM(Phi3Config(vocab_size=100, hidden_size=32, intermediate_size=24,
                                    num_hidden_layers=2, num_attention_heads=4,
                                    num_key_value_heads=2, pad_token_id=0)).eval()
    a = models.ffn_adapter(hf)
    assert a.fused_gate_up and a.up_path == a.gate_path == "mlp.gate_up_proj"
    assert a.n_neurons == 24 and a.up_weight(hf, 1).shape == a.up_weight(hf, 1, gate=True).shape == (24, 32)
    mlp, x = hf.model.layers[1].mlp, torch.randn(5, 32)
    by_hand = (x @ a.up_weight(hf, 1).T) * mlp.activation_fn(x @ a.up_weight(hf, 1, gate=True).T)
    with torch.no_grad():
        torch.testing.assert_close(mlp(x), by_hand @ a.down_weight(hf, 1).T)


def test_unknown_architecture_names_class_and_paths():
    """A model without a known block list gets an error naming its class and what was tried."""

    class Strange(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = torch.nn.ModuleList([torch.nn.Linear(2, 2)])

    with pytest.raises(models.UnsupportedArchitectureError, match=r"Strange.*model\.layers"):
        models.ffn_adapter(Strange())


def test_a_model_without_layers_is_refused():
    """An empty block list has no FFN neuron: an error naming the path, not an IndexError."""

    class Empty(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = torch.nn.Module()
            self.model.layers = torch.nn.ModuleList()

    with pytest.raises(models.UnsupportedArchitectureError, match=r"Empty: its block list model\.layers is empty"):
        models.ffn_adapter(Empty())


def test_missing_down_projection_names_modules():
    """Blocks without a known down-projection get an error listing the module names looked for."""

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.ffn = torch.nn.Linear(2, 2)

    class Odd(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.transformer = torch.nn.Module()
            self.transformer.h = torch.nn.ModuleList([Block()])

    with pytest.raises(models.UnsupportedArchitectureError,
                       match=r"Odd: no FFN down-projection.*mlp\.down_proj.*fc2"):
        models.ffn_adapter(Odd())


@pytest.mark.parametrize("fused_rows", [6, None])
def test_unknown_up_projection_is_named(fused_rows):
    """A down-projection without an up-projection the adapter knows (no up_proj, and no fused
    gate_up_proj of twice its width) is refused at load time, naming both modules, not deep
    inside the drift."""

    class MLP(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.down_proj = torch.nn.Linear(4, 2)
            if fused_rows:  # a fused weight of the wrong size: not read as gate + up halves
                self.gate_up_proj = torch.nn.Linear(2, fused_rows)
            else:
                self.w_in = torch.nn.Linear(2, 8)

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.mlp = MLP()

    class Phi3Like(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = torch.nn.Module()
            self.model.layers = torch.nn.ModuleList([Block()])

    with pytest.raises(models.UnsupportedArchitectureError,
                       match=r"Phi3Like: found the FFN down-projection model\.layers\[0\]\.mlp\.down_proj "
                             r"but not its up-projection mlp\.up_proj"):
        models.ffn_adapter(Phi3Like())


def test_layers_that_differ_from_layer_0_are_named():
    """The adapter is read off layer 0; a later layer with another width or without the FFN
    (a mixture of experts after dense layers) is refused at load time, naming that layer."""
    from conftest import tiny_llama

    wide = tiny_llama(neurons=40)
    wide.model.layers[1].mlp.down_proj = torch.nn.Linear(48, wide.config.hidden_size, bias=False)
    with pytest.raises(models.UnsupportedArchitectureError,
                       match=r"model\.layers\[1\]\.mlp\.down_proj has 48 neurons, layer 0 has 40"):
        models.ffn_adapter(wide)
    moe = tiny_llama(neurons=40)
    del moe.model.layers[1].mlp.up_proj
    with pytest.raises(models.UnsupportedArchitectureError, match=r"model\.layers\[1\] has no mlp\.up_proj"):
        models.ffn_adapter(moe)


def test_wrap_model_reaches_down_proj_through_nnsight(tiny_model):
    """The adapter resolves the same path on the nnsight envoy as on the HF module."""
    import nnsight

    batch = {"input_ids": torch.tensor([[5, 6, 7]]), "attention_mask": torch.ones(1, 3, dtype=torch.long)}
    with tiny_model.lm.trace(batch):
        z = nnsight.save(tiny_model.adapter.down_proj(tiny_model.lm, 1).input)
    assert z.shape == (1, 3, tiny_model.adapter.n_neurons)


def test_missing_model_folder_is_named(tmp_path):
    """A path that is not a folder fails with its name, before any Hub lookup."""
    with pytest.raises(FileNotFoundError, match="model folder .*nope.* does not exist"):
        models.load_model(str(tmp_path / "nope"))
    assert models.resolve_model_source(str(tmp_path)) == str(tmp_path)
    assert models.resolve_model_source("org/name") == "org/name"  # hub ids pass through


def test_local_folder_loads_on_a_device_or_sharded(tmp_path, monkeypatch):
    """A local folder loads whole (DEVICE "cpu") or through device_map="auto" (DEVICE "auto",
    which shards over GPUs; on a machine without one everything lands on the CPU): both give
    the same CETT. A DTYPE that is not a torch dtype is named."""
    from conftest import tiny_llama, tiny_tokenizer

    from hneurons_utils import cett

    tiny_llama().save_pretrained(tmp_path / "m")
    tiny_tokenizer().save_pretrained(tmp_path / "m")
    import transformers

    calls = []
    real = transformers.AutoModelForCausalLM.from_pretrained
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained",
                        lambda *a, **kw: calls.append(kw) or real(*a, **kw))
    whole = models.load_model(str(tmp_path / "m"))
    sharded = models.load_model(str(tmp_path / "m"), device="auto")
    assert [kw.get("device_map") for kw in calls] == [None, "auto"]
    batch = cett.encode(whole, ["w1 w2 w3", "w4"])
    mask = {"all": batch["attention_mask"].bool()}
    torch.testing.assert_close(cett.cett_means(sharded, batch, mask)["all"],
                               cett.cett_means(whole, batch, mask)["all"])
    with pytest.raises(ValueError, match="DTYPE 'bf16' is not a torch dtype"):
        models.load_model(str(tmp_path / "m"), dtype="bf16")
    assert models.load_model(str(tmp_path / "m"), dtype=torch.float16).hf.dtype == torch.float16
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="DEVICE 'cuda', but torch .* sees no CUDA GPU"):
        models.load_model(str(tmp_path / "m"), device="cuda")


def test_model_name_of_cached_folders_survives_a_moved_cache(tmp_path, monkeypatch):
    """A folder inside the cache is named by its folder name (results stay valid when the cache
    moves); a user's folder and a hub id keep their full name."""
    for where in ("a", "b"):
        twin = tmp_path / where / "sft" / "base-sft-123"
        twin.mkdir(parents=True)
        monkeypatch.setenv("HNEURONS_CACHE", str(tmp_path / where))
        assert models.model_name(str(twin)) == "base-sft-123"
    own = tmp_path / "mine" / "base-sft-123"
    own.mkdir(parents=True)
    assert models.model_name(str(own)) == str(own)
    (tmp_path / "b" / "linked").symlink_to(own)  # a cache entry that links elsewhere is still in the cache
    assert models.model_name(str(tmp_path / "b" / "linked")) == "linked"
    assert models.model_name("org/name") == "org/name"
    assert models.model_name(models.EMBEDDED_DEFAULT) == models.EMBEDDED_DEFAULT


def test_model_key_is_filesystem_safe():
    """Hub ids become folder names without slashes."""
    from hneurons_utils.profiles import model_key

    assert model_key("meta-llama/Llama-3.1-8B-Instruct") == "meta-llama--Llama-3.1-8B-Instruct"


@pytest.mark.slow
def test_embedded_model_loads_with_expected_shape(real_model):
    """The embedded SmolLM2-135M-Instruct: LlamaForCausalLM, 30 layers x 1536 neurons, chat template."""
    a = real_model.adapter
    assert (a.model_class, a.n_layers, a.n_neurons) == ("LlamaForCausalLM", 30, 1536)
    assert real_model.tokenizer.chat_template
    assert (models.cache_dir() / "smollm2-135m-instruct" / "config.json").exists()


def test_remote_without_ndif_key_is_a_clear_error(monkeypatch):
    """REMOTE=True with no NDIF key fails at once, naming the variable, before any download."""
    import nnsight

    from hneurons_utils.models import load_model

    monkeypatch.setattr(nnsight.CONFIG.API, "APIKEY", None)
    with pytest.raises(RuntimeError, match="NDIF_API_KEY"):
        load_model("some-org/some-model", remote=True)


def test_remote_model_loads_its_skeleton_with_a_key(monkeypatch, tmp_path):
    """With a key, REMOTE=True wraps the model for NDIF without its weights: the local copy is
    the architecture on the meta device, and the adapter reads the FFN shapes from it (the
    traces themselves run on NDIF, which this offline test cannot reach)."""
    import nnsight

    from conftest import tiny_llama, tiny_tokenizer
    from hneurons_utils.models import load_model

    tiny_llama().save_pretrained(tmp_path / "m")
    tiny_tokenizer().save_pretrained(tmp_path / "m")
    monkeypatch.setattr(nnsight.CONFIG.API, "APIKEY", "test-key")
    m = load_model(str(tmp_path / "m"), remote=True)
    assert m.remote and isinstance(m.hf, torch.nn.Module)
    assert m.hf.model.layers[0].mlp.down_proj.weight.device.type == "meta"
    assert (m.adapter.model_class, m.adapter.n_layers) == ("LlamaForCausalLM", 2)
    assert m.adapter.n_neurons == m.hf.config.intermediate_size


def test_a_model_wrapped_without_a_name_is_named_by_its_weights():
    """Caches and probes are keyed by the model's name: two different models wrapped without
    one must not share them (a base model and its fine-tuned copy, say), the same weights must
    give the same name, and editing one neuron's W_down column changes it."""
    from conftest import tiny_llama, tiny_tokenizer

    wrap_model = models.wrap_model
    a, again, other = (wrap_model(tiny_llama(seed=s), tiny_tokenizer()) for s in (1, 1, 2))
    assert a.name.startswith("custom-") and a.name == again.name != other.name
    with torch.no_grad():
        again.adapter.down_weight(again.hf, 1)[:, 7] *= 1.001
    assert wrap_model(again.hf, tiny_tokenizer()).name != a.name
    assert wrap_model(tiny_llama(seed=1), tiny_tokenizer(), name="mine").name == "mine"
