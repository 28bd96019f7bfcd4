"""The eight image distortions of the watermark-robustness literature, each with one strength knob.

Images are float arrays of shape (..., H, W) in [0, 1] (grayscale stacks, (N, C, H, W) batches or
(T, C, H, W) video); spatial operations act on the last two axes, and an axis of size 3 just
before them is treated as RGB channels (shared by JPEG's colour transform and the per-pixel
masks). Every distortion maps [0, 1] to [0, 1], takes an explicit ``numpy.random.Generator`` and
is exactly the identity at strength 0. Strength units:

======================  ======================================================  ==============
name                    strength                                                reference value
======================  ======================================================  ==============
``rotation``            angle in degrees (bilinear, black fill)                 75
``jpeg``                100 - JPEG quality                                      75 (QF 25)
``crop_scale``          fraction of the area cut away (random square), resized  0.4 (keep 0.6)
``random_drop``         fraction of the area blacked out (random square)        0.2 (keep 0.8)
``blur``                Gaussian sigma in pixels                                4 at 512 px
``salt_pepper``         fraction of pixels set to 0 or 1                        0.05
``gaussian_noise``      noise standard deviation (images in [0, 1])             0.05
``brightness``          factor drawn from [max(0, 1 - s), 1 + s]                6
======================  ======================================================  ==============

The reference values are those of the Gaussian Shading / Tree-Ring attack scripts that GaussMarker
inherits; pixel-unit strengths (blur) must be rescaled for images smaller than 512 px. Unlike the
reference ``image_distortion`` code, Gaussian noise is added in floating point and clipped: the
reference casts the noise to ``uint8`` first, which wraps every negative sample to ~255.

Reference: Li et al., "GaussMarker", ICML 2025 (Sec. 5, eight distortions); Yang et al.,
"Gaussian Shading", CVPR 2024 (code ``image_utils.py``); Wen et al., "Tree-Ring", NeurIPS 2023.
"""

from __future__ import annotations

import io
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from aisec.config import StrictModel, validate
from aisec.errors import ConfigError
from aisec.registry import Registry

__all__ = [
    "DISTORTIONS",
    "Distortion",
    "DistortionParams",
    "make_distortion",
    "distort",
    "REFERENCE_STRENGTHS",
]

DISTORTIONS: Registry[type[Distortion]] = Registry("image distortion")


def _check(x: Any) -> np.ndarray:
    from aisec.perturb.triggers import check_images

    return check_images(x, "images")


