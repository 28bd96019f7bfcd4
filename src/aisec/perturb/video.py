"""The eight no-box video perturbations of VideoMarkBench, each with one strength knob.

Videos are float arrays (T, C, H, W) in [0, 1]. The four spatial ones reuse
:mod:`aisec.perturb.distortions` frame by frame; the other four act on the time axis or on the
whole clip. Every perturbation takes an explicit ``numpy.random.Generator``, is the identity at
strength 0 and returns ``(video, kept)``: ``kept[t]`` is the index of the source frame that
output frame ``t`` stands in for (``arange(T)`` except after frame removal), so quality metrics
compare like with like.

==================  =================================================  ==========================
name                strength                                           VideoMarkBench parameter
==================  =================================================  ==========================
``jpeg``            100 - JPEG quality, per frame                      quality q (default 90)
``gaussian_noise``  noise standard deviation (video in [0, 1])         sigma
``blur``            Gaussian sigma in pixels, per frame                sigma (5x5 kernel there)
``crop``            fraction of the area cut away; one window for      area ratio r = 1 - strength
                    all frames, resized back
``h264``            x264 CRF (0 = lossless), yuv420p, through PyAV     CRF q
``frame_average``   window m: each frame -> mean of m frames           m in 1..4
``frame_swap``      probability that a frame swaps with its successor  p
``frame_removal``   probability that a frame is dropped (>= 1 kept)    p
==================  =================================================  ==========================

Differences from the reference scripts (``common_perturabtions/*.py``): blur uses the Gaussian
of :mod:`aisec.perturb.distortions` (no fixed 5x5 support); H.264 encodes in memory with PyAV
instead of calling ffmpeg (the reference MPEG-4 script does not run: wrong ``super()`` class and
a missing import); noise is clipped to [0, 1] rather than to each frame's min and max.

Reference: Jiang et al., "VideoMarkBench", arXiv 2505.21620 (2025), code
``zhengyuan-jiang/VideoMarkBench``.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from aisec.errors import DataError, DependencyError, ParameterError
from aisec.registry import Registry

__all__ = [
    "VIDEO_PERTURBATIONS",
    "VideoPerturbation",
    "check_video",
    "perturb_video",
    "video_quality",
]


@dataclass(frozen=True)
class VideoPerturbation:
    """One registered perturbation: ``fn(video, strength, rng) -> (video, kept)``."""

    name: str
    fn: Callable[[np.ndarray, float, np.random.Generator], tuple[np.ndarray, np.ndarray]]
    max_strength: float
    integer: bool = False


VIDEO_PERTURBATIONS: Registry[VideoPerturbation] = Registry("video perturbation")


def check_video(video: Any, name: str = "video") -> np.ndarray:
    """``video`` as float32 (T, C, H, W) in [0, 1] with T >= 1, else a one-line DataError."""
    x = np.asarray(video)
    if x.ndim != 4 or x.shape[0] < 1 or x.shape[1] not in (1, 3):
        raise DataError(f"{name}: must be (T, C, H, W) with T >= 1 and C in (1, 3); got {x.shape}")
    x = x.astype(np.float32, copy=False)
    if not np.isfinite(x).all() or x.min() < 0.0 or x.max() > 1.0:
        raise DataError(f"{name}: values must be finite and in [0, 1]")
    return x


def _add(name: str, max_strength: float, integer: bool = False, summary: str = "") -> Callable:
    def deco(fn: Callable) -> Callable:
        VIDEO_PERTURBATIONS.add(
            name, VideoPerturbation(name, fn, max_strength, integer), summary=summary
        )
        return fn

    return deco


def _same(t: int) -> np.ndarray:
    return np.arange(t)


def _framewise(distortion: str) -> Callable:
    def fn(x: np.ndarray, s: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        from aisec.perturb.distortions import distort

        return distort(x, distortion, s, rng), _same(len(x))

    return fn


_add("jpeg", 99.0, summary="JPEG at quality 100 - `strength`, per frame")(_framewise("jpeg"))
_add("gaussian_noise", 1.0, summary="add N(0, strength^2) noise, clip to [0, 1]")(
    _framewise("gaussian_noise")
)
_add("blur", 64.0, summary="Gaussian blur with sigma `strength` pixels, per frame")(
    _framewise("blur")
)


@_add("crop", 0.99, summary="cut away `strength` of the area (one window for all frames)")
def _crop(x: np.ndarray, s: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    from aisec.perturb.distortions import _resize, _square

    t, c, h, w = x.shape
    top, left, sh, sw = _square(h, w, 1.0 - s, rng)
    planes = x[:, :, top : top + sh, left : left + sw].reshape(t * c, sh, sw)
    return _resize(planes, h, w).reshape(t, c, h, w), _same(t)


@_add("h264", 51.0, integer=True, summary="H.264 (libx264, yuv420p) at CRF `strength`")
def _h264(x: np.ndarray, s: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return h264_roundtrip(x, int(round(s))), _same(len(x))


def h264_roundtrip(video: np.ndarray, crf: int, fps: int = 25) -> np.ndarray:
    """Encode (T, C, H, W) in [0, 1] with libx264 at ``crf`` in memory and decode it back."""
    try:
        import av
    except ImportError:
        raise DependencyError("av", "video") from None
    t, c, h, w = video.shape
    if h % 2 or w % 2:
        raise DataError(f"h264: frame size must be even for yuv420p; got {h}x{w}")
    frames = np.round(video * 255.0).astype(np.uint8)
    if c == 1:
        frames = np.repeat(frames, 3, axis=1)
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        st = out.add_stream("libx264", rate=fps)
        st.width, st.height, st.pix_fmt = w, h, "yuv420p"
        st.options = {"crf": str(int(crf)), "preset": "ultrafast"}
        for f in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(f.transpose(1, 2, 0)), "rgb24")
            for pkt in st.encode(frame):
                out.mux(pkt)
        for pkt in st.encode():
            out.mux(pkt)
    buf.seek(0)
    with av.open(buf, "r") as inp:
        dec = [fr.to_ndarray(format="rgb24") for fr in inp.decode(video=0)]
    if len(dec) != t:
        raise DataError(f"h264: decoded {len(dec)} frames from {t}")
    y = np.stack(dec).transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    return y[:, :1] if c == 1 else y


@_add(
    "frame_average", 16.0, integer=True, summary="each frame -> mean of a `strength`-frame window"
)
def _average(x: np.ndarray, s: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    m = int(round(s))
    t = len(x)
    if m <= 1:
        return x.copy(), _same(t)
    out = np.empty_like(x)
    for i in range(t):
        lo = max(0, min(i - (m - 1) // 2, t - m))
        out[i] = x[lo : lo + m].mean(axis=0)
    return out, _same(t)


@_add("frame_swap", 1.0, summary="swap each frame with its successor with probability `strength`")
def _swap(x: np.ndarray, s: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    order = np.arange(len(x))
    i = 0
    while i < len(x) - 1:
        if rng.random() < s:
            order[i], order[i + 1] = order[i + 1], order[i]
            i += 2
        else:
            i += 1
    return x[order].copy(), _same(len(x))


@_add("frame_removal", 0.99, summary="drop each frame with probability `strength` (>= 1 kept)")
def _removal(x: np.ndarray, s: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    keep = rng.random(len(x)) >= s
    if not keep.any():
        keep[int(rng.integers(len(x)))] = True
    kept = np.flatnonzero(keep)
    return x[kept].copy(), kept


def perturb_video(
    video: Any, name: str, strength: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Apply perturbation ``name`` at ``strength``: returns (video', kept source indices)."""
    p = VIDEO_PERTURBATIONS.get(name)
    x = check_video(video)
    s = float(strength)
    if not 0.0 <= s <= p.max_strength:
        raise ParameterError(f"{name}.strength", f"must be in [0, {p.max_strength:g}]", strength)
    if p.integer and s != round(s):
        raise ParameterError(f"{name}.strength", "must be an integer", strength)
    if s == 0:
        return x.copy(), _same(len(x))
    y, kept = p.fn(x, s, rng)
    return np.clip(y, 0.0, 1.0).astype(np.float32), kept


def video_quality(source: np.ndarray, perturbed: np.ndarray, kept: np.ndarray) -> dict[str, float]:
    """Mean PSNR (dB, capped at 100) and SSIM of ``perturbed`` against ``source[kept]``."""
    from aisec.metrics.image import psnr, ssim

    ref = source[kept]
    p = np.minimum(psnr(ref, perturbed), 100.0)
    return {"psnr": float(np.mean(p)), "ssim": float(np.mean(ssim(ref, perturbed)))}
