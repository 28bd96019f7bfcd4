"""Two-party additive secret sharing, in the ring Z_2^64 and statistically over the integers.

Ring shares (``share_ring``) hide a value perfectly: each share alone is uniform in Z_2^64.
Integer shares (``share_int``) hide a value ``v`` with |v| < 2**b statistically: the mask is uniform
in [0, 2**(b + sigma)), so a share reveals v with advantage at most 2**-sigma (sigma = 40 by
default). Integer shares never wrap, so local truncation is always off by at most one unit in the
last place; ring shares use SecureML's local truncation, which fails with probability about
2**(b + 1 - 64) for a value of b bits.

Reference: Mohassel and Zhang, "SecureML", IEEE S&P 2017; Chen et al., "When Homomorphic
Encryption Marries Secret Sharing", KDD 2021 (HE-to-SS with statistical masks).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from aisec.errors import ParameterError
from aisec.rng import CryptoRandom

__all__ = [
    "STAT_SIGMA",
    "share_ring",
    "reconstruct_ring",
    "truncate_ring_share",
    "share_int",
    "reconstruct_int",
    "truncate_int",
    "bit_bound",
]

STAT_SIGMA = 40


def share_ring(x: np.ndarray, rng: CryptoRandom) -> tuple[np.ndarray, np.ndarray]:
    """Split ring elements into two uniformly random shares.

    Args:
        x: uint64 array (ring elements), any shape.
        rng: cryptographic randomness.
    Returns:
        ``(s0, s1)`` uint64 arrays with ``s0 + s1 == x`` (mod 2^64).
    """
    x = np.asarray(x, dtype=np.uint64)
    s0 = rng.uint64(x.shape) if x.size else np.zeros(x.shape, np.uint64)
    return s0, x - s0


def reconstruct_ring(s0: np.ndarray, s1: np.ndarray) -> np.ndarray:
    """The shared ring elements ``s0 + s1`` (mod 2^64)."""
    return np.asarray(s0, dtype=np.uint64) + np.asarray(s1, dtype=np.uint64)


def truncate_ring_share(share: np.ndarray, bits: int, party: int) -> np.ndarray:
    """SecureML local truncation of a ring share by ``bits`` (party 0 or 1)."""
    if party not in (0, 1):
        raise ParameterError("party", "must be 0 or 1", party)
    s = np.asarray(share, dtype=np.uint64)
    if party == 0:
        return s >> np.uint64(bits)
    return (np.uint64(0) - ((np.uint64(0) - s) >> np.uint64(bits))).astype(np.uint64)


def bit_bound(values: Sequence[int]) -> int:
    """Bits needed for the largest magnitude in ``values`` (at least 1)."""
    return max([abs(int(v)).bit_length() for v in values] + [1])


def share_int(
    values: Sequence[int], rng: CryptoRandom, value_bits: int, sigma: int = STAT_SIGMA
) -> tuple[list[int], list[int]]:
    """Statistically hiding integer shares of signed integers.

    Args:
        values: integers with |v| < 2**value_bits.
        rng: cryptographic randomness.
        value_bits: bound on the magnitude, in bits.
        sigma: statistical security parameter (the mask is ``sigma`` bits wider).
    Returns:
        ``(s0, s1)`` with ``s0[i] + s1[i] == values[i]``; ``s1`` is the uniform mask.
    """
    width = value_bits + sigma
    masks = [rng.randbits(width) for _ in range(len(values))]
    return [int(v) - r for v, r in zip(values, masks, strict=True)], masks


def reconstruct_int(s0: Sequence[int], s1: Sequence[int]) -> list[int]:
    """The shared integers ``s0 + s1``."""
    return [int(a) + int(b) for a, b in zip(s0, s1, strict=True)]


def truncate_int(share: Sequence[int], bits: int) -> list[int]:
    """Local truncation of an integer share: floor division by 2**bits.

    For integer shares ``a + b = v``, ``(a >> t) + (b >> t)`` is ``v >> t`` or one less.
    """
    return [int(s) >> bits for s in share]
