"""Every registered diffusion backbone, by behaviour (a new one is checked the day it registers):
it declares only what it can do, its verbs keep shapes and ranges, and its DDIM inversion of its own
generation comes back close to the starting noise. An entry that needs weights no test can load
offline is built here from an in-code stand-in of the same class, named in ``OFFLINE``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aisec.diffusion.backbone import CAPABILITIES, capabilities_of, require
from aisec.errors import ConfigError
from aisec.provenance.pipeline import BACKBONES


def _tiny_sd(tmp_path):  # noqa: ANN001, ANN202 - the registry entry needs hub weights and a GPU
    pytest.importorskip("diffusers")
    pytest.importorskip("transformers")
    from aisec.diffusion.stable_diffusion import StableDiffusionBackbone
    from aisec.diffusion.tiny_sd import tiny_sd_pipeline

    pipe = tiny_sd_pipeline(tmp_path, prediction_type="v_prediction", vae_steps=0)
    return StableDiffusionBackbone("tiny", device="cpu", size=16, pipeline=pipe)


OFFLINE = {"stable-diffusion": _tiny_sd}
# How close inversion must come back (correlation of recovered with starting noise): the tiny SD
# has an unfitted random VAE, so only its shapes and gradients are checked, not the round trip.
# Measured at 20 steps (seed 0): ddpm-fmnist 0.75, gmm-digits 0.89; unrelated noise: about 0.
ROUND_TRIP = {"ddpm-fmnist": 0.65, "gmm-digits": 0.8}


@pytest.fixture(params=BACKBONES.names())
def backbone(request, tmp_path):  # noqa: ANN001, ANN201
    torch.set_num_threads(1)
    name = request.param
    build = OFFLINE.get(name)
    return name, (build(tmp_path) if build else BACKBONES.get(name)())


def test_declared_capabilities_are_present_and_others_refused(backbone):
    name, bb = backbone
    declared = frozenset(bb.capabilities)
    assert declared <= CAPABILITIES
    assert capabilities_of(bb) == declared  # every declared verb is callable
    require(bb, declared, "the contract")
    missing = CAPABILITIES - declared
    if missing:
        with pytest.raises(ConfigError, match=name.split("-")[0]):
            require(bb, missing, "the contract")


def test_generation_is_in_range_and_inversion_returns_the_noise(backbone):
    name, bb = backbone
    z = torch.randn(3, *bb.latent_shape, generator=torch.Generator().manual_seed(0))
    img = bb.generate(z, num_steps=20)
    h, w, c = bb.image_shape
    assert img.shape == (3, c, h, w) and img.dtype == np.float32
    assert 0.0 <= float(img.min()) and float(img.max()) <= 1.0
    zr = bb.invert(img, num_steps=20)
    assert zr.shape == z.shape and torch.isfinite(zr).all()
    if name in ROUND_TRIP:
        corr = float(np.corrcoef(zr.flatten().numpy(), z.flatten().numpy())[0, 1])
        assert corr >= ROUND_TRIP[name], (name, corr)
        other = torch.randn(z.shape, generator=torch.Generator().manual_seed(1))
        assert abs(float(np.corrcoef(zr.flatten().numpy(), other.flatten().numpy())[0, 1])) < 0.2


def test_differentiable_inversion_reaches_the_pixels(backbone):
    _, bb = backbone
    if "invert_differentiable" not in bb.capabilities:
        pytest.skip("backbone declares no differentiable inversion")
    h, w, c = bb.image_shape
    x = torch.rand(2, c, h, w, generator=torch.Generator().manual_seed(2)).requires_grad_(True)
    (g,) = torch.autograd.grad(bb.invert_differentiable(x, 2).square().sum(), x)
    assert g.shape == x.shape and torch.isfinite(g).all() and float(g.abs().sum()) > 0
