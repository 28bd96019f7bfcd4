"""Beaver products in Z_2^64: matrix (``matmul``) and element-wise (``mul``) triples from a dealer
or made by the two parties with additively homomorphic encryption, and the online products.

Two kinds of product, both over ring elements (uint64, fixed point is the caller's business):

* **private inputs** (:func:`private_product`): party 0 holds ``X``, party 1 holds ``Y``; they
  end with additive shares of ``op(X, Y)``. Triple: party 0 holds a uniform ``U`` and ``z0``,
  party 1 a uniform ``V`` and ``z1``, ``z0 + z1 = op(U, V)``. Party 0 sends ``E = X - U``,
  party 1 sends ``F = Y - V`` (one round, both at once); party 0 keeps ``op(X, F) + z0``,
  party 1 keeps ``op(E, V) + z1``. Their sum is ``EF + UF + EV + UV = XY``.
* **shared inputs** (:func:`shared_product`): ``X = X0 + X1`` and ``Y = Y0 + Y1``; triple
  ``(A_i, B_i, C_i)`` with ``C = op(A, B)``. Both open ``E = X - A`` and ``F = Y - B``;
  party i keeps ``C_i + op(E, B_i) + op(A_i, F)`` and party 0 adds ``op(E, F)``.

Triples come from a :class:`Dealer` (a trusted third party that must not collude with either
party; in this implementation the dealer runs in the parties' process, so it serves in-process
runs and benchmarks, and its traffic is counted analytically, see :meth:`Dealer.offline_bytes`)
or from :func:`he_private_triple` / :func:`he_shared_triple`, which the two parties run over
their channel with HE (SecureML's LHE offline phase extended from matrix-vector to
matrix-matrix: one side sends its uniform operand encrypted under its own key, the other
returns ``[[op(U, V) + R]]`` with ``R`` sigma = 40 bits wider than the sum and keeps ``-R``).

Reference: Beaver, "Efficient Multiparty Protocols Using Circuit Randomization", CRYPTO 1991;
Mohassel and Zhang, "SecureML", IEEE S&P 2017, section 4.2 (LHE-generated triples).

Threat model: semi-honest parties. With a dealer, a party sees only ``E``/``F``, which are its
peer's input masked by a uniform ring element (perfect hiding); the dealer learns nothing about
the inputs but could break privacy if it colluded. With HE triples, a party sees ciphertexts under
its peer's key (IND-CPA) and values masked statistically (distance 2^-40); no third party.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from aisec.crypto.h2s import random_masks
from aisec.crypto.he import HEPublicKey, HESecretKey
from aisec.crypto.sharing import STAT_SIGMA
from aisec.crypto.triples import _dot_rows
from aisec.errors import ParameterError, PeerError
from aisec.rng import CryptoRandom, SecureRandom
from aisec.transport import Channel

__all__ = [
    "Op",
    "ring_op",
    "Dealer",
    "PrivateTriple",
    "SharedTriple",
    "private_product",
    "shared_product",
    "he_private_triple",
    "he_shared_triple",
]

Op = Literal["matmul", "mul"]
_MOD = 1 << 64


def ring_op(op: Op, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``x @ y`` or ``x * y`` in Z_2^64 (uint64 wraps)."""
    x = np.asarray(x, dtype=np.uint64)
    y = np.asarray(y, dtype=np.uint64)
    if op == "matmul":
        return np.matmul(x, y)
    if op == "mul":
        return x * y
    raise ParameterError("op", "must be 'matmul' or 'mul'", op)


def _out_shape(op: Op, sx: tuple[int, ...], sy: tuple[int, ...]) -> tuple[int, ...]:
    if op == "matmul":
        if len(sx) != 2 or len(sy) != 2 or sx[1] != sy[0]:
            raise ParameterError("shapes", "must be (a, b) and (b, c) for matmul", (sx, sy))
        return (sx[0], sy[1])
    if sx != sy:
        raise ParameterError("shapes", "must be equal for an element-wise product", (sx, sy))
    return tuple(sx)


