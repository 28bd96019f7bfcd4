"""Video watermark registry, RivaGAN per frame, clip reading and the no-box grid."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from aisec.errors import ConfigError, DataError, InputFileError, ParameterError
from aisec.provenance.video import VIDEO_WATERMARKS, VideoKey, get_video_method
from aisec.provenance.video.aggregation import frame_bit_accuracy, thresholds
from aisec.provenance.video.clips import read_video, real_clips, write_video


def _rivagan():
    pytest.importorskip("onnxruntime")
    if importlib.util.find_spec("imwatermark") is None:
        pytest.skip("needs the invisible-watermark package (extra video)")
    return get_video_method("rivagan")


@pytest.fixture(scope="module")
def clip():
    pytest.importorskip("av")
    return real_clips(1, 2, 128, skip=24)[1].frames  # bikes, 2 frames


def test_registry_has_rivagan_with_32_bits():
    assert "rivagan" in VIDEO_WATERMARKS
    assert VIDEO_WATERMARKS.get("rivagan").bits == 32


def test_rivagan_embeds_32_bits_that_only_the_marked_clip_carries(clip):
    m = _rivagan()
    key = m.keygen(np.random.default_rng(0))
    wm = m.embed(clip, key)
    assert wm.shape == clip.shape
    psnr = 10 * np.log10(1 / np.mean((wm - clip) ** 2))
    assert psnr > 35
    tau = thresholds(32).tau
    logits = m.detect(wm)
    assert logits.shape == (2, 32)
    assert frame_bit_accuracy(logits, key.message).min() >= tau
    assert frame_bit_accuracy(m.detect(clip), key.message).max() < tau


def test_key_of_another_method_or_length_is_refused():
    m = get_video_method("rivagan")
    with pytest.raises(ConfigError, match="'other'"):
        m.check_key(VideoKey("other", np.zeros(32, np.uint8)))
    with pytest.raises(ParameterError, match="32 bits"):
        m.check_key(VideoKey("rivagan", np.zeros(8, np.uint8)))
    with pytest.raises(ConfigError, match="not a video watermark key"):
        VideoKey.from_dict({"kind": "aisec.watermark_key"})
    k = VideoKey("rivagan", np.array([1, 0, 1], np.uint8))
    assert "101" not in repr(k)
    assert np.array_equal(
        VideoKey.from_dict(json.loads(json.dumps(k.to_dict()))).message, k.message
    )


def test_read_video_errors_name_the_file_and_the_rule(tmp_path, clip):
    with pytest.raises(InputFileError, match="does not exist"):
        read_video(tmp_path / "none.mp4")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(InputFileError, match="empty"):
        read_video(empty)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 50)
    with pytest.raises(InputFileError, match="junk.mp4.*cannot be decoded"):
        read_video(junk)
    good = write_video(tmp_path / "good.mkv", clip)
    trunc = tmp_path / "trunc.mkv"
    trunc.write_bytes(good.read_bytes()[:200])
    with pytest.raises(InputFileError, match="trunc.mkv"):
        read_video(trunc)
    frames = tmp_path / "frames"
    frames.mkdir()
    from PIL import Image

    Image.new("RGB", (16, 16)).save(frames / "0.png")
    Image.new("RGB", (24, 16)).save(frames / "1.png")
    with pytest.raises(InputFileError, match="mixed sizes"):
        read_video(frames)
    zero = tmp_path / "zero.avi"
    import av

    with av.open(str(zero), "w", format="avi") as out:
        st = out.add_stream("mpeg4", rate=25)
        st.width, st.height, st.pix_fmt = 16, 16, "yuv420p"
        out.start_encoding()
    with pytest.raises(InputFileError, match="zero.avi: has zero decodable video frames"):
        read_video(zero)
    audio = tmp_path / "audio.mp4"
    with av.open(str(audio), "w", format="mp4") as out:
        st = out.add_stream("aac", rate=8000)
        fr = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), "fltp", "mono")
        fr.sample_rate = 8000
        for pkt in [*st.encode(fr), *st.encode()]:
            out.mux(pkt)
    with pytest.raises(InputFileError, match="audio.mp4: has no video stream"):
        read_video(audio)
    nofr = tmp_path / "noframes"
    nofr.mkdir()
    with pytest.raises(InputFileError, match="no frame images"):
        read_video(nofr)


def test_lossless_write_then_read_round_trips(tmp_path, clip):
    p = write_video(tmp_path / "c.mkv", clip)
    back = read_video(p)
    assert np.abs(back - np.round(clip * 255) / 255).max() < 1e-6


@pytest.mark.parametrize("name", ["dwtdct", "dwtdctsvd"])
def test_classical_package_methods_round_trip_32_bits_per_frame(name):
    pytest.importorskip("cv2")
    pytest.importorskip("pywt")
    pytest.importorskip("torch")  # the package imports it
    if importlib.util.find_spec("imwatermark") is None:
        pytest.skip("needs the invisible-watermark package (extra video)")
    clip = real_clips(1, 1, 256, skip=24)[1].frames
    m = get_video_method(name)
    key = m.keygen(np.random.default_rng(1))
    logits = m.detect(m.embed(clip, key))
    assert logits.shape == (1, 32) and set(np.unique(logits)) <= {-1.0, 1.0}
    assert (
        frame_bit_accuracy(logits, key.message)[0]
        > frame_bit_accuracy(m.detect(clip), key.message)[0]
    )
    with pytest.raises(DataError, match="256"):
        m.embed(clip[:, :, :128, :128], key)


def test_pan_zoom_clips_are_labelled_and_move(tmp_path):
    from aisec.provenance.video.clips import pan_zoom_clips

    clips = pan_zoom_clips(2, 4, 64, seed=1)
    assert [c.kind for c in clips] == ["pan_zoom", "pan_zoom"]
    assert clips[0].frames.shape == (4, 3, 64, 64)
    assert not np.array_equal(clips[0].frames[0], clips[0].frames[-1])


def test_folder_of_videos_loads_and_reports_the_bad_file(tmp_path, clip):
    from aisec.provenance.video.clips import folder_clips

    write_video(tmp_path / "a.mkv", clip)
    (tmp_path / "b.mp4").write_bytes(b"junk" * 10)
    clips, failed = folder_clips(tmp_path, frames=2, size=64)
    assert [(c.name, c.kind, c.frames.shape) for c in clips] == [("a", "file", (2, 3, 64, 64))]
    assert failed[0][0].endswith("b.mp4") and "cannot be decoded" in failed[0][1]
