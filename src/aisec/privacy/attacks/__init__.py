"""Attacks on split (vertical) federated learning, run against plain VFL, noise/DP defences and
HashVFL alike (:mod:`aisec.privacy.vfl`).

Threat model (HashVFL's paper, the strongest case for the defender): honest-but-curious parties;
the attacker knows the victim party's bottom model and sees what that party sends (codes or
embeddings), and holds auxiliary rows of the victim's feature space. Modules:

    reconstruction: a decoder trained on auxiliary data (wire value -> features), and
        white-box model inversion by optimisation (find x whose code or embedding matches).
    label_inference: a passive party infers labels from the gradients it receives (norm and
        direction scoring) and by model completion (a head on its own bottom model, trained
        on a few labelled rows).

Every figure is compared with a data-independent baseline that knows the label: the class-mean
input (reconstruction) and the majority-class rate (label inference).
"""

from __future__ import annotations

from aisec.privacy.attacks.label_inference import (
    gradient_label_attack,
    model_completion_attack,
)
from aisec.privacy.attacks.reconstruction import (
    ATTACKS,
    ReconResult,
    class_mean_baseline,
    decoder_attack,
    inversion_attack,
    score_reconstruction,
    wire_values,
)

__all__ = [
    "ATTACKS",
    "ReconResult",
    "class_mean_baseline",
    "decoder_attack",
    "gradient_label_attack",
    "inversion_attack",
    "model_completion_attack",
    "score_reconstruction",
    "wire_values",
]
