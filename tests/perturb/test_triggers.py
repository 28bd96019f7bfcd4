"""Triggers: identity at strength 0, values stay in [0, 1], only the patch changes, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aisec.errors import ConfigError, DataError, UnknownNameError
from aisec.perturb.triggers import TRIGGERS, make_trigger


def _images(rng, n=4, h=12, w=12):
    return rng.random((n, h, w), dtype=np.float32)


def test_registry_has_three_triggers():
    assert {"patch", "blend", "warp"} <= set(TRIGGERS.names())


@pytest.mark.parametrize(("name", "zero"), [("patch", {"opacity": 0.0}),
                                            ("blend", {"alpha": 0.0}),
                                            ("warp", {"strength": 0.0})])
def test_strength_zero_is_identity(rng, name, zero):
    x = _images(rng)
    np.testing.assert_allclose(make_trigger(name, **zero).apply(x), x, atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(name=st.sampled_from(["patch", "blend", "warp"]), seed=st.integers(0, 2**16),
       h=st.integers(8, 20))
def test_output_in_range_same_shape_and_input_untouched(name, seed, h):
    x = np.random.default_rng(seed).random((2, 1, h, h), dtype=np.float32)
    before = x.copy()
    out = make_trigger(name).apply(x)
    assert out.shape == x.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    np.testing.assert_array_equal(x, before)


def test_patch_changes_only_its_corner(rng):
    x = _images(rng, h=10, w=10)
    trig = make_trigger("patch", size=3, corner="top-left", pattern="white")
    out = trig.apply(x)
    np.testing.assert_array_equal(out[:, :3, :3], 1.0)
    np.testing.assert_array_equal(out[:, 3:, :], x[:, 3:, :])
    np.testing.assert_array_equal(out[:, :, 3:], x[:, :, 3:])
    assert trig.mask((10, 10)).sum() == 9


def test_triggers_are_deterministic_and_differ_by_seed(rng):
    x = _images(rng)
    for name in ("blend", "warp"):
        a, b = make_trigger(name, seed=1).apply(x), make_trigger(name, seed=1).apply(x)
        np.testing.assert_array_equal(a, b)
        assert not np.allclose(a, make_trigger(name, seed=2).apply(x))


def test_warp_displacement_bounded_by_strength():
    trig = make_trigger("warp", strength=1.5, grid=4)
    d = trig.field((16, 16))
    assert d.shape == (2, 16, 16) and np.abs(d).max() == pytest.approx(1.5, rel=1e-5)


def test_bad_inputs_are_one_line_errors(rng):
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        make_trigger("patch").apply(np.full((1, 8, 8), 2.0, np.float32))
    with pytest.raises(DataError, match="floating point"):
        make_trigger("patch").apply(np.zeros((1, 8, 8), np.uint8))
    with pytest.raises(DataError, match="does not fit"):
        make_trigger("patch", size=9).apply(np.zeros((1, 8, 8), np.float32))
    with pytest.raises(ConfigError, match="alpha"):
        make_trigger("blend", alpha=1.5)
    with pytest.raises(UnknownNameError, match="patch"):
        make_trigger("glitter")
    with pytest.raises(ConfigError, match="is not a known key"):
        make_trigger("patch", sise=3)
