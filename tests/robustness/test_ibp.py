"""Interval bound propagation: sound bounds, monotone radius, certification decisions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aisec.errors import ConfigError
from aisec.robustness.bounds import margin_lower_bounds
from aisec.robustness.certifiers import make_certifier
from aisec.robustness.models import ArchConfig, init_model


@pytest.fixture(scope="module")
def net():
    return init_model(ArchConfig(height=8, width=8, n_classes=5, hidden=16), seed=3).eval()


def test_bounds_are_sound(net, rng):
    x = torch.from_numpy(rng.random((6, 1, 8, 8), dtype=np.float32))
    eps = 0.05
    with torch.no_grad():
        lb = margin_lower_bounds(net, x, eps)
        for _ in range(30):
            d = torch.from_numpy(rng.uniform(-eps, eps, x.shape).astype(np.float32))
            z = net((x + d).clamp(0, 1))
            true = z[:, :, None] - z[:, None, :]
            assert (true >= lb - 1e-5).all()
    assert torch.allclose(torch.diagonal(lb, dim1=1, dim2=2), torch.zeros(6, 5), atol=1e-5)


def test_bounds_tighten_to_the_network_at_zero(net, rng):
    x = torch.from_numpy(rng.random((3, 1, 8, 8), dtype=np.float32))
    with torch.no_grad():
        z = net(x)
        lb = margin_lower_bounds(net, x, 0.0)
    torch.testing.assert_close(lb, z[:, :, None] - z[:, None, :], atol=1e-4, rtol=1e-4)


def test_certificate_radius_is_consistent(net, rng):
    x = rng.random((20, 1, 8, 8), dtype=np.float32)
    tiny = make_certifier("ibp", epsilon=1e-4, max_radius=0.2, steps=12).certify(net, x)
    with torch.no_grad():
        pred = net(torch.from_numpy(x)).argmax(1).numpy()
    ok = ~tiny.abstained
    assert ok.any()
    np.testing.assert_array_equal(tiny.prediction[ok], pred[ok])
    assert (tiny.radius[ok] >= 1e-4).all() and (tiny.radius[~ok] == 0).all()
    # certified at its radius, and (for radii below max_radius) not at twice the radius
    for i in np.flatnonzero(ok)[:5]:
        r = float(tiny.radius[i])
        again = make_certifier("ibp", epsilon=r, search_radius=False).certify(net, x[i : i + 1])
        assert not again.abstained[0]
        if 2 * r < 0.2:  # the bisection stops within 0.2 / 2**12 of the largest certified radius
            twice = make_certifier("ibp", epsilon=2 * r, search_radius=False)
            assert twice.certify(net, x[i : i + 1]).abstained[0]
    large = make_certifier("ibp", epsilon=0.9, search_radius=False).certify(net, x)
    assert large.abstained.all() and large.norm == "linf"


def test_predict_is_the_network_argmax_with_its_logit_gap(net, rng):
    x = rng.random((7, 1, 8, 8), dtype=np.float32)
    with torch.no_grad():
        z = net(torch.from_numpy(x)).numpy()
    p = make_certifier("ibp").predict(net, x)
    np.testing.assert_array_equal(p.prediction, z.argmax(1))
    top2 = np.sort(z, axis=1)[:, -2:]
    np.testing.assert_allclose(p.statistic, top2[:, 1] - top2[:, 0], rtol=1e-5)
    assert (p.radius == 0).all() and p.params["mode"] == "predict"


def test_unsupported_layer_is_an_error(rng):
    model = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2)
    )
    with pytest.raises(ConfigError, match="Tanh"):
        make_certifier("ibp").certify(model, rng.random((1, 1, 2, 2), dtype=np.float32))
