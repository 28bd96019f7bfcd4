"""aisec: a toolkit that secures AI systems across their life.

Working: CAESAR (:mod:`aisec.privacy.caesar`), GaussMarker with Tree-Ring and Gaussian Shading
(:mod:`aisec.provenance`), SafeChain (:mod:`aisec.safety.safechain`) and certifier availability
attacks (:mod:`aisec.robustness`), on shared layers (crypto, transport, diffusion, perturb, llm,
judges, metrics, assets, bench, report, cli). Not built yet: SeSoRec, HashVFL, VideoMarkBench,
OML 1.0 fingerprinting, EnchTable.
"""

__version__ = "0.1.0"
