"""Chat formats: turn a list of messages into prompt text, with or without a thinking section.

A reasoning ("thinking") template opens the assistant turn with ``<think>\\n`` so that the model
writes its thought first, closes it with ``</think>`` and then answers (the DeepSeek-R1 layout).
A :class:`ChatFormat` says whether it has such a section (``thinking``) and which tags it uses;
decoding strategies that edit the thought (ZeroThink, LessThink, MoreThink) refuse formats
without one.

Formats come from a tokenizer's own Jinja ``chat_template`` or from the built-in registry
``CHAT_FORMATS`` (``chatml``, ``chatml-think``, ``deepseek-r1``, ``plain``), which also serves
remote models whose tokenizer is not at hand.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aisec.errors import ConfigError, ParameterError
from aisec.registry import Registry

__all__ = [
    "ThinkTags",
    "ChatFormat",
    "CHAT_FORMATS",
    "chat_format",
    "split_thought",
    "validate_messages",
    "CHATML",
    "CHATML_THINK",
    "DEEPSEEK_R1",
]

Message = Mapping[str, str]


@dataclass(frozen=True)
class ThinkTags:
    """Delimiters of the thinking section."""

    open: str = "<think>"
    close: str = "</think>"


def validate_messages(messages: Sequence[Message]) -> list[dict[str, str]]:
    """Check a conversation: a non-empty list of ``{"role", "content"}`` with known roles."""
    if not isinstance(messages, Sequence) or isinstance(messages, str) or not messages:
        raise ParameterError("messages", "must be a non-empty list of {role, content}", messages)
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or "role" not in m or "content" not in m:
            raise ParameterError(f"messages[{i}]", "must have 'role' and 'content'", m)
        if m["role"] not in ("system", "user", "assistant"):
            raise ParameterError(f"messages[{i}].role", "must be system, user or assistant", m["role"])
        if not isinstance(m["content"], str):
            raise ParameterError(f"messages[{i}].content", "must be a string", m["content"])
        out.append({"role": str(m["role"]), "content": str(m["content"])})
    return out


def _render_jinja(template: str, messages: list[dict[str, str]], add_generation_prompt: bool,
                  extra: Mapping[str, Any]) -> str:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)

    def raise_exception(msg: str) -> None:
        raise ConfigError(f"chat template: {msg}")

    env.globals["raise_exception"] = raise_exception
    return env.from_string(template).render(
        messages=messages, add_generation_prompt=add_generation_prompt, **extra
    )


@dataclass(frozen=True)
class ChatFormat:
    """A chat template.

    Attributes:
        name: registry name or ``tokenizer:<model>``.
        template: Jinja source (the Hugging Face ``chat_template`` dialect).
        tags: thinking tags, or ``None`` when the template has no thinking section.
        special: extra variables the template reads (``bos_token``, ``eos_token``).
        end_of_turn: the string that ends an assistant turn (a stop string for generation).
    """

    name: str
    template: str
    tags: ThinkTags | None = None
    special: Mapping[str, str] | None = None
    end_of_turn: str = ""

    @property
    def thinking(self) -> bool:
        """Whether the template opens a thinking section (``<think>``) in the assistant turn."""
        return self.tags is not None

    def render(self, messages: Sequence[Message], add_generation_prompt: bool = True) -> str:
        """Prompt text for ``messages``; with ``add_generation_prompt`` it ends where the
        assistant starts writing (after ``<think>\\n`` for thinking templates)."""
        msgs = validate_messages(messages)
        return _render_jinja(self.template, msgs, add_generation_prompt, dict(self.special or {}))

    def user(self, text: str, system: str | None = None) -> str:
        """Prompt text for one user turn (plus an optional system prompt)."""
        msgs: list[dict[str, str]] = []
        if system:
            msgs.append({"role": "system", "content": system})
        msgs.append({"role": "user", "content": text})
        return self.render(msgs, add_generation_prompt=True)

    def require_thinking(self, what: str) -> ThinkTags:
        """The thinking tags, or a one-line error saying ``what`` needs them."""
        if self.tags is None:
            raise ConfigError(
                f"{what} needs a chat template with a thinking section (<think> ... </think>); "
                f"chat format {self.name!r} has none (use a thinking model, or --chat-format "
                "chatml-think / deepseek-r1)"
            )
        return self.tags

    def with_template(self, template: str, name: str | None = None) -> ChatFormat:
        return ChatFormat(name or self.name, template, _detect_tags(template), self.special,
                          self.end_of_turn)


def _detect_tags(template: str) -> ThinkTags | None:
    return ThinkTags() if "<think>" in template else None


def split_thought(text: str, tags: ThinkTags | None = None) -> tuple[str, str]:
    """Split a response into (thought, answer).

    The generated text of a thinking template usually starts inside the thought (the prompt
    already ends in ``<think>\\n``), so a response with a closing tag but no opening tag is
    thought up to the closing tag. A response with an opening tag and no closing tag is all
    thought (the model never answered); one with neither tag is all answer.
    """
    t = tags or ThinkTags()
    if t.close in text:
        thought, _, answer = text.partition(t.close)
        if t.open in thought:
            thought = thought.split(t.open, 1)[1]
        return thought.strip(), answer.strip()
    if t.open in text:
        return text.split(t.open, 1)[1].strip(), ""
    return "", text.strip()


CHAT_FORMATS: Registry[ChatFormat] = Registry("chat format")

_DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"

CHATML = ChatFormat(
    "chatml",
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\n" + _DEFAULT_SYSTEM + "<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
    None,
    None,
    "<|im_end|>",
)

# ChatML (SmolLM2's own template) with a thinking section opened on the generation prompt; the
# thinking LoRA of aisec is trained on exactly this layout.
CHATML_THINK = ChatFormat(
    "chatml-think",
    CHATML.template.replace(
        "{{ '<|im_start|>assistant\n' }}", "{{ '<|im_start|>assistant\n<think>\n' }}"
    ),
    ThinkTags(),
    None,
    "<|im_end|>",
)

# DeepSeek-R1-Distill layout (the SafeChain reference models): no default system prompt; the
# assistant turn opens with "<think>\n"; earlier assistant turns drop their thoughts.
DEEPSEEK_R1 = ChatFormat(
    "deepseek-r1",
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] }}"
    "{% elif message['role'] == 'user' %}{{ '<｜User｜>' + message['content'] }}"
    "{% else %}{% set c = message['content'] %}"
    "{% if '</think>' in c %}{% set c = c.split('</think>')[-1] %}{% endif %}"
    "{{ '<｜Assistant｜>' + c + '<｜end▁of▁sentence｜>' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<｜Assistant｜><think>\n' }}{% endif %}",
    ThinkTags(),
    {"bos_token": "<｜begin▁of▁sentence｜>"},
    "<｜end▁of▁sentence｜>",
)

PLAIN = ChatFormat(
    "plain",
    # The SafeChain reference's fallback for tokenizers without a chat template.
    "{% for message in messages %}{% if message['role'] == 'user' %}"
    "{{ '## Instruction: ' + message['content'] + '\n' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '## Response: ' }}{% endif %}",
)

for _f in (CHATML, CHATML_THINK, DEEPSEEK_R1, PLAIN):
    CHAT_FORMATS.add(_f.name, _f, summary=f"{'thinking ' if _f.thinking else ''}chat format")


def chat_format(name: str) -> ChatFormat:
    """A built-in chat format by name (``chatml``, ``chatml-think``, ``deepseek-r1``, ``plain``)."""
    return CHAT_FORMATS.get(name)


def from_tokenizer(tokenizer: Any, name: str) -> ChatFormat:
    """The chat format of a Hugging Face tokenizer (its ``chat_template``), or ``plain``."""
    template = getattr(tokenizer, "chat_template", None)
    if not template or not isinstance(template, str):
        return PLAIN
    special = {
        k: str(getattr(tokenizer, k))
        for k in ("bos_token", "eos_token")
        if getattr(tokenizer, k, None) is not None
    }
    eot = "<|im_end|>" if "<|im_end|>" in template else (special.get("eos_token") or "")
    return ChatFormat(f"tokenizer:{name}", template, _detect_tags(template), special, eot)