def _planes(x: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
    """View x (..., H, W) as (P, H, W) planes."""
    return x.reshape(-1, *x.shape[-2:]), x.shape


def _is_rgb(x: np.ndarray) -> bool:
    return x.ndim >= 3 and x.shape[-3] == 3


class DistortionParams(StrictModel):
    """Every distortion has one ``strength`` (>= 0; 0 = identity)."""

    strength: float = Field(0.0, ge=0.0)


class Distortion(ABC):
    """A distortion: ``apply(images, rng)`` with images (..., H, W) in [0, 1]."""

    Params: ClassVar[type[DistortionParams]] = DistortionParams
    name: ClassVar[str]
    max_strength: ClassVar[float] = float("inf")

    def __init__(self, params: DistortionParams | None = None, **kwargs: Any) -> None:
        if params is None:
            params = validate(self.Params, kwargs, where=f"distortion {self.name!r}")
        if params.strength > self.max_strength:
            raise ConfigError(
                f"distortion {self.name!r}: `strength` must be <= {self.max_strength}; "
                f"got {params.strength}"
            )
        self.params = params

    @property
    def strength(self) -> float:
        return float(self.params.strength)

    def apply(self, images: Any, rng: np.random.Generator) -> np.ndarray:
        """Distort ``images`` (..., H, W) float in [0, 1]; returns float32, same shape."""
        x = _check(images)
        if self.strength == 0:
            return x.copy()
        out = self._apply(x, rng)
        return np.clip(out, 0.0, 1.0).astype(np.float32).reshape(x.shape)

    __call__ = apply

    @abstractmethod
    def _apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray: ...

    def __repr__(self) -> str:
        return f"{type(self).__name__}(strength={self.strength:g})"


@DISTORTIONS.register("rotation", summary="rotate by `strength` degrees (bilinear, black fill)")
class Rotation(Distortion):
    name = "rotation"
    max_strength = 360.0

    def _apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        from scipy.ndimage import rotate

        p, shape = _planes(x)
        out = rotate(
            p, self.strength, axes=(2, 1), reshape=False, order=1, mode="constant", cval=0.0
        )
        return out.reshape(shape)


@DISTORTIONS.register("jpeg", summary="JPEG at quality 100 - `strength`")
class JPEG(Distortion):
    name = "jpeg"
    max_strength = 99.0

    def _apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        from PIL import Image

        q = int(round(100 - self.strength))
        u8 = np.round(x * 255).astype(np.uint8)
        if _is_rgb(x):
            imgs = np.moveaxis(u8.reshape(-1, 3, *x.shape[-2:]), 1, -1)
            mode_shape = (-1, 3, *x.shape[-2:])
        else:
            imgs = u8.reshape(-1, *x.shape[-2:])
            mode_shape = x.shape
        out = []
        for im in imgs:
            buf = io.BytesIO()
            Image.fromarray(im).save(buf, format="JPEG", quality=q)
            out.append(np.asarray(Image.open(io.BytesIO(buf.getvalue()))))
        arr = np.stack(out)
        if _is_rgb(x):
            arr = np.moveaxis(arr, -1, 1)
        return (arr.reshape(mode_shape).astype(np.float32) / 255.0).reshape(x.shape)


def _resize(planes: np.ndarray, h: int, w: int) -> np.ndarray:
    from PIL import Image

    return np.stack(
        [
            np.asarray(
                Image.fromarray(p.astype(np.float32), mode="F").resize((w, h), Image.BILINEAR)
            )
            for p in planes
        ]
    )


def _square(h: int, w: int, area: float, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """A random square window (top, left, height, width) covering ~``area`` of the image."""
    sh = max(1, min(h, int(round(h * area**0.5))))
    sw = max(1, min(w, int(round(w * area**0.5))))
    top = int(rng.integers(0, h - sh + 1))
    left = int(rng.integers(0, w - sw + 1))
    return top, left, sh, sw


def _per_image(x: np.ndarray) -> np.ndarray:
    """x grouped per image: (N, K, H, W), K = 3 for RGB stacks, else 1."""
    k = 3 if _is_rgb(x) else 1
    return x.reshape(-1, k, *x.shape[-2:])


@DISTORTIONS.register("crop_scale", summary="cut away `strength` of the area, resize back")
class CropScale(Distortion):
    name = "crop_scale"
    max_strength = 0.99

    def _apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        imgs = _per_image(x)
        h, w = x.shape[-2:]
        out = np.empty_like(imgs)
        for i, im in enumerate(imgs):
            top, left, sh, sw = _square(h, w, 1.0 - self.strength, rng)
            out[i] = _resize(im[:, top : top + sh, left : left + sw], h, w)
        return out


@DISTORTIONS.register("random_drop", summary="black out a random square of `strength` of the area")
class RandomDrop(Distortion):
    name = "random_drop"
    max_strength = 1.0

    def _apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        imgs = _per_image(x).copy()
        h, w = x.shape[-2:]
        for im in imgs:
            top, left, sh, sw = _square(h, w, self.strength, rng)
            im[:, top : top + sh, left : left + sw] = 0.0
        return imgs


@DISTORTIONS.register("blur", summary="Gaussian blur with sigma `strength` pixels")
class Blur(Distortion):
    name = "blur"

    def _apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        from scipy.ndimage import gaussian_filter

        p, shape = _planes(x)
        return gaussian_filter(p, sigma=(0, self.strength, self.strength), mode="nearest").reshape(
            shape
        )


@DISTORTIONS.register("salt_pepper", summary="set a `strength` fraction of pixels to 0 or 1")
class SaltPepper(Distortion):
    name = "salt_pepper"
    max_strength = 1.0

    def _apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        imgs = _per_image(x).copy()
        n, _, h, w = imgs.shape
        hit = rng.random((n, 1, h, w)) < self.strength
        salt = rng.random((n, 1, h, w)) < 0.5
        return np.where(hit, salt.astype(np.float32), imgs)


@DISTORTIONS.register("gaussian_noise", summary="add N(0, strength^2) noise, clip to [0, 1]")
class GaussianNoise(Distortion):
    name = "gaussian_noise"

    def _apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        # Float noise, then clip: no uint8 wrap-around (the reference's bug).
        return x + rng.normal(0.0, self.strength, size=x.shape).astype(np.float32)


@DISTORTIONS.register("brightness", summary="multiply by a factor in [max(0, 1-s), 1+s]")
class Brightness(Distortion):
    name = "brightness"

    def _apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        imgs = _per_image(x)
        lo, hi = max(0.0, 1.0 - self.strength), 1.0 + self.strength
        f = rng.uniform(lo, hi, size=(imgs.shape[0], 1, 1, 1)).astype(np.float32)
        return imgs * f


#: Reference strengths (Gaussian Shading / Tree-Ring attack scripts, 512-px images).
REFERENCE_STRENGTHS: dict[str, float] = {
    "rotation": 75.0,
    "jpeg": 75.0,
    "crop_scale": 0.4,
    "random_drop": 0.2,
    "blur": 4.0,
    "salt_pepper": 0.05,
    "gaussian_noise": 0.05,
    "brightness": 6.0,
}


def make_distortion(name: str, strength: float) -> Distortion:
    """A registered distortion by name at ``strength``."""
    return DISTORTIONS.get(name)(strength=strength)


def distort(images: Any, name: str, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Apply distortion ``name`` at ``strength`` to images (..., H, W) in [0, 1]."""
    return make_distortion(name, strength).apply(images, rng)
