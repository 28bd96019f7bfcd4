"""The VideoShield-style in-generation method: generated clips detected by DDIM inversion."""

from __future__ import annotations

import json

import numpy as np
import pytest

from aisec.errors import ConfigError


@pytest.fixture(scope="module")
def shield():
    pytest.importorskip("torch")
    pytest.importorskip("diffusers")
    import torch

    from aisec.provenance.video.videoshield import VideoShield

    torch.set_num_threads(1)
    m = VideoShield()
    key = m.keygen(np.random.default_rng(3))
    return m.bind(key), key


@pytest.fixture(scope="module")
def clips(shield):
    m, key = shield
    wm = m.generate(key, 4, np.random.default_rng(10))
    clean = m.generate(None, 4, np.random.default_rng(11))
    return wm, clean


def _flags(m, key, video):
    from aisec.provenance.video import aggregate_all

    return aggregate_all(m.detect(video), key.message)


def test_generated_watermarked_clip_is_flagged_by_every_rule(shield, clips):
    from aisec.provenance.video.aggregation import frame_bit_accuracy, thresholds

    m, key = shield
    wm, _ = clips
    assert wm.shape == (4, 3, 32, 32) and wm.min() >= 0 and wm.max() <= 1
    assert np.allclose(wm * 255, np.round(wm * 255))  # 8-bit frames
    logits = m.detect(wm)
    assert logits.shape == (4, m.bits) == (4, 256)
    assert (frame_bit_accuracy(logits, key.message) >= thresholds(256).tau).all()
    assert all(a["flag"] for a in _flags(m, key, wm).values())


def test_unwatermarked_clip_of_the_same_model_is_not_flagged(shield, clips):
    from aisec.provenance.video.aggregation import frame_bit_accuracy

    m, key = shield
    _, clean = clips
    assert not any(a["flag"] for a in _flags(m, key, clean).values())
    assert abs(frame_bit_accuracy(m.detect(clean), key.message).mean() - 0.5) < 0.1


def test_a_wrong_key_does_not_flag_the_watermarked_clip(shield, clips):
    from aisec.provenance.video.videoshield import VideoShield

    _, key = shield
    wm, _ = clips
    other = VideoShield()
    wrong = other.keygen(np.random.default_rng(4))
    other.bind(wrong)
    assert not any(a["flag"] for a in _flags(other, wrong, wm).values())


def test_post_hoc_embed_is_refused_in_one_line(shield, clips):
    m, key = shield
    _, clean = clips
    with pytest.raises(ConfigError, match="in-generation") as exc:
        m.embed(clean, key)
    assert "\n" not in str(exc.value) and "videoshield" in str(exc.value)


def test_detect_without_a_key_and_keys_of_other_methods_are_refused(clips):
    from aisec.provenance.video import VideoKey, get_video_method

    m = get_video_method("videoshield")
    with pytest.raises(ConfigError, match="needs the key"):
        m.detect(clips[0])
    with pytest.raises(ConfigError, match="rivagan"):
        m.bind(VideoKey("rivagan", np.zeros(32, dtype=np.uint8)))


def test_clip_templates_keep_consecutive_frames_as_coherent_as_unwatermarked_ones(shield):
    from aisec.provenance.video.videoshield import VideoShield, temporal_difference

    m, key = shield
    frame = VideoShield(templates="frame", max_frames=8)
    z_clip = m.initial_latents(key, 6, np.random.default_rng(5))
    z_free = m.initial_latents(None, 6, np.random.default_rng(5))
    z_frame = frame.initial_latents(key, 6, np.random.default_rng(5))
    # same magnitudes; one sign map per clip -> as smooth as the free path; per-frame -> not
    assert np.allclose(np.abs(z_clip), np.abs(z_free))
    assert temporal_difference(z_clip) <= temporal_difference(z_free) * 1.05
    assert temporal_difference(z_frame) > 1.8 * temporal_difference(z_free)


