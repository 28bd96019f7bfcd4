"""Generation and detection around a diffusion backbone: noise -> image -> 8-bit -> noise -> scores.

A backbone maps initial noise to images (``generate``) and images back to noise (``invert``,
DDIM inversion). Registered backbones (registry ``diffusion backbone``):

* ``ddpm-fmnist``: the small DDPM trained here on Fashion-MNIST (shipped weights; the default);
* ``gmm-digits``: exact-score diffusion on a Gaussian mixture of sklearn digits (tests);
* ``stable-diffusion``: any diffusers Stable Diffusion pipeline by hub id or local path
  (VAE encode, empty-prompt DDIM inversion, guidance 1), see :mod:`aisec.diffusion.stable_diffusion`.

Images at this boundary are float arrays (B, C, H, W) in [0, 1]; generated images are quantised to
8 bits (as if saved to PNG) before anything else sees them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from aisec.diffusion.backbone import Backbone
from aisec.errors import ParameterError
from aisec.registry import Registry

if TYPE_CHECKING:
    import torch

    from aisec.provenance.base import Detection, LatentWatermark, WatermarkKey

__all__ = [
    "Backbone",
    "BACKBONES",
    "load_backbone",
    "quantize",
    "generate",
    "detect",
    "invert",
    "Generated",
]


BACKBONES: Registry[Callable[..., Backbone]] = Registry("diffusion backbone")


@BACKBONES.register("ddpm-fmnist", summary="small DDPM trained on Fashion-MNIST (shipped weights)")
def _ddpm(weights: str | None = None) -> Backbone:
    from aisec.diffusion.pixel_ddpm import PixelDDPM

    return PixelDDPM.load(weights)


@BACKBONES.register(
    "gmm-digits", summary="exact-score Gaussian-mixture diffusion on digits (tests)"
)
def _gmm() -> Backbone:
    from aisec.diffusion.gmm import GMMDiffusion

    try:
        from aisec.assets import load_dataset

        ds = load_dataset("digits")
        x, y = ds.x, ds.y
    except ImportError:  # assets layer not importable: sklearn's bundled copy is the same data
        from sklearn.datasets import load_digits

        d = load_digits()
        x, y = (d.images * 16).clip(0, 255).astype(np.uint8), d.target
    return GMMDiffusion(np.asarray(x), np.asarray(y))


@BACKBONES.register(
    "stable-diffusion", summary="diffusers Stable Diffusion by hub id or path (GPU)"
)
def _sd(model: str = "stabilityai/stable-diffusion-2-1-base", device: str = "cuda") -> Backbone:
    from aisec.diffusion.stable_diffusion import StableDiffusionBackbone

    return StableDiffusionBackbone(model, device=device)


def load_backbone(name: str, **kwargs: Any) -> Backbone:
    """A registered backbone by name (``kwargs`` go to its loader)."""
    return BACKBONES.get(name)(**kwargs)


def quantize(images: np.ndarray) -> np.ndarray:
    """Round float images in [0, 1] to the 8-bit grid (as saving a PNG does)."""
    return (np.round(np.clip(images, 0.0, 1.0) * 255.0) / 255.0).astype(np.float32)


@dataclass(frozen=True)
class Generated:
    """Watermarked (or clean) samples with the noise they came from.

    Attributes:
        images: (B, C, H, W) float32 on the 8-bit grid.
        z: (B, *latent_shape) initial noise.
    """

    images: np.ndarray
    z: torch.Tensor


def generate(
    backbone: Backbone,
    method: LatentWatermark | None,
    key: WatermarkKey | None,
    n: int,
    generator: torch.Generator,
    num_steps: int = 20,
    nonces: list[bytes] | None = None,
    batch: int = 64,
) -> Generated:
    """Generate ``n`` images; watermarked with (method, key), clean when ``method`` is None."""
    import torch

    from aisec.diffusion.backbone import require

    if n < 1:
        raise ParameterError("n", "must be >= 1", n)
    require(backbone, {"generate"}, "generation")
    if method is None:
        z = torch.randn((n, *backbone.latent_shape), generator=generator)
    else:
        method.check_key(key, backbone.latent_shape)
        z = method.embed(key, n, generator, nonces)
    out = [backbone.generate(z[i : i + batch], num_steps) for i in range(0, n, batch)]
    return Generated(quantize(np.concatenate(out)), z)


def invert(
    backbone: Backbone, images: np.ndarray, num_steps: int = 20, refine: int = 0, batch: int = 64
) -> torch.Tensor:
    """DDIM-invert images (B, C, H, W) in [0, 1] to initial noise, in batches."""
    import torch

    from aisec.diffusion.backbone import require

    require(backbone, {"invert"}, "detection (DDIM inversion)")
    parts = [
        backbone.invert(images[i : i + batch], num_steps, refine)
        for i in range(0, len(images), batch)
    ]
    return torch.cat(parts)


def detect(
    backbone: Backbone,
    method: LatentWatermark,
    key: WatermarkKey,
    images: np.ndarray,
    num_steps: int = 20,
    refine: int = 0,
    nonces: list[bytes] | None = None,
) -> Detection:
    """Invert ``images`` and run the method's detector."""
    method.check_key(key, backbone.latent_shape)
    return method.detect(key, invert(backbone, images, num_steps, refine), nonces)
