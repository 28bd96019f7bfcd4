from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aisec.errors import DataError, ParameterError
from aisec.metrics import auc, clopper_pearson, rate, roc_curve, threshold_at_fpr, tpr_at_fpr


def test_clopper_pearson_known_values():
    lo, hi = clopper_pearson(5, 10)
    assert lo == pytest.approx(0.187086, abs=1e-5) and hi == pytest.approx(0.812914, abs=1e-5)
    assert clopper_pearson(0, 10)[0] == 0.0 and clopper_pearson(10, 10)[1] == 1.0


@settings(deadline=None)
@given(st.integers(1, 500), st.data())
def test_interval_contains_estimate(n, data):
    k = data.draw(st.integers(0, n))
    lo, hi = clopper_pearson(k, n)
    assert 0 <= lo <= k / n <= hi <= 1


def test_rate_validates_and_serialises():
    r = rate(3, 4).to_dict()
    assert r["value"] == 0.75 and r["k"] == 3 and r["n"] == 4 and r["ci_low"] < 0.75 < r["ci_high"]
    with pytest.raises(ParameterError):
        rate(5, 4)


def test_auc_known_values():
    pos, neg = np.array([0.9, 0.8, 0.7]), np.array([0.1, 0.2, 0.75])
    assert auc(pos, neg) == pytest.approx(8 / 9)  # 8 of the 9 (pos, neg) pairs ordered
    assert auc(np.ones(3), np.ones(3)) == 0.5  # all ties count one half
    with pytest.raises(DataError):
        auc(np.array([np.nan]), np.array([0.0]))


def test_roc_curve_hand_computed():
    pos, neg = np.array([0.9, 0.8, 0.7]), np.array([0.1, 0.2, 0.75])
    fpr, tpr, thr = roc_curve(pos, neg)
    # one point per distinct score, thresholds descending; positive iff score >= threshold
    np.testing.assert_array_equal(thr, [np.inf, 0.9, 0.8, 0.75, 0.7, 0.2, 0.1])
    np.testing.assert_allclose(tpr, [0, 1 / 3, 2 / 3, 2 / 3, 1, 1, 1])
    np.testing.assert_allclose(fpr, [0, 0, 0, 1 / 3, 1 / 3, 2 / 3, 1])


def _roc_by_counting(pos, neg):
    """The former O(n^2) implementation, kept as the oracle of the library-backed one."""
    thr = np.unique(np.concatenate([pos, neg]))[::-1]
    tpr = (pos[None, :] >= thr[:, None]).mean(axis=1)
    fpr = (neg[None, :] >= thr[:, None]).mean(axis=1)
    return np.r_[0.0, fpr], np.r_[0.0, tpr], np.r_[np.inf, thr]


# No deadline: the first example imports sklearn (1-3 s), which failed this test whenever it ran
# before the other roc tests (alone, or with -k); a deadline is no part of what it checks.
@settings(deadline=None)
@given(st.integers(1, 60), st.integers(1, 60), st.integers(0, 2**31 - 1))
def test_roc_curve_matches_counting_with_ties(n_pos, n_neg, seed):
    r = np.random.default_rng(seed)
    pos = r.integers(0, 8, n_pos) / 4.0  # few distinct values: many ties within and across
    neg = r.integers(0, 8, n_neg) / 4.0 - 0.5
    for got, want in zip(roc_curve(pos, neg), _roc_by_counting(pos, neg), strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_threshold_at_fpr_hand_computed():
    neg = np.array([0.5, 0.1, 0.9, 0.3, 1.0, 0.2, 0.7, 0.4, 0.8, 0.6])  # 0.1 .. 1.0, shuffled
    # floor(fpr * 10) negatives may lie strictly above the threshold
    assert threshold_at_fpr(neg, 0.1) == 0.9
    assert threshold_at_fpr(neg, 0.25) == 0.8
    assert threshold_at_fpr(neg, 0.05) == 1.0  # no negative may exceed it
    assert threshold_at_fpr(neg, 0.0) == 1.0
    assert threshold_at_fpr(neg, 0.99) == 0.1
    assert threshold_at_fpr(neg, 1.0) == -np.inf
    # ties: no threshold below 0.5 keeps FPR <= 0.4, and 0.5 realises 0.2
    assert threshold_at_fpr(np.array([0.0, 0.5, 0.5, 0.5, 1.0]), 0.4) == 0.5
    with pytest.raises(ParameterError, match="fpr"):
        threshold_at_fpr(neg, 1.5)
    with pytest.raises(DataError):
        threshold_at_fpr(np.array([]), 0.1)


def test_tpr_at_fpr_hand_computed():
    neg = np.linspace(0.1, 1.0, 10)
    pos = np.array([0.95, 0.85, 0.5, 1.2])
    assert tpr_at_fpr(pos, neg, 0.1) == 0.5  # threshold 0.9: 0.95 and 1.2 strictly above
    assert tpr_at_fpr(pos, neg, 0.2) == 0.75  # threshold 0.8
    assert tpr_at_fpr(np.array([0.9]), neg, 0.1) == 0.0  # equal to the threshold is not above
    big = np.random.default_rng(0).normal(size=1000)
    assert threshold_at_fpr(big, 0.01) == np.sort(big)[-11]  # 10 of 1000 may lie above
    assert tpr_at_fpr(big + 10, big, 0.01) == 1.0 and tpr_at_fpr(big, big, 0.01) == 0.01
