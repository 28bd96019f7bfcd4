"""Ownership claims a third party can check: a signed Merkle commitment to the fingerprints.

At insertion the owner publishes a **commitment**: the Merkle root over salted hashes of the
fingerprints, their number and the model they were put in, signed with the owner's Ed25519 key
(``cryptography``). Nothing about any key or response can be read from it: each leaf is
``SHA-256(0x00 || salt || canonical JSON of {index, key, response, base_prob})`` with a fresh
32-byte salt, so even a guessed key cannot be tested against it.

Later a **claim** reveals only the fingerprints it spends (key, response, base_prob, salt and
the Merkle path of each), names the suspect model, and is signed by the same key. A checker
(:func:`check_claim`) needs only the claim (and, if it has one, the commitment as published at
insertion). It checks, and names the first failure:

1. the commitment's signature under its public key (and that it equals the published one);
2. the claim's signature under the same key;
3. each revealed fingerprint's Merkle path up to the committed root;
4. then, with the suspect model at hand, the responses: how many revealed keys the model
   answers with their response, and the ownership p-value (:mod:`.verify`).

Threat model: the owner's private key stays with the owner (0600 file); the salts and the
unspent fingerprints stay secret; a claim spends its fingerprints (the suspect operator sees
those keys and could train the model away from them), which is why many are inserted and the
secret file records which are spent. The commitment proves the fingerprints were fixed when it
was published (the publication time is outside this scheme: a timestamping service or a
public log would carry it); it does not prove that nobody else inserted the same pairs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aisec.errors import DependencyError, InputFileError, ParameterError
from aisec.io import read_user_text, write_private
from aisec.provenance.fingerprint.store import Fingerprint, FingerprintSet

__all__ = [
    "COMMIT_SCHEME",
    "CLAIM_SCHEME",
    "ClaimError",
    "generate_owner_key",
    "load_owner_key",
    "leaf_hash",
    "merkle_root",
    "merkle_proof",
    "root_from_proof",
    "make_commitment",
    "make_claim",
    "check_claim",
]

COMMIT_SCHEME = "aisec-oml-commitment-v1"
CLAIM_SCHEME = "aisec-oml-claim-v1"


class ClaimError(InputFileError):
    """A claim or commitment that does not check out; the message says which check failed."""


def _canon(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def leaf_hash(index: int, fp: Fingerprint) -> bytes:
    body = {"index": index, "key": fp.key, "response": fp.response, "base_prob": fp.base_prob}
    return _sha(b"\x00" + bytes.fromhex(fp.salt) + _canon(body))


def _node(left: bytes, right: bytes) -> bytes:
    return _sha(b"\x01" + left + right)


def _levels(leaves: Sequence[bytes]) -> list[list[bytes]]:
    levels = [list(leaves)]
    while len(levels[-1]) > 1:
        cur = levels[-1]
        nxt = [_node(cur[i], cur[i + 1]) for i in range(0, len(cur) - 1, 2)]
        if len(cur) % 2:
            nxt.append(cur[-1])  # an odd node moves up unchanged (n is committed)
        levels.append(nxt)
    return levels


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    if not leaves:
        raise ParameterError("leaves", "must be non-empty", 0)
    return _levels(leaves)[-1][0]


def merkle_proof(leaves: Sequence[bytes], index: int) -> list[tuple[str, str]]:
    """The path of leaf ``index``: (side of the sibling, sibling hash hex) from leaf to root."""
    path = []
    for level in _levels(leaves)[:-1]:
        sib = index ^ 1
        if sib < len(level):
            path.append(("L" if sib < index else "R", level[sib].hex()))
        index //= 2
    return path


def root_from_proof(leaf: bytes, proof: Sequence[Sequence[str]]) -> bytes:
    h = leaf
    for side, sib_hex in proof:
        sib = bytes.fromhex(sib_hex)
        h = _node(sib, h) if side == "L" else _node(h, sib)
    return h


# --- keys -----------------------------------------------------------------------------------


def _ed25519() -> Any:
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise DependencyError("cryptography", "crypto") from None
    return ed25519


def generate_owner_key(path: str | Path) -> str:
    """Write a new Ed25519 private key (PEM, 0600) and return its public key (hex)."""
    from cryptography.hazmat.primitives import serialization

    key = _ed25519().Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_private(path, pem)
    return _public_hex(key)


def load_owner_key(path: str | Path) -> Any:
    from cryptography.hazmat.primitives import serialization

    p = Path(path)
    if not p.is_file():
        raise InputFileError(p, "no such owner key file")
    try:
        key = serialization.load_pem_private_key(p.read_bytes(), password=None)
    except (ValueError, TypeError):
        raise InputFileError(p, "is not a PEM private key") from None
    if not isinstance(key, _ed25519().Ed25519PrivateKey):
        raise InputFileError(p, "is not an Ed25519 private key")
    return key


def _public_hex(key: Any) -> str:
    from cryptography.hazmat.primitives import serialization

    return (
        key.public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        .hex()
    )


def _sign(key: Any, body: dict[str, Any]) -> str:
    return key.sign(_canon(body)).hex()


def _verify_sig(public_hex: str, signature_hex: str, body: dict[str, Any]) -> bool:
    from cryptography.exceptions import InvalidSignature

    ed = _ed25519()
    try:
        pub = ed.Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_hex))
        pub.verify(bytes.fromhex(signature_hex), _canon(body))
    except (InvalidSignature, ValueError):
        return False
    return True


# --- commitment and claim -------------------------------------------------------------------


def make_commitment(fps: FingerprintSet, key: Any, model: str) -> dict[str, Any]:
    """The signed, publishable commitment to all fingerprints of ``fps`` in ``model``."""
    leaves = [leaf_hash(i, f) for i, f in enumerate(fps.fingerprints)]
    body = {
        "scheme": COMMIT_SCHEME,
        "root": merkle_root(leaves).hex(),
        "n": len(leaves),
        "model": model,
        "tokenizer": fps.tokenizer,
        "strategy": fps.strategy,
        "public_key": _public_hex(key),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return {"body": body, "signature": _sign(key, body)}


def make_claim(
    fps: FingerprintSet, key: Any, commitment: dict[str, Any], indices: Sequence[int], suspect: str
) -> dict[str, Any]:
    """A signed claim revealing the fingerprints ``indices`` against ``suspect``."""
    n = len(fps)
    if not indices:
        raise ParameterError("indices", "must name at least one fingerprint to reveal", 0)
    for i in indices:
        if not 0 <= i < n:
            raise ParameterError("indices", f"must be in [0, {n})", i)
    _check_commitment(commitment, None, "commitment")
    if commitment["body"]["public_key"] != _public_hex(key):
        raise ParameterError(
            "owner_key", "must be the key that signed the commitment", "another key"
        )
    leaves = [leaf_hash(i, f) for i, f in enumerate(fps.fingerprints)]
    if merkle_root(leaves).hex() != commitment["body"]["root"]:
        raise ParameterError(
            "fingerprints", "must be the set the commitment was made for", "root differs"
        )
    revealed = []
    for i in indices:
        f = fps.fingerprints[i]
        revealed.append(
            {
                "index": int(i),
                "key": f.key,
                "response": f.response,
                "base_prob": f.base_prob,
                "salt": f.salt,
                "proof": [list(p) for p in merkle_proof(leaves, int(i))],
            }
        )
    body = {
        "scheme": CLAIM_SCHEME,
        "commitment": commitment,
        "suspect": suspect,
        "revealed": revealed,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return {"body": body, "signature": _sign(key, body)}


def _check_commitment(commitment: Any, published: dict[str, Any] | None, where: str) -> None:
    if (
        not isinstance(commitment, dict)
        or set(commitment) != {"body", "signature"}
        or not isinstance(commitment["body"], dict)
        or commitment["body"].get("scheme") != COMMIT_SCHEME
    ):
        raise ClaimError(where, f"is not an {COMMIT_SCHEME} commitment")
    body = commitment["body"]
    for k, t in (("root", str), ("public_key", str), ("n", int)):
        if not isinstance(body.get(k), t):
            raise ClaimError(where, f"commitment field {k!r} is missing or malformed")
    if not isinstance(commitment["signature"], str) or not _verify_sig(
        body["public_key"], commitment["signature"], body
    ):
        raise ClaimError(where, "commitment signature does not verify under its public key")
    if published is not None and published != commitment:
        if published.get("body", {}).get("root") != body["root"]:
            raise ClaimError(where, "committed root does not match the published commitment")
        raise ClaimError(where, "commitment differs from the published one")


@dataclass(frozen=True)
class ClaimCheck:
    """A claim whose signatures and proofs verified, with the fingerprints it reveals."""

    commitment: dict[str, Any]
    suspect: str
    fingerprints: FingerprintSet
    indices: list[int]


def check_claim(
    claim: Any, published: dict[str, Any] | None = None, where: str | Path = "<claim>"
) -> ClaimCheck:
    """Verify signatures and Merkle proofs of ``claim``; raise :class:`ClaimError` naming the
    first failure. The responses are checked separately against the model (:func:`verify`)."""
    if (
        not isinstance(claim, dict)
        or set(claim) != {"body", "signature"}
        or not isinstance(claim["body"], dict)
        or claim["body"].get("scheme") != CLAIM_SCHEME
    ):
        raise ClaimError(where, f"is not an {CLAIM_SCHEME} claim")
    body = claim["body"]
    commitment = body.get("commitment")
    _check_commitment(commitment, published, str(where))
    cbody = commitment["body"]
    if not isinstance(claim["signature"], str) or not _verify_sig(
        cbody["public_key"], claim["signature"], body
    ):
        raise ClaimError(where, "claim signature does not verify under the committed public key")
    revealed = body.get("revealed")
    if not isinstance(revealed, list) or not revealed:
        raise ClaimError(where, "reveals no fingerprint")
    root = bytes.fromhex(cbody["root"])
    fps, seen = [], set()
    for j, r in enumerate(revealed):
        try:
            idx = int(r["index"])
            fp = Fingerprint(
                str(r["key"]), str(r["response"]), float(r["base_prob"]), str(r["salt"])
            )
            leaf = leaf_hash(idx, fp)
            proof = [(str(s), str(h)) for s, h in r["proof"]]
            got = root_from_proof(leaf, proof)
        except (KeyError, TypeError, ValueError):
            raise ClaimError(where, f"revealed[{j}] is malformed") from None
        if not 0 <= idx < cbody["n"] or idx in seen:
            raise ClaimError(
                where, f"revealed[{j}] has an index outside the commitment or repeated"
            )
        if got != root:
            raise ClaimError(
                where, f"revealed[{j}]: Merkle proof does not lead to the committed root"
            )
        seen.add(idx)
        fps.append(fp)
    fset = FingerprintSet(
        tuple(fps),
        str(cbody.get("strategy", "?")),
        str(cbody.get("model", "?")),
        str(cbody.get("tokenizer", "?")),
    )
    return ClaimCheck(commitment, str(body.get("suspect", "")), fset, sorted(seen))


def read_json(path: str | Path, what: str) -> Any:
    text = read_user_text(path)
    try:
        return json.loads(text)
    except ValueError:
        raise InputFileError(path, f"is not valid JSON ({what})") from None
