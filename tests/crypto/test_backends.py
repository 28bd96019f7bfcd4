"""Every available HE backend satisfies the same vector contract."""

from __future__ import annotations

import pytest

from aisec.crypto.backends import HE_BACKENDS, available_backends, make_scheme


@pytest.mark.parametrize("name", HE_BACKENDS.names())
def test_backend_contract(name: str) -> None:
    if name not in available_backends():
        pytest.skip(f"{name}: its optional library is not installed")
    s = make_scheme(name, 1024 if name.startswith("heu") else 512)
    a, b, k = [5, -3, 2**40], [7, 11, -(2**39)], [3, -2, 5]
    ca, cb = s.encrypt(a), s.encrypt(b)
    assert s.decrypt(ca) == a
    assert s.decrypt(s.add(ca, cb)) == [x + y for x, y in zip(a, b, strict=True)]
    assert s.decrypt(s.mul_plain(ca, k)) == [x * y for x, y in zip(a, k, strict=True)]
    assert len(s.to_bytes(ca)) > 0
