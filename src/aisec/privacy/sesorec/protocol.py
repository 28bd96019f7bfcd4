"""SeSoRec: SoReg training between a rating platform (A: ratings R, factors U and V) and a
social platform (B: trust graph S), in two modes over one :class:`~aisec.transport.Channel`.

Both modes run the update rule of :mod:`aisec.privacy.sesorec.model` on the same public batch
order (a permutation of the shared user list fixed by the recipe's seed). B holds the social
matrix ``M = D + E - S - S^T``; the social gradient of a batch ``b`` is ``gamma U M[:, b]``.

``paper`` (the paper's protocol). A keeps U and V in the clear. Each batch:
    1. A and B run one secure product (``matmul``: SSMM by default, or a Beaver product) of A's
       ``U`` (K x I, fixed point) and B's ``M[:, b]`` (I x |b|), leaving shares of
       ``Z = U M[:, b]``;
    2. B sends its share to A, who now holds ``Z`` in the clear (the paper's "A receives the
       social terms it needs"), computes the rating gradient locally and updates U_b and V.
    The paper computes ``U (D + E)`` and ``U S^T`` as two products; here they are one product
    with B's batch columns of ``M`` (same inputs, one product's traffic, and A no longer sees
    the degree term on its own).

``hardened``. U and V are additively shared in Z_2^64 between A and B from the first batch to
the last; A learns only the final U and V. Each batch, on shares: ``P = U_b^T V`` (Beaver,
shared x shared), the residual ``E = W (R_b - mu) - W P`` where the rated-cell mask ``W`` and
``R`` stay A's private inputs (element-wise Beaver product with A's ``W``), ``V E^T`` and
``U_b E`` (Beaver), ``Z = U M[:, b]`` (A's share of U times B's ``M[:, b]`` through the chosen
product; B multiplies its own share locally) and the update, truncated locally (SecureML). The
residuals are dense over the batch's items, so B does not learn which cells A has ratings for.
SSMM is refused here: it would hand A the differences of adjacent rows of ``M[:, b]``.

Threat model: semi-honest platforms that do not collude (with each other, or with the dealer
of ``beaver-dealer`` triples). Public: the shared user id list, the item count, K, the batch
order, the hyper-parameters, whether trust weights are integers.

What each mode reveals:

* ``paper``: A learns ``Z = U M[:, b]`` for every batch (K equations per user per epoch on
  B's graph, with A's own U known), and with SSMM also ``M_e - M_o``, the differences of
  adjacent rows of ``M[:, b]``; for a sparse graph that alone gives away nearly every edge
  (:mod:`aisec.privacy.sesorec.attack` recovers S from A's view). B learns ``U_e + U_o``,
  the sums of adjacent columns of U, every batch (SSMM), and nothing with a Beaver product.
* ``hardened``: during training each party sees only uniform ring elements (Beaver openings
  ``X - A``) and its own uniform shares, so A's view is independent of S until the end; the
  same attack on it does no better than chance. At the end A learns the final U and V (by
  design; social regularisation pulls trusted users' factors together, which the final U
  reflects: measured separately as ``edge_recovery_final_u``). B learns nothing.

Fixed point: ``frac_bits`` fractional bits in Z_2^64. Truncation is SecureML's local
truncation, wrong by a huge value with probability about 2^(l + 1 - 64) per element for a value
of ``l`` bits at double scale: with the default 12 bits and values below 2^7 (products such as
``V E^T`` before scaling), about 2^-32 per element. A failure shows as a blown-up factor and an
RMSE far from plaintext SoReg's, which every run reports beside it.

Reference: Chen, Li, Wu, Hong, Wang, Zhou, "Secure Social Recommendation based on Secret
Sharing", ECAI 2020 (arXiv 2002.02088); Mohassel and Zhang, "SecureML", IEEE S&P 2017.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from aisec.config import StrictModel
from aisec.crypto.beaver import (
    Dealer,
    Op,
    PrivateTriple,
    SharedTriple,
    he_private_triple,
    he_shared_triple,
    private_product,
    shared_product,
)
from aisec.crypto.fixedpoint import FixedPoint
from aisec.crypto.sharing import truncate_ring_share
from aisec.errors import ConfigError, DataError, InputFileError, ParameterError, PeerError
from aisec.io import load_safetensors, save_safetensors
from aisec.privacy.sesorec.data import Edges, Ratings, UserIndex, laplacian
from aisec.privacy.sesorec.model import (
    Factors,
    apply_update,
    centred_rows,
    init_factors,
    rating_gradients,
    user_batches,
)
from aisec.privacy.ssmm import SecureMatMul, make_matmul, ssmm_leak_left, ssmm_leak_right
from aisec.rng import SecureRandom
from aisec.transport import Channel

__all__ = [
    "PROTOCOL",
    "MODES",
    "SeSoRecParams",
    "RatingInput",
    "SocialInput",
    "TrainReport",
    "View",
    "train_party",
    "analytic_bytes_per_batch",
]

PROTOCOL = "sesorec-1"
MODES = ("paper", "hardened")
_log = logging.getLogger(__name__)
_U64 = np.uint64
_LOCAL = {"timeout_s", "accept_timeout_s", "handshake_timeout_s", "record_view_epochs"}


class SeSoRecParams(StrictModel):
    """Protocol and training parameters; both platforms must use the same values (apart from
    the local ones: timeouts and view recording)."""

    mode: Literal["paper", "hardened"] = "paper"
    matmul: Literal["ssmm", "beaver-dealer", "beaver-he"] = "ssmm"
    factors: int = Field(10, ge=1, le=512)
    epochs: int = Field(10, ge=1, le=10_000)
    batch_size: int = Field(64, ge=1)
    learning_rate: float = Field(0.01, gt=0)
    l2: float = Field(0.3, ge=0)
    social: float = Field(1.0, ge=0, description="gamma, the weight of the social term")
    init_scale: float = Field(0.1, gt=0)
    seed: int = Field(0, ge=0, description="initial factors and batch order (public)")
    frac_bits: int = Field(12, ge=4, le=24)
    max_batches: int | None = Field(None, ge=1, description="stop each epoch after this many")
    he_scheme: str = "gmpy2-paillier"
    key_bits: int = Field(1024, ge=512)
    timeout_s: float = Field(300.0, gt=0)
    accept_timeout_s: float = Field(300.0, gt=0)
    handshake_timeout_s: float = Field(10.0, gt=0)
    record_view_epochs: int = Field(0, ge=0, description="A records its view for this many")

    def agreed(self) -> dict[str, Any]:
        return {k: v for k, v in self.model_dump(mode="json").items() if k not in _LOCAL}

    def check(self) -> None:
        if self.mode == "hardened" and self.matmul == "ssmm":
            raise ParameterError(
                "matmul",
                "must be beaver-dealer or beaver-he in hardened mode (SSMM reveals the "
                "differences of adjacent rows of S to the rating platform)",
                self.matmul,
            )


@dataclass(frozen=True)
class RatingInput:
    """The rating platform's data: its training ratings on the shared users."""

    users: UserIndex
    train: Ratings
    rating_range: tuple[float, float]

    def validate(self) -> None:
        if self.train.n_users != self.users.n:
            raise DataError("ratings are not indexed by the shared user list")
        if len(self.train.rating) == 0:
            raise DataError("the rating platform has no training ratings")
        self.train.validate(*self.rating_range, "rating platform")


