"""SecureML-style two-party logistic regression on dense secret shares with Beaver triples.

The baseline CAESAR is compared with: features, weights and errors are additive shares in
Z_2^64 (16 fractional bits), every product uses a Beaver matrix triple, and the sparse features
are treated as dense (masking destroys sparsity). Each party's share of a feature matrix is its
own plaintext columns (zero elsewhere). One minibatch of m rows, d columns:

1. triples ``U`` (m x d), ``V`` (d), ``Z = U V`` (m), ``V2`` (m), ``Z2 = U^T V2`` (d), from
   either source:
   - ``dealer`` (SecureML's client-aided mode): a third party deals them; A's shares come from
     a 16-byte AES-CTR seed, B gets its shares in full;
   - ``he`` (SecureML's LHE offline phase, no third party): the parties make them with
     :mod:`aisec.crypto.triples`, ``2 m d`` plaintext-ciphertext products per batch.
2. the parties open ``E = X - U`` (m x d) and ``F = w - V`` (d); shares of ``z = X w`` are
   ``i E F + E <V>_i + <U>_i F + <Z>_i``, then truncated locally (SecureML truncation).
3. ``y_hat`` by the same linear sigmoid as CAESAR, ``e = y_hat - y`` (B subtracts y).
4. they open ``F2 = e - V2`` (m); shares of ``g = X^T e`` reuse ``E``; ``w -= lr/m g``, L2 decay.
5. at the end the weights are opened (the baseline measures cost; this step is not private).

Per batch the parties exchange 2 m d ring elements (plus the dealer's m d, or the HE products):
traffic and work grow with ``m * d`` whatever the density, which is the cost CAESAR removes.

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

    @property
    def bytes_per_batch(self) -> float:
        return (self.bytes_parties + self.bytes_dealer) / max(self.batches, 1)


def _dealer(to_a: Channel, to_b: Channel, m_list: list[int], d: int) -> None:
    for k, m in enumerate(m_list):
        seed = secrets.token_bytes(16)
        u_a = prg_uint64(seed, (m, d), 0)
        v_a = prg_uint64(seed, d, 1)
        z_a = prg_uint64(seed, m, 2)
        v2_a = prg_uint64(seed, m, 3)
        z2_a = prg_uint64(seed, d, 4)
        u = u_a + secrets_uint64((m, d))
        v = secrets_uint64(d)
        v2 = secrets_uint64(m)
        # products in the ring: uint64 matmul wraps mod 2^64
        z = u @ v
        z2 = u.T @ v2
        to_a.send(f"triple{k}", {"seed": seed})
        to_b.send(
            f"triple{k}",
            {"u": u - u_a, "v": v - v_a, "z": z - z_a, "v2": v2 - v2_a, "z2": z2 - z2_a},
        )


def secrets_uint64(shape: int | tuple[int, ...]) -> np.ndarray:
    size = int(np.prod(shape))
    return np.frombuffer(secrets.token_bytes(8 * size), dtype=_U64).reshape(shape).copy()


class _HETriples:
    """A party's triple source without a dealer: HE between the two parties (see
    :mod:`aisec.crypto.triples`); :meth:`setup` makes and exchanges the keys (not timed)."""

    def __init__(self, i: int, ch: Channel, scheme: str, key_bits: int) -> None:
        self.i, self.ch, self.scheme, self.bits = i, ch, scheme, key_bits
        self.sk: Any = None

    def setup(self) -> None:
        from aisec.crypto.keys import generate_he_keypair, public_key_from_bytes

        self.sk = generate_he_keypair(self.scheme, self.bits)
        self.ch.send("he_keys", {"pk": self.sk.public.to_bytes()})
        self.peer_pk = public_key_from_bytes(self.ch.recv("he_keys")["pk"], "peer key")

    def recv(self, step: str, m: int, d: int) -> dict[str, np.ndarray]:
        from aisec.crypto.triples import he_matvec_triples

        u, v, v2 = secrets_uint64((m, d)), secrets_uint64(d), secrets_uint64(m)
        z, z2 = he_matvec_triples(self.i, self.ch, self.sk, self.peer_pk, u, v, v2, step)
        return {"u": u, "v": v, "z": z, "v2": v2, "z2": z2}


def _party(
    i: int,
    ch: Channel,
    dealer: Channel | _HETriples,
    x_share: np.ndarray,
    y: np.ndarray | None,
    batches: list[np.ndarray],
    d: int,
    fp: FixedPoint,
    coef: tuple[float, float],
    lr: float,
    l2: float,
    out: dict[str, Any],
) -> None:
    f = fp.frac_bits
    w = np.zeros(d, dtype=_U64)
    q0, q1 = fp.encode_ring(np.array([coef[0]]))[0], fp.encode_ring(np.array([coef[1]]))[0]
    decay = fp.encode_ring(np.array([1.0 - lr * l2]))[0]
    times, offline = [], []
    if isinstance(dealer, _HETriples):
        dealer.setup()
    for k, rows in enumerate(batches):
        t0 = time.perf_counter()
        m = len(rows)
        if isinstance(dealer, _HETriples):
            tri = dealer.recv(f"triple{k}", m, d)
            offline.append(time.perf_counter() - t0)
        else:
            tri = dealer.recv(f"triple{k}")
        if i == 0 and "seed" in tri:
            seed = tri["seed"]
            u, v, z_t = prg_uint64(seed, (m, d), 0), prg_uint64(seed, d, 1), prg_uint64(seed, m, 2)
            v2, z2 = prg_uint64(seed, m, 3), prg_uint64(seed, d, 4)
        else:
            u, v, z_t, v2, z2 = tri["u"], tri["v"], tri["z"], tri["v2"], tri["z2"]
        xb = x_share[rows]
        e_mine, f_mine = xb - u, w - v
        ch.send(f"open_ef{k}", {"e": e_mine, "f": f_mine})
        peer = ch.recv(f"open_ef{k}")
        big_e, big_f = e_mine + peer["e"], f_mine + peer["f"]
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
        big_f2 = f2_mine + ch.recv(f"open_f2{k}")["f2"]
        g = big_e.T @ v2 + u.T @ big_f2 + z2
        if i == 1:
            g = g + big_e.T @ big_f2
        g = truncate_ring_share(g, f, i)
        step = fp.encode_ring(np.array([lr / m]))[0]
        w = truncate_ring_share(w * decay, f, i) - truncate_ring_share(g * step, f, i)
        times.append(time.perf_counter() - t0)
    ch.send("reveal", {"w": w})
    other = ch.recv("reveal")["w"]
    out[i] = fp.decode_ring(w + other)
    out[f"times{i}"] = times
    out[f"offline{i}"] = offline


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
    src_a: Channel | _HETriples = ad
    src_b: Channel | _HETriples = bd
    threads = []
    if triples == "he":
        src_a, src_b = (
            _HETriples(0, ab, he_scheme, key_bits),
            _HETriples(1, ba, he_scheme, key_bits),
        )
    else:
        threads.append(
            threading.Thread(target=guard, args=(_dealer, da, db, [len(b) for b in batches], d))
        )
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
                d,
                fp,
                coef,
                learning_rate,
                l2,
                out,
            ),
        ),
        threading.Thread(
            target=guard,
            args=(_party, 1, ba, src_b, dense_b, y, batches, d, fp, coef, learning_rate, l2, out),
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
    offline = [max(a, b) for a, b in zip(out["offline0"], out["offline1"], strict=True)]
    return SecureMLResult(
        out[0], len(batches), seconds, per_batch, bytes_parties, bytes_dealer, triples, offline
    )
