"""The HE backend registry: names, sizes, key loading, and a missing library named as an extra."""

from __future__ import annotations

import importlib
import sys

import pytest

from aisec.crypto.he import (
    HE_BACKENDS,
    available_backends,
    generate_he_keypair,
    key_scheme,
    public_key_from_bytes,
    secret_key_from_bytes,
)
from aisec.errors import DependencyError, InputFileError, ParameterError, UnknownNameError


def _hide(monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    """Make ``module`` unimportable and forget aisec's crypto modules that imported it (both are
    restored after the test, package attributes included, so later tests see the same classes)."""
    monkeypatch.setitem(sys.modules, module, None)
    for name in list(sys.modules):
        if name.startswith("aisec.crypto.") and name != "aisec.crypto.he":
            parent, _, child = name.rpartition(".")
            monkeypatch.setattr(sys.modules[parent], child, sys.modules[name], raising=False)
            monkeypatch.delitem(sys.modules, name)


@pytest.mark.parametrize("name", HE_BACKENDS.names())
def test_backend_without_its_library_raises_dependency_error(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    scheme = HE_BACKENDS.get(name)
    _hide(monkeypatch, scheme.requires)
    with pytest.raises(DependencyError, match=r"aisec\[crypto\]") as err:
        generate_he_keypair(name, scheme.key_bits[0])
    assert err.value.extra == "crypto" and scheme.requires in err.value.module
    with pytest.raises(DependencyError):
        public_key_from_bytes(scheme.magic[0] + b"1\n\x04\x00junk")
    assert not scheme.available() and name not in available_backends()


@pytest.mark.parametrize("module", ["paillier", "sparse_he", "parallel"])
def test_gmpy2_modules_raise_dependency_error_without_gmpy2(
    monkeypatch: pytest.MonkeyPatch, module: str
) -> None:
    _hide(monkeypatch, "gmpy2")
    with pytest.raises(DependencyError) as err:
        importlib.import_module(f"aisec.crypto.{module}")
    assert (err.value.module, err.value.extra) == ("gmpy2", "crypto")


def test_unknown_backend_lists_the_registered_names() -> None:
    with pytest.raises(UnknownNameError, match="gmpy2-paillier"):
        generate_he_keypair("paillier-typo", 1024)


def test_key_size_outside_the_backend_sizes_is_refused() -> None:
    with pytest.raises(ParameterError, match="gmpy2-paillier key_bits"):
        generate_he_keypair("gmpy2-paillier", 1000)


def test_key_bytes_of_no_registered_scheme_are_refused() -> None:
    assert key_scheme(b"AISEC-NOTHING-1\n") is None and key_scheme("text") is None
    with pytest.raises(InputFileError, match="unknown header"):
        public_key_from_bytes(b"garbage", where="peer key")
    with pytest.raises(InputFileError, match="expected bytes"):
        public_key_from_bytes("AISEC-PAILLIER-PUB-1\n")  # type: ignore[arg-type]
    with pytest.raises(InputFileError, match="key.bin"):
        secret_key_from_bytes(b"\x00" * 40, where="key.bin")


def test_heu_paillier_loads_a_ciphertext_whose_montgomery_form_needs_the_top_bit() -> None:
    """HEU reads the serialised Montgomery value as signed: one with its top bit set needs an
    extra byte (about 1 in 8 foreign ciphertexts; before the fix they decrypted to garbage)."""
    from aisec.crypto.he import HE_BACKENDS, generate_he_keypair

    phe = pytest.importorskip("phe")
    if not HE_BACKENDS.get("heu-zpaillier").available():
        pytest.skip("needs sf-heu (extra `crypto`)")
    for _ in range(20):  # a key whose n^2 fills its last byte, then a ciphertext that needs it
        sk = generate_he_keypair("heu-zpaillier", 1024)
        pk = sk.public
        n, nsq = int(pk.n), int(pk.n) ** 2
        if nsq.bit_length() % 8 == 0:
            break
    ref = phe.paillier.PaillierPublicKey(n)
    for _ in range(400):
        c = ref.encrypt(2**62 + 1).ciphertext()
        if (c * pk._montgomery_r % nsq).bit_length() == nsq.bit_length():
            break
    else:
        pytest.skip("no such ciphertext drawn for this key")
    loaded = pk.ciphertexts_from_ints([c])
    assert sk.decrypt(loaded) == [2**62 + 1]
    assert pk.ciphertexts_to_ints(loaded) == [c]
