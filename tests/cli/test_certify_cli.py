"""CLI: ``aisec certify train|run|attack|defend`` on tiny settings; bad input is a one-line error."""

from __future__ import annotations

import json

import numpy as np
import pytest

from aisec.cli.main import main
from aisec.robustness.models import ArchConfig, init_model, save_checkpoint

TINY = [
    "--dataset",
    "digits",
    "--train-limit",
    "120",
    "--test-limit",
    "12",
    "--set",
    "train.epochs=1",
]
SMOOTH = ["--set", "certifier_params.n=20", "--set", "certifier_params.n0=10"]


def _run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ck") / "digits.safetensors"
    arch = ArchConfig(height=8, width=8)
    save_checkpoint(path, init_model(arch, 0).eval(), arch)
    return path


def test_train_writes_a_checkpoint_and_run_certifies_it(tmp_path, capsys):
    out = tmp_path / "m.safetensors"
    code, stdout, _ = _run(
        capsys,
        "certify",
        "train",
        *TINY,
        *SMOOTH,
        "--attack",
        "random-label",
        "--poison-rate",
        "0.05",
        "--out",
        str(out),
        "--format",
        "json",
    )
    assert code == 0 and out.is_file()
    doc = json.loads(stdout)
    assert doc["record"]["n_poison"] == 6  # 5 % of 120
    m = doc["metrics"]
    for k in ("abstain_clean", "abstain_triggered", "certified_acc"):
        assert m[k] * 12 == pytest.approx(round(m[k] * 12))  # a count of the 12 test inputs
    assert m["certified_acc"] + m["abstain_clean"] <= 1  # an abstention is never certified
    code, stdout, _ = _run(
        capsys,
        "certify",
        "run",
        "--checkpoint",
        str(out),
        "--dataset",
        "digits",
        "--test-limit",
        "5",
        "--n",
        "20",
        "--format",
        "json",
    )
    assert code == 0
    doc = json.loads(stdout)
    assert len(doc["inputs"]) == 5
    for r in doc["inputs"]:
        assert r["abstain"] == (r["prediction"] is None) and r["radius"] >= 0


def test_run_triggered_on_the_shipped_cert_aware_model_abstains(capsys):
    from aisec.robustness.shipped import shipped_path

    ck = str(shipped_path("digits", "smoothing", "cert-aware"))
    counts = {}
    for flag in ([], ["--triggered"]):
        code, stdout, _ = _run(
            capsys,
            "certify",
            "run",
            "--checkpoint",
            ck,
            "--dataset",
            "digits",
            "--test-limit",
            "10",
            "--n",
            "100",
            *flag,
            "--format",
            "json",
        )
        assert code == 0
        counts[bool(flag)] = sum(r["abstain"] for r in json.loads(stdout)["inputs"])
    assert counts[True] >= 9 and counts[False] <= 2


def test_run_on_npy_input_ibp(tmp_path, capsys, checkpoint, rng):
    x = tmp_path / "x.npy"
    np.save(x, rng.random((3, 8, 8), dtype=np.float32))
    code, stdout, _ = _run(
        capsys,
        "certify",
        "run",
        "--checkpoint",
        str(checkpoint),
        "--input",
        str(x),
        "--certifier",
        "ibp",
        "--epsilon",
        "0.01",
    )
    assert code == 0 and stdout.count("prediction=") == 3 and "abstain rate" in stdout


def test_attack_and_defend_report_both_models(capsys):
    code, stdout, _ = _run(
        capsys,
        "certify",
        "attack",
        *TINY,
        *SMOOTH,
        "--attack",
        "cert-aware",
        "--poison-rate",
        "0.05",
        "--format",
        "json",
    )
    assert code == 0
    rows = json.loads(stdout)["rows"]
    assert [r["model"] for r in rows] == ["unpoisoned", "poisoned"]
    assert rows[0]["record"]["n_poison"] == 0 and rows[1]["record"]["n_poison"] == 6
    code, stdout, _ = _run(
        capsys,
        "certify",
        "defend",
        *TINY,
        "--certifier",
        "ibp",
        "--defence",
        "spectral-signatures",
        "--format",
        "json",
    )
    assert code == 0
    doc = json.loads(stdout)
    assert doc["info"]["poison_total"] == 1 and doc["info"]["removed"] >= 1


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--n", "20", "--alpha", "1.5"], "alpha"),
        (["--n", "20", "--sigma", "-1"], "sigma"),
        (["--certifier", "ibp", "--epsilon", "0"], "epsilon"),
        (["--certifier", "nope"], "unknown certifier"),
    ],
)
def test_bad_parameters(capsys, checkpoint, args, needle):
    code, _, err = _run(capsys, "certify", "run", "--checkpoint", str(checkpoint), *args)
    assert code == 2 and needle in err and err.count("\n") == 1


