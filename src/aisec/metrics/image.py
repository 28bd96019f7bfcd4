"""Image-quality and sample-diversity metrics: PSNR, SSIM and mean pairwise distance.

PSNR / SSIM compare a watermarked sample with the unwatermarked sample of the same seed (the
"lossless" claim of Gaussian Shading is about the distribution, so per-pair fidelity is low by
design; GaussMarker reports FID/CLIP instead). Diversity is the mean pairwise (1 - SSIM) and mean
pairwise L2 distance within a set of samples: a fixed watermark nonce that makes every initial
noise share one sign pattern shows up as lower diversity than clean samples.

Reference: Wang et al., "Image quality assessment: from error visibility to structural
similarity", IEEE TIP 2004 (SSIM, via scikit-image).
"""

from __future__ import annotations

import numpy as np

from aisec.errors import DataError, DependencyError

__all__ = ["psnr", "ssim", "pairwise_diversity"]


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim < 2:
        raise DataError(f"images must have equal shapes (..., H, W); got {a.shape} and {b.shape}")
    return a, b


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 1.0) -> np.ndarray:
    """Peak signal-to-noise ratio in dB per image: a, b (N, H, W) or (H, W) -> (N,) / scalar.

    Identical images give +inf.
    """
    a, b = _pair(a, b)
    axes = tuple(range(a.ndim - 2, a.ndim)) if a.ndim == 2 else tuple(range(1, a.ndim))
    mse = ((a - b) ** 2).mean(axis=axes)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(data_range**2 / mse)


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 1.0) -> np.ndarray:
    """Mean SSIM per image (grayscale planes; extra leading axes are averaged): (N, ..., H, W)."""
    try:
        from skimage.metrics import structural_similarity
    except ImportError:
        raise DependencyError("scikit-image", "video") from None

    a, b = _pair(a, b)
    if a.ndim == 2:
        return np.float64(structural_similarity(a, b, data_range=data_range))
    n = a.shape[0]
    pa = a.reshape(n, -1, *a.shape[-2:])
    pb = b.reshape(n, -1, *b.shape[-2:])
    # the largest odd window that fits the smaller side (at most 7), e.g. 3 for 8x4 slices
    win = (min(7, *a.shape[-2:]) - 1) // 2 * 2 + 1 if min(a.shape[-2:]) >= 3 else 3
    return np.array(
        [
            np.mean(
                [
                    structural_similarity(x, y, data_range=data_range, win_size=min(win, 7))
                    for x, y in zip(ia, ib, strict=True)
                ]
            )
            for ia, ib in zip(pa, pb, strict=True)
        ]
    )


def pairwise_diversity(
    images: np.ndarray, max_pairs: int = 2000, seed: int = 0
) -> dict[str, float]:
    """Mean pairwise (1 - SSIM) and RMS distance over (random) pairs of a set (N, ..., H, W)."""
    x = np.asarray(images, dtype=np.float64)
    n = x.shape[0]
    if n < 2:
        raise DataError(f"diversity needs at least 2 images; got {n}")
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    if len(pairs) > max_pairs:
        rng = np.random.default_rng(seed)
        pairs = [pairs[k] for k in rng.choice(len(pairs), max_pairs, replace=False)]
    i, j = np.array(pairs).T
    s = ssim(x[i], x[j])
    rms = np.sqrt(((x[i] - x[j]) ** 2).reshape(len(i), -1).mean(axis=1))
    return {"one_minus_ssim": float(np.mean(1 - s)), "rms": float(np.mean(rms))}
