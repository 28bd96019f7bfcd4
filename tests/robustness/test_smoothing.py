"""Randomized smoothing: exact Clopper-Pearson bound and abstain rules, seeded sampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import beta, norm

from aisec.errors import ConfigError
from aisec.robustness.certifiers import make_certifier
from aisec.robustness.certifiers.randomized_smoothing import (
    lower_confidence_bound,
    sample_counts,
)


class Constant(torch.nn.Module):
    """Always class ``c`` (whatever the noise)."""

    def __init__(self, c: int, k: int = 4):
        super().__init__()
        self.c, self.k = c, k

    def forward(self, x):
        out = torch.zeros(x.shape[0], self.k)
        out[:, self.c] = 1.0
        return out


class SignOfFirstPixel(torch.nn.Module):
    """Class 0 if the first pixel is below 0.5, else class 1: a 50/50 split at x = 0.5."""

    def forward(self, x):
        v = x.flatten(1)[:, :1] - 0.5
        return torch.cat([-v, v, torch.full_like(v, -1e3)], dim=1)


def test_lower_bound_matches_clopper_pearson_reference():
    # statsmodels' proportion_confint(k, n, alpha=2a, method="beta")[0] == beta.ppf(a, k, n-k+1)
    for k, n, a in [(990, 1000, 0.001), (600, 1000, 0.001), (55, 100, 0.05), (1, 10, 0.01)]:
        assert lower_confidence_bound(np.array([k]), n, a)[0] == pytest.approx(
            beta.ppf(a, k, n - k + 1), rel=1e-12)
    assert lower_confidence_bound(np.array([0]), 100, 0.001)[0] == 0.0


def test_certify_constant_model_gives_closed_form_radius(rng):
    cert = make_certifier("smoothing", sigma=0.5, n0=10, n=200, alpha=0.001)
    x = rng.random((3, 1, 4, 4), dtype=np.float32)
    out = cert.certify(Constant(2), x, rng)
    p_lo = 0.001 ** (1 / 200)  # Clopper-Pearson lower bound with n_A = n
    np.testing.assert_array_equal(out.prediction, [2, 2, 2])
    np.testing.assert_allclose(out.statistic, p_lo, rtol=1e-9)
    np.testing.assert_allclose(out.radius, 0.5 * norm.ppf(p_lo), rtol=1e-9)
    assert out.norm == "l2" and not out.abstained.any()


def test_certify_abstains_on_a_split_vote(rng):
    x = np.full((5, 1, 2, 2), 0.5, dtype=np.float32)
    cert = make_certifier("smoothing", sigma=0.25, n0=50, n=400, alpha=0.001)
    out = cert.certify(SignOfFirstPixel(), x, rng)
    assert out.abstained.all() and (out.radius == 0).all() and (out.statistic < 0.5).all()
    pred = cert.predict(SignOfFirstPixel(), x, rng)
    assert pred.abstained.all()


def test_predict_commits_when_clear(rng):
    x = np.zeros((2, 1, 2, 2), dtype=np.float32)
    pred = make_certifier("smoothing", n=100).predict(Constant(1), x, rng)
    np.testing.assert_array_equal(pred.prediction, [1, 1])
    assert (pred.statistic <= 0.001).all()


@pytest.mark.parametrize("batch_size", [1, 7, 1000])
def test_counts_sum_to_n_and_are_reproducible(batch_size):
    x = torch.full((3, 1, 2, 2), 0.5)
    g = torch.Generator().manual_seed(0)
    c = sample_counts(SignOfFirstPixel(), x, 50, 0.25, batch_size, g, 3)
    assert c.shape == (3, 3) and (c.sum(axis=1) == 50).all() and (c[:, 2] == 0).all()
    c2 = sample_counts(SignOfFirstPixel(), x, 50, 0.25, batch_size,
                       torch.Generator().manual_seed(0), 3)
    np.testing.assert_array_equal(c, c2)


def test_same_seed_same_certificate(rng):
    x = np.full((4, 1, 2, 2), 0.55, dtype=np.float32)
    cert = make_certifier("smoothing", n0=20, n=100)
    a, b = cert.certify(SignOfFirstPixel(), x, 7), cert.certify(SignOfFirstPixel(), x, 7)
    np.testing.assert_array_equal(a.prediction, b.prediction)
    np.testing.assert_array_equal(a.statistic, b.statistic)


@pytest.mark.parametrize("bad", [{"sigma": 0.0}, {"sigma": -1}, {"alpha": 1.0}, {"alpha": 0},
                                 {"n": 0}, {"sigmaa": 1}])
def test_bad_parameters_are_one_line_errors(bad):
    with pytest.raises(ConfigError) as info:
        make_certifier("smoothing", **bad)
    assert "\n" not in str(info.value) and next(iter(bad)) in str(info.value)
