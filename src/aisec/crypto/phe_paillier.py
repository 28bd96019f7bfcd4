"""python-paillier (``phe``) keys behind aisec's HE key interface: the common Python reference.

The ``phe-paillier`` backend of :mod:`aisec.crypto.he`. Encryption, addition and multiplication
by a plaintext are python-paillier's own (``EncryptedNumber`` with exponent 0), so a benchmark row
of this backend measures that library; only decryption decodes the raw plaintext here, to the
interface's signed range (-n/2, n/2] instead of phe's overflow-checked (-n/3, n/3).

Reference: Paillier, EUROCRYPT 1999; python-paillier, https://python-paillier.readthedocs.io.

Threat model: IND-CPA under the decisional composite residuosity assumption; the factors live only
in :class:`PheSecretKey`, whose repr never shows them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from functools import cached_property
from typing import Any

from aisec.crypto.keyfile import pack_ints, unpack_ints
from aisec.errors import DependencyError, InputFileError, ParameterError

try:
    from phe import paillier
except ImportError:
    raise DependencyError("phe", "crypto") from None

__all__ = ["PhePublicKey", "PheSecretKey", "generate_phe_keypair"]

KEY_BITS = (512, 1024, 2048, 3072, 4096)
_MAGIC_PUB = b"AISEC-PHE-PAILLIER-PUB-1\n"
_MAGIC_SEC = b"AISEC-PHE-PAILLIER-SEC-1\n"


class PhePublicKey:
    """A python-paillier public key; ciphertext vectors are lists of ``phe.EncryptedNumber``."""

    scheme = "phe-paillier"

    def __init__(self, n: int) -> None:
        self._pk = paillier.PaillierPublicKey(int(n))
        self.n = int(n)
        self.nsq = self.n * self.n
        self.bits = self.n.bit_length()
        # phe encodes |m| <= max_int = n // 3 - 1; stay strictly inside it
        self.plaintext_bits = self._pk.max_int.bit_length() - 1
        self.ciphertext_bytes = (self.nsq.bit_length() + 7) // 8

    def __repr__(self) -> str:
        return f"PhePublicKey(bits={self.bits}, id={self.fingerprint})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PhePublicKey) and self.n == other.n

    def __hash__(self) -> int:
        return hash(self.n)

    @cached_property
    def fingerprint(self) -> str:
        """Short public identifier of the key (not secret)."""
        return hashlib.sha256(self.to_bytes()).hexdigest()[:16]

    def _check(self, ms: Sequence[int], what: str) -> list[int]:
        bound = 1 << self.plaintext_bits
        vals = [int(m) for m in ms]
        if any(not -bound < v < bound for v in vals):
            raise ParameterError(what, f"must have fewer than {self.plaintext_bits} bits", "")
        return vals

    # -- encryption and arithmetic (python-paillier's own) ---------------------------------------
    def encrypt(self, ms: Sequence[int], rng: Any = None) -> list[Any]:
        """Encrypt signed integers; phe draws its own randomness (``rng`` is ignored)."""
        pk = self._pk
        return [pk.encrypt(m) for m in self._check(ms, "plaintext")]

    def add(self, a: Sequence[Any], b: Sequence[Any]) -> list[Any]:
        return [x + y for x, y in zip(a, b, strict=True)]

    def add_plain(self, cts: Sequence[Any], ms: Sequence[int]) -> list[Any]:
        return [c + m for c, m in zip(cts, self._check(ms, "plaintext"), strict=True)]

    def mul_plain(self, cts: Sequence[Any], ks: Sequence[int]) -> list[Any]:
        return [c * k for c, k in zip(cts, self._check(ks, "scalar"), strict=True)]

    # -- vectors ----------------------------------------------------------------------------------
    def count(self, cts: Sequence[Any]) -> int:
        return len(cts)

    def take(self, cts: Sequence[Any], idx: Iterable[int]) -> list[Any]:
        return [cts[int(i)] for i in idx]

    def put(self, cts: list[Any], idx: Iterable[int], values: Sequence[Any]) -> None:
        for i, v in zip(idx, values, strict=True):
            cts[int(i)] = v

    def slice(self, cts: Sequence[Any], start: int, stop: int) -> list[Any]:
        return list(cts[start:stop])

    # -- serialisation and Paillier interoperation --------------------------------------------
    def ciphertexts_to_ints(self, cts: Sequence[Any]) -> list[int]:
        """Standard Paillier ciphertexts ``(1 + n)^m r^n mod n^2``."""
        return [int(c.ciphertext(be_secure=False)) for c in cts]

    def ciphertexts_from_ints(self, values: Sequence[int]) -> list[Any]:
        """Ciphertexts from another Paillier implementation with ``g = n + 1``."""
        nsq = self.nsq
        if any(not 0 < int(v) < nsq for v in values):
            raise ParameterError("ciphertext", "must lie in [1, n^2)", "out of range")
        return [paillier.EncryptedNumber(self._pk, int(v), 0) for v in values]

    def ciphertexts_to_bytes(self, cts: Sequence[Any]) -> bytes:
        """Fixed-width big-endian bytes, ``ciphertext_bytes`` per ciphertext."""
        width = self.ciphertext_bytes
        return b"".join(c.to_bytes(width, "big") for c in self.ciphertexts_to_ints(cts))

    def ciphertexts_from_bytes(self, buf: bytes) -> list[Any]:
        width = self.ciphertext_bytes
        if len(buf) % width:
            raise ParameterError(
                "ciphertext buffer", f"must be a multiple of {width} bytes", len(buf)
            )
        return self.ciphertexts_from_ints(
            [int.from_bytes(buf[i : i + width], "big") for i in range(0, len(buf), width)]
        )

    def to_bytes(self) -> bytes:
        return _MAGIC_PUB + pack_ints(self.n)

    @classmethod
    def from_bytes(cls, buf: bytes, where: str = "public key") -> PhePublicKey:
        if not buf.startswith(_MAGIC_PUB):
            raise InputFileError(where, "not an aisec phe-paillier public key")
        (n,) = unpack_ints(buf[len(_MAGIC_PUB) :], 1, where, "aisec phe-paillier key")
        if n.bit_length() < 256 or n % 2 == 0:
            raise InputFileError(where, "not a valid aisec phe-paillier public key")
        return cls(n)


class PheSecretKey:
    """A python-paillier private key; ``public`` is its :class:`PhePublicKey`."""

    scheme = "phe-paillier"

    def __init__(self, p: int, q: int, public: PhePublicKey) -> None:
        if int(p) * int(q) != public.n:
            raise ParameterError("p*q", "must equal the public modulus", "mismatch")
        self.public = public
        self.p, self.q = int(p), int(q)
        self._sk = paillier.PaillierPrivateKey(public._pk, self.p, self.q)

    def __repr__(self) -> str:  # never shows the factors
        return f"PheSecretKey(bits={self.public.bits}, id={self.public.fingerprint})"

    def encrypt(self, ms: Sequence[int], rng: Any = None) -> list[Any]:
        return self.public.encrypt(ms, rng)

    def decrypt(self, cts: Sequence[Any]) -> list[int]:
        """Signed integers in (-n/2, n/2] (phe's CRT decryption of the raw ciphertext)."""
        n, half, sk = self.public.n, self.public.n // 2, self._sk
        out = []
        for c in cts:
            m = sk.raw_decrypt(c.ciphertext(be_secure=False))
            out.append(m - n if m > half else m)
        return out

    def to_bytes(self) -> bytes:
        return _MAGIC_SEC + pack_ints(self.p, self.q)

    @classmethod
    def from_bytes(cls, buf: bytes, where: str = "secret key") -> PheSecretKey:
        if not buf.startswith(_MAGIC_SEC):
            raise InputFileError(where, "not an aisec phe-paillier secret key")
        p, q = unpack_ints(buf[len(_MAGIC_SEC) :], 2, where, "aisec phe-paillier key")
        if p < 3 or q < 3 or p == q:
            raise InputFileError(where, "not a valid aisec phe-paillier secret key")
        return cls(p, q, PhePublicKey(p * q))


def generate_phe_keypair(bits: int = 2048) -> PheSecretKey:
    """A fresh python-paillier key pair of a ``bits``-bit modulus; returns the secret key."""
    if bits not in KEY_BITS:
        raise ParameterError("key_bits", f"must be one of {KEY_BITS}", bits)
    pk, sk = paillier.generate_paillier_keypair(n_length=bits)
    return PheSecretKey(sk.p, sk.q, PhePublicKey(pk.n))
