"""SecretFlow HEU keys (Okamoto-Uchiyama and Paillier in C++) behind aisec's HE key interface.

CAESAR's protocol code calls a small set of vector operations on its keys (encrypt, decrypt, add,
add a plaintext, multiply by a plaintext, gather and scatter, serialise, the sparse products and
the packing of HE-to-SS; see :mod:`aisec.crypto.he`). :class:`PaillierPublicKey` implements them on
gmpy2; the classes here implement the same calls on HEU's C++ arrays for two of its schemas:

* ``heu-ou``: Okamoto-Uchiyama (``OU``), which SecretFlow's HESS-LR uses. With a 2048-bit modulus
  ``n = p^2 q`` its plaintext space is about 680 bits (``p``), enough for the 40-bit-masked
  HE-to-SS slots; encryption is about 6 times and decryption about 10 times faster here than
  gmpy2 Paillier at the same modulus size; homomorphic additions cost about the same.
* ``heu-zpaillier``: HEU's Paillier (``ZPaillier``), the same ciphertexts as any Paillier with
  ``g = n + 1``.

A ciphertext vector is a ``heu.numpy.CiphertextArray`` instead of a list of ``mpz``; code that only
goes through the key's methods works with either. HEU draws the encryption randomness from its own
C++ CSPRNG, so the ``rng`` arguments of the interface are accepted and ignored. The library is
optional: ``pip install sf-heu`` (the ``crypto`` extra pins it); it is imported on first use.

Reference: Okamoto and Uchiyama, "A New Public-Key Cryptosystem as Secure as Factoring",
EUROCRYPT 1998; Paillier, EUROCRYPT 1999; SecretFlow HEU (``heu.numpy``),
https://www.secretflow.org.cn/docs/heu.

Threat model: IND-CPA under the p-subgroup (OU) or decisional composite residuosity (Paillier)
assumption; secret-key material lives only in :class:`HeuSecretKey`, whose bytes are written
owner-only by the caller and never printed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from functools import cached_property
from typing import Any

import numpy as np
import scipy.sparse as sp

from aisec.errors import DependencyError, InputFileError, ParameterError

__all__ = [
    "HeuPublicKey",
    "HeuSecretKey",
    "generate_heu_keypair",
    "heu_available",
    "load_heu",
]

KEY_BITS = (1024, 2048, 3072, 4096)


class _Schema:
    """One HEU schema: its HEU name, key-file tags and whether it is Paillier."""

    def __init__(self, name: str, heu_name: str, tag: bytes, paillier: bool) -> None:
        self.name, self.heu_name, self.paillier = name, heu_name, paillier
        self.magic_pub, self.magic_sec = tag + b"-PUB-1\n", tag + b"-SEC-1\n"


# the OU tags predate heu-zpaillier; stored OU keys (CAESAR checkpoints) keep loading
_SCHEMAS = {
    "heu-ou": _Schema("heu-ou", "OU", b"AISEC-OU", paillier=False),
    "heu-zpaillier": _Schema("heu-zpaillier", "ZPaillier", b"AISEC-HEU-ZPAILLIER", paillier=True),
}


def load_heu() -> tuple[Any, Any]:
    """HEU's ``numpy`` and ``phe`` modules (DependencyError naming the ``crypto`` extra)."""
    try:
        from heu import numpy as hnp
        from heu import phe
    except ImportError:
        raise DependencyError("heu (pip install sf-heu)", "crypto") from None
    return hnp, phe


def heu_available() -> bool:
    """Whether sf-heu imports here."""
    try:
        load_heu()
    except DependencyError:
        return False
    return True


def _schema(name: str) -> _Schema:
    try:
        return _SCHEMAS[name]
    except KeyError:
        raise ParameterError("HEU scheme", f"must be one of {sorted(_SCHEMAS)}", name) from None


def _hex_field(text: str, field: str) -> int:
    """An integer that HEU prints as ``field=HEX[...]`` in a key's text form."""
    found = re.search(rf"\b{field}=([0-9A-Fa-f]+)", text)
    if found is None:
        raise ParameterError("HEU key", f"must print its {field}", text[:20])
    return int(found.group(1), 16)


