"""Detection metrics: ROC curve, AUC and TPR at a fixed false-positive rate.

Scores are "higher means more likely positive" (watermarked, poisoned, unsafe ...).
"""

from __future__ import annotations

import numpy as np

from aisec.errors import DataError, ParameterError

__all__ = ["roc_curve", "auc", "threshold_at_fpr", "tpr_at_fpr"]


def _check(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pos = np.asarray(pos, dtype=np.float64).ravel()
    neg = np.asarray(neg, dtype=np.float64).ravel()
    if pos.size == 0 or neg.size == 0:
        raise DataError(f"need positive and negative scores; got {pos.size} and {neg.size}")
    if not (np.isfinite(pos).all() and np.isfinite(neg).all()):
        raise DataError("scores must be finite; got NaN or inf")
    return pos, neg


def roc_curve(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds), thresholds descending; a score >= threshold is positive.

    One point per distinct score (no points dropped), preceded by (0, 0) at threshold +inf;
    O(n log n) through ``sklearn.metrics.roc_curve``.
    """
    from sklearn.metrics import roc_curve as _sk_roc

    pos, neg = _check(pos, neg)
    y = np.concatenate([np.ones(pos.size, np.int8), np.zeros(neg.size, np.int8)])
    fpr, tpr, thr = _sk_roc(y, np.concatenate([pos, neg]), drop_intermediate=False)
    return fpr.astype(np.float64), tpr.astype(np.float64), thr.astype(np.float64)


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties count one half)."""
    pos, neg = _check(pos, neg)
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([pos, neg]))
    u = ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2
    return float(u / (pos.size * neg.size))


def threshold_at_fpr(neg: np.ndarray, fpr: float = 0.01) -> float:
    """Smallest threshold whose empirical FPR on ``neg`` (score > threshold) is <= ``fpr``."""
    neg = np.sort(np.asarray(neg, dtype=np.float64).ravel())
    if neg.size == 0:
        raise DataError("need at least one negative score")
    if not 0.0 <= fpr <= 1.0:
        raise ParameterError("fpr", "must lie in [0, 1]", fpr)
    k = int(np.floor(fpr * neg.size))  # number of negatives allowed above the threshold
    return float(neg[neg.size - k - 1]) if k < neg.size else float(-np.inf)


def tpr_at_fpr(pos: np.ndarray, neg: np.ndarray, fpr: float = 0.01) -> float:
    """Empirical TPR at the threshold that keeps FPR <= ``fpr`` (positives strictly above it)."""
    pos, neg = _check(pos, neg)
    return float((pos > threshold_at_fpr(neg, fpr)).mean())
