"""CLI: the two SeSoRec platforms as separate processes over TCP + mutual TLS on loopback, the
one-process run with every mode, the attack on its run directory, and bad input."""

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
    "protocol.epochs=1",
    "--set",
    "protocol.factors=3",
    "--set",
    "protocol.batch_size=40",
    "--set",
    "protocol.timeout_s=60",
]
SMALL = [
    "--set",
    "data.users=120",
    "--set",
    "data.items=40",
    "--set",
    "data.density=0.15",
    "--set",
    "data.blocks=3",
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


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sesorec")
    assert main(["mpc", "certs", str(root / "certs"), "--parties", "rating,social"]) == 0
    assert main(["sesorec", "split", "quick", *SMALL, "--out", str(root / "data")]) == 0
    return root


def _party(setup: Path, role: str, where: list[str], out: str, *extra: str) -> subprocess.Popen:
    d = setup / "data"
    data = d / ("rating-train.txt" if role == "rating" else "social.txt")
    test = ["--test", str(d / "rating-test.txt")] if role == "rating" else []
    return _aisec(
        "sesorec",
        "party",
        "--role",
        role,
        *where,
        "--certs",
        str(setup / "certs"),
        "--data",
        str(data),
        "--users",
        str(d / "users.txt"),
        *test,
        "--recipe",
        "quick",
        *TINY,
        *extra,
        "--out",
        str(setup / out),
        "--format",
        "json",
    )


@pytest.mark.parametrize("mode", ["paper", pytest.param("hardened", marks=pytest.mark.slow)])
def test_two_platforms_over_tcp_and_tls(setup: Path, mode: str) -> None:
    port = _port()
    extra = ("--set", f"protocol.mode={mode}")
    if mode == "hardened":
        extra += (
            "--set",
            "protocol.matmul=beaver-he",
            "--set",
            "protocol.key_bits=512",
            "--set",
            "protocol.max_batches=1",
        )
    pb = _party(setup, "social", ["--listen", f"127.0.0.1:{port}"], f"social-{mode}", *extra)
    pa = _party(setup, "rating", ["--peer", f"127.0.0.1:{port}"], f"rating-{mode}", *extra)
    ob, eb = pb.communicate(timeout=300)
    oa, ea = pa.communicate(timeout=300)
    assert pa.returncode == 0 and pb.returncode == 0, ea + eb
    res = json.loads(oa)
    assert res["role"] == "rating" and res["mode"] == mode and 0 < res["rmse"] < 3
    assert (setup / f"rating-{mode}" / "model-rating.safetensors").exists()
    assert json.loads(ob)["bytes_per_batch"] > 0


def test_dealer_is_refused_between_two_hosts(setup: Path, capsys: pytest.CaptureFixture) -> None:
    d = setup / "data"
    rc = main(
        [
            "sesorec",
            "party",
            "--role",
            "rating",
            "--peer",
            "127.0.0.1:9",
            "--certs",
            str(setup / "certs"),
            "--data",
            str(d / "rating-train.txt"),
            "--users",
            str(d / "users.txt"),
            "--recipe",
            "quick",
            "--set",
            "protocol.mode=hardened",
            "--set",
            "protocol.matmul=beaver-dealer",
            "--out",
            str(setup / "never"),
        ]
    )
    err = capsys.readouterr().err
    assert rc != 0 and "beaver-dealer" in err and not (setup / "never").exists(), err


def test_run_prints_every_mode_and_attack_reads_the_run(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    rc = main(["sesorec", "run", "quick", *SMALL, *TINY, "--out", str(out), "--format", "json"])
    assert rc == 0
    m = json.loads(capsys.readouterr().out)
    assert set(m["modes"]) == {"paper", "hardened"}
    for row in m["modes"].values():
        assert {"rmse", "mae", "bytes", "seconds"} <= row.keys()
    assert main(["sesorec", "attack", str(out), "--format", "json"]) == 0
    att = json.loads(capsys.readouterr().out)
    assert att["paper"]["edge_recovery"] >= 0.9
    assert (out / "paper" / "recovered-edges.txt").exists()


def test_bad_inputs_fail_before_anything_is_written(setup: Path, tmp_path: Path, capsys) -> None:
    d = setup / "data"
    bad = tmp_path / "bad.txt"
    cases = {
        "0 1 nan\n": "finite",
        "0 1 9\n": "outside",
        "ghost 1 3\n": "not in the shared user id list",
        "0 1\n": "expected 3",
    }
    for text, msg in cases.items():
        bad.write_text(text)
        rc = main(
            [
                "sesorec",
                "party",
                "--role",
                "rating",
                "--peer",
                "127.0.0.1:9",
                "--certs",
                str(setup / "certs"),
                "--data",
                str(bad),
                "--users",
                str(d / "users.txt"),
                "--recipe",
                "quick",
                "--out",
                str(tmp_path / "o"),
            ]
        )
        err = capsys.readouterr().err.strip()
        assert rc == 2 and msg in err and len(err.splitlines()) == 1, err
        assert not (tmp_path / "o").exists()
    rc = main(
        [
            "sesorec",
            "run",
            "filmtrust",
            "--set",
            "data.path=/nonexistent",
            "--out",
            str(tmp_path / "o2"),
        ]
    )
    assert rc == 2 and not (tmp_path / "o2").exists()


def test_impostor_peer_gets_a_one_line_error(setup: Path, tmp_path: Path) -> None:
    """A rating platform with another CA's certificate is refused; its error names the peer."""
    assert main(["mpc", "certs", str(tmp_path / "evil"), "--parties", "rating,social"]) == 0
    port = _port()
    pb = _party(
        setup,
        "social",
        ["--listen", f"127.0.0.1:{port}"],
        "social-evil",
        "--set",
        "protocol.accept_timeout_s=8",
    )
    d = setup / "data"
    pa = _aisec(
        "sesorec",
        "party",
        "--role",
        "rating",
        "--peer",
        f"127.0.0.1:{port}",
        "--certs",
        str(tmp_path / "evil"),
        "--data",
        str(d / "rating-train.txt"),
        "--users",
        str(d / "users.txt"),
        "--recipe",
        "quick",
        *TINY,
        "--out",
        str(tmp_path / "rating-evil"),
    )
    _, ea = pa.communicate(timeout=120)
    _, eb = pb.communicate(timeout=120)
    assert pa.returncode == 1 and pb.returncode == 1
    line = ea.strip().splitlines()[-1]
    assert line.startswith("error: peer 'social'"), ea
    assert not (tmp_path / "rating-evil" / "model-rating.safetensors").exists()
