"""SoReg (social-regularised matrix factorisation) and plain MF in plaintext: the two baselines,
and the update rule every mode of SeSoRec follows.

Loss (U: K x I user factors, V: K x J item factors, M = D + E - S - S^T, see
:func:`~aisec.privacy.sesorec.data.laplacian`):
``1/2 sum I_ij (r_ij - mu - u_i^T v_j)^2 + l2/2 (|U|^2 + |V|^2) + social/2 tr(U M U^T)``.
Minibatch gradient descent over users: for a batch ``b`` with residuals ``E`` (|b| x J, zero
where unrated), ``U_b -= lr (-V E^T + l2 U_b + social U M[:, b])`` and
``V -= lr (-U_b E + l2 |b|/I V)``. ``social = 0`` is plain MF.

Reference: Ma, Zhou, Liu, Lyu, King, "Recommender Systems with Social Regularization", WSDM 2011;
Chen et al., ECAI 2020 (SeSoRec's model).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from aisec.errors import ParameterError
from aisec.privacy.sesorec.data import Ratings

__all__ = [
    "Factors",
    "user_batches",
    "init_factors",
    "centred_rows",
    "rating_gradients",
    "apply_update",
    "train_plaintext",
    "predict",
    "rmse_mae",
]


@dataclass
class Factors:
    """``U`` (K x I), ``V`` (K x J) and the rating mean ``mu`` (all the rating platform's)."""

    U: np.ndarray
    V: np.ndarray
    mu: float


def user_batches(n_users: int, batch_size: int, epoch: int, seed: int) -> list[np.ndarray]:
    """The public batch order of an epoch: a permutation of the users fixed by (seed, epoch)."""
    if batch_size < 1:
        raise ParameterError("batch_size", "must be >= 1", batch_size)
    perm = np.random.default_rng([seed, epoch]).permutation(n_users)
    return [np.sort(perm[i : i + batch_size]) for i in range(0, n_users, batch_size)]


def init_factors(
    k: int, n_users: int, n_items: int, scale: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed, 7919])
    return scale * rng.normal(size=(k, n_users)), scale * rng.normal(size=(k, n_items))


def centred_rows(train: Ratings, mu: float) -> sp.csr_matrix:
    """The ratings minus ``mu`` as a CSR matrix (users x items); rated cells keep their
    position even when the centred value is 0 (the mask is the sparsity pattern)."""
    m = sp.csr_matrix(
        (train.rating - mu + 0.0, (train.user, train.item)), shape=(train.n_users, train.n_items)
    )
    m.sum_duplicates()
    return m


def rating_gradients(
    U: np.ndarray, V: np.ndarray, rows: sp.csr_matrix, batch: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(V E^T, U_b E)`` for the batch's centred ratings ``rows`` (|b| x J CSR); ``E`` is the
    residual on the rated cells."""
    ub = U[:, batch]
    coo = rows.tocoo()
    pred = np.einsum("kn,kn->n", ub[:, coo.row], V[:, coo.col])
    e = sp.csr_matrix((coo.data - pred, (coo.row, coo.col)), shape=rows.shape)
    return np.asarray((e @ V.T).T), np.asarray((e.T @ ub.T).T)


def apply_update(
    f: Factors,
    batch: np.ndarray,
    vet: np.ndarray,
    ube: np.ndarray,
    z: np.ndarray | None,
    lr: float,
    l2: float,
    social: float,
) -> None:
    """One minibatch step in place (``z = U M[:, b]``, None for MF)."""
    n_users = f.U.shape[1]
    ub = f.U[:, batch]
    g = -vet + l2 * ub
    if z is not None:
        g = g + social * z
    f.U[:, batch] = ub - lr * g
    f.V -= lr * (-ube + l2 * (len(batch) / n_users) * f.V)


def train_plaintext(
    train: Ratings,
    m: sp.csr_matrix | None,
    *,
    factors: int,
    epochs: int,
    batch_size: int,
    lr: float,
    l2: float,
    social: float,
    init_scale: float,
    seed: int,
) -> Factors:
    """SoReg on both platforms' data joined (``m`` given) or MF without S (``m`` None)."""
    mu = float(train.rating.mean())
    U, V = init_factors(factors, train.n_users, train.n_items, init_scale, seed)
    f = Factors(U, V, mu)
    rows = centred_rows(train, mu)
    mc = m.tocsc() if m is not None else None
    for epoch in range(epochs):
        for b in user_batches(train.n_users, batch_size, epoch, seed):
            vet, ube = rating_gradients(f.U, f.V, rows[b], b)
            z = None if mc is None else np.asarray((mc[:, b].T @ f.U.T).T)
            apply_update(f, b, vet, ube, z, lr, l2, social)
    return f


def predict(f: Factors, r: Ratings, lo: float, hi: float) -> np.ndarray:
    """Predicted ratings for the (user, item) pairs of ``r``, clipped to [lo, hi]."""
    p = f.mu + np.einsum("kn,kn->n", f.U[:, r.user], f.V[:, r.item])
    return np.clip(p, lo, hi)


def rmse_mae(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    err = pred - truth
    return float(np.sqrt(np.mean(err**2))), float(np.mean(np.abs(err)))
