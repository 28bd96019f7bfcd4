"""Advanced watermark-removal attacks: regeneration through a model, and adversarial perturbation.

Unlike the fixed distortions, these attacks need a model, which the caller (the attacker) brings:

* ``diffusion_regen`` (Zhao et al. 2023, "Invisible image watermarks are provably removable using
  generative AI"): encode the image, diffuse it to noise level ``strength`` (a fraction of the
  training horizon T) with fresh Gaussian noise, and denoise it back with deterministic DDIM. The
  model is any object with ``encode(images) -> latents``, ``decode(latents) -> images``,
  ``eps(x, t)`` and ``alphas_cumprod`` (the diffusion backbones of :mod:`aisec.provenance` fit).
* ``compression_regen``: pass the image through a learned lossy autoencoder (the VAE-compression
  attack of WAVES / GaussMarker). No pretrained image VAE or neural codec is available offline, so
  the codec is a linear autoencoder (PCA, the optimal linear one) fitted by the attacker on clean
  images; ``strength`` is the fraction of components dropped.
* ``adversarial``: L-infinity PGD (Madry et al. 2018) that lowers a differentiable detection score
  supplied by the caller (white-box: gradients through the detector, e.g. through DDIM inversion;
  or a surrogate); ``strength`` is the budget epsilon in [0, 1] pixel units.

All attacks map images (..., H, W) in [0, 1] to [0, 1] and are the identity at strength 0.

Threat model: a removal adversary holding watermarked images and, depending on the attack, a
public generative model, clean images of the domain, or (white-box) the detector's score function.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from pydantic import Field

from aisec.config import StrictModel, validate
from aisec.errors import ConfigError, DataError
from aisec.registry import Registry

if TYPE_CHECKING:
    import torch

__all__ = [
    "ATTACKS",
    "DiffusionRegen",
    "CompressionRegen",
    "Adversarial",
    "LinearAutoencoder",
    "make_attack",
]

ATTACKS: Registry[type[Any]] = Registry("watermark attack")


class AttackParams(StrictModel):
    strength: float = Field(0.0, ge=0.0)


def _check(x: Any) -> np.ndarray:
    from aisec.perturb.triggers import check_images

    return check_images(x, "images")


@ATTACKS.register("diffusion_regen", summary="noise to t = strength*T, then DDIM-denoise back")
class DiffusionRegen:
    """Diffusion regeneration with an attacker-provided diffusion model."""

    name: ClassVar[str] = "diffusion_regen"

    class Params(AttackParams):
        steps: int = Field(5, ge=1)

    def __init__(self, model: Any, **kwargs: Any) -> None:
        self.params = validate(self.Params, kwargs, where="attack 'diffusion_regen'")
        if self.params.strength > 1:
            raise ConfigError(
                f"attack 'diffusion_regen': `strength` must be <= 1; got {self.params.strength}"
            )
        for attr in ("encode", "decode", "eps", "alphas_cumprod"):
            if not hasattr(model, attr):
                raise ConfigError(f"attack 'diffusion_regen': the model lacks `{attr}`")
        self.model = model

    def apply(self, images: Any, generator: torch.Generator) -> np.ndarray:
        import torch

        x = _check(images)
        s = self.params.strength
        if s == 0:
            return x.copy()
        abar = self.model.alphas_cumprod
        t_star = max(1, int(round(s * (len(abar) - 1))))
        z0 = self.model.encode(x)
        a = float(abar[t_star])
        zt = a**0.5 * z0 + (1 - a) ** 0.5 * torch.randn(z0.shape, generator=generator)
        ts = np.unique(np.linspace(0, t_star, self.params.steps + 1).round().astype(int))[::-1]
        for i, t in enumerate(ts):
            a_t = float(abar[t])
            a_prev = float(abar[ts[i + 1]]) if i + 1 < len(ts) else 1.0
            eps = self.model.eps(zt, int(t))
            x0 = (zt - (1 - a_t) ** 0.5 * eps) / a_t**0.5
            zt = a_prev**0.5 * x0 + (1 - a_prev) ** 0.5 * eps
        out = np.clip(self.model.decode(zt), 0, 1).astype(np.float32)
        return out.reshape(x.shape)


class LinearAutoencoder:
    """PCA codec fitted on clean images (N, ..., H, W): encode to k coefficients, decode back."""

    def __init__(self, mean: np.ndarray, components: np.ndarray, shape: tuple[int, ...]) -> None:
        self.mean = mean
        self.components = components  # (K, D), orthonormal rows, by decreasing variance
        self.shape = tuple(shape)  # per-image shape

    @classmethod
    def fit(cls, images: np.ndarray, max_components: int = 256) -> LinearAutoencoder:
        x = _check(images).reshape(len(images), -1).astype(np.float64)
        if len(x) < 2:
            raise DataError("the codec needs at least 2 clean images")
        mean = x.mean(0)
        _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
        return cls(mean, vt[:max_components], np.asarray(images).shape[1:])

    def roundtrip(self, images: np.ndarray, keep: int) -> np.ndarray:
        """Project images (B, *shape) on the top ``keep`` components and reconstruct."""
        if tuple(images.shape[1:]) != self.shape:
            raise DataError(
                f"the codec was fitted on images of shape {self.shape}; got "
                f"{tuple(images.shape[1:])}"
            )
        x = images.reshape(len(images), -1).astype(np.float64) - self.mean
        c = self.components[:keep]
        return ((x @ c.T) @ c + self.mean).reshape(images.shape)


@ATTACKS.register("compression_regen", summary="lossy linear-autoencoder (PCA) round trip")
class CompressionRegen:
    """Compression regeneration: keep the top (1 - strength) of the codec's components."""

    name: ClassVar[str] = "compression_regen"
    Params = AttackParams

    def __init__(self, codec: LinearAutoencoder, **kwargs: Any) -> None:
        self.params = validate(self.Params, kwargs, where="attack 'compression_regen'")
        if self.params.strength >= 1:
            raise ConfigError(
                f"attack 'compression_regen': `strength` must be < 1; got {self.params.strength}"
            )
        self.codec = codec

    def apply(self, images: Any, generator: Any = None) -> np.ndarray:
        x = _check(images)
        if self.params.strength == 0:
            return x.copy()
        k = len(self.codec.components)
        keep = max(1, int(round(k * (1 - self.params.strength))))
        return np.clip(self.codec.roundtrip(x, keep), 0, 1).astype(np.float32)


