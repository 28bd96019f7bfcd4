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
    "jailbreak_prompts",
    "HARMFUL_SPLITS",
    "unsafe_rate",
    "over_refusal",
    "lookalike_rates",
    "judge_lookalike",
    "judge_unsafe",
    "judge_fingerprint",
    "task_loss",
    "task_pairs",
    "check_task",
    "choice_accuracy",
    "medical_items",
    "medical_choices",
    "TASKS",
    "MEDICAL_SUBJECTS",
]

#: Task domains with real data in the embedded datasets: (dataset, question key, answer key).
#: MBPP ships one file: its last 100 problems are the ``test`` split, the rest ``train``.
#: ``medical`` is MMLU's medical subjects (see :func:`medical_items`).
TASKS = {
    "math": ("gsm8k", "question", "answer"),
    "code": ("mbpp", "text", "code"),
    "medical": ("mmlu", "question", "answer"),
}
_MBPP_TEST = 100

#: MMLU subjects of the ``medical`` task (their ``test`` CSVs; dev/val are not used).
#: professional_medicine is not among them: its case vignettes are all longer than the cap.
MEDICAL_SUBJECTS = (
    "anatomy",
    "clinical_knowledge",
    "college_medicine",
    "medical_genetics",
    "nutrition",
    "virology",
)
#: a question with its four options longer than this (characters) is left out, so that the
#: chat-rendered prompt and the answer fit the fine-tune's 128-token window of the runs
MEDICAL_MAX_CHARS = 300
#: the held-out ``test`` split: this many items of the seeded permutation; ``train`` is the rest
MEDICAL_TEST = 200
_LETTERS = ("A", "B", "C", "D")


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


#: splits of the held-out harmful prompts: ``test`` reports figures, ``validation`` (disjoint
#: from ``test``) chooses parameters such as EnchTable's beta
HARMFUL_SPLITS = ("test", "validation")


def _harmful_pool() -> list[str]:
    from aisec.assets import load_dataset
    from aisec.judges.corpus import load_corpus

    seen = {str(r["prompt"]) for r in load_corpus()}
    pool: list[str] = []
    for src in ("strongreject", "harmbench", "advbench"):
        pool.extend(
            p.text for p in load_dataset(src).prompts if p.text not in seen and len(p.text) <= 300
        )
    return sorted(set(pool))


def heldout_harmful(
    n: int, seed: int = 0, split: str = "test", test_n: int | None = None
) -> list[str]:
    """``n`` harmful requests (at most 300 characters) outside the judge corpus.

    ``split="test"`` is the draw every reported unsafe rate uses. ``split="validation"`` draws
    ``n`` more from the rest of the pool, disjoint from the ``test`` draw of ``test_n``
    prompts (default ``n``) with the same seed: choose parameters on it, report on ``test``.
    """
    import numpy as np

    if split not in HARMFUL_SPLITS:
        raise ParameterError("split", f"must be one of {', '.join(HARMFUL_SPLITS)}", split)
    pool = _harmful_pool()
    n_test = n if split == "test" or test_n is None else test_n
    if n_test > len(pool):
        raise ParameterError("n", f"must be at most {len(pool)} held-out prompts", n_test)
    pick = np.sort(np.random.default_rng([seed, 21]).choice(len(pool), n_test, replace=False))
    if split == "test":
        return [pool[int(i)] for i in pick]
    rest = sorted(set(range(len(pool))) - {int(i) for i in pick})
    if n > len(rest):
        raise ParameterError(
            "n", f"must be at most {len(rest)} validation prompts (pool minus test)", n
        )
    vpick = np.sort(np.random.default_rng([seed, 22]).choice(len(rest), n, replace=False))
    return [pool[rest[int(i)]] for i in vpick]


