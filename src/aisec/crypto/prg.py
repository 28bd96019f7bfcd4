"""A cryptographic pseudo-random generator: AES-128 in counter mode, expanded from a seed.

Used where one party (e.g. a dealer) sends a short seed instead of a long random share.
"""

from __future__ import annotations

import numpy as np

from aisec.errors import ParameterError

__all__ = ["prg_bytes", "prg_uint64"]


def prg_bytes(seed: bytes, n: int, stream: int = 0) -> bytes:
    """``n`` pseudo-random bytes from a 16-byte ``seed`` (distinct ``stream`` ids are independent)."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    if len(seed) != 16:
        raise ParameterError("seed", "must be 16 bytes", len(seed))
    nonce = int(stream).to_bytes(8, "big") + bytes(8)
    enc = Cipher(algorithms.AES(seed), modes.CTR(nonce)).encryptor()
    return enc.update(bytes(n)) + enc.finalize()


def prg_uint64(seed: bytes, shape: int | tuple[int, ...], stream: int = 0) -> np.ndarray:
    """Pseudo-random ring elements (uint64) of ``shape``."""
    size = int(np.prod(shape))
    return np.frombuffer(prg_bytes(seed, 8 * size, stream), dtype=np.uint64).reshape(shape).copy()
