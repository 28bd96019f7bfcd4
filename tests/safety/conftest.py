"""Fixtures for SafeChain: the tiny model and a scripted fake language model."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from aisec.llm.base import Generation, GenerationConfig, LanguageModel
from aisec.llm.chat import ChatFormat, chat_format


class ScriptedLM(LanguageModel):
    """Returns ``script(prompt, config, seed)`` for each prompt and records every call."""

    def __init__(self, script, chat: ChatFormat | None = None) -> None:
        self.script = script
        self.chat = chat or chat_format("deepseek-r1")
        self.name = "scripted"
        self.calls: list[tuple[list[str], GenerationConfig]] = []

    def generate(
        self,
        prompts: Sequence[str],
        config: GenerationConfig | None = None,
        *,
        seeds: Sequence[int] | None = None,
        batch_size: int = 8,
        progress=None,
    ):
        cfg = config or GenerationConfig()
        seeds = self._check(prompts, seeds, batch_size)
        self.calls.append((list(prompts), cfg))
        out = []
        for p, s in zip(prompts, seeds, strict=True):
            text = self.script(p, cfg, s)
            n = min(len(text.split()), cfg.max_new_tokens)
            out.append(Generation(text, n, "stop"))
        return out

    def count_tokens(self, text: str) -> int:
        return len(text.split())


@pytest.fixture
def scripted():
    return ScriptedLM


@pytest.fixture(scope="session")
def tiny_lm():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    from aisec.llm import load_causal_lm

    return load_causal_lm("tiny-llama", chat_format="chatml-think")


@pytest.fixture(scope="session")
def perturbed_tiny_llama() -> Callable[..., Path]:
    """``make(out, seed)``: tiny-llama with seeded Gaussian noise (sd 0.02) added to every
    decoder-layer weight, saved with its tokenizer to ``out`` (a stand-in fine-tune)."""

    def make(out: Path, seed: int, scale: float = 0.02) -> Path:
        torch = pytest.importorskip("torch")
        tf = pytest.importorskip("transformers")
        from aisec.assets import materialise

        base = materialise("tiny-llama")
        m = tf.AutoModelForCausalLM.from_pretrained(base)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for n, p in m.named_parameters():
                if ".layers." in n:
                    p.add_(scale * torch.randn(p.shape, generator=g))
        m.save_pretrained(out)
        tf.AutoTokenizer.from_pretrained(base).save_pretrained(out)
        return Path(out)

    return make
