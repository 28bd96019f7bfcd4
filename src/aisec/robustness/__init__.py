"""Robustness: certifiers (randomized smoothing, interval bound propagation) and the availability
attacks that make them abstain, with the defences evaluated against them.

Importing this package fills the "certifier", "availability attack" and "certifier defence"
registries (and, through the attacks, the "trigger" registry of :mod:`aisec.perturb.triggers`).

Reference: Lorenz, Kwiatkowska, Fritz, "Certifiers Make Neural Networks Vulnerable to Availability
Attacks", AISec 2023 (arXiv 2108.11299).
"""

from aisec.robustness import availability, certifiers, defences  # noqa: F401 (registries)
from aisec.robustness.certificate import ABSTAIN, Certificate

__all__ = ["ABSTAIN", "Certificate"]
