"""The Certificate result type: explicit abstain, certified accuracy, records."""

from __future__ import annotations

import numpy as np
import pytest

from aisec.errors import DataError, ParameterError
from aisec.robustness import ABSTAIN, Certificate


def _cert():
    return Certificate("smoothing", "l2", np.array([1, ABSTAIN, 2, 0]),
                       np.array([0.5, 0.0, 0.1, 0.3]), np.array([0.9, 0.3, 0.6, 0.8]))


def test_abstain_and_certified_accuracy():
    c = _cert()
    np.testing.assert_array_equal(c.abstained, [False, True, False, False])
    assert c.abstain_rate() == 0.25
    y = np.array([1, 1, 0, 0])
    assert c.certified_accuracy(y, 0.0) == 0.5  # inputs 0 and 3
    assert c.certified_accuracy(y, 0.4) == 0.25  # only input 0
    assert c.certified_accuracy(y, 1.0) == 0.0


def test_records_encode_abstain_explicitly():
    rec = _cert().records()
    assert rec[1] == {"prediction": None, "abstain": True, "radius": 0.0, "statistic": 0.3}
    assert rec[0]["prediction"] == 1 and rec[0]["abstain"] is False


def test_concat_and_validation():
    c = Certificate.concat([_cert(), _cert()])
    assert len(c) == 8 and c.abstained.sum() == 2
    with pytest.raises(DataError):
        Certificate("ibp", "linf", np.zeros(2), np.zeros(3), np.zeros(2))
    with pytest.raises(DataError, match="labels"):
        _cert().correct(np.zeros(3))
    with pytest.raises(ParameterError):
        _cert().certified(-1.0)
