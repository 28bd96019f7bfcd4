"""Paillier: homomorphism, CRT/fast-path consistency, serialisation, key files."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aisec.crypto.paillier import PaillierPublicKey, PaillierSecretKey, generate_keypair
from aisec.errors import InputFileError, ParameterError

BOUND = 2**200
ints = st.integers(min_value=-BOUND, max_value=BOUND)


@pytest.fixture(scope="module")
def sk() -> PaillierSecretKey:
    return generate_keypair(1024)


@settings(max_examples=25, deadline=None)
@given(a=ints, b=ints, k=st.integers(min_value=-(2**64), max_value=2**64))
def test_homomorphism(sk: PaillierSecretKey, a: int, b: int, k: int) -> None:
    pk = sk.public
    ca, cb = pk.encrypt([a]), sk.encrypt([b])  # public path and owner's CRT path
    assert sk.decrypt(pk.add(ca, cb)) == [a + b]
    assert sk.decrypt(pk.add_plain(ca, [b])) == [a + b]
    assert sk.decrypt(pk.mul_plain(ca, [k])) == [a * k]
    assert sk.decrypt([pk.sum(ca + cb)]) == [a + b]


def test_encryption_is_randomised(sk: PaillierSecretKey) -> None:
    pk = sk.public
    c1, c2 = pk.encrypt([7, 7])
    assert c1 != c2
    r = pk.rerandomize([c1])[0]
    assert r != c1 and sk.decrypt([r]) == [7]


def test_ciphertext_bytes_roundtrip_and_range(sk: PaillierSecretKey) -> None:
    pk = sk.public
    cts = pk.encrypt([1, -2, 3])
    buf = pk.ciphertexts_to_bytes(cts)
    assert len(buf) == 3 * pk.ciphertext_bytes
    assert pk.ciphertexts_from_bytes(buf) == cts
    with pytest.raises(ParameterError):
        pk.ciphertexts_from_bytes(buf[:-1])
    with pytest.raises(ParameterError):
        pk.ciphertexts_from_bytes(b"\xff" * pk.ciphertext_bytes)


def test_key_serialisation(sk: PaillierSecretKey) -> None:
    pk2 = PaillierPublicKey.from_bytes(sk.public.to_bytes())
    assert pk2 == sk.public and pk2.fingerprint == sk.public.fingerprint
    sk2 = PaillierSecretKey.from_bytes(sk.to_bytes())
    assert sk2.decrypt(sk.public.encrypt([42])) == [42]
    assert "p=" not in repr(sk2) and str(int(sk.p)) not in repr(sk2)
    with pytest.raises(InputFileError):
        PaillierPublicKey.from_bytes(b"garbage")


def test_bad_key_size() -> None:
    with pytest.raises(ParameterError, match="key_bits"):
        generate_keypair(1000)
