"""Helpers shared by the diffusion backbones (image layout conversions)."""

from __future__ import annotations

import numpy as np

from aisec.errors import ParameterError

__all__ = ["to_gray"]

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def to_gray(x: np.ndarray) -> np.ndarray:
    """(B, 1, H, W), (B, 3, H, W) (luminance) or (B, H, W) float images -> (B, H, W) float32."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 4:
        if x.shape[1] == 3:
            return np.einsum("bchw,c->bhw", x, _LUMA)
        if x.shape[1] == 1:
            return x[:, 0]
        raise ParameterError("images", "must have 1 or 3 channels (B, C, H, W)", x.shape)
    if x.ndim != 3:
        raise ParameterError("images", "must have shape (B, C, H, W) or (B, H, W)", x.shape)
    return x
