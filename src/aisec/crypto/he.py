"""One interface to the additively homomorphic encryption (HE) schemes, and their registry.

A backend is an :class:`HEScheme` registered in :data:`HE_BACKENDS` under its name. The scheme
makes and loads keys; the keys do the arithmetic. Every backend's keys implement the same vector
interface (:class:`HEPublicKey`, :class:`HESecretKey`), so code that only calls key methods runs on
any of them:

* a plaintext is a signed integer ``m`` with ``|m| < 2**pk.plaintext_bits``; sums and products
  are exact while they stay inside that range (beyond it they wrap modulo the plaintext modulus,
  ``n`` for Paillier, which :meth:`HESecretKey.decrypt` maps back to (-n/2, n/2]);
* a ciphertext vector is opaque (a list for the Python backends, a C++ array for HEU): count,
  gather, scatter and slice it through the key, and send it with ``ciphertexts_to_bytes``;
* key bytes start with a magic tag naming their scheme, so :func:`public_key_from_bytes` and
  :func:`secret_key_from_bytes` load a stored key back as the right type.

Registered backends (each needs the ``crypto`` extra; asking for one whose library is missing
raises :class:`~aisec.errors.DependencyError`, and :func:`available_backends` lists those present):

* ``gmpy2-paillier``: :mod:`aisec.crypto.paillier` (DJN short exponent, fixed-base tables, CRT);
* ``phe-paillier``: python-paillier (``phe``) behind :mod:`aisec.crypto.phe_paillier`, the common
  Python reference;
* ``heu-ou`` / ``heu-zpaillier``: SecretFlow HEU's Okamoto-Uchiyama and Paillier in C++
  (:mod:`aisec.crypto.heu`, package ``sf-heu``).

Paillier-scheme keys (``HEScheme.paillier``) also expose their modulus ``n`` (public), factors
``p`` and ``q`` (secret), ``ciphertexts_to_ints`` and ``ciphertexts_from_ints``: the standard
ciphertexts ``(1 + n)^m r^n mod n^2`` that any Paillier implementation with ``g = n + 1``
decrypts and makes, so python-paillier, gmpy2 and HEU parties can read each other's. CAESAR
additionally needs ``pack`` and the sparse products (:mod:`aisec.crypto.sparse_he`), which the
``gmpy2-paillier`` and ``heu-ou`` keys provide.

Reference: Paillier, EUROCRYPT 1999; Okamoto and Uchiyama, EUROCRYPT 1998; SecretFlow HEU.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from types import ModuleType
from typing import Any, ClassVar, Protocol, runtime_checkable

from aisec.errors import DependencyError, InputFileError, ParameterError
from aisec.registry import Registry

__all__ = [
    "HEPublicKey",
    "HESecretKey",
    "HEScheme",
    "HE_BACKENDS",
    "available_backends",
    "generate_he_keypair",
    "he_scheme",
    "key_scheme",
    "public_key_from_bytes",
    "secret_key_from_bytes",
]


@runtime_checkable
class HEPublicKey(Protocol):
    """The public half: encryption, homomorphic operations, vectors and serialisation."""

    scheme: str
    bits: int
    plaintext_bits: int

    @property
    def fingerprint(self) -> str: ...

    def encrypt(self, ms: Sequence[int], rng: Any = None) -> Any: ...

    def add(self, a: Any, b: Any) -> Any: ...

    def add_plain(self, cts: Any, ms: Sequence[int]) -> Any: ...

    def mul_plain(self, cts: Any, ks: Sequence[int]) -> Any: ...

    def count(self, cts: Any) -> int: ...

    def take(self, cts: Any, idx: Iterable[int]) -> Any: ...

    def put(self, cts: Any, idx: Iterable[int], values: Any) -> None: ...

    def slice(self, cts: Any, start: int, stop: int) -> Any: ...

    def ciphertexts_to_bytes(self, cts: Any) -> bytes: ...

    def ciphertexts_from_bytes(self, buf: bytes) -> Any: ...

    def to_bytes(self) -> bytes: ...


@runtime_checkable
class HESecretKey(Protocol):
    """The key owner's half: ``public`` is the :class:`HEPublicKey`."""

    @property
    def public(self) -> HEPublicKey: ...

    def encrypt(self, ms: Sequence[int], rng: Any = None) -> Any: ...

    def decrypt(self, cts: Any) -> list[int]: ...

    def to_bytes(self) -> bytes: ...


class HEScheme(ABC):
    """One additively homomorphic scheme: makes and loads its keys.

    Class attributes:
        name: the registry name.
        requires: the third-party module the backend imports (missing: DependencyError).
        key_bits: the modulus sizes it accepts, smallest first.
        paillier: whether its ciphertexts are Paillier's with ``g = n + 1``.
        magic: the prefixes of its public and secret key bytes.
    """

    name: ClassVar[str]
    requires: ClassVar[str]
    key_bits: ClassVar[tuple[int, ...]]
    paillier: ClassVar[bool]
    magic: ClassVar[tuple[bytes, bytes]]

    def __repr__(self) -> str:
        return f"HEScheme({self.name!r})"

    def available(self) -> bool:
        """Whether the backend's library imports here."""
        try:
            self._module()
        except DependencyError:
            return False
        return True

    @abstractmethod
    def _module(self) -> ModuleType:
        """The aisec module with the key classes (its import raises DependencyError)."""

    def keygen(self, bits: int) -> HESecretKey:
        """A fresh key pair with a ``bits``-bit modulus; returns the secret key."""
        if bits not in self.key_bits:
            raise ParameterError(f"{self.name} key_bits", f"must be one of {self.key_bits}", bits)
        return self._keygen(bits)

    @abstractmethod
    def _keygen(self, bits: int) -> HESecretKey: ...

    @abstractmethod
    def public_key_from_bytes(self, buf: bytes, where: str = "public key") -> HEPublicKey: ...

    @abstractmethod
    def secret_key_from_bytes(self, buf: bytes, where: str = "secret key") -> HESecretKey: ...


