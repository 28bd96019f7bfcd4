"""SSMM and the Beaver product: correct against numpy in Z_2^64 and with fixed point; the SSMM
leak is what the module says; bytes and rounds as counted by the channel."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.privacy._two import run_pair

from aisec.crypto.beaver import Dealer, he_shared_triple, private_product, ring_op, shared_product
from aisec.crypto.fixedpoint import FixedPoint
from aisec.crypto.sharing import truncate_ring_share
from aisec.privacy.ssmm import MATMULS, SSMM, make_matmul, ssmm_leak_left, ssmm_leak_right
from aisec.transport import inprocess_pair


def _ring(rng, shape):
    return rng.integers(0, 2**63, size=shape, dtype=np.uint64) * np.uint64(2) + rng.integers(
        0, 2, size=shape, dtype=np.uint64
    )


@pytest.mark.parametrize("b", [6, 7])
def test_ssmm_shares_sum_to_the_ring_product(b):
    rng = np.random.default_rng(0)
    p, q = _ring(rng, (3, b)), _ring(rng, (b, 5))
    ca, cb = inprocess_pair()
    m, n = run_pair(
        lambda: SSMM().multiply(0, ca, p, q.shape, "mm"),
        lambda: SSMM().multiply(1, cb, q, p.shape, "mm"),
    )
    assert np.array_equal(m + n, p @ q)


def test_ssmm_with_fixed_point_matches_numpy():
    rng = np.random.default_rng(1)
    fx = FixedPoint(16)
    p, q = rng.normal(size=(4, 10)), rng.normal(size=(10, 3))
    ca, cb = inprocess_pair()
    m, n = run_pair(
        lambda: SSMM().multiply(0, ca, fx.encode_ring(p), q.shape, "mm"),
        lambda: SSMM().multiply(1, cb, fx.encode_ring(q), p.shape, "mm"),
    )
    t0, t1 = truncate_ring_share(m, 16, 0), truncate_ring_share(n, 16, 1)
    assert np.allclose(fx.decode_ring(t0 + t1), p @ q, atol=1e-3)


def test_ssmm_leaks_adjacent_sums_and_differences():
    rng = np.random.default_rng(2)
    p = rng.integers(-5, 5, size=(3, 8)).astype(np.int64).view(np.uint64)
    q = rng.integers(-5, 5, size=(8, 4)).astype(np.int64).view(np.uint64)
    seen = {}
    a, b = SSMM(), SSMM()
    a.observe = lambda step, msg: seen.setdefault("A", msg)
    b.observe = lambda step, msg: seen.setdefault("B", msg)
    ca, cb = inprocess_pair()
    run_pair(
        lambda: a.multiply(0, ca, p, q.shape, "mm"), lambda: b.multiply(1, cb, q, p.shape, "mm")
    )
    assert np.array_equal(ssmm_leak_right(seen["A"]["q1"], seen["A"]["q2"]), q[0::2] - q[1::2])
    assert np.array_equal(ssmm_leak_left(seen["B"]["p1"], seen["B"]["p2"]), p[:, 0::2] + p[:, 1::2])


@pytest.mark.parametrize("name", ["ssmm", "beaver-dealer"])
def test_bytes_and_rounds_match_the_analytic_count(name):
    rng = np.random.default_rng(3)
    a, b, c = 5, 40, 7
    p, q = _ring(rng, (a, b)), _ring(rng, (b, c))
    dealer = Dealer()
    ma, mb = make_matmul(name, dealer=dealer), make_matmul(name, dealer=dealer)
    ca, cb = inprocess_pair()
    m, n = run_pair(
        lambda: ma.multiply(0, ca, p, q.shape, "mm"), lambda: mb.multiply(1, cb, q, p.shape, "mm")
    )
    assert np.array_equal(m + n, p @ q)
    sent = ca.stats.total().bytes_sent + cb.stats.total().bytes_sent
    payload = 8 * ma.online_elements(a, b, c)
    assert payload <= sent <= payload * 1.05 + 1024
    assert ca.stats.total().rounds == 1 and cb.stats.total().rounds == 1


def test_dealer_and_shared_beaver_products_match_numpy():
    rng = np.random.default_rng(4)
    dealer = Dealer()
    x, y = _ring(rng, (3, 6)), _ring(rng, (6, 2))
    x0 = _ring(rng, x.shape)
    y0 = _ring(rng, y.shape)
    ca, cb = inprocess_pair()
    s0, s1 = run_pair(
        lambda: shared_product(
            0, ca, x0, y0, dealer.shared_triple(0, "k", "matmul", x.shape, y.shape), "matmul", "s"
        ),
        lambda: shared_product(
            1,
            cb,
            x - x0,
            y - y0,
            dealer.shared_triple(1, "k", "matmul", x.shape, y.shape),
            "matmul",
            "s",
        ),
    )
    assert np.array_equal(s0 + s1, x @ y)
    w, z = _ring(rng, (4, 5)), _ring(rng, (4, 5))
    e0, e1 = run_pair(
        lambda: private_product(
            0, ca, w, z.shape, dealer.private_triple(0, "e", "mul", w.shape, z.shape), "mul", "e"
        ),
        lambda: private_product(
            1, cb, z, w.shape, dealer.private_triple(1, "e", "mul", w.shape, z.shape), "mul", "e"
        ),
    )
    assert np.array_equal(e0 + e1, w * z)


def test_he_made_triples_are_valid():
    pytest.importorskip("gmpy2")
    from aisec.crypto.he import generate_he_keypair

    ka, kb = (
        generate_he_keypair("gmpy2-paillier", 1024),
        generate_he_keypair("gmpy2-paillier", 1024),
    )
    ca, cb = inprocess_pair()
    ta, tb = run_pair(
        lambda: he_shared_triple(0, ca, ka, kb.public, "matmul", (2, 3), (3, 2), "t"),
        lambda: he_shared_triple(1, cb, kb, ka.public, "matmul", (2, 3), (3, 2), "t"),
    )
    assert np.array_equal(ta.c + tb.c, ring_op("matmul", ta.a + tb.a, ta.b + tb.b))
    rng = np.random.default_rng(5)
    p, q = _ring(rng, (2, 3)), _ring(rng, (3, 4))
    ma, mb = (
        make_matmul("beaver-he", sk=ka, peer_pk=kb.public),
        make_matmul("beaver-he", sk=kb, peer_pk=ka.public),
    )
    m, n = run_pair(
        lambda: ma.multiply(0, ca, p, q.shape, "mm"), lambda: mb.multiply(1, cb, q, p.shape, "mm")
    )
    assert np.array_equal(m + n, p @ q)


@pytest.mark.parametrize("name", MATMULS.names())
def test_every_registered_product_reconstructs_the_ring_product(name):
    """Contract: each product of the registry gives shares of P Q (odd inner dimension too)."""
    keys: list = [{}, {}]
    if name == "beaver-dealer":
        d = Dealer()
        keys = [{"dealer": d}, {"dealer": d}]
    elif name == "beaver-he":
        pytest.importorskip("gmpy2")
        from aisec.crypto.he import generate_he_keypair

        ka, kb = (generate_he_keypair("gmpy2-paillier", 512) for _ in range(2))
        keys = [{"sk": ka, "peer_pk": kb.public}, {"sk": kb, "peer_pk": ka.public}]
    rng = np.random.default_rng(6)
    p, q = _ring(rng, (2, 5)), _ring(rng, (5, 3))
    ma, mb = make_matmul(name, **keys[0]), make_matmul(name, **keys[1])
    ca, cb = inprocess_pair()
    m, n = run_pair(
        lambda: ma.multiply(0, ca, p, q.shape, "mm"), lambda: mb.multiply(1, cb, q, p.shape, "mm")
    )
    assert np.array_equal(m + n, p @ q)
    assert set(MATMULS.names()) == {"ssmm", "beaver-dealer", "beaver-he"}


@settings(max_examples=25, deadline=None)
@given(
    a=st.integers(1, 5),
    b=st.integers(1, 9),
    c=st.integers(1, 5),
    seed=st.integers(0, 2**32 - 1),
)
def test_ssmm_and_dealer_beaver_are_exact_for_any_shape(a, b, c, seed):
    rng = np.random.default_rng(seed)
    p, q = _ring(rng, (a, b)), _ring(rng, (b, c))
    dealer = Dealer()
    for name in ("ssmm", "beaver-dealer"):
        ma, mb = make_matmul(name, dealer=dealer), make_matmul(name, dealer=dealer)
        ca, cb = inprocess_pair()
        m, n = run_pair(
            lambda ma=ma, ca=ca: ma.multiply(0, ca, p, q.shape, "mm"),
            lambda mb=mb, cb=cb: mb.multiply(1, cb, q, p.shape, "mm"),
        )
        assert np.array_equal(m + n, p @ q), name
