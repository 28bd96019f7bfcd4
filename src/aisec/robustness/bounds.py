"""Interval bound propagation (IBP) through ``Sequential`` CNNs, differentiable for training.

Given an L-infinity ball ``[x - eps, x + eps]`` clipped to the input domain [0, 1], propagate a box
layer by layer: affine layers map the centre and take ``|W|`` times the radius; ReLU is monotone and
maps the bounds elementwise. The final layer is folded into the specification (Gowal et al.'s
elision): the lower bound of ``z_c - z_j`` is computed from the penultimate box with the row
``W_c - W_j``, which is tighter than ``l_c - u_j``.

Reference: Gowal et al., "On the Effectiveness of Interval Bound Propagation for Training
Verifiably Robust Models", 2018 (arXiv 1810.12715).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aisec.errors import ConfigError

if TYPE_CHECKING:
    import torch

__all__ = ["interval_forward", "margin_lower_bounds", "worst_case_logits"]


def _affine_box(layer: torch.nn.Module, lo: torch.Tensor, hi: torch.Tensor):
    import torch.nn.functional as F  # noqa: N812
    from torch import nn

    mid, rad = (hi + lo) / 2, (hi - lo) / 2
    if isinstance(layer, nn.Linear):
        mid = layer(mid)
        rad = F.linear(rad, layer.weight.abs())
    else:
        mid = layer(mid)
        rad = F.conv2d(rad, layer.weight.abs(), None, layer.stride, layer.padding,
                       layer.dilation, layer.groups)
    return mid - rad, mid + rad


def interval_forward(layers, lo: torch.Tensor, hi: torch.Tensor):
    """Propagate the box ``[lo, hi]`` through ``layers`` (Conv2d, Linear, ReLU, Flatten)."""
    from torch import nn

    for layer in layers:
        if isinstance(layer, nn.Linear | nn.Conv2d):
            lo, hi = _affine_box(layer, lo, hi)
        elif isinstance(layer, nn.ReLU):
            lo, hi = lo.clamp_min(0), hi.clamp_min(0)
        elif isinstance(layer, nn.Flatten):
            lo, hi = layer(lo), layer(hi)
        else:
            raise ConfigError(
                f"interval bound propagation supports Conv2d, Linear, ReLU and Flatten layers; "
                f"got {type(layer).__name__}"
            )
    return lo, hi


def margin_lower_bounds(model: torch.nn.Sequential, x: torch.Tensor, eps) -> torch.Tensor:
    """Lower bounds of ``z_c - z_j`` over the clipped L-inf ball of radius ``eps``.

    Args:
        model: Sequential ending in a Linear layer.
        x: (B, C, H, W) inputs in [0, 1].
        eps: float or (B,) tensor of radii >= 0.

    Returns:
        (B, K, K) tensor ``m`` with ``m[b, c, j] <= min over the ball of z_c - z_j``; the diagonal
        is 0. Class ``c`` is certified at ``eps`` iff ``m[b, c, j] > 0`` for every ``j != c``.
    """
    import torch
    from torch import nn

    layers = list(model)
    last = layers[-1]
    if not isinstance(last, nn.Linear):
        raise ConfigError(f"the last layer must be Linear for IBP; got {type(last).__name__}")
    e = torch.as_tensor(eps, dtype=x.dtype, device=x.device)
    if e.ndim == 1:
        e = e.view(-1, *([1] * (x.ndim - 1)))
    lo, hi = interval_forward(layers[:-1], (x - e).clamp(0, 1), (x + e).clamp(0, 1))
    mid, rad = (hi + lo) / 2, (hi - lo) / 2
    w, b = last.weight, last.bias
    dw = w[:, None, :] - w[None, :, :]  # (K, K, D): row c - row j
    db = b[:, None] - b[None, :]
    centre = torch.einsum("bd,kjd->bkj", mid, dw) + db
    spread = torch.einsum("bd,kjd->bkj", rad, dw.abs())
    return centre - spread


def worst_case_logits(model: torch.nn.Sequential, x: torch.Tensor, y: torch.Tensor, eps):
    """Gowal et al.'s worst-case logits ``-lb(z_y - z_j)`` (0 at ``j == y``), (B, K)."""
    import torch

    m = margin_lower_bounds(model, x, eps)
    rows = m[torch.arange(len(y), device=x.device), y]  # (B, K): lb(z_y - z_j)
    return -rows
