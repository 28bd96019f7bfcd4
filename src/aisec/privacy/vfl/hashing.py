"""HashVFL's hashing layer: BatchNorm -> sign with a straight-through gradient, predefined class
codes, the consistency (cosine) loss, bit packing for the wire, and Hamming distances.

The three challenges of putting a hash into split learning map to three pieces (Qiu et al.):
learnability -> sign() whose backward passes the gradient unchanged (straight-through, as the
official ``GreedyHash``); bit balance -> BatchNorm1d before the sign, so about half of a batch
is positive in each dimension; consistency -> codes pulled towards predefined random +-1 class
codes by ``1 - cos(h, o_y)``.

Reference: Qiu, Zhang, Ji, Fu, Yang, Wang, "HashVFL: Defending Against Data Reconstruction
Attacks in Vertical Federated Learning", IEEE TIFS 19 (2024); arXiv 2212.00325.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from aisec.errors import DataError, ParameterError

__all__ = [
    "SignSTE",
    "HashLayer",
    "class_codes",
    "consistency_loss",
    "pack_codes",
    "unpack_codes",
    "hamming",
]


class SignSTE(torch.autograd.Function):
    """sign() forward (0 maps to +1, so codes are exactly +-1); identity backward."""

    @staticmethod
    def forward(ctx: object, x: torch.Tensor) -> torch.Tensor:  # noqa: ARG004
        return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> torch.Tensor:  # noqa: ARG004
        return grad


class HashLayer(nn.Module):
    """BatchNorm1d(bits) then sign with the straight-through estimator: (B, bits) -> {-1, +1}."""

    def __init__(self, bits: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(bits)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return SignSTE.apply(self.bn(z))


def class_codes(n_classes: int, bits: int, seed: int) -> torch.Tensor:
    """Predefined class codes o_y: (n_classes, bits) float32 in {-1, +1}, i.i.d. Bernoulli(1/2).

    Drawn from a public seed so every party (and a checkpoint) can rebuild them; with enough
    bits they are nearly orthogonal. Rows are redrawn until distinct (short codes, many classes).
    """
    if n_classes < 2 or bits < 1:
        raise ParameterError("class_codes", "need >= 2 classes and >= 1 bit", (n_classes, bits))
    if 2**bits < n_classes:
        raise ParameterError(
            "code_bits", f"must give at least {n_classes} distinct codes (2**bits >= classes)", bits
        )
    rng = np.random.default_rng([seed, n_classes, bits])
    for _ in range(1000):
        codes = rng.integers(0, 2, size=(n_classes, bits)) * 2 - 1
        if len({tuple(r) for r in codes}) == n_classes:
            return torch.as_tensor(codes, dtype=torch.float32)
    raise ParameterError("code_bits", "too short to draw distinct class codes", bits)


def consistency_loss(h: torch.Tensor, y: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``1 - cos(h_b, o_{y_b})``: h (B, bits), y (B,), codes (C, bits)."""
    target = codes[y]
    return (1.0 - nn.functional.cosine_similarity(h, target, dim=1, eps=1e-8)).mean()


def pack_codes(h: np.ndarray | torch.Tensor) -> np.ndarray:
    """{-1, +1} codes (B, bits) -> (B, ceil(bits / 8)) uint8, one bit per dimension (+1 -> 1)."""
    a = h.detach().cpu().numpy() if isinstance(h, torch.Tensor) else np.asarray(h)
    if a.ndim != 2:
        raise DataError(f"codes must be (batch, bits); got shape {a.shape}")
    if not np.all(np.abs(a) == 1):
        raise DataError("codes must hold only -1 and +1 to be packed")
    return np.packbits(a > 0, axis=1)


def unpack_codes(packed: np.ndarray, bits: int) -> torch.Tensor:
    """Inverse of :func:`pack_codes`: (B, ceil(bits / 8)) uint8 -> (B, bits) float32 +-1."""
    packed = np.asarray(packed)
    if packed.dtype != np.uint8 or packed.ndim != 2 or packed.shape[1] != (bits + 7) // 8:
        raise DataError(
            f"packed codes must be (batch, {(bits + 7) // 8}) uint8; "
            f"got {packed.shape} {packed.dtype}"
        )
    bitsarr = np.unpackbits(packed, axis=1, count=bits).astype(np.float32)
    return torch.from_numpy(bitsarr * 2.0 - 1.0)


def hamming(h: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """Hamming distance between rows of h (B, bits) and codes (B, bits), both +-1: (B,)."""
    return (h != codes).sum(dim=1).to(torch.float32)
