"""Vertical data: Zipf generator, column split, party files, validation messages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from aisec.errors import DataError, InputFileError, ParameterError
from aisec.privacy.caesar.data import PartyData, load_party, save_party, split_columns, zipf_sparse


def test_zipf_density_and_labels(rng: np.random.Generator) -> None:
    x, y = zipf_sparse(2000, 50_000, 10, rng)
    assert x.shape == (2000, 50_000) and set(np.unique(x.data)) == {1.0}
    assert 8 < x.nnz / 2000 < 12
    counts = np.bincount(x.indices, minlength=50_000)
    assert counts.max() > 20 * max(np.median(counts), 1)  # heavy-tailed column popularity
    assert 0.05 < y.mean() < 0.95
    xr, _ = zipf_sparse(100, 2**20, 0.5, rng, binary=False)
    assert xr.shape[1] == 2**20 and np.all(xr.data > 0)
    with pytest.raises(ParameterError):
        zipf_sparse(10, 2**20 + 1, 1, rng)


def test_split_and_files(rng: np.random.Generator, tmp_path: Path) -> None:
    x, y = zipf_sparse(30, 10, 3, rng)
    a, b = split_columns(x, y, 0.3, [f"f{i}" for i in range(10)])
    assert a.d == 3 and b.d == 7 and a.y is None and np.array_equal(b.y, y)
    assert (sp.hstack([a.X, b.X]) != x).nnz == 0 and b.feature_names[0] == "f3"
    save_party(tmp_path / "b.safetensors", b)
    assert load_party(tmp_path / "b.safetensors").feature_names == b.feature_names
    (tmp_path / "bad.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(InputFileError):
        load_party(tmp_path / "bad.safetensors")


def test_validation_messages(rng: np.random.Generator) -> None:
    x, y = zipf_sparse(30, 10, 3, rng)
    ids = np.arange(30)
    with pytest.raises(DataError, match="labels must be 0 or 1"):
        PartyData(ids, x, np.full(30, 2)).validate()
    with pytest.raises(DataError, match="unique"):
        PartyData(np.zeros(30, dtype=np.int64), x).validate()
    with pytest.raises(DataError, match="must contain labels"):
        PartyData(ids, x).validate(need_labels=True)
