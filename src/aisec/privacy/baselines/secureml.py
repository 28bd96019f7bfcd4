"""SecureML-style two-party logistic regression on dense secret shares with Beaver triples.

The baseline CAESAR is compared with: features, weights and errors are additive shares in
Z_2^64 (16 fractional bits), every product uses a Beaver matrix triple, and the sparse features
are treated as dense (masking destroys sparsity). Each party's share of a feature matrix is its
own plaintext columns (zero elsewhere). One minibatch of m rows, d columns:

1. masks: each row of the data gets a fixed random mask ``U`` (one row of d), dealt once before
   training (offline); ``E = X - U`` is opened for a row the first time the row is in a batch,
   and reused in every later epoch (SecureML section 4.2: "the data is masked once").
2. per batch, fresh triples ``V`` (d), ``Z = U_B V`` (m), ``V2`` (m), ``Z2 = U_B^T V2`` (d) for the
   batch's rows ``U_B``, from either source:
   - ``dealer`` (SecureML's client-aided mode): a third party deals them; A's shares come from
     16-byte AES-CTR seeds, B gets its shares in full;
   - ``he`` (SecureML's LHE offline phase, no third party): the parties make them with
     :mod:`aisec.crypto.triples`, ``2 m d`` plaintext-ciphertext products per batch.
3. the parties open ``E`` for the batch's new rows (m x d in the first epoch, nothing later) and
   ``F = w - V`` (d); shares of ``z = X w`` are ``i E F + E <V>_i + <U>_i F + <Z>_i``, then
   truncated locally (SecureML truncation).
4. ``y_hat`` by the same linear sigmoid as CAESAR, ``e = y_hat - y`` (B subtracts y).
5. they open ``F2 = e - V2`` (m); shares of ``g = X^T e`` reuse ``E``; ``w -= lr/m g``, L2 decay.
6. at the end the weights are opened (the baseline measures cost; this step is not private).

In the first epoch the parties exchange 2 m d ring elements per batch (masking destroys
sparsity), plus the HE products of the ``he`` source in every epoch: that is the cost CAESAR
removes. From the second epoch on, a dealer-aided run sends only O(m + d) per batch.
Times: ``online_seconds_per_batch`` starts when the batch's triple is in hand;
``seconds_per_batch`` also counts the wait for (or the making of) the triple.

Reference: Mohassel and Zhang, "SecureML: A System for Scalable Privacy-Preserving Machine
Learning", IEEE S&P 2017 (client-aided and LHE-generated triples, local truncation).

Threat model: semi-honest parties; with ``dealer``, also a semi-honest dealer that colludes
with neither party; with ``he``, no third party (CAESAR's model). Revealed: shapes, ids and batch
order, final weights to their owners. Local truncation fails with probability about
2**(b + 1 - 64) per value of b bits.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from aisec.crypto.fixedpoint import FixedPoint
from aisec.crypto.prg import prg_uint64
from aisec.crypto.sharing import truncate_ring_share
from aisec.errors import DataError, ParameterError, PeerError
from aisec.transport import Channel, Link, inprocess_pair

__all__ = ["SecureMLResult", "train_secureml"]

_U64 = np.uint64


@dataclass
class SecureMLResult:
    """Weights and measurements of one SecureML run."""

    weights: np.ndarray  # (d_a + d_b + 1,), intercept last
    batches: int
    seconds: float
    seconds_per_batch: list[float] = field(default_factory=list)
    bytes_parties: int = 0
    bytes_dealer: int = 0
    triples: str = "dealer"
    offline_seconds_per_batch: list[float] = field(default_factory=list)
    online_seconds_per_batch: list[float] = field(default_factory=list)
    party_bytes_per_batch: list[int] = field(default_factory=list)
    batches_per_epoch: int = 0

    def epoch_means(self, values: list[float] | list[int]) -> list[float]:
        """Mean of per-batch ``values`` for each epoch."""
        k = max(self.batches_per_epoch, 1)
        return [float(np.mean(values[i : i + k])) for i in range(0, len(values), k)]

    @property
    def bytes_per_batch(self) -> float:
        return (self.bytes_parties + self.bytes_dealer) / max(self.batches, 1)


def _dealer(to_a: Channel, to_b: Channel, n: int, batches: list[np.ndarray], d: int) -> None:
    seed = secrets.token_bytes(16)
    u_a = prg_uint64(seed, (n, d), 0)
    u = u_a + secrets_uint64((n, d))
    to_a.send("masks", {"seed": seed})
    to_b.send("masks", {"u": u - u_a})
    for k, rows in enumerate(batches):
        m = len(rows)
        seed = secrets.token_bytes(16)
        v_a, z_a = prg_uint64(seed, d, 1), prg_uint64(seed, m, 2)
        v2_a, z2_a = prg_uint64(seed, m, 3), prg_uint64(seed, d, 4)
        v, v2 = secrets_uint64(d), secrets_uint64(m)
        ub = u[rows]  # products in the ring: uint64 matmul wraps mod 2^64
        to_a.send(f"triple{k}", {"seed": seed})
        to_b.send(
            f"triple{k}",
            {"v": v - v_a, "z": ub @ v - z_a, "v2": v2 - v2_a, "z2": ub.T @ v2 - z2_a},
        )


def secrets_uint64(shape: int | tuple[int, ...]) -> np.ndarray:
    size = int(np.prod(shape))
    return np.frombuffer(secrets.token_bytes(8 * size), dtype=_U64).reshape(shape).copy()


def _expect(msg: dict[str, Any], key: str, shape: tuple[int, ...], ch: Channel, step: str) -> Any:
    got = msg.get(key)
    if not isinstance(got, np.ndarray) or got.shape != shape or got.dtype != _U64:
        raise PeerError(ch.peer, step, f"{key!r} must be a uint64 array of shape {shape}")
    return got


class _DealerTriples:
    """A party's triple source in the client-aided mode: the dealer's messages."""

    def __init__(self, i: int, ch: Channel) -> None:
        self.i, self.ch = i, ch

    def setup(self, n: int, d: int) -> np.ndarray:
        """This party's share of the row masks ``U`` (n x d), dealt once before training."""
        msg = self.ch.recv("masks")
        if self.i == 0:
            return prg_uint64(msg["seed"], (n, d), 0)
        return _expect(msg, "u", (n, d), self.ch, "masks")

    def recv(self, step: str, u: np.ndarray) -> dict[str, np.ndarray]:
        m, d = u.shape
        tri = self.ch.recv(step)
        if self.i == 0:
            s = tri["seed"]
            return {
                "v": prg_uint64(s, d, 1),
                "z": prg_uint64(s, m, 2),
                "v2": prg_uint64(s, m, 3),
                "z2": prg_uint64(s, d, 4),
            }
        shapes = {"v": (d,), "z": (m,), "v2": (m,), "z2": (d,)}
        return {k: _expect(tri, k, shp, self.ch, step) for k, shp in shapes.items()}


