"""One interface over every way the comparison gets a safer answer: a model as it is (the
aligned, task and merged models) and the inference-time defences that keep the task model's
weights and change how it answers (Self-Reminder, SafeDecoding).

A responder has ``method``, ``kind`` (``model`` or ``inference``), ``lm`` (the model whose
weights answer), ``respond(prompts, max_new_tokens=, batch_size=)`` (greedy responses) and
``answer_scores(pairs)`` (per-token log-probabilities of reference answers, for the held-out
task loss). :func:`make_inference` builds a registered inference-time method from the task model
and the aligned model, so one bench row compares merges and inference-time defences.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from aisec.errors import ParameterError

__all__ = ["ModelResponder", "INFERENCE_METHODS", "make_inference", "as_responder"]


class ModelResponder:
    """A model answering the user's query as it is (no wrapping, greedy decoding)."""

    kind = "model"

    def __init__(self, lm: Any, method: str = "model") -> None:
        self.lm = lm
        self.method = method

    def respond(
        self, prompts: Sequence[str], *, max_new_tokens: int = 64, batch_size: int = 8
    ) -> list[str]:
        from aisec.llm import GenerationConfig

        rendered = [self.lm.chat.render([{"role": "user", "content": p}]) for p in prompts]
        gens = self.lm.generate(
            rendered, GenerationConfig(max_new_tokens=max_new_tokens), batch_size=batch_size
        )
        return [g.text for g in gens]

    def answer_scores(self, pairs: Sequence[tuple[str, str]], batch_size: int = 8) -> list[Any]:
        from aisec.llm.scoring import score_completions

        prompts = [self.lm.chat.render([{"role": "user", "content": q}]) for q, _ in pairs]
        return score_completions(self.lm, prompts, [a for _, a in pairs], batch_size=batch_size)


def _self_reminder(task_lm: Any, aligned_lm: Any, params: dict[str, Any]) -> Any:
    from aisec.safety.enchtable.self_reminder import SelfReminder

    if params:
        raise ParameterError("self_reminder", "takes no parameters", sorted(params))
    return SelfReminder(task_lm)


def _safedecoding(task_lm: Any, aligned_lm: Any, params: dict[str, Any]) -> Any:
    from pydantic import ValidationError

    from aisec.safety.enchtable.safedecoding import SafeDecoding, SafeDecodingConfig

    try:
        cfg = SafeDecodingConfig(**params)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ParameterError(
            f"safedecoding.{'.'.join(str(x) for x in err['loc'])}", err["msg"], err.get("input")
        ) from None
    if aligned_lm is None:
        raise ParameterError("expert", "SafeDecoding needs a safety expert model", None)
    return SafeDecoding(task_lm, aligned_lm, cfg)


#: inference-time methods: name -> builder(task_lm, expert_lm, params); the expert is the
#: aligned model (SafeDecoding's safety expert; Self-Reminder ignores it)
INFERENCE_METHODS: dict[str, Callable[[Any, Any, dict[str, Any]], Any]] = {
    "self_reminder": _self_reminder,
    "safedecoding": _safedecoding,
}


def make_inference(
    name: str, task_lm: Any, expert_lm: Any, params: dict[str, Any] | None = None
) -> Any:
    """The inference-time method ``name`` on the task model (``expert_lm``: the aligned model)."""
    if name not in INFERENCE_METHODS:
        raise ParameterError(
            "method", f"must be one of {', '.join(INFERENCE_METHODS)} (inference-time)", name
        )
    return INFERENCE_METHODS[name](task_lm, expert_lm, dict(params or {}))


def as_responder(target: Any) -> Any:
    """``target`` itself when it is a responder, else the plain :class:`ModelResponder` of it."""
    if hasattr(target, "respond") and hasattr(target, "answer_scores"):
        return target
    return ModelResponder(target, getattr(target, "name", "model"))
