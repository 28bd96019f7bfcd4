"""Behavioural contracts of every SafeChain decoding strategy and every built-in chat format.

A strategy or chat format registered later is checked here the day it registers.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from aisec.config import validate
from aisec.errors import ConfigError
from aisec.llm.base import Generation, GenerationConfig, LanguageModel
from aisec.llm.chat import CHAT_FORMATS, chat_format, split_thought
from aisec.safety.safechain import (
    STRATEGIES,
    EvalConfig,
    EvalItem,
    Strategy,
    build_prompt,
    generate_samples,
    get_strategy,
)


class _WordLM(LanguageModel):
    """Words are tokens; a thought continues with three words, an answer is "done."."""

    def __init__(self, chat) -> None:
        self.chat, self.name, self.calls = chat, "words", []

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
        self._check(prompts, seeds, batch_size)
        self.calls.append((list(prompts), cfg))
        tags = self.chat.tags
        out = []
        for p in prompts:
            closed = tags is not None and p.rstrip().endswith(tags.close)
            text = "done." if closed or tags is None else "x y z"
            out.append(Generation(text, min(len(text.split()), cfg.max_new_tokens), "stop"))
        return out

    def count_tokens(self, text: str) -> int:
        return len(text.split())


@pytest.mark.parametrize("name", STRATEGIES.names())
def test_strategy_draws_k_samples_within_its_token_bound(name):
    lm = _WordLM(chat_format("deepseek-r1"))
    strategy = get_strategy(name)
    assert isinstance(strategy, Strategy) and strategy.name == name
    cfg = EvalConfig(strategy=name, k=3, think_budget=8, enforce_num=2, max_new_tokens=12)
    items = [EvalItem("a", "q one"), EvalItem("b", "q two")]
    rows = generate_samples(lm, items, cfg)
    assert [len(r) for r in rows] == [3, 3]
    for r in rows:
        for s in r:
            assert isinstance(s.thought, str) and isinstance(s.answer, str)
            assert s.answer in s.response and s.n_tokens >= 1
    # same seeds, same samples: a strategy draws no unseeded randomness
    assert generate_samples(_WordLM(chat_format("deepseek-r1")), items, cfg) == rows
    prompt = strategy.prompt(lm.chat, "q one")
    assert prompt == build_prompt(lm.chat, "q one", name)
    assert prompt.startswith(lm.chat.user("q one").split("<think>")[0])
    bound = strategy.new_tokens(lm, cfg)
    # every call fits in the prompt plus the stated bound (both prompts have as many words)
    for call_prompts, gen in lm.calls:
        for p in call_prompts:
            assert lm.count_tokens(p) + gen.max_new_tokens <= lm.count_tokens(prompt) + bound


@pytest.mark.parametrize("name", STRATEGIES.names())
def test_strategy_refuses_a_template_without_thinking_or_works_without(name):
    strategy = get_strategy(name)
    plain = chat_format("chatml")
    if strategy.thinking:
        with pytest.raises(ConfigError, match="thinking section"):
            strategy.prompt(plain, "q")
    else:
        rows = generate_samples(
            _WordLM(plain), [EvalItem("a", "q")], EvalConfig(strategy=name, k=1)
        )
        assert rows[0][0].answer == "done." and rows[0][0].thought == ""


def test_unknown_strategy_lists_the_registered_ones():
    with pytest.raises(ConfigError) as e:
        validate(EvalConfig, {"strategy": "nothink"})
    assert all(n in str(e.value) for n in STRATEGIES.names())


@pytest.mark.parametrize("name", CHAT_FORMATS.names())
def test_chat_format_renders_the_user_turn_and_its_thinking_section(name):
    fmt = chat_format(name)
    text = fmt.user("What is 2+2?", system="Be brief.")
    assert isinstance(text, str) and "What is 2+2?" in text
    assert text.index("What is 2+2?") > (text.find("Be brief.") if "Be brief." in text else -1)
    if fmt.thinking:
        tags = fmt.require_thinking("test")
        assert tags.open in text[text.index("What is 2+2?") :]
        thought, answer = split_thought(f"{tags.open}\nplan\n{tags.close}\n\nfour", tags)
        assert (thought, answer) == ("plan", "four")
    else:
        with pytest.raises(ConfigError, match="thinking section"):
            fmt.require_thinking("test")
