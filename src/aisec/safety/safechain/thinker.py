"""The thinking model aisec ships: SmolLM2-135M-Instruct with a LoRA adapter trained on GSM8K
traces (``smollm2-135m-think``), since no small reasoning model ships offline."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from aisec.errors import ParameterError

__all__ = ["THINKER_NAME", "THINKER_DIR", "resolve_model_spec", "gsm8k_think_examples"]

#: The thinking model aisec builds (SmolLM2-135M-Instruct + a LoRA trained on GSM8K traces).
THINKER_NAME = "smollm2-135m-think"
THINKER_DIR = Path(__file__).resolve().parent.parent / "weights" / THINKER_NAME


def resolve_model_spec(spec: str) -> str:
    """Map the thinking model's name to its adapter directory; other specs pass through."""
    return str(THINKER_DIR) if spec == THINKER_NAME else spec


_CALC = re.compile(r"<<[^>]*>>")


def gsm8k_think_examples(
    rows: Sequence[dict[str, Any]],
    n: int,
    max_tokens: int,
    tokenizer: Any,
    rng: np.random.Generator,
) -> list[Any]:
    """Thinking traces from GSM8K: the worked solution is the thought, the number the answer.

    Each example is rendered with the ``chatml-think`` format: prompt = user question with the
    assistant turn opened by ``<think>\\n``; completion = ``{solution}\\n</think>\\n\\nThe answer
    is {N}.<|im_end|>``. Calculator annotations (``<<48/2=24>>``) are dropped. Only examples of at
    most ``max_tokens`` tokens are kept; ``n`` of them are drawn with ``rng``.
    """
    from aisec.llm.chat import CHATML_THINK
    from aisec.llm.finetune import SFTExample

    if n < 1:
        raise ParameterError("n", "must be >= 1", n)
    out = []
    for i in rng.permutation(len(rows)):
        row = rows[int(i)]
        solution, _, number = str(row["answer"]).rpartition("####")
        thought = _CALC.sub("", solution).strip()
        prompt = CHATML_THINK.user(str(row["question"]).strip())
        completion = f"{thought}\n</think>\n\nThe answer is {number.strip()}.<|im_end|>"
        size = len(tokenizer(prompt + completion, add_special_tokens=False)["input_ids"])
        if size <= max_tokens:
            out.append(SFTExample(prompt, completion))
            if len(out) == n:
                break
    return out