class _HETriples:
    """A party's triple source without a dealer: HE between the two parties (see
    :mod:`aisec.crypto.triples`); :meth:`setup` makes and exchanges the keys (not timed)."""

    def __init__(self, i: int, ch: Channel, scheme: str, key_bits: int) -> None:
        self.i, self.ch, self.scheme, self.bits = i, ch, scheme, key_bits
        self.sk: Any = None

    def setup(self, n: int, d: int) -> np.ndarray:
        from aisec.crypto.he import generate_he_keypair, public_key_from_bytes

        self.sk = generate_he_keypair(self.scheme, self.bits)
        self.ch.send("he_keys", {"pk": self.sk.public.to_bytes()})
        self.peer_pk = public_key_from_bytes(self.ch.recv("he_keys")["pk"], "peer key")
        return secrets_uint64((n, d))  # this party's own random share of the row masks

    def recv(self, step: str, u: np.ndarray) -> dict[str, np.ndarray]:
        from aisec.crypto.triples import he_matvec_triples

        m, d = u.shape
        v, v2 = secrets_uint64(d), secrets_uint64(m)
        z, z2 = he_matvec_triples(self.i, self.ch, self.sk, self.peer_pk, u, v, v2, step)
        return {"v": v, "z": z, "v2": v2, "z2": z2}


