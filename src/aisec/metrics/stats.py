"""Rates with exact (Clopper-Pearson) binomial confidence intervals."""

from __future__ import annotations

from dataclasses import dataclass

from scipy.stats import beta

from aisec.errors import ParameterError

__all__ = ["Rate", "clopper_pearson", "rate"]


def clopper_pearson(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Two-sided exact ``1 - alpha`` interval for a binomial proportion ``k / n``."""
    if n < 0 or k < 0 or k > n:
        raise ParameterError("k", f"must satisfy 0 <= k <= n (n={n})", k)
    if not 0.0 < alpha < 1.0:
        raise ParameterError("alpha", "must lie in (0, 1)", alpha)
    if n == 0:
        return 0.0, 1.0
    lo = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return lo, hi


@dataclass(frozen=True)
class Rate:
    """``k`` successes out of ``n`` trials, with its Clopper-Pearson interval."""

    k: int
    n: int
    alpha: float = 0.05

    @property
    def value(self) -> float:
        return self.k / self.n if self.n else float("nan")

    @property
    def ci(self) -> tuple[float, float]:
        return clopper_pearson(self.k, self.n, self.alpha)

    def to_dict(self) -> dict[str, float | int]:
        lo, hi = self.ci
        return {"value": self.value, "ci_low": lo, "ci_high": hi, "k": self.k, "n": self.n}


def rate(k: int, n: int, alpha: float = 0.05) -> Rate:
    """Shorthand for :class:`Rate`; validates the counts."""
    k, n = int(k), int(n)
    clopper_pearson(k, n, alpha)
    return Rate(k, n, alpha)
