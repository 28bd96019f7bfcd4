from __future__ import annotations

import pytest

from aisec.errors import ConfigError, ParameterError, UnknownNameError
from aisec.llm.chat import CHAT_FORMATS, ThinkTags, chat_format, split_thought


def test_chatml_matches_smollm2_template_layout():
    text = chat_format("chatml").user("Hi")
    assert text == (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
        "<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )
    assert not chat_format("chatml").thinking


def test_thinking_formats_open_the_thought():
    assert chat_format("chatml-think").user("Hi").endswith("<|im_start|>assistant\n<think>\n")
    r1 = chat_format("deepseek-r1").user("Hi", system="S")
    assert r1 == "<｜begin▁of▁sentence｜>S<｜User｜>Hi<｜Assistant｜><think>\n"
    assert chat_format("deepseek-r1").thinking and chat_format("chatml-think").thinking


def test_r1_drops_earlier_thoughts():
    fmt = chat_format("deepseek-r1")
    text = fmt.render([{"role": "user", "content": "a"},
                       {"role": "assistant", "content": "<think>x</think>\n\nb"},
                       {"role": "user", "content": "c"}])
    assert "x" not in text and "<｜Assistant｜>\n\nb<｜end▁of▁sentence｜>" in text


def test_require_thinking_error_is_one_line():
    with pytest.raises(ConfigError) as e:
        chat_format("chatml").require_thinking("zerothink")
    assert "\n" not in str(e.value) and "chatml" in str(e.value)
    assert chat_format("deepseek-r1").require_thinking("zerothink") == ThinkTags()


@pytest.mark.parametrize("text,expected", [
    ("plan\n</think>\n\nanswer", ("plan", "answer")),
    ("<think>\nplan</think>answer", ("plan", "answer")),
    ("<think>\nstill thinking", ("still thinking", "")),
    ("just an answer", ("", "just an answer")),
    ("\n</think>\n\nonly answer", ("", "only answer")),
])
def test_split_thought(text, expected):
    assert split_thought(text) == expected


def test_bad_messages_and_names():
    with pytest.raises(ParameterError):
        chat_format("chatml").render([{"role": "robot", "content": "x"}])
    with pytest.raises(ParameterError):
        chat_format("chatml").render([])
    with pytest.raises(UnknownNameError):
        chat_format("nope")
    assert {"chatml", "chatml-think", "deepseek-r1", "plain"} <= set(CHAT_FORMATS.names())
