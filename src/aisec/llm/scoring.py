"""Teacher-forced scoring of completions with a local causal LM: per-token log-probabilities,
whether greedy decoding would reproduce the completion, and perplexity of texts.

A completion is scored exactly as :func:`aisec.llm.finetune.build_batch` trains it: the prompt and
the completion are tokenised separately and concatenated. Greedy decoding of ``len(completion)``
tokens reproduces the completion iff, at every completion position, the argmax of the
teacher-forced logits is the completion token (the earlier tokens then match too), so one forward
pass answers the exact-match question without a decoding loop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aisec.errors import ParameterError

__all__ = ["CompletionScore", "score_completions", "perplexity"]


@dataclass(frozen=True)
class CompletionScore:
    """One completion under a model.

    Attributes:
        token_ids: the completion's token ids.
        logprobs: log-probability of each completion token given everything before it.
        greedy_match: whether greedy decoding after the prompt emits exactly these tokens.
        token_matches: how many completion tokens are the argmax at their position.
    """

    token_ids: tuple[int, ...]
    logprobs: tuple[float, ...]
    greedy_match: bool
    token_matches: int

    @property
    def logprob(self) -> float:
        """Log-probability of the whole completion."""
        return float(sum(self.logprobs))


def _encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def score_completions(
    lm: Any,
    prompts: Sequence[str],
    completions: Sequence[str],
    *,
    batch_size: int = 16,
) -> list[CompletionScore]:
    """Score each ``completions[i]`` after ``prompts[i]`` with ``lm`` (a :class:`LocalLM`).

    Raises:
        ParameterError: lengths differ, a completion is empty, or a pair exceeds the context.
    """
    import torch

    if len(prompts) != len(completions):
        raise ParameterError(
            "completions", f"must have one per prompt ({len(prompts)})", len(completions)
        )
    if batch_size < 1:
        raise ParameterError("batch_size", "must be >= 1", batch_size)
    tok = lm.tokenizer
    limit = lm.context_length or (1 << 30)
    pairs: list[tuple[list[int], list[int]]] = []
    for i, (p, c) in enumerate(zip(prompts, completions, strict=True)):
        pi, ci = _encode(tok, p), _encode(tok, c)
        if not ci:
            raise ParameterError(f"completions[{i}]", "must encode to at least one token", c)
        if not pi:
            raise ParameterError(f"prompts[{i}]", "must encode to at least one token", p)
        if len(pi) + len(ci) > limit:
            raise ParameterError(
                f"prompts[{i}]",
                f"plus its completion must fit the context of {limit} tokens",
                len(pi) + len(ci),
            )
        pairs.append((pi, ci))
    pad = int(tok.pad_token_id if tok.pad_token_id is not None else 0)
    out: list[CompletionScore] = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        width = max(len(p) + len(c) for p, c in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for r, (p, c) in enumerate(chunk):
            row = p + c
            ids[r, : len(row)] = torch.tensor(row)
            mask[r, : len(row)] = 1
        with torch.inference_mode():
            logits = lm.model(input_ids=ids.to(lm.device), attention_mask=mask.to(lm.device)).logits
        logp = torch.log_softmax(logits.float(), -1).cpu()
        for r, (p, c) in enumerate(chunk):
            pos = torch.arange(len(p) - 1, len(p) + len(c) - 1)
            target = torch.tensor(c)
            lp = logp[r, pos, target]
            hits = logp[r, pos].argmax(-1) == target
            out.append(
                CompletionScore(
                    tuple(c), tuple(float(x) for x in lp), bool(hits.all()), int(hits.sum())
                )
            )
    return out


def perplexity(
    lm: Any, texts: Sequence[str], *, max_length: int = 256, batch_size: int = 8
) -> float:
    """Token-level perplexity of ``texts`` (each truncated to ``max_length`` tokens, no BOS).

    Returns:
        exp(mean negative log-likelihood over all predicted tokens).
    """
    import torch

    tok = lm.tokenizer
    rows = [_encode(tok, t)[:max_length] for t in texts]
    rows = [r for r in rows if len(r) >= 2]
    if not rows:
        raise ParameterError(
            "texts", "must hold at least one text of two or more tokens", len(texts)
        )
    pad = int(tok.pad_token_id if tok.pad_token_id is not None else 0)
    nll, count = 0.0, 0
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        width = max(len(r) for r in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for i, r in enumerate(chunk):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
        with torch.inference_mode():
            logits = lm.model(input_ids=ids.to(lm.device), attention_mask=mask.to(lm.device)).logits
        logp = torch.log_softmax(logits[:, :-1].float(), -1).cpu()
        tgt = ids[:, 1:]
        m = mask[:, 1:].bool()
        picked = logp.gather(-1, tgt.unsqueeze(-1)).squeeze(-1)
        nll -= float(picked[m].sum())
        count += int(m.sum())
    return math.exp(nll / count)