class HeuPublicKey:
    """An HEU public key (OU or Paillier) with vector operations on HEU ciphertext arrays."""

    def __init__(self, raw: bytes, bits: int, scheme: str = "heu-ou") -> None:
        hnp, phe = load_heu()
        self._schema = _schema(scheme)
        self.scheme = scheme
        try:
            self._pk = phe.PublicKey.load_from(raw)
            self._kit = hnp.DestinationHeKit(phe.setup(self._pk))
        except Exception as exc:  # HEU raises its own error types on malformed input
            raise InputFileError("public key", f"not a valid {scheme} public key ({exc})") from None
        if self._kit.get_schema().name != self._schema.heu_name:
            raise InputFileError("public key", f"holds an HEU {self._kit.get_schema().name} key")
        self._raw = bytes(raw)
        self.bits = int(bits)
        bound = int(str(self._pk.plaintext_bound()))
        self.plaintext_bits = bound.bit_length() - 1  # |m| < 2**plaintext_bits is encodable
        self._enc = self._kit.encryptor()
        self._ev = self._kit.evaluator()
        self._codec = self._kit.bigint_encoder()
        self._hnp = hnp

    def __repr__(self) -> str:
        return f"HeuPublicKey({self.scheme}, bits={self.bits}, id={self.fingerprint})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HeuPublicKey) and self._raw == other._raw

    def __hash__(self) -> int:
        return hash(self._raw)

    @cached_property
    def fingerprint(self) -> str:
        """Short public identifier of the key (not secret)."""
        return hashlib.sha256(self.to_bytes()).hexdigest()[:16]

    # -- plaintexts ---------------------------------------------------------------------------
    def _plain(self, ms: Sequence[int]) -> Any:
        bound = 1 << self.plaintext_bits
        vals = [int(m) for m in ms]
        if any(not -bound < v < bound for v in vals):
            raise ParameterError(
                "plaintext", f"must have fewer than {self.plaintext_bits} bits", ""
            )
        # an object array: HEU reads a list of ints in [2**63, 2**64) through uint64 and loses bits
        return self._kit.array(np.array(vals, dtype=object), self._codec)

    # -- encryption and arithmetic --------------------------------------------------------------
    def encrypt(self, ms: Sequence[int], rng: Any = None) -> Any:
        """Encrypt signed integers with fresh randomness (HEU's own CSPRNG)."""
        return self._enc.encrypt(self._plain(ms))

    def encrypt_trivial(self, ms: Sequence[int]) -> Any:
        """Encryptions of ``ms`` (OU has no cheaper deterministic form; these are randomised)."""
        return self.encrypt(ms)

    def add(self, a: Any, b: Any) -> Any:
        return self._ev.add(a, b)

    def add_plain(self, cts: Any, ms: Sequence[int]) -> Any:
        return self._ev.add(cts, self._plain(ms))

    def mul_plain(self, cts: Any, ks: Sequence[int]) -> Any:
        return self._ev.mul(cts, self._plain(ks))

    def sum(self, cts: Any) -> Any:
        """One ciphertext of the sum (a 1-element vector)."""
        return self._ev.batch_select_sum(cts, [list(range(self.count(cts)))])

    def matmul_plain(self, matrix: np.ndarray, cts: Any) -> Any:
        """``[[M c]]`` for a plaintext integer matrix ``M`` (r x c) and ``c`` ciphertexts."""
        plain = np.array(np.asarray(matrix).tolist(), dtype=object)  # exact big ints (see _plain)
        return self._ev.matmul(self._kit.array(plain, self._codec), cts)

    # -- vectors ------------------------------------------------------------------------------
    def count(self, cts: Any) -> int:
        return int(cts.size)

    def take(self, cts: Any, idx: Sequence[int]) -> Any:
        return cts[[int(i) for i in idx]]

    def put(self, cts: Any, idx: Sequence[int], values: Any) -> None:
        cts[[int(i) for i in idx]] = values

    def slice(self, cts: Any, start: int, stop: int) -> Any:
        return cts[start:stop]

    def matvec(self, x: sp.csr_matrix, cts: Any) -> Any:
        """``[[X w]]`` for an integer CSR ``X`` (n, d) and ``d`` ciphertexts; touches non-zeros."""
        if x.shape[1] != self.count(cts):
            raise ParameterError(
                "ciphertexts", f"must number X.shape[1]={x.shape[1]}", self.count(cts)
            )
        x = sp.csr_matrix(x)
        ip, idx = x.indptr, x.indices
        if x.nnz and np.all(x.data == 1):
            rows = [idx[ip[i] : ip[i + 1]].tolist() for i in range(x.shape[0])]
            return self._row_sums(cts, rows)
        # general integers: gather the touched ciphertexts, scale them, sum per row
        if not x.nnz:
            return self._zeros(x.shape[0])
        gathered = self.mul_plain(self.take(cts, idx.tolist()), x.data.tolist())
        return self._row_sums(gathered, [list(range(ip[i], ip[i + 1])) for i in range(x.shape[0])])

    def _zeros(self, count: int) -> Any:
        """``count`` copies of one encryption of 0 (callers re-randomise before anything leaves:
        every product goes through HE-to-SS, which adds a fresh encryption)."""
        return self.take(self.encrypt([0]), [0] * count)

    def _row_sums(self, cts: Any, rows: list[list[int]]) -> Any:
        """``batch_select_sum``, with empty rows filled by :meth:`_zeros` (HEU makes each empty
        sum by a subtraction with a modular inverse: 0.6 ms apiece at 2048 bits)."""
        full = [i for i, r in enumerate(rows) if r]
        if len(full) == len(rows):
            return self._ev.batch_select_sum(cts, rows)
        out = self._zeros(len(rows))
        if full:
            self.put(out, full, self._ev.batch_select_sum(cts, [rows[i] for i in full]))
        return out

    def rmatvec(self, x: sp.csr_matrix, cts: Any) -> Any:
        """``[[X^T e]]`` for an integer CSR ``X`` (n, d) and ``n`` ciphertexts."""
        return self.matvec(sp.csr_matrix(sp.csr_matrix(x).T), cts)

    def pack(self, cts: Any, slot: int, k: int) -> Any:
        """Ciphertexts of ``sum_i cts[g k + i] 2**(slot i)`` per group ``g`` (Horner's rule,
        vectorised across the groups; the last group is padded with encryptions of zero)."""
        n = self.count(cts)
        groups = -(-n // k)
        pad = groups * k - n
        full = self.take(cts, list(range(n)) + [0] * pad)
        if pad:
            self.put(full, range(n, n + pad), self._zeros(pad))
        shift = [1 << slot] * groups
        acc = self.take(full, [g * k + k - 1 for g in range(groups)])
        for i in range(k - 2, -1, -1):
            part = self.take(full, [g * k + i for g in range(groups)])
            acc = self._ev.add(self.mul_plain(acc, shift), part)
        return acc

    # -- serialisation ------------------------------------------------------------------------
    def ciphertexts_to_bytes(self, cts: Any) -> bytes:
        return bytes(cts.serialize())

    def ciphertexts_from_bytes(self, buf: bytes) -> Any:
        try:
            arr = self._hnp.CiphertextArray.load_from(bytes(buf))
        except Exception as exc:
            raise ParameterError(
                "ciphertext buffer", f"must hold an HEU array ({exc})", ""
            ) from None
        if arr.ndim != 1:
            raise ParameterError("ciphertext buffer", "must hold a vector", f"{arr.ndim}-d")
        return arr

    # -- Paillier interoperation (heu-zpaillier only) -------------------------------------------
    def _need_paillier(self) -> None:
        if not self._schema.paillier:
            raise ParameterError("HE scheme", "must be a Paillier scheme", self.scheme)

    @cached_property
    def n(self) -> int:
        """The Paillier modulus (public)."""
        self._need_paillier()
        return _hex_field(str(self._pk), "n")

    def ciphertexts_to_ints(self, cts: Any) -> list[int]:
        """Standard Paillier ciphertexts ``(1 + n)^m r^n mod n^2``.

        HEU 0.5 keeps ciphertexts in Montgomery form over libtommath's 60-bit digits and prints
        them that way; this divides out ``R = 2**(60 * digits(n^2))``. The contract test
        (``tests/contract/test_he_contract.py``) checks the result against python-paillier.
        """
        nsq = self.n * self.n
        r_inv = pow(self._montgomery_r, -1, nsq)
        return [int(str(cts[i])) * r_inv % nsq for i in range(self.count(cts))]

    @cached_property
    def _montgomery_r(self) -> int:
        nsq = self.n * self.n
        return (1 << (60 * -(-nsq.bit_length() // 60))) % nsq

    def ciphertexts_from_ints(self, values: Sequence[int]) -> Any:
        """Ciphertexts from another Paillier implementation with ``g = n + 1``.

        Each is written in HEU 0.5's serialised form (a msgpack string holding the Montgomery
        value as a signed little-endian integer, then a trailer), framed like a ciphertext of this
        key.
        """
        nsq, r = self.n * self.n, self._montgomery_r
        vals = [int(v) for v in values]
        if any(not 0 < v < nsq for v in vals):
            raise ParameterError("ciphertext", "must lie in [1, n^2)", "out of range")
        if not vals:
            return self.slice(self.encrypt([0]), 0, 0)
        out = self._zeros(len(vals))
        frame = bytes(out[0].serialize())
        width = int.from_bytes(frame[2:4], "big")
        if frame[:2] != b"\x91\xda" or len(frame) != 4 + width + 8 or nsq.bit_length() > 8 * width:
            raise ParameterError("HEU ciphertext", "must have sf-heu 0.5's layout", frame[:4].hex())
        _, phe = load_heu()
        for i, v in enumerate(vals):
            m = v * r % nsq
            # HEU reads the body as a signed little-endian integer: a value whose top bit would be
            # set takes one more (zero) byte, as HEU's own serialiser writes it
            size = max(width, m.bit_length() // 8 + 1)
            body = m.to_bytes(size, "little")
            out[i] = phe.Ciphertext.load_from(
                frame[:2] + size.to_bytes(2, "big") + body + frame[-8:]
            )
        return out

    def to_bytes(self) -> bytes:
        return self._schema.magic_pub + self.bits.to_bytes(2, "big") + self._raw

    @classmethod
    def from_bytes(cls, buf: bytes, where: str = "public key") -> HeuPublicKey:
        schema = next((s for s in _SCHEMAS.values() if buf.startswith(s.magic_pub)), None)
        if schema is None or len(buf) < len(schema.magic_pub) + 3:
            raise InputFileError(where, "not an aisec HEU public key")
        head = len(schema.magic_pub)
        bits = int.from_bytes(buf[head : head + 2], "big")
        if bits not in KEY_BITS:
            raise InputFileError(where, f"HEU key size {bits} is not one of {KEY_BITS}")
        return cls(buf[head + 2 :], bits, schema.name)


class HeuSecretKey:
    """An HEU secret key (OU or Paillier); ``public`` is its :class:`HeuPublicKey`."""

    def __init__(self, raw_sk: bytes, raw_pk: bytes, bits: int, scheme: str = "heu-ou") -> None:
        hnp, phe = load_heu()
        self.scheme = scheme
        try:
            sk = phe.SecretKey.load_from(raw_sk)
            pk = phe.PublicKey.load_from(raw_pk)
            self._kit = hnp.HeKit(phe.setup(pk, sk))
        except Exception:
            raise InputFileError("secret key", f"not a valid {scheme} secret key") from None
        self._sk = sk
        self._raw = bytes(raw_sk)
        self.public = HeuPublicKey(raw_pk, bits, scheme)
        self._dec = self._kit.decryptor()
        self._codec = self._kit.bigint_encoder()

    def __repr__(self) -> str:  # never shows the key
        return f"HeuSecretKey({self.scheme}, bits={self.public.bits}, id={self.public.fingerprint})"

    @property
    def p(self) -> int:
        """First prime factor of the Paillier modulus (secret; heu-zpaillier only)."""
        self.public._need_paillier()
        return _hex_field(str(self._sk), "p")

    @property
    def q(self) -> int:
        """Second prime factor of the Paillier modulus (secret; heu-zpaillier only)."""
        self.public._need_paillier()
        return _hex_field(str(self._sk), "q")

    def encrypt(self, ms: Sequence[int], rng: Any = None) -> Any:
        return self.public.encrypt(ms)

    def decrypt(self, cts: Any) -> list[int]:
        """Signed integers."""
        return [int(v) for v in self._dec.decrypt(cts).to_numpy(self._codec).tolist()]

    def to_bytes(self) -> bytes:
        pk = self.public._raw
        return (
            self.public._schema.magic_sec
            + self.public.bits.to_bytes(2, "big")
            + len(pk).to_bytes(4, "big")
            + pk
            + self._raw
        )

    @classmethod
    def from_bytes(cls, buf: bytes, where: str = "secret key") -> HeuSecretKey:
        schema = next((s for s in _SCHEMAS.values() if buf.startswith(s.magic_sec)), None)
        head = len(schema.magic_sec) if schema is not None else 0
        if schema is None or len(buf) < head + 6:
            raise InputFileError(where, "not an aisec HEU secret key")
        bits = int.from_bytes(buf[head : head + 2], "big")
        plen = int.from_bytes(buf[head + 2 : head + 6], "big")
        if bits not in KEY_BITS or len(buf) <= head + 6 + plen:
            raise InputFileError(where, f"not a valid aisec {schema.name} secret key")
        return cls(buf[head + 6 + plen :], buf[head + 6 : head + 6 + plen], bits, schema.name)


def generate_heu_keypair(scheme: str = "heu-ou", bits: int = 2048) -> HeuSecretKey:
    """A fresh HEU key pair of ``scheme`` (``heu-ou`` or ``heu-zpaillier``); returns the secret
    key, whose ``public`` is the public key."""
    schema = _schema(scheme)
    if bits not in KEY_BITS:
        raise ParameterError("key_bits", f"must be one of {KEY_BITS}", bits)
    hnp, phe = load_heu()
    kit = phe.setup(getattr(phe.SchemaType, schema.heu_name), bits)
    return HeuSecretKey(
        bytes(kit.secret_key().serialize()), bytes(kit.public_key().serialize()), bits, scheme
    )
