"""Key pairs of the additively homomorphic schemes the protocols run on, chosen by name.

``gmpy2-paillier`` (:mod:`aisec.crypto.paillier`, always available) and ``heu-ou``
(:mod:`aisec.crypto.ou`, SecretFlow HEU's Okamoto-Uchiyama, optional) expose the same vector
interface, so a protocol that only calls key methods runs on either. Key bytes start with a
magic tag naming their scheme, so a stored key is loaded back as the right type.

Reference: Paillier, EUROCRYPT 1999; Okamoto and Uchiyama, EUROCRYPT 1998.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Union

from aisec.errors import InputFileError, ParameterError

if TYPE_CHECKING:
    from aisec.crypto.ou import OUPublicKey, OUSecretKey
    from aisec.crypto.paillier import PaillierPublicKey, PaillierSecretKey

__all__ = [
    "HE_SCHEMES",
    "HEPublicKey",
    "HESecretKey",
    "generate_he_keypair",
    "public_key_from_bytes",
    "secret_key_from_bytes",
]

HEPublicKey = Union["PaillierPublicKey", "OUPublicKey"]
HESecretKey = Union["PaillierSecretKey", "OUSecretKey"]
HE_SCHEMES = ("gmpy2-paillier", "heu-ou")


def generate_he_keypair(scheme: str, bits: int) -> HESecretKey:
    """A fresh secret key of the named scheme; its ``public`` attribute is the public key."""
    if scheme == "gmpy2-paillier":
        from aisec.crypto.paillier import generate_keypair

        return generate_keypair(bits)
    if scheme == "heu-ou":
        from aisec.crypto.ou import generate_ou_keypair

        return generate_ou_keypair(bits)
    raise ParameterError("he scheme", f"must be one of {', '.join(HE_SCHEMES)}", scheme)


def key_scheme(buf: bytes) -> str:
    """The scheme a stored key belongs to, from its magic tag."""
    if buf.startswith(b"AISEC-OU-"):
        return "heu-ou"
    return "gmpy2-paillier"


def secret_key_from_bytes(buf: bytes, where: str = "secret key") -> HESecretKey:
    """Load a secret key of either scheme."""
    if key_scheme(buf) == "heu-ou":
        from aisec.crypto.ou import OUSecretKey

        return OUSecretKey.from_bytes(buf, where=where)
    from aisec.crypto.paillier import PaillierSecretKey

    return PaillierSecretKey.from_bytes(buf, where=where)


def public_key_from_bytes(buf: bytes, where: str = "public key") -> HEPublicKey:
    """Load a public key of either scheme."""
    if not isinstance(buf, bytes | bytearray):
        raise InputFileError(where, "not a key (expected bytes)")
    if key_scheme(bytes(buf)) == "heu-ou":
        from aisec.crypto.ou import OUPublicKey

        return OUPublicKey.from_bytes(bytes(buf), where=where)
    from aisec.crypto.paillier import PaillierPublicKey

    return PaillierPublicKey.from_bytes(bytes(buf), where=where)
