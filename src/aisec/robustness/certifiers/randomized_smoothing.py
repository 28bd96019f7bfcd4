"""Randomized smoothing (Cohen et al.): PREDICT with a binomial test, CERTIFY with a Clopper-Pearson
bound and an L2 radius; abstention is explicit.

The smoothed classifier is ``g(x) = argmax_c P(f(x + e) = c)``, ``e ~ N(0, sigma^2 I)``, where ``f``
is the base network's hard label (argmax). Steps, as in the reference ``locuslab/smoothing``
``code/core.py``:

- CERTIFY: draw ``n0`` noisy copies, guess the top class ``c_A``; draw ``n`` fresh copies and count
  ``n_A``; ``p_A_lower`` = one-sided ``(1 - alpha)`` Clopper-Pearson lower bound
  (``beta.ppf(alpha, n_A, n - n_A + 1)``); abstain iff ``p_A_lower < 0.5``, otherwise certify
  ``c_A`` with radius ``sigma * Phi^-1(p_A_lower)``.
- PREDICT: draw ``n`` copies, take the two largest counts ``n_A``, ``n_B``; abstain iff the two-sided
  binomial test of ``n_A`` out of ``n_A + n_B`` at 1/2 has p-value ``> alpha`` (``scipy``'s
  ``binomtest``; the reference's ``binom_test`` was removed from SciPy 1.12).

Noise is drawn in batches of ``batch_size`` noisy inputs (several inputs share a batch when ``n`` is
small) from an explicit ``torch.Generator``, so a run is reproducible from its seed.

Reference: Cohen, Rosenfeld, Kolter, "Certified Adversarial Robustness via Randomized Smoothing",
ICML 2019.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from pydantic import Field
from scipy.stats import beta, binomtest, norm

from aisec.config import StrictModel
from aisec.rng import make_rng, torch_generator
from aisec.robustness.certificate import ABSTAIN, Certificate
from aisec.robustness.certifiers.base import CERTIFIERS, Certifier

if TYPE_CHECKING:
    import torch

__all__ = ["SmoothingParams", "RandomizedSmoothing", "sample_counts", "lower_confidence_bound"]


class SmoothingParams(StrictModel):
    """Parameters of randomized smoothing (reference defaults: n0=100, n=100,000, alpha=0.001)."""

    sigma: float = Field(0.25, gt=0.0, le=4.0)
    n0: int = Field(100, ge=1, le=10_000_000)
    n: int = Field(1000, ge=1, le=10_000_000)
    alpha: float = Field(0.001, gt=0.0, lt=1.0)
    batch_size: int = Field(1000, ge=1, le=1_000_000)


def lower_confidence_bound(n_a: np.ndarray, n: int, alpha: float) -> np.ndarray:
    """One-sided (1 - alpha) Clopper-Pearson lower bound of a proportion; 0 where ``n_a == 0``."""
    n_a = np.asarray(n_a, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        lo = beta.ppf(alpha, n_a, n - n_a + 1)
    return np.where(n_a > 0, lo, 0.0)


def sample_counts(
    model: torch.nn.Module, x: torch.Tensor, num: int, sigma: float, batch_size: int,
    generator: torch.Generator, n_classes: int,
) -> np.ndarray:
    """Hard-label counts of ``model`` under Gaussian noise: (B, n_classes) int64.

    ``x`` is (B, C, H, W); ``num`` noisy copies of each input are classified, ``batch_size`` noisy
    inputs per forward pass (inputs are packed together when ``num < batch_size``).
    """
    import torch

    b = x.shape[0]
    total = b * num
    counts = torch.zeros(b * n_classes, dtype=torch.int64)
    with torch.inference_mode():
        for start in range(0, total, batch_size):
            stop = min(start + batch_size, total)
            idx = torch.arange(start, stop) // num
            batch = x[idx]
            noise = torch.randn(batch.shape, generator=generator, dtype=batch.dtype)
            pred = model(batch + sigma * noise).argmax(dim=1)
            counts += torch.bincount(idx * n_classes + pred, minlength=b * n_classes)
    return counts.view(b, n_classes).numpy()


@CERTIFIERS.register("smoothing")
class RandomizedSmoothing(Certifier):
    """Randomized smoothing (Cohen et al.): Gaussian noise, Clopper-Pearson bound, L2 radius."""

    Params = SmoothingParams
    name = "smoothing"
    family = "smoothing"
    norm = "l2"

    def _gen(self, rng: np.random.Generator | int | None) -> torch.Generator:
        return torch_generator(make_rng(rng))

    def certify(self, model, x, rng=None) -> Certificate:
        """CERTIFY: per input, a certified class and L2 radius, or ``ABSTAIN``."""
        import torch

        p: SmoothingParams = self.params  # type: ignore[assignment]
        xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
        gen = self._gen(rng)
        k = _n_classes(model, xt)
        c0 = sample_counts(model, xt, p.n0, p.sigma, p.batch_size, gen, k)
        c_hat = c0.argmax(axis=1)
        c = sample_counts(model, xt, p.n, p.sigma, p.batch_size, gen, k)
        n_a = c[np.arange(len(c_hat)), c_hat]
        p_lo = lower_confidence_bound(n_a, p.n, p.alpha)
        ok = p_lo >= 0.5
        radius = np.where(ok, p.sigma * norm.ppf(np.clip(p_lo, 0.5, 1.0)), 0.0)
        pred = np.where(ok, c_hat, ABSTAIN).astype(np.int64)
        return Certificate(self.name, self.norm, pred, radius.astype(np.float64),
                           p_lo.astype(np.float64), self.params.model_dump())

    def predict(self, model, x, rng=None) -> Certificate:
        """PREDICT: the smoothed prediction or ``ABSTAIN`` (binomial test); radius is 0.

        ``statistic`` holds the binomial test's p-value.
        """
        import torch

        p: SmoothingParams = self.params  # type: ignore[assignment]
        xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
        k = _n_classes(model, xt)
        c = sample_counts(model, xt, p.n, p.sigma, p.batch_size, self._gen(rng), k)
        order = np.argsort(-c, axis=1, kind="stable")
        top, second = order[:, 0], order[:, 1]
        rows = np.arange(len(c))
        n_a, n_b = c[rows, top], c[rows, second]
        pval = np.array([binomtest(int(a), int(a + b), 0.5).pvalue if a + b > 0 else 1.0
                         for a, b in zip(n_a, n_b, strict=True)])
        pred = np.where(pval <= p.alpha, top, ABSTAIN).astype(np.int64)
        return Certificate(self.name, self.norm, pred, np.zeros(len(c)), pval,
                           {**self.params.model_dump(), "mode": "predict"})


def _n_classes(model, xt) -> int:
    import torch

    with torch.inference_mode():
        return int(model(xt[:1]).shape[1])
