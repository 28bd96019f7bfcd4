"""Metrics shared by every system: rates with exact intervals, detection curves, image quality."""

from aisec.metrics.detection import auc, roc_curve, threshold_at_fpr, tpr_at_fpr
from aisec.metrics.stats import Rate, clopper_pearson, rate

__all__ = ["Rate", "clopper_pearson", "rate", "auc", "roc_curve", "threshold_at_fpr", "tpr_at_fpr"]
