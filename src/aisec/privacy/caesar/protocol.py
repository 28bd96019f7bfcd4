"""CAESAR: two-party logistic regression on vertically split sparse features (Paillier HE + SS).

Party A holds features X_a; party B holds features X_b and the labels y (and the intercept, as a
constant feature). Each party has its own Paillier key. Each party keeps its own weights
encrypted under the *other* party's key (SecretFlow HESS-LR's refinement of CAESAR, which keeps
the per-batch traffic independent of d), so neither party ever sees a weight in clear before the
end. One minibatch, for both parties symmetrically (P = this party, Q = the peer):

1. ``z``: P computes ``[[X_p w_p]]_q`` from its plaintext sparse rows and its encrypted weights,
   touching only the non-zeros (binary features need no exponentiation), and converts it to
   additive shares (HE-to-SS: masked with ``R`` 40 bits wider, re-randomised; Q decrypts
   ``z_p + R``). Each party now holds a share of ``z = X_a w_a + X_b w_b``.
2. sigmoid: ``minimax`` (0.5 + 0.125 z) and ``taylor`` (0.5 + 0.25 z) are linear and local on the
   shares; ``cubic`` (the paper's q0 + q1 z + q3 z^3): A sends ``[[s]], [[s^2]], [[s^3]]`` of its
   share ``s`` under its key, B expands ``[[z^3]]`` with its share, evaluates ``[[y_hat]]`` and
   converts it back to shares.
3. error and gradient: ``e = y_hat - y`` is shared (B subtracts y from its share). Each party
   sends its share times ``-step`` encrypted under its own key; P computes
   ``X_p^T [[.]]`` (sparse, again only non-zeros) plus its own plaintext part and adds both into
   its encrypted weights, column by column, only for the columns present in the batch.
4. L2: lazy weight decay, ``w = c_t * v`` with the public factor ``c_t = (1 - lr*l2)^t``.
5. End: P masks its encrypted weights, Q decrypts the masked values and returns them, P unmasks:
   each party learns its own weights and nothing else.

Every HE-to-SS is packed (k masked values per ciphertext, k = key bits / (value bits + 42), e.g.
14 at 2048 bits), so per batch of n rows about 2n + 2n/k ciphertexts cross the link with a
linear sigmoid and 5n + 3n/k with the cubic, whatever d and the number of non-zeros; the d
weights cross once at the end (masked, packed, and back in clear to their owner).

Reference: Chen, Zhou, Wang et al., "When Homomorphic Encryption Marries Secret Sharing: Secure
Large-Scale Sparse Logistic Regression and Applications in Risk Control", KDD 2021
(arXiv 2008.08753); SecretFlow ``ml/linear/hess_sgd`` (persistent encrypted weights).

Threat model: semi-honest (honest-but-curious), two non-colluding parties, no third party;
Paillier is IND-CPA and every HE-to-SS mask is sigma = 40 bits wider than its value. Revealed by
design: the sample ids and their batch order, the shapes n, d_a, d_b, each feature matrix's
fixed-point scale, the hyper-parameters, and at the end each party's own weights (to that party
only). At prediction time B learns A's partial scores ``X_a w_a``. Not revealed: features, their
sparsity pattern, labels, intermediate z, y_hat, e, gradients and the other party's weights.
A malicious party can corrupt the model (no integrity protection).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field
from scipy.special import expit

from aisec.config import StrictModel
from aisec.crypto import h2s
from aisec.crypto.he import (
    HEPublicKey,
    HESecretKey,
    generate_he_keypair,
    key_scheme,
    public_key_from_bytes,
    secret_key_from_bytes,
)
from aisec.crypto.parallel import HEWorkers
from aisec.errors import ConfigError, DataError, InputFileError, ParameterError, PeerError
from aisec.io import load_safetensors, save_safetensors, write_private
from aisec.privacy.caesar.data import PartyData
from aisec.registry import Registry
from aisec.transport import BigInts, Channel

__all__ = [
    "SIGMOIDS",
    "CaesarParams",
    "CaesarModel",
    "TrainReport",
    "train_party",
    "predict_party",
    "sigmoid_coefficients",
]

PROTOCOL = "caesar-1"
_log = logging.getLogger(__name__)
SIGMOIDS: Registry[Callable[[float], tuple[float, float, float]]] = Registry("caesar sigmoid")


@SIGMOIDS.register("minimax", summary="0.5 + 0.125 z (SecretFlow MM1); linear, local on shares")
def _minimax(_r: float) -> tuple[float, float, float]:
    return 0.5, 0.125, 0.0


@SIGMOIDS.register("taylor", summary="0.5 + 0.25 z (first-order Taylor; FATE SSHE-LR)")
def _taylor(_r: float) -> tuple[float, float, float]:
    return 0.5, 0.25, 0.0


@SIGMOIDS.register("cubic", summary="0.5 + q1 z + q3 z^3, least squares on [-r, r] (CAESAR)")
def _cubic(r: float) -> tuple[float, float, float]:
    t = np.linspace(-r, r, 4001)
    target = expit(t) - 0.5
    basis = np.stack([t, t**3], axis=1)
    q1, q3 = np.linalg.lstsq(basis, target, rcond=None)[0]
    return 0.5, float(q1), float(q3)


def sigmoid_coefficients(name: str, fit_range: float = 8.0) -> tuple[float, float, float]:
    """``(q0, q1, q3)`` of the named approximation ``q0 + q1 z + q3 z^3``."""
    return SIGMOIDS.get(name)(fit_range)


_LOCAL = {"workers", "ray_address", "timeout_s", "accept_timeout_s", "handshake_timeout_s"}


class CaesarParams(StrictModel):
    """Protocol and training parameters; both parties must use the same values."""

    key_bits: int = Field(2048, description="HE modulus bits (1024 for quick tests)")
    he_scheme: Literal["gmpy2-paillier", "heu-ou"] = Field(
        "gmpy2-paillier",
        description="additively homomorphic scheme: gmpy2 Paillier, or SecretFlow HEU's "
        "Okamoto-Uchiyama (optional sf-heu, as in SecretFlow HESS-LR)",
    )
    frac_bits: int = Field(16, ge=8, le=24, description="fixed-point bits of z, y_hat, e")
    step_bits: int = Field(24, ge=8, le=32, description="fixed-point bits of the step size")
    feature_frac_bits: int = Field(16, ge=0, le=24, description="bits for non-integer features")
    magnitude_bits: int = Field(20, ge=4, le=40, description="bound log2|z|, log2|w| (masks)")
    sigmoid: str = "minimax"
    cubic_range: float = Field(8.0, gt=0)
    learning_rate: float = Field(0.5, gt=0)
    l2: float = Field(1e-4, ge=0)
    batch_size: int = Field(256, ge=1)
    epochs: int = Field(3, ge=1)
    batch_seed: int = Field(0, ge=0, description="public seed of the batch order (chosen by B)")
    max_batches: int | None = Field(None, ge=1, description="stop each epoch after this many")
    workers: int = Field(1, ge=1)
    ray_address: str | None = None
    timeout_s: float = Field(300.0, gt=0, description="how long a party waits for a message")
    accept_timeout_s: float = Field(
        300.0, gt=0, description="how long a listening party waits for its peer to connect"
    )
    handshake_timeout_s: float = Field(
        10.0, gt=0, description="TLS and hello of one connection; strangers are refused after it"
    )

    def agreed(self) -> dict[str, Any]:
        """The parameters both parties must share (workers and timeouts are local)."""
        return self.model_dump(exclude=_LOCAL)


@dataclass
class TrainReport:
    """What a party measured while training.

    ``checkpoint_fallback`` has one line per unreadable checkpoint (e.g. truncated) that the
    resume passed over for an earlier one; empty when every checkpoint loaded.
    """

    role: str
    epochs_run: int = 0
    resumed_from_epoch: int = 0
    checkpoint_fallback: list[str] = field(default_factory=list)
    batches: int = 0
    seconds: float = 0.0
    seconds_per_batch: list[float] = field(default_factory=list)
    comm: dict[str, dict[str, float | int]] = field(default_factory=dict)
    bytes_per_batch: float = 0.0


@dataclass(frozen=True)
class CaesarModel:
    """One party's final plaintext weights.

    Attributes:
        role: "A" or "B".
        weights: (d_party,) float64; B's last weight is the intercept.
        feature_names: names of the weights (B's last is "(intercept)").
    """

    role: str
    weights: np.ndarray
    feature_names: tuple[str, ...] = ()

    @property
    def has_intercept(self) -> bool:
        return self.role == "B"

    def scores(self, x: sp.spmatrix) -> np.ndarray:
        """Partial scores ``X w`` (n,) for this party's features (intercept added at B)."""
        w = self.weights[:-1] if self.has_intercept else self.weights
        if x.shape[1] != w.shape[0]:
            raise DataError(
                f"features must have {w.shape[0]} columns for this model; got {x.shape[1]}"
            )
        z = np.asarray(sp.csr_matrix(x) @ w, dtype=np.float64).ravel()
        return z + (self.weights[-1] if self.has_intercept else 0.0)

    def save(self, path: str | Path) -> Path:
        meta = {
            "format": "aisec-caesar-model-1",
            "role": self.role,
            "feature_names": json.dumps(list(self.feature_names)),
        }
        return save_safetensors(
            path, {"weights": np.asarray(self.weights, np.float64)}, metadata=meta
        )

    @classmethod
    def load(cls, path: str | Path) -> CaesarModel:
        from safetensors import safe_open

        t = load_safetensors(path, framework="np")
        with safe_open(str(path), framework="np") as fh:
            meta = fh.metadata() or {}
        if meta.get("format") != "aisec-caesar-model-1" or "weights" not in t:
            raise InputFileError(path, "not an aisec CAESAR model")
        return cls(meta["role"], t["weights"], tuple(json.loads(meta.get("feature_names", "[]"))))


# -- integer helpers (Python ints: shares are wider than 64 bits) ---------------------------------


def _int_csr(x: sp.csr_matrix, frac_bits: int) -> sp.csr_matrix:
    """Features as integers at scale 2**frac_bits."""
    m = sp.csr_matrix(x, dtype=np.float64, copy=True)
    if frac_bits:
        m.data = np.rint(m.data * (1 << frac_bits))
    m = sp.csr_matrix(m, dtype=np.int64)
    m.eliminate_zeros()
    m.sort_indices()
    return m


def _fixed(value: float, bits: int) -> int:
    return int(round(value * (1 << bits)))


def _ids_digest(ids: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(ids, dtype=np.int64).tobytes()).hexdigest()


def _batches(n: int, params: CaesarParams, epoch: int) -> list[np.ndarray]:
    order = np.random.default_rng([params.batch_seed, epoch]).permutation(n)
    out = [np.sort(order[i : i + params.batch_size]) for i in range(0, n, params.batch_size)]
    return out[: params.max_batches] if params.max_batches else out


# -- checkpoints -------------------------------------------------------------------------------


class _Checkpoints:
    """Per-party checkpoint directory: ``key.bin`` (0600) and ``epoch-<k>.safetensors``."""

    def __init__(self, root: str | Path | None) -> None:
        self.root = Path(root) if root is not None else None
        self._states: dict[int, dict[str, Any]] = {}

    def readable(self) -> tuple[list[int], dict[int, str]]:
        """Epochs whose checkpoint loads, and why each other one does not (e.g. truncated)."""
        ok, bad = [], {}
        for epoch in self.epochs():
            try:
                self._states[epoch] = self.load(epoch)
            except (InputFileError, OSError, ValueError, KeyError) as exc:
                bad[epoch] = str(exc)
            else:
                ok.append(epoch)
        return ok, bad

    def key(self, scheme: str, bits: int) -> HESecretKey:
        if self.root is None:
            return generate_he_keypair(scheme, bits)
        path = self.root / "key.bin"
        if path.is_file():
            buf = path.read_bytes()
            if key_scheme(buf) != scheme:
                raise ConfigError(
                    f"{path}: key is {key_scheme(buf)}, recipe asks {scheme}; "
                    "use a fresh checkpoint directory"
                )
            sk = secret_key_from_bytes(buf, where=str(path))
            if sk.public.bits != bits:
                raise ConfigError(
                    f"{path}: key has {sk.public.bits} bits, recipe asks {bits}; "
                    "use a fresh checkpoint directory"
                )
            return sk
        sk = generate_he_keypair(scheme, bits)
        write_private(path, sk.to_bytes())
        return sk

    def epochs(self) -> list[int]:
        if self.root is None or not self.root.is_dir():
            return []
        out = []
        for p in self.root.glob("epoch-*.safetensors"):
            try:
                out.append(int(p.stem.split("-")[1]))
            except ValueError:
                continue
        return sorted(out)

    def save(self, epoch: int, state: dict[str, Any]) -> None:
        if self.root is None:
            return
        self._states.pop(epoch, None)
        tensors = {"w_enc": np.frombuffer(state["w_enc"], dtype=np.uint8)}
        meta = {k: json.dumps(v) for k, v in state.items() if k != "w_enc"}
        save_safetensors(self.root / f"epoch-{epoch}.safetensors", tensors, metadata=meta)
        for old in self.epochs():
            if old < epoch - 1:
                (self.root / f"epoch-{old}.safetensors").unlink(missing_ok=True)

    def load(self, epoch: int) -> dict[str, Any]:
        from safetensors import safe_open

        if epoch in self._states:
            return self._states[epoch]
        assert self.root is not None
        path = self.root / f"epoch-{epoch}.safetensors"
        t = load_safetensors(path, framework="np")
        with safe_open(str(path), framework="np") as fh:
            meta = fh.metadata() or {}
        state = {k: json.loads(v) for k, v in meta.items()}
        if "w_enc" not in t or not {"c", "t", "peer_key", "params"} <= state.keys():
            raise InputFileError(path, "not a complete CAESAR checkpoint")
        state["w_enc"] = t["w_enc"].tobytes()
        return state

    def write_model(self, model: CaesarModel) -> None:
        if self.root is not None:
            model.save(self.root / "model.safetensors")


# -- the protocol ------------------------------------------------------------------------------


class _Party:
    """State and steps of one party; see the module docstring for the protocol."""

    def __init__(
        self,
        role: str,
        ch: Channel,
        data: PartyData,
        params: CaesarParams,
        ckpt: _Checkpoints,
        workers: HEWorkers,
    ) -> None:
        self.role, self.ch, self.params, self.ckpt, self.pool = role, ch, params, ckpt, workers
        self.is_b = role == "B"
        x = data.X
        if self.is_b:  # intercept: a constant feature at the label holder
            x = sp.hstack([x, sp.csr_matrix(np.ones((x.shape[0], 1)))], format="csr")
        self.integer = bool(np.all(x.data == np.rint(x.data)))
        self.fx = 0 if self.integer else params.feature_frac_bits
        self.x = _int_csr(x, self.fx)
        self.y = data.y
        self.ids = data.ids
        self.d = self.x.shape[1]
        self.f = params.frac_bits
        self.s_w = params.step_bits + self.f + self.fx  # scale of the stored weights
        self.q0, self.q1, self.q3 = sigmoid_coefficients(params.sigmoid, params.cubic_range)
        self.decay = 1.0 - params.learning_rate * params.l2
        self.checkpoint_fallback: list[str] = []  # unreadable checkpoints passed over

    # setup ------------------------------------------------------------------------------------
    def handshake(self) -> None:
        p = self.params
        mine = {
            "protocol": PROTOCOL,
            "role": self.role,
            "n": int(self.x.shape[0]),
            "ids": _ids_digest(self.ids),
            "params": p.agreed(),
        }
        self.ch.send("setup", mine)
        peer = self.ch.recv("setup")
        if peer.get("protocol") != PROTOCOL or peer.get("role") == self.role:
            raise PeerError(
                self.ch.peer,
                "setup",
                f"peer runs {peer.get('protocol')!r} as role "
                f"{peer.get('role')!r}; expected the other role",
            )
        if peer.get("n") != mine["n"]:
            raise DataError(
                f"row counts differ between parties: {self.role} has {mine['n']}, "
                f"{peer.get('role')} has {peer.get('n')}"
            )
        if peer.get("ids") != mine["ids"]:
            raise DataError(
                "sample ids differ between parties (same count, different ids or order); "
                "align the rows first"
            )
        if peer.get("params") != mine["params"]:
            diff = sorted(k for k in mine["params"] if mine["params"][k] != peer["params"].get(k))
            raise ConfigError(f"parameters differ between parties: {', '.join(diff)}")

    def exchange_keys(self) -> None:
        self.sk = self.ckpt.key(self.params.he_scheme, self.params.key_bits)
        self.pk = self.sk.public
        self.ch.send("keys", {"pk": self.pk.to_bytes()})
        raw = self.ch.recv("keys").get("pk")
        if not isinstance(raw, bytes) or key_scheme(raw) != self.params.he_scheme:
            raise PeerError(self.ch.peer, "keys", f"not a {self.params.he_scheme} public key")
        try:
            self.peer_pk = public_key_from_bytes(raw, where="peer key")
        except InputFileError as exc:
            raise PeerError(self.ch.peer, "keys", str(exc)) from None
        if self.peer_pk.bits != self.params.key_bits:
            raise PeerError(
                self.ch.peer,
                "keys",
                f"key has {self.peer_pk.bits} bits; expected {self.params.key_bits}",
            )
        h2s.check_room(self.peer_pk, self.s_w + self.fx + self.params.magnitude_bits + 24)

    def exchange_shapes(self) -> None:
        self.ch.send("shape", {"d": self.d})
        d = self.ch.recv("shape").get("d")
        if not isinstance(d, int) or d < 1:
            raise PeerError(self.ch.peer, "shape", f"bad feature count {d!r}")
        self.peer_d = d

    def agree_resume(self) -> int:
        mine, unreadable = self.ckpt.readable()
        self.ch.send("resume", {"epochs": mine, "peer_key": self.peer_pk.fingerprint})
        peer = self.ch.recv("resume")
        common = sorted(set(mine) & set(int(e) for e in peer.get("epochs", [])))
        start = common[-1] if common else 0
        for epoch, why in sorted(unreadable.items()):
            note = f"checkpoint of epoch {epoch} is unreadable ({why}); " + (
                f"resuming from epoch {start}" if start else "starting from the beginning"
            )
            _log.warning("party %s: %s", self.role, note)
            self.checkpoint_fallback.append(note)
        if start:
            state = self.ckpt.load(start)
            if state.get("peer_key") != self.peer_pk.fingerprint:
                raise PeerError(
                    self.ch.peer,
                    "resume",
                    "peer's key differs from the checkpoint's; "
                    "use fresh checkpoint directories on both sides",
                )
            made = {k: v for k, v in self.params.agreed().items() if k != "epochs"}
            if state.get("params") != json.loads(json.dumps(made)):
                raise ConfigError(
                    f"{self.ckpt.root}: checkpoint was made with other parameters; "
                    "use the same recipe or fresh checkpoint directories"
                )
            self.w_enc = self.peer_pk.ciphertexts_from_bytes(state["w_enc"])
            self.c, self.t = float(state["c"]), int(state["t"])
            if self.peer_pk.count(self.w_enc) != self.d:
                raise InputFileError(self.ckpt.root, "checkpoint does not match the data's columns")
        else:
            self.w_enc = self.peer_pk.encrypt_trivial([0] * self.d)
            self.c, self.t = 1.0, 0
        return start

    # helpers ----------------------------------------------------------------------------------
    def _send_cts(self, step: str, pk: HEPublicKey, cts: Any, **meta: Any) -> None:
        self.ch.send(step, {"ct": pk.ciphertexts_to_bytes(cts), **meta})

    def _recv_cts(self, step: str, pk: HEPublicKey, count: int) -> tuple[Any, dict[str, Any]]:
        msg = self.ch.recv(step)
        try:
            cts = pk.ciphertexts_from_bytes(msg.pop("ct"))
        except (KeyError, ParameterError) as exc:
            raise PeerError(self.ch.peer, step, f"malformed ciphertexts ({exc})") from None
        if pk.count(cts) != count:
            raise PeerError(
                self.ch.peer, step, f"sent {pk.count(cts)} ciphertexts; expected {count}"
            )
        return cts, msg

    def _recv_trunc(self, msg: dict[str, Any], step: str) -> int:
        t = msg.get("trunc")
        if not isinstance(t, int) or not 0 <= t <= 512:
            raise PeerError(self.ch.peer, step, f"bad truncation {t!r}")
        return t

    def _h2s_send(self, step: str, cts: list, value_bits: int, trunc: int) -> list[int]:
        """HE-to-SS of ciphertexts under the peer's key, packed; returns this party's shares."""
        sent, mine, layout = self.pool.mask_packed(self.peer_pk, cts, value_bits, trunc)
        self._send_cts(step, self.peer_pk, sent, trunc=trunc, **layout)
        return mine

    def _h2s_recv(self, step: str, count: int) -> list[int]:
        """The key owner's half: receive packed masked values and decrypt this party's shares."""
        msg = self.ch.recv(step)
        trunc = self._recv_trunc(msg, step)
        slot = msg.get("slot")
        if msg.get("count") != count or not isinstance(slot, int) or not 48 <= slot < self.pk.bits:
            raise PeerError(
                self.ch.peer,
                step,
                f"bad packing (count {msg.get('count')!r}, slot {slot!r}; expected count {count})",
            )
        try:
            cts = self.pk.ciphertexts_from_bytes(msg.get("ct", b""))
            return self.pool.unmask_packed(self.sk, cts, slot, count, trunc)
        except ParameterError as exc:
            raise PeerError(self.ch.peer, step, f"malformed ciphertexts ({exc})") from None

    def _scale(self, shares: list[int], factor: float) -> list[int]:
        k = _fixed(factor, 30)
        return [(k * s) >> 30 for s in shares]

    # one minibatch ----------------------------------------------------------------------------
    def batch(self, rows: np.ndarray) -> None:
        p, f = self.params, self.f
        xb = self.x[rows]
        n = xb.shape[0]
        # 1. shares of z
        z_enc = self.pool.matvec(self.peer_pk, xb, self.w_enc)
        trunc = self.s_w + self.fx - f
        z_mine = self._h2s_send("z", z_enc, self.s_w + self.fx + p.magnitude_bits, trunc)
        z_peer = self._h2s_recv("z", n)
        z = self._scale([a + b for a, b in zip(z_mine, z_peer, strict=True)], self.c)
        # 2. shares of y_hat
        if p.sigmoid == "cubic":
            yhat = self._cubic(z)
        else:
            yhat = [(_fixed(self.q1, f) * s) >> f for s in z]
            if self.is_b:
                q0 = _fixed(self.q0, f)
                yhat = [v + q0 for v in yhat]
        # 3. shares of e, scaled by -step, exchanged under each owner's key
        if self.is_b:
            one = 1 << f
            e = [v - one * int(t) for v, t in zip(yhat, self.y[rows], strict=True)]
        else:
            e = yhat
        c_next = self.c * self.decay
        k = _fixed(p.learning_rate / (n * c_next), p.step_bits)
        neg = [-k * v for v in e]
        self._send_cts("e", self.pk, self.pool.encrypt(self.sk, neg))
        e_peer, _ = self._recv_cts("e", self.peer_pk, n)
        # 4. update the touched columns of the encrypted weights: X^T [[e_peer + e_mine]]
        cols = np.unique(xb.indices)
        if cols.size:
            pk = self.peer_pk
            xs = sp.csr_matrix(xb[:, cols])
            upd = self.pool.rmatvec(pk, xs, pk.add_plain(e_peer, neg))
            idx = cols.tolist()
            pk.put(self.w_enc, idx, pk.add(pk.take(self.w_enc, idx), upd))
        self.c, self.t = c_next, self.t + 1

    def _cubic(self, z: list[int]) -> list[int]:
        """Shares of the cubic approximation (A encrypts powers of its share, B evaluates)."""
        f, p = self.f, self.params
        n = len(z)
        if not self.is_b:
            powers = [s for s in z] + [s * s for s in z] + [s * s * s for s in z]
            self._send_cts("cubic_powers", self.pk, self.pool.encrypt(self.sk, powers))
            return self._h2s_recv("cubic_yhat", n)
        cts, _ = self._recv_cts("cubic_powers", self.peer_pk, 3 * n)
        pk = self.peer_pk
        c1, c2, c3 = (pk.slice(cts, i * n, (i + 1) * n) for i in range(3))
        k1, k3 = _fixed(self.q1, 3 * f), _fixed(self.q3, f)
        k0 = _fixed(self.q0, 4 * f)
        zc = pk.add_plain(c1, z)  # [[s + t]]
        z3 = pk.add(  # [[(s + t)^3]] = [[s^3]] + 3t [[s^2]] + 3t^2 [[s]] + t^3
            pk.add(c3, pk.mul_plain(c2, [3 * t for t in z])),
            pk.add_plain(pk.mul_plain(c1, [3 * t * t for t in z]), [t**3 for t in z]),
        )
        y = pk.add(pk.mul_plain(zc, [k1] * n), pk.mul_plain(z3, [k3] * n))
        out = pk.add_plain(y, [k0] * n)  # [[y_hat 2^4f]]
        return self._h2s_send("cubic_yhat", out, 4 * f + 4 * p.magnitude_bits, 3 * f)

    # end --------------------------------------------------------------------------------------
    def reveal(self) -> np.ndarray:
        """Each party learns its own weights: mask, peer decrypts, return, unmask."""
        vb = self.s_w + self.params.magnitude_bits
        mine = self._h2s_send("reveal", self.w_enc, vb, 0)
        self.ch.send("reveal_back", {"v": BigInts(self._h2s_recv("reveal", self.peer_d))})
        back = self.ch.recv("reveal_back").get("v")
        if not isinstance(back, list) or len(back) != self.d:
            raise PeerError(self.ch.peer, "reveal_back", "wrong number of values")
        stored = [int(v) + m for v, m in zip(back, mine, strict=True)]
        return np.array([self.c * s / 2.0**self.s_w for s in stored], dtype=np.float64)


def train_party(
    role: Literal["A", "B"],
    channel: Channel,
    data: PartyData,
    params: CaesarParams,
    checkpoint_dir: str | Path | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    finish: bool = True,
) -> tuple[CaesarModel | None, TrainReport]:
    """Run one party of CAESAR training to the end.

    Args:
        role: "A" (features only) or "B" (features and labels; holds the intercept).
        channel: a connected channel to the other party.
        data: this party's rows (ids aligned with the peer's).
        params: the protocol parameters (the peer must use the same).
        checkpoint_dir: where this party keeps its key and per-epoch checkpoints; a rerun with
            the same directory (on both sides) resumes after the last common epoch.
        progress: called with (epoch, batch, message).
        finish: reveal the weights at the end; False stops after training with no model
            (benchmarks of the training phase alone; both parties must agree).
    Returns:
        ``(model, report)``: this party's own weights (None if not ``finish``) and its
        measurements.
    """
    if role not in ("A", "B"):
        raise ParameterError("role", "must be 'A' or 'B'", role)
    if params.sigmoid not in SIGMOIDS.names():
        SIGMOIDS.get(params.sigmoid)
    total_steps = params.epochs * math.ceil(data.n / params.batch_size)
    if (1 - params.learning_rate * params.l2) ** total_steps < 1e-3:
        raise ParameterError(
            "l2",
            "times learning_rate times steps is too large for lazy decay "
            "(the decay factor would fall below 1e-3)",
            params.l2,
        )
    report = TrainReport(role)
    ckpt = _Checkpoints(checkpoint_dir)
    t0 = time.perf_counter()
    stage = "start"  # public: what the peer is told if this party fails
    with HEWorkers(params.workers, params.ray_address) as pool:
        try:
            stage = "data"
            data.validate(f"party {role} data", need_labels=(role == "B"))
            party = _Party(role, channel, data, params, ckpt, pool)
            stage = "setup"
            party.handshake()
            stage = "keys"
            party.exchange_keys()
            stage = "shape"
            party.exchange_shapes()
            stage = "resume"
            start = party.agree_resume()
            report.resumed_from_epoch = start
            report.checkpoint_fallback = list(party.checkpoint_fallback)
            for epoch in range(start, params.epochs):
                for b, rows in enumerate(_batches(data.n, params, epoch)):
                    stage = f"epoch {epoch + 1} batch {b + 1}"
                    tb = time.perf_counter()
                    party.batch(rows)
                    report.seconds_per_batch.append(time.perf_counter() - tb)
                    report.batches += 1
                    if progress:
                        progress(epoch, b, "batch")
                stage = f"checkpoint {epoch + 1}"
                ckpt.save(
                    epoch + 1,
                    {
                        "w_enc": party.peer_pk.ciphertexts_to_bytes(party.w_enc),
                        "c": party.c,
                        "t": party.t,
                        "epoch": epoch + 1,
                        "peer_key": party.peer_pk.fingerprint,
                        "role": role,
                        "params": {k: v for k, v in params.agreed().items() if k != "epochs"},
                    },
                )
                report.epochs_run += 1
            stage = "finish"
            channel.send("finish", {"finish": bool(finish)})
            if channel.recv("finish").get("finish") != bool(finish):
                raise ConfigError("parties disagree on revealing the weights at the end")
            stage = "reveal"
            weights = party.reveal() if finish else None
        except Exception as exc:
            # the peer learns the error's class and the stage only: the message may hold a
            # feature value, a row or a local path (not revealed, see the threat model)
            channel.abort(exc, stage)
            raise
    model = None
    if weights is not None:
        names = tuple(data.feature_names) + (("(intercept)",) if role == "B" else ())
        model = CaesarModel(role, weights, names if len(names) == len(weights) else ())
        ckpt.write_model(model)
    report.seconds = time.perf_counter() - t0
    report.comm = channel.stats.as_dict()
    batch_steps = ("z", "e", "cubic_powers", "cubic_yhat")
    tot = sum(
        channel.stats.steps[s].bytes_sent + channel.stats.steps[s].bytes_received
        for s in batch_steps
        if s in channel.stats.steps
    )
    report.bytes_per_batch = tot / max(report.batches, 1)
    return model, report


def predict_party(
    role: Literal["A", "B"], channel: Channel, model: CaesarModel, data: PartyData
) -> np.ndarray | None:
    """Score with the split model: A sends its partial scores, B returns probabilities.

    Returns:
        at B: (n,) probabilities in [0, 1]; at A: None.
    """
    data.validate(f"party {role} data")
    z = model.scores(data.X)
    channel.send("predict_setup", {"n": data.n, "ids": _ids_digest(data.ids)})
    peer = channel.recv("predict_setup")
    if peer.get("n") != data.n:
        raise DataError(
            f"row counts differ between parties: {role} has {data.n}, peer has {peer.get('n')}"
        )
    if peer.get("ids") != _ids_digest(data.ids):
        raise DataError("sample ids differ between parties; align the rows first")
    if role == "A":
        channel.send("predict", {"z": z})
        return None
    za = channel.recv("predict").get("z")
    if not isinstance(za, np.ndarray) or za.shape != z.shape:
        raise PeerError(channel.peer, "predict", "partial scores have the wrong shape")
    return expit(za + z)
