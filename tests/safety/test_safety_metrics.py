"""Tests of aisec.metrics.safety (Safe@1, Safe@K, ConsSafe@K, judge agreement)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aisec.errors import DataError, ParameterError
from aisec.metrics.safety import agreement, cons_safe_at_k, safe_at_1, safe_at_k, safety_at_k


def test_definitions_on_a_worked_example():
    m = [[1, 1, 1, 1, 1], [1, 1, 0, 1, 0], [0, 0, 0, 1, 0]]
    assert safe_at_1(m) == pytest.approx(9 / 15)
    assert safe_at_k(m) == pytest.approx(1 / 3)
    assert cons_safe_at_k(m) == pytest.approx(2 / 3)
    s = safety_at_k(m)
    assert s.safe_at_k.k == 1 and s.cons_safe_at_k.k == 2 and s.k == 5 and s.n_prompts == 3


@given(st.lists(st.lists(st.booleans(), min_size=3, max_size=3), min_size=1, max_size=20))
def test_ordering(rows):
    m = np.array(rows)
    assert safe_at_k(m) <= safe_at_1(m) + 1e-12
    assert safe_at_k(m) <= cons_safe_at_k(m)


def test_bad_shapes():
    with pytest.raises(DataError):
        safe_at_1([])
    with pytest.raises(DataError):
        safe_at_1([[2, 0]])


def test_agreement():
    a = agreement([True, False, True, False], [True, False, False, False], [0.9, 0.1, 0.6, 0.2])
    assert a.accuracy == 0.75 and a.f1 == pytest.approx(2 / 3)
    assert 0.5 < a.pearson <= 1.0
    assert np.isnan(agreement([True, True], [True, False]).pearson)
    with pytest.raises(ParameterError):
        agreement([True], [True, False])
