"""Behavioural contract of every registered HE backend (a backend is checked the day it registers).

Each backend's keys must be additively homomorphic on signed plaintexts, wrap modulo the
plaintext modulus as :mod:`aisec.crypto.he` defines, serialise and reload their keys and
ciphertexts, and, for Paillier schemes, make ciphertexts that python-paillier decrypts with a key
built from the same factors, and decrypt python-paillier's.
Only a backend whose optional library is missing here is skipped, one parameter at a time.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aisec.crypto.he import (
    HE_BACKENDS,
    HEPublicKey,
    HESecretKey,
    generate_he_keypair,
    key_scheme,
    public_key_from_bytes,
    secret_key_from_bytes,
)
from aisec.errors import InputFileError

NAMES = HE_BACKENDS.names()
PAILLIER = [n for n in NAMES if HE_BACKENDS.get(n).paillier]


def _keys(name: str) -> HESecretKey:
    scheme = HE_BACKENDS.get(name)
    if not scheme.available():
        pytest.skip(f"{name}: its library ({scheme.requires}) is not installed (extra `crypto`)")
    return generate_he_keypair(name, scheme.key_bits[0])  # the smallest size: fast


@pytest.fixture(scope="module", params=NAMES)
def sk(request: pytest.FixtureRequest) -> HESecretKey:
    return _keys(request.param)


@pytest.fixture(scope="module", params=PAILLIER)
def paillier_sk(request: pytest.FixtureRequest) -> HESecretKey:
    return _keys(request.param)


def _signed(value: int, n: int) -> int:
    value %= n
    return value - n if value > n // 2 else value


def test_registry_holds_every_backend_the_toolkit_ships() -> None:
    assert {"gmpy2-paillier", "phe-paillier", "heu-ou", "heu-zpaillier"} <= set(NAMES)
    assert {"gmpy2-paillier", "phe-paillier", "heu-zpaillier"} <= set(PAILLIER)


def test_keys_implement_the_interface(sk: HESecretKey) -> None:
    pk = sk.public
    assert isinstance(sk, HESecretKey) and isinstance(pk, HEPublicKey)
    assert pk.scheme in NAMES and pk.bits in HE_BACKENDS.get(pk.scheme).key_bits
    assert 64 < pk.plaintext_bits < pk.bits


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_additive_homomorphism(sk: HESecretKey, data: st.DataObject) -> None:
    pk = sk.public
    half = 1 << (pk.plaintext_bits - 2)  # a + b stays inside the plaintext range
    vals = st.lists(st.integers(-half, half), min_size=1, max_size=4)
    a = data.draw(vals)
    b = data.draw(st.lists(st.integers(-half, half), min_size=len(a), max_size=len(a)))
    k = data.draw(st.lists(st.integers(-(2**20), 2**20), min_size=len(a), max_size=len(a)))
    small = [v >> 24 for v in a]  # k * small stays inside the range
    ca, cb = pk.encrypt(a), sk.encrypt(b)  # the public and the key owner's paths
    assert sk.decrypt(ca) == a and sk.decrypt(cb) == b
    assert sk.decrypt(pk.add(ca, cb)) == [x + y for x, y in zip(a, b, strict=True)]
    assert sk.decrypt(pk.add_plain(ca, b)) == [x + y for x, y in zip(a, b, strict=True)]
    got = sk.decrypt(pk.mul_plain(pk.encrypt(small), k))
    assert got == [x * y for x, y in zip(small, k, strict=True)]


def test_signed_plaintexts_at_the_edges_of_the_range(sk: HESecretKey) -> None:
    pk = sk.public
    top = (1 << pk.plaintext_bits) - 1
    vals = [0, 1, -1, top, -top, 2**64 - 5, -(2**63) - 1]
    cts = pk.encrypt(vals)
    assert sk.decrypt(cts) == vals
    assert sk.decrypt(pk.add(cts, pk.encrypt([-v for v in vals]))) == [0] * len(vals)
    assert sk.decrypt(pk.mul_plain(cts, [-1] * len(vals))) == [-v for v in vals]


def test_paillier_arithmetic_wraps_modulo_n(paillier_sk: HESecretKey) -> None:
    pk = paillier_sk.public
    n, top = pk.n, 1 << (pk.plaintext_bits - 1)
    a = [top, -top, top + 12345]
    k = [top - 1, top - 3, -(top - 7)]  # every product is far beyond n / 2
    got = paillier_sk.decrypt(pk.mul_plain(pk.encrypt(a), k))
    assert got == [_signed(x * y, n) for x, y in zip(a, k, strict=True)]
    assert all(-n // 2 <= v <= n // 2 for v in got)


def test_vector_operations(sk: HESecretKey) -> None:
    pk = sk.public
    vals = [10, -20, 30, -40, 50]
    cts = pk.encrypt(vals)
    assert pk.count(cts) == 5
    assert sk.decrypt(pk.take(cts, [4, 0, 0])) == [50, 10, 10]
    assert sk.decrypt(pk.slice(cts, 1, 3)) == [-20, 30]
    pk.put(cts, [1, 3], pk.encrypt([7, 8]))
    assert sk.decrypt(cts) == [10, 7, 30, 8, 50]


def test_key_and_ciphertext_serialisation_round_trip(sk: HESecretKey) -> None:
    pk = sk.public
    name = pk.scheme
    assert key_scheme(pk.to_bytes()) == name and key_scheme(sk.to_bytes()) == name
    pk2 = public_key_from_bytes(pk.to_bytes())
    assert type(pk2) is type(pk) and pk2 == pk and pk2.fingerprint == pk.fingerprint
    assert pk2.plaintext_bits == pk.plaintext_bits and pk2.to_bytes() == pk.to_bytes()
    sk2 = secret_key_from_bytes(sk.to_bytes())
    assert sk2.public == pk
    cts = pk2.encrypt([5, -6, 2**40])  # the reloaded public key encrypts for the old secret key
    back = pk.ciphertexts_from_bytes(pk2.ciphertexts_to_bytes(cts))
    assert sk.decrypt(back) == [5, -6, 2**40] and sk2.decrypt(cts) == [5, -6, 2**40]
    with pytest.raises(InputFileError):
        public_key_from_bytes(HE_BACKENDS.get(name).magic[0] + b"1\n\x04\x00garbage")
    with pytest.raises(InputFileError):
        secret_key_from_bytes(HE_BACKENDS.get(name).magic[1] + b"1\n\x04\x00garbage")


def test_secret_key_repr_shows_no_key_material(paillier_sk: HESecretKey) -> None:
    text = repr(paillier_sk) + str(paillier_sk)
    for secret in (paillier_sk.p, paillier_sk.q):
        assert str(int(secret)) not in text and f"{int(secret):X}" not in text.upper()


def test_paillier_ciphertexts_cross_decrypt_with_python_paillier(
    paillier_sk: HESecretKey,
) -> None:
    phe = pytest.importorskip("phe", reason="python-paillier (extra `crypto`) is not installed")
    sk, pk = paillier_sk, paillier_sk.public
    n = int(pk.n)
    assert int(sk.p) * int(sk.q) == n
    ref_pk = phe.paillier.PaillierPublicKey(n)
    ref_sk = phe.paillier.PaillierPrivateKey(ref_pk, int(sk.p), int(sk.q))
    vals = [0, 7, -7, 2**62 + 1, -(2**70)]
    # ours -> python-paillier: fresh (public and owner paths) and computed ciphertexts
    made = {
        "public": (pk.encrypt(vals), vals),
        "owner": (sk.encrypt(vals), vals),
        "sum": (pk.add(pk.encrypt(vals), pk.encrypt(vals)), [2 * v for v in vals]),
    }
    for what, (cts, want) in made.items():
        got = [_signed(ref_sk.raw_decrypt(c), n) for c in pk.ciphertexts_to_ints(cts)]
        assert got == want, what
    # python-paillier -> ours
    theirs = [ref_pk.encrypt(v).ciphertext() for v in vals]
    loaded = pk.ciphertexts_from_ints(theirs)
    assert sk.decrypt(loaded) == vals
    assert pk.ciphertexts_to_ints(loaded) == theirs
    assert sk.decrypt(pk.add(loaded, pk.encrypt(vals))) == [2 * v for v in vals]
