"""The one result type of every certifier: per-input prediction, certified radius and abstain flag.

A certifier either certifies a prediction (a class and a radius within which no perturbation of the
given norm can change it) or abstains, which in deployment invokes the fallback (a human, a costlier
model, no answer). Abstain is encoded explicitly: ``prediction == ABSTAIN`` (-1) and
``abstained == True``; the radius of an abstained input is 0.

Reference: Lorenz, Kwiatkowska, Fritz, "Certifiers Make Neural Networks Vulnerable to Availability
Attacks", AISec 2023 (arXiv 2108.11299).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aisec.errors import DataError, ParameterError

__all__ = ["ABSTAIN", "Certificate"]

ABSTAIN = -1


@dataclass(frozen=True)
class Certificate:
    """Certification of a batch of ``N`` inputs (the field types never depend on ``N``).

    Attributes:
        certifier: name of the certifier that produced it ("smoothing", "ibp", ...).
        norm: the threat model of ``radius``: "l2" (randomized smoothing) or "linf" (IBP).
        prediction: (N,) int64 class in [0, n_classes) or ``ABSTAIN`` (-1).
        radius: (N,) float64 >= 0 certified radius; 0 where abstained.
        statistic: (N,) float64 the certifier's decision statistic: the Clopper-Pearson lower
            bound of p_A (smoothing; abstain iff < 0.5) or the lower bound of the worst-case
            logit margin at the configured epsilon (IBP; abstain iff <= 0).
        params: the certifier's parameters (sigma, n, alpha, epsilon ...), for the record.
    """

    certifier: str
    norm: str
    prediction: np.ndarray
    radius: np.ndarray
    statistic: np.ndarray
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.prediction)
        if len(self.radius) != n or len(self.statistic) != n:
            raise DataError("certificate arrays must have equal length")

    @property
    def abstained(self) -> np.ndarray:
        """(N,) bool: the certifier abstained (fallback invoked)."""
        return np.asarray(self.prediction) == ABSTAIN

    def __len__(self) -> int:
        return len(self.prediction)

    def abstain_rate(self) -> float:
        return float(self.abstained.mean()) if len(self) else float("nan")

    def certified(self, radius: float = 0.0) -> np.ndarray:
        """(N,) bool: a (non-abstained) prediction certified at least at ``radius``."""
        if radius < 0:
            raise ParameterError("radius", "must be >= 0", radius)
        return (~self.abstained) & (np.asarray(self.radius) >= radius)

    def correct(self, y: np.ndarray) -> np.ndarray:
        """(N,) bool: the prediction equals the label ``y`` (an abstention is never correct)."""
        y = np.asarray(y)
        if y.shape != (len(self),):
            raise DataError(f"labels must have shape ({len(self)},); got {y.shape}")
        return np.asarray(self.prediction) == y

    def certified_accuracy(self, y: np.ndarray, radius: float = 0.0) -> float:
        """Fraction of inputs predicted correctly *and* certified at ``radius``."""
        return float((self.correct(y) & self.certified(radius)).mean()) if len(self) else float("nan")

    def records(self) -> list[dict[str, Any]]:
        """One JSON-ready dict per input: prediction (None if abstained), radius, abstain."""
        out = []
        for p, r, s in zip(self.prediction, self.radius, self.statistic, strict=True):
            out.append({
                "prediction": None if int(p) == ABSTAIN else int(p),
                "abstain": bool(int(p) == ABSTAIN),
                "radius": float(r),
                "statistic": float(s),
            })
        return out

    @staticmethod
    def concat(parts: list[Certificate]) -> Certificate:
        """Join certificates of consecutive batches from the same certifier."""
        if not parts:
            raise DataError("cannot concatenate zero certificates")
        first = parts[0]
        return Certificate(
            first.certifier, first.norm,
            np.concatenate([p.prediction for p in parts]),
            np.concatenate([p.radius for p in parts]),
            np.concatenate([p.statistic for p in parts]),
            dict(first.params),
        )
