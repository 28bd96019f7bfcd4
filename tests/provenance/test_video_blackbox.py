"""Black-box (ART Square / HopSkipJump) attacks on the RivaGAN video detector."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from aisec.errors import ParameterError
from aisec.provenance.video import get_video_method


@pytest.fixture(scope="module")
def setup():
    pytest.importorskip("av")
    pytest.importorskip("onnxruntime")
    pytest.importorskip("art")
    if importlib.util.find_spec("imwatermark") is None:
        pytest.skip("needs the invisible-watermark package (extra video)")
    from aisec.provenance.video.clips import real_clips

    m = get_video_method("rivagan")
    clip = real_clips(1, 1, 128, skip=24)[1].frames
    key = m.keygen(np.random.default_rng(4))
    return m, key, clip, m.embed(clip, key)


def test_square_removal_within_budget_records_first_successful_query(setup):
    from aisec.provenance.video.blackbox import blackbox_attack

    m, key, clip, wm = setup
    state = np.random.get_state()
    r = blackbox_attack(m, key, wm, "removal", "square", max_queries=8, seed=1)
    assert np.array_equal(np.random.get_state()[1], state[1])  # the global stream is restored
    assert 1 <= r["queries"] <= 8
    assert r["first_success"] is not None and r["best_linf"] <= 8 / 255 + 1e-6


def test_query_budget_is_enforced_and_bad_arguments_refused(setup):
    from aisec.provenance.video.blackbox import blackbox_attack

    m, key, clip, wm = setup
    r = blackbox_attack(m, key, clip, "forgery", "square", max_queries=3, seed=0)
    assert r["queries"] == 3
    with pytest.raises(ParameterError, match="forgery needs"):
        blackbox_attack(m, key, clip, "forgery", "hopskipjump", max_queries=3)
    with pytest.raises(ParameterError, match="attack"):
        blackbox_attack(m, key, clip, "removal", "triangle")
