"""Clean FPR at scale: the seeded stream of never-watermarked clips, batched counting, resuming,
and the 2D RivaGAN decoder graph that the counting runs on."""

from __future__ import annotations

import importlib.util
import re

import numpy as np
import pytest

from aisec.errors import ParameterError
from aisec.provenance.video import RULES, VideoKey, get_video_method
from aisec.provenance.video.fpr import (
    TRAINING_FRAMES,
    clean_fpr,
    clean_fpr_many,
    forgery_clip,
    iter_forgery_clips,
)
from aisec.provenance.video.methods import VideoWatermark


@pytest.fixture(autouse=True)
def _needs_av():
    pytest.importorskip("av")
    pytest.importorskip("skimage")


class _Echo(VideoWatermark):
    """A detector that reads the key's message off every frame (always fires) and counts calls."""

    name = "echo"
    bits = 32

    def __init__(self, message: np.ndarray) -> None:
        self.message = message
        self.calls = 0

    def embed(self, video, key):  # pragma: no cover - never embeds here
        return video

    def detect(self, video):
        self.calls += 1
        return np.tile(self.message * 2.0 - 1.0, (len(video), 1))


def test_forgery_clips_are_seeded_per_index_and_avoid_training_frames():
    a = forgery_clip(4, frames=3, size=32, seed=1)
    b = list(iter_forgery_clips(2, frames=3, size=32, seed=1, start=4))[0]
    assert a.name == b.name and np.array_equal(a.frames, b.frames)
    assert a.frames.shape == (3, 3, 32, 32) and a.frames.dtype == np.float32
    assert not np.array_equal(a.frames, forgery_clip(4, frames=3, size=32, seed=2).frames)
    clips = list(iter_forgery_clips(40, frames=3, size=32, seed=0))
    assert [c.kind for c in clips[:4]] == ["real", "pan_zoom", "real", "pan_zoom"]
    for c in clips:
        if c.kind == "real":
            first = int(re.search(r"@(\d+)\[", c.name).group(1))
            frames = range(first, first + 3)
            assert not any(TRAINING_FRAMES[0] <= f < TRAINING_FRAMES[1] for f in frames), c.name
    assert len({c.name for c in clips}) == 40


def test_forgery_clip_rejects_bad_arguments():
    with pytest.raises(ParameterError, match="frames >= 1"):
        forgery_clip(0, frames=0)


def test_clean_fpr_counts_every_clip_of_a_detector_that_always_fires():
    msg = np.random.default_rng(0).integers(0, 2, 32).astype(np.uint8)
    m = _Echo(msg)
    r = clean_fpr(m, VideoKey("echo", msg), n=10, frames=2, size=32, chunk=4)
    assert r["fp"] == dict.fromkeys(RULES, 10)
    assert r["bit_acc_mean"] == 1.0 and r["n_by_kind"] == {"pan_zoom": 5, "real": 5}
    assert sum(r["fp_by_kind"][k]["ba_mean"] for k in r["fp_by_kind"]) == 10
    # fresh random keys almost never match the echoed message
    assert max(r["fp_random_key"].values()) == 0
    assert m.calls == 3  # batched: one detect per chunk of 4, 4, 2 clips


def test_learned_detector_has_no_false_positive_on_unmarked_clips_and_batches_segments():
    m = get_video_method("segmark")
    key = m.keygen(np.random.default_rng(3))
    r = clean_fpr(m, key, n=8, frames=4, size=32, chunk=8)
    assert r["batched"] and r["fp"] == dict.fromkeys(RULES, 0)
    assert 0.3 < r["bit_acc_mean"] < 0.7
    # one call on the concatenated clips gives each clip's own logits (segments never straddle)
    clips = list(iter_forgery_clips(3, frames=4, size=32, seed=0))
    together = m.detect(np.concatenate([c.frames for c in clips]))
    for c, lg in zip(clips, np.split(together, 3), strict=True):
        np.testing.assert_allclose(lg, m.detect(c.frames), atol=1e-5)


