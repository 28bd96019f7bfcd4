from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aisec.errors import DataError, ParameterError
from aisec.metrics import auc, clopper_pearson, rate, roc_curve, tpr_at_fpr


def test_clopper_pearson_known_values():
    lo, hi = clopper_pearson(5, 10)
    assert lo == pytest.approx(0.187086, abs=1e-5) and hi == pytest.approx(0.812914, abs=1e-5)
    assert clopper_pearson(0, 10)[0] == 0.0 and clopper_pearson(10, 10)[1] == 1.0


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


def test_auc_and_tpr():
    pos, neg = np.array([0.9, 0.8, 0.7]), np.array([0.1, 0.2, 0.75])
    assert auc(pos, neg) == pytest.approx(8 / 9)
    assert auc(np.ones(3), np.ones(3)) == 0.5
    fpr, tpr, _ = roc_curve(pos, neg)
    assert fpr[0] == 0 and tpr[-1] == 1 and fpr[-1] == 1
    rng = np.random.default_rng(0)
    neg = rng.normal(size=1000)
    assert tpr_at_fpr(neg + 10, neg, 0.01) == 1.0
    # empirical FPR at the chosen threshold never exceeds the target
    assert (neg > np.sort(neg)[-11]).mean() <= 0.01
    with pytest.raises(DataError):
        auc(np.array([np.nan]), np.array([0.0]))
