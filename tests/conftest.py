"""Shared fixtures: tiny random models built in code, a local OpenAI-compatible chat server for
the LLM judges, and the real embedded model (slow)."""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

os.environ.setdefault("OMP_NUM_THREADS", "1")
# Unit tests never reach the Hub. The smoke build (test_book.py) gets the setting the test
# command chose: scripts/run_tests.sh leaves the Hub on when benchmark files must come from it.
HUB_OFFLINE_GIVEN = os.environ.get("HF_HUB_OFFLINE")
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


class ChatStub:
    """A local OpenAI-compatible ``/chat/completions`` server for the LLM judges' tests.

    Every POST is answered with ``reply`` as the assistant's message (``None``: HTTP 500) and
    recorded in ``seen`` as ``(path, Authorization header, JSON body)``; ``url`` is the
    ``.../v1`` base URL to give a judge.
    """

    def __init__(self, reply: str | None = None):
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server API)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.seen.append((self.path, self.headers.get("Authorization"), body))
                if stub.reply is None:
                    self.send_response(500)
                    self.end_headers()
                    self.wfile.write(b"boom")
                    return
                data = stub.raw if stub.raw is not None else json.dumps(
                    {"choices": [{"message": {"role": "assistant", "content": stub.reply}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.reply, self.seen = reply, []
        self.raw = None  # bytes: sent as they are (status 200) instead of a chat reply
        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def chat_stub():
    """A running :class:`ChatStub` (set its ``reply`` first), shut down after the test."""
    stub = ChatStub()
    yield stub
    stub.close()


@pytest.fixture(scope="session")
def real_model():
    """The embedded SmolLM2-135M-Instruct, loaded once per session."""
    from hneurons_utils.models import load_model

    return load_model()
