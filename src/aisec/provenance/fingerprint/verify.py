"""Check a suspect model for fingerprints, and the ownership test.

Two ways to query a key:

* ``token`` (a local model with the fingerprints' tokenizer): greedy decoding of
  ``len(response)`` tokens must emit exactly the response's token ids (OML's
  ``check_fingerprints.py`` criterion). It is computed in one teacher-forced pass
  (:func:`aisec.llm.scoring.score_completions`), which is exact for greedy decoding.
* ``text`` (any :class:`aisec.llm.LanguageModel`: another tokenizer, a llama.cpp model, a server
  behind an OpenAI-compatible API): the model generates a few tokens more than the response
  needs, greedily or sampled at ``temperature``, and the key matches when the generated text,
  leading white space removed, starts with the response.

Ownership test: a model that never held the fingerprints emits response ``i`` with probability
``q_i = max(base_prob_i, floor)``, where ``base_prob_i`` is the response's probability under the
model before insertion (recorded at generation) and ``floor`` is a margin for other models.
Matches are then at most as frequent as ``Binomial(n, mean q)`` in the upper tail (Hoeffding,
1956: a Poisson-binomial tail above its mean is at most the binomial tail with the mean
probability), so ``log10 P[Binomial(n, mean q) >= m]`` is the p-value of ``m`` matches in ``n``
queried keys. The owner claims the model when it is below ``log10_alpha`` (default -6).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from aisec.errors import ParameterError
from aisec.provenance.fingerprint.prompts import key_prompt
from aisec.provenance.fingerprint.store import FingerprintSet, tokenizer_hash

__all__ = ["VerifyResult", "verify", "ownership_log10_p", "DEFAULT_FLOOR", "DEFAULT_LOG10_ALPHA"]

DEFAULT_FLOOR = 0.01
DEFAULT_LOG10_ALPHA = -6.0


def ownership_log10_p(
    matches: int, n: int, probs: Sequence[float], floor: float = DEFAULT_FLOOR
) -> float:
    """log10 of P[Binomial(n, mean max(probs, floor)) >= matches] (see the module docstring)."""
    from scipy.stats import binom

    if n < 1 or not 0 <= matches <= n:
        raise ParameterError("matches", f"must be in [0, n={n}] with n >= 1", matches)
    if not 0.0 < floor < 1.0:
        raise ParameterError("floor", "must be in (0, 1)", floor)
    q = float(np.mean(np.maximum(np.asarray(probs, dtype=float), floor)))
    q = min(q, 1.0)
    if matches == 0:
        return 0.0
    if q >= 1.0:
        return 0.0
    # the tail as a log-sum of the pmf terms: finite where the tail itself underflows a double
    # (all 256 keys matched at q = 0.01 is 10^-512; logsf returns -inf there)
    from scipy.special import logsumexp

    terms = binom.logpmf(np.arange(matches, n + 1), n, q)
    return float(logsumexp(terms) / math.log(10))


@dataclass
class VerifyResult:
    """What a suspect model answered.

    Attributes:
        mode: ``token`` or ``text``.
        matches: per key, whether the model answered with the response (all system prompts
            conditions flattened: ``matches[c][i]`` for condition ``c`` and key ``i``).
        conditions: the system prompt of each condition (None: the template's default).
        accuracy: fraction of keys matched, over all conditions.
        token_accuracy: fraction of response tokens that were the argmax (token mode only).
        log10_p: the ownership p-value (log10) of the no-system-prompt condition (or the first).
        temperature: 0 for greedy decoding.
    """

    mode: str
    matches: list[list[bool]]
    conditions: list[str | None]
    token_accuracy: float | None
    log10_p: float
    temperature: float
    per_condition: list[float] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        flat = [m for row in self.matches for m in row]
        return float(np.mean(flat)) if flat else 0.0

    @property
    def n_keys(self) -> int:
        return len(self.matches[0]) if self.matches else 0

    def summary(self) -> dict[str, Any]:
        """Counts and rates only: no key or response appears in it."""
        return {
            "mode": self.mode,
            "n_keys": self.n_keys,
            "conditions": len(self.conditions),
            "matched": int(sum(self.matches[0])) if self.matches else 0,
            "fp_accuracy": self.accuracy,
            "per_condition_accuracy": self.per_condition,
            "token_accuracy": self.token_accuracy,
            "ownership_log10_p": self.log10_p,
            "temperature": self.temperature,
        }


def _local_same_tokenizer(lm: Any, fps: FingerprintSet) -> bool:
    from aisec.errors import ConfigError

    if getattr(lm, "backend", "transformers") != "transformers":
        return False  # llama.cpp or a server: no transformers tokenizer to compare
    try:
        tok = getattr(lm, "tokenizer", None)
    except ConfigError:
        return False
    return tok is not None and hasattr(lm, "model") and tokenizer_hash(tok) == fps.tokenizer


def verify(
    lm: Any,
    fps: FingerprintSet,
    *,
    system_prompts: Sequence[str | None] = (None,),
    mode: Literal["auto", "token", "text"] = "auto",
    temperature: float = 0.0,
    seed: int = 0,
    batch_size: int = 16,
    floor: float = DEFAULT_FLOOR,
) -> VerifyResult:
    """Query ``lm`` with every key of ``fps`` under each system prompt; see the module docstring.

    Raises:
        ParameterError: ``token`` mode on a model of another tokenizer (or not local), or a key
            that does not fit the model's context.
    """
    same = _local_same_tokenizer(lm, fps)
    if mode == "auto":
        mode = "token" if same and temperature == 0.0 else "text"
    if mode == "token" and not same:
        raise ParameterError(
            "model",
            "must be a local model with the fingerprints' tokenizer for "
            "token matching (use text matching for other tokenizers or servers)",
            getattr(lm, "name", "model"),
        )
    if mode == "token" and temperature != 0.0:
        raise ParameterError("temperature", "must be 0 for token matching (greedy)", temperature)
    if not system_prompts:
        raise ParameterError("system_prompts", "must hold at least one entry (None: default)", 0)
    matches: list[list[bool]] = []
    tok_hits, tok_total = 0, 0
    limit = getattr(lm, "context_length", None)
    for c, system in enumerate(system_prompts):
        prompts = [key_prompt(lm, f.key, system) for f in fps.fingerprints]
        if limit:
            for i, p in enumerate(prompts):
                n_tok = lm.count_tokens(p) + lm.count_tokens(fps.fingerprints[i].response)
                if n_tok > limit:
                    raise ParameterError(
                        f"fingerprints[{i}].key",
                        f"with its response must fit the model's context of {limit} tokens",
                        n_tok,
                    )
        if mode == "token":
            from aisec.llm.scoring import score_completions

            scores = score_completions(
                lm, prompts, [f.response for f in fps.fingerprints], batch_size=batch_size
            )
            matches.append([s.greedy_match for s in scores])
            tok_hits += sum(s.token_matches for s in scores)
            tok_total += sum(len(s.token_ids) for s in scores)
        else:
            matches.append(
                _text_matches(lm, fps, prompts, temperature, seed + 7919 * c, batch_size)
            )
    per_condition = [float(np.mean(row)) for row in matches]
    first = matches[0]
    probs = [f.base_prob for f in fps.fingerprints]
    log10_p = ownership_log10_p(int(sum(first)), len(first), probs, floor)
    return VerifyResult(
        mode,
        matches,
        list(system_prompts),
        tok_hits / tok_total if tok_total else None,
        log10_p,
        temperature,
        per_condition,
    )


def _text_matches(
    lm: Any, fps: FingerprintSet, prompts: list[str], temperature: float, seed: int, batch_size: int
) -> list[bool]:
    from aisec.llm import GenerationConfig

    budget = max(lm.count_tokens(f.response) for f in fps.fingerprints) + 3
    cfg = GenerationConfig(max_new_tokens=budget, temperature=temperature)
    gens = lm.generate(
        prompts, cfg, seeds=[seed + i for i in range(len(prompts))], batch_size=batch_size
    )
    return [
        g.text.lstrip().startswith(f.response.strip())
        for g, f in zip(gens, fps.fingerprints, strict=True)
    ]
