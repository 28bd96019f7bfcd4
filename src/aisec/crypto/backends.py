"""Additively homomorphic encryption backends behind one small vector interface.

Every backend turns lists of signed integers into an opaque ciphertext vector and back, adds two
vectors, multiplies one by plaintext integers and serialises it. Registered backends:

* ``gmpy2-paillier``: :mod:`aisec.crypto.paillier` (DJN short exponent, fixed-base tables, CRT);
  ``owner=True`` encrypts with the key owner's CRT path, as every CAESAR party does.
* ``phe-paillier``: python-paillier (``phe``), the common Python reference.
* ``heu-ou`` / ``heu-zpaillier``: SecretFlow HEU (package ``sf-heu``): Okamoto-Uchiyama and
  Paillier in C++ with a numpy-like API; optional, install with ``pip install sf-heu``.

The CAESAR protocol's sparse kernels and HE-to-SS run on ``gmpy2-paillier`` objects directly.

Reference: Paillier 1999; Okamoto and Uchiyama, EUROCRYPT 1998; SecretFlow HEU documentation.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from aisec.errors import DependencyError
from aisec.registry import Registry

__all__ = ["HEScheme", "HE_BACKENDS", "make_scheme", "available_backends"]


class HEScheme(ABC):
    """A key pair and the vector operations of one backend."""

    name: str = ""

    def __init__(self, key_bits: int) -> None:
        self.key_bits = key_bits

    @abstractmethod
    def encrypt(self, ms: Sequence[int]) -> Any: ...

    @abstractmethod
    def decrypt(self, cts: Any) -> list[int]: ...

    @abstractmethod
    def add(self, a: Any, b: Any) -> Any: ...

    @abstractmethod
    def mul_plain(self, cts: Any, ks: Sequence[int]) -> Any: ...

    @abstractmethod
    def to_bytes(self, cts: Any) -> bytes: ...


HE_BACKENDS: Registry[type[HEScheme]] = Registry("he backend")


@HE_BACKENDS.register("gmpy2-paillier", summary="Paillier on gmpy2: DJN + fixed-base + CRT")
class Gmpy2Paillier(HEScheme):
    name = "gmpy2-paillier"

    def __init__(self, key_bits: int, owner: bool = True) -> None:
        from aisec.crypto.paillier import generate_keypair

        super().__init__(key_bits)
        self.sk = generate_keypair(key_bits)
        self.pk = self.sk.public
        self.owner = owner

    def encrypt(self, ms: Sequence[int]) -> list[Any]:
        return self.sk.encrypt(ms) if self.owner else self.pk.encrypt(ms)

    def decrypt(self, cts: Any) -> list[int]:
        return self.sk.decrypt(cts)

    def add(self, a: Any, b: Any) -> list[Any]:
        return self.pk.add(a, b)

    def mul_plain(self, cts: Any, ks: Sequence[int]) -> list[Any]:
        return self.pk.mul_plain(cts, ks)

    def to_bytes(self, cts: Any) -> bytes:
        return self.pk.ciphertexts_to_bytes(cts)


@HE_BACKENDS.register("phe-paillier", summary="python-paillier (phe), the Python reference")
class PhePaillier(HEScheme):
    name = "phe-paillier"

    def __init__(self, key_bits: int) -> None:
        try:
            from phe import paillier
        except ImportError:
            raise DependencyError("phe", "crypto") from None
        super().__init__(key_bits)
        self.pk, self.sk = paillier.generate_paillier_keypair(n_length=key_bits)

    def encrypt(self, ms: Sequence[int]) -> list[Any]:
        return [self.pk.encrypt(int(m)) for m in ms]

    def decrypt(self, cts: Any) -> list[int]:
        return [int(self.sk.decrypt(c)) for c in cts]

    def add(self, a: Any, b: Any) -> list[Any]:
        return [x + y for x, y in zip(a, b, strict=True)]

    def mul_plain(self, cts: Any, ks: Sequence[int]) -> list[Any]:
        return [c * int(k) for c, k in zip(cts, ks, strict=True)]

    def to_bytes(self, cts: Any) -> bytes:
        width = (2 * self.key_bits + 7) // 8
        return b"".join(int(c.ciphertext(be_secure=False)).to_bytes(width, "big") for c in cts)


class _Heu(HEScheme):
    schema = ""

    def __init__(self, key_bits: int) -> None:
        try:
            from heu import numpy as hnp
            from heu import phe
        except ImportError:
            raise DependencyError("heu (pip install sf-heu)", "crypto") from None
        super().__init__(key_bits)
        self.kit = hnp.setup(getattr(phe.SchemaType, self.schema), key_bits)
        self._enc, self._dec, self._ev = (
            self.kit.encryptor(),
            self.kit.decryptor(),
            self.kit.evaluator(),
        )
        self._codec = self.kit.bigint_encoder()

    def encrypt(self, ms: Sequence[int]) -> Any:
        return self._enc.encrypt(self.kit.array([int(m) for m in ms], self._codec))

    def decrypt(self, cts: Any) -> list[int]:
        return [int(v) for v in self._dec.decrypt(cts).to_numpy(self._codec).tolist()]

    def add(self, a: Any, b: Any) -> Any:
        return self._ev.add(a, b)

    def mul_plain(self, cts: Any, ks: Sequence[int]) -> Any:
        return self._ev.mul(cts, self.kit.array([int(k) for k in ks], self._codec))

    def to_bytes(self, cts: Any) -> bytes:
        return bytes(cts.serialize())


@HE_BACKENDS.register("heu-ou", summary="SecretFlow HEU Okamoto-Uchiyama (optional, sf-heu)")
class HeuOU(_Heu):
    name, schema = "heu-ou", "OU"


@HE_BACKENDS.register("heu-zpaillier", summary="SecretFlow HEU Paillier (optional, sf-heu)")
class HeuZPaillier(_Heu):
    name, schema = "heu-zpaillier", "ZPaillier"


def make_scheme(name: str, key_bits: int = 2048) -> HEScheme:
    """A fresh key pair of the named backend."""
    return HE_BACKENDS.get(name)(key_bits)


def available_backends() -> list[str]:
    """Registered backends whose library is importable here."""
    import importlib.util

    need = {
        "phe-paillier": "phe",
        "heu-ou": "heu",
        "heu-zpaillier": "heu",
        "gmpy2-paillier": "gmpy2",
    }
    return [n for n in HE_BACKENDS.names() if importlib.util.find_spec(need.get(n, "gmpy2"))]
