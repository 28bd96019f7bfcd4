"""Vertically partitioned data for CAESAR: party files, column splits and a Zipf sparse generator.

A party's data is a :class:`PartyData`: sample ids (int64, aligned between the parties), a CSR
feature matrix and, for the label holder, labels in {0, 1}. On disk it is one safetensors file
(``indptr``, ``indices``, ``data``, ``shape``, ``ids``, optional ``y``; feature names in the
metadata), never pickle. ``split_columns`` turns a joined data set into the two parties' views.

Reference: Chen et al., KDD 2021 (vertical partition: A holds features, B features and labels).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.special import expit

from aisec.errors import DataError, InputFileError, ParameterError
from aisec.io import load_safetensors, save_safetensors

__all__ = [
    "PartyData",
    "save_party",
    "load_party",
    "split_columns",
    "zipf_sparse",
    "load_joined",
    "train_test_split_rows",
    "MAX_FEATURE",
]

MAX_FEATURE = 1.0e6  # |x| above this is refused: it would overflow the fixed-point budget


@dataclass(frozen=True)
class PartyData:
    """One party's rows.

    Attributes:
        ids: (n,) int64 sample ids, the same and in the same order at both parties.
        X: (n, d) CSR float64 features, finite, |x| <= MAX_FEATURE.
        y: (n,) int64 labels in {0, 1} at the label holder; None at the other party.
        feature_names: d names (may be empty).
    """

    ids: np.ndarray
    X: sp.csr_matrix
    y: np.ndarray | None = None
    feature_names: tuple[str, ...] = ()

    @property
    def n(self) -> int:
        return int(self.X.shape[0])

    @property
    def d(self) -> int:
        return int(self.X.shape[1])

    def rows(self, idx: np.ndarray) -> PartyData:
        return PartyData(
            self.ids[idx], self.X[idx], None if self.y is None else self.y[idx], self.feature_names
        )

    def validate(self, name: str = "data", need_labels: bool = False) -> None:
        """Raise DataError on NaN/inf or out-of-range features, bad labels or shapes."""
        if self.ids.shape != (self.n,):
            raise DataError(
                f"{name}: `ids` must have one entry per row ({self.n}); got {self.ids.shape}"
            )
        if len(np.unique(self.ids)) != self.n:
            raise DataError(f"{name}: `ids` must be unique")
        data = self.X.data
        if not np.all(np.isfinite(data)):
            k = int(np.flatnonzero(~np.isfinite(data))[0])
            row = int(np.searchsorted(self.X.indptr, k, side="right") - 1)
            raise DataError(
                f"{name}: features must be finite; got {data[k]} at row {row}, "
                f"column {int(self.X.indices[k])}"
            )
        if data.size and float(np.max(np.abs(data))) > MAX_FEATURE:
            k = int(np.argmax(np.abs(data)))
            raise DataError(
                f"{name}: features must satisfy |x| <= {MAX_FEATURE:g}; got {data[k]:g} "
                f"at column {int(self.X.indices[k])}"
            )
        if need_labels and self.y is None:
            raise DataError(f"{name}: the label holder's data must contain labels `y`")
        if self.y is not None:
            if self.y.shape != (self.n,):
                raise DataError(
                    f"{name}: `y` must have one label per row ({self.n}); got {self.y.shape}"
                )
            bad = ~np.isin(self.y, (0, 1))
            if bad.any():
                raise DataError(f"{name}: labels must be 0 or 1; got {self.y[bad][0]!r}")


def save_party(path: str | Path, data: PartyData) -> Path:
    """Write one party's data as safetensors (atomically)."""
    x = sp.csr_matrix(data.X, dtype=np.float64)
    tensors = {
        "indptr": x.indptr.astype(np.int64),
        "indices": x.indices.astype(np.int64),
        "data": x.data.astype(np.float64),
        "shape": np.array(x.shape, dtype=np.int64),
        "ids": np.asarray(data.ids, dtype=np.int64),
    }
    if data.y is not None:
        tensors["y"] = np.asarray(data.y, dtype=np.int64)
    meta = {"format": "aisec-party-data-1", "feature_names": json.dumps(list(data.feature_names))}
    return save_safetensors(path, tensors, metadata=meta)


def load_party(path: str | Path) -> PartyData:
    """Read a party file written by :func:`save_party` (or an svmlight/libsvm text file)."""
    p = Path(path)
    if not p.is_file():
        raise InputFileError(p, "no such file")
    if p.suffix in (".svm", ".libsvm", ".txt"):
        from sklearn.datasets import load_svmlight_file

        try:
            x, y = load_svmlight_file(str(p))
        except ValueError as exc:
            raise InputFileError(p, f"not a valid svmlight file ({exc})") from None
        yy = (y > 0).astype(np.int64)
        return PartyData(np.arange(x.shape[0], dtype=np.int64), sp.csr_matrix(x), yy)
    t = load_safetensors(p, framework="np")
    need = {"indptr", "indices", "data", "shape", "ids"}
    if not need <= set(t):
        raise InputFileError(p, f"not an aisec party file (needs {sorted(need)})")
    from safetensors import safe_open

    with safe_open(str(p), framework="np") as fh:
        meta = fh.metadata() or {}
    try:
        x = sp.csr_matrix(
            (t["data"], t["indices"], t["indptr"]), shape=tuple(int(v) for v in t["shape"])
        )
    except ValueError as exc:
        raise InputFileError(p, f"inconsistent sparse matrix ({exc})") from None
    names = tuple(json.loads(meta.get("feature_names", "[]")))
    return PartyData(
        t["ids"].astype(np.int64), x, t["y"].astype(np.int64) if "y" in t else None, names
    )


