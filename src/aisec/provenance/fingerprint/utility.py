"""Utility of a model before and after insertion: held-out perplexity, an MMLU slice, a GSM8K slice.

* Perplexity: of GSM8K *test* question + answer texts (the benign mix and the downstream SFT use
  the train split), token-level, each text cut to 256 tokens.
* MMLU: zero-shot, the question and its four options as a user turn; the answer is the letter
  (A-D) with the highest next-token log-probability after the assistant turn opens. Questions
  are drawn evenly (seeded) across the 57 subjects of ``shared/data/mmlu/test``.
* GSM8K: greedy answers to test questions, scored by :func:`aisec.llm.utility.gsm8k_correct`.
"""

from __future__ import annotations

import csv
from typing import Any

import numpy as np

from aisec.errors import AssetError, ParameterError

__all__ = ["heldout_texts", "mmlu_questions", "mmlu_accuracy", "gsm8k_accuracy", "perplexity_of"]


def heldout_texts(n: int) -> list[str]:
    from aisec.assets.datasets import gsm8k

    rows = gsm8k("test")[:n]
    return [f"{r['question']}\n{r['answer']}" for r in rows]


def perplexity_of(lm: Any, n: int = 32) -> float:
    from aisec.llm.scoring import perplexity

    return perplexity(lm, heldout_texts(n))


def mmlu_questions(n: int, seed: int = 0) -> list[dict[str, str]]:
    from aisec.assets.packages import shared_data_dir

    root = shared_data_dir() / "mmlu" / "test"
    files = sorted(root.glob("*_test.csv")) if root.is_dir() else []
    if not files:
        raise AssetError(
            f"{root} holds no MMLU test CSVs; set AISEC_DATA_DIR to a folder with "
            "mmlu/test/*_test.csv"
        )
    if n < 1:
        raise ParameterError("n", "must be >= 1", n)
    rng = np.random.default_rng(seed)
    per_subject: list[list[list[str]]] = []
    for f in files:
        with open(f, encoding="utf-8", newline="") as fh:
            rows = [r for r in csv.reader(fh) if len(r) == 6]
        per_subject.append([rows[i] for i in rng.permutation(len(rows))])
    out: list[dict[str, str]] = []
    k = 0
    while len(out) < n and any(k < len(s) for s in per_subject):
        for s in per_subject:
            if k < len(s) and len(out) < n:
                q, a, b, c, d, ans = s[k]
                out.append({"question": q, "A": a, "B": b, "C": c, "D": d, "answer": ans.strip()})
        k += 1
    return out


def mmlu_accuracy(lm: Any, n: int = 100, seed: int = 0, batch_size: int = 8) -> float:
    """Zero-shot accuracy of ``lm`` (a LocalLM) on ``n`` MMLU test questions."""
    qs = mmlu_questions(n, seed)
    prompts = []
    for q in qs:
        body = (
            f"{q['question']}\nA. {q['A']}\nB. {q['B']}\nC. {q['C']}\nD. {q['D']}\n"
            "Answer with the letter of the correct option."
        )
        prompts.append(lm.chat.user(body) + "Answer:")
    lp = lm.next_token_logprobs(prompts, [" A", " B", " C", " D"], batch_size=batch_size)
    pred = np.array(["ABCD"[i] for i in lp.argmax(1)])
    return float(np.mean(pred == np.array([q["answer"] for q in qs])))


def gsm8k_accuracy(lm: Any, n: int = 16, max_new_tokens: int = 192, batch_size: int = 8) -> float:
    from aisec.assets.datasets import gsm8k
    from aisec.llm import GenerationConfig
    from aisec.llm.utility import gsm8k_correct

    rows = gsm8k("test")[:n]
    gens = lm.generate(
        [lm.chat.user(r["question"]) for r in rows],
        GenerationConfig(max_new_tokens=max_new_tokens),
        batch_size=batch_size,
    )
    return float(
        np.mean([gsm8k_correct(g.text, r["answer"]) for g, r in zip(gens, rows, strict=True)])
    )
