"""``aisec fingerprint``: generate -> insert -> verify -> claim -> check-claim on tiny-llama, and
forged or malformed inputs refused with one line."""

from __future__ import annotations

import json
import os
import stat

import pytest

from aisec.cli.main import main


def _run(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_generate_insert_verify_claim_check_claim(tmp_path, capsys):
    fps = tmp_path / "fps.json"
    key = tmp_path / "owner.pem"
    out = tmp_path / "fp-model"
    rc, o, _ = _run(
        capsys,
        "fingerprint",
        "generate",
        "--model",
        "tiny-llama",
        "--strategy",
        "random_word",
        "--n",
        "4",
        "--key-length",
        "6",
        "--seed",
        "3",
        "--out",
        str(fps),
        "--format",
        "json",
    )
    assert rc == 0 and json.loads(o)["n"] == 4
    assert stat.S_IMODE(os.stat(fps).st_mode) == 0o600
    secrets = json.loads(fps.read_text())["fingerprints"]
    rc, o, _ = _run(
        capsys,
        "fingerprint",
        "insert",
        "--model",
        "tiny-llama",
        "--fingerprints",
        str(fps),
        "--out",
        str(out),
        "--owner-key",
        str(key),
        "--epochs",
        "25",
        "--batch-size",
        "4",
        "--lr",
        "1e-2",
        "--lora-r",
        "32",
        "--top-layers",
        "0",
        "--anchor-weight",
        "0",
        "--format",
        "json",
    )
    assert rc == 0, o
    ins = json.loads(o)
    assert ins["fp_accuracy"] == 1.0 and stat.S_IMODE(os.stat(key).st_mode) == 0o600
    adapter = ins["weights"]
    rc, o, _ = _run(
        capsys,
        "fingerprint",
        "verify",
        "--model",
        adapter,
        "--fingerprints",
        str(fps),
        "--format",
        "json",
    )
    ver = json.loads(o)
    assert rc == 0 and ver["matched"] == 4 and ver["owned"] is True  # p = 0.01**4
    claim = tmp_path / "claim.json"
    rc, o, _ = _run(
        capsys,
        "fingerprint",
        "claim",
        "--fingerprints",
        str(fps),
        "--owner-key",
        str(key),
        "--commitment",
        ins["commitment"],
        "--suspect",
        adapter,
        "--reveal",
        "4",
        "--out",
        str(claim),
    )
    assert rc == 0
    assert json.loads(fps.read_text())["spent"] == [0, 1, 2, 3]
    rc, o, _ = _run(
        capsys,
        "fingerprint",
        "check-claim",
        "--claim",
        str(claim),
        "--commitment",
        ins["commitment"],
        "--log10-alpha",
        "-4",
        "--format",
        "json",
    )
    chk = json.loads(o)
    assert rc == 0 and chk["holds"] is True and chk["matched"] == 4
    # the base model does not answer the keys: the (valid) claim is not supported -> exit 1
    rc, o, _ = _run(
        capsys,
        "fingerprint",
        "check-claim",
        "--claim",
        str(claim),
        "--model",
        "tiny-llama",
        "--log10-alpha",
        "-4",
    )
    assert rc == 1 and "NOT SUPPORTED" in o, o
    # a forged claim is refused with the reason, exit 2
    forged = json.loads(claim.read_text())
    forged["body"]["revealed"][0]["response"] = "forged"
    bad = tmp_path / "forged.json"
    bad.write_text(json.dumps(forged))
    rc, o, err = _run(capsys, "fingerprint", "check-claim", "--claim", str(bad), "--no-query")
    assert (
        rc == 2 and "claim signature does not verify" in err and len(err.strip().splitlines()) == 1
    )
    # no command printed a key or a response
    printed = o + err + json.dumps([ins, ver, chk])
    assert not any(s["key"] in printed for s in secrets)
    # everything is spent now: another claim is refused
    rc, _, err = _run(
        capsys,
        "fingerprint",
        "claim",
        "--fingerprints",
        str(fps),
        "--owner-key",
        str(key),
        "--commitment",
        ins["commitment"],
        "--suspect",
        adapter,
        "--out",
        str(tmp_path / "c2.json"),
    )
    assert rc == 2 and "unspent" in err


def test_duplicate_keys_file_is_refused_in_one_line(tmp_path, capsys):
    fp = {"key": "same key", "response": "r", "base_prob": 0.01, "salt": "ab" * 32}
    doc = {
        "format": "aisec-oml-fingerprints-v1",
        "strategy": "x",
        "model": "tiny-llama",
        "tokenizer": "t",
        "fingerprints": [fp, dict(fp)],
    }
    path = tmp_path / "dup.json"
    path.write_text(json.dumps(doc))
    rc, _, err = _run(
        capsys, "fingerprint", "verify", "--model", "tiny-llama", "--fingerprints", str(path)
    )
    assert rc == 2 and "repeats the key" in err and "same key" not in err
    assert len(err.strip().splitlines()) == 1


def test_unknown_attack_is_refused(tmp_path, capsys):
    rc, _, err = _run(
        capsys, "fingerprint", "attack", "--attacks", "sft,prune", "--out", str(tmp_path)
    )
    assert rc == 2 and "prune" in err
