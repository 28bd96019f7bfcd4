"""Every registered CAESAR sigmoid approximation, by behaviour (a new one is checked the day it
registers): it is a sigmoid near 0, and CAESAR's SGD with it learns a logistic regression about as
well as scikit-learn's exact fit."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.special import expit
from sklearn.metrics import roc_auc_score

from aisec.privacy.baselines.plaintext_lr import fit_exact, fit_surrogate, scores_with_intercept
from aisec.privacy.caesar.protocol import SIGMOIDS, sigmoid_coefficients

NAMES = SIGMOIDS.names()


def _approx(q: tuple[float, float, float], z: np.ndarray) -> np.ndarray:
    return q[0] + q[1] * z + q[2] * z**3


@pytest.mark.parametrize("name", NAMES)
def test_approximation_is_point_symmetric_increasing_and_close_near_zero(name):
    q = sigmoid_coefficients(name, 8.0)
    z = np.linspace(-1.0, 1.0, 201)
    f = _approx(q, z)
    assert f[100] == pytest.approx(0.5)  # sigma(0)
    np.testing.assert_allclose(f + f[::-1], 1.0, atol=1e-12)  # sigma(-z) = 1 - sigma(z)
    assert np.all(np.diff(f) > 0)  # a larger score never lowers the predicted probability
    assert np.max(np.abs(f - expit(z))) < 0.11  # minimax, the loosest, is 0.106 off at |z| = 1


@pytest.mark.parametrize("name", NAMES)
def test_caesar_sgd_with_the_approximation_ranks_like_exact_logistic_regression(name):
    rng = np.random.default_rng(0)
    n, d = 600, 8
    x = rng.normal(size=(n, d))
    w = rng.normal(size=d)
    y = (rng.random(n) < expit(x @ w)).astype(np.int64)
    xs = sp.csr_matrix(x)
    tr, te = slice(0, 400), slice(400, None)
    exact = roc_auc_score(y[te], scores_with_intercept(xs[te], fit_exact(xs[tr], y[tr])))
    w_sur = fit_surrogate(xs[tr], y[tr], sigmoid_coefficients(name, 8.0), 0.1, 0.0, 32, 5)
    got = roc_auc_score(y[te], scores_with_intercept(xs[te], w_sur))
    assert got > 0.75 and got >= exact - 0.03, (name, got, exact)
