"""Advanced watermark-removal attacks: regeneration through a model, and adversarial perturbation.

Unlike the fixed distortions, these attacks need a model, which the caller (the attacker) brings:

* ``diffusion_regen`` (Zhao et al. 2023, "Invisible image watermarks are provably removable using
  generative AI"): encode the image, diffuse it to noise level ``strength`` (a fraction of the
  training horizon T) with fresh Gaussian noise, and denoise it back with deterministic DDIM
  (:func:`aisec.diffusion.schedule.ddim_sample` from that timestep). The model is any backbone
  with the ``encode``, ``decode`` and ``eps`` capabilities (:mod:`aisec.diffusion.backbone`; the
  built-in backbones have them); one without is refused when the attack is built.
* ``compression_regen``: pass the image through a learned lossy autoencoder (the VAE-compression
  attack of WAVES / GaussMarker). No pretrained image VAE or neural codec is available offline, so
  the codec is a linear autoencoder (PCA, the optimal linear one) fitted by the attacker on clean
  images, one channel plane at a time (a codec fitted on grayscale planes codes each channel of an
  RGB image); ``strength`` is the fraction of components dropped. Images of another size than the
  codec's are refused.
* ``adversarial``: L-infinity PGD (Madry et al. 2018) that lowers a differentiable detection score
  supplied by the caller (white-box: gradients through the detector, e.g. through DDIM inversion;
  or a surrogate); ``strength`` is the budget epsilon in [0, 1] pixel units.

All attacks map images (..., H, W) in [0, 1] to [0, 1] and are the identity at strength 0. Each
attack class declares in ``needs`` the backbone capabilities it uses, so a caller can check a
backbone with :func:`aisec.diffusion.backbone.require` before any work starts.

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


#: Largest codec plane (pixels): a whole-plane PCA over more dimensions is a minutes-long SVD.
MAX_CODEC_PIXELS = 128 * 128


class AttackParams(StrictModel):
    strength: float = Field(0.0, ge=0.0)


def _check(x: Any) -> np.ndarray:
    from aisec.perturb.triggers import check_images

    return check_images(x, "images")


@ATTACKS.register("diffusion_regen", summary="noise to t = strength*T, then DDIM-denoise back")
class DiffusionRegen:
    """Diffusion regeneration with an attacker-provided diffusion model."""

    name: ClassVar[str] = "diffusion_regen"
    needs: ClassVar[frozenset[str]] = frozenset({"encode", "decode", "eps"})

    class Params(AttackParams):
        steps: int = Field(5, ge=1)

    def __init__(self, model: Any, **kwargs: Any) -> None:
        self.params = validate(self.Params, kwargs, where="attack 'diffusion_regen'")
        if self.params.strength > 1:
            raise ConfigError(
                f"attack 'diffusion_regen': `strength` must be <= 1; got {self.params.strength}"
            )
        from aisec.diffusion.backbone import require

        require(model, self.needs, "attack 'diffusion_regen'")
        self.model = model

    def apply(self, images: Any, generator: torch.Generator) -> np.ndarray:
        from aisec.diffusion.schedule import add_noise, ddim_sample

        x = _check(images)
        s = self.params.strength
        if s == 0:
            return x.copy()
        abar = self.model.alphas_cumprod
        t_star = max(1, int(round(s * (len(abar) - 1))))
        zt = add_noise(self.model.encode(x), t_star, abar, generator)
        # steps + 1 timesteps from t_star down to 0: `steps` DDIM updates plus the last to x_0
        z0 = ddim_sample(self.model.eps, zt, abar, self.params.steps + 1, start=t_star)
        out = np.clip(self.model.decode(z0), 0, 1).astype(np.float32)
        if out.size != x.size and x.ndim == 4 and out.ndim == 4 and out.shape[1] == 1:
            out = np.repeat(out, x.shape[1], axis=1)  # a grayscale model regenerates RGB as gray
        if out.size != x.size:
            raise DataError(
                f"attack 'diffusion_regen': the model decodes images of shape {out.shape[1:]}; "
                f"got images of shape {x.shape[1:]}"
            )
        return out.reshape(x.shape)


class LinearAutoencoder:
    """PCA codec over image planes (H, W): encode a plane to k coefficients, decode it back.

    Fitted on clean images (N, ..., H, W), every channel plane a sample; it codes any number of
    channels of the same plane size, each plane on its own.
    """

    def __init__(self, mean: np.ndarray, components: np.ndarray, shape: tuple[int, ...]) -> None:
        self.mean = mean
        self.components = components  # (K, H*W), orthonormal rows, by decreasing variance
        self.shape = tuple(shape)  # plane shape (H, W)

    @classmethod
    def fit(cls, images: np.ndarray, max_components: int = 256) -> LinearAutoencoder:
        """Fit on clean images (N, ..., H, W) in [0, 1]; planes up to ``MAX_CODEC_PIXELS``."""
        x = _check(images)
        h, w = x.shape[-2:]
        if h * w > MAX_CODEC_PIXELS:
            raise DataError(
                f"compression codec: planes of {h}x{w} pixels are too large for a whole-plane "
                f"PCA (at most {MAX_CODEC_PIXELS} pixels); attack smaller images"
            )
        planes = x.reshape(-1, h * w).astype(np.float64)
        if len(planes) < 2:
            raise DataError("the codec needs at least 2 clean image planes")
        mean = planes.mean(0)
        _, _, vt = np.linalg.svd(planes - mean, full_matrices=False)
        return cls(mean, vt[:max_components], (h, w))

    def roundtrip(self, images: np.ndarray, keep: int) -> np.ndarray:
        """Project each plane of images (B, ..., H, W) on the top ``keep`` components."""
        if images.ndim < 2 or tuple(images.shape[-2:]) != self.shape:
            h, w = self.shape
            raise DataError(
                f"the codec was fitted on {h}x{w} planes; got images of shape "
                f"{tuple(images.shape)} (fit a codec on clean images of that size)"
            )
        x = images.reshape(-1, self.mean.size).astype(np.float64) - self.mean
        c = self.components[:keep]
        return ((x @ c.T) @ c + self.mean).reshape(images.shape)


@ATTACKS.register("compression_regen", summary="lossy linear-autoencoder (PCA) round trip")
class CompressionRegen:
    """Compression regeneration: keep the top (1 - strength) of the codec's components."""

    name: ClassVar[str] = "compression_regen"
    needs: ClassVar[frozenset[str]] = frozenset()
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
    needs: ClassVar[frozenset[str]] = frozenset()  # the caller's score function is the model

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
