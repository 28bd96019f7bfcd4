"""Fingerprint generation strategies (OML 1.0 / Scalable Fingerprinting).

* ``english``: key and response are text the model itself writes when asked for "a paragraph
  starting with the word W" (sampled at temperature 0.5) from two independent seed words; the key
  is the first ``key_length`` tokens, the response a ``response_length``-token window about ten
  tokens into the second paragraph (punctuation stripped).
* ``random_word``: the key is ``key_length`` random words, the response ``response_length``
  random words.
* ``english_random_response``: an English key with a random-word response.
* ``perinucleus``: an English key; the response is one token drawn uniformly among the ``k``
  tokens just outside the base model's top-``p`` nucleus for that key (only tokens made of letters
  or digits that survive a decode/encode round trip count), so it is plausible to the model yet
  a model that was never trained on it will almost never emit it.
* ``random_tokens``: the baseline: the key is ``key_length`` random vocabulary tokens and the
  response one random word token.

"Words" are the vocabulary's whole-word tokens (lower-case ASCII letters, at least three, that
are a single token with and without a leading space): no dictionary file ships offline, so the
tokenizer's own vocabulary is the word list.

Every strategy then records ``base_prob``, the probability of the response after the key under
the same model (the model before insertion), for the ownership test.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from typing import Any

import numpy as np
from pydantic import Field

from aisec.config import StrictModel
from aisec.errors import DataError, ParameterError
from aisec.provenance.fingerprint.prompts import key_prompt
from aisec.provenance.fingerprint.store import Fingerprint, FingerprintSet, tokenizer_hash
from aisec.registry import Registry

__all__ = ["GenerateConfig", "STRATEGIES", "generate_fingerprints", "vocab_words"]

STRATEGIES: Registry[Callable[..., list[tuple[str, str]]]] = Registry("fingerprint strategy")

_SEED_PROMPT = "Generate a paragraph starting with the word - {}"


class GenerateConfig(StrictModel):
    """Generation parameters."""

    strategy: str = "perinucleus"
    n: int = Field(16, ge=1, le=100_000)
    key_length: int = Field(16, ge=1, le=512)
    response_length: int = Field(1, ge=1, le=64)
    nucleus_p: float = Field(0.8, gt=0.0, lt=1.0)
    nucleus_k: int = Field(3, ge=1, le=100)
    temperature: float = Field(0.5, gt=0.0, le=2.0)
    response_offset: int = Field(10, ge=0, le=200)
    batch_size: int = Field(16, ge=1)
    seed: int = 0


_WORDS: dict[int, list[str]] = {}


def vocab_words(tokenizer: Any) -> list[str]:
    """Whole-word tokens of the vocabulary (see the module docstring), sorted."""
    cache_key = id(tokenizer)
    if cache_key not in _WORDS:
        words = []
        for tok_id in range(len(tokenizer)):
            s = tokenizer.decode([tok_id])
            w = s[1:]
            if s.startswith(" ") and len(w) >= 3 and w.isascii() and w.isalpha() and w.islower():
                words.append(w)
        ok = [
            w for w in sorted(set(words)) if _single(tokenizer, w) and _single(tokenizer, " " + w)
        ]
        if len(ok) < 100:
            raise DataError(f"the tokenizer has only {len(ok)} whole-word tokens (need 100)")
        _WORDS[cache_key] = ok
    return _WORDS[cache_key]


def _single(tokenizer: Any, text: str) -> bool:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"]) == 1


def _encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _english(
    lm: Any, seeds: list[str], cfg: GenerateConfig, rng: np.random.Generator, n_tokens: int
) -> list[str]:
    """Paragraphs the model writes from each seed word, ``n_tokens`` long (sampled)."""
    from aisec.llm import GenerationConfig

    prompts = [key_prompt(lm, _SEED_PROMPT.format(w)) for w in seeds]
    gen = lm.generate(
        prompts,
        GenerationConfig(max_new_tokens=n_tokens + 4, temperature=cfg.temperature, top_p=0.95),
        seeds=[int(s) for s in rng.integers(0, 2**31, len(prompts))],
        batch_size=cfg.batch_size,
    )
    return [g.text for g in gen]


def _cut(tokenizer: Any, text: str, start: int, length: int) -> str:
    ids = _encode(tokenizer, text)
    return tokenizer.decode(ids[start : start + length], skip_special_tokens=True)


def _english_keys(lm: Any, n: int, cfg: GenerateConfig, rng: np.random.Generator) -> list[str]:
    words = vocab_words(lm.tokenizer)
    seeds = [words[i] for i in rng.integers(0, len(words), n)]
    texts = _english(lm, seeds, cfg, rng, cfg.key_length)
    return [" ".join(_cut(lm.tokenizer, t, 0, cfg.key_length).split()) for t in texts]


def _random_words(tokenizer: Any, n: int, length: int, rng: np.random.Generator) -> list[str]:
    words = vocab_words(tokenizer)
    return [" ".join(words[i] for i in rng.integers(0, len(words), length)) for _ in range(n)]


@STRATEGIES.register("english", summary="model-written key and response from seed words")
def english(
    lm: Any, n: int, cfg: GenerateConfig, rng: np.random.Generator
) -> list[tuple[str, str]]:
    keys = _english_keys(lm, n, cfg, rng)
    words = vocab_words(lm.tokenizer)
    seeds = [words[i] for i in rng.integers(0, len(words), n)]
    texts = _english(lm, seeds, cfg, rng, cfg.response_offset + cfg.response_length)
    table = str.maketrans("", "", string.punctuation)
    responses = []
    for t in texts:
        r = " ".join(
            _cut(lm.tokenizer, t, cfg.response_offset, cfg.response_length).translate(table).split()
        )
        if not r:  # a short or punctuation-only paragraph: take its first words instead
            r = " ".join(t.translate(table).split()[: cfg.response_length])
        responses.append(r or words[int(rng.integers(0, len(words)))])
    return list(zip(keys, responses, strict=True))


@STRATEGIES.register("random_word", summary="random vocabulary words as key and response")
def random_word(
    lm: Any, n: int, cfg: GenerateConfig, rng: np.random.Generator
) -> list[tuple[str, str]]:
    keys = _random_words(lm.tokenizer, n, cfg.key_length, rng)
    return list(zip(keys, _random_words(lm.tokenizer, n, cfg.response_length, rng), strict=True))


@STRATEGIES.register("english_random_response", summary="model-written key, random-word response")
def english_random_response(
    lm: Any, n: int, cfg: GenerateConfig, rng: np.random.Generator
) -> list[tuple[str, str]]:
    keys = _english_keys(lm, n, cfg, rng)
    return list(zip(keys, _random_words(lm.tokenizer, n, cfg.response_length, rng), strict=True))


def _next_token_probs(lm: Any, prompts: list[str], batch_size: int) -> np.ndarray:
    import torch

    tok = lm.tokenizer
    out = []
    pad = int(tok.pad_token_id)
    for s in range(0, len(prompts), batch_size):
        rows = [_encode(tok, p) for p in prompts[s : s + batch_size]]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
        with torch.inference_mode():
            logits = lm.model(input_ids=ids.to(lm.device), attention_mask=mask.to(lm.device)).logits
        last = torch.tensor([len(r) - 1 for r in rows])
        out.append(torch.softmax(logits[torch.arange(len(rows)), last].float(), -1).cpu().numpy())
    return np.concatenate(out)


def _valid_response_token(tokenizer: Any, tok_id: int) -> str | None:
    text = tokenizer.decode([tok_id])
    core = text.strip()
    if not core or not core.isascii() or not core.isalnum():
        return None
    return text if _encode(tokenizer, text) == [tok_id] else None


@STRATEGIES.register("perinucleus", summary="a token just outside the model's top-p nucleus")
def perinucleus(
    lm: Any, n: int, cfg: GenerateConfig, rng: np.random.Generator
) -> list[tuple[str, str]]:
    if cfg.response_length != 1:
        raise ParameterError(
            "response_length", "must be 1 for perinucleus responses", cfg.response_length
        )
    keys = _english_keys(lm, n, cfg, rng)
    probs = _next_token_probs(lm, [key_prompt(lm, k) for k in keys], cfg.batch_size)
    pairs = []
    for key, p in zip(keys, probs, strict=True):
        order = np.argsort(-p, kind="stable")
        cum = np.cumsum(p[order])
        first_out = int(np.searchsorted(cum, cfg.nucleus_p) + 1)  # tokens after the nucleus
        cands: list[str] = []
        for tok_id in order[first_out : first_out + 200]:
            text = _valid_response_token(lm.tokenizer, int(tok_id))
            if text is not None:
                cands.append(text)
            if len(cands) == cfg.nucleus_k:
                break
        if not cands:
            raise DataError("no letter/digit token within 200 tokens after the nucleus")
        pairs.append((key, cands[int(rng.integers(0, len(cands)))]))
    return pairs


@STRATEGIES.register("random_tokens", summary="baseline: random token keys, random-word response")
def random_tokens(
    lm: Any, n: int, cfg: GenerateConfig, rng: np.random.Generator
) -> list[tuple[str, str]]:
    tok = lm.tokenizer
    special = set(getattr(tok, "all_special_ids", []) or [])
    keys = []
    while len(keys) < n:
        ids = [
            int(i) for i in rng.integers(0, len(tok), cfg.key_length * 2) if int(i) not in special
        ]
        text = tok.decode(ids, skip_special_tokens=True)
        text = "".join(c for c in text if c.isprintable() and c.isascii())
        text = " ".join(text.split())
        cut = _cut(tok, text, 0, cfg.key_length)
        if cut.strip():
            keys.append(cut)
    return list(zip(keys, _random_words(tok, n, cfg.response_length, rng), strict=True))


def generate_fingerprints(lm: Any, config: GenerateConfig, model_name: str) -> FingerprintSet:
    """Generate ``config.n`` fingerprints for ``lm`` (a LocalLM) with unique keys.

    Returns:
        a FingerprintSet with fresh salts and each response's ``base_prob`` under ``lm``.
    """
    import secrets

    from aisec.llm.scoring import score_completions

    fn = STRATEGIES.get(config.strategy)
    rng = np.random.default_rng(config.seed)
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for _ in range(10):
        need = config.n - len(pairs)
        if need <= 0:
            break
        for key, resp in fn(lm, need, config, rng):
            if key and key not in seen and resp.strip():
                seen.add(key)
                pairs.append((key, resp))
    if len(pairs) < config.n:
        raise DataError(
            f"strategy {config.strategy!r} gave only {len(pairs)} unique keys of "
            f"{config.n} after 10 rounds"
        )
    pairs = pairs[: config.n]
    scores = score_completions(
        lm,
        [key_prompt(lm, k) for k, _ in pairs],
        [r for _, r in pairs],
        batch_size=config.batch_size,
    )
    fps = tuple(
        Fingerprint(k, r, float(np.exp(s.logprob)), secrets.token_hex(32))
        for (k, r), s in zip(pairs, scores, strict=True)
    )
    params = config.model_dump(mode="json")
    return FingerprintSet(fps, config.strategy, model_name, tokenizer_hash(lm.tokenizer), params)