@dataclass(frozen=True)
class PrivateTriple:
    """One party's half of a private-input triple: ``mask`` (U at party 0, V at party 1), ``z``."""

    mask: np.ndarray
    z: np.ndarray


@dataclass(frozen=True)
class SharedTriple:
    """One party's shares ``(a, b, c)`` of a triple with ``c = op(a, b)``."""

    a: np.ndarray
    b: np.ndarray
    c: np.ndarray


class Dealer:
    """A trusted dealer serving both parties of one run (thread-safe, in-process).

    Each triple is named by a ``key`` both parties use for the same product; the first party to
    ask makes the triple and leaves the other half for its peer.

    Args:
        rng: randomness (default: the operating system's CSPRNG).
    """

    def __init__(self, rng: CryptoRandom | None = None) -> None:
        self.rng = rng or SecureRandom()
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, int], Any] = {}
        self._sent = [0, 0]

    def offline_bytes(self, index: int) -> int:
        """Bytes the dealer would send party ``index`` so far: 16-byte PRG seeds for its uniform
        values and the correction ``z`` (or ``c``) of party 1 in full."""
        return self._sent[index]

    def _take(self, index: int, key: str, make: Any) -> Any:
        if index not in (0, 1):
            raise ParameterError("index", "must be 0 or 1", index)
        with self._lock:
            mine = self._pending.pop((key, index), None)
            if mine is None:
                halves = make()
                self._pending[(key, 1 - index)] = halves[1 - index]
                mine = halves[index]
        return mine

    def private_triple(
        self, index: int, key: str, op: Op, shape_x: tuple[int, ...], shape_y: tuple[int, ...]
    ) -> PrivateTriple:
        """This party's half of a private-input triple for ``op(X (shape_x), Y (shape_y))``."""
        out = _out_shape(op, shape_x, shape_y)

        def make() -> tuple[PrivateTriple, PrivateTriple]:
            u, v = self.rng.uint64(shape_x), self.rng.uint64(shape_y)
            z0 = self.rng.uint64(out)
            z1 = ring_op(op, u, v) - z0
            self._sent[0] += 32  # seeds of U and z0
            self._sent[1] += 16 + 8 * int(np.prod(out))  # seed of V, z1 in full
            return PrivateTriple(u, z0), PrivateTriple(v, z1)

        return self._take(index, key, make)

    def shared_triple(
        self, index: int, key: str, op: Op, shape_x: tuple[int, ...], shape_y: tuple[int, ...]
    ) -> SharedTriple:
        """This party's shares of a triple ``(A, B, op(A, B))`` for shared inputs."""
        out = _out_shape(op, shape_x, shape_y)

        def make() -> tuple[SharedTriple, SharedTriple]:
            a0, a1 = self.rng.uint64(shape_x), self.rng.uint64(shape_x)
            b0, b1 = self.rng.uint64(shape_y), self.rng.uint64(shape_y)
            c0 = self.rng.uint64(out)
            c1 = ring_op(op, a0 + a1, b0 + b1) - c0
            self._sent[0] += 16 * 4
            self._sent[1] += 16 * 2 + 8 * int(np.prod(out))
            return SharedTriple(a0, b0, c0), SharedTriple(a1, b1, c1)

        return self._take(index, key, make)


def _recv_array(ch: Channel, step: str, name: str, shape: tuple[int, ...]) -> np.ndarray:
    msg = ch.recv(step)
    arr = msg.get(name)
    if not isinstance(arr, np.ndarray) or arr.dtype != np.uint64 or arr.shape != tuple(shape):
        got = getattr(arr, "shape", type(arr).__name__)
        raise PeerError(
            ch.peer, step, f"`{name}` must be uint64 of shape {tuple(shape)}; got {got}"
        )
    return arr


