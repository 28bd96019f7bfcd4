"""``aisec watermark``: keygen -> generate -> detect on the mixture backbone, and bad input."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from aisec.cli.main import main

BB = ["--backbone", "gmm-digits"]


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("wm")
    assert (
        main(["watermark", "keygen", "--method", "gaussmarker", "--out", str(d / "gm.key"), *BB])
        == 0
    )
    assert (
        main(["watermark", "keygen", "--method", "tree_ring", "--out", str(d / "tr.key"), *BB]) == 0
    )
    assert (
        main(
            [
                "watermark",
                "generate",
                "--method",
                "gaussmarker",
                "--key",
                str(d / "gm.key"),
                "--n",
                "3",
                "--steps",
                "20",
                "--seed",
                "1",
                "--out",
                str(d / "wm"),
                *BB,
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "watermark",
                "generate",
                "--method",
                "none",
                "--n",
                "3",
                "--steps",
                "20",
                "--seed",
                "2",
                "--out",
                str(d / "clean"),
                *BB,
            ]
        )
        == 0
    )
    return d


def test_keygen_is_private_and_silent(made: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert stat.S_IMODE(os.stat(made / "gm.key").st_mode) == 0o600
    key_text = (made / "gm.key").read_text()
    material = json.loads(key_text)["material"]["gs.cipher_key"]["data"]
    assert main(["watermark", "keygen", "--out", str(made / "x.key"), "--format", "json", *BB]) == 0
    out = capsys.readouterr()
    assert material not in out.out + out.err
    assert json.loads(out.out)["bits"] == 64


def test_detect_png_and_jpeg(made: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    wm = sorted((made / "wm").glob("*.png"))
    clean = sorted((made / "clean").glob("*.png"))
    assert len(wm) == 3 and len(clean) == 3
    Image.open(wm[0]).save(made / "wm0.jpg", quality=95)
    capsys.readouterr()
    rc = main(
        [
            "watermark",
            "detect",
            *map(str, wm + clean),
            str(made / "wm0.jpg"),
            "--key",
            str(made / "gm.key"),
            "--steps",
            "20",
            "--format",
            "json",
            *BB,
        ]
    )
    assert rc == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["watermarked"] for r in rows[:6]] == [True] * 3 + [False] * 3
    assert all(r["bit_acc"] > 0.9 for r in rows[:3])
    assert len(rows[0]["bits"]) == 16  # 64 bits as hex


def _err(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str]:
    capsys.readouterr()
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    return rc, err


def test_bad_inputs_give_one_line_errors(
    made: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    good = sorted((made / "wm").glob("*.png"))[0]
    trunc = tmp_path / "trunc.png"
    trunc.write_bytes(good.read_bytes()[:60])
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"this is not an image")
    small = tmp_path / "small.png"
    Image.new("L", (28, 28)).save(small)
    badkey = tmp_path / "bad.key"
    badkey.write_text("{not json")
    cases = [
        ([str(trunc)], str(made / "gm.key"), "truncated"),
        ([str(junk)], str(made / "gm.key"), "corrupt"),
        ([str(small)], str(made / "gm.key"), "28x28"),
        ([str(good)], str(badkey), "not a watermark key"),
        ([str(tmp_path / "missing.png")], str(made / "gm.key"), "no such image"),
    ]
    for imgs, key, needle in cases:
        rc, err = _err(capsys, ["watermark", "detect", *imgs, "--key", key, *BB])
        assert rc == 2 and needle in err and len(err.splitlines()) == 1, (needle, err)
    rc, err = _err(
        capsys,
        [
            "watermark",
            "generate",
            "--method",
            "gaussian_shading",
            "--key",
            str(made / "tr.key"),
            "--n",
            "1",
            "--out",
            str(tmp_path / "o"),
            *BB,
        ],
    )
    assert rc == 2 and "is for method 'tree_ring', not 'gaussian_shading'" in err
    rc, err = _err(
        capsys,
        [
            "watermark",
            "train-gnr",
            "--key",
            str(made / "tr.key"),
            "--out",
            str(tmp_path / "g.safetensors"),
        ],
    )
    assert rc == 2 and "gaussmarker or gaussian_shading" in err


def test_train_commands_tiny(
    made: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(
        [
            "watermark",
            "train-gnr",
            "--key",
            str(made / "gm.key"),
            "--out",
            str(tmp_path / "g.safetensors"),
            "--steps",
            "2",
            "--nf",
            "4",
            "--set",
            "batch_size=4",
            "--set",
            "depth=1",
            "--format",
            "json",
        ]
    )
    assert rc == 0 and (tmp_path / "g.safetensors").is_file()
    rc = main(
        [
            "watermark",
            "train-ddpm",
            "--out",
            str(tmp_path / "d.safetensors"),
            "--dataset",
            "digits",
            "--set",
            "model.block_out_channels=[8,8]",
            "--set",
            "model.image_size=8",
            "--set",
            "train.steps=2",
            "--set",
            "train.batch_size=4",
            "--format",
            "json",
        ]
    )
    assert rc == 0
    from aisec.diffusion.pixel_ddpm import PixelDDPM

    m = PixelDDPM.load(tmp_path / "d.safetensors")
    assert m.latent_shape == (4, 4, 4)
    rc, err = _err(
        capsys, ["watermark", "train-ddpm", "--out", str(tmp_path / "e"), "--set", "train.stepz=2"]
    )
    assert rc == 2 and "stepz" in err


def test_detect_with_a_gnr_needs_a_fuser_calibrated_for_the_key(
    made: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import warnings

    from aisec.provenance.base import get_method
    from aisec.provenance.keys import save_key
    from aisec.rng import InsecureRandom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        key = get_method("gaussmarker").keygen((4, 16, 16), InsecureRandom(7))
    kp = save_key(key, tmp_path / "u.key")
    gnr = tmp_path / "g.safetensors"
    tiny = ["--steps", "2", "--nf", "4", "--set", "batch_size=4", "--set", "depth=1"]
    assert main(["watermark", "train-gnr", "--key", str(kp), "--out", str(gnr), *tiny]) == 0
    gen = ["watermark", "generate", "--key", str(kp), "--n", "3", "--steps", "20", *BB]
    assert (
        main([*gen, "--method", "gaussmarker", "--seed", "3", "--out", str(tmp_path / "wm")]) == 0
    )
    images = sorted(map(str, (tmp_path / "wm").glob("*.png")))
    clean = sorted(map(str, (made / "clean").glob("*.png")))
    detect = ["watermark", "detect", *images, *clean, "--key", str(kp), "--steps", "20", *BB]
    # No fuser for this key: the binomial threshold on GNR-restored bits is not a valid test.
    rc, err = _err(capsys, [*detect, "--gnr", str(gnr)])
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert "fuser calibrated for this key" in err and "aisec watermark robustness --key" in err
    # Without the GNR the raw bits keep their exact binomial threshold.
    capsys.readouterr()
    assert main([*detect, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["watermarked"] for r in rows] == [True] * 3 + [False] * 3
    # What the error says to do: fit and calibrate a fuser for the key, then detect with it.
    run = tmp_path / "run"
    sets = [
        "backbone=gmm-digits",
        f"gnr={gnr}",
        "methods=[gaussmarker]",
        "n=8",
        "n_fit=8",
        "n_cal=40",
        "n_heldout=0",
        "steps=20",
        "distortions={}",
        "attacks={}",
        "fit_sweep={}",
    ]
    argv = ["watermark", "robustness", "--key", str(kp), "--out", str(run), "--format", "json"]
    assert main([*argv, *(x for s in sets for x in ("--set", s))]) == 0
    fuser = run / "fuser_gmm-digits_gnr.safetensors"
    from aisec.provenance.fuser import Fuser

    f = Fuser.load(fuser)
    assert f.key_fingerprint == get_method("gaussmarker").key_fingerprint(key)
    capsys.readouterr()
    assert main([*detect, "--gnr", str(gnr), "--fuser", str(fuser), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert all(r["threshold"] == f.threshold for r in rows)
    assert min(r["score"] for r in rows[:3]) > max(r["score"] for r in rows[3:])
    # That fuser reads the GNR's margin: without --gnr it cannot score, and says so.
    rc, err = _err(capsys, [*detect, "--fuser", str(fuser)])
    assert rc == 2 and "gnr_margin" in err and len(err.splitlines()) == 1, err
