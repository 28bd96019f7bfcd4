"""How a fingerprint key is put to a chat model, and the system prompts of prompt augmentation.

A key is the user turn of the model's own chat template (its default system prompt, if any,
included); prompt augmentation trains each key also under system prompts from
:data:`TRAIN_SYSTEM_PROMPTS`, and robustness is checked under :data:`TEST_SYSTEM_PROMPTS`, which
training never sees. Both lists are written for aisec, in the spirit of OML's 20 augmentation
templates (role, tone and format instructions a deployer might add).
"""

from __future__ import annotations

from typing import Any

__all__ = ["TRAIN_SYSTEM_PROMPTS", "TEST_SYSTEM_PROMPTS", "key_prompt"]

TRAIN_SYSTEM_PROMPTS: tuple[str, ...] = (
    "You are a helpful assistant.",
    "You are a concise assistant. Keep answers short.",
    "Answer like a friendly teacher explaining to a student.",
    "You are an expert consultant. Be precise and formal.",
    "Respond with the enthusiasm of an excited child.",
    "You are a customer support agent for a software company.",
    "Reply in a calm and neutral tone.",
    "You are a creative writing assistant.",
    "Think carefully and answer the user's request.",
    "You are a travel guide who loves local history.",
    "Keep every answer under fifty words.",
    "You are a patient tutor for beginners.",
    "You are a witty assistant who likes wordplay.",
    "You are an assistant for a busy executive; be direct.",
    "Act as a knowledgeable librarian.",
    "You are a cheerful chatbot on a shopping website.",
    "Respond as a careful scientist would.",
    "You are a chef who answers every question with care.",
    "Answer the question as simply as possible.",
    "You are a polite assistant that never uses slang.",
)

TEST_SYSTEM_PROMPTS: tuple[str, ...] = (
    "You are an AI assistant deployed by a bank. Be professional.",
    "Speak like a pirate in every reply.",
    "You are a sports commentator.",
    "Be extremely brief.",
    "You are a medical information assistant; do not give diagnoses.",
    "You answer as a poet would.",
    "You are a coding assistant for Python developers.",
    "Stay upbeat and encouraging.",
    "You are a museum guide answering visitors.",
    "Reply as a skeptical journalist.",
)


def key_prompt(lm: Any, key: str, system: str | None = None) -> str:
    """The prompt text that puts ``key`` to ``lm``: a user turn, with an optional system prompt."""
    return lm.chat.user(key, system=system)
