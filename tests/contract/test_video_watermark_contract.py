"""Every registered video watermark, by behaviour (a new one is checked the day it registers):
embed keeps the clip's shape, range and 8-bit grid and stays close to it; detect gives per-frame
logits of the key's length; the marked clip carries more of the key than the unmarked one, and a
key of another method is refused. Methods that need the ``video`` extra skip alone without it."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from aisec.errors import ConfigError
from aisec.provenance.video import VIDEO_WATERMARKS, VideoKey, get_video_method
from aisec.provenance.video.aggregation import frame_bit_accuracy

# Per-method minimum frame side (the classical package methods need 256 px).
SIDE = {"dwtdct": 256, "dwtdctsvd": 256}
TORCH_METHODS = {"hidden", "segmark"}  # learned here; they need the torch extra


def _needs_video_extra(name: str) -> None:
    for module in ("av", "onnxruntime", "cv2", "pywt"):
        pytest.importorskip(module)
    if importlib.util.find_spec("imwatermark") is None:
        pytest.skip("needs the invisible-watermark package (extra video)")
    if name in TORCH_METHODS:
        pytest.importorskip("torch")


@pytest.fixture(params=VIDEO_WATERMARKS.names())
def method_and_clip(request):  # noqa: ANN001, ANN201
    _needs_video_extra(request.param)
    from aisec.provenance.video.clips import real_clips

    side = SIDE.get(request.param, 128)
    return get_video_method(request.param), real_clips(1, 2, side, skip=24)[1].frames


def _post_hoc(m) -> None:  # noqa: ANN001
    if getattr(m, "in_generation", False):
        pytest.skip(f"{m.name} is in-generation: it marks clips it generates (own tests)")


def test_embed_keeps_shape_range_and_8_bit_grid_and_stays_close(method_and_clip):
    m, clip = method_and_clip
    _post_hoc(m)
    wm = m.embed(clip, m.keygen(np.random.default_rng(0)))
    assert wm.shape == clip.shape
    assert 0.0 <= float(wm.min()) and float(wm.max()) <= 1.0
    np.testing.assert_allclose(wm * 255, np.round(wm * 255), atol=1e-3)
    psnr = 10 * np.log10(1 / np.mean((wm.astype(np.float64) - clip) ** 2))
    assert psnr > 30, (m.name, psnr)


def test_marked_clip_carries_more_of_the_key_than_the_clean_one(method_and_clip):
    m, clip = method_and_clip
    _post_hoc(m)
    key = m.keygen(np.random.default_rng(1))
    logits = m.detect(m.embed(clip, key))
    assert logits.shape == (len(clip), m.bits) and np.isfinite(logits).all()
    marked = frame_bit_accuracy(logits, key.message).mean()
    clean = frame_bit_accuracy(m.detect(clip), key.message).mean()
    assert marked >= 0.65 and marked > clean + 0.1, (m.name, marked, clean)


def test_a_key_of_another_method_is_refused(method_and_clip):
    m, clip = method_and_clip
    other = VideoKey("not-" + m.name, np.zeros(m.bits, dtype=np.uint8))
    with pytest.raises(ConfigError, match=m.name):
        m.embed(clip, other)


def test_an_in_generation_method_refuses_to_mark_a_given_clip(method_and_clip):
    m, clip = method_and_clip
    if not getattr(m, "in_generation", False):
        pytest.skip(f"{m.name} is post-hoc")
    with pytest.raises(ConfigError, match=m.name):
        m.embed(clip, m.keygen(np.random.default_rng(0)))