def test_frame_templates_are_matched_after_a_frame_swap(shield):
    from aisec.provenance.video import aggregate_all
    from aisec.provenance.video.videoshield import VideoShield

    _, key = shield
    m = VideoShield(templates="frame", max_frames=4, key=key)
    wm = m.generate(key, 4, np.random.default_rng(12))
    swapped = wm[[1, 0, 3, 2]]
    z = m.inverted(swapped)
    assert list(m.template_index(z, key)) == [1, 0, 3, 2]
    assert aggregate_all(m.detect(swapped), key.message)["detection_threshold"]["flag"]


def test_one_jpeg_cell_on_generated_clips_keeps_the_watermark(shield):
    from aisec.bench.scenarios.videoshield import shield_grid

    m, key = shield
    rows = shield_grid(m, key, 1, 3, {"jpeg": [30.0]}, seed=0)
    assert [(r["perturbation"], r["strength"]) for r in rows] == [("none", 0.0), ("jpeg", 30.0)]
    jpeg = rows[1]
    assert jpeg["n_wm"] == jpeg["n_real"] == 1
    assert jpeg["rules"]["detection_threshold"] == {"fn": 0, "fp": 0}
    assert 0.6 < jpeg["bit_acc_wm"] < rows[0]["bit_acc_wm"] + 0.05
    assert jpeg["psnr"] < 60


def test_key_is_the_whole_secret_and_templates_are_derived_deterministically(shield):
    from aisec.provenance.video import VideoKey
    from aisec.provenance.video.videoshield import VideoShield

    m, key = shield
    again = VideoKey.from_dict(json.loads(json.dumps(key.to_dict())))
    assert np.array_equal(VideoShield().sign_maps(again), m.sign_maps(key))
    maps = m.sign_maps(key).astype(np.int64)
    assert abs(int((2 * maps - 1).sum())) <= 1024**0.5 / 2  # balanced template


def test_cli_generate_then_detect(tmp_path, capsys):
    pytest.importorskip("av")
    pytest.importorskip("diffusers")
    from aisec.cli.main import main

    key, wm, clean = tmp_path / "k.json", tmp_path / "wm.mkv", tmp_path / "clean.mkv"
    common = ["--frames", "3", "--key", str(key)]
    assert main(["videomark", "shield", "generate", str(wm), *common, "--seed", "1"]) == 0
    assert (key.stat().st_mode & 0o777) == 0o600
    args = ["videomark", "shield", "generate", str(clean), *common, "--seed", "2"]
    assert main([*args, "--no-watermark"]) == 0
    capsys.readouterr()
    out = ["videomark", "shield", "detect", str(wm), str(clean), "--key", str(key)]
    assert main([*out, "--format", "json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert [r["watermarked"] for r in res["results"]] == [True, False]
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"garbage" * 100)
    with pytest.raises(SystemExit) as exc:  # a failed file makes the batch exit 1
        main([*out, str(bad), "--format", "json"])
    assert exc.value.code == 1
    res = json.loads(capsys.readouterr().out)
    assert [r["watermarked"] for r in res["results"]] == [True, False]
    assert res["failed"][0]["input"] == str(bad) and "\n" not in res["failed"][0]["error"]
    embed = ["videomark", "embed", str(clean), str(tmp_path / "x.mkv"), "--key", str(key)]
    assert main([*embed, "--method", "videoshield"]) == 2  # usage error, one line
    err = capsys.readouterr().err.strip()
    assert "in-generation" in err and "\n" not in err


def test_differentiable_logits_match_detect_and_carry_gradients(shield, clips):
    import torch

    m, _ = shield
    wm, _ = clips
    x = torch.from_numpy(wm[:2]).requires_grad_(True)
    logits = m.torch_logits(x)
    assert np.allclose(logits.detach().numpy(), m.detect(wm[:2]), atol=1e-4)
    (grad,) = torch.autograd.grad(logits.sum(), x)
    assert grad.abs().sum() > 0


def test_bench_scenario_is_registered_with_a_small_quick_size():
    from aisec.bench.runner import discover
    from aisec.bench.scenario import SCENARIOS

    discover()
    sc = SCENARIOS.get("videomark.videoshield")
    assert "quick" in sc.suites and "full" in sc.suites
    assert sc.params["clips"] * sc.params["frames"] <= 8 and sc.params["whitebox_clips"] == 0
