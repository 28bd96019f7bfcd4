"""Backdoor triggers stamped onto images: a patch, a blended pattern and a smooth warp.

Used by the poisoning (availability) attacks in :mod:`aisec.robustness` and by benchmarks. Every
trigger is a deterministic function of its parameters (a pattern seed is a parameter, not hidden
state), maps images in [0, 1] to images in [0, 1], and is the identity at strength 0.

References:
    patch: Gu et al., "BadNets: Identifying Vulnerabilities in the Machine Learning Model Supply
    Chain", 2017. blend: Chen et al., "Targeted Backdoor Attacks on Deep Learning Systems Using Data
    Poisoning", 2017. warp: Nguyen & Tran, "WaNet - Imperceptible Warping-based Backdoor Attack",
    ICLR 2021.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from aisec.config import StrictModel, validate
from aisec.errors import DataError
from aisec.registry import Registry

__all__ = [
    "TRIGGERS",
    "Trigger",
    "PatchParams",
    "PatchTrigger",
    "BlendParams",
    "BlendTrigger",
    "WarpParams",
    "WarpTrigger",
    "make_trigger",
    "check_images",
]

TRIGGERS: Registry[type[Trigger]] = Registry("trigger")


def check_images(x: Any, name: str = "x") -> np.ndarray:
    """Validate images: ``(..., H, W)`` (at least 2-D), finite, values in [0, 1]; returns float32."""
    arr = np.asarray(x)
    if arr.ndim < 2 or min(arr.shape[-2:]) < 1:
        raise DataError(
            f"`{name}` must have shape (..., H, W) with H, W >= 1; got shape {arr.shape}"
        )
    if not np.issubdtype(arr.dtype, np.floating):
        raise DataError(f"`{name}` must be floating point in [0, 1]; got dtype {arr.dtype}")
    if arr.size and not np.isfinite(arr).all():
        raise DataError(f"`{name}` values must be finite and in [0, 1]; got NaN or infinity")
    if arr.size and (arr.min() < 0.0 or arr.max() > 1.0):
        lo, hi = float(arr.min()), float(arr.max())
        raise DataError(f"`{name}` values must be finite and in [0, 1]; got range [{lo:g}, {hi:g}]")
    return arr.astype(np.float32, copy=False)


class Trigger(ABC):
    """A trigger: ``apply(x)`` stamps it onto images ``x`` of shape ``(..., H, W)`` in [0, 1].

    Attributes:
        neutral: the parameter values at which the trigger is the identity (its "strength 0"),
            e.g. ``{"opacity": 0.0}``; every trigger declares them, and the contract tests check
            that it is the identity there.
    """

    Params: ClassVar[type[StrictModel]]
    name: ClassVar[str]
    neutral: ClassVar[dict[str, Any]]

    def __init__(self, params: StrictModel | None = None, **kwargs: Any) -> None:
        if params is None:
            params = validate(self.Params, kwargs, where=f"trigger {self.name!r}")
        elif kwargs:
            params = validate(
                self.Params, {**params.model_dump(), **kwargs}, f"trigger {self.name!r}"
            )
        self.params = params

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Return a triggered copy of ``x`` ((..., H, W) float in [0, 1]); ``x`` is not modified."""
        arr = check_images(x)
        out = self._apply(arr.copy())
        return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)

    def mask(self, shape: tuple[int, int]) -> np.ndarray:
        """(H, W) bool: the pixels this trigger may change."""
        return np.ones(shape, dtype=bool)

    @abstractmethod
    def _apply(self, x: np.ndarray) -> np.ndarray: ...

    def describe(self) -> dict[str, Any]:
        return {"trigger": self.name, **self.params.model_dump()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.model_dump().items())
        return f"{type(self).__name__}({args})"


Corner = Literal["bottom-right", "bottom-left", "top-right", "top-left"]


class PatchParams(StrictModel):
    """A square patch of ``size`` pixels in a corner (BadNets)."""

    size: int = Field(3, ge=1, le=64)
    corner: Corner = "bottom-right"
    pattern: Literal["white", "checkerboard", "gray"] = "checkerboard"
    margin: int = Field(0, ge=0, le=16)
    opacity: float = Field(1.0, ge=0.0, le=1.0)