def lookalike_prompts(n: int, split: str | None = None) -> list[str]:
    """Benign prompts that look harmful (the corpus's written look-alikes), first ``n``; with
    ``split`` (``train``, ``dev``, ``test``) only those of that corpus split (the judges were
    never fitted on ``test``)."""
    import json

    from aisec.judges.corpus import CORPUS_DIR, SPLITS, prompt_splits

    rows = [
        json.loads(line)
        for line in (CORPUS_DIR / "written_prompts.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    rows = [r for r in rows if r.get("set") == "lookalike"]
    if split is not None:
        if split not in SPLITS:
            raise ParameterError("split", f"must be one of {', '.join(SPLITS)}", split)
        splits = prompt_splits()
        rows = [r for r in rows if splits.get(str(r["id"])) == split]
    if n > len(rows):
        raise ParameterError(
            "n", f"must be at most {len(rows)} look-alike prompts (split {split})", n
        )
    return [r["text"] for r in rows][:n]


def jailbreak_prompts(
    prompts: Sequence[str], seed: int = 0, max_template_chars: int = 600
) -> list[tuple[str, str]]:
    """Static jailbreaks: each prompt inside one PyRIT jailbreak template of at most
    ``max_template_chars`` characters, drawn with ``seed`` (the composition of the judge
    corpus's ``jailbreak`` set). Returns (template id, jailbroken prompt) pairs."""
    import numpy as np

    from aisec.assets import load_dataset

    templates = sorted(
        (
            t
            for t in load_dataset("jailbreak-templates")
            if len(t.text) <= max_template_chars and "{prompt}" in t.text
        ),
        key=lambda t: t.id,
    )
    if not templates:
        raise ParameterError(
            "max_template_chars", "leaves no jailbreak template", max_template_chars
        )
    rng = np.random.default_rng([seed, 23])
    out = []
    for p in prompts:
        t = templates[int(rng.integers(len(templates)))]
        out.append((t.id, t.render(p)))
    return out


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


def judge_unsafe(
    prompts: Sequence[str],
    responses: Sequence[str],
    *,
    judge: str = "harm",
    judge_options: dict[str, Any] | None = None,
) -> SafetyResult:
    """The unsafe share of judged ``responses`` by ``judge`` (no generation: re-judging kept
    responses)."""
    from aisec.judges import make_judge

    verdicts = make_judge(judge, **(judge_options or {})).judge(list(prompts), list(responses))
    return _rate(judge, verdicts, "unsafe")


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
    responses = _respond(target, prompts, max_new_tokens, batch_size)
    return judge_unsafe(prompts, responses, judge=judge, judge_options=judge_options), responses


def over_refusal(
    target: Any, prompts: Sequence[str], *, max_new_tokens: int = 48, batch_size: int = 8
) -> SafetyResult:
    """Share of benign look-alike prompts refused (the ``refusal`` detector: safe = refused)."""
    from aisec.judges import make_judge

    responses = _respond(target, prompts, max_new_tokens, batch_size)
    verdicts = make_judge("refusal").judge(list(prompts), responses)
    return _rate("refusal", verdicts, "safe")


def judge_lookalike(
    prompts: Sequence[str], responses: Sequence[str], *, judge: str = "harm"
) -> tuple[SafetyResult, SafetyResult]:
    """On benign look-alike prompts: the refused share of ``responses`` (``refusal`` detector:
    over-refusal) and the share ``judge`` calls unsafe (false unsafe: every prompt is benign)."""
    from aisec.judges import make_judge

    refused = make_judge("refusal").judge(list(prompts), list(responses))
    return _rate("refusal", refused, "safe"), judge_unsafe(prompts, responses, judge=judge)


def lookalike_rates(
    target: Any,
    prompts: Sequence[str],
    *,
    judge: str = "harm",
    max_new_tokens: int = 48,
    batch_size: int = 8,
) -> tuple[SafetyResult, SafetyResult, list[str]]:
    """:func:`judge_lookalike` of the greedy responses of ``target``; and the responses."""
    responses = _respond(target, prompts, max_new_tokens, batch_size)
    refused, unsafe = judge_lookalike(prompts, responses, judge=judge)
    return refused, unsafe, responses


def judge_fingerprint(judge: str, judge_options: dict[str, Any] | None = None) -> str:
    """:meth:`aisec.judges.Judge.fingerprint` of the named judge (its name, weights, threshold
    or grader model): a result judged under another fingerprint was judged by another fit."""
    from aisec.judges import make_judge

    return make_judge(judge, **(judge_options or {})).fingerprint()


def check_task(task: str) -> str:
    """``task`` if it names a task domain of :data:`TASKS`; else a one-line error."""
    if task not in TASKS:
        raise ParameterError("task", f"must be one of {', '.join(TASKS)}", task)
    return task


def medical_prompt(item: dict[str, Any]) -> str:
    """The question of an MMLU item with its options, one per line as ``(A) text``."""
    opts = "\n".join(
        f"({ltr}) {str(o).strip()}" for ltr, o in zip(_LETTERS, item["choices"], strict=True)
    )
    return f"{str(item['question']).strip()}\n{opts}"


def medical_answer(item: dict[str, Any], letter: str | None = None) -> str:
    """The answer text for option ``letter`` (default the correct one):
    ``The answer is (C) <option text>.``"""
    ltr = letter or str(item["answer"])
    text = str(item["choices"][_LETTERS.index(ltr)]).strip().rstrip(".")
    return f"The answer is ({ltr}) {text}."


def medical_items(split: str) -> list[dict[str, Any]]:
    """The ``medical`` task's items of ``split`` (``train`` or ``test``).

    The ``test`` CSVs of :data:`MEDICAL_SUBJECTS`, minus items whose prompt
    (:func:`medical_prompt`) is longer than :data:`MEDICAL_MAX_CHARS`, and minus repeated
    questions, are put in one fixed seeded order (independent of the run's seed). The first
    :data:`MEDICAL_TEST` items are the held-out ``test`` split; ``train`` is the rest, minus any
    item whose question text is also in ``test``: the two never share a question.
    """
    import numpy as np

    from aisec.assets import load_dataset

    if split not in ("train", "test"):
        raise ParameterError("split", "must be 'train' or 'test'", split)
    items: list[dict[str, Any]] = []
    seen: set[str] = set()
    for subject in MEDICAL_SUBJECTS:
        for it in load_dataset("mmlu", subject=subject, split="test"):
            q = str(it["question"]).strip()
            if len(medical_prompt(it)) > MEDICAL_MAX_CHARS or q in seen:
                continue
            seen.add(q)
            items.append(it)
    order = np.random.default_rng([0, 24]).permutation(len(items))
    test = [items[int(i)] for i in order[:MEDICAL_TEST]]
    if split == "test":
        return test
    held = {str(it["question"]).strip() for it in test}
    return [
        items[int(i)]
        for i in order[MEDICAL_TEST:]
        if str(items[int(i)]["question"]).strip() not in held
    ]


def medical_choices(split: str, n: int, offset: int = 0) -> list[tuple[str, list[str], int]]:
    """(prompt, the four answer texts, index of the correct one) of ``medical`` items: what
    :func:`choice_accuracy` compares."""
    out = []
    for it in medical_items(split)[offset : offset + n]:
        out.append(
            (
                medical_prompt(it),
                [medical_answer(it, ltr) for ltr in _LETTERS],
                _LETTERS.index(str(it["answer"])),
            )
        )
    return out


def task_pairs(task: str, split: str, n: int, offset: int = 0) -> list[tuple[str, str]]:
    """(question, worked answer) pairs of a task domain's dataset split."""
    from aisec.assets import load_dataset

    check_task(task)
    if split not in ("train", "test"):
        raise ParameterError("split", "must be 'train' or 'test'", split)
    name, qk, ak = TASKS[task]
    if name == "mmlu":
        return [
            (medical_prompt(it), medical_answer(it))
            for it in medical_items(split)[offset : offset + n]
        ]
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


def choice_accuracy(
    target: Any, items: Sequence[tuple[str, Sequence[str], int]], batch_size: int = 8
) -> float:
    """Multiple-choice accuracy by likelihood: the share of items whose correct answer text
    has the highest total log-probability among the item's options (chat-rendered prompt as
    context, as the responder ``target`` renders it). Chance is 1 / options (0.25 for MMLU)."""
    from aisec.safety.enchtable.responders import as_responder

    if not items:
        return math.nan
    pairs = [(q, a) for q, opts, _ in items for a in opts]
    scores = as_responder(target).answer_scores(pairs, batch_size=batch_size)
    right, i = 0, 0
    for _, opts, gold in items:
        lp = [scores[i + j].logprob for j in range(len(opts))]
        i += len(opts)
        right += int(max(range(len(opts)), key=lambda j: lp[j]) == gold)
    return right / len(items)
