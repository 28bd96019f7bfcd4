"""The one interface every language model backend implements: render chats, generate, count.

Backends: :class:`aisec.llm.local.LocalLM` (transformers, batched, in process),
:class:`aisec.llm.llamacpp.LlamaCppLM` (llama.cpp on a GGUF, several sequences decoded together)
and :class:`aisec.llm.remote.RemoteLM` (an OpenAI-compatible completions server such as vLLM).
Both generate from raw prompt text, so a caller can render a chat, append a prefill (a thought
opening, ``</think>``, "Wait") and continue from it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pydantic import Field

from aisec.config import StrictModel
from aisec.errors import ParameterError
from aisec.llm.chat import ChatFormat

__all__ = ["GenerationConfig", "Generation", "LanguageModel", "Progress"]

Progress = Callable[[int, int], None]


class GenerationConfig(StrictModel):
    """Decoding parameters.

    ``temperature == 0`` is greedy decoding; otherwise tokens are sampled from the softmax at
    ``temperature`` restricted by ``top_k`` (0 = off) and ``top_p`` (nucleus). ``stop`` strings
    end a sample (the stop string is not included in the text), as in the OpenAI API.
    """

    max_new_tokens: int = Field(128, ge=1, le=100_000)
    temperature: float = Field(0.0, ge=0.0, le=10.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=0)
    stop: tuple[str, ...] = ()
    stop_at_eos: bool = True

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass(frozen=True)
class Generation:
    """One generated continuation.

    Attributes:
        text: the continuation (without the prompt and without a matched stop string).
        n_tokens: tokens generated (including a matched stop string's tokens).
        finish_reason: ``"stop"`` (end-of-sequence or a stop string) or ``"length"``.
        stop: the stop string that ended it, if any.
    """

    text: str
    n_tokens: int
    finish_reason: str
    stop: str | None = None


class LanguageModel(ABC):
    """A text generator with a chat format.

    Attributes:
        name: the model's name.
        chat: the chat format prompts are rendered with.
        context_length: tokens the model attends to (prompt plus generation), or None when
            unknown (then callers cannot check lengths up front).
        chat_template_fallback: None when ``chat`` is the model's own template; otherwise why a
            built-in format stands in for it (recorded by callers in their results).
        backend: what runs the model (``transformers``, ``llamacpp`` or ``remote``).
        backend_reason: how that backend was chosen (set by :func:`aisec.llm.load_lm`: the
            caller's choice, or ``auto``'s reason, including why llama.cpp was not chosen);
            recorded by callers beside their results.
    """

    name: str
    chat: ChatFormat
    context_length: int | None = None
    chat_template_fallback: str | None = None
    backend: str = "unknown"
    backend_reason: str | None = None

    @abstractmethod
    def generate(
        self,
        prompts: Sequence[str],
        config: GenerationConfig | None = None,
        *,
        seeds: Sequence[int] | None = None,
        batch_size: int = 8,
        progress: Progress | None = None,
    ) -> list[Generation]:
        """Continue each prompt.

        Args:
            prompts: N prompt texts (rendered chats, possibly with a prefill).
            config: decoding parameters (greedy, 128 tokens by default).
            seeds: N seeds, one per sample, so a sample does not depend on its batch-mates.
            batch_size: prompts decoded together (local backends).
            progress: called with (done, total) after each batch.

        Returns:
            N generations, in prompt order.
        """

    @abstractmethod
    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` in this model's tokenizer (approximate for remote models)."""

    @staticmethod
    def _check(prompts: Sequence[str], seeds: Sequence[int] | None, batch_size: int) -> list[int]:
        if isinstance(prompts, str) or not isinstance(prompts, Sequence):
            raise ParameterError("prompts", "must be a list of strings", prompts)
        for i, p in enumerate(prompts):
            if not isinstance(p, str) or not p:
                raise ParameterError(f"prompts[{i}]", "must be a non-empty string", p)
        if batch_size < 1:
            raise ParameterError("batch_size", "must be >= 1", batch_size)
        if seeds is None:
            return list(range(len(prompts)))
        if len(seeds) != len(prompts):
            raise ParameterError(
                "seeds", f"must have one seed per prompt ({len(prompts)})", len(seeds)
            )
        return [int(s) for s in seeds]
