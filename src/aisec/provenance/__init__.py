"""Provenance: generation-time image watermarks (GaussMarker, Tree-Ring, Gaussian Shading), their
detectors, fusers and robustness benchmark; OML 1.0 language-model fingerprints
(:mod:`aisec.provenance.fingerprint`) and VideoMarkBench (:mod:`aisec.provenance.video`, video
watermarks under removal and forgery), each imported on its own.

Importing the package registers the image watermarks (registry ``image watermark``) and the
diffusion backbones (``diffusion backbone``); torch loads only when one is used.
"""

from aisec.provenance import gaussian_shading, gaussmarker, pipeline, tree_ring

__all__ = ["gaussian_shading", "gaussmarker", "pipeline", "tree_ring"]
