"""Utility of a SafeChain model: greedy accuracy on GSM8K and MATH-500, sandboxed HumanEval."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from aisec.errors import ParameterError

__all__ = ["utility"]


def utility(
    lm: Any,
    benchmark: str,
    n: int,
    *,
    max_new_tokens: int = 256,
    batch_size: int = 8,
    seed: int = 0,
    start: int = 0,
) -> dict[str, Any]:
    """Accuracy on ``gsm8k`` (test), ``math500`` or ``humaneval`` (pass@1, sandboxed), greedy.

    The first ``n`` problems after ``start`` are used, so runs are comparable across models.
    """
    from aisec.assets import load_dataset
    from aisec.llm.base import GenerationConfig
    from aisec.llm.utility import score_utility

    if benchmark == "gsm8k":
        probs = load_dataset("gsm8k", split="test")
        qs = [p["question"] for p in probs]
    elif benchmark == "math500":
        probs = load_dataset("math500")
        qs = [p["problem"] + "\nPut the final answer in \\boxed{}." for p in probs]
    elif benchmark == "humaneval":
        probs = load_dataset("humaneval")
        qs = [
            "Complete this Python function. Reply with the full function in a ```python code "
            "block.\n\n" + p["prompt"]
            for p in probs
        ]
    else:
        raise ParameterError("benchmark", "must be gsm8k, math500 or humaneval", benchmark)
    probs, qs = probs[start : start + n], qs[start : start + n]
    if not probs:
        raise ParameterError("n", f"selects no problem (start={start})", n)
    prompts = [lm.chat.user(q) for q in qs]
    t0 = time.perf_counter()
    gens = lm.generate(
        prompts,
        GenerationConfig(max_new_tokens=max_new_tokens),
        seeds=[seed] * len(prompts),
        batch_size=batch_size,
    )
    seconds = time.perf_counter() - t0
    correct = score_utility(benchmark, probs, [g.text for g in gens])
    return {
        "benchmark": benchmark,
        "n": len(probs),
        "correct": int(sum(correct)),
        "accuracy": float(np.mean(correct)),
        "seconds": seconds,
        "tokens": int(sum(g.n_tokens for g in gens)),
    }
