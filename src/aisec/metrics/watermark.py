"""Watermark detection metrics: bit accuracy, TPR at a target FPR (empirical and deployed
thresholds), and the exact binomial thresholds of multi-bit watermarks for N-user traceability.

For a k-bit message and an unwatermarked image every decoded bit is a fair coin, so the number of
matching bits is Binomial(k, 1/2). Declaring "watermarked" when the bit accuracy exceeds tau has
false-positive rate P[Bin(k, 1/2) > tau k]; with N users (traceability: the image is attributed to
the best-matching user) the union bound multiplies it by N. These are the ``tau_onebit`` and
``tau_bits`` thresholds of the Gaussian Shading and GaussMarker code, computed exactly here with
``scipy.stats.binom`` instead of ``betainc``.

Reference: Yang et al., "Gaussian Shading", CVPR 2024 (Sec. 3.4); Li et al., "GaussMarker",
ICML 2025 (``gaussmarker_det.py``: empirical TPR at the last ROC point with FPR < 1 %).
"""

from __future__ import annotations

import numpy as np

from aisec.errors import DataError, ParameterError
from aisec.metrics.detection import threshold_at_fpr

__all__ = [
    "bit_accuracy",
    "binomial_threshold",
    "binomial_fpr",
    "tpr_fpr_at_threshold",
    "empirical_tpr_at_fpr",
]


def bit_accuracy(decoded: np.ndarray, message: np.ndarray) -> np.ndarray:
    """Per-image fraction of correct bits: decoded (B, k), message (k,) or (B, k) -> (B,)."""
    d = np.asarray(decoded)
    m = np.asarray(message)
    if d.ndim != 2 or m.shape[-1] != d.shape[1]:
        raise DataError(f"decoded must be (B, k) and message (k,); got {d.shape} and {m.shape}")
    return (d == m).mean(axis=1).astype(np.float64)


def binomial_fpr(k: int, tau: float, n_users: int = 1) -> float:
    """FPR bound of the rule "bit accuracy > tau" for k fair bits and ``n_users`` keys."""
    from scipy.stats import binom

    if k < 1:
        raise ParameterError("k", "must be >= 1", k)
    matches = int(np.floor(tau * k))  # accuracy > tau  <=>  matches > floor(tau k)
    return float(min(1.0, n_users * binom.sf(matches, k, 0.5)))


def binomial_threshold(k: int, fpr: float = 1e-6, n_users: int = 1) -> float:
    """Smallest bit-accuracy threshold tau (a multiple of 1/k) with FPR <= ``fpr`` for N users.

    Detection (N = 1) or traceability (N > 1, union bound) of a k-bit watermark: an image is
    declared watermarked (or attributed) when its bit accuracy exceeds tau. Returns 1.0 when no
    threshold reaches the target (k too small for that FPR).
    """
    if not 0 < fpr < 1:
        raise ParameterError("fpr", "must be in (0, 1)", fpr)
    if n_users < 1:
        raise ParameterError("n_users", "must be >= 1", n_users)
    for i in range(k + 1):
        if binomial_fpr(k, i / k, n_users) <= fpr:
            return i / k
    return 1.0


def tpr_fpr_at_threshold(pos: np.ndarray, neg: np.ndarray, threshold: float) -> tuple[float, float]:
    """(TPR, FPR) of the fixed rule "score > threshold" (a deployed threshold)."""
    pos = np.asarray(pos, dtype=np.float64)
    neg = np.asarray(neg, dtype=np.float64)
    if pos.size == 0 or neg.size == 0:
        raise DataError("need positive and negative scores")
    return float((pos > threshold).mean()), float((neg > threshold).mean())


def empirical_tpr_at_fpr(
    pos: np.ndarray, neg: np.ndarray, fpr: float = 0.01
) -> tuple[float, float, float]:
    """(TPR, realised FPR, threshold) at the empirical threshold of ``neg`` (the papers' way).

    With N negatives the FPR resolution is 1/N: at N = 100 and fpr = 0.01 the threshold is the
    largest clean score but one, so report the realised FPR and N beside the TPR.
    """
    thr = threshold_at_fpr(neg, fpr)
    tpr, real = tpr_fpr_at_threshold(pos, neg, thr)
    return tpr, real, thr
