"""The CETT and steering checks of test_cett/test_steering on the other architecture families
the adapter supports (the `tiny_model` fixture covers Llama and GPT-2): a user who changes
MODEL_ID to a Mistral, Qwen, Gemma (text-only or the vision-language checkpoints the paper's
Gemma-3 models are), Phi-3, Pythia, OPT, GPT-Neo, StarCoder (GPTBigCode), Falcon or Bloom model gets
the same guarantees.

Each family is a tiny random model built in code. OPT is the odd one: its decoder layers flatten
tokens to ``[B*T, d]`` before the FFN, so the down-projection sees ``[B*T, N]``.
"""

from __future__ import annotations

import pytest
import torch

import test_cett
import test_steering
from conftest import tiny_tokenizer
from hneurons_utils.models import wrap_model

SIZES = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, vocab_size=100,
             pad_token_id=0, eos_token_id=1, bos_token_id=1)
GQA = dict(intermediate_size=48, num_key_value_heads=2)


def _build(family: str) -> torch.nn.Module:
    import transformers as tf

    if family == "mistral":
        return tf.MistralForCausalLM(tf.MistralConfig(**SIZES, **GQA))
    if family == "qwen2":
        return tf.Qwen2ForCausalLM(tf.Qwen2Config(**SIZES, **GQA))
    if family == "gemma3":  # GELU-tanh gate, pre/post feed-forward norms, sliding window
        return tf.Gemma3ForCausalLM(tf.Gemma3TextConfig(**SIZES, **GQA, head_dim=8))
    if family == "gemma3_vlm":  # the paper's Gemma-3-4B/27B: a vision-language checkpoint,
        # whose text layers sit at model.language_model.layers beside a vision tower with its own FFNs
        text = tf.Gemma3TextConfig(**SIZES, **GQA, head_dim=8)
        vision = tf.SiglipVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                       num_attention_heads=2, image_size=28, patch_size=14)
        return tf.Gemma3ForConditionalGeneration(tf.Gemma3Config(
            text_config=text, vision_config=vision, mm_tokens_per_image=4, image_token_index=99,
            boi_token_index=97, eoi_token_index=98))
    if family == "gpt_neox":  # parallel attention and FFN
        return tf.GPTNeoXForCausalLM(tf.GPTNeoXConfig(**SIZES, intermediate_size=48))
    if family == "phi3":  # gate and up projections fused into one weight
        return tf.Phi3ForCausalLM(tf.Phi3Config(**SIZES, **GQA))
    if family == "opt":
        return tf.OPTForCausalLM(tf.OPTConfig(**SIZES, ffn_dim=48, word_embed_proj_dim=32))
    if family == "gpt_neo":  # GPT-2's module names, but on nn.Linear (weight [out, in])
        return tf.GPTNeoForCausalLM(tf.GPTNeoConfig(
            vocab_size=100, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=48,
            attention_types=[[["global", "local"], 1]], max_position_embeddings=64,
            pad_token_id=0, eos_token_id=1, bos_token_id=1))
    if family == "gpt_bigcode":  # StarCoder / SantaCoder: the same, with multi-query attention
        return tf.GPTBigCodeForCausalLM(tf.GPTBigCodeConfig(
            vocab_size=100, n_embd=32, n_layer=2, n_head=4, n_inner=48, n_positions=64,
            pad_token_id=0, eos_token_id=1, bos_token_id=1))
    if family == "falcon":  # parallel attention; adds the attention output to the FFN's in place
        return tf.FalconForCausalLM(tf.FalconConfig(**SIZES, ffn_hidden_size=48))
    if family == "bloom":  # ALiBi positions; its FFN is fixed at 4 x hidden (48 = 4 x 12)
        return tf.BloomForCausalLM(tf.BloomConfig(vocab_size=100, hidden_size=12, n_layer=2, n_head=4,
                                                  pad_token_id=0, eos_token_id=1, bos_token_id=1))
    raise AssertionError(family)


DOWN = {"mistral": "mlp.down_proj", "qwen2": "mlp.down_proj", "gemma3": "mlp.down_proj",
        "gemma3_vlm": "mlp.down_proj", "phi3": "mlp.down_proj", "gpt_neox": "mlp.dense_4h_to_h",
        "opt": "fc2", "gpt_neo": "mlp.c_proj", "gpt_bigcode": "mlp.c_proj",
        "falcon": "mlp.dense_4h_to_h", "bloom": "mlp.dense_4h_to_h"}


@pytest.fixture(params=list(DOWN))
def family_model(request):
    torch.manual_seed(0)
    return wrap_model(_build(request.param).eval(), tiny_tokenizer(), name=f"tiny-{request.param}")


def test_adapter_finds_the_down_projection(family_model):
    family = family_model.name.removeprefix("tiny-")
    a = family_model.adapter
    assert (a.down_path, a.n_layers, a.n_neurons) == (DOWN[family], 2, 48)
    assert (a.gate_path is not None) == (family in ("mistral", "qwen2", "gemma3", "gemma3_vlm", "phi3"))
    assert a.fused_gate_up == (family == "phi3")
    assert not a.down_transposed  # only GPT-2's Conv1D is (tiny_model); GPT-Neo's Linear is not
    if family == "gemma3_vlm":  # the text model's layers, not the vision tower's
        assert a.layers_path == "model.language_model.layers"


def test_cett_matches_the_reference(family_model):
    test_cett.test_cett_tokens_match_reference(family_model)
    test_cett.test_cett_means_match_reference_over_masks(family_model)


def test_steering_methods_match_the_reference_hook(family_model):
    test_steering.test_logits_match_reference_hook(family_model, 3.0)  # amplifies the FFN
    test_steering.test_rows_method_matches_one_condition_at_a_time(family_model)


def test_weight_edit_restores_the_weights(family_model):
    test_steering.test_weights_restored_bit_exactly(family_model)
    test_steering.test_weights_restored_after_exception(family_model)
