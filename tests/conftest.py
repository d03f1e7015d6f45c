"""Shared fixtures: tiny random models built in code, and the real embedded model (slow)."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import pytest
import torch

torch.set_num_threads(1)


def tiny_tokenizer(vocab_size: int = 100):
    """A word-level tokenizer over ``w0 .. w{n-4}`` plus pad/eos/unk, built without any download."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<eos>": 1, "<unk>": 2}
    vocab.update({f"w{i}": i + 3 for i in range(vocab_size - 3)})
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="<eos>",
                                  unk_token="<unk>")
    tok.padding_side = "left"
    return tok


def tiny_llama(seed: int = 0, layers: int = 2, neurons: int = 48):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=100, hidden_size=32, intermediate_size=neurons,
                      num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                      pad_token_id=0, eos_token_id=1, bos_token_id=1)
    return LlamaForCausalLM(cfg).eval()


def tiny_gpt2(seed: int = 0, layers: int = 2):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=100, n_embd=32, n_layer=layers, n_head=4, n_positions=64,
                     pad_token_id=0, eos_token_id=1, bos_token_id=1)
    return GPT2LMHeadModel(cfg).eval()


@pytest.fixture(params=["llama", "gpt2"])
def tiny_model(request):
    """A wrapped tiny random model of each adapter family (gated Llama, Conv1D GPT-2)."""
    from hneurons_utils.models import wrap_model

    hf = tiny_llama() if request.param == "llama" else tiny_gpt2()
    return wrap_model(hf, tiny_tokenizer(), name=f"tiny-{request.param}")


@pytest.fixture(scope="session")
def real_model():
    """The embedded SmolLM2-135M-Instruct, loaded once per session."""
    from hneurons_utils.models import load_model

    return load_model()
