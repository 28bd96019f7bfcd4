"""CLI: certificates, data split, two CAESAR parties as separate processes over TCP + mutual TLS
on loopback (train and predict), a peer with a foreign certificate, and the one-process run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from aisec.cli.main import main

TINY = [
    "--set",
    "protocol.key_bits=512",
    "--set",
    "protocol.epochs=1",
    "--set",
    "protocol.batch_size=64",
    "--set",
    "protocol.timeout_s=60",
]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _aisec(*args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-m", "aisec.cli.main", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _both(pa: subprocess.Popen, pb: subprocess.Popen) -> tuple:
    out_b = pb.communicate(timeout=240)
    out_a = pa.communicate(timeout=240)
    return (pa.returncode, *out_a), (pb.returncode, *out_b)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("caesar")
    assert main(["mpc", "certs", str(root / "certs")]) == 0
    assert main(["mpc", "certs", str(root / "evil")]) == 0
    assert main(["caesar", "split", "--set", "data.rows=300", "--out", str(root / "data")]) == 0
    return root


def test_two_processes_over_tls_train_and_predict(setup: Path) -> None:
    port, d, c = _port(), setup / "data", str(setup / "certs")
    pb = _aisec(
        "caesar",
        "party",
        "--role",
        "B",
        "--listen",
        f"127.0.0.1:{port}",
        "--certs",
        c,
        "--data",
        str(d / "B-train.safetensors"),
        "--out",
        str(setup / "B"),
        *TINY,
        "--format",
        "json",
    )
    pa = _aisec(
        "caesar",
        "party",
        "--role",
        "A",
        "--peer",
        f"127.0.0.1:{port}",
        "--certs",
        c,
        "--data",
        str(d / "A-train.safetensors"),
        "--out",
        str(setup / "A"),
        *TINY,
        "--format",
        "json",
    )
    (ra, oa, ea), (rb, ob, eb) = _both(pa, pb)
    assert ra == 0 and rb == 0, ea + eb
    assert json.loads(ob)["batches"] == 4 and json.loads(oa)["role"] == "A"
    port = _port()
    pb = _aisec(
        "caesar",
        "predict",
        "--role",
        "B",
        "--model",
        str(setup / "B" / "model-B.safetensors"),
        "--data",
        str(d / "B-test.safetensors"),
        "--listen",
        f"127.0.0.1:{port}",
        "--certs",
        c,
        "--out",
        str(setup / "probs.json"),
        "--format",
        "json",
    )
    pa = _aisec(
        "caesar",
        "predict",
        "--role",
        "A",
        "--model",
        str(setup / "A" / "model-A.safetensors"),
        "--data",
        str(d / "A-test.safetensors"),
        "--peer",
        f"127.0.0.1:{port}",
        "--certs",
        c,
        "--format",
        "json",
    )
    (ra, _, ea), (rb, ob, eb) = _both(pa, pb)
    assert ra == 0 and rb == 0, ea + eb
    res = json.loads(ob)
    assert 0.5 < res["auc"] <= 1.0 and res["n"] == 90
    assert len(json.loads((setup / "probs.json").read_text())["probabilities"]) == 90


def _party_a(setup: Path, port: int, certs: str, out: str) -> subprocess.Popen:
    return _aisec(
        "caesar",
        "party",
        "--role",
        "A",
        "--peer",
        f"127.0.0.1:{port}",
        "--certs",
        str(setup / certs),
        "--data",
        str(setup / "data" / "A-train.safetensors"),
        "--out",
        str(setup / out),
        *TINY,
    )


def test_foreign_certificate_is_refused_then_the_real_peer_trains(setup: Path) -> None:
    """An impostor (another CA's certificate) gets a one-line error; the listening party logs
    it as unauthenticated, keeps waiting and trains with the real peer that comes next."""
    port, d = _port(), setup / "data"
    pb = _aisec(
        "caesar",
        "party",
        "--role",
        "B",
        "--listen",
        f"127.0.0.1:{port}",
        "--certs",
        str(setup / "certs"),
        "--data",
        str(d / "B-train.safetensors"),
        "--out",
        str(setup / "B2"),
        *TINY,
        "--set",
        "protocol.accept_timeout_s=120",
    )
    evil = _party_a(setup, port, "evil", "A2")
    _, ea = evil.communicate(timeout=240)
    assert evil.returncode == 1
    line = ea.strip().splitlines()[-1]
    assert line.startswith("error: peer 'B'") and "TLS" in line, ea
    assert not (setup / "A2" / "model-A.safetensors").exists()
    (ra, _, ea), (rb, _, eb) = _both(_party_a(setup, port, "certs", "A3"), pb)
    assert ra == 0 and rb == 0, (ea, eb)
    assert "refused an unauthenticated client" in eb
    assert (setup / "A3" / "model-A.safetensors").exists()


def test_run_in_one_process_and_bad_recipe(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rc = main(
        [
            "caesar",
            "run",
            "a9a-quick",
            "--set",
            "data.rows=200",
            *TINY,
            "--out",
            str(tmp_path),
            "--format",
            "json",
        ]
    )
    assert rc == 0
    m = json.loads(capsys.readouterr().out)
    assert {"auc", "auc_plaintext", "seconds", "bytes"} <= set(m)
    assert (tmp_path / "model-A.safetensors").exists() and (tmp_path / "resolved.yaml").exists()
    rc = main(
        [
            "caesar",
            "predict",
            "--models",
            str(tmp_path),
            "--data-a",
            "missing.safetensors",
            "--data-b",
            "missing.safetensors",
        ]
    )
    assert rc == 2
    assert main(["caesar", "run", "a9a-quick", "--set", "protocol.sigmoid=tanh"]) == 2
    assert "tanh" in capsys.readouterr().err
    assert main(["caesar", "run", "a9a-quick", "--set", "protocol.lr=1"]) == 2


def test_unknown_recipe_exits_2_listing_the_built_in_recipes(
    capsys: pytest.CaptureFixture,
) -> None:
    assert main(["caesar", "run", "a9a-quik"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "'a9a-quik'" in err and "a9a-quick" in err and "reviews-bow" in err and "zipf" in err


def test_run_on_heu_ou(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("heu", reason="sf-heu (the optional HEU backend) is not installed")
    args = ["caesar", "run", "a9a-quick", "--set", "data.rows=200", *TINY]
    args[args.index("protocol.key_bits=512")] = "protocol.key_bits=1024"
    rc = main([*args, "--he", "heu-ou", "--out", str(tmp_path), "--format", "json"])
    assert rc == 0
    m = json.loads(capsys.readouterr().out)
    assert m["max_weight_error_vs_same_sgd"] < 1e-3 and m["auc"] > 0.5
    assert (tmp_path / "resolved.yaml").read_text().count("he_scheme: heu-ou") == 1
