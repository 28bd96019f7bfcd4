"""A tiny 2-layer Llama with the SmolLM2 tokenizer (session-scoped), and a scripted fake LM."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_lm():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    from aisec.llm import load_causal_lm

    return load_causal_lm("tiny-llama", chat_format="chatml-think")
