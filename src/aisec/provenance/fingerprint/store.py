"""The owner's secret fingerprint file: (key, response) pairs, their salts and what was spent.

The file is JSON written owner-only (0600) through :func:`aisec.io.write_private`; nothing in it
is ever printed or logged. Each fingerprint carries:

* ``key`` and ``response``: the query and the text the fingerprinted model must answer with;
* ``base_prob``: the probability of the response after the key under the model it was generated
  for, *before* insertion (what a model that does not hold it would give it; used by the
  ownership test);
* ``salt``: 32 random bytes (hex) for the hash commitment (:mod:`.commit`).

The file also names the strategy, the model and a hash of the tokenizer's vocabulary, so that a
token-level check against a model of another tokenizer is refused, and it records which
fingerprints a claim has already revealed (``spent``).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from aisec.errors import InputFileError
from aisec.io import read_user_text, write_private

__all__ = ["Fingerprint", "FingerprintSet", "tokenizer_hash", "FORMAT"]

FORMAT = "aisec-oml-fingerprints-v1"


@dataclass(frozen=True)
class Fingerprint:
    key: str
    response: str
    base_prob: float
    salt: str = field(default_factory=lambda: secrets.token_hex(32))

    def record(self) -> dict[str, Any]:
        return asdict(self)


def tokenizer_hash(tokenizer: Any) -> str:
    """A short hash of a tokenizer's vocabulary (token -> id), to tell tokenizers apart."""
    vocab = sorted(tokenizer.get_vocab().items())
    return hashlib.sha256(json.dumps(vocab, ensure_ascii=False).encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class FingerprintSet:
    """Fingerprints generated for one model by one strategy.

    Attributes:
        fingerprints: the pairs, in commitment order.
        strategy: the generation strategy's name.
        model: the model they were generated for (name, path or hub id).
        tokenizer: :func:`tokenizer_hash` of its tokenizer.
        params: the generation parameters (for the record).
        spent: indices already revealed by a claim.
    """

    fingerprints: tuple[Fingerprint, ...]
    strategy: str
    model: str
    tokenizer: str
    params: dict[str, Any] = field(default_factory=dict)
    spent: tuple[int, ...] = ()

    def __len__(self) -> int:
        return len(self.fingerprints)

    @property
    def keys(self) -> list[str]:
        return [f.key for f in self.fingerprints]

    def subset(self, indices: Sequence[int]) -> FingerprintSet:
        return replace(self, fingerprints=tuple(self.fingerprints[i] for i in indices))

    def with_spent(self, indices: Iterable[int]) -> FingerprintSet:
        return replace(self, spent=tuple(sorted(set(self.spent) | {int(i) for i in indices})))

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "strategy": self.strategy,
            "model": self.model,
            "tokenizer": self.tokenizer,
            "params": self.params,
            "spent": list(self.spent),
            "fingerprints": [f.record() for f in self.fingerprints],
        }

    def save(self, path: str | Path) -> Path:
        """Write atomically with owner-only permissions (0600)."""
        data = json.dumps(self.to_json(), indent=1, ensure_ascii=False) + "\n"
        return write_private(path, data.encode("utf-8"))

    @classmethod
    def from_json(cls, obj: Any, where: str | Path = "<fingerprints>") -> FingerprintSet:
        """Validate a parsed file; every problem is one line naming the entry and the rule."""

        def bad(problem: str) -> InputFileError:
            return InputFileError(where, problem)

        if not isinstance(obj, dict) or obj.get("format") != FORMAT:
            raise bad(f"is not a fingerprint file (expected format {FORMAT!r})")
        for k in ("strategy", "model", "tokenizer"):
            if not isinstance(obj.get(k), str) or not obj[k]:
                raise bad(f"field {k!r} must be a non-empty string")
        raw = obj.get("fingerprints")
        if not isinstance(raw, list) or not raw:
            raise bad("field 'fingerprints' must be a non-empty list")
        fps: list[Fingerprint] = []
        seen: dict[str, int] = {}
        for i, r in enumerate(raw):
            if not isinstance(r, dict) or set(r) != {"key", "response", "base_prob", "salt"}:
                raise bad(f"fingerprints[{i}] must have exactly key, response, base_prob, salt")
            key, resp, prob, salt = r["key"], r["response"], r["base_prob"], r["salt"]
            if not isinstance(key, str) or not key.strip():
                raise bad(f"fingerprints[{i}].key must be a non-empty string")
            if not isinstance(resp, str) or not resp.strip():
                raise bad(f"fingerprints[{i}].response must be a non-empty string")
            if (
                isinstance(prob, bool)
                or not isinstance(prob, int | float)
                or not 0.0 <= prob <= 1.0
            ):
                raise bad(f"fingerprints[{i}].base_prob must be a probability in [0, 1]")
            if not isinstance(salt, str) or len(salt) != 64 or not _is_hex(salt):
                raise bad(f"fingerprints[{i}].salt must be 64 hex digits")
            if key in seen:
                raise bad(
                    f"fingerprints[{i}] repeats the key of fingerprints[{seen[key]}] "
                    "(keys must be unique)"
                )
            seen[key] = i
            fps.append(Fingerprint(key, resp, float(prob), salt))
        spent = obj.get("spent", [])
        if not isinstance(spent, list) or any(
            not isinstance(s, int) or not 0 <= s < len(fps) for s in spent
        ):
            raise bad(f"field 'spent' must list indices in [0, {len(fps)})")
        params = obj.get("params", {})
        if not isinstance(params, dict):
            raise bad("field 'params' must be an object")
        return cls(
            tuple(fps),
            obj["strategy"],
            obj["model"],
            obj["tokenizer"],
            params,
            tuple(sorted(set(spent))),
        )

    @classmethod
    def load(cls, path: str | Path) -> FingerprintSet:
        text = read_user_text(path)
        try:
            obj = json.loads(text)
        except ValueError as exc:
            raise InputFileError(
                path, f"is not valid JSON ({exc.msg} at line {exc.lineno})"
            ) from None
        return cls.from_json(obj, path)


def _is_hex(s: str) -> bool:
    try:
        bytes.fromhex(s)
    except ValueError:
        return False
    return True
