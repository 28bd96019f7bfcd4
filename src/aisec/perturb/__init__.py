"""Image and video perturbations and triggers, shared by watermarking, benchmarks and poisoning.

Modules: :mod:`aisec.perturb.distortions` (the eight standard image distortions, registry
``image distortion``), :mod:`aisec.perturb.attacks` (regeneration and adversarial watermark-removal
attacks, registry ``watermark attack``), :mod:`aisec.perturb.triggers` (backdoor triggers: patch,
blend, warp). Importing the package fills the registries (numpy and pydantic only; torch, scipy
and PIL load when an operation runs).
"""

from aisec.perturb import attacks, distortions, triggers

__all__ = ["attacks", "distortions", "triggers"]