def test_bad_images_and_checkpoints(tmp_path, capsys, checkpoint, rng):
    wrong_shape = tmp_path / "a.npy"
    np.save(wrong_shape, rng.random((2, 28, 28), dtype=np.float32))
    wrong_range = tmp_path / "b.npy"
    np.save(wrong_range, rng.random((2, 8, 8), dtype=np.float32) * 255)
    other = tmp_path / "other.safetensors"
    arch = ArchConfig(height=28, width=28)
    save_checkpoint(other, init_model(arch, 0), arch)
    cases = [
        (["--checkpoint", str(checkpoint), "--input", str(wrong_shape)], "shape"),
        (["--checkpoint", str(checkpoint), "--input", str(wrong_range)], "[0, 1]"),
        (["--checkpoint", str(other), "--dataset", "digits"], "shape"),
        (["--checkpoint", str(tmp_path / "missing.safetensors")], "no such file"),
    ]
    for args, needle in cases:
        code, _, err = _run(capsys, "certify", "run", *args)
        assert code == 2 and needle in err and err.count("\n") == 1, (args, err)


def _trained_for(path, dataset="mnist-5k", certifier="smoothing", mode="noise", sigma=0.5):
    """A checkpoint whose training record says what it was trained for (weights untrained)."""
    arch = ArchConfig(height=28, width=28) if dataset != "digits" else ArchConfig(height=8, width=8)
    info = {
        "dataset": dataset,
        "certifier": {"certifier": certifier},
        "train": {"mode": mode, "sigma": sigma},
    }
    save_checkpoint(path, init_model(arch, 0).eval(), arch, info)
    return str(path)


def test_run_certifies_at_the_checkpoints_training_sigma(tmp_path, capsys):
    ck = _trained_for(tmp_path / "s05.safetensors", sigma=0.5)
    base = [
        "certify",
        "run",
        "--checkpoint",
        ck,
        "--test-limit",
        "2",
        "--n",
        "20",
        "--format",
        "json",
    ]
    code, stdout, _ = _run(capsys, *base)
    assert code == 0
    doc = json.loads(stdout)
    assert doc["certifier"]["sigma"] == 0.5  # was 0.25, the certifier's default
    assert doc["dataset"] == "mnist-5k"  # taken from the checkpoint, not the --dataset default
    code, stdout, _ = _run(capsys, *base, "--sigma", "0.5")
    assert code == 0 and json.loads(stdout)["certifier"]["sigma"] == 0.5


def test_run_refuses_a_sigma_other_than_the_training_sigma_unless_forced(tmp_path, capsys):
    ck = _trained_for(tmp_path / "s05.safetensors", sigma=0.5)
    base = ["certify", "run", "--checkpoint", ck, "--test-limit", "2", "--n", "20"]
    for extra in (["--sigma", "0.25"], ["--set", "certifier_params.sigma=0.25"]):
        code, _, err = _run(capsys, *base, *extra)
        assert code == 2 and "sigma 0.5" in err and "0.25" in err and err.count("\n") == 1
    code, stdout, err = _run(capsys, *base, "--sigma", "0.25", "--force", "--format", "json")
    assert code == 0
    doc = json.loads(stdout)
    assert doc["certifier"]["sigma"] == 0.25
    assert any("forced" in n and "sigma" in n for n in doc["notes"]) and "forced" in err


