"""Watermark metrics: binomial thresholds, bit accuracy, empirical and fixed-threshold TPR."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binom

from aisec.errors import DataError, ParameterError
from aisec.metrics.watermark import (
    binomial_fpr,
    binomial_threshold,
    bit_accuracy,
    empirical_tpr_at_fpr,
    tpr_fpr_at_threshold,
)


def test_binomial_threshold_is_exact_and_minimal() -> None:
    k = 256
    tau = binomial_threshold(k, 1e-6)
    assert binomial_fpr(k, tau) <= 1e-6 < binomial_fpr(k, tau - 1 / k)
    # Traceability among a million users needs a stricter threshold.
    assert binomial_threshold(k, 1e-6, n_users=10**6) > tau
    assert binomial_fpr(k, 0.5) == pytest.approx(binom.sf(128, 256, 0.5))


def test_threshold_unreachable_for_few_bits() -> None:
    assert binomial_threshold(4, 1e-6) == 1.0
    with pytest.raises(ParameterError):
        binomial_threshold(64, 0.0)


def test_bit_accuracy_and_rates() -> None:
    m = np.array([1, 0, 1, 1])
    d = np.array([[1, 0, 1, 1], [0, 1, 0, 0], [1, 0, 0, 1]])
    np.testing.assert_allclose(bit_accuracy(d, m), [1.0, 0.0, 0.75])
    with pytest.raises(DataError):
        bit_accuracy(d, m[:3])
    pos, neg = np.arange(50, 150, dtype=float), np.arange(0, 100, dtype=float)
    tpr, fpr = tpr_fpr_at_threshold(pos, neg, 98.5)
    assert (tpr, fpr) == (0.51, 0.01)
    tpr, real, thr = empirical_tpr_at_fpr(pos, neg, 0.01)
    assert real <= 0.01 and thr == 98.0 and tpr == 0.51
