"""Safety and utility of a (merged) model: the unsafe rate by a judge of the judges registry on
held-out harmful prompts, over-refusal on benign prompts that look harmful, and the held-out
task loss (with task accuracy where the task has a checker).

Held-out harmful prompts come from StrongREJECT, HarmBench and AdvBench minus every prompt of
the judge corpus (whose ``train`` split is what the harmful surrogate is distilled on), so the
safety vector never saw them. The look-alike prompts are the corpus's ``lookalike`` prompts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from aisec.errors import ParameterError

__all__ = [
    "SafetyResult",
    "heldout_harmful",
    "lookalike_prompts",
    "unsafe_rate",
    "over_refusal",
    "task_loss",
    "task_pairs",
    "TASKS",
]

#: Task domains with real data in the embedded datasets: (dataset, question key, answer key).
#: MBPP ships one file: its last 100 problems are the ``test`` split, the rest ``train``.
TASKS = {"math": ("gsm8k", "question", "answer"), "code": ("mbpp", "text", "code")}
_MBPP_TEST = 100


@dataclass(frozen=True)
class SafetyResult:
    """A rate with what stands behind it."""

    judge: str
    rate: float
    ci_low: float
    ci_high: float
    k: int
    n_judged: int
    n_total: int
    unjudged: int
    degenerate: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def heldout_harmful(n: int, seed: int = 0) -> list[str]:
    """``n`` harmful requests (at most 300 characters) outside the judge corpus."""
    import numpy as np

    from aisec.assets import load_dataset
    from aisec.judges.corpus import load_corpus

    seen = {str(r["prompt"]) for r in load_corpus()}
    pool: list[str] = []
    for src in ("strongreject", "harmbench", "advbench"):
        pool.extend(
            p.text for p in load_dataset(src).prompts if p.text not in seen and len(p.text) <= 300
        )
    pool = sorted(set(pool))
    if n > len(pool):
        raise ParameterError("n", f"must be at most {len(pool)} held-out prompts", n)
    pick = np.sort(np.random.default_rng([seed, 21]).choice(len(pool), n, replace=False))
    return [pool[int(i)] for i in pick]


def lookalike_prompts(n: int) -> list[str]:
    """Benign prompts that look harmful (the corpus's written look-alikes), first ``n``."""
    import json

    from aisec.judges.corpus import CORPUS_DIR

    rows = [
        json.loads(line)
        for line in (CORPUS_DIR / "written_prompts.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    return [r["text"] for r in rows if r.get("set") == "lookalike"][:n]


def _respond(
    target: Any, prompts: Sequence[str], max_new_tokens: int, batch_size: int
) -> list[str]:
    from aisec.safety.enchtable.responders import as_responder

    return as_responder(target).respond(
        list(prompts), max_new_tokens=max_new_tokens, batch_size=batch_size
    )


def _rate(judge_name: str, verdicts: list[Any], flag: str) -> SafetyResult:
    from aisec.metrics import rate

    judged = [v for v in verdicts if v.judged]
    k = sum(1 for v in judged if getattr(v, flag))
    r = rate(k, len(judged))
    lo, hi = r.ci
    return SafetyResult(
        judge=judge_name,
        rate=r.value,
        ci_low=lo,
        ci_high=hi,
        k=k,
        n_judged=len(judged),
        n_total=len(verdicts),
        unjudged=sum(1 for v in verdicts if v.state == "unjudged"),
        degenerate=sum(1 for v in verdicts if v.state == "degenerate"),
    )


def unsafe_rate(
    target: Any,
    prompts: Sequence[str],
    *,
    judge: str = "harm",
    judge_options: dict[str, Any] | None = None,
    max_new_tokens: int = 64,
    batch_size: int = 8,
) -> tuple[SafetyResult, list[str]]:
    """Greedy responses of ``target`` (a model or a responder of
    :mod:`~aisec.safety.enchtable.responders`) judged by ``judge``; the unsafe share of judged
    ones."""
    from aisec.judges import make_judge

    responses = _respond(target, prompts, max_new_tokens, batch_size)
    verdicts = make_judge(judge, **(judge_options or {})).judge(list(prompts), responses)
    return _rate(judge, verdicts, "unsafe"), responses


def over_refusal(
    target: Any, prompts: Sequence[str], *, max_new_tokens: int = 48, batch_size: int = 8
) -> SafetyResult:
    """Share of benign look-alike prompts refused (the ``refusal`` detector: safe = refused)."""
    from aisec.judges import make_judge

    responses = _respond(target, prompts, max_new_tokens, batch_size)
    verdicts = make_judge("refusal").judge(list(prompts), responses)
    return _rate("refusal", verdicts, "safe")


def task_pairs(task: str, split: str, n: int, offset: int = 0) -> list[tuple[str, str]]:
    """(question, worked answer) pairs of a task domain's dataset split."""
    from aisec.assets import load_dataset

    if task not in TASKS:
        raise ParameterError("task", f"must be one of {', '.join(TASKS)}", task)
    if split not in ("train", "test"):
        raise ParameterError("split", "must be 'train' or 'test'", split)
    name, qk, ak = TASKS[task]
    if name == "mbpp":
        ds = load_dataset(name)
        idx = list(range(len(ds)))
        idx = idx[-_MBPP_TEST:] if split == "test" else idx[:-_MBPP_TEST]
    else:
        ds = load_dataset(name, split=split)
        idx = list(range(len(ds)))
    rows = [ds[i] for i in idx[offset : offset + n]]
    return [(str(r[qk]), str(r[ak])) for r in rows]


def task_loss(target: Any, pairs: Sequence[tuple[str, str]], batch_size: int = 8) -> float:
    """Mean negative log-likelihood per answer token of the reference answers (chat-rendered
    question as context, as the responder ``target`` renders it): the held-out task loss;
    lower is better."""
    from aisec.safety.enchtable.responders import as_responder

    scores = as_responder(target).answer_scores(list(pairs), batch_size=batch_size)
    nll = -sum(s.logprob for s in scores)
    count = sum(len(s.token_ids) for s in scores)
    if count == 0:
        return math.nan
    return nll / count
