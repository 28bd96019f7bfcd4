"""Sparse plaintext matrix times Paillier-encrypted vector, touching only the non-zeros.

``matvec(X, [[w]])`` returns ``[[X w]]`` and ``rmatvec(X, [[e]])`` returns ``[[X^T e]]`` for a CSR
matrix ``X`` of integers (fixed-point encoded features). A binary entry costs one ciphertext
multiplication and no exponentiation; another entry costs one ``powmod`` by ``|x|``. Negative
entries are collected in a second product and inverted once per output, so no ciphertext is
inverted per entry. The cost follows ``nnz(X)``; which entries are non-zero never leaves the
holder of ``X`` (outputs are re-randomised before they are sent, see :mod:`aisec.crypto.h2s`).

Reference: Chen et al., "When Homomorphic Encryption Marries Secret Sharing: Secure Large-Scale
Sparse Logistic Regression", KDD 2021 (secure sparse matrix multiplication).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from aisec.crypto.he import HEPublicKey
from aisec.errors import DependencyError, ParameterError

try:
    import gmpy2
    from gmpy2 import mpz
except ImportError:
    raise DependencyError("gmpy2", "crypto") from None

from aisec.crypto.paillier import PaillierPublicKey  # noqa: E402 (needs gmpy2)

__all__ = ["integer_csr", "matvec", "rmatvec"]


def integer_csr(x: sp.spmatrix | np.ndarray) -> sp.csr_matrix:
    """A CSR copy of ``x`` with int64 entries, explicit zeros removed; rejects non-integers."""
    m = sp.csr_matrix(x)
    if m.dtype.kind == "f":
        if not np.all(np.isfinite(m.data)) or np.any(m.data != np.rint(m.data)):
            raise ParameterError(
                "X", "must hold integers (fixed-point encode it first)", "non-integer"
            )
    m = sp.csr_matrix(m, dtype=np.int64)
    m.eliminate_zeros()
    m.sort_indices()
    return m


def _rows(
    pk: PaillierPublicKey,
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    cts: Sequence[mpz],
) -> list[mpz]:
    nsq = pk.nsq
    out: list[mpz] = []
    ip = indptr.tolist()
    idx = indices.tolist()
    vals = data.tolist()
    for i in range(len(ip) - 1):
        pos = mpz(1)
        neg = None
        for k in range(ip[i], ip[i + 1]):
            x = vals[k]
            c = cts[idx[k]]
            if x == 1:
                pos = pos * c % nsq
            elif x > 0:
                pos = pos * gmpy2.powmod(c, x, nsq) % nsq
            elif x == -1:
                neg = c if neg is None else neg * c % nsq
            else:
                t = gmpy2.powmod(c, -x, nsq)
                neg = t if neg is None else neg * t % nsq
        if neg is not None:
            pos = pos * gmpy2.invert(neg, nsq) % nsq
        out.append(pos)
    return out


def matvec(pk: HEPublicKey, x: sp.csr_matrix, cts: Any) -> Any:
    """``[[X w]]`` for an integer CSR ``X`` (n, d) and ``d`` ciphertexts; returns ``n``.

    Keys of other schemes (OU) bring their own kernel (``pk.matvec``)."""
    if not isinstance(pk, PaillierPublicKey):
        return pk.matvec(x, cts)
    if x.shape[1] != len(cts):
        raise ParameterError("ciphertexts", f"must number X.shape[1]={x.shape[1]}", len(cts))
    return _rows(pk, x.indptr, x.indices, x.data, cts)


def rmatvec(pk: HEPublicKey, x: sp.csr_matrix, cts: Any) -> Any:
    """``[[X^T e]]`` for an integer CSR ``X`` (n, d) and ``n`` ciphertexts; returns ``d``."""
    if not isinstance(pk, PaillierPublicKey):
        return pk.rmatvec(x, cts)
    if x.shape[0] != len(cts):
        raise ParameterError("ciphertexts", f"must number X.shape[0]={x.shape[0]}", len(cts))
    xt = sp.csr_matrix(x.T)
    return _rows(pk, xt.indptr, xt.indices, xt.data, cts)