@dataclass(frozen=True)
class SocialInput:
    """The social platform's data: trust edges on the shared users."""

    users: UserIndex
    edges: Edges

    def validate(self) -> None:
        if self.edges.n_users != self.users.n:
            raise DataError("trust edges are not indexed by the shared user list")
        self.edges.validate("social platform")


@dataclass
class TrainReport:
    role: str
    mode: str
    matmul: str
    epochs_run: int = 0
    resumed_from_epoch: int = 0
    batches: int = 0
    seconds: float = 0.0
    seconds_per_batch: list[float] = field(default_factory=list)
    bytes_per_batch: float = 0.0
    rounds_per_batch: float = 0.0
    offline_bytes: int = 0
    comm: dict[str, Any] = field(default_factory=dict)


@dataclass
class View:
    """What the rating platform saw, batch by batch (for the attacks): the batch's users, its
    own U (its share in hardened mode) before the update, the social term it got (its share in
    hardened mode), and ``D``, the adjacent-row differences it can compute from B's message in
    the social product (``Q_e - Q_o`` for SSMM; the same formula on Beaver's masked ``Q - V``).
    """

    mode: str
    matmul: str
    n_users: int
    batches: list[np.ndarray] = field(default_factory=list)
    u: list[np.ndarray] = field(default_factory=list)
    z: list[np.ndarray] = field(default_factory=list)
    d: list[np.ndarray] = field(default_factory=list)
    final_u: np.ndarray | None = None
    #: the social platform's side (not saved): from A's message in the first batch's social
    #: product, ``P_e + P_o`` (SSMM's leak of U's adjacent column sums; the same formula on
    #: Beaver's masked ``P - U``), as int64 ring values at ``frac_bits``
    social_u_pair_sums: np.ndarray | None = None

    def save(self, path: str | Path) -> Path:
        t: dict[str, np.ndarray] = {}
        for k, (b, u, z, d) in enumerate(zip(self.batches, self.u, self.z, self.d, strict=True)):
            t[f"{k}.batch"], t[f"{k}.u"] = b.astype(np.int64), u.astype(np.float32)
            t[f"{k}.z"], t[f"{k}.d"] = z.astype(np.float64), d.astype(np.int64)
        if self.final_u is not None:
            t["final_u"] = self.final_u.astype(np.float64)
        meta = {"mode": self.mode, "matmul": self.matmul, "n_users": str(self.n_users)}
        return save_safetensors(path, t, metadata=meta)

    @classmethod
    def load(cls, path: str | Path) -> View:
        from safetensors import safe_open

        t = load_safetensors(path, framework="np")
        with safe_open(str(path), framework="np") as fh:
            meta = fh.metadata() or {}
        if not {"mode", "matmul", "n_users"} <= meta.keys():
            raise InputFileError(path, "not a SeSoRec view file")
        v = cls(meta["mode"], meta["matmul"], int(meta["n_users"]))
        k = 0
        while f"{k}.batch" in t:
            v.batches.append(t[f"{k}.batch"])
            v.u.append(t[f"{k}.u"].astype(np.float64))
            v.z.append(t[f"{k}.z"])
            v.d.append(t[f"{k}.d"])
            k += 1
        v.final_u = t.get("final_u")
        return v


