"""The Backbone protocol: declared capabilities, refusal before work, the shared DDIM base."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aisec.diffusion.backbone import CAPABILITIES, DDIMBackbone, capabilities_of, require
from aisec.errors import ConfigError, ParameterError


class _Declares:
    name = "half"
    capabilities = frozenset({"generate", "invert", "eps"})
    alphas_cumprod = torch.ones(3)

    def generate(self, z, num_steps=20): ...  # noqa: ANN001, ANN201

    def invert(self, images, num_steps=20, refine=0): ...  # noqa: ANN001, ANN201

    def encode(self, images): ...  # noqa: ANN001, ANN201 - present but not declared


def test_require_names_the_backbone_the_purpose_and_what_is_missing() -> None:
    with pytest.raises(ConfigError) as err:
        require(_Declares(), {"encode", "eps", "invert_differentiable"}, "the PGD attack")
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("backbone 'half' lacks encode, eps, invert_differentiable")
    assert "the PGD attack" in msg and "it has: generate, invert" in msg
    require(_Declares(), {"generate", "invert"}, "detection")  # what it has is accepted
    with pytest.raises(ParameterError, match="caps"):
        require(_Declares(), {"teleport"}, "x")


def test_capabilities_are_declared_and_present() -> None:
    # declared but not callable (eps) and callable but undeclared (encode) both do not count
    assert capabilities_of(_Declares()) == {"generate", "invert"}

    class Undeclared:
        alphas_cumprod = torch.ones(3)

        def eps(self, x, t): ...  # noqa: ANN001, ANN201

        def decode(self, z): ...  # noqa: ANN001, ANN201

    assert capabilities_of(Undeclared()) == {"eps", "decode"}
    del Undeclared.alphas_cumprod
    assert capabilities_of(Undeclared()) == {"decode"}  # eps needs its schedule


def _gmm():  # noqa: ANN202
    from sklearn.datasets import load_digits

    from aisec.diffusion.gmm import GMMDiffusion

    d = load_digits()
    return GMMDiffusion((d.images * 16).clip(0, 255).astype(np.uint8), d.target)


def _ddpm():  # noqa: ANN202
    from aisec.diffusion.pixel_ddpm import PixelDDPM

    return PixelDDPM.load()


@pytest.mark.parametrize("build", [_ddpm, _gmm], ids=["ddpm-fmnist", "gmm-digits"])
def test_builtin_backbones_have_every_capability_and_each_runs(build) -> None:  # noqa: ANN001
    torch.set_num_threads(1)
    bb = build()
    assert capabilities_of(bb) == CAPABILITIES
    require(bb, CAPABILITIES, "everything")
    z = torch.randn(2, *bb.latent_shape, generator=torch.Generator().manual_seed(0))
    img = bb.generate(z, num_steps=2)
    h, w, c = bb.image_shape
    assert img.shape == (2, c, h, w) and 0 <= img.min() and img.max() <= 1
    assert bb.decode(bb.encode(img)).shape == img.shape
    assert bb.eps(z, 10).shape == z.shape and not bb.eps(z, 10).requires_grad
    assert bb.invert(img, num_steps=2).shape == z.shape
    x = torch.from_numpy(img).requires_grad_(True)
    (g,) = torch.autograd.grad(bb.invert_differentiable(x, 2).sum(), x)
    assert float(g.abs().sum()) > 0


class _Linear(DDIMBackbone):
    """A 1-channel toy on the base: identity 'VAE', eps of N(0, I) data."""

    name = "toy"
    channels = 1
    size = 4
    clip = None

    def __init__(self) -> None:
        from aisec.diffusion.schedule import linear_alphas_cumprod

        self.alphas_cumprod = linear_alphas_cumprod()

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return (1, 4, 4)

    def _to_model(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2 - 1

    def _from_model(self, z0: torch.Tensor) -> torch.Tensor:
        return (z0.clamp(-1, 1) + 1) / 2

    def _eps(self, x: torch.Tensor, t: int) -> torch.Tensor:
        return (1 - float(self.alphas_cumprod[t])) ** 0.5 * x


def test_base_converts_channels_and_checks_size() -> None:
    bb = _Linear()
    rgb = np.zeros((2, 3, 4, 4), np.float32)
    rgb[:, 1] = 1.0  # pure green -> luminance 0.587
    np.testing.assert_allclose(bb.encode(rgb), np.full((2, 1, 4, 4), 2 * 0.587 - 1), atol=1e-6)
    assert bb.encode(np.zeros((2, 4, 4), np.float32)).shape == (2, 1, 4, 4)
    with pytest.raises(ParameterError, match="4x4 pixels for toy"):
        bb.encode(np.zeros((2, 1, 5, 5), np.float32))
    with pytest.raises(ParameterError, match="C in"):
        bb.encode(np.zeros((2, 2, 4, 4), np.float32))


def test_base_inversion_matches_generation_and_is_differentiable() -> None:
    bb = _Linear()
    z = 0.3 * torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    img = bb.generate(z, num_steps=10)
    zr = bb.invert(img, num_steps=10, refine=3)
    torch.testing.assert_close(zr, z, atol=1e-3, rtol=1e-3)
    x = torch.from_numpy(img).requires_grad_(True)
    (g,) = torch.autograd.grad(bb.invert_differentiable(x, 10).sum(), x)
    assert float(g.abs().min()) > 0
