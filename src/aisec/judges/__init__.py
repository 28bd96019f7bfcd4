"""Safety judges behind one interface, and their agreement with people.

Judges: ``harm`` (the offline harm judge, fitted on aisec's labelled corpus), ``refusal`` (a
refusal detector), ``refusal-strings-reference`` (the reference's string matcher), LLM-as-judge
in the Llama Guard 3 format (``llama-guard``), the StrongREJECT rubric (``strongreject``) and
the older 40-row embedding classifier (``embedding``). Verdicts are safe, unsafe, unjudged or
degenerate. The corpus is :mod:`aisec.judges.corpus`; agreement reports (Cohen's kappa, AUROC,
bootstrap intervals) are :mod:`aisec.judges.evaluate`.

``make_judge("harm")``, ``make_judge("llama-guard", model="smollm2-135m-instruct", force=True)``,
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
