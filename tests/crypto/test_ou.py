"""The HEU Okamoto-Uchiyama keys behave like the gmpy2 Paillier keys under CAESAR's interface."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from aisec.crypto import h2s
from aisec.crypto.he import generate_he_keypair, public_key_from_bytes, secret_key_from_bytes
from aisec.errors import InputFileError, ParameterError


@pytest.fixture(scope="module")
def sk():
    # each test that needs HEU skips alone where sf-heu is missing, not the whole module
    pytest.importorskip(
        "heu", reason="sf-heu (the optional HEU backend, extra `crypto`) is missing"
    )
    return generate_he_keypair("heu-ou", 1024)


def test_vector_operations_and_sparse_products(sk, rng: np.random.Generator) -> None:
    pk = sk.public
    w = rng.integers(-(2**40), 2**40, size=30).tolist()
    cw = pk.encrypt(w)
    assert sk.decrypt(pk.add_plain(cw, [1] * 30)) == [v + 1 for v in w]
    edge = [2**64 - 5, 2**63 + 7, -(2**63) - 1]  # uint64-range ints must stay exact
    assert sk.decrypt(pk.encrypt(edge)) == edge
    m = np.array([[2**64 - 1, 2], [3, 2**63]], dtype=np.uint64)
    got = sk.decrypt(pk.matmul_plain(m, pk.encrypt([5, 2**62])))
    assert got == [int(m[0, 0]) * 5 + 2 * 2**62, 3 * 5 + 2**63 * 2**62]
    assert sk.decrypt(pk.mul_plain(cw, [-3] * 30)) == [-3 * v for v in w]
    assert sk.decrypt(pk.take(cw, [4, 2])) == [w[4], w[2]]
    pk.put(cw, [0], pk.take(cw, [1]))
    w[0] = w[1]
    x = sp.random(12, 30, density=0.2, format="csr", random_state=1)
    for data in (np.ones_like(x.data), rng.integers(-5, 6, size=x.nnz)):
        xi = sp.csr_matrix((data.astype(np.int64), x.indices, x.indptr), shape=x.shape)
        assert sk.decrypt(pk.matvec(xi, cw)) == (xi @ np.array(w, dtype=np.int64)).tolist()
        e = rng.integers(-1000, 1000, size=12).tolist()
        got = sk.decrypt(pk.rmatvec(xi, pk.encrypt(e)))
        assert got == (xi.T @ np.array(e, dtype=np.int64)).tolist()
    # rows with no non-zeros (binary, integer, all empty) give encryptions of 0
    for data in ([1, 1], [3, -2]):
        xe = sp.csr_matrix((data, ([1, 3], [0, 7])), shape=(5, 30), dtype=np.int64)
        assert sk.decrypt(pk.matvec(xe, cw)) == (xe @ np.array(w, dtype=np.int64)).tolist()
    assert sk.decrypt(pk.matvec(sp.csr_matrix((4, 30), dtype=np.int64), cw)) == [0] * 4


def test_packed_h2s_reconstructs(sk, rng: np.random.Generator) -> None:
    pk = sk.public
    m = rng.integers(-(2**50), 2**50, size=23).tolist()
    sent, mine, layout = h2s.mask_packed(pk, pk.encrypt(m), 52, 0)
    theirs = h2s.unmask_packed(sk, sent, layout["slot"], layout["count"], 0)
    assert [a + b for a, b in zip(mine, theirs, strict=True)] == m
    _, k = h2s.pack_layout(pk, 52)
    assert k >= 2 and pk.count(sent) == -(-len(m) // k)


def test_key_bytes_round_trip_and_reject_garbage(sk) -> None:
    sk2 = secret_key_from_bytes(sk.to_bytes())
    pk2 = public_key_from_bytes(sk.public.to_bytes())
    assert pk2 == sk.public and pk2.fingerprint == sk.public.fingerprint
    assert sk2.decrypt(pk2.encrypt([7, -7])) == [7, -7]
    assert "OU" not in repr(sk2).split("id=")[1]  # the repr names no key material
    with pytest.raises(InputFileError):
        public_key_from_bytes(b"AISEC-OU-PUB-1\n\x08\x00garbage")
    # keys stored before the HEU backends were unified keep their OU tags (CAESAR checkpoints)
    assert sk.to_bytes().startswith(b"AISEC-OU-SEC-1\n")
    assert sk.public.to_bytes().startswith(b"AISEC-OU-PUB-1\n")
    with pytest.raises(ParameterError):
        sk.public.ciphertexts_from_bytes(b"\x00\x01not an array")
    with pytest.raises(ParameterError):
        sk.public.encrypt([1 << (sk.public.plaintext_bits + 1)])