def test_clean_fpr_resumes_from_its_store_without_detecting_again(tmp_path):
    msg = np.ones(32, dtype=np.uint8)
    store = tmp_path / "fpr.jsonl"
    m1 = _Echo(msg)
    first = clean_fpr_many([(m1, VideoKey("echo", msg))], 6, 2, 32, chunk=3, store_path=store)
    m2 = _Echo(msg)
    again = clean_fpr_many([(m2, VideoKey("echo", msg))], 6, 2, 32, chunk=3, store_path=store)
    assert m1.calls == 2 and m2.calls == 0
    assert first[0]["fp"] == again[0]["fp"] and first[0]["n_by_kind"] == again[0]["n_by_kind"]
    # another key is another experiment: nothing is reused
    other = np.zeros(32, dtype=np.uint8)
    m3 = _Echo(other)
    clean_fpr_many([(m3, VideoKey("echo", other))], 6, 2, 32, chunk=3, store_path=store)
    assert m3.calls == 2


def test_rivagan_2d_graphs_give_the_package_graphs_frames_and_logits():
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    if importlib.util.find_spec("imwatermark") is None:
        pytest.skip("needs the invisible-watermark package (extra video)")
    clip = forgery_clip(0, frames=2, size=64, seed=0).frames
    ref = get_video_method("rivagan", graph="onnx")
    fast = get_video_method("rivagan")
    assert fast.graph == "2d"
    key = ref.keygen(np.random.default_rng(0))
    wm = ref.embed(clip, key)
    # the 2D encoder writes the same 8-bit frames up to a rare rounding tie
    wm_fast = fast.embed(clip, key)
    assert np.abs(wm_fast - wm).max() <= 1 / 255 + 1e-6
    assert np.mean(wm_fast != wm) < 1e-3
    for v in (clip, wm):
        a, b = ref.detect(v), fast.detect(v)
        np.testing.assert_allclose(b, a, atol=1e-3 + 1e-5 * np.abs(a).max())
        assert np.array_equal(a > 0, b > 0)
    with pytest.raises(ParameterError, match="graph"):
        get_video_method("rivagan", graph="3d")


@pytest.mark.slow
def test_rivagan_throughput_times_both_sides_and_restores_the_package_sessions():
    pytest.importorskip("onnxruntime")
    if importlib.util.find_spec("imwatermark") is None:
        pytest.skip("needs the invisible-watermark package (extra video)")
    from imwatermark.rivaGan import RivaWatermark

    from aisec.provenance.video.methods import rivagan_throughput

    before = (RivaWatermark.encoder, RivaWatermark.decoder)
    frames = forgery_clip(0, frames=1, size=256, seed=0).frames
    m = get_video_method("rivagan")
    t = rivagan_throughput(frames, m.keygen(np.random.default_rng(0)), threads=1, reps=1)
    for k in ("embed_fps", "detect_fps", "onnx_graph_detect_fps"):
        assert t[k] > 0 and np.isfinite(t[k])
    assert t["package_embed_fps"] > 0 and t["package_detect_fps"] > 0
    assert (RivaWatermark.encoder, RivaWatermark.decoder) == before
    with pytest.raises(ParameterError, match="reps"):
        rivagan_throughput(frames, m.keygen(np.random.default_rng(0)), reps=0)


def test_clean_fpr_row_takes_a_clip_count_per_method(tmp_path):
    pytest.importorskip("torch")
    from aisec.bench import SCENARIOS
    from aisec.bench.runner import discover, run

    discover()
    s = SCENARIOS.get("videomark.clean_fpr")
    assert s.resolve("full")["ns"] == {"dwtdct": 6000}
    over = {s.name: {"n": 4, "ns": {"segmark": 8}, "size": 32, "chunk": 4}}
    _, rows = run([s], out_dir=tmp_path, overrides=over, show_progress=False, third_party_log=False)
    m = rows[0]["metrics"]
    assert rows[0]["status"] == "ok", rows[0].get("error")
    assert (m["hidden.n"], m["segmark.n"], m["n_clips"]) == (4, 8, 4)
    ns = {b["labels"]["method"]: b["metrics"]["n"] for b in rows[0]["breakdown"]}
    assert ns == {"hidden": 4, "segmark": 8}
