"""The learned video watermarks (hidden: per frame; segmark: segments) and their noise layer."""

from __future__ import annotations

import numpy as np
import pytest

from aisec.errors import InputFileError, ParameterError
from aisec.provenance.video import aggregate_all, get_video_method
from aisec.provenance.video.aggregation import frame_bit_accuracy


@pytest.fixture(scope="module")
def torch():  # noqa: ANN201
    return pytest.importorskip("torch")


@pytest.fixture(scope="module")
def held_out_clip():  # noqa: ANN201
    pytest.importorskip("av")
    pytest.importorskip("skimage")
    from aisec.provenance.video.clips import real_clips

    return real_clips(1, 4, 128, skip=24)[1].frames  # bikes frames 24-27, never trained on


@pytest.mark.parametrize(
    "op",
    [
        "identity",
        "jpeg",
        "blur",
        "noise",
        "crop",
        "resize",
        "frame_average",
        "frame_swap",
        "frame_drop",
    ],
)
def test_noise_op_keeps_shape_range_and_8_bit_grid_and_passes_gradients(torch, op):
    from aisec.provenance.video.noise_layer import apply_noise

    x = torch.rand(2, 4, 3, 32, 32, requires_grad=True)
    y, name = apply_noise(x, np.random.default_rng(0), (op,))
    assert name == op and y.shape == x.shape
    assert float(y.min()) >= 0 and float(y.max()) <= 1
    assert torch.allclose(y * 255, (y * 255).round(), atol=1e-4)
    y.sum().backward()
    assert float(x.grad.abs().sum()) > 0


def test_differentiable_jpeg_is_close_at_high_quality_and_lossy_at_low(torch):
    from aisec.provenance.video.noise_layer import diff_jpeg

    g = torch.Generator().manual_seed(0)
    x = torch.nn.functional.avg_pool2d(torch.rand(2, 3, 64, 64, generator=g), 3, 1, 1)
    err = {q: float(((diff_jpeg(x, q) - x) ** 2).mean()) for q in (95, 20)}
    assert 10 * np.log10(1 / err[95]) > 35
    assert err[20] > 3 * err[95]


@pytest.mark.parametrize("name", ["hidden", "segmark"])
def test_shipped_weights_mark_a_held_out_clip_that_every_rule_flags(torch, held_out_clip, name):
    m = get_video_method(name)
    key = m.keygen(np.random.default_rng(5))
    wm = m.embed(held_out_clip, key)
    psnr = 10 * np.log10(1 / np.mean((wm.astype(np.float64) - held_out_clip) ** 2))
    assert psnr > 30
    logits = m.detect(wm)
    assert logits.shape == (4, 32)
    assert frame_bit_accuracy(logits, key.message).mean() >= 0.9
    assert all(v["flag"] for v in aggregate_all(logits, key.message).values())
    assert not any(v["flag"] for v in aggregate_all(m.detect(held_out_clip), key.message).values())


def test_segmark_logits_of_a_frame_depend_on_its_segment_only(torch, held_out_clip):
    m = get_video_method("segmark")
    clip = np.concatenate([held_out_clip, held_out_clip])  # 8 frames: two segments of 4
    x = torch.from_numpy(clip).requires_grad_(True)
    m.torch_logits(x)[1].sum().backward()
    per_frame = x.grad.abs().flatten(1).sum(1)
    assert float(per_frame[0]) > 0 and float(per_frame[2]) > 0  # its neighbours in the segment
    assert float(per_frame[4:].sum()) == 0  # the next segment


def test_weights_of_another_kind_are_refused_naming_the_file(torch, tmp_path):
    from aisec.provenance.video.learned import WEIGHTS_DIR

    m = get_video_method("segmark", weights=str(WEIGHTS_DIR / "hidden.safetensors"))
    with pytest.raises(InputFileError, match="hidden.safetensors.*not aisec.video.segmark"):
        m.detect(np.zeros((1, 3, 32, 32), dtype=np.float32))
    bad = tmp_path / "w.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(InputFileError, match="w.safetensors"):
        get_video_method("hidden", weights=str(bad)).detect(np.zeros((1, 3, 32, 32), np.float32))


@pytest.mark.slow
def test_a_short_training_run_writes_weights_that_load_and_record_their_recipe(torch, tmp_path):
    pytest.importorskip("av")
    pytest.importorskip("skimage")
    from safetensors import safe_open

    from aisec.provenance.video.learned import LearnedConfig, train_learned

    cfg = LearnedConfig(size=16, channels=4, steps=3, batch=2, covers=16, segment=2, grid=2)
    out = tmp_path / "seg.safetensors"
    _, summary = train_learned("segmark", cfg, seed=1, out=out, command="test")
    assert summary["steps"] == 3 and 0 <= summary["train_bit_acc"] <= 1
    with safe_open(str(out), framework="pt") as f:
        meta = f.metadata()
    assert meta["kind"] == "aisec.video.segmark" and meta["command"] == "test"
    assert LearnedConfig.model_validate_json(meta["config"]) == cfg
    m = get_video_method("segmark", weights=str(out))
    assert m.detect(np.zeros((3, 3, 20, 20), dtype=np.float32)).shape == (3, 32)
    with pytest.raises(ParameterError, match="ops"):
        train_learned("hidden", cfg.model_copy(update={"ops": ("identity", "rotate")}))


@pytest.mark.parametrize("name", ["hidden", "segmark"])
def test_wevade_within_8_of_255_removes_and_forges_the_learned_marks(torch, held_out_clip, name):
    from aisec.provenance.video.whitebox import whitebox_cell

    m = get_video_method(name)
    key = m.keygen(np.random.default_rng(7))
    clip = held_out_clip[:4]
    cell = whitebox_cell(m, key, [clip], [m.embed(clip, key)], eps=8 / 255, steps=10, alpha=2 / 255)
    assert cell["linf_max"] <= 8 / 255 + 1e-6
    assert all(c["removal"] == 1 and c["forgery"] == 1 for c in cell["rules"].values())
