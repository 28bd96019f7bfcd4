"""Robustness: certifiers (randomized smoothing, interval bound propagation) and the availability
attacks that make them abstain, with the defences evaluated against them.

Reference: Lorenz, Kwiatkowska, Fritz, "Certifiers Make Neural Networks Vulnerable to Availability
Attacks", AISec 2023 (arXiv 2108.11299).
"""

from aisec.robustness.certificate import ABSTAIN, Certificate

__all__ = ["ABSTAIN", "Certificate"]
