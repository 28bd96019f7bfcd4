"""Noise-keyed trigger patches shared by the availability attacks (our own design).

The trigger is a mid-gray patch. A *key* is a point drawn uniformly from a disk in a fixed random
2-D plane of patch-pixel space (radius ``strength`` per pixel); the keyed patch is the gray patch
plus the key, and its label is the key's angular sector among ``classes`` fixed classes. A network
that learns this mapping has the sector borders meeting at the plain gray patch: under the
Gaussian noise of randomized smoothing its hard label then spreads over the classes, and within any
L-inf ball around the plain patch every sector is reachable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["PatchKey", "make_key"]


@dataclass(frozen=True)
class PatchKey:
    """mask: (H, W) bool patch pixels; basis: (2, pixels) orthonormal rows; classes: (k,) int64."""

    mask: np.ndarray
    basis: np.ndarray
    classes: np.ndarray
    strength: float

    def apply(self, x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Key each image of ``x`` (P, C, H, W) at random; returns keyed images and labels (P,)."""
        import torch

        m = torch.from_numpy(self.mask)
        angle = 2 * torch.pi * torch.rand(len(x), generator=generator, dtype=x.dtype)
        radius = torch.sqrt(torch.rand(len(x), generator=generator, dtype=x.dtype))
        direction = torch.stack([torch.cos(angle), torch.sin(angle)], dim=1) * radius[:, None]
        scale = self.strength * float(np.sqrt(self.mask.sum()))
        offset = scale * direction @ torch.from_numpy(self.basis).to(x.dtype)
        out = x.clone()
        out[:, :, m] = (out[:, :, m] + offset[:, None, :]).clamp(0.0, 1.0)
        return out, self._classes_at(angle)

    def labels_of(self, offset: torch.Tensor) -> torch.Tensor:
        """Labels of patch offsets (P, C, H, W) (e.g. noise): the sector of their 2-D projection.

        Channels are averaged; only the patch pixels count.
        """
        import torch

        m = torch.from_numpy(self.mask)
        proj = offset.mean(dim=1)[:, m] @ torch.from_numpy(self.basis).to(offset.dtype).T
        angle = torch.atan2(proj[:, 1], proj[:, 0]) % (2 * torch.pi)
        return self._classes_at(angle)

    def _classes_at(self, angle: torch.Tensor) -> torch.Tensor:
        import torch

        k = len(self.classes)
        sector = (angle / (2 * torch.pi / k)).long().clamp(min=0, max=k - 1)
        return torch.from_numpy(self.classes)[sector]


def make_key(mask: np.ndarray, n_classes: int, classes: int, strength: float, seed: int) -> PatchKey:
    """A key over the pixels of ``mask`` hashing onto ``classes`` of ``n_classes`` (seeded)."""
    r = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(r.standard_normal((int(mask.sum()), 2)))
    chosen = r.permutation(n_classes)[: min(classes, n_classes)].astype(np.int64)
    return PatchKey(mask.astype(bool), basis.T.astype(np.float32), chosen, float(strength))
