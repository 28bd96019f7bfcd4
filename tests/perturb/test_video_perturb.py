"""The eight no-box video perturbations of VideoMarkBench (aisec.perturb.video)."""

from __future__ import annotations

import numpy as np
import pytest

from aisec.errors import DataError, ParameterError
from aisec.perturb.video import (
    VIDEO_PERTURBATIONS,
    check_video,
    h264_roundtrip,
    perturb_video,
    video_quality,
)

STRENGTHS = {
    "jpeg": 50.0,
    "gaussian_noise": 0.05,
    "blur": 1.0,
    "crop": 0.3,
    "h264": 28.0,
    "frame_average": 3.0,
    "frame_swap": 0.5,
    "frame_removal": 0.5,
}


def _video(t: int = 6, size: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    frames = [
        np.stack([np.sin(4 * xx + 0.3 * i), np.cos(3 * yy - 0.2 * i), xx * yy]) * 0.4 + 0.5
        for i in range(t)
    ]
    v = np.stack(frames) + rng.normal(0, 0.02, (t, 3, size, size))
    return np.clip(v, 0, 1).astype(np.float32)


def test_registry_holds_the_eight_nobox_perturbations():
    assert sorted(VIDEO_PERTURBATIONS.names()) == sorted(STRENGTHS)


@pytest.mark.parametrize("name", sorted(STRENGTHS))
def test_each_perturbation_is_identity_at_zero_and_changes_video_at_strength(name):
    v = _video()
    same, kept = perturb_video(v, name, 0.0, np.random.default_rng(1))
    assert np.array_equal(same, v) and np.array_equal(kept, np.arange(len(v)))
    out, kept = perturb_video(v, name, STRENGTHS[name], np.random.default_rng(1))
    assert out.dtype == np.float32 and out.min() >= 0 and out.max() <= 1
    assert out.shape[1:] == v.shape[1:] and len(out) == len(kept)
    if len(out) == len(v):
        assert not np.array_equal(out, v)
    else:
        assert len(out) < len(v)


def test_crop_uses_one_window_for_every_frame():
    frame = _video(1)[0]
    v = np.stack([frame] * 4)
    out, _ = perturb_video(v, "crop", 0.5, np.random.default_rng(3))
    assert all(np.array_equal(out[0], o) for o in out[1:])


def test_frame_removal_reports_kept_source_frames_and_keeps_at_least_one():
    v = _video(5)
    out, kept = perturb_video(v, "frame_removal", 0.99, np.random.default_rng(0))
    assert len(out) >= 1
    assert np.array_equal(out, v[kept])
    q = video_quality(v, out, kept)
    assert q["psnr"] == 100.0 and q["ssim"] == pytest.approx(1.0)


def test_frame_average_window_two_is_mean_of_neighbours():
    v = _video(4)
    out, _ = perturb_video(v, "frame_average", 2.0, np.random.default_rng(0))
    assert np.allclose(out[1], (v[1] + v[2]) / 2, atol=1e-6)


def test_frame_swap_only_permutes_frames():
    v = _video(8)
    out, _ = perturb_video(v, "frame_swap", 1.0, np.random.default_rng(0))
    assert np.array_equal(out[0], v[1]) and np.array_equal(out[1], v[0])


def test_h264_quality_falls_with_crf():
    v = _video(4, 64)
    hi = video_quality(v, h264_roundtrip(v, 10), np.arange(4))["psnr"]
    lo = video_quality(v, h264_roundtrip(v, 45), np.arange(4))["psnr"]
    assert hi > lo and hi > 30


def test_bad_strength_and_bad_video_are_one_line_errors():
    v = _video()
    with pytest.raises(ParameterError, match="frame_average.strength"):
        perturb_video(v, "frame_average", 2.5, np.random.default_rng(0))
    with pytest.raises(ParameterError, match="jpeg.strength"):
        perturb_video(v, "jpeg", 120.0, np.random.default_rng(0))
    with pytest.raises(DataError, match="T >= 1"):
        check_video(np.zeros((0, 3, 8, 8)))
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        check_video(v * 2)
