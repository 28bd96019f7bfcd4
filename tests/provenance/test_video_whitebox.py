"""WEvade-style white-box attacks on RivaGAN through its decoder rebuilt in torch."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from aisec.errors import ParameterError
from aisec.provenance.video import aggregate_all, get_video_method


@pytest.fixture(scope="module")
def setup():
    pytest.importorskip("av")
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    pytest.importorskip("torch")
    if importlib.util.find_spec("imwatermark") is None:
        pytest.skip("needs the invisible-watermark package (extra video)")
    from aisec.provenance.video.clips import real_clips
    from aisec.provenance.video.whitebox import load_torch_decoder

    m = get_video_method("rivagan")
    clip = real_clips(1, 1, 128, skip=24)[1].frames  # bikes, one frame
    return m, load_torch_decoder(m), m.keygen(np.random.default_rng(3)), clip


def test_torch_decoder_matches_the_onnx_decoder(setup):
    import torch

    m, dec, key, clip = setup
    wm = m.embed(clip, key)
    ref = m.detect(wm)
    with torch.no_grad():
        got = dec(torch.from_numpy(wm)).numpy()
    assert np.abs(got - ref).max() < 1e-3 * np.abs(ref).max()


def test_forgery_pgd_within_8_of_255_makes_a_real_frame_detected(setup):
    import torch

    from aisec.provenance.video.whitebox import wevade

    m, dec, key, clip = setup
    assert not aggregate_all(m.detect(clip), key.message)["ba_mean"]["flag"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        res = wevade(dec, clip, key, "forgery", eps=8 / 255, alpha=2 / 255, steps=8)
    finally:
        torch.set_num_threads(threads)
    assert res.linf <= 8 / 255 + 1e-6
    assert all(v["flag"] for v in aggregate_all(m.detect(res.video), key.message).values())


def test_wevade_refuses_unknown_goal_and_non_rivagan_method(setup):
    from aisec.provenance.video.whitebox import load_torch_decoder, wevade

    m, dec, key, clip = setup
    with pytest.raises(ParameterError, match="goal"):
        wevade(dec, clip, key, "steal")

    class Other:
        name = "dwtdct"

    with pytest.raises(ParameterError, match="torch decoder"):
        load_torch_decoder(Other())
