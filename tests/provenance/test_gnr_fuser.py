"""GNR training data, save/load; fuser fit, monotone logistic variant, save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aisec.errors import DataError, InputFileError
from aisec.provenance.fuser import Fuser, fit_fuser
from aisec.provenance.gnr import (
    GNR,
    GNRConfig,
    key_fingerprint,
    random_affine,
    synthetic_batch,
    train_gnr,
)


def test_random_affine_identity_and_fill() -> None:
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(3, 4, 16, 16, generator=g) < 0.5).float()
    assert torch.equal(random_affine(x, g, 0.0, 1.0, 1.0), x)
    y = random_affine(x, g, 45.0, 1.0, 1.0)
    assert set(torch.unique(y).tolist()) <= {0.0, 1.0}
    assert 0.3 < float((y == x).float().mean()) < 0.95


def test_synthetic_batch_targets() -> None:
    g = torch.Generator().manual_seed(0)
    m = (torch.rand(4, 8, 8, generator=g) < 0.5).float()
    cfg = GNRConfig(batch_size=256, neg_p=0.5, fp=0.2, degrees=0.0)
    x, y = synthetic_batch(m, cfg, g)
    is_pos = (y == m).flatten(1).all(1)
    # Negatives are their own target (identity); positives map back to m.
    assert torch.equal(x[~is_pos], y[~is_pos])
    assert 0.35 < float(is_pos.float().mean()) < 0.65
    assert float((x[is_pos] == m).float().mean()) > 0.85


def test_gnr_train_save_load_roundtrip(tmp_path) -> None:
    torch.set_num_threads(1)
    m = (np.random.default_rng(0).random((4, 8, 8)) < 0.5).astype(np.uint8)
    gnr = train_gnr(m, GNRConfig(steps=3, nf=4, depth=1, batch_size=8, threads=1))
    assert gnr.fingerprint == key_fingerprint(m)
    p = gnr.save(tmp_path / "g.safetensors")
    back = GNR.load(p)
    s = (np.random.default_rng(1).random((2, 4, 8, 8)) < 0.5).astype(np.uint8)
    np.testing.assert_array_equal(back.restore(s), gnr.restore(s))
    (tmp_path / "bad.safetensors").write_bytes(b"garbage")
    with pytest.raises(InputFileError):
        GNR.load(tmp_path / "bad.safetensors")


@pytest.mark.parametrize("kind", ["logistic", "mlp"])
def test_fuser_fit_separates_and_roundtrips(kind: str, tmp_path) -> None:
    rng = np.random.default_rng(0)
    pos = {"a": rng.normal(1.0, 0.3, 200), "b": rng.normal(0.0, 1.0, 200)}
    neg = {"a": rng.normal(0.0, 0.3, 200), "b": rng.normal(0.0, 1.0, 200)}
    f = fit_fuser(pos, neg, ("a", "b"), kind=kind)
    assert (f.prob(pos) > 0.5).mean() > 0.9 and (f.prob(neg) < 0.5).mean() > 0.9
    back = Fuser.load(f.save(tmp_path / "f.safetensors"))
    np.testing.assert_allclose(back.logit(pos), f.logit(pos))
    with pytest.raises(DataError, match="needs statistics"):
        f.logit({"a": pos["a"]})


def test_logistic_fuser_is_monotone() -> None:
    rng = np.random.default_rng(1)
    pos = {"a": rng.normal(1, 1, 100), "b": rng.normal(1, 1, 100)}
    neg = {"a": rng.normal(0, 1, 100), "b": rng.normal(0, 1, 100)}
    f = fit_fuser(pos, neg, ("a", "b"), kind="logistic")
    base = {"a": np.zeros(5), "b": np.linspace(-2, 2, 5)}
    up = {"a": np.ones(5), "b": base["b"]}
    assert (f.logit(up) >= f.logit(base)).all()
