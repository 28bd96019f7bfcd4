"""HE work over 1 and 2 local workers gives the same results."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from aisec.crypto.paillier import generate_keypair
from aisec.crypto.parallel import HEWorkers
from aisec.crypto.sparse_he import integer_csr


def test_two_workers_match_inline() -> None:
    sk = generate_keypair(512)
    pk = sk.public
    vals = list(range(-20, 20))
    m = sp.random(40, 10, density=0.3, random_state=np.random.RandomState(0), format="csr")
    m.data = np.ceil(m.data * 5)
    x = integer_csr(m)
    w = pk.encrypt(list(range(10)))
    with HEWorkers(2, min_chunk=4) as pool:
        assert pool.backend == "processes"
        cts = pool.encrypt(sk, vals)
        assert pool.decrypt(sk, cts) == vals
        got = sk.decrypt(pool.matvec(pk, x, w))
        sent, mine = pool.mask(pk, pk.encrypt(vals), 8, 0)
        many = list(range(-300, 300))
        psent, pmine, lay = pool.mask_packed(pk, pk.encrypt(many), 12, 0)
        ptheirs = pool.unmask_packed(sk, psent, lay["slot"], lay["count"], 0)
    assert [a + b for a, b in zip(pmine, ptheirs, strict=True)] == many
    assert got == [int(v) for v in x.toarray() @ np.arange(10)]
    assert [a + b for a, b in zip(mine, sk.decrypt(sent), strict=True)] == vals


@pytest.mark.slow
def test_ray_local_cluster_matches_inline() -> None:
    pytest.importorskip("ray")
    import ray

    sk = generate_keypair(512)
    vals = list(range(-100, 100))
    try:
        with HEWorkers(2, ray_address="local", min_chunk=8) as pool:
            assert pool.backend == "ray"
            cts = pool.encrypt(sk, vals)
            assert pool.decrypt(sk, cts) == vals
            sent, mine, lay = pool.mask_packed(sk.public, cts, 10, 0)
            theirs = pool.unmask_packed(sk, sent, lay["slot"], lay["count"])
    finally:
        ray.shutdown()
    assert [a + b for a, b in zip(mine, theirs, strict=True)] == vals
