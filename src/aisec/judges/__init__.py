"""Safety judges behind one interface: refusal matching, LLM-as-judge (Llama Guard 3 format),
the StrongREJECT rubric and an embedding classifier; agreement with labels in one function.

``make_judge("refusal")``, ``make_judge("llama-guard", model="smollm2-135m-instruct")``,
``make_judge("strongreject", model="http://gpu-box:8000/v1#Qwen/Qwen2.5-7B-Instruct")``.
"""

from __future__ import annotations

from typing import Any

from aisec.judges.base import (
    DEGENERATE,
    JUDGES,
    PARTS,
    SAFE,
    STATES,
    UNJUDGED,
    UNSAFE,
    Judge,
    Verdict,
    select_part,
)
from aisec.metrics.safety import Agreement, agreement

__all__ = [
    "JUDGES",
    "PARTS",
    "STATES",
    "SAFE",
    "UNSAFE",
    "UNJUDGED",
    "DEGENERATE",
    "Judge",
    "Verdict",
    "select_part",
    "make_judge",
    "Agreement",
    "agreement",
    "judge_agreement",
]

_MODULES = ("refusal", "llama_guard", "strongreject", "embedding", "harm")


def _register_all() -> None:
    import importlib

    for m in _MODULES:
        importlib.import_module(f"aisec.judges.{m}")


_register_all()  # the judge modules are light (no torch at import); fill the registry


def make_judge(name: str, **options: Any) -> Judge:
    """A judge by registry name with its options (e.g. ``model=`` for LLM judges)."""
    _register_all()
    return JUDGES.get(name)(**options)


def judge_agreement(
    judge: Judge,
    prompts: list[str],
    responses: list[str],
    labels_unsafe: list[bool],
    part: str = "response",
) -> Agreement:
    """Run ``judge`` and compare with labels: accuracy, F1 (unsafe class), Pearson over the
    judged items; ``Agreement.unjudged`` counts the items left out."""
    verdicts = judge.judge(prompts, responses, part)
    return agreement(
        [v.unsafe_or_none for v in verdicts], labels_unsafe, [v.score for v in verdicts]
    )