def _party(
    i: int,
    ch: Channel,
    source: _DealerTriples | _HETriples,
    x_share: np.ndarray,
    y: np.ndarray | None,
    batches: list[np.ndarray],
    fp: FixedPoint,
    coef: tuple[float, float],
    lr: float,
    l2: float,
    out: dict[str, Any],
) -> None:
    f = fp.frac_bits
    n, d = x_share.shape
    w = np.zeros(d, dtype=_U64)
    q0, q1 = fp.encode_ring(np.array([coef[0]]))[0], fp.encode_ring(np.array([coef[1]]))[0]
    decay = fp.encode_ring(np.array([1.0 - lr * l2]))[0]
    times, online, sent = [], [], []
    u_all = source.setup(n, d)  # offline, not timed
    ch.send("ready", {})  # both parties start the clock together
    ch.recv("ready")
    e_open = np.zeros((n, d), dtype=_U64)
    opened = np.zeros(n, dtype=bool)
    for k, rows in enumerate(batches):
        t0 = time.perf_counter()
        b0 = ch.stats.total().bytes_sent
        m = len(rows)
        u = u_all[rows]
        tri = source.recv(f"triple{k}", u)
        t1 = time.perf_counter()
        v, z_t, v2, z2 = tri["v"], tri["z"], tri["v2"], tri["z2"]
        new = rows[~opened[rows]]
        e_new = x_share[new] - u_all[new]
        f_mine = w - v
        ch.send(f"open_ef{k}", {"e": e_new, "f": f_mine})
        peer = ch.recv(f"open_ef{k}")
        e_open[new] = e_new + _expect(peer, "e", e_new.shape, ch, f"open_ef{k}")
        opened[new] = True
        big_e = e_open[rows]
        big_f = f_mine + _expect(peer, "f", (d,), ch, f"open_ef{k}")
        z = big_e @ v + u @ big_f + z_t
        if i == 1:
            z = z + big_e @ big_f
        z = truncate_ring_share(z, f, i)
        yhat = truncate_ring_share(z * q1, f, i)
        if i == 1:
            yhat = yhat + q0
            err = yhat - fp.encode_ring(y[rows].astype(np.float64))
        else:
            err = yhat
        f2_mine = err - v2
        ch.send(f"open_f2{k}", {"f2": f2_mine})
        big_f2 = f2_mine + _expect(ch.recv(f"open_f2{k}"), "f2", (m,), ch, f"open_f2{k}")
        g = big_e.T @ v2 + u.T @ big_f2 + z2
        if i == 1:
            g = g + big_e.T @ big_f2
        g = truncate_ring_share(g, f, i)
        step = fp.encode_ring(np.array([lr / m]))[0]
        w = truncate_ring_share(w * decay, f, i) - truncate_ring_share(g * step, f, i)
        t2 = time.perf_counter()
        times.append(t2 - t0)
        online.append(t2 - t1)
        sent.append(ch.stats.total().bytes_sent - b0)
    ch.send("reveal", {"w": w})
    other = ch.recv("reveal")["w"]
    out[i] = fp.decode_ring(w + other)
    out[f"times{i}"], out[f"online{i}"], out[f"sent{i}"] = times, online, sent


