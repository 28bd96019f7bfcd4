"""Language models shared by every LLM system: load, chat templates, batched generation,
fine-tuning (full and LoRA) and the same interface over an OpenAI-compatible server or over
llama.cpp (a GGUF file; checkpoints and adapters are exported to GGUF by
:mod:`aisec.llm.gguf_export`). ``load_lm(spec, backend=...)`` picks the backend; the default
``auto`` runs llama.cpp where the architecture's export has measured parity, else transformers,
and records the choice in ``lm.backend`` / ``lm.backend_reason``.

Heavy libraries (torch, transformers, peft) are imported only when a model is loaded.
"""

from __future__ import annotations

from typing import Any

from aisec.llm.base import Generation, GenerationConfig, LanguageModel
from aisec.llm.chat import CHAT_FORMATS, ChatFormat, ThinkTags, chat_format, split_thought

__all__ = [
    "CHAT_FORMATS",
    "ChatFormat",
    "Generation",
    "GenerationConfig",
    "LanguageModel",
    "ThinkTags",
    "chat_format",
    "split_thought",
    "load_causal_lm",
    "load_tokenizer",
    "load_lm",
    "LocalLM",
    "RemoteLM",
    "LlamaCppLM",
    "load_llamacpp",
]

_LAZY = {
    "load_causal_lm": "aisec.llm.model",
    "load_tokenizer": "aisec.llm.model",
    "load_lm": "aisec.llm.remote",
    "LocalLM": "aisec.llm.local",
    "RemoteLM": "aisec.llm.remote",
    "LlamaCppLM": "aisec.llm.llamacpp",
    "load_llamacpp": "aisec.llm.llamacpp",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'aisec.llm' has no attribute {name!r}")
