"""aisec: a toolkit that secures AI systems across their life.

Systems: CAESAR, SeSoRec and HashVFL (:mod:`aisec.privacy`); GaussMarker with Tree-Ring and
Gaussian Shading, VideoMarkBench and OML 1.0 model fingerprints (:mod:`aisec.provenance`);
SafeChain and EnchTable (:mod:`aisec.safety`); certifier availability attacks
(:mod:`aisec.robustness`). They sit on shared layers (crypto, transport, diffusion, perturb,
llm, judges, metrics, assets, bench, report, cli). ``aisec --help`` lists the systems by the
commands present.
"""

__version__ = "0.1.0"
