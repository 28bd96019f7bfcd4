"""Certifiers: randomized smoothing (probabilistic, L2) and interval bound propagation (L-inf)."""

from aisec.robustness.certifiers.base import CERTIFIERS, Certifier, make_certifier
from aisec.robustness.certifiers.ibp import IBPParams, IntervalBoundCertifier
from aisec.robustness.certifiers.randomized_smoothing import RandomizedSmoothing, SmoothingParams

__all__ = ["CERTIFIERS", "Certifier", "make_certifier", "IBPParams", "IntervalBoundCertifier",
           "RandomizedSmoothing", "SmoothingParams"]
