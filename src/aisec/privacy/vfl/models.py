"""Bottom models (one per party, over its feature slice) and the top model (at the active party).

Bottoms are registered by name; each maps a slice (B, *slice_shape) to an embedding (B, dim).
With the ``hash`` defence the embedding then goes through :class:`HashLayer` on the party's side.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from aisec.errors import ParameterError
from aisec.privacy.vfl.hashing import HashLayer
from aisec.registry import Registry

__all__ = ["BOTTOMS", "build_bottom", "Bottom", "TopModel"]

BOTTOMS: Registry[Callable[[Sequence[int], int, int], nn.Module]] = Registry("vfl bottom model")


@BOTTOMS.register("mlp", summary="two-layer MLP over a flat slice (tabular, text, or images)")
def _mlp(shape: Sequence[int], dim: int, hidden: int) -> nn.Module:
    d = 1
    for s in shape:
        d *= int(s)
    return nn.Sequential(nn.Flatten(), nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, dim))


@BOTTOMS.register("cnn", summary="two conv blocks and a linear head over an image slice (H, W)")
def _cnn(shape: Sequence[int], dim: int, hidden: int) -> nn.Module:
    if len(shape) != 2:
        raise ParameterError("bottom", "cnn needs an image slice (H, W)", list(shape))
    h, w = int(shape[0]), int(shape[1])
    feat = 32 * (h // 4) * (w // 4)
    if feat == 0:
        raise ParameterError("bottom", "cnn needs a slice of at least 4x4 pixels", [h, w])
    return nn.Sequential(
        _AddChannel(),
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(feat, hidden),
        nn.ReLU(),
        nn.Linear(hidden, dim),
    )


class _AddChannel(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(1)


class Bottom(nn.Module):
    """A party's bottom model: ``net`` then, with hashing, :class:`HashLayer`.

    ``forward`` returns what leaves the party before the defence's noise: (B, dim) float
    embeddings, or +-1 codes when ``hashed``.
    """

    def __init__(
        self, arch: str, shape: Sequence[int], dim: int, hidden: int = 128, hashed: bool = False
    ) -> None:
        super().__init__()
        self.arch, self.shape, self.dim, self.hashed = (
            arch,
            tuple(int(s) for s in shape),
            dim,
            hashed,
        )
        self.net = BOTTOMS.get(arch)(self.shape, dim, hidden)
        self.hash = HashLayer(dim) if hashed else None

    def pre_hash(self, x: torch.Tensor) -> torch.Tensor:
        """The real-valued output before the sign (for attacks and detection), (B, dim)."""
        z = self.net(x)
        return self.hash.bn(z) if self.hash is not None else z

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.net(x)
        return self.hash(z) if self.hash is not None else z


def build_bottom(arch: str, shape: Sequence[int], dim: int, hidden: int, hashed: bool) -> Bottom:
    return Bottom(arch, shape, dim, hidden, hashed)


class TopModel(nn.Module):
    """MLP over the concatenated party outputs (B, parties * dim) -> logits (B, classes)."""

    def __init__(self, in_dim: int, n_classes: int, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, n_classes))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)
