"""The eight image distortions: identity at strength 0, range, shape, and what each one does."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aisec.errors import ConfigError, DataError
from aisec.perturb.distortions import DISTORTIONS, REFERENCE_STRENGTHS, distort, make_distortion

NAMES = DISTORTIONS.names()


def test_all_eight_registered() -> None:
    assert set(NAMES) == {
        "rotation",
        "jpeg",
        "crop_scale",
        "random_drop",
        "blur",
        "salt_pepper",
        "gaussian_noise",
        "brightness",
    }


@settings(max_examples=25, deadline=None)
@given(
    name=st.sampled_from(NAMES),
    seed=st.integers(0, 2**31 - 1),
    shape=st.sampled_from([(8, 8), (2, 12, 10), (2, 3, 9, 9), (3, 1, 16, 16)]),
)
def test_strength_zero_is_identity(name: str, seed: int, shape: tuple[int, ...]) -> None:
    x = np.random.default_rng(seed).random(shape).astype(np.float32)
    y = distort(x, name, 0.0, np.random.default_rng(seed))
    np.testing.assert_array_equal(x, y)


@settings(max_examples=25, deadline=None)
@given(name=st.sampled_from(NAMES), seed=st.integers(0, 2**31 - 1))
def test_output_in_range_and_shape(name: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.random((2, 3, 16, 16)).astype(np.float32)
    y = distort(x, name, REFERENCE_STRENGTHS[name] / 2, rng)
    assert y.shape == x.shape and y.dtype == np.float32
    assert y.min() >= 0.0 and y.max() <= 1.0


def test_seeded_is_deterministic() -> None:
    x = np.random.default_rng(0).random((4, 16, 16)).astype(np.float32)
    for name in NAMES:
        a = distort(x, name, REFERENCE_STRENGTHS[name], np.random.default_rng(5))
        b = distort(x, name, REFERENCE_STRENGTHS[name], np.random.default_rng(5))
        np.testing.assert_array_equal(a, b)


def test_gaussian_noise_has_no_uint8_wraparound() -> None:
    # The reference casts noise to uint8 so -1 becomes 255: dark images turned white.
    x = np.full((1, 64, 64), 0.5, dtype=np.float32)
    y = distort(x, "gaussian_noise", 0.05, np.random.default_rng(0))
    d = y - x
    assert abs(float(d.mean())) < 0.005
    assert 0.045 < float(d.std()) < 0.055
    assert float(d.min()) > -0.3 and float(d.max()) < 0.3


def test_rotation_180_flips_both_axes_and_twice_is_identity() -> None:
    x = np.random.default_rng(1).random((2, 3, 10, 12)).astype(np.float32)  # even, non-square
    once = distort(x, "rotation", 180, np.random.default_rng(0))
    # 180 degrees about the centre maps pixel centres onto pixel centres: no interpolation loss
    np.testing.assert_allclose(once, x[..., ::-1, ::-1], atol=1e-6)
    twice = distort(once, "rotation", 180, np.random.default_rng(0))
    np.testing.assert_allclose(twice, x, atol=1e-6)


def test_rotation_90_is_counter_clockwise() -> None:
    x = np.zeros((1, 9, 9), np.float32)
    x[0, 1, 4] = 1.0  # above the centre (4, 4)
    x[0, 2, 6] = 0.5  # up and to the right
    y = distort(x, "rotation", 90, np.random.default_rng(0))
    expected = np.zeros_like(x)
    expected[0, 4, 1] = 1.0  # above -> left
    expected[0, 2, 2] = 0.5  # up-right -> up-left
    np.testing.assert_allclose(y, expected, atol=1e-6)


def test_crop_and_drop_areas() -> None:
    x = np.ones((1, 20, 20), np.float32)
    dropped = distort(x, "random_drop", 0.25, np.random.default_rng(0))
    assert abs(float((dropped == 0).mean()) - 0.25) < 0.03
    grad = np.tile(np.linspace(0, 1, 20, dtype=np.float32), (1, 20, 1))
    cropped = distort(grad, "crop_scale", 0.75, np.random.default_rng(0))
    # Keeping half the side zooms in: the ramp spans half its range, its slope halves.
    assert np.diff(cropped[0, 10]).mean() < 0.6 * np.diff(grad[0, 10]).mean()


def test_salt_pepper_fraction_and_brightness_factor() -> None:
    x = np.full((1, 100, 100), 0.5, np.float32)
    sp = distort(x, "salt_pepper", 0.1, np.random.default_rng(0))
    assert abs(float((sp != 0.5).mean()) - 0.1) < 0.02
    assert set(np.unique(sp)) <= {0.0, 0.5, 1.0}
    imgs = np.full((3, 1, 10, 10), 0.5, np.float32)
    br = distort(imgs, "brightness", 0.5, np.random.default_rng(0))
    # one factor per image, uniform in [1 - s, 1 + s] (the same draw from the same seed)
    factors = np.random.default_rng(0).uniform(0.5, 1.5, size=3)
    np.testing.assert_allclose(
        br, np.broadcast_to(0.5 * factors[:, None, None, None], br.shape), rtol=1e-6
    )
    assert np.unique(br[:, 0, 0, 0]).size == 3


def test_jpeg_loses_detail_and_blur_smooths() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((1, 32, 32)).astype(np.float32)
    j = distort(x, "jpeg", 90, rng)
    assert 0.02 < float(np.abs(j - x).mean())
    b = distort(x, "blur", 1.0, rng)
    assert float(np.abs(np.diff(b, axis=-1)).mean()) < 0.5 * float(
        np.abs(np.diff(x, axis=-1)).mean()
    )
    rgb = distort(rng.random((2, 3, 16, 16)).astype(np.float32), "jpeg", 50, rng)
    assert rgb.shape == (2, 3, 16, 16)


def test_bad_input_and_parameters() -> None:
    with pytest.raises(DataError, match="in \\[0, 1\\]"):
        distort(np.full((4, 4), 2.0, np.float32), "blur", 1.0, np.random.default_rng(0))
    with pytest.raises(DataError, match="floating"):
        distort(np.zeros((4, 4), np.uint8), "blur", 1.0, np.random.default_rng(0))
    with pytest.raises(ConfigError, match="strength"):
        make_distortion("jpeg", 150)
    with pytest.raises(ConfigError, match="strength"):
        make_distortion("blur", -1)
    with pytest.raises(ConfigError, match="rotation"):
        make_distortion("rotate", 3)
