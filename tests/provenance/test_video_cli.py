"""``aisec videomark`` embed -> detect -> attack on an embedded clip, and a batch with a bad file."""

from __future__ import annotations

import importlib.util
import json

import pytest

from aisec.cli.main import main


def _seeded_key(path, method: str, seed: int = 0) -> None:
    """Write a key drawn from a fixed seed where `embed` would draw a fresh one.

    Under a fresh key the clean clip's verdict is a biased coin: RivaGAN flags a clip when one
    frame reaches 27 of 32 bits (5.7e-5 per frame), about 2e-4 per three-frame clip. A fixed
    key makes it one outcome, which the detection asserts below then check.
    """
    import numpy as np

    from aisec.io import dumps_json, write_private
    from aisec.provenance.video import get_video_method

    key = get_video_method(method, threads=1).keygen(np.random.default_rng(seed))
    write_private(path, dumps_json(key.to_dict()).encode())


def test_embed_then_detect_then_attack_from_the_readme(tmp_path, capsys):
    pytest.importorskip("av")
    pytest.importorskip("onnxruntime")
    if importlib.util.find_spec("imwatermark") is None:
        pytest.skip("needs the invisible-watermark package (extra video)")
    from aisec.assets.datasets import video_clips

    src = str(video_clips()[1].path)  # bikes
    key, wm, att = tmp_path / "key.json", tmp_path / "wm.mkv", tmp_path / "att.mkv"
    base = ["--frames", "3", "--size", "128"]
    fresh = tmp_path / "fresh.json"
    assert main(["videomark", "embed", src, str(wm), "--key", str(fresh), *base]) == 0
    assert (fresh.stat().st_mode & 0o777) == 0o600  # a new key is written owner-only
    _seeded_key(key, "rivagan")
    assert main(["videomark", "embed", src, str(wm), "--key", str(key), *base]) == 0
    capsys.readouterr()
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"garbage" * 100)
    with pytest.raises(SystemExit) as exc:  # a failed file makes the batch exit 1
        main(
            [
                "videomark",
                "detect",
                str(wm),
                src,
                str(bad),
                "--key",
                str(key),
                *base,
                "--format",
                "json",
            ]
        )
    assert exc.value.code == 1
    out = json.loads(capsys.readouterr().out)
    assert [r["watermarked"] for r in out["results"]] == [True, False]
    assert (
        out["failed"][0]["input"] == str(bad) and "cannot be decoded" in out["failed"][0]["error"]
    )
    assert (
        main(
            [
                "videomark",
                "attack",
                str(wm),
                str(att),
                "--perturbation",
                "frame_removal",
                "--strength",
                "0.5",
                "--format",
                "json",
            ]
        )
        == 0
    )
    res = json.loads(capsys.readouterr().out)
    assert 1 <= res["frames_out"] <= 3


def test_detect_refuses_a_key_of_another_method(tmp_path, capsys):
    key = tmp_path / "k.json"
    key.write_text(
        json.dumps({"kind": "aisec.video_watermark_key", "method": "revmark", "message": "01" * 48})
    )
    vid = tmp_path / "v.mkv"
    vid.write_bytes(b"x")
    assert main(["videomark", "detect", str(vid), "--key", str(key)]) == 2
    assert "not 'rivagan'" in capsys.readouterr().err


def test_learned_method_embeds_and_detects_from_the_cli_and_weights_need_a_learned_method(
    tmp_path, capsys
):
    pytest.importorskip("av")
    pytest.importorskip("torch")
    from aisec.assets.datasets import video_clips

    src = str(video_clips()[2].path)  # carphone_pristine
    key, wm = tmp_path / "key.json", tmp_path / "wm.mkv"
    base = ["--frames", "4", "--size", "96", "--method", "segmark"]
    _seeded_key(key, "segmark")
    assert main(["videomark", "embed", src, str(wm), "--key", str(key), *base]) == 0
    capsys.readouterr()
    assert (
        main(["videomark", "detect", str(wm), src, "--key", str(key), *base, "--format", "json"])
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert [r["watermarked"] for r in out["results"]] == [True, False]
    code = main(["videomark", "detect", str(wm), "--key", str(key), "--weights", "w.safetensors"])
    assert code == 2 and "--weights" in capsys.readouterr().err


def test_train_refuses_an_unknown_recipe_key(tmp_path, capsys):
    out = tmp_path / "w.safetensors"
    code = main(["videomark", "train", "--method", "hidden", "--out", str(out), "--set", "lr2=1"])
    assert code == 2 and "lr2" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.slow
def test_bench_runs_its_cells_in_local_processes_with_the_same_rows(tmp_path, capsys):
    pytest.importorskip("av")
    pytest.importorskip("torch")
    base = ["videomark", "bench", "--method", "hidden", "--clips-per-video", "1", "--frames"]
    base += ["2", "--size", "64", "--perturbation", "blur", "--format", "json"]
    assert main([*base, "--out", str(tmp_path / "here")]) == 0
    here = json.loads(capsys.readouterr().out)
    assert main([*base, "--out", str(tmp_path / "procs"), "--workers", "2"]) == 0
    procs = json.loads(capsys.readouterr().out)
    assert here == procs and {r["perturbation"] for r in here} == {"none", "blur"}
    cells = (tmp_path / "procs" / "cells.jsonl").read_text().splitlines()
    assert len(cells) == 5  # the clean cell and the four blur strengths, one line each
