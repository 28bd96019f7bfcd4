"""A tiny 2-layer Llama with the SmolLM2 tokenizer (session-scoped), and scripted fake LMs."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pytest

from aisec.llm.base import Generation, GenerationConfig, LanguageModel
from aisec.llm.chat import chat_format


class ScriptedLM(LanguageModel):
    """A remote-style model: ``reply(prompt)`` is the generated text; records every prompt."""

    def __init__(self, reply: Callable[[str], str]) -> None:
        self.reply = reply
        self.chat = chat_format("chatml")
        self.name = "scripted"
        self.prompts: list[str] = []

    def generate(
        self,
        prompts: Sequence[str],
        config: GenerationConfig | None = None,
        *,
        seeds: Sequence[int] | None = None,
        batch_size: int = 8,
        progress=None,
    ):
        self._check(prompts, seeds, batch_size)
        self.prompts.extend(prompts)
        return [Generation(self.reply(p), 1, "stop") for p in prompts]

    def count_tokens(self, text: str) -> int:
        return len(text.split())


class ScriptedScorer(ScriptedLM):
    """A local-style model: ``logprobs(prompt, candidates)`` gives first-token log-probabilities."""

    def __init__(self, logprobs: Callable[[str, Sequence[str]], Sequence[float]]) -> None:
        super().__init__(lambda p: "")
        self.logprobs = logprobs

    def next_token_logprobs(
        self, prompts: Sequence[str], candidates: Sequence[str], batch_size: int = 8
    ) -> np.ndarray:
        return np.array([list(self.logprobs(p, candidates)) for p in prompts], dtype=float)


@pytest.fixture
def scripted():
    return ScriptedLM


@pytest.fixture
def scripted_scorer():
    return ScriptedScorer


@pytest.fixture(scope="session")
def tiny_lm():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    from aisec.llm import load_causal_lm

    return load_causal_lm("tiny-llama", chat_format="chatml-think")
