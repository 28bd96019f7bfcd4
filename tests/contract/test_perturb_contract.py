"""Behavioural contract of every registered distortion and trigger.

A method registered later is checked the day it registers: identity at strength 0 (triggers: at
their declared ``neutral`` parameters), output in [0, 1], shape and float32 kept, the input left
untouched, reproducible from its seed, on grayscale and RGB image batches (B, C, H, W), video
(T, C, H, W) and batches of videos (B, T, C, H, W).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aisec.perturb.distortions import DISTORTIONS, REFERENCE_STRENGTHS, make_distortion
from aisec.perturb.triggers import TRIGGERS, make_trigger

DISTORTION_NAMES = DISTORTIONS.names()
TRIGGER_NAMES = TRIGGERS.names()

# (H, W) planes, (B, H, W) stacks, (B, C, H, W) images, (T, C, H, W) video, (B, T, C, H, W)
SHAPES = [(12, 12), (2, 12, 10), (2, 1, 12, 12), (2, 3, 12, 12), (4, 3, 12, 12), (2, 3, 3, 12, 12)]
SHAPE_IDS = ["HW", "BHW", "B1HW", "B3HW", "video-T3HW", "videos-BT3HW"]


def _images(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def _strengths(name: str) -> list[float]:
    """The reference strength, half of it and the largest allowed (where finite)."""
    ref = REFERENCE_STRENGTHS[name]
    top = DISTORTIONS.get(name).max_strength
    return [ref / 2, ref] + ([top] if np.isfinite(top) else [])


# ---------------------------------------------------------------------------------------------
# distortions


@pytest.mark.parametrize("name", DISTORTION_NAMES)
def test_distortion_has_a_reference_strength(name):
    assert REFERENCE_STRENGTHS.get(name, 0) > 0, f"{name}: add it to REFERENCE_STRENGTHS"
    assert REFERENCE_STRENGTHS[name] <= DISTORTIONS.get(name).max_strength


@pytest.mark.parametrize("name", DISTORTION_NAMES)
@settings(max_examples=12, deadline=None)
@given(shape=st.sampled_from(SHAPES), seed=st.integers(0, 2**31 - 1))
def test_distortion_at_strength_zero_is_identity(name, shape, seed):
    x = _images(shape, seed)
    y = make_distortion(name, 0.0).apply(x, np.random.default_rng(seed))
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, x)


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("name", DISTORTION_NAMES)
def test_distortion_keeps_range_shape_dtype_and_input(name, shape):
    x = _images(shape)
    before = x.copy()
    for strength in _strengths(name):
        y = make_distortion(name, strength).apply(x, np.random.default_rng(1))
        assert y.shape == x.shape and y.dtype == np.float32
        assert np.isfinite(y).all() and y.min() >= 0.0 and y.max() <= 1.0, (
            strength,
            y.min(),
            y.max(),
        )
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("name", DISTORTION_NAMES)
def test_distortion_on_black_and_white_images_stays_in_range(name):
    for value in (0.0, 1.0):
        x = np.full((2, 3, 12, 12), value, np.float32)
        for strength in _strengths(name):
            y = make_distortion(name, strength).apply(x, np.random.default_rng(2))
            assert y.min() >= 0.0 and y.max() <= 1.0


@pytest.mark.parametrize("name", DISTORTION_NAMES)
def test_distortion_is_seeded_and_does_something(name):
    x = _images((2, 3, 16, 16))
    d = make_distortion(name, REFERENCE_STRENGTHS[name])
    a = d.apply(x, np.random.default_rng(5))
    np.testing.assert_array_equal(a, d.apply(x, np.random.default_rng(5)))
    assert np.abs(a - x).max() > 1e-3, f"{name} at its reference strength left the images alone"


def _draws_nothing(name: str) -> bool:
    x = _images((2, 3, 12, 12), seed=6)
    d = make_distortion(name, REFERENCE_STRENGTHS[name] / 2)
    return np.array_equal(
        d.apply(x, np.random.default_rng(0)), d.apply(x, np.random.default_rng(1))
    )


# Distortions that draw no random numbers (same output under two seeds); random ones draw per
# image, so their per-frame outputs depend on the draw order and are checked by the tests above.
DETERMINISTIC = [n for n in DISTORTION_NAMES if _draws_nothing(n)]


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_distortion_treats_video_frames_independently(name):
    video = _images((4, 3, 12, 12), seed=3)
    d = make_distortion(name, REFERENCE_STRENGTHS[name] / 2)
    out = d.apply(video, np.random.default_rng(0))
    for t in range(len(video)):
        np.testing.assert_allclose(out[t], d.apply(video[t], np.random.default_rng(0)), atol=1e-6)


# ---------------------------------------------------------------------------------------------
# triggers


@pytest.mark.parametrize("name", TRIGGER_NAMES)
def test_trigger_declares_neutral_parameters(name):
    cls = TRIGGERS.get(name)
    assert isinstance(getattr(cls, "neutral", None), dict) and cls.neutral, (
        f"trigger {name!r} must declare `neutral`, the parameters at which it is the identity"
    )
    make_trigger(name, **cls.neutral)  # and they validate


@pytest.mark.parametrize("name", TRIGGER_NAMES)
@settings(max_examples=12, deadline=None)
@given(shape=st.sampled_from(SHAPES), seed=st.integers(0, 2**31 - 1))
def test_trigger_at_neutral_parameters_is_identity(name, shape, seed):
    x = _images(shape, seed)
    y = make_trigger(name, **TRIGGERS.get(name).neutral).apply(x)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, x)


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("name", TRIGGER_NAMES)
def test_trigger_keeps_range_shape_dtype_and_input(name, shape):
    for x in (_images(shape), np.zeros(shape, np.float32), np.ones(shape, np.float32)):
        before = x.copy()
        y = make_trigger(name).apply(x)
        assert y.shape == x.shape and y.dtype == np.float32
        assert y.min() >= 0.0 and y.max() <= 1.0
        np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("name", TRIGGER_NAMES)
def test_trigger_changes_only_its_mask_and_is_deterministic(name):
    x = _images((3, 3, 12, 12))
    trig = make_trigger(name)
    y = trig.apply(x)
    np.testing.assert_array_equal(y, make_trigger(name).apply(x))
    mask = trig.mask((12, 12))
    assert mask.shape == (12, 12) and mask.dtype == bool
    np.testing.assert_array_equal(y[..., ~mask], x[..., ~mask])
    assert np.abs(y - x)[..., mask].max() > 1e-3, f"{name} with its defaults changed nothing"


@pytest.mark.parametrize("name", TRIGGER_NAMES)
def test_trigger_stamps_every_video_frame_alike(name):
    frame = _images((3, 12, 12), seed=4)
    video = np.repeat(frame[None], 5, axis=0)  # (T, C, H, W): five identical frames
    out = make_trigger(name).apply(video)
    for t in range(1, 5):
        np.testing.assert_array_equal(out[t], out[0])
    np.testing.assert_array_equal(out[0], make_trigger(name).apply(frame))