HE_BACKENDS: Registry[HEScheme] = Registry("he backend")


def _register(summary: str) -> Any:
    def deco(cls: type[HEScheme]) -> type[HEScheme]:
        HE_BACKENDS.add(cls.name, cls(), summary=summary)
        return cls

    return deco


@_register("Paillier on gmpy2: DJN short exponent, fixed-base tables, CRT")
class Gmpy2Paillier(HEScheme):
    name = "gmpy2-paillier"
    requires = "gmpy2"
    key_bits = (512, 1024, 2048, 3072, 4096)
    paillier = True
    magic = (b"AISEC-PAILLIER-PUB-", b"AISEC-PAILLIER-SEC-")

    def _module(self) -> ModuleType:
        return importlib.import_module("aisec.crypto.paillier")

    def _keygen(self, bits: int) -> HESecretKey:
        return self._module().generate_keypair(bits)

    def public_key_from_bytes(self, buf: bytes, where: str = "public key") -> HEPublicKey:
        return self._module().PaillierPublicKey.from_bytes(buf, where=where)

    def secret_key_from_bytes(self, buf: bytes, where: str = "secret key") -> HESecretKey:
        return self._module().PaillierSecretKey.from_bytes(buf, where=where)


@_register("python-paillier (phe), the common Python reference")
class PhePaillier(HEScheme):
    name = "phe-paillier"
    requires = "phe"
    key_bits = (512, 1024, 2048, 3072, 4096)
    paillier = True
    magic = (b"AISEC-PHE-PAILLIER-PUB-", b"AISEC-PHE-PAILLIER-SEC-")

    def _module(self) -> ModuleType:
        return importlib.import_module("aisec.crypto.phe_paillier")

    def _keygen(self, bits: int) -> HESecretKey:
        return self._module().generate_phe_keypair(bits)

    def public_key_from_bytes(self, buf: bytes, where: str = "public key") -> HEPublicKey:
        return self._module().PhePublicKey.from_bytes(buf, where=where)

    def secret_key_from_bytes(self, buf: bytes, where: str = "secret key") -> HESecretKey:
        return self._module().PheSecretKey.from_bytes(buf, where=where)


class _Heu(HEScheme):
    requires = "heu"

    def _module(self) -> ModuleType:
        mod = importlib.import_module("aisec.crypto.heu")
        mod.load_heu()  # the HEU library itself is imported lazily
        return mod

    def _keygen(self, bits: int) -> HESecretKey:
        return self._module().generate_heu_keypair(self.name, bits)

    def public_key_from_bytes(self, buf: bytes, where: str = "public key") -> HEPublicKey:
        return self._module().HeuPublicKey.from_bytes(buf, where=where)

    def secret_key_from_bytes(self, buf: bytes, where: str = "secret key") -> HESecretKey:
        return self._module().HeuSecretKey.from_bytes(buf, where=where)


@_register("SecretFlow HEU Okamoto-Uchiyama in C++ (sf-heu)")
class HeuOU(_Heu):
    name = "heu-ou"
    key_bits = (1024, 2048, 3072, 4096)
    paillier = False
    magic = (b"AISEC-OU-PUB-", b"AISEC-OU-SEC-")


@_register("SecretFlow HEU Paillier (ZPaillier) in C++ (sf-heu)")
class HeuZPaillier(_Heu):
    name = "heu-zpaillier"
    key_bits = (1024, 2048, 3072, 4096)
    paillier = True
    magic = (b"AISEC-HEU-ZPAILLIER-PUB-", b"AISEC-HEU-ZPAILLIER-SEC-")


def he_scheme(name: str) -> HEScheme:
    """The registered backend ``name`` (unknown: an error listing the valid names)."""
    return HE_BACKENDS.get(name)


def generate_he_keypair(scheme: str, bits: int) -> HESecretKey:
    """A fresh secret key of the named backend; its ``public`` attribute is the public key.

    Raises:
        UnknownNameError: ``scheme`` is not registered.
        DependencyError: its library is not installed (the message names the ``crypto`` extra).
        ParameterError: ``bits`` is not a size the backend accepts.
    """
    return he_scheme(scheme).keygen(bits)


def available_backends() -> list[str]:
    """Registered backends whose library imports here, by name."""
    return [name for name in HE_BACKENDS.names() if HE_BACKENDS.get(name).available()]


def key_scheme(buf: bytes) -> str | None:
    """The backend a stored key belongs to, from its magic tag (None: not an aisec HE key)."""
    if not isinstance(buf, bytes | bytearray):
        return None
    for name in HE_BACKENDS.names():
        if bytes(buf).startswith(HE_BACKENDS.get(name).magic):
            return name
    return None


def _scheme_of(buf: Any, where: str, kind: str) -> HEScheme:
    if not isinstance(buf, bytes | bytearray):
        raise InputFileError(where, f"not a key (expected bytes, got {type(buf).__name__})")
    name = key_scheme(buf)
    if name is None:
        raise InputFileError(where, f"not an aisec HE {kind} key (unknown header)")
    return HE_BACKENDS.get(name)


def public_key_from_bytes(buf: bytes, where: str = "public key") -> HEPublicKey:
    """Load a public key of any registered backend."""
    return _scheme_of(buf, where, "public").public_key_from_bytes(bytes(buf), where=where)


def secret_key_from_bytes(buf: bytes, where: str = "secret key") -> HESecretKey:
    """Load a secret key of any registered backend."""
    return _scheme_of(buf, where, "secret").secret_key_from_bytes(bytes(buf), where=where)