def split_columns(
    x: sp.spmatrix,
    y: np.ndarray,
    frac_a: float = 0.5,
    feature_names: tuple[str, ...] | list[str] = (),
    ids: np.ndarray | None = None,
) -> tuple[PartyData, PartyData]:
    """Split a joined data set by columns: A gets the first ``frac_a`` of the features."""
    if not 0 < frac_a < 1:
        raise ParameterError("frac_a", "must be in (0, 1)", frac_a)
    x = sp.csr_matrix(x, dtype=np.float64)
    d = x.shape[1]
    k = min(max(1, int(round(d * frac_a))), d - 1)
    ids = np.arange(x.shape[0], dtype=np.int64) if ids is None else np.asarray(ids, np.int64)
    names = tuple(feature_names)
    a = PartyData(ids, sp.csr_matrix(x[:, :k]), None, names[:k])
    b = PartyData(ids.copy(), sp.csr_matrix(x[:, k:]), np.asarray(y, np.int64), names[k:])
    return a, b


def zipf_sparse(
    n: int,
    d: int,
    nnz_per_row: float,
    rng: np.random.Generator,
    exponent: float = 1.1,
    binary: bool = True,
    n_informative: int = 64,
) -> tuple[sp.csr_matrix, np.ndarray]:
    """Synthetic sparse features with Zipf-distributed column popularity and a logistic label.

    Args:
        n: rows (<= 2**20).  d: columns (<= 2**20).
        nnz_per_row: mean non-zeros per row (Poisson; rows may be empty), > 0.
        rng: the generator.
        exponent: Zipf exponent of column popularity.
        binary: 1.0 entries if True, else |N(0,1)| + 0.1 values.
        n_informative: columns (among the popular ones) with non-zero true weights.
    Returns:
        ``(X (n, d) CSR float64, y (n,) int64)``.
    """
    for name, v in (("n", n), ("d", d)):
        if not 1 <= v <= 2**20:
            raise ParameterError(name, "must be in [1, 2**20]", v)
    if not 0 < nnz_per_row <= d:
        raise ParameterError("nnz_per_row", f"must be in (0, d={d}]", nnz_per_row)
    counts = np.clip(rng.poisson(nnz_per_row, size=n), 0, d)
    popularity = 1.0 / np.arange(1, d + 1) ** exponent
    popularity /= popularity.sum()
    perm = rng.permutation(d)  # popular columns spread over both parties
    cols = perm[rng.choice(d, size=int(counts.sum()), p=popularity)]
    rows = np.repeat(np.arange(n), counts)
    vals = np.ones(cols.size) if binary else np.abs(rng.standard_normal(cols.size)) + 0.1
    x = sp.csr_matrix((vals, (rows, cols)), shape=(n, d))
    x.sum_duplicates()
    if binary:
        x.data[:] = 1.0
    w = np.zeros(d)
    k = min(n_informative, d)
    w[perm[:k]] = rng.standard_normal(k) * 1.5
    z = x @ w
    z = z - np.median(z)
    y = (rng.random(n) < expit(z)).astype(np.int64)
    return x, y


def load_joined(
    name: str, rng: np.random.Generator | None = None, **kw: float
) -> tuple[sp.csr_matrix, np.ndarray, tuple[str, ...]]:
    """A joined data set: ``adult-a9a``, ``reviews-bow`` (embedded assets) or ``zipf``
    (synthetic; keyword arguments of :func:`zipf_sparse`)."""
    if name == "zipf":
        from aisec.rng import make_rng

        x, y = zipf_sparse(
            int(kw.get("n", 10000)),
            int(kw.get("d", 10000)),
            float(kw.get("nnz_per_row", 20)),
            make_rng(rng if rng is not None else 0),
            binary=bool(kw.get("binary", True)),
        )
        return x, y, tuple(f"f{j}" for j in range(x.shape[1]))
    from aisec.assets import load_dataset

    ds = load_dataset(name)
    return (
        sp.csr_matrix(ds.X, dtype=np.float64),
        np.asarray(ds.y, np.int64),
        tuple(ds.feature_names or ()),
    )


def train_test_split_rows(
    n: int, test_frac: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted train and test row indices."""
    if not 0 < test_frac < 1:
        raise ParameterError("test_frac", "must be in (0, 1)", test_frac)
    perm = rng.permutation(n)
    k = int(round(n * test_frac))
    return np.sort(perm[k:]), np.sort(perm[:k])
