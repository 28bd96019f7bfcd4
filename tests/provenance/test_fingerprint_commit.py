"""Ownership claims: Merkle commitment, Ed25519 signatures, and forged claims rejected."""

from __future__ import annotations

import copy
import os
import stat

import pytest

from aisec.provenance.fingerprint import (
    ClaimError,
    Fingerprint,
    FingerprintSet,
    check_claim,
    generate_owner_key,
    load_owner_key,
    make_claim,
    make_commitment,
)
from aisec.provenance.fingerprint.commit import (
    leaf_hash,
    merkle_proof,
    merkle_root,
    root_from_proof,
)


def _set(n: int = 7, tag: str = "k") -> FingerprintSet:
    fps = tuple(Fingerprint(f"{tag} key {i}", f"resp{i}", 0.002) for i in range(n))
    return FingerprintSet(fps, "perinucleus", "m", "t" * 16)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 9])
def test_every_merkle_proof_leads_to_the_root_and_a_changed_leaf_does_not(n):
    fps = _set(n)
    leaves = [leaf_hash(i, f) for i, f in enumerate(fps.fingerprints)]
    root = merkle_root(leaves)
    for i in range(n):
        assert root_from_proof(leaves[i], merkle_proof(leaves, i)) == root
    forged = Fingerprint("k key 0", "other", 0.002, fps.fingerprints[0].salt)
    assert root_from_proof(leaf_hash(0, forged), merkle_proof(leaves, 0)) != root


@pytest.fixture()
def owner(tmp_path):
    path = tmp_path / "owner.pem"
    generate_owner_key(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    return load_owner_key(path)


@pytest.fixture()
def forger(tmp_path):
    path = tmp_path / "forger.pem"
    generate_owner_key(path)
    return load_owner_key(path)


def test_commitment_reveals_nothing_about_the_pairs(owner):
    fps = _set()
    c = make_commitment(fps, owner, "model-x")
    text = str(c)
    assert not any(f.key in text or f.response in text or f.salt in text for f in fps.fingerprints)


def test_valid_claim_checks_and_reveals_only_spent_keys(owner):
    fps = _set()
    c = make_commitment(fps, owner, "model-x")
    claim = make_claim(fps, owner, c, [1, 4], "suspect-model")
    ok = check_claim(claim, published=c)
    assert ok.indices == [1, 4] and ok.suspect == "suspect-model"
    assert [f.key for f in ok.fingerprints.fingerprints] == ["k key 1", "k key 4"]
    assert "k key 0" not in str(claim)


def test_forged_claim_signature_is_rejected(owner, forger):
    fps = _set()
    c = make_commitment(fps, owner, "model-x")
    claim = make_claim(fps, owner, c, [2], "suspect")
    claim["body"]["suspect"] = "another-model"  # edited after signing
    with pytest.raises(ClaimError, match="claim signature does not verify"):
        check_claim(claim, published=c)
    claim2 = make_claim(fps, owner, c, [2], "suspect")
    claim2["signature"] = forger.sign(b"whatever").hex()
    with pytest.raises(ClaimError, match="claim signature does not verify"):
        check_claim(claim2)


def test_claim_revealing_an_uncommitted_pair_fails_its_proof(owner):
    fps = _set()
    c = make_commitment(fps, owner, "model-x")
    claim = make_claim(fps, owner, c, [3], "suspect")
    body = copy.deepcopy(claim["body"])
    body["revealed"][0]["response"] = "something-else"  # re-signed by the owner key itself
    from aisec.provenance.fingerprint.commit import _sign

    forged = {"body": body, "signature": _sign(owner, body)}
    with pytest.raises(ClaimError, match="Merkle proof does not lead to the committed root"):
        check_claim(forged, published=c)


def test_claim_on_another_commitment_fails_the_published_root(owner, forger):
    fps = _set()
    published = make_commitment(fps, owner, "model-x")
    fake = _set(tag="fake")  # a forger's own pairs, committed and claimed with their own key
    fake_c = make_commitment(fake, forger, "model-x")
    claim = make_claim(fake, forger, fake_c, [0, 1], "suspect")
    assert check_claim(claim).indices == [0, 1]  # consistent in itself ...
    with pytest.raises(ClaimError, match="root does not match the published commitment"):
        check_claim(claim, published=published)  # ... but not what was published


def test_tampered_commitment_signature_is_rejected(owner):
    fps = _set()
    c = make_commitment(fps, owner, "model-x")
    claim = make_claim(fps, owner, c, [0], "suspect")
    claim["body"]["commitment"]["body"]["n"] = 99
    with pytest.raises(ClaimError, match="commitment signature does not verify"):
        check_claim(claim)


def test_claim_with_the_wrong_key_or_set_is_refused(owner, forger):
    from aisec.errors import ParameterError

    fps = _set()
    c = make_commitment(fps, owner, "model-x")
    with pytest.raises(ParameterError, match="key that signed the commitment"):
        make_claim(fps, forger, c, [0], "suspect")
    with pytest.raises(ParameterError, match="set the commitment was made for"):
        make_claim(_set(tag="other"), owner, c, [0], "suspect")
