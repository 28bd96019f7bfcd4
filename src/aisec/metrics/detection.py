"""Detection metrics: ROC curve, AUC and TPR at a fixed false-positive rate.

Scores are "higher means more likely positive" (watermarked, poisoned, unsafe ...).
"""

from __future__ import annotations

import numpy as np

from aisec.errors import DataError

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
    """(fpr, tpr, thresholds), thresholds descending; a score >= threshold is positive."""
    pos, neg = _check(pos, neg)
    thr = np.unique(np.concatenate([pos, neg]))[::-1]
    tpr = (pos[None, :] >= thr[:, None]).mean(axis=1)
    fpr = (neg[None, :] >= thr[:, None]).mean(axis=1)
    return (np.concatenate([[0.0], fpr]), np.concatenate([[0.0], tpr]),
            np.concatenate([[np.inf], thr]))


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
    k = int(np.floor(fpr * neg.size))  # number of negatives allowed above the threshold
    return float(neg[neg.size - k - 1]) if k < neg.size else float(-np.inf)


def tpr_at_fpr(pos: np.ndarray, neg: np.ndarray, fpr: float = 0.01) -> float:
    """Empirical TPR at the threshold that keeps FPR <= ``fpr`` (positives strictly above it)."""
    pos, neg = _check(pos, neg)
    return float((pos > threshold_at_fpr(neg, fpr)).mean())