def train_secureml(
    x_a: sp.spmatrix,
    x_b: sp.spmatrix,
    y: np.ndarray,
    *,
    coefficients: tuple[float, float],
    learning_rate: float,
    l2: float,
    batch_size: int,
    epochs: int,
    batch_seed: int = 0,
    max_batches: int | None = None,
    link: Link | None = None,
    frac_bits: int = 16,
    timeout_s: float = 600.0,
    triples: str = "dealer",
    he_scheme: str = "heu-ou",
    key_bits: int = 2048,
) -> SecureMLResult:
    """Train with parties A, B (and the dealer) as threads over shaped in-process channels.

    Args:
        x_a: (n, d_a) A's features; x_b: (n, d_b) B's features; y: (n,) B's labels.
        coefficients: ``(q0, q1)`` of the linear sigmoid approximation.
        learning_rate, l2, batch_size, epochs, batch_seed, max_batches: as in CAESAR.
        link: shaping of every link (A-B, dealer-A, dealer-B).
        triples: ``"dealer"`` (a third party deals them; SecureML's client-aided mode) or
            ``"he"`` (the two parties make them with ``he_scheme`` keys of ``key_bits``, as
            SecureML's LHE offline phase; no third party, CAESAR's own trust model).
    Returns:
        the joined weights (intercept last) and the measured time and bytes.
    """
    n = x_a.shape[0]
    if x_b.shape[0] != n or y.shape[0] != n:
        raise DataError(f"row counts differ between parties: A has {n}, B has {x_b.shape[0]}")
    fp = FixedPoint(frac_bits)
    d_a, d_b = x_a.shape[1], x_b.shape[1]
    d = d_a + d_b + 1
    dense_a = np.zeros((n, d), dtype=_U64)
    dense_a[:, :d_a] = fp.encode_ring(sp.csr_matrix(x_a).toarray(), "X_a")
    dense_b = np.zeros((n, d), dtype=_U64)
    dense_b[:, d_a : d_a + d_b] = fp.encode_ring(sp.csr_matrix(x_b).toarray(), "X_b")
    dense_b[:, -1] = fp.encode_ring(np.ones(n))
    batches: list[np.ndarray] = []
    for epoch in range(epochs):
        order = np.random.default_rng([batch_seed, epoch]).permutation(n)
        bs = [np.sort(order[i : i + batch_size]) for i in range(0, n, batch_size)]
        batches.extend(bs[:max_batches] if max_batches else bs)
    ab, ba = inprocess_pair("A", "B", link, timeout_s)
    da, ad = inprocess_pair("dealer", "A", link, timeout_s)
    db, bd = inprocess_pair("dealer", "B", link, timeout_s)
    out: dict[str, Any] = {}
    errors: list[BaseException] = []

    def guard(fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(exc)
            for c in (ab, ba, da, ad, db, bd):
                c.close()

    coef = (coefficients[0], coefficients[1])
    if triples not in ("dealer", "he"):
        raise ParameterError("triples", "must be 'dealer' or 'he'", triples)
    src_a: _DealerTriples | _HETriples = _DealerTriples(0, ad)
    src_b: _DealerTriples | _HETriples = _DealerTriples(1, bd)
    threads = []
    if triples == "he":
        src_a, src_b = (
            _HETriples(0, ab, he_scheme, key_bits),
            _HETriples(1, ba, he_scheme, key_bits),
        )
    else:
        threads.append(threading.Thread(target=guard, args=(_dealer, da, db, n, batches, d)))
    threads += [
        threading.Thread(
            target=guard,
            args=(
                _party,
                0,
                ab,
                src_a,
                dense_a,
                None,
                batches,
                fp,
                coef,
                learning_rate,
                l2,
                out,
            ),
        ),
        threading.Thread(
            target=guard,
            args=(_party, 1, ba, src_b, dense_b, y, batches, fp, coef, learning_rate, l2, out),
        ),
    ]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    if errors:
        first = next((e for e in errors if not isinstance(e, PeerError)), errors[0])
        raise first
    per_batch = [max(a, b) for a, b in zip(out["times0"], out["times1"], strict=True)]
    bytes_parties = ab.stats.total().bytes_sent + ba.stats.total().bytes_sent
    bytes_dealer = da.stats.total().bytes_sent + db.stats.total().bytes_sent
    online = [max(a, b) for a, b in zip(out["online0"], out["online1"], strict=True)]
    return SecureMLResult(
        out[0],
        len(batches),
        seconds,
        per_batch,
        bytes_parties,
        bytes_dealer,
        triples,
        offline_seconds_per_batch=[
            max(ta - oa, tb - ob)
            for ta, oa, tb, ob in zip(
                out["times0"], out["online0"], out["times1"], out["online1"], strict=True
            )
        ],
        online_seconds_per_batch=online,
        party_bytes_per_batch=[a + b for a, b in zip(out["sent0"], out["sent1"], strict=True)],
        batches_per_epoch=len(batches) // epochs,
    )
