"""Explicit random generators.

Library code never seeds globally: every random function takes a generator. Statistical
randomness is a :class:`numpy.random.Generator` (or a ``torch.Generator`` derived from one).
Cryptographic randomness comes from :class:`SecureRandom` (the OS source, ``secrets``); the
seeded :class:`InsecureRandom` has the same interface for reproducible tests and says, in its
name, its ``secure`` flag and a warning, that it must never protect real data.
"""

from __future__ import annotations

import secrets
import warnings
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

import numpy as np

from aisec.errors import ParameterError

if TYPE_CHECKING:
    import torch

__all__ = [
    "make_rng",
    "spawn",
    "torch_generator",
    "CryptoRandom",
    "SecureRandom",
    "InsecureRandom",
    "InsecureRandomWarning",
]

def make_rng(seed: int | np.random.Generator | None = None) -> np.random.Generator:
    """A numpy Generator from a seed, an existing generator (returned as is) or None (fresh)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        return np.random.default_rng()
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ParameterError("seed", "must be a non-negative integer", seed)
    return np.random.default_rng(int(seed))


def spawn(rng: np.random.Generator, n: int) -> list[np.random.Generator]:
    """``n`` independent child generators (for workers, parties, samples)."""
    return list(rng.spawn(n))


def torch_generator(rng: int | np.random.Generator, device: str = "cpu") -> torch.Generator:
    """A ``torch.Generator`` seeded from ``rng`` (an int seed or a numpy generator)."""
    import torch

    seed = int(rng) if isinstance(rng, int | np.integer) else int(make_rng(rng).integers(2**63))
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g


class CryptoRandom(ABC):
    """Interface of a cryptographic randomness source."""

    secure: bool = True

    @abstractmethod
    def bytes(self, n: int) -> bytes:
        """``n`` random bytes."""

    def randbits(self, k: int) -> int:
        """A uniform integer in [0, 2**k)."""
        if k <= 0:
            return 0
        return int.from_bytes(self.bytes((k + 7) // 8), "big") >> (-k % 8)

    def randbelow(self, n: int) -> int:
        """A uniform integer in [0, n) by rejection sampling."""
        if n <= 0:
            raise ParameterError("n", "must be positive", n)
        k = n.bit_length()
        while True:
            r = self.randbits(k)
            if r < n:
                return r

    def uint64(self, shape: int | tuple[int, ...]) -> np.ndarray:
        """Uniform uint64 array (ring elements of Z_2^64)."""
        size = int(np.prod(shape))
        return np.frombuffer(self.bytes(8 * size), dtype=np.uint64).reshape(shape).copy()


class SecureRandom(CryptoRandom):
    """The operating system's CSPRNG (``secrets``); the default for every protocol."""

    secure = True

    def bytes(self, n: int) -> bytes:
        return secrets.token_bytes(n)

    def randbelow(self, n: int) -> int:
        if n <= 0:
            raise ParameterError("n", "must be positive", n)
        return secrets.randbelow(n)

    def __repr__(self) -> str:
        return "SecureRandom()"


class InsecureRandomWarning(UserWarning):
    """Raised (as a warning) whenever a seeded, insecure crypto source is created."""


class InsecureRandom(CryptoRandom):
    """A SEEDED, INSECURE source with the crypto interface, for reproducible tests only."""

    secure = False

    def __init__(self, seed: int) -> None:
        warnings.warn(
            "InsecureRandom is seeded and predictable: use it for tests, never for real data",
            InsecureRandomWarning,
            stacklevel=2,
        )
        self._rng = np.random.default_rng(seed)

    def bytes(self, n: int) -> bytes:
        return self._rng.bytes(n)

    def __repr__(self) -> str:
        return "InsecureRandom(<seeded, INSECURE: tests only>)"


def describe(rng: Any) -> str:
    """Short description of a random source for logs (never its state)."""
    return type(rng).__name__
