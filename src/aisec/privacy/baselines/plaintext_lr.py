"""Plaintext logistic regression on the joined data: the quality reference for CAESAR.

``fit_exact`` is scikit-learn's L2 logistic regression (exact sigmoid, L-BFGS): what a single
party holding all the data would train. ``fit_surrogate`` runs the very minibatch SGD that
CAESAR runs (same batch order, sigmoid approximation, step and L2) in floating point, so the
difference between it and CAESAR is the cost of fixed-point and HE arithmetic alone.

Reference: Chen et al., KDD 2021 (CAESAR is compared with plaintext LR on AUC/KS).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["fit_exact", "fit_surrogate", "scores_with_intercept"]


def fit_exact(x: sp.spmatrix, y: np.ndarray, c: float = 1.0, max_iter: int = 2000) -> np.ndarray:
    """Weights (d + 1,), intercept last, of scikit-learn's logistic regression."""
    from sklearn.linear_model import LogisticRegression

    m = LogisticRegression(C=c, max_iter=max_iter).fit(x, y)
    return np.concatenate([m.coef_.ravel(), m.intercept_])


def scores_with_intercept(x: sp.spmatrix, w: np.ndarray) -> np.ndarray:
    """``X w[:-1] + w[-1]`` as a flat float array."""
    return np.asarray(sp.csr_matrix(x) @ w[:-1]).ravel() + w[-1]


def fit_surrogate(
    x: sp.spmatrix,
    y: np.ndarray,
    coefficients: tuple[float, float, float],
    learning_rate: float,
    l2: float,
    batch_size: int,
    epochs: int,
    batch_seed: int = 0,
    max_batches: int | None = None,
) -> np.ndarray:
    """CAESAR's SGD in floating point; weights (d + 1,), intercept last.

    Args:
        x: (n, d) features; y: (n,) labels in {0, 1}.
        coefficients: ``(q0, q1, q3)`` of the sigmoid approximation.
        learning_rate, l2, batch_size, epochs, batch_seed, max_batches: as in CaesarParams.
    """
    q0, q1, q3 = coefficients
    n = x.shape[0]
    x1 = sp.hstack([sp.csr_matrix(x), np.ones((n, 1))], format="csr")
    w = np.zeros(x1.shape[1])
    for epoch in range(epochs):
        order = np.random.default_rng([batch_seed, epoch]).permutation(n)
        batches = [np.sort(order[i : i + batch_size]) for i in range(0, n, batch_size)]
        for rows in batches[:max_batches] if max_batches else batches:
            xb = x1[rows]
            z = xb @ w
            e = q0 + q1 * z + q3 * z**3 - y[rows]
            w = (1 - learning_rate * l2) * w - learning_rate / len(rows) * (xb.T @ e)
    return w
