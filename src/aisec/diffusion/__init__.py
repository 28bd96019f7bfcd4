"""Diffusion models as a shared layer: backbones, their noise schedule, DDIM sampling and inversion.

Used by the provenance watermarks (generate from a keyed initial noise, invert to detect) and by
the regeneration attacks of :mod:`aisec.perturb.attacks`. This layer imports no system.
"""
