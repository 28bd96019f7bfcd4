"""Behavioural contract of every certifier and every availability attack in the registries.

A method registered later is checked the day it registers:

- certifiers: on small models, no perturbation inside the certified radius (random points and a
  projected-gradient attack, in the certificate's norm) makes the certified classifier
  (``Certifier.predict``) return another class; an input on which two classes tie is an
  abstention; certificates have the documented shapes and are reproducible from a seed.
- availability attacks: ``poison`` adds exactly ``round(rate * n)`` triggered copies of training
  images (at least one when ``rate > 0``, none at 0) and leaves the clean rows alone.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from aisec.robustness.availability import ATTACKS, make_attack
from aisec.robustness.certificate import ABSTAIN
from aisec.robustness.certifiers import CERTIFIERS, make_certifier
from aisec.robustness.data import load_split
from aisec.robustness.models import load_checkpoint
from aisec.robustness.shipped import shipped_path

CERTIFIER_NAMES = CERTIFIERS.names()
ATTACK_NAMES = ATTACKS.names()
SIDE = 4  # 4 x 4 single-channel images: 16 pixels


# ---------------------------------------------------------------------------------------------
# small models


def _linear_model() -> tuple[torch.nn.Sequential, np.ndarray]:
    """Logits (m, -m, -5) with m = w . (x - 1/2); returns the model and w (16,).

    The weights are multiples of 1/4, so at x = 1/2 (and at the tie inputs below) every sum is
    exact in float32 and the two first logits tie exactly. For a linear model the worst
    perturbation is along -w (L2) or -sign(w) (L-inf), so certificates can be checked sharply.
    """
    w = np.random.default_rng(11).choice([-1.0, -0.75, -0.5, -0.25, 0.25, 0.5, 0.75, 1.0], SIDE**2)
    lin = torch.nn.Linear(SIDE**2, 3)
    with torch.no_grad():
        lin.weight.zero_()
        lin.weight[0] = torch.from_numpy(w)
        lin.weight[1] = -torch.from_numpy(w)
        b = float(-0.5 * w.sum())
        lin.bias.copy_(torch.tensor([b, -b, -5.0]))
    return torch.nn.Sequential(torch.nn.Flatten(), lin).eval(), w


def _cnn(certifier: str) -> torch.nn.Sequential:
    """The shipped unpoisoned digits CNN trained for the certifier's family (noise or IBP).

    Randomly initialised CNNs have IBP radii near zero, so a trained network is the one with
    certificates worth attacking.
    """
    return load_checkpoint(shipped_path("digits", certifier, None)).model


def _linear_inputs(w: np.ndarray) -> np.ndarray:
    """Inputs at L-inf distances -0.45 .. 0.45 from the decision boundary, plus small noise."""
    r = np.random.default_rng(12)
    t = np.linspace(-0.45, 0.45, 16)
    x = 0.5 + t[:, None] * np.sign(w)[None] + r.uniform(-0.03, 0.03, (len(t), w.size))
    return np.clip(x, 0, 1).reshape(-1, 1, SIDE, SIDE).astype(np.float32)


def _tie_inputs(w: np.ndarray) -> np.ndarray:
    """Inputs with w . (x - 1/2) == 0 exactly: pairs of pixels with equal weights moved apart."""
    x = np.full((4, w.size), 0.5, np.float32)
    for i, (a, step) in enumerate([(None, 0.0), (0, 0.25), (1, 0.125), (2, 0.375)]):
        if a is None:
            continue
        same = np.flatnonzero(w == w[a])
        j = same[same != a][0] if (same != a).any() else a  # a partner of equal weight
        x[i, a] += step
        x[i, j] -= step if j != a else step
    return x.reshape(-1, 1, SIDE, SIDE)


# ---------------------------------------------------------------------------------------------
# attacks inside a ball of the certificate's norm (the perturbed input is clipped to [0, 1],
# which never leaves the ball: the box is convex and contains the centre)


def _project(delta: torch.Tensor, radius: torch.Tensor, norm: str) -> torch.Tensor:
    r = radius.view(-1, *([1] * (delta.ndim - 1)))
    if norm == "linf":
        return torch.maximum(torch.minimum(delta, r), -r)
    if norm == "l2":
        length = delta.flatten(1).norm(dim=1).view_as(r).clamp_min(1e-12)
        return delta * torch.clamp(r / length, max=1.0)
    pytest.fail(f"no attack for norm {norm!r} in the certifier contract: add one")


def _random_points(
    x: torch.Tensor, radius: torch.Tensor, norm: str, k: int, gen: torch.Generator
) -> torch.Tensor:
    """``k`` points per input on the surface of the ball (corners for L-inf)."""
    rep = x.repeat_interleave(k, dim=0)
    rad = radius.repeat_interleave(k)
    d = torch.randn(rep.shape, generator=gen)
    if norm == "linf":
        d = d.sign()
    elif norm == "l2":
        d = d / d.flatten(1).norm(dim=1).view(-1, *([1] * (d.ndim - 1)))
    return (rep + _project(d * rad.view(-1, *([1] * (d.ndim - 1))), rad, norm)).clamp(0, 1)


def _pgd(
    model,
    x: torch.Tensor,
    cls: torch.Tensor,
    radius: torch.Tensor,
    norm: str,
    gen: torch.Generator,
    steps: int = 30,
) -> torch.Tensor:
    """Projected gradient descent on the margin of ``cls`` over the other classes."""
    r = radius.view(-1, *([1] * (x.ndim - 1)))
    delta = _project(torch.randn(x.shape, generator=gen) * r * 0.1, radius, norm)
    step = 2.5 * r / steps
    for _ in range(steps):
        delta.requires_grad_(True)
        z = model((x + delta).clamp(0, 1))
        other = z.clone()
        other[torch.arange(len(cls)), cls] = -torch.inf
        margin = z[torch.arange(len(cls)), cls] - other.max(dim=1).values
        (grad,) = torch.autograd.grad(margin.sum(), delta)
        with torch.no_grad():
            if norm == "linf":
                move = grad.sign()
            else:
                move = grad / grad.flatten(1).norm(dim=1).view_as(r).clamp_min(1e-12)
            delta = _project(delta - step * move, radius, norm)
    return (x + delta.detach()).clamp(0, 1)


def _attacked(
    model, x: np.ndarray, cls: np.ndarray, radius: np.ndarray, norm: str, k: int = 4
) -> tuple[np.ndarray, np.ndarray]:
    """Random and PGD points inside the balls; returns them and the class each must keep."""
    gen = torch.Generator().manual_seed(0)
    xt, ct, rt = torch.from_numpy(x), torch.from_numpy(cls), torch.from_numpy(radius).float()
    pts = torch.cat([_random_points(xt, rt, norm, k, gen), _pgd(model, xt, ct, rt, norm, gen)])
    keep = np.concatenate([np.repeat(cls, k), cls])
    return pts.numpy().astype(np.float32), keep


# ---------------------------------------------------------------------------------------------
# certifier contract


def _certifier(name: str):
    return make_certifier(name)  # the registered defaults: what a user gets


@pytest.mark.parametrize("name", CERTIFIER_NAMES)
def test_certificate_shape_and_reproducibility(name):
    model, w = _linear_model()
    x = _linear_inputs(w)
    cert = _certifier(name)
    a = cert.certify(model, x, 3)
    b = cert.certify(model, x, 3)
    assert len(a) == len(x) and a.prediction.dtype == np.int64 and a.radius.dtype == np.float64
    assert a.norm == cert.norm and a.certifier == name
    assert ((a.prediction == ABSTAIN) | ((a.prediction >= 0) & (a.prediction < 3))).all()
    assert (a.radius >= 0).all() and (a.radius[a.abstained] == 0).all()
    assert (a.radius[~a.abstained] > 0).all()  # a certified class has a positive radius
    np.testing.assert_array_equal(a.prediction, b.prediction)
    np.testing.assert_array_equal(a.radius, b.radius)
    json.dumps(cert.describe())
    p = cert.predict(model, x, 3)
    assert len(p) == len(x) and (p.radius == 0).all()


@pytest.mark.parametrize("model_name", ["linear", "cnn"])
@pytest.mark.parametrize("name", CERTIFIER_NAMES)
def test_no_attack_inside_the_certified_radius_changes_the_prediction(name, model_name):
    if model_name == "linear":
        model, w = _linear_model()
        x = _linear_inputs(w)
    else:
        model = _cnn(name)
        x = load_split("digits", "test", 10).x
    cert = _certifier(name)
    c = cert.certify(model, x, 0)
    ok = ~c.abstained
    assert ok.sum() >= 3, f"{name} certified only {ok.sum()} of {len(x)} inputs: nothing to attack"
    k = 4 if model_name == "linear" else 2  # random points per input (plus one PGD point)
    pts, keep = _attacked(model, x[ok], c.prediction[ok], 0.99 * c.radius[ok], c.norm, k)
    got = cert.predict(model, pts, 1).prediction
    bad = (got != keep) & (got != ABSTAIN)
    assert not bad.any(), (
        f"{name}: {bad.sum()} of {len(pts)} perturbations inside the certified {c.norm} radius "
        f"changed the prediction"
    )


@pytest.mark.parametrize("name", CERTIFIER_NAMES)
def test_the_attack_finds_flips_just_outside_the_radius(name):
    # the check above is only as strong as its attack: on the linear model, where the boundary
    # is known, the same attack with twice the certified radius must flip some inputs
    model, w = _linear_model()
    x = _linear_inputs(w)
    c = _certifier(name).certify(model, x, 0)
    ok = ~c.abstained
    pts, keep = _attacked(model, x[ok], c.prediction[ok], 2.0 * c.radius[ok], c.norm, k=1)
    with torch.no_grad():
        base = model(torch.from_numpy(pts)).argmax(1).numpy()
    assert (base != keep).any()


@pytest.mark.parametrize("name", CERTIFIER_NAMES)
def test_two_classes_tied_is_an_abstention(name):
    model, w = _linear_model()
    x = _tie_inputs(w)
    with torch.no_grad():
        z = model(torch.from_numpy(x))
    assert torch.equal(z[:, 0], z[:, 1])  # built to tie exactly
    c = _certifier(name).certify(model, x, 0)
    assert c.abstained.all(), f"{name} certified a tie: {c.records()}"


# ---------------------------------------------------------------------------------------------
# availability-attack contract


def _training_set(n: int, h: int = 8) -> tuple[np.ndarray, np.ndarray]:
    r = np.random.default_rng(14)
    return r.random((n, 1, h, h), dtype=np.float32), r.integers(0, 10, n)


@pytest.mark.parametrize(
    ("n", "rate", "expected"),
    [
        (200, 0.0, 0),
        (200, 0.001, 1),
        (200, 0.01, 2),
        (200, 0.05, 10),
        (333, 0.03, 10),
        (1438, 0.01, 14),
        (50, 0.5, 25),
        (7, 0.1, 1),
    ],
)
@pytest.mark.parametrize("name", ATTACK_NAMES)
def test_poison_rate_is_respected(name, n, rate, expected):
    # documented: round(rate * n) rows are added, at least one when rate > 0
    assert expected == (max(1, round(rate * n)) if rate > 0 else 0)
    x, y = _training_set(n)
    att = make_attack(name, rate=rate)
    data = att.poison(x, y, 10, np.random.default_rng(0))
    assert data.n_poison == expected and len(data.x) == len(data.y) == n + expected
    assert data.poisoned.sum() == expected and not data.poisoned[:n].any()
    np.testing.assert_array_equal(data.x[:n], x)  # clean rows untouched and first
    np.testing.assert_array_equal(data.y[:n], y)
    assert data.x.dtype == np.float32 and data.x.min() >= 0 and data.x.max() <= 1
    assert ((data.y >= 0) & (data.y < 10)).all()


@pytest.mark.parametrize("name", ATTACK_NAMES)
def test_poisoned_rows_are_triggered_copies_of_training_images(name):
    x, y = _training_set(100)
    att = make_attack(name, rate=0.05)
    data = att.poison(x, y, 10, np.random.default_rng(1))
    trig = att.trigger(8)
    stamped = trig.apply(x)
    for row in data.x[data.poisoned]:
        assert (np.abs(stamped - row).reshape(len(x), -1).max(axis=1) == 0).any()
        assert not (np.abs(x - row).reshape(len(x), -1).max(axis=1) == 0).any()  # not clean


@pytest.mark.parametrize("name", ATTACK_NAMES)
def test_revisit_keeps_shapes_and_label_range(name):
    att = make_attack(name)
    xs = torch.from_numpy(att.trigger(8).apply(_training_set(6)[0]))
    ys = torch.zeros(6, dtype=torch.long)
    x2, y2 = att.revisit(xs, ys, torch.Generator().manual_seed(0), 10)
    assert x2.shape == xs.shape and y2.shape == ys.shape
    assert ((y2 >= 0) & (y2 < 10)).all() and x2.min() >= 0 and x2.max() <= 1