@ATTACKS.register("adversarial", summary="L-inf PGD lowering a differentiable detection score")
class Adversarial:
    """PGD against ``score_fn(images) -> (B,) scores`` (higher = watermarked)."""

    name: ClassVar[str] = "adversarial"

    class Params(AttackParams):
        iters: int = Field(10, ge=1)
        step: float | None = Field(None, gt=0)

    def __init__(self, score_fn: Callable[[torch.Tensor], torch.Tensor], **kwargs: Any) -> None:
        self.params = validate(self.Params, kwargs, where="attack 'adversarial'")
        if self.params.strength > 1:
            raise ConfigError(
                f"attack 'adversarial': `strength` must be <= 1; got {self.params.strength}"
            )
        self.score_fn = score_fn

    def apply(self, images: Any, generator: torch.Generator) -> np.ndarray:
        import torch

        x = _check(images)
        eps = self.params.strength
        if eps == 0:
            return x.copy()
        step = self.params.step or 2.5 * eps / self.params.iters
        x0 = torch.from_numpy(x)
        delta = (torch.rand(x0.shape, generator=generator) * 2 - 1) * eps
        for _ in range(self.params.iters):
            delta.requires_grad_(True)
            score = self.score_fn((x0 + delta).clamp(0, 1)).sum()
            (grad,) = torch.autograd.grad(score, delta)
            with torch.no_grad():
                delta = (delta - step * grad.sign()).clamp(-eps, eps)
        out = (x0 + delta.detach()).clamp(0, 1)
        return np.round(out.numpy() * 255) / 255  # the attacker saves an 8-bit image


def make_attack(name: str, model: Any, strength: float, **kwargs: Any) -> Any:
    """A registered attack bound to the attacker's ``model`` (backbone, codec or score function)."""
    return ATTACKS.get(name)(model, strength=strength, **kwargs)