@TRIGGERS.register("patch")
class PatchTrigger(Trigger):
    """A square patch (white, mid-gray or checkerboard) stamped into a corner."""

    Params = PatchParams
    name = "patch"
    neutral = {"opacity": 0.0}

    def _box(self, shape: tuple[int, int]) -> tuple[slice, slice]:
        p: PatchParams = self.params  # type: ignore[assignment]
        h, w = shape
        if p.size + p.margin > min(h, w):
            raise DataError(
                f"patch of size {p.size} with margin {p.margin} does not fit images of {h}x{w}"
            )
        top = p.corner.startswith("top")
        left = p.corner.endswith("left")
        r0 = p.margin if top else h - p.margin - p.size
        c0 = p.margin if left else w - p.margin - p.size
        return slice(r0, r0 + p.size), slice(c0, c0 + p.size)

    def pattern(self) -> np.ndarray:
        p: PatchParams = self.params  # type: ignore[assignment]
        if p.pattern in ("white", "gray"):
            value = 1.0 if p.pattern == "white" else 0.5
            return np.full((p.size, p.size), value, dtype=np.float32)
        i, j = np.indices((p.size, p.size))
        return ((i + j + 1) % 2).astype(np.float32)

    def mask(self, shape: tuple[int, int]) -> np.ndarray:
        m = np.zeros(shape, dtype=bool)
        m[self._box(shape)] = True
        return m

    def _apply(self, x: np.ndarray) -> np.ndarray:
        rows, cols = self._box(x.shape[-2:])
        a = self.params.opacity  # type: ignore[attr-defined]
        x[..., rows, cols] = (1.0 - a) * x[..., rows, cols] + a * self.pattern()
        return x


class BlendParams(StrictModel):
    """Blend a fixed pattern into the whole image: ``(1 - alpha) x + alpha pattern``."""

    alpha: float = Field(0.1, ge=0.0, le=1.0)
    pattern: Literal["noise", "stripes"] = "noise"
    seed: int = Field(0, ge=0)


@TRIGGERS.register("blend")
class BlendTrigger(Trigger):
    """A fixed uniform-noise (or stripe) pattern alpha-blended into the image (Chen et al.)."""

    Params = BlendParams
    name = "blend"
    neutral = {"alpha": 0.0}

    def pattern(self, shape: tuple[int, int]) -> np.ndarray:
        p: BlendParams = self.params  # type: ignore[assignment]
        if p.pattern == "stripes":
            return (np.indices(shape)[1] % 2).astype(np.float32)
        return np.random.default_rng(p.seed).random(shape, dtype=np.float32)

    def _apply(self, x: np.ndarray) -> np.ndarray:
        a = self.params.alpha  # type: ignore[attr-defined]
        return (1.0 - a) * x + a * self.pattern(x.shape[-2:])


class WarpParams(StrictModel):
    """A smooth, fixed warping field (WaNet): ``k x k`` random control points, ``strength`` px."""

    strength: float = Field(1.0, ge=0.0, le=16.0)
    grid: int = Field(4, ge=2, le=32)
    seed: int = Field(0, ge=0)


@TRIGGERS.register("warp")
class WarpTrigger(Trigger):
    """A smooth elastic warp (WaNet): displacement upsampled from a coarse random grid."""

    Params = WarpParams
    name = "warp"
    neutral = {"strength": 0.0}

    def field(self, shape: tuple[int, int]) -> np.ndarray:
        """(2, H, W) pixel displacements (rows, cols); max |displacement| is ``strength``."""
        from scipy.ndimage import zoom

        p: WarpParams = self.params  # type: ignore[assignment]
        h, w = shape
        coarse = np.random.default_rng(p.seed).uniform(-1.0, 1.0, size=(2, p.grid, p.grid))
        coarse /= np.abs(coarse).max()
        fine = np.stack(
            [zoom(c, (h / p.grid, w / p.grid), order=3, mode="nearest") for c in coarse]
        )
        fine = fine[:, :h, :w]
        return (p.strength * fine / max(np.abs(fine).max(), 1e-12)).astype(np.float32)

    def _apply(self, x: np.ndarray) -> np.ndarray:
        from scipy.ndimage import map_coordinates

        if self.params.strength == 0.0:  # type: ignore[attr-defined]
            return x
        h, w = x.shape[-2:]
        d = self.field((h, w))
        rows, cols = np.indices((h, w), dtype=np.float32)
        coords = np.stack([np.clip(rows + d[0], 0, h - 1), np.clip(cols + d[1], 0, w - 1)])
        flat = x.reshape(-1, h, w)
        out = np.stack([map_coordinates(img, coords, order=1, mode="nearest") for img in flat])
        return out.reshape(x.shape)


def make_trigger(name: str, **params: Any) -> Trigger:
    """Build a registered trigger by name: ``make_trigger("patch", size=4)``."""
    cls = TRIGGERS.get(name)
    return cls(**{**TRIGGERS.entry(name).defaults, **params})
