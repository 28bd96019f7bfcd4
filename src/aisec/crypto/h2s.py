"""HE-to-SS conversion: turn a ciphertext under the peer's key into two additive shares.

The holder ``P`` of ``[[M]]`` (encrypted under ``Q``'s key) draws ``R`` uniform in
``[0, 2**(b + sigma))`` where ``|M| < 2**b``, keeps ``-R`` and sends ``[[M + R]]``, re-randomised,
to ``Q``, who decrypts. ``M + R`` hides ``M`` up to statistical distance ``2**-sigma`` and the
fresh randomness hides how ``[[M]]`` was computed (e.g. which features were non-zero).
Optionally both sides truncate by ``t`` bits on the way: ``Q`` keeps ``(M + R) >> t`` and ``P``
keeps ``-(R >> t)``; their sum is ``M >> t`` or one more, exactly, with no wrap-around.

Reference: Chen et al., KDD 2021, section "secret sharing in the HE field"; FATE
``SecureMatrix.share_encrypted_matrix``.

Threat model: semi-honest parties; ``Q`` learns ``M + R`` only, ``P`` learns nothing new.
"""

from __future__ import annotations

from collections.abc import Sequence

from gmpy2 import mpz

from aisec.crypto.paillier import PaillierPublicKey, PaillierSecretKey
from aisec.crypto.sharing import STAT_SIGMA
from aisec.errors import ParameterError
from aisec.rng import CryptoRandom, SecureRandom

__all__ = ["mask", "unmask", "check_room"]


def check_room(pk: PaillierPublicKey, value_bits: int, sigma: int = STAT_SIGMA) -> None:
    """Raise unless values of ``value_bits`` bits plus a ``sigma``-bit wider mask fit in Z_n."""
    if value_bits + sigma + 2 >= pk.plaintext_bits:
        raise ParameterError(
            "value_bits", f"+ sigma must stay below the {pk.bits}-bit key's plaintext space",
            value_bits,
        )


def mask(
    pk: PaillierPublicKey,
    cts: Sequence[mpz],
    value_bits: int,
    trunc_bits: int = 0,
    rng: CryptoRandom | None = None,
    sigma: int = STAT_SIGMA,
) -> tuple[list[mpz], list[int]]:
    """The holder's half: masked, re-randomised ciphertexts to send and its own shares.

    Args:
        pk: the peer's public key (the ciphertexts are under it).
        cts: ``[[M_i]]`` with ``|M_i| < 2**value_bits``.
        value_bits: bound on the plaintext magnitudes.
        trunc_bits: bits both sides drop (0: no truncation).
        rng: cryptographic randomness.
        sigma: statistical security parameter.
    Returns:
        ``(to_send, my_shares)``.
    """
    check_room(pk, value_bits, sigma)
    rng = rng or SecureRandom()
    width = value_bits + sigma
    masks = [rng.randbits(width) for _ in range(len(cts))]
    fresh = pk.encrypt(masks, rng)
    to_send = pk.add(cts, fresh)
    return to_send, [-(r >> trunc_bits) for r in masks]


def unmask(sk: PaillierSecretKey, cts: Sequence[mpz], trunc_bits: int = 0) -> list[int]:
    """The key owner's half: decrypt ``[[M + R]]`` and keep ``(M + R) >> trunc_bits``."""
    return [v >> trunc_bits for v in sk.decrypt(cts)]
