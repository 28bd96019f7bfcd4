"""Two-party secure matrix products over Z_2^64: SeSoRec's SSMM and the Beaver product, one interface.

Party 0 holds ``P`` (a x b), party 1 holds ``Q`` (b x c), both as fixed-point ring elements
(uint64); each :class:`SecureMatMul` leaves them with additive shares of ``P Q`` (at the sum of
the two operands' fixed-point scales; the caller truncates). Choose one by name from
:data:`MATMULS`: ``ssmm``, ``beaver-dealer``, ``beaver-he``.

**SSMM** (Secret Sharing based Matrix Multiplication), as in the only public formulation of
SeSoRec's protocol (FLGo's non-official implementation; research/privacy.md section A2). The
paper's own protocol text was not retrievable here (only its abstract is in the stored corpora),
so this follows the public formulation, moved from float Gaussian masks to uniform masks in
Z_2^64. Columns of P and rows of Q are split into even (``e``) and odd (``o``) halves; b is
padded to even with a zero column/row.

1. Party 0 draws a uniform ``R_p`` (a x b) and sends ``P1 = P + R_p`` and ``P2 = R_p,e + R_p,o``.
2. Party 1 draws a uniform ``R_q`` (b x c) and sends ``Q1 = R_q - Q`` and ``Q2 = R_q,e - R_q,o``
   (both messages in the same round).
3. Party 0 keeps ``M = (P + 2 R_p) Q1 + (P2 + R_p,o) Q2``; party 1 keeps
   ``N = P1 (2 Q - R_q) - P2 (Q2 + R_q,e)``. Then ``M + N = P Q`` (mod 2^64).

Cost: one round; ``1.5 a b + 1.5 b c`` ring elements; no dealer, no HE.

Threat model and leak: semi-honest parties. SSMM is **not** simulation-secure: party 1 computes
``P1_e + P1_o - P2 = P_e + P_o`` (the sum of every adjacent column pair of P) and party 0 computes
``Q2 - (Q1_e - Q1_o) = Q_e - Q_o`` (the difference of every adjacent row pair of Q)
(:func:`ssmm_leak_left`, :func:`ssmm_leak_right`). Everything else a party sees is masked by a
uniform ring element.

**Beaver** (:mod:`aisec.crypto.beaver`): party 0 sends ``P - U``, party 1 sends ``Q - V`` for a
triple ``(U, V, z0 + z1 = U V)``; one round, ``a b + b c`` ring elements online. Triples come
from a dealer (``beaver-dealer``: a third party that must not collude; in-process only) or from
the two parties with HE (``beaver-he``: ``b c`` ciphertexts out, ``a c`` back and ``a b c``
plaintext-ciphertext products at party 0 per product). Each message is its owner's input masked
by a uniform ring element, so neither party learns anything about the other's operand.

Reference: Chen, Li, Wu, Hong, Wang, Zhou, "Secure Social Recommendation based on Secret
Sharing", ECAI 2020 (arXiv 2002.02088), SSMM; FLGo's "non-official implementation of SeSoRec";
Beaver, CRYPTO 1991; Mohassel and Zhang, "SecureML", IEEE S&P 2017.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np

from aisec.crypto.beaver import Dealer, he_private_triple, private_product
from aisec.crypto.he import HEPublicKey, HESecretKey
from aisec.errors import ParameterError, PeerError
from aisec.registry import Registry
from aisec.rng import CryptoRandom, SecureRandom
from aisec.transport import Channel

__all__ = [
    "SecureMatMul",
    "SSMM",
    "BeaverDealerMatMul",
    "BeaverHEMatMul",
    "MATMULS",
    "make_matmul",
    "ssmm_leak_left",
    "ssmm_leak_right",
]

_U = np.uint64


class SecureMatMul(ABC):
    """Shares of ``P Q`` for ``P`` at party 0 and ``Q`` at party 1.

    ``observe`` (optional) is called with ``(step, message)`` for every message this party
    receives, so a run can record a party's view for the leakage attacks.
    """

    name = ""
    rounds_per_product = 1

    def __init__(self) -> None:
        self.observe: Callable[[str, dict[str, Any]], None] | None = None

    @abstractmethod
    def multiply(
        self, index: int, ch: Channel, mine: np.ndarray, peer_shape: tuple[int, int], step: str
    ) -> np.ndarray:
        """This party's uint64 share of ``P Q``.

        Args:
            index: 0 (holds P, a x b) or 1 (holds Q, b x c).
            ch: channel to the other party.
            mine: this party's operand, uint64.
            peer_shape: the other operand's shape.
            step: the message name prefix.
        Returns:
            (a, c) uint64 share.
        """

    @abstractmethod
    def online_elements(self, a: int, b: int, c: int) -> int:
        """Ring elements both parties send per product in the online phase (analytic)."""

    def _seen(self, step: str, msg: dict[str, Any]) -> None:
        if self.observe is not None:
            self.observe(step, msg)


def _check_shapes(
    index: int, mine: np.ndarray, peer_shape: tuple[int, int]
) -> tuple[int, int, int]:
    if index not in (0, 1):
        raise ParameterError("index", "must be 0 or 1", index)
    if mine.ndim != 2 or len(peer_shape) != 2:
        raise ParameterError("operands", "must be matrices", (mine.shape, peer_shape))
    a, b = mine.shape if index == 0 else peer_shape
    b2, c = peer_shape if index == 0 else mine.shape
    if b != b2:
        raise ParameterError("operands", "inner dimensions must agree", (a, b, b2, c))
    return int(a), int(b), int(c)


def _get(
    ch: Channel, step: str, msg: dict[str, Any], name: str, shape: tuple[int, ...]
) -> np.ndarray:
    arr = msg.get(name)
    if not isinstance(arr, np.ndarray) or arr.dtype != _U or arr.shape != tuple(shape):
        got = getattr(arr, "shape", type(arr).__name__)
        raise PeerError(
            ch.peer, step, f"`{name}` must be uint64 of shape {tuple(shape)}; got {got}"
        )
    return arr


class SSMM(SecureMatMul):
    """SeSoRec's SSMM in Z_2^64 (see the module docstring for the steps and the leak)."""

    name = "ssmm"

    def __init__(self, rng: CryptoRandom | None = None) -> None:
        super().__init__()
        self.rng = rng or SecureRandom()

    def online_elements(self, a: int, b: int, c: int) -> int:
        b = b + (b % 2)
        return a * b + a * (b // 2) + b * c + (b // 2) * c

    def multiply(
        self, index: int, ch: Channel, mine: np.ndarray, peer_shape: tuple[int, int], step: str
    ) -> np.ndarray:
        mine = np.asarray(mine, dtype=_U)
        a, b, c = _check_shapes(index, mine, peer_shape)
        pad = b % 2
        bb = b + pad
        two = _U(2)
        if index == 0:
            p = np.concatenate([mine, np.zeros((a, pad), _U)], axis=1) if pad else mine
            rp = self.rng.uint64((a, bb))
            p2 = rp[:, 0::2] + rp[:, 1::2]
            ch.send(step, {"p1": p + rp, "p2": p2})
            msg = ch.recv(step)
            self._seen(step, msg)
            q1 = _get(ch, step, msg, "q1", (bb, c))
            q2 = _get(ch, step, msg, "q2", (bb // 2, c))
            return (p + two * rp) @ q1 + (p2 + rp[:, 1::2]) @ q2
        q = np.concatenate([mine, np.zeros((pad, c), _U)], axis=0) if pad else mine
        rq = self.rng.uint64((bb, c))
        q2 = rq[0::2] - rq[1::2]
        ch.send(step, {"q1": rq - q, "q2": q2})
        msg = ch.recv(step)
        self._seen(step, msg)
        p1 = _get(ch, step, msg, "p1", (a, bb))
        p2 = _get(ch, step, msg, "p2", (a, bb // 2))
        return p1 @ (two * q - rq) - p2 @ (q2 + rq[0::2])


def ssmm_leak_right(q1: np.ndarray, q2: np.ndarray) -> np.ndarray:
    """What party 0 computes from party 1's SSMM message: ``Q_e - Q_o`` (b/2 x c), uint64."""
    q1 = np.asarray(q1, dtype=_U)
    return np.asarray(q2, dtype=_U) - (q1[0::2] - q1[1::2])


def ssmm_leak_left(p1: np.ndarray, p2: np.ndarray) -> np.ndarray:
    """What party 1 computes from party 0's SSMM message: ``P_e + P_o`` (a x b/2), uint64."""
    p1 = np.asarray(p1, dtype=_U)
    return p1[:, 0::2] + p1[:, 1::2] - np.asarray(p2, dtype=_U)


class BeaverDealerMatMul(SecureMatMul):
    """Beaver matrix product with triples from a trusted :class:`~aisec.crypto.beaver.Dealer`.

    Both parties' instances share one dealer and must run the same products in the same order
    (triples are matched by a per-instance counter).
    """

    name = "beaver-dealer"

    def __init__(self, dealer: Dealer) -> None:
        super().__init__()
        self.dealer = dealer
        self._count = 0

    def online_elements(self, a: int, b: int, c: int) -> int:
        return a * b + b * c

    def multiply(
        self, index: int, ch: Channel, mine: np.ndarray, peer_shape: tuple[int, int], step: str
    ) -> np.ndarray:
        mine = np.asarray(mine, dtype=_U)
        a, b, c = _check_shapes(index, mine, peer_shape)
        self._count += 1
        t = self.dealer.private_triple(index, f"{step}#{self._count}", "matmul", (a, b), (b, c))
        return private_product(index, ch, mine, tuple(peer_shape), t, "matmul", step)


class BeaverHEMatMul(SecureMatMul):
    """Beaver matrix product with triples the two parties make with HE, right before each
    product (the offline messages are counted under ``<step>:triple:*``)."""

    name = "beaver-he"

    def __init__(self, sk: HESecretKey, peer_pk: HEPublicKey, rng: CryptoRandom | None = None):
        super().__init__()
        self.sk, self.peer_pk = sk, peer_pk
        self.rng = rng or SecureRandom()

    def online_elements(self, a: int, b: int, c: int) -> int:
        return a * b + b * c

    def multiply(
        self, index: int, ch: Channel, mine: np.ndarray, peer_shape: tuple[int, int], step: str
    ) -> np.ndarray:
        mine = np.asarray(mine, dtype=_U)
        a, b, c = _check_shapes(index, mine, peer_shape)
        t = he_private_triple(
            index, ch, self.sk, self.peer_pk, "matmul", (a, b), (b, c), f"{step}:triple", self.rng
        )
        return private_product(index, ch, mine, tuple(peer_shape), t, "matmul", step)


MATMULS: Registry[type[SecureMatMul]] = Registry("secure matrix product")
MATMULS.add("ssmm", SSMM, summary="SeSoRec's SSMM: no dealer, no HE, 1.5(ab+bc) elements; leaks")
MATMULS.add("beaver-dealer", BeaverDealerMatMul, summary="Beaver triples from a trusted dealer")
MATMULS.add("beaver-he", BeaverHEMatMul, summary="Beaver triples made by the parties with HE")


def make_matmul(
    name: str,
    *,
    dealer: Dealer | None = None,
    sk: HESecretKey | None = None,
    peer_pk: HEPublicKey | None = None,
    rng: CryptoRandom | None = None,
) -> SecureMatMul:
    """The product named ``name`` with what it needs (a dealer, or this party's HE key and the
    peer's public key)."""
    cls = MATMULS.get(name)
    if cls is SSMM:
        return SSMM(rng)
    if cls is BeaverDealerMatMul:
        if dealer is None:
            raise ParameterError(
                "matmul", "beaver-dealer needs a dealer (in-process runs only)", name
            )
        return BeaverDealerMatMul(dealer)
    if sk is None or peer_pk is None:
        raise ParameterError("matmul", "beaver-he needs this party's HE key and the peer's", name)
    return BeaverHEMatMul(sk, peer_pk, rng)
