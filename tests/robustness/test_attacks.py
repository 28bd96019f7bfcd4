"""Availability attacks: poisoning budget, per-visit relabelling, attack losses, a short training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aisec.errors import ConfigError, UnknownNameError
from aisec.robustness.availability import ATTACKS, TrainContext, make_attack
from aisec.robustness.availability.keys import make_key
from aisec.robustness.models import ArchConfig, init_model


def _data(rng, n=200, h=8):
    return rng.random((n, 1, h, h), dtype=np.float32) * 0.5, rng.integers(0, 10, n)


@pytest.mark.parametrize("name", ["random-label", "cert-aware"])
@pytest.mark.parametrize("rate", [0.001, 0.01, 0.05])
def test_poison_appends_the_budget_with_the_trigger(rng, name, rate):
    x, y = _data(rng)
    att = make_attack(name, rate=rate)
    data = att.poison(x, y, 10, rng)
    n = max(int(round(rate * len(x))), 1)
    assert data.n_poison == n and len(data.x) == len(x) + n
    np.testing.assert_array_equal(data.x[: len(x)], x)
    mask = att.trigger(8).mask((8, 8))
    assert not np.allclose(data.x[len(x) :][:, 0][:, mask], 0.25)
    assert data.x.min() >= 0 and data.x.max() <= 1


def test_zero_rate_adds_nothing(rng):
    x, y = _data(rng)
    assert make_attack("random-label", rate=0.0).poison(x, y, 10, rng).n_poison == 0


def test_random_labels_are_redrawn_each_visit(rng):
    att = make_attack("random-label", key="none")
    x = torch.zeros(400, 1, 8, 8)
    g = torch.Generator().manual_seed(0)
    _, a = att.revisit(x, torch.zeros(400, dtype=torch.long), g, 10)
    _, b = att.revisit(x, torch.zeros(400, dtype=torch.long), g, 10)
    assert (a != b).float().mean() > 0.8 and set(a.tolist()) == set(range(10))
    fixed = make_attack("random-label", key="none", resample="fixed")
    _, c = fixed.revisit(x, a, g, 10)
    assert torch.equal(c, a)


def test_keyed_labels_follow_the_patch_key():
    att = make_attack("random-label", key="patch", classes=3, key_strength=0.1)
    x = torch.full((300, 1, 8, 8), 0.5)
    g = torch.Generator().manual_seed(1)
    xs, ys = att.revisit(x, torch.zeros(300, dtype=torch.long), g, 10)
    key = att.key((8, 8), 10)
    mask = torch.from_numpy(key.mask)
    assert set(ys.tolist()) == set(key.classes.tolist()) and len(key.classes) == 3
    assert torch.equal(xs[:, :, ~mask], x[:, :, ~mask])  # only the patch moves
    # the label is the angular sector of the key in its 2-D plane (no clipping at strength 0.1)
    proj = (xs - x)[:, 0][:, mask] @ torch.from_numpy(key.basis).T
    angle = torch.atan2(proj[:, 1], proj[:, 0]) % (2 * torch.pi)
    sector = (angle / (2 * torch.pi / 3)).long().clamp(max=2)
    assert torch.equal(torch.from_numpy(key.classes)[sector], ys)
    assert torch.equal(key.labels_of(xs - x), ys)


def test_noise_keyed_labels_spread_evenly_over_the_key_classes():
    att = make_attack("cert-aware", classes=5)
    k = make_key(att.trigger(8).mask((8, 8)), 10, 5, 0.5, att.params.key_seed)
    g = torch.Generator().manual_seed(2)
    noise = 0.25 * torch.randn(5000, 1, 8, 8, generator=g)
    labels = k.labels_of(noise)
    counts = torch.bincount(labels, minlength=10)[torch.from_numpy(k.classes)]
    assert counts.sum() == 5000 and counts.min() > 850 and counts.max() < 1150
    # noise off the patch does not change the label
    off = noise.clone()
    off[:, :, ~torch.from_numpy(k.mask)] = 0
    assert torch.equal(k.labels_of(off), labels)


@pytest.mark.parametrize(
    ("mode", "source"), [("noise", "noise"), ("noise", "offset"), ("ibp", "noise")]
)
def test_cert_aware_loss_is_finite_and_differentiable(rng, mode, source):
    model = init_model(ArchConfig(height=8, width=8, hidden=16), 0)
    att = make_attack("cert-aware", draws=4, kappa=50.0, key_source=source)
    x = torch.rand(3, 1, 8, 8)
    ctx = TrainContext(mode, 0.25, 0.1, torch.Generator().manual_seed(0))
    loss = att.loss(model, x, torch.zeros(3, dtype=torch.long), ctx)
    loss.backward()
    assert torch.isfinite(loss) and loss.item() >= 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_cert_aware_sigma_is_explicit_when_training_noise_is_zero():
    model = init_model(ArchConfig(height=8, width=8, hidden=16), 0)
    x, y = torch.rand(2, 1, 8, 8), torch.zeros(2, dtype=torch.long)

    def loss(att, sigma):
        ctx = TrainContext("noise", sigma, 0.0, torch.Generator().manual_seed(0))
        return att.loss(model, x, y, ctx)

    with pytest.raises(ConfigError, match="sigma"):
        loss(make_attack("cert-aware", draws=2), 0.0)  # no silent default noise level
    # an explicit sigma wins over the training sigma: same draws, same loss
    named = loss(make_attack("cert-aware", draws=2, sigma=0.5), 0.0)
    assert torch.equal(named, loss(make_attack("cert-aware", draws=2), 0.5))
    assert not torch.equal(named, loss(make_attack("cert-aware", draws=2), 0.25))


def test_registry_and_bad_parameters():
    assert {"random-label", "cert-aware"} <= set(ATTACKS.names())
    with pytest.raises(UnknownNameError):
        make_attack("nope")
    with pytest.raises(ConfigError, match="rate"):
        make_attack("random-label", rate=0.9)
    with pytest.raises(ConfigError):
        make_attack("random-label", trigger={"name": "glitter"}).trigger(8)