def private_product(
    index: int,
    ch: Channel,
    mine: np.ndarray,
    peer_shape: tuple[int, ...],
    triple: PrivateTriple,
    op: Op,
    step: str,
) -> np.ndarray:
    """Shares of ``op(X, Y)``: party 0 passes ``X`` as ``mine``, party 1 passes ``Y``.

    Args:
        index: 0 (left operand) or 1 (right operand).
        ch: channel to the other party.
        mine: uint64 ring elements of this party's operand.
        peer_shape: the shape of the other party's operand.
        triple: this party's half of a private triple of matching shapes.
        op: ``"matmul"`` or ``"mul"``.
        step: the message name.
    Returns:
        this party's uint64 share of ``op(X, Y)``.
    """
    mine = np.asarray(mine, dtype=np.uint64)
    if triple.mask.shape != mine.shape:
        raise ParameterError("triple", f"mask must have shape {mine.shape}", triple.mask.shape)
    ch.send(step, {"d": mine - triple.mask})
    other = _recv_array(ch, step, "d", peer_shape)
    if index == 0:
        return ring_op(op, mine, other) + triple.z
    return ring_op(op, other, triple.mask) + triple.z


def shared_product(
    index: int,
    ch: Channel,
    x: np.ndarray,
    y: np.ndarray,
    triple: SharedTriple,
    op: Op,
    step: str,
) -> np.ndarray:
    """This party's share of ``op(X, Y)`` from its shares ``x`` of X and ``y`` of Y."""
    x = np.asarray(x, dtype=np.uint64)
    y = np.asarray(y, dtype=np.uint64)
    if triple.a.shape != x.shape or triple.b.shape != y.shape:
        raise ParameterError("triple", "shapes must match the operands", (x.shape, y.shape))
    e_mine, f_mine = x - triple.a, y - triple.b
    ch.send(step, {"e": e_mine, "f": f_mine})
    msg = ch.recv(step)
    e_peer, f_peer = msg.get("e"), msg.get("f")
    for name, arr, shape in (("e", e_peer, x.shape), ("f", f_peer, y.shape)):
        if not isinstance(arr, np.ndarray) or arr.dtype != np.uint64 or arr.shape != shape:
            raise PeerError(ch.peer, step, f"`{name}` must be uint64 of shape {shape}")
    e, f = e_mine + e_peer, f_mine + f_peer
    out = triple.c + ring_op(op, e, triple.b) + ring_op(op, triple.a, f)
    if index == 0:
        out = out + ring_op(op, e, f)
    return out


# -- HE-made triples -------------------------------------------------------------------------


def _ring(values: list[int]) -> np.ndarray:
    return np.array([v % _MOD for v in values], dtype=np.uint64)


