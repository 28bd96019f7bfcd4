"""Tests of aisec.metrics.safety (Safe@1, Safe@K, ConsSafe@K, judge agreement)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
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


@settings(deadline=None)
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


def test_unjudged_samples_are_left_out_of_safe_at_1_and_counted():
    n = None
    m = [[True, n, True], [False, n, n], [n, n, n]]
    s = safety_at_k(m)
    # prompt 0: 2/2 judged safe; prompt 1: 0/1; prompt 2 has no judged sample and is left out
    assert s.safe_at_1 == pytest.approx(0.5) and safe_at_1(m) == pytest.approx(0.5)
    assert s.unjudged == 6 and s.prompts_with_unjudged == 3 and s.prompts_unjudged == 1
    assert s.n_prompts == 3 and s.k == 3
    # NaN reads as unjudged too; an unjudged sample never counts as safe (None is not False)
    assert safe_at_1(np.array([[1.0, np.nan]])) == 1.0
    assert np.isnan(safe_at_1([[n, n]]))


def test_safe_at_k_counts_only_decided_prompts():
    n = None
    m = [
        [True, True, True],  # decided safe
        [True, n, True],  # all judged safe, one unjudged: undecided (could be unsafe)
        [False, n, True],  # one judged unsafe: decided not all-safe
        [n, n, n],
    ]  # undecided
    s = safety_at_k(m)
    assert (s.safe_at_k.k, s.safe_at_k.n, s.undecided_safe_at_k) == (1, 2, 2)
    assert safe_at_k(m) == pytest.approx(0.5)


def test_cons_safe_at_k_counts_only_decided_prompts():
    n = None
    m = [
        [True, True, n, n],  # 2 safe >= 4/2 whatever the rest: decided safe
        [False, False, False, n],  # at most 1 safe < 2: decided unsafe
        [True, False, n, n],  # 1 safe, could reach 2 or not: undecided
        [False, False, n, n],
    ]  # could reach exactly 2: undecided
    s = safety_at_k(m)
    assert (s.cons_safe_at_k.k, s.cons_safe_at_k.n, s.undecided_cons_safe_at_k) == (1, 2, 2)
    assert cons_safe_at_k(m) == pytest.approx(0.5)


def test_summary_dict_reports_unjudged_and_uses_null_for_undefined_rates():
    s = safety_at_k([[None, None], [None, None]]).to_dict()
    assert s["safe_at_1"] is None and s["safe_at_k"] is None and s["cons_safe_at_k"] is None
    assert s["safe_at_k_ci"] is None and s["unjudged"] == 4 and s["prompts_unjudged"] == 2
    d = safety_at_k([[True, False]]).to_dict()
    assert d["safe_at_1"] == 0.5 and d["safe_at_k"] == 0.0 and d["unjudged"] == 0


@settings(deadline=None)
@given(
    st.lists(
        st.lists(st.sampled_from([True, False, None]), min_size=3, max_size=3),
        min_size=1,
        max_size=20,
    )
)
def test_unjudged_never_raises_a_rate_above_its_best_case(rows):
    # filling every unjudged sample with "safe" can only raise Safe@K / ConsSafe@K counts
    s = safety_at_k(rows)
    best = safety_at_k([[True if x is None else x for x in r] for r in rows])
    assert s.safe_at_k.k <= best.safe_at_k.k and s.cons_safe_at_k.k <= best.cons_safe_at_k.k
    fully = [r for r in rows if None not in r]
    if fully:
        assert s.safe_at_k.n >= len(fully)


def test_cross_table_uses_samples_judged_in_both_parts():
    from aisec.metrics.safety import cross_table

    t = [[True, False, None], [False, False, True]]
    a = [[True, False, True], [True, None, False]]
    x = cross_table(t, a)
    assert x["samples"] == 4 and x["unjudged"] == 2
    assert x["both_safe"] == 0.25 and x["both_unsafe"] == 0.25
    assert x["unsafe_thought_safe_answer"] == 0.25 and x["safe_thought_unsafe_answer"] == 0.25
    assert x["p_unsafe_answer_given_unsafe_thought"] == 0.5


def test_agreement_leaves_unjudged_out():
    a = agreement([True, None, False, None], [True, True, False, False], [0.9, None, 0.1, None])
    assert a.n == 2 and a.unjudged == 2 and a.accuracy == 1.0 and a.f1 == 1.0
    assert a.pearson == pytest.approx(1.0)
    none = agreement([None, None], [True, False])
    assert none.n == 0 and none.unjudged == 2 and np.isnan(none.accuracy)
    assert none.to_dict()["accuracy"] is None
    with pytest.raises(DataError):
        safe_at_1([[True, "maybe"]])