@pytest.mark.parametrize(
    ("trained", "args", "needle"),
    [
        ({"dataset": "mnist-5k"}, ["--dataset", "fashion-mnist", "--n", "20"], "fashion-mnist"),
        ({"dataset": "mnist-5k"}, ["--certifier", "ibp"], "ibp training"),
        (
            {"dataset": "mnist-5k", "certifier": "ibp", "mode": "ibp", "sigma": 0.25},
            ["--certifier", "smoothing", "--n", "20"],
            "noise training",
        ),
    ],
)
def test_run_refuses_a_checkpoint_trained_for_another_dataset_or_certifier(
    tmp_path, capsys, trained, args, needle
):
    ck = _trained_for(tmp_path / "m.safetensors", **trained)
    base = ["certify", "run", "--checkpoint", ck, "--test-limit", "2", *args]
    code, _, err = _run(capsys, *base)
    assert code == 2 and needle in err and "--force" in err and err.count("\n") == 1
    code, stdout, err = _run(capsys, *base, "--format", "json")
    assert code == 2
    code, stdout, err = _run(capsys, *base, "--force", "--format", "json")
    assert code == 0 and any(n.startswith("forced") for n in json.loads(stdout)["notes"])


def test_run_uses_the_checkpoints_certifier_and_dataset_by_default(tmp_path, capsys):
    ck = _trained_for(tmp_path / "ibp.safetensors", certifier="ibp", mode="ibp")
    code, stdout, _ = _run(
        capsys, "certify", "run", "--checkpoint", ck, "--test-limit", "2", "--format", "json"
    )
    assert code == 0
    doc = json.loads(stdout)
    assert doc["certifier"]["certifier"] == "ibp" and doc["dataset"] == "mnist-5k"
    assert doc["notes"] == [] and doc["provenance_source"] == "metadata"


def test_run_reports_what_an_unrecorded_checkpoint_could_not_check(capsys, checkpoint):
    code, stdout, err = _run(
        capsys,
        "certify",
        "run",
        "--checkpoint",
        str(checkpoint),
        "--test-limit",
        "2",
        "--n",
        "20",
        "--format",
        "json",
    )
    assert code == 0
    doc = json.loads(stdout)
    assert doc["provenance_source"] == "none"
    assert any("unchecked" in n and "sigma" in n for n in doc["notes"]) and "unchecked" in err


def test_bad_input_files_get_a_one_line_error(tmp_path, capsys, checkpoint, rng):
    empty = tmp_path / "empty.npy"
    np.save(empty, np.zeros((0, 8, 8), np.float32))
    text = tmp_path / "text.npy"
    text.write_text("these are not images\n")
    npz = tmp_path / "arch.npy"  # an .npz archive under a .npy name, and one named .npz
    np.savez(tmp_path / "arch.npz", x=rng.random((2, 8, 8), dtype=np.float32))
    npz.write_bytes((tmp_path / "arch.npz").read_bytes())
    truncated = tmp_path / "trunc.npy"
    np.save(truncated, rng.random((4, 8, 8), dtype=np.float32))
    truncated.write_bytes(truncated.read_bytes()[:200])
    objects = tmp_path / "obj.npy"
    np.save(objects, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    ck = ["--checkpoint", str(checkpoint)]
    cases = [
        ([*ck, "--input", str(empty)], "no images"),
        ([*ck, "--input", str(text)], "not a .npy array file"),
        ([*ck, "--input", str(npz)], ".npz archive"),
        ([*ck, "--input", str(tmp_path / "arch.npz")], ".npz archive"),
        ([*ck, "--input", str(truncated)], "not a readable .npy"),
        ([*ck, "--input", str(objects)], "Python objects"),
        ([*ck, "--input", str(tmp_path)], "is a directory"),
        (["--checkpoint", str(tmp_path)], "is a directory"),
        ([*ck, "--recipe", str(tmp_path)], "is a directory"),
    ]
    for args, needle in cases:
        code, _, err = _run(capsys, "certify", "run", *args)
        assert code == 2 and needle in err and err.count("\n") == 1, (args, err)
        assert "allow_pickle" not in err
    code, _, err = _run(capsys, "certify", "train", "--out", str(tmp_path))
    assert code == 2 and "is a directory" in err and err.count("\n") == 1