def _he_cross(
    index: int,
    ch: Channel,
    sk: HESecretKey,
    peer_pk: HEPublicKey,
    left: np.ndarray | None,
    right: np.ndarray | None,
    peer_has_right: bool,
    op: Op,
    out_shape: tuple[int, ...],
    step: str,
    rng: CryptoRandom,
) -> np.ndarray:
    """Shares of ``op(left_i, right_j)`` for ``i != j`` where both exist.

    Each party holding a ``right`` sends it encrypted under its own key; each party holding a
    ``left`` whose peer sent a ``right`` returns ``[[op(left, right_peer) + R]]`` and keeps
    ``-R``; the receiver decrypts and reduces mod 2^64. A matrix product travels column by
    column of the result (one ciphertext vector per column).
    """
    pk = sk.public
    if right is not None:
        ch.send(f"{step}:enc", {"ct": pk.ciphertexts_to_bytes(pk.encrypt(right.ravel().tolist()))})
    share = np.zeros(out_shape, dtype=np.uint64)
    if peer_has_right:
        msg = ch.recv(f"{step}:enc")
        try:
            got = peer_pk.ciphertexts_from_bytes(msg["ct"])
        except (KeyError, ParameterError) as exc:
            raise PeerError(ch.peer, f"{step}:enc", f"malformed ciphertexts ({exc})") from None
        if left is not None:
            ry = (left.shape[1], out_shape[1]) if op == "matmul" else tuple(left.shape)
            if peer_pk.count(got) != int(np.prod(ry)):
                raise PeerError(ch.peer, f"{step}:enc", "wrong number of ciphertexts")
            inner = left.shape[1] if op == "matmul" else 1
            bits = 128 + max(inner, 1).bit_length() + STAT_SIGMA
            out: dict[str, Any] = {}
            if op == "matmul":
                for k in range(ry[1]):
                    col = peer_pk.take(got, list(range(k, ry[0] * ry[1], ry[1])))
                    masks = random_masks(rng, out_shape[0], bits)
                    ct = peer_pk.add(_dot_rows(peer_pk, left, col), peer_pk.encrypt(masks))
                    out[f"c{k}"] = peer_pk.ciphertexts_to_bytes(ct)
                    share[:, k] -= _ring(masks)
            else:
                masks = random_masks(rng, int(np.prod(out_shape)), bits)
                ct = peer_pk.add(
                    peer_pk.mul_plain(got, left.ravel().tolist()), peer_pk.encrypt(masks)
                )
                out["c0"] = peer_pk.ciphertexts_to_bytes(ct)
                share -= _ring(masks).reshape(out_shape)
            ch.send(f"{step}:ret", out)
    if right is not None and (left is not None or not peer_has_right):
        msg = ch.recv(f"{step}:ret")
        cols = out_shape[1] if op == "matmul" else 1
        try:
            vals = [sk.decrypt(pk.ciphertexts_from_bytes(msg[f"c{k}"])) for k in range(cols)]
        except (KeyError, ParameterError) as exc:
            raise PeerError(ch.peer, f"{step}:ret", f"malformed ciphertexts ({exc})") from None
        if sum(len(v) for v in vals) != int(np.prod(out_shape)):
            raise PeerError(ch.peer, f"{step}:ret", "wrong number of values")
        if op == "matmul":
            got_m = np.stack([_ring(v) for v in vals], axis=1)
        else:
            got_m = _ring(vals[0]).reshape(out_shape)
        share = share + got_m
    return share


def he_private_triple(
    index: int,
    ch: Channel,
    sk: HESecretKey,
    peer_pk: HEPublicKey,
    op: Op,
    shape_x: tuple[int, ...],
    shape_y: tuple[int, ...],
    step: str,
    rng: CryptoRandom | None = None,
) -> PrivateTriple:
    """A private-input triple made by the two parties with HE (both call it at once).

    Party 1 sends ``[[V]]`` under its key (|V| ciphertexts); party 0 returns
    ``[[op(U, V) + R]]`` (|out| ciphertexts), costing ``a b c`` (matmul) or ``|U|`` (mul)
    plaintext-ciphertext products at party 0.
    """
    rng = rng or SecureRandom()
    out = _out_shape(op, shape_x, shape_y)
    if index == 0:
        u = rng.uint64(shape_x)
        return PrivateTriple(u, _he_cross(0, ch, sk, peer_pk, u, None, True, op, out, step, rng))
    v = rng.uint64(shape_y)
    cross = _he_cross(1, ch, sk, peer_pk, None, v, False, op, out, step, rng)
    return PrivateTriple(v, cross)


def he_shared_triple(
    index: int,
    ch: Channel,
    sk: HESecretKey,
    peer_pk: HEPublicKey,
    op: Op,
    shape_x: tuple[int, ...],
    shape_y: tuple[int, ...],
    step: str,
    rng: CryptoRandom | None = None,
) -> SharedTriple:
    """Shares of a triple ``(A, B, op(A, B))`` made with HE: the local terms ``op(A_i, B_i)`` are
    free, the cross terms ``op(A_i, B_j)`` go through :func:`_he_cross` (both directions)."""
    rng = rng or SecureRandom()
    out = _out_shape(op, shape_x, shape_y)
    a, b = rng.uint64(shape_x), rng.uint64(shape_y)
    cross = _he_cross(index, ch, sk, peer_pk, a, b, True, op, out, step, rng)
    return SharedTriple(a, b, ring_op(op, a, b) + cross)
