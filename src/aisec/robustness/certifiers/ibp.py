"""Deterministic certification by interval bound propagation (IBP) in the L-infinity norm.

The prediction ``c`` (the network's argmax) is certified at ``epsilon`` iff the IBP lower bound of
every margin ``z_c - z_j`` over the clipped ball is positive; otherwise the certifier abstains. For
certified inputs the radius is the largest epsilon (found by bisection, IBP bounds grow
monotonically with epsilon) at which the bounds still certify ``c``.

We implement IBP ourselves (:mod:`aisec.robustness.bounds`) because the PyPI ``auto-lirpa`` 0.3
wheel pins torch < 1.13 and fails to import with NumPy 2.

Reference: Gowal et al., "On the Effectiveness of Interval Bound Propagation for Training
Verifiably Robust Models", 2018 (arXiv 1810.12715).
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from aisec.config import StrictModel
from aisec.robustness.bounds import margin_lower_bounds
from aisec.robustness.certificate import ABSTAIN, Certificate
from aisec.robustness.certifiers.base import CERTIFIERS, Certifier

__all__ = ["IBPParams", "IntervalBoundCertifier"]


class IBPParams(StrictModel):
    """IBP certification at ``epsilon`` (L-inf, on the [0, 1] pixel scale)."""

    epsilon: float = Field(0.1, gt=0.0, le=1.0)
    search_radius: bool = True
    max_radius: float = Field(0.5, gt=0.0, le=1.0)
    steps: int = Field(10, ge=1, le=40)
    batch_size: int = Field(500, ge=1, le=100_000)


def _cat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)


def _certified_margin(model, x, cls, eps):
    import torch

    m = margin_lower_bounds(model, x, eps)
    rows = m[torch.arange(len(cls)), cls].clone()
    rows[torch.arange(len(cls)), cls] = float("inf")
    return rows.min(dim=1).values


@CERTIFIERS.register("ibp")
class IntervalBoundCertifier(Certifier):
    """Interval bound propagation: certified iff every worst-case margin is positive (L-inf)."""

    Params = IBPParams
    name = "ibp"
    family = "bound"
    norm = "linf"

    def certify(self, model, x, rng=None) -> Certificate:
        """Certify ``x`` (N, C, H, W); ``rng`` is unused (the certifier is deterministic)."""
        import torch

        p: IBPParams = self.params  # type: ignore[assignment]
        xs = np.asarray(x, dtype=np.float32)
        preds, radii, stats = [], [], []
        with torch.inference_mode():
            for i in range(0, len(xs), p.batch_size):
                xb = torch.from_numpy(xs[i: i + p.batch_size])
                cls = model(xb).argmax(dim=1)
                margin = _certified_margin(model, xb, cls, p.epsilon)
                ok = margin > 0
                radius = torch.where(ok, torch.tensor(p.epsilon), torch.tensor(0.0))
                if p.search_radius and p.max_radius > p.epsilon and bool(ok.any()):
                    lo = torch.full((len(xb),), p.epsilon)
                    hi = torch.full((len(xb),), p.max_radius)
                    top = _certified_margin(model, xb, cls, hi) > 0
                    lo = torch.where(top, hi, lo)
                    for _ in range(p.steps):
                        mid = (lo + hi) / 2
                        good = _certified_margin(model, xb, cls, mid) > 0
                        lo = torch.where(good, mid, lo)
                        hi = torch.where(good, hi, mid)
                    radius = torch.where(ok, lo, torch.tensor(0.0))
                preds.append(torch.where(ok, cls, torch.tensor(ABSTAIN)).numpy())
                radii.append(radius.double().numpy())
                stats.append(margin.double().numpy())
        return Certificate(self.name, self.norm, _cat(preds, np.int64), _cat(radii, np.float64),
                           _cat(stats, np.float64), self.params.model_dump())
