"""Beaver matrix-vector triples made by two parties with additively homomorphic encryption.

SecureML's offline phase without a dealer: parties 0 and 1 hold random shares ``U_i`` (m x d),
``V_i`` (d) and ``V2_i`` (m) in Z_2^64 and want shares of ``Z = U V`` and ``Z2 = U^T V2`` where
``U = U_0 + U_1`` and so on. The local terms ``U_i V_i`` are free; each cross term ``U_i V_j`` is
computed by party ``i`` on party ``j``'s encrypted ``[[V_j]]``: ``i`` returns
``[[U_i V_j + R]]`` (integers, no reduction; ``R`` is sigma = 40 bits wider than the product sums),
``j`` decrypts and reduces mod 2^64, ``i`` keeps ``-R``. Every cross term costs ``m d``
plaintext-ciphertext multiplications per party and batch: this is the dense cost that
CAESAR avoids.

Reference: Mohassel and Zhang, "SecureML", IEEE S&P 2017, section 4.2 (LHE-based generation of
matrix multiplication triples); FATE ``spdz/beaver_triples/he.py``.

Threat model: semi-honest parties; each sees only ciphertexts under the other's key and values
masked by ``R`` (statistical distance 2^-40).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from aisec.crypto.h2s import random_masks
from aisec.crypto.he import HEPublicKey, HESecretKey
from aisec.crypto.sharing import STAT_SIGMA
from aisec.errors import ParameterError, PeerError
from aisec.rng import SecureRandom
from aisec.transport import Channel

__all__ = ["he_matvec_triples"]

_MOD = 1 << 64


def _dot_rows(pk: HEPublicKey, matrix: np.ndarray, cts: Any) -> Any:
    """``[[M c]]`` for a plaintext uint64 matrix ``M`` (r x c) and ``c`` ciphertexts."""
    if hasattr(pk, "matmul_plain"):
        return pk.matmul_plain(matrix, cts)
    out = []
    for row in matrix.tolist():
        out.append(pk.sum(pk.mul_plain(cts, row)))
    return out


def he_matvec_triples(
    index: int,
    ch: Channel,
    sk: HESecretKey,
    peer_pk: HEPublicKey,
    u: np.ndarray,
    v: np.ndarray,
    v2: np.ndarray,
    step: str,
) -> tuple[np.ndarray, np.ndarray]:
    """This party's shares of ``Z = U V`` and ``Z2 = U^T V2`` (both parties call it at once).

    Args:
        index: 0 or 1 (the two parties run the same steps).
        ch: channel to the other party.
        sk: this party's secret key; ``peer_pk``: the other party's public key.
        u: (m, d) uint64 share of U; ``v``: (d,) share of V; ``v2``: (m,) share of V2.
        step: a name for the messages of this triple.
    Returns:
        ``(z, z2)``: (m,) and (d,) uint64 shares.
    """
    if index not in (0, 1):
        raise ParameterError("index", "must be 0 or 1", index)
    m, d = u.shape
    pk = sk.public
    ch.send(f"{step}:v", {"v": pk.ciphertexts_to_bytes(pk.encrypt(v.tolist() + v2.tolist()))})
    try:
        got = peer_pk.ciphertexts_from_bytes(ch.recv(f"{step}:v")["v"])
    except (KeyError, ParameterError) as exc:
        raise PeerError(ch.peer, f"{step}:v", f"malformed ciphertexts ({exc})") from None
    if peer_pk.count(got) != d + m:
        raise PeerError(ch.peer, f"{step}:v", f"sent {peer_pk.count(got)} values, expected {d + m}")
    peer_v, peer_v2 = peer_pk.slice(got, 0, d), peer_pk.slice(got, d, d + m)
    bits = 128 + max(m, d).bit_length() + STAT_SIGMA
    rng = SecureRandom()
    r1, r2 = random_masks(rng, m, bits), random_masks(rng, d, bits)
    # [[U_i V_j + R1]] and [[U_i^T V2_j + R2]]; adding fresh encryptions of the masks also
    # re-randomises, so the key owner learns nothing from the ciphertexts' randomness
    c1 = peer_pk.add(_dot_rows(peer_pk, u, peer_v), peer_pk.encrypt(r1))
    c2 = peer_pk.add(_dot_rows(peer_pk, np.ascontiguousarray(u.T), peer_v2), peer_pk.encrypt(r2))
    ch.send(
        f"{step}:c",
        {"c": peer_pk.ciphertexts_to_bytes(c1), "c2": peer_pk.ciphertexts_to_bytes(c2)},
    )
    msg = ch.recv(f"{step}:c")
    try:
        back1 = sk.decrypt(pk.ciphertexts_from_bytes(msg["c"]))
        back2 = sk.decrypt(pk.ciphertexts_from_bytes(msg["c2"]))
    except (KeyError, ParameterError) as exc:
        raise PeerError(ch.peer, f"{step}:c", f"malformed ciphertexts ({exc})") from None
    if len(back1) != m or len(back2) != d:
        raise PeerError(ch.peer, f"{step}:c", "wrong number of values")

    def ring(values: list[int]) -> np.ndarray:
        return np.array([x % _MOD for x in values], dtype=np.uint64)

    z = u @ v + ring(back1) - ring(r1)
    z2 = u.T @ v2 + ring(back2) - ring(r2)
    return z, z2
