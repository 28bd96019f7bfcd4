"""VideoMarkBench's seven aggregation rules and their thresholds (provenance.video.aggregation)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binom

from aisec.errors import DataError, ParameterError
from aisec.provenance.video.aggregation import (
    FRAME_FPR,
    RULES,
    aggregate,
    aggregate_all,
    geometric_median,
    thresholds,
)


def _logits(message: np.ndarray, correct: list[int], scale: float = 1.0) -> np.ndarray:
    """One frame per entry: the first ``c`` bits agree with the message, the rest disagree."""
    sign = np.where(message > 0, 1.0, -1.0)
    rows = []
    for c in correct:
        s = sign.copy()
        s[c:] *= -1
        rows.append(s * scale)
    return np.array(rows)


def test_frame_threshold_is_the_papers_67_of_96_and_27_of_32():
    assert FRAME_FPR == pytest.approx(6.61e-5, rel=1e-3)
    assert thresholds(96).k_bits == 67
    assert thresholds(32).k_bits == 27
    assert thresholds(32).frame_fpr == pytest.approx(binom.sf(26, 32, 0.5))


def test_detection_threshold_frames_needed_is_smallest_k_at_1e3():
    th = thresholds(32)
    for f in (1, 8, 100, 1000):
        k = th.frames_needed(f)
        assert binom.sf(k - 1, f, th.frame_fpr) <= 1e-3
        assert k == 1 or binom.sf(k - 2, f, th.frame_fpr) > 1e-3


def test_all_rules_flag_perfect_frames_and_none_flags_inverted_ones():
    m = np.random.default_rng(0).integers(0, 2, 32)
    good = aggregate_all(_logits(m, [32] * 5), m)
    bad = aggregate_all(_logits(m, [0] * 5), m)
    assert set(good) == set(RULES)
    assert all(v["flag"] for v in good.values())
    assert not any(v["flag"] for v in bad.values())


def test_rules_disagree_where_the_paper_says_they_differ():
    m = np.ones(32, dtype=int)
    # 2 of 5 frames perfect, 3 at 20/32: a minority of frames is detected
    d = _logits(m, [32, 32, 20, 20, 20])
    agg = aggregate_all(d, m)
    assert agg["detection_threshold"]["flag"]  # k_F = 1 frame for F = 5
    assert not agg["detection_median"]["flag"]  # needs 3 of 5
    assert not agg["ba_median"]["flag"]  # median BA 20/32
    assert not agg["ba_mean"]["flag"]  # mean BA (64 + 60) / 160 = 0.775 < 27/32
    # the bits 20..31 are wrong in 3 of 5 frames: the bit majority has 20/32 right
    assert not agg["bit_median"]["flag"]
    # strong logits on the 2 good frames outvote weak wrong ones in the logit mean
    d2 = np.concatenate([d[:2] * 10, d[2:]])
    assert aggregate_all(d2, m)["logit_mean"]["flag"]
    assert not aggregate_all(d2, m)["logit_median"]["flag"]


def test_geometric_median_ignores_one_far_outlier():
    pts = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1000.0, 1000.0]])
    gm = geometric_median(pts)
    assert np.all(np.abs(gm - 0.5) < 0.6)
    assert np.abs(pts.mean(axis=0) - 0.5).max() > 100


def test_bad_inputs_are_one_line_errors():
    m = np.ones(8, dtype=int)
    with pytest.raises(DataError, match="logits must be"):
        aggregate_all(np.zeros((3, 7)), m)
    with pytest.raises(DataError, match="finite"):
        aggregate_all(np.full((2, 8), np.nan), m)
    with pytest.raises(ParameterError, match="rule"):
        aggregate(np.ones((2, 8)), m, "mean")
