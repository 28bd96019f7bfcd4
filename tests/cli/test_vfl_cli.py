"""CLI: ``aisec vfl train`` / ``attack`` / ``detect`` in one process, refused names, and two
parties as separate processes over TCP + mutual TLS (``aisec vfl split`` + ``aisec vfl party``)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from aisec.cli.main import main

TINY = ["--bottom", "mlp", "--epochs", "2", "--batch-size", "64", "--threads", "1"]


def _json(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


def test_train_then_attack_and_detect_print_their_figures(tmp_path, capsys):
    run = str(tmp_path / "run")
    assert (
        main(
            ["vfl", "train", "digits", "--defence", "hash", *TINY, "--out", run, "--format", "json"]
        )
        == 0
    )
    m = _json(capsys)
    assert m["defence"] == "hash" and 0 < m["acc"] <= 1 and m["bytes_per_sample"] < 8
    assert (tmp_path / "run" / "models" / "bottom-P1.safetensors").is_file()
    assert (
        main(
            [
                "vfl",
                "attack",
                "--attack",
                "decoder",
                run,
                "--targets",
                "20",
                "--threads",
                "1",
                "--format",
                "json",
            ]
        )
        == 0
    )
    a = _json(capsys)
    assert {"recon_ssim", "recon_ssim_class_mean", "recon_mse"} <= set(a)
    assert (
        main(
            [
                "vfl",
                "detect",
                run,
                "--kinds",
                "noise",
                "--rows",
                "50",
                "--threads",
                "1",
                "--format",
                "json",
            ]
        )
        == 0
    )
    assert 0 <= _json(capsys)["detect_auc_noise"] <= 1


def test_unknown_defence_attack_or_dataset_exits_2_with_one_line(tmp_path, capsys):
    assert main(["vfl", "train", "digits", "--defence", "rot13", *TINY]) == 2
    err = capsys.readouterr().err
    assert "unknown vfl defence 'rot13'" in err and len(err.strip().splitlines()) == 1
    assert main(["vfl", "train", "imagenet"]) == 2
    run = tmp_path / "missing"
    run.mkdir()
    assert main(["vfl", "attack", "--attack", "decoder", str(run)]) == 2
    assert "not a VFL run directory" in capsys.readouterr().err


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _aisec(*args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    return subprocess.Popen(
        [sys.executable, "-m", "aisec.cli.main", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_parties_as_separate_processes_over_tls(tmp_path, capsys):
    certs, data = tmp_path / "certs", tmp_path / "data"
    assert main(["mpc", "certs", str(certs), "--parties", "P0,P1"]) == 0
    assert (
        main(
            [
                "vfl",
                "split",
                "digits",
                *TINY[:-2],
                "--defence",
                "hash",
                "--out",
                str(data),
                "--set",
                "train.timeout_s=60",
            ]
        )
        == 0
    )
    capsys.readouterr()
    port = _port()
    common = ["--recipe", str(data / "recipe.json"), "--certs", str(certs), "--format", "json"]
    p0 = _aisec(
        "vfl",
        "party",
        "--party",
        "P0",
        "--data",
        str(data / "P0-train.safetensors"),
        "--test",
        str(data / "P0-test.safetensors"),
        "--listen",
        f"127.0.0.1:{port}",
        "--out",
        str(tmp_path / "o0"),
        *common,
    )
    p1 = _aisec(
        "vfl",
        "party",
        "--party",
        "P1",
        "--data",
        str(data / "P1-train.safetensors"),
        "--test",
        str(data / "P1-test.safetensors"),
        "--peer",
        f"127.0.0.1:{port}",
        "--out",
        str(tmp_path / "o1"),
        *common,
    )
    out0, err0 = p0.communicate(timeout=300)
    out1, err1 = p1.communicate(timeout=300)
    assert p0.returncode == 0, err0
    assert p1.returncode == 0, err1
    r0, r1 = json.loads(out0), json.loads(out1)
    assert r0["epochs_run"] == 2 and r0["acc"] > 0.2
    assert r1["bytes_per_sample"] < 8 and r1["eval_bytes"] > 0
    assert Path(tmp_path / "o1" / "checkpoints" / "P1" / "epoch-2.safetensors").is_file()
