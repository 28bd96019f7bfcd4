"""Fixed-point encoding of reals into the ring Z_2^64 and into (signed) big integers.

A real ``x`` becomes ``round(x * 2**frac_bits)``. In the ring the result is reduced mod 2^64
(two's complement, numpy ``uint64`` wraps for free); for Paillier it stays a Python integer and is
mapped into Z_n by :meth:`aisec.crypto.paillier.PaillierPublicKey.encode`. Encoding error is at
most ``2**-(frac_bits+1)`` per value.

Reference: Mohassel and Zhang, "SecureML", IEEE S&P 2017 (fixed-point arithmetic on shares).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aisec.errors import DataError, ParameterError

__all__ = ["FixedPoint", "RING_BITS", "to_signed", "from_signed"]

RING_BITS = 64
_RING_MOD = 1 << RING_BITS


def to_signed(x: np.ndarray) -> np.ndarray:
    """Ring elements (uint64) as signed int64 (two's complement view, no copy of values)."""
    return np.asarray(x, dtype=np.uint64).view(np.int64)


def from_signed(x: np.ndarray) -> np.ndarray:
    """Signed int64 as ring elements (uint64)."""
    return np.asarray(x, dtype=np.int64).view(np.uint64)


@dataclass(frozen=True)
class FixedPoint:
    """A fixed-point format with ``frac_bits`` fractional bits.

    Args:
        frac_bits: fractional bits f, 0 <= f <= 40; the ring holds |x| < 2**(63 - f).
    """

    frac_bits: int = 16

    def __post_init__(self) -> None:
        if not 0 <= self.frac_bits <= 40:
            raise ParameterError("frac_bits", "must be in [0, 40]", self.frac_bits)

    @property
    def scale(self) -> int:
        return 1 << self.frac_bits

    @property
    def max_abs(self) -> float:
        """Largest magnitude the ring encoding represents."""
        return float(2 ** (RING_BITS - 1 - self.frac_bits))

    def _check(self, x: np.ndarray, name: str, bound: float | None) -> np.ndarray:
        arr = np.asarray(x, dtype=np.float64)
        if not np.all(np.isfinite(arr)):
            bad = arr[~np.isfinite(arr)].ravel()[0]
            raise DataError(f"`{name}` must be finite; got {bad!r}")
        if bound is not None and arr.size and float(np.max(np.abs(arr))) >= bound:
            raise DataError(
                f"`{name}` must have |x| < {bound:g} for {self.frac_bits} fractional bits; "
                f"got {float(np.max(np.abs(arr))):g}"
            )
        return arr

    def encode_ring(self, x: np.ndarray, name: str = "x") -> np.ndarray:
        """Reals -> ring elements.

        Args:
            x: float array, any shape, finite, |x| < 2**(63 - frac_bits).
        Returns:
            uint64 array of the same shape.
        """
        arr = self._check(x, name, self.max_abs)
        return from_signed(np.rint(arr * self.scale).astype(np.int64))

    def decode_ring(self, x: np.ndarray) -> np.ndarray:
        """Ring elements -> reals (float64, same shape)."""
        return to_signed(x).astype(np.float64) / self.scale

    def encode_int(self, x: np.ndarray, name: str = "x") -> list[int]:
        """Reals -> signed Python integers (for Paillier plaintexts); any magnitude.

        Args:
            x: float array, finite; flattened in C order.
        """
        arr = self._check(x, name, None).ravel()
        # float64 -> exact integers via Python int, so values beyond 2**63 stay exact
        return [int(v) for v in np.rint(arr * self.scale).tolist()]

    def decode_int(self, x: list[int] | np.ndarray) -> np.ndarray:
        """Signed integers -> reals (float64, 1-D)."""
        return np.array([int(v) / self.scale for v in x], dtype=np.float64)