def analytic_bytes_per_batch(
    mode: str, matmul: str, k: int, n_users: int, n_items: int, nb: int
) -> int:
    """Bytes both platforms send per batch in the online phase, payload only (8 per ring
    element); HE triple traffic (``beaver-he``) is extra and counted separately."""
    i = n_users
    if matmul == "ssmm":
        ib = i + i % 2
        social = ib * k + (ib // 2) * k + ib * nb + (ib // 2) * nb
    else:
        social = k * i + i * nb
    if mode == "paper":
        return 8 * (social + k * nb)
    j = n_items
    shared = 2 * (nb * k + k * j) + 2 * nb * j + 2 * (k * j + j * nb) + 2 * (k * nb + nb * j)
    return 8 * (social + shared)


# -- channel tap, triples, checkpoints ------------------------------------------------------------


class _Tap:
    """A channel proxy that hands received messages of chosen steps to ``record``."""

    def __init__(self, ch: Channel, steps: set[str], record: Callable[[str, dict], None]) -> None:
        self._ch, self._steps, self._record = ch, steps, record
        self.peer, self.party, self.stats = ch.peer, ch.party, ch.stats

    def send(self, step: str, message: dict[str, Any]) -> None:
        self._ch.send(step, message)

    def recv(self, step: str, timeout_s: float | None = None) -> dict[str, Any]:
        msg = self._ch.recv(step, timeout_s)
        if step in self._steps:
            self._record(step, msg)
        return msg


class _Triples:
    """Triples from the dealer, or made with HE over the channel right before each product."""

    def __init__(self, index: int, ch: Channel, dealer: Dealer | None, sk: Any, peer_pk: Any):
        self.index, self.ch, self.dealer, self.sk, self.peer_pk = index, ch, dealer, sk, peer_pk
        self.count = 0

    def shared(self, op: Op, sx: tuple[int, ...], sy: tuple[int, ...], step: str) -> SharedTriple:
        self.count += 1
        if self.dealer is not None:
            return self.dealer.shared_triple(self.index, f"{step}#{self.count}", op, sx, sy)
        return he_shared_triple(
            self.index, self.ch, self.sk, self.peer_pk, op, sx, sy, f"{step}:triple"
        )

    def private(self, op: Op, sx: tuple[int, ...], sy: tuple[int, ...], step: str) -> PrivateTriple:
        self.count += 1
        if self.dealer is not None:
            return self.dealer.private_triple(self.index, f"{step}#{self.count}", op, sx, sy)
        return he_private_triple(
            self.index, self.ch, self.sk, self.peer_pk, op, sx, sy, f"{step}:triple"
        )


class _Checkpoints:
    """Per-party ``epoch-<k>.safetensors`` with this party's state after epoch k."""

    def __init__(self, root: str | Path | None) -> None:
        self.root = Path(root) if root is not None else None

    def epochs(self) -> list[int]:
        if self.root is None or not self.root.is_dir():
            return []
        out = []
        for p in self.root.glob("epoch-*.safetensors"):
            try:
                self.load(int(p.stem.split("-")[1]))
                out.append(int(p.stem.split("-")[1]))
            except (InputFileError, OSError, ValueError, KeyError) as exc:
                _log.warning("unreadable checkpoint %s passed over (%s)", p, exc)
        return sorted(out)

    def save(self, epoch: int, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        if self.root is None:
            return
        md = {k: json.dumps(v) for k, v in meta.items()}
        save_safetensors(self.root / f"epoch-{epoch}.safetensors", arrays, metadata=md)
        for old in self.epochs():
            if old < epoch - 1:
                (self.root / f"epoch-{old}.safetensors").unlink(missing_ok=True)

    def load(self, epoch: int) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        from safetensors import safe_open

        assert self.root is not None
        path = self.root / f"epoch-{epoch}.safetensors"
        arrays = load_safetensors(path, framework="np")
        with safe_open(str(path), framework="np") as fh:
            meta = {k: json.loads(v) for k, v in (fh.metadata() or {}).items()}
        if "params" not in meta or "epoch" not in meta:
            raise InputFileError(path, "not a complete SeSoRec checkpoint")
        return arrays, meta


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


# -- the two parties -----------------------------------------------------------------------------


class _Party:
    def __init__(
        self,
        role: str,
        ch: Channel,
        params: SeSoRecParams,
        users: UserIndex,
        dealer: Dealer | None,
        view: View | None,
    ) -> None:
        self.role, self.params, self.users = role, params, users
        self.index = 0 if role == "rating" else 1
        self.raw_ch = ch
        self.view = view
        self.ch: Any = ch
        if view is not None:
            self.ch = _Tap(ch, {"b.social"}, self._record)
        self.fx = FixedPoint(params.frac_bits)
        self.f = params.frac_bits
        self.dealer = dealer
        self.k = params.factors
        self.n = users.n
        self._recorded: dict[str, Any] = {}

    def _record(self, step: str, msg: dict[str, Any]) -> None:
        self._recorded[step] = msg

    # setup ----------------------------------------------------------------------------------
    def handshake(self, mine_extra: dict[str, Any]) -> dict[str, Any]:
        mine = {
            "protocol": PROTOCOL,
            "role": self.role,
            "users": self.users.digest(),
            "n_users": self.n,
            "params": self.params.agreed(),
            **mine_extra,
        }
        self.raw_ch.send("setup", mine)
        peer = self.raw_ch.recv("setup")
        other = "social" if self.role == "rating" else "rating"
        if peer.get("protocol") != PROTOCOL or peer.get("role") != other:
            raise PeerError(
                self.raw_ch.peer,
                "setup",
                f"peer runs {peer.get('protocol')!r} as role {peer.get('role')!r}; "
                f"expected {PROTOCOL!r} as {other!r}",
            )
        if peer.get("n_users") != self.n or peer.get("users") != mine["users"]:
            raise DataError(
                "the platforms' shared user id lists differ (count or ids or order); "
                "align both platforms on the same id list"
            )
        if peer.get("params") != mine["params"]:
            diff = sorted(
                k for k in mine["params"] if mine["params"][k] != (peer.get("params") or {}).get(k)
            )
            raise ConfigError(f"recipes differ between the platforms: {', '.join(diff)}")
        return peer

    def setup_products(self) -> None:
        p = self.params
        sk = peer_pk = None
        if p.matmul == "beaver-he":
            from aisec.crypto.he import generate_he_keypair, public_key_from_bytes

            sk = generate_he_keypair(p.he_scheme, p.key_bits)
            self.raw_ch.send("keys", {"pk": sk.public.to_bytes()})
            raw = self.raw_ch.recv("keys").get("pk")
            try:
                peer_pk = public_key_from_bytes(raw, where="peer key")
            except InputFileError as exc:
                raise PeerError(self.raw_ch.peer, "keys", str(exc)) from None
        elif p.matmul == "beaver-dealer" and self.dealer is None:
            raise ParameterError(
                "matmul",
                "beaver-dealer needs a dealer, which only in-process runs have "
                "(use ssmm or beaver-he between two hosts)",
                p.matmul,
            )
        self.mm: SecureMatMul = make_matmul(p.matmul, dealer=self.dealer, sk=sk, peer_pk=peer_pk)
        self.triples = _Triples(self.index, self.ch, self.dealer, sk, peer_pk)

    def agree_resume(self, ckpt: _Checkpoints) -> int:
        mine = ckpt.epochs()
        self.raw_ch.send("resume", {"epochs": mine})
        theirs = self.raw_ch.recv("resume").get("epochs", [])
        common = sorted(set(mine) & {int(e) for e in theirs})
        return common[-1] if common else 0

    # shared-value helpers ---------------------------------------------------------------------
    def trunc(self, x: np.ndarray, bits: int | None = None) -> np.ndarray:
        return truncate_ring_share(x, self.f if bits is None else bits, self.index)

    def const(self, c: float) -> np.uint64:
        return np.array([int(round(c * (1 << self.f)))], dtype=np.int64).view(_U64)[0]

    def shared(self, op: Op, x: np.ndarray, y: np.ndarray, step: str) -> np.ndarray:
        t = self.triples.shared(op, x.shape, y.shape, step)
        return shared_product(self.index, self.ch, x, y, t, op, step)

    def private(self, op: Op, mine: np.ndarray, peer_shape: tuple[int, ...], step: str):
        sx, sy = (mine.shape, peer_shape) if self.index == 0 else (peer_shape, mine.shape)
        t = self.triples.private(op, sx, sy, step)
        return private_product(self.index, self.ch, mine, peer_shape, t, op, step)

    def _hardened_update(self, b, ub, gu, gv, z) -> None:
        """The update of the module docstring on this party's shares (public constants at
        ``frac_bits``, one local truncation per value)."""
        p, nb = self.params, len(b)
        lr = p.learning_rate
        t = gu * self.const(lr) + ub * self.const(-lr * p.l2) + z * self.const(-lr * p.social)
        self.U[:, b] = ub + self.trunc(t)
        tv = gv * self.const(lr) + self.V * self.const(-lr * p.l2 * nb / self.n)
        self.V = self.V + self.trunc(tv)

    def leak_d(self) -> np.ndarray:
        """``D`` from B's message in the last social product (see :class:`View`)."""
        msg = self._recorded.get("b.social", {})
        if "q1" in msg:
            d = ssmm_leak_right(msg["q1"], msg["q2"])
        else:
            q = msg["d"]
            if q.shape[0] % 2:
                q = np.concatenate([q, np.zeros((1, q.shape[1]), _U64)])
            d = q[0::2] - q[1::2]
        return d.view(np.int64)


class _RatingParty(_Party):
    def __init__(self, ch, params, data: RatingInput, dealer, view) -> None:
        super().__init__("rating", ch, params, data.users, dealer, view)
        self.data = data
        self.j = data.train.n_items
        self.mu = float(data.train.rating.mean())
        self.rows = centred_rows(data.train, self.mu)

    def start(self, ckpt: _Checkpoints) -> int:
        peer = self.handshake({"n_items": self.j})
        self.fs = int(peer.get("social_frac_bits", -1))
        if self.fs not in (0, self.f):
            raise PeerError(self.raw_ch.peer, "setup", f"bad social_frac_bits {self.fs!r}")
        self.setup_products()
        start = self.agree_resume(ckpt)
        p = self.params
        if start:
            arrays, meta = ckpt.load(start)
            self.check_meta(meta, ckpt)
            self.U, self.V = arrays["U"], arrays["V"]
        else:
            u, v = init_factors(self.k, self.n, self.j, p.init_scale, p.seed)
            if p.mode == "paper":
                self.U, self.V = u, v
            else:  # share the (public-seeded) initial factors
                rng = SecureRandom()
                ru, rv = rng.uint64(u.shape), rng.uint64(v.shape)
                self.raw_ch.send("init", {"u": ru, "v": rv})
                self.U = self.fx.encode_ring(u, "U") - ru
                self.V = self.fx.encode_ring(v, "V") - rv
        return start

    def check_meta(self, meta: dict[str, Any], ckpt: _Checkpoints) -> None:
        made = {k: v for k, v in self.params.agreed().items() if k != "epochs"}
        if meta.get("params") != _digest(made):
            raise ConfigError(
                f"{ckpt.root}: checkpoint was made with other parameters; "
                "use the same recipe or fresh checkpoint directories"
            )

    def batch(self, b: np.ndarray, record: bool) -> None:
        nb = len(b)
        p = self.params
        if p.mode == "paper":
            u_before = self.U.copy() if record else None
            pu = self.fx.encode_ring(self.U, "U")
            s = self.mm.multiply(0, self.ch, pu, (self.n, nb), "b.social")
            zb = self.raw_ch.recv("b.social.z").get("z")
            if not isinstance(zb, np.ndarray) or zb.dtype != _U64 or zb.shape != (self.k, nb):
                raise PeerError(self.raw_ch.peer, "b.social.z", "social share has the wrong shape")
            z = self.fx.decode_ring(s + zb) / (1 << self.fs)
            vet, ube = rating_gradients(self.U, self.V, self.rows[b], b)
            f = Factors(self.U, self.V, self.mu)
            apply_update(f, b, vet, ube, z, p.learning_rate, p.l2, p.social)
            if record:
                self._keep(b, u_before, z)
            return
        self._hardened_batch(b, record)

    def _keep(self, b: np.ndarray, u: np.ndarray, z: np.ndarray) -> None:
        assert self.view is not None
        self.view.batches.append(b.copy())
        self.view.u.append(u)
        self.view.z.append(z)
        self.view.d.append(self.leak_d())

    def _hardened_batch(self, b: np.ndarray, record: bool) -> None:
        nb = len(b)
        ub = self.U[:, b]
        pred = self.trunc(self.shared("matmul", ub.T.copy(), self.V, "b.pred"))
        rows = self.rows[b].tocoo()
        w = np.zeros((nb, self.j), dtype=_U64)
        w[rows.row, rows.col] = 1
        rc = np.zeros((nb, self.j))
        rc[rows.row, rows.col] = rows.data
        q = self.private("mul", w, (nb, self.j), "b.mask")
        e = self.fx.encode_ring(rc, "ratings") - w * pred - q
        gu = self.trunc(self.shared("matmul", self.V, e.T.copy(), "b.grad_u"))
        gv = self.trunc(self.shared("matmul", ub, e, "b.grad_v"))
        z = self.mm.multiply(0, self.ch, self.U, (self.n, nb), "b.social")
        if self.fs:
            z = self.trunc(z, self.fs)
        if record:
            self._keep(b, self.fx.decode_ring(self.U), self.fx.decode_ring(z))
        self._hardened_update(b, ub, gu, gv, z)

    def state(self) -> dict[str, np.ndarray]:
        return {"U": self.U, "V": self.V}

    def finish(self) -> Factors:
        if self.params.mode == "paper":
            return Factors(self.U, self.V, self.mu)
        msg = self.raw_ch.recv("reveal")
        u1, v1 = msg.get("u"), msg.get("v")
        if not isinstance(u1, np.ndarray) or u1.shape != self.U.shape or v1.shape != self.V.shape:
            raise PeerError(self.raw_ch.peer, "reveal", "shares have the wrong shape")
        return Factors(self.fx.decode_ring(self.U + u1), self.fx.decode_ring(self.V + v1), self.mu)


class _SocialParty(_Party):
    def __init__(self, ch, params, data: SocialInput, dealer, view=None) -> None:
        super().__init__("social", ch, params, data.users, dealer, view)
        s = data.edges.matrix()
        self.integer = bool(np.all(s.data == np.rint(s.data)))
        self.fs = 0 if self.integer else self.f
        self.m = laplacian(s).tocsc()

    def start(self, ckpt: _Checkpoints) -> int:
        peer = self.handshake({"social_frac_bits": self.fs})
        self.j = peer.get("n_items")
        if not isinstance(self.j, int) or self.j < 1:
            raise PeerError(self.raw_ch.peer, "setup", f"bad item count {self.j!r}")
        self.setup_products()
        start = self.agree_resume(ckpt)
        if start:
            arrays, meta = ckpt.load(start)
            made = {k: v for k, v in self.params.agreed().items() if k != "epochs"}
            if meta.get("params") != _digest(made):
                raise ConfigError(f"{ckpt.root}: checkpoint was made with other parameters")
            self.U, self.V = arrays.get("U"), arrays.get("V")
        elif self.params.mode == "hardened":
            msg = self.raw_ch.recv("init")
            self.U, self.V = msg.get("u"), msg.get("v")
            if not isinstance(self.U, np.ndarray) or self.U.shape != (self.k, self.n):
                raise PeerError(self.raw_ch.peer, "init", "initial shares have the wrong shape")
        else:
            self.U = self.V = None
        return start

    def batch(self, b: np.ndarray, record: bool) -> None:
        nb = len(b)
        mb = self.m[:, b].toarray()
        q = self.fx.encode_ring(mb, "M") if self.fs else np.rint(mb).astype(np.int64).view(_U64)
        if self.params.mode == "paper":
            s = self.mm.multiply(1, self.ch, q, (self.k, self.n), "b.social")
            self.raw_ch.send("b.social.z", {"z": s})
            self._keep_first(record)
            return
        ub = self.U[:, b]
        pred = self.trunc(self.shared("matmul", ub.T.copy(), self.V, "b.pred"))
        qm = self.private("mul", pred, (nb, self.j), "b.mask")
        e = np.zeros_like(qm) - qm
        gu = self.trunc(self.shared("matmul", self.V, e.T.copy(), "b.grad_u"))
        gv = self.trunc(self.shared("matmul", ub, e, "b.grad_v"))
        z = self.mm.multiply(1, self.ch, q, (self.k, self.n), "b.social") + self.U @ q
        self._keep_first(record)
        if self.fs:
            z = self.trunc(z, self.fs)
        self._hardened_update(b, ub, gu, gv, z)

    def _keep_first(self, record: bool) -> None:
        """B's view of the first batch: what it computes from A's social-product message."""
        if not record or self.view is None or self.view.social_u_pair_sums is not None:
            return
        msg = self._recorded.get("b.social", {})
        if "p1" in msg:
            sums = ssmm_leak_left(msg["p1"], msg["p2"])
        else:
            d = msg["d"]
            if d.shape[1] % 2:
                d = np.concatenate([d, np.zeros((d.shape[0], 1), _U64)], axis=1)
            sums = d[:, 0::2] + d[:, 1::2]
        self.view.social_u_pair_sums = sums.view(np.int64)

    def state(self) -> dict[str, np.ndarray]:
        if self.params.mode == "paper":
            return {"none": np.zeros(1)}
        return {"U": self.U, "V": self.V}

    def finish(self) -> None:
        if self.params.mode == "hardened":
            self.raw_ch.send("reveal", {"u": self.U, "v": self.V})
        return None


def train_party(
    role: Literal["rating", "social"],
    channel: Channel,
    data: RatingInput | SocialInput,
    params: SeSoRecParams,
    checkpoint_dir: str | Path | None = None,
    *,
    dealer: Dealer | None = None,
    view: View | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> tuple[Factors | None, TrainReport]:
    """Run one platform's side of SeSoRec training to the end.

    Args:
        role: ``rating`` (A: ratings, learns U and V) or ``social`` (B: trust graph).
        channel: a connected channel to the other platform.
        data: :class:`RatingInput` for A, :class:`SocialInput` for B.
        params: the protocol parameters (the peer must use the same).
        checkpoint_dir: this platform's per-epoch checkpoints; rerunning with the same
            directories on both sides resumes after the last common epoch.
        dealer: the triple dealer for ``beaver-dealer`` (both platforms get the same one).
        view: records this platform's view for ``record_view_epochs`` epochs (for the
            attacks): A's batch by batch; B's first social-product message only.
        progress: called with (epoch, batch, message).
    Returns:
        ``(factors, report)``: A gets the final U, V and mu; B gets None.
    """
    if role not in ("rating", "social"):
        raise ParameterError("role", "must be 'rating' or 'social'", role)
    params.check()
    report = TrainReport(role, params.mode, params.matmul)
    ckpt = _Checkpoints(checkpoint_dir)
    stage = "data"
    t0 = time.perf_counter()
    try:
        data.validate()
        party: _RatingParty | _SocialParty
        if role == "rating":
            if not isinstance(data, RatingInput):
                raise ParameterError(
                    "data", "must be a RatingInput for the rating role", type(data)
                )
            party = _RatingParty(channel, params, data, dealer, view)
        else:
            if not isinstance(data, SocialInput):
                raise ParameterError(
                    "data", "must be a SocialInput for the social role", type(data)
                )
            party = _SocialParty(channel, params, data, dealer, view)
        stage = "setup"
        start = party.start(ckpt)
        report.resumed_from_epoch = start
        made = _digest({k: v for k, v in params.agreed().items() if k != "epochs"})
        for epoch in range(start, params.epochs):
            record = view is not None and epoch < params.record_view_epochs
            for bi, b in enumerate(user_batches(party.n, params.batch_size, epoch, params.seed)):
                if params.max_batches is not None and bi >= params.max_batches:
                    break
                stage = f"epoch {epoch + 1} batch {bi + 1}"
                tb = time.perf_counter()
                party.batch(b, record)
                report.seconds_per_batch.append(time.perf_counter() - tb)
                report.batches += 1
                if progress:
                    progress(epoch, bi, "batch")
            stage = f"checkpoint {epoch + 1}"
            ckpt.save(epoch + 1, party.state(), {"epoch": epoch + 1, "params": made})
            report.epochs_run += 1
        stage = "reveal"
        result = party.finish()
    except Exception as exc:
        channel.abort(exc, stage)
        raise
    if view is not None and isinstance(result, Factors):
        view.final_u = result.U.copy()
    report.seconds = time.perf_counter() - t0
    report.comm = channel.stats.as_dict()
    per = [s for s in channel.stats.steps if s.startswith("b.")]
    tot = sum(
        channel.stats.steps[s].bytes_sent + channel.stats.steps[s].bytes_received for s in per
    )
    rounds = sum(channel.stats.steps[s].rounds for s in per)
    report.bytes_per_batch = tot / max(report.batches, 1)
    report.rounds_per_batch = rounds / max(report.batches, 1)
    if dealer is not None:
        report.offline_bytes = dealer.offline_bytes(0 if role == "rating" else 1)
    return result, report


def social_matrix(edges: Edges) -> sp.csr_matrix:
    """B's ``M`` for its edges (for the plaintext baseline in the same harness)."""
    return laplacian(edges.matrix())
