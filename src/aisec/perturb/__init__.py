"""Image and video perturbations and triggers, shared by watermarking, benchmarks and poisoning.

Modules: :mod:`aisec.perturb.distortions` (the eight standard image distortions, registry
``image distortion``), :mod:`aisec.perturb.attacks` (regeneration and adversarial watermark-removal
attacks, registry ``watermark attack``), :mod:`aisec.perturb.triggers` (backdoor triggers: patch,
blend, warp).
"""
