"""Image and video perturbations and triggers, shared by watermarking, benchmarks and poisoning.

Modules: :mod:`aisec.perturb.distortions` (the eight standard image distortions, registry
``image distortion``), :mod:`aisec.perturb.attacks` (regeneration and adversarial watermark-removal
attacks, registry ``watermark attack``), :mod:`aisec.perturb.triggers` (backdoor triggers: patch,
blend, warp), :mod:`aisec.perturb.video` (the eight no-box video perturbations of VideoMarkBench,
registry ``video perturbation``). Importing the package fills the registries (numpy and pydantic only; torch, scipy
and PIL load when an operation runs).
"""

from aisec.perturb import attacks, distortions, triggers, video

__all__ = ["attacks", "distortions", "triggers", "video"]
