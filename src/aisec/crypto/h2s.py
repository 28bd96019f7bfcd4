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

from typing import Any

from aisec.crypto.he import HEPublicKey, HESecretKey
from aisec.crypto.sharing import STAT_SIGMA
from aisec.errors import ParameterError
from aisec.rng import CryptoRandom, SecureRandom

__all__ = ["mask", "unmask", "check_room", "pack_layout", "mask_packed", "unmask_packed"]


def random_masks(rng: CryptoRandom, count: int, bits: int) -> list[int]:
    """``count`` uniform integers in [0, 2**bits) from one call to the randomness source."""
    nb = (bits + 7) // 8
    buf = rng.bytes(count * nb)
    drop = 8 * nb - bits
    return [int.from_bytes(buf[i * nb : (i + 1) * nb], "big") >> drop for i in range(count)]


def check_room(pk: HEPublicKey, value_bits: int, sigma: int = STAT_SIGMA) -> None:
    """Raise unless values of ``value_bits`` bits plus a ``sigma``-bit wider mask fit in Z_n."""
    if value_bits + sigma + 2 >= pk.plaintext_bits:
        raise ParameterError(
            "value_bits",
            f"+ sigma must stay below the {pk.bits}-bit key's plaintext space",
            value_bits,
        )


def mask(
    pk: HEPublicKey,
    cts: Any,
    value_bits: int,
    trunc_bits: int = 0,
    rng: CryptoRandom | None = None,
    sigma: int = STAT_SIGMA,
) -> tuple[Any, list[int]]:
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
    masks = random_masks(rng, pk.count(cts), width)
    fresh = pk.encrypt(masks, rng)
    to_send = pk.add(cts, fresh)
    return to_send, [-(r >> trunc_bits) for r in masks]


def unmask(sk: HESecretKey, cts: Any, trunc_bits: int = 0) -> list[int]:
    """The key owner's half: decrypt ``[[M + R]]`` and keep ``(M + R) >> trunc_bits``."""
    return [v >> trunc_bits for v in sk.decrypt(cts)]


def pack_layout(pk: HEPublicKey, value_bits: int, sigma: int = STAT_SIGMA) -> tuple[int, int]:
    """``(slot_bits, slots_per_ciphertext)`` for packed HE-to-SS of ``value_bits`` values."""
    slot = value_bits + sigma + 2
    return slot, max(1, (pk.plaintext_bits - 1) // slot)


def mask_packed(
    pk: HEPublicKey,
    cts: Any,
    value_bits: int,
    trunc_bits: int = 0,
    rng: CryptoRandom | None = None,
    sigma: int = STAT_SIGMA,
) -> tuple[Any, list[int], dict[str, int]]:
    """Packed HE-to-SS: several masked values per ciphertext, so the key owner decrypts
    ``1/k`` as many ciphertexts and ``1/k`` as many bytes cross the link.

    Each value gets an offset ``2**value_bits`` (so it is non-negative) and a mask ``R`` of
    ``value_bits + sigma`` bits; slot ``i`` holds ``M_i + 2**value_bits + R_i``, which never
    carries into slot ``i + 1``. The packing is Horner's rule on ciphertexts
    (``slot_bits`` squarings per value in Paillier, one multiplication by ``2**slot`` in OU) and one fresh encryption per packed ciphertext.

    Returns:
        ``(to_send, my_shares, layout)``; send ``layout`` (slot bits and count) with the
        ciphertexts; the owner calls :func:`unmask_packed`.
    """
    if trunc_bits > value_bits:
        raise ParameterError("trunc_bits", f"must be <= value_bits={value_bits}", trunc_bits)
    check_room(pk, value_bits + 2, sigma)
    rng = rng or SecureRandom()
    slot, k = pack_layout(pk, value_bits, sigma)
    offset = 1 << value_bits
    width = value_bits + sigma
    masks = random_masks(rng, pk.count(cts), width)
    plains = []
    for start in range(0, len(masks), k):
        plain = 0
        for r in reversed(masks[start : start + k]):
            plain = (plain << slot) + offset + r
        plains.append(plain)
    packed = pk.pack(cts, slot, k)
    to_send = pk.add(packed, pk.encrypt(plains, rng))
    mine = [-(r >> trunc_bits) - (offset >> trunc_bits) for r in masks]
    return to_send, mine, {"slot": slot, "count": pk.count(cts)}


def unmask_packed(
    sk: HESecretKey, cts: Any, slot: int, count: int, trunc_bits: int = 0
) -> list[int]:
    """The key owner's half of :func:`mask_packed`: decrypt and split the slots."""
    k = max(1, (sk.public.plaintext_bits - 1) // slot)
    got = sk.public.count(cts)
    if got != -(-count // k):
        raise ParameterError("packed ciphertexts", f"must number ceil({count}/{k})", got)
    low = (1 << slot) - 1
    out: list[int] = []
    for v in sk.decrypt(cts):
        v = int(v)
        for _ in range(min(k, count - len(out))):
            out.append((v & low) >> trunc_bits)
            v >>= slot
    return out
