"""Differentiable distortions for training learned video watermarks (HiDDeN's noise layer).

During training the watermarked clip passes through one randomly chosen distortion before the
decoder, so gradients teach the encoder to survive it (Zhu et al., "HiDDeN", ECCV 2018; Tancik et
al., "StegaStamp", CVPR 2020). All ops take (B, T, 3, S, S) float tensors in [0, 1] and keep
the shape; T = 1 for a per-frame model.

===================  ===============================================================
op                   what it does (one draw per batch)
===================  ===============================================================
``identity``         nothing
``jpeg``             8 x 8 block DCT of YCbCr, quantised with the JPEG tables at a
                     quality in [``jpeg_min``, 95]; rounding is straight-through
``blur``             Gaussian blur, sigma in [0.3, ``blur_max``] (pixels at S)
``noise``            additive Gaussian noise, sigma in [0, ``noise_max``]
``crop``             a random window keeping [``crop_min``, 1] of the area, resized back
``resize``           bilinear down to [0.5, 0.9] of the side and back up
``frame_average``    each frame -> mean of a 2- or 3-frame window (T > 1 only)
``frame_swap``       neighbouring frames swapped with probability 0.5 (T > 1 only)
``frame_drop``       frames replaced by their predecessor with probability 0.3 (T > 1)
===================  ===============================================================

Every output is then rounded to 8 bits with a straight-through gradient. The JPEG
approximation is ours: no chroma subsampling, and a straight-through round in place of the
cubic approximation of Shin and Song (2017).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from aisec.errors import ParameterError

__all__ = ["NOISE_OPS", "apply_noise", "diff_jpeg", "round_ste"]

NOISE_OPS = (
    "identity",
    "jpeg",
    "blur",
    "noise",
    "crop",
    "resize",
    "frame_average",
    "frame_swap",
    "frame_drop",
)
_TEMPORAL = ("frame_average", "frame_swap", "frame_drop")

_LUMA = np.array(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    dtype=np.float32,
)
_CHROMA = np.full((8, 8), 99.0, dtype=np.float32)
_CHROMA[:4, :4] = np.array(
    [[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]], dtype=np.float32
)


def round_ste(x: Any) -> Any:
    """``round(x)`` forward, identity backward."""
    return x + (x.round() - x).detach()


def _dct_matrix(torch: Any) -> Any:
    k = np.arange(8)
    d = np.cos((2 * k[None, :] + 1) * k[:, None] * math.pi / 16) * math.sqrt(2 / 8)
    d[0] /= math.sqrt(2)
    return torch.from_numpy(d.astype(np.float32))


def _quality_scale(q: float) -> float:
    q = min(max(q, 1.0), 100.0)
    return (5000.0 / q if q < 50 else 200.0 - 2.0 * q) / 100.0


def diff_jpeg(x: Any, quality: float) -> Any:
    """JPEG-like quantisation of (N, 3, H, W) in [0, 1], H and W multiples of 8."""
    import torch

    n, c, h, w = x.shape
    if h % 8 or w % 8:
        raise ParameterError("diff_jpeg input", "needs H and W divisible by 8", (h, w))
    r, g, b = x[:, 0] * 255, x[:, 1] * 255, x[:, 2] * 255
    y = 0.299 * r + 0.587 * g + 0.114 * b - 128
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b
    ycc = torch.stack([y, cb, cr], 1)
    d = _dct_matrix(torch).to(x)
    blocks = ycc.reshape(n, 3, h // 8, 8, w // 8, 8).permute(0, 1, 2, 4, 3, 5)
    coef = d @ blocks @ d.T
    s = _quality_scale(quality)
    tab = torch.stack(
        [torch.from_numpy(_LUMA), torch.from_numpy(_CHROMA), torch.from_numpy(_CHROMA)]
    ).to(x)
    tab = (tab * s).floor().clamp(min=1.0)[None, :, None, None]
    coef = round_ste(coef / tab) * tab
    blocks = d.T @ coef @ d
    ycc = blocks.permute(0, 1, 2, 4, 3, 5).reshape(n, 3, h, w)
    y, cb, cr = ycc[:, 0] + 128, ycc[:, 1], ycc[:, 2]
    r = y + 1.402 * cr
    g = y - 0.344136 * cb - 0.714136 * cr
    b = y + 1.772 * cb
    return (torch.stack([r, g, b], 1) / 255).clamp(0, 1)


def _blur(x: Any, sigma: float) -> Any:
    import torch
    import torch.nn.functional as F

    rad = max(1, min(3, math.ceil(2.5 * sigma)))
    t = torch.arange(-rad, rad + 1, dtype=x.dtype)
    k1 = torch.exp(-(t**2) / (2 * sigma**2))
    k1 = k1 / k1.sum()
    c = x.shape[1]
    kx = k1.view(1, 1, 1, -1).repeat(c, 1, 1, 1)
    ky = k1.view(1, 1, -1, 1).repeat(c, 1, 1, 1)
    x = F.pad(x, (rad, rad, rad, rad), mode="replicate")
    return F.conv2d(F.conv2d(x, kx, groups=c), ky, groups=c)


def apply_noise(
    x: Any,
    rng: np.random.Generator,
    ops: tuple[str, ...] = NOISE_OPS,
    jpeg_min: float = 40.0,
    blur_max: float = 1.2,
    noise_max: float = 0.04,
    crop_min: float = 0.5,
) -> tuple[Any, str]:
    """One random op of ``ops`` on (B, T, 3, S, S) in [0, 1], then 8-bit rounding.

    Returns the distorted batch and the op's name.
    """
    import torch
    import torch.nn.functional as F

    b, t, c, h, w = x.shape
    usable = [o for o in ops if t > 1 or o not in _TEMPORAL]
    op = usable[int(rng.integers(len(usable)))]
    flat = x.reshape(b * t, c, h, w)
    if op == "jpeg":
        flat = diff_jpeg(flat, float(rng.uniform(jpeg_min, 95.0)))
    elif op == "blur":
        flat = _blur(flat, float(rng.uniform(0.3, blur_max)))
    elif op == "noise":
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        flat = flat + float(rng.uniform(0, noise_max)) * torch.randn(
            flat.shape, generator=gen, dtype=flat.dtype
        )
    elif op == "crop":
        a = float(rng.uniform(crop_min, 1.0))
        ch, cw = max(8, round(h * math.sqrt(a))), max(8, round(w * math.sqrt(a)))
        y0, x0 = int(rng.integers(h - ch + 1)), int(rng.integers(w - cw + 1))
        flat = F.interpolate(
            flat[..., y0 : y0 + ch, x0 : x0 + cw], size=(h, w), mode="bilinear", align_corners=False
        )
    elif op == "resize":
        f = float(rng.uniform(0.5, 0.9))
        small = F.interpolate(flat, size=(max(8, round(h * f)), max(8, round(w * f))), mode="area")
        flat = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
    out = flat.reshape(b, t, c, h, w)
    if op == "frame_average":
        m = int(rng.integers(2, 4))
        pad = torch.cat([out, out[:, -1:].expand(b, m - 1, c, h, w)], 1)
        out = torch.stack([pad[:, i : i + m].mean(1) for i in range(t)], 1)
    elif op == "frame_swap":
        idx = np.arange(t)
        for i in range(t - 1):
            if rng.random() < 0.5:
                idx[i], idx[i + 1] = idx[i + 1], idx[i]
        out = out[:, torch.from_numpy(idx)]
    elif op == "frame_drop":
        idx = np.arange(t)
        for i in range(1, t):
            if rng.random() < 0.3:
                idx[i] = idx[i - 1]
        out = out[:, torch.from_numpy(idx)]
    return round_ste(out.clamp(0, 1) * 255) / 255, op
