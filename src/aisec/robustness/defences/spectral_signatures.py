"""Spectral-signature data filtering: drop the training points whose penultimate-layer features
project most strongly on each class's top singular vector, then retrain.

Backdoored points leave a strong direction in the feature covariance of the class they are
labelled as. Per class (by stored label), centre the features, take the top right-singular vector,
score each point by its squared projection and remove the ``removal * expected_rate`` highest
scores (Tran et al. remove 1.5 times the expected poison fraction). Against the random-label
availability attack the poisons are spread over all classes (about one class's share each), which
is the setting the paper reports such filters to be insufficient for.

Reference: Tran, Li, Madry, "Spectral Signatures in Backdoor Attacks", NeurIPS 2018.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from aisec.config import StrictModel
from aisec.robustness.availability.base import PoisonedData
from aisec.robustness.defences.base import DEFENCES, Defence, Defended
from aisec.robustness.training import train_model

__all__ = ["SpectralParams", "SpectralSignatures", "spectral_scores"]


class SpectralParams(StrictModel):
    """``expected_rate``: the poison fraction the defender budgets for; ``removal``: multiplier."""

    expected_rate: float = Field(0.01, gt=0.0, le=0.5)
    removal: float = Field(1.5, gt=0.0, le=10.0)


def spectral_scores(features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(N,) outlier scores: squared projection on the top singular vector of the label's class."""
    scores = np.zeros(len(labels))
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        f = features[idx] - features[idx].mean(axis=0)
        if len(idx) < 2:
            continue
        _, _, vt = np.linalg.svd(f, full_matrices=False)
        scores[idx] = (f @ vt[0]) ** 2
    return scores


@DEFENCES.register("spectral-signatures")
class SpectralSignatures(Defence):
    """Remove the top spectral-signature outliers per class (Tran et al.), then retrain."""

    Params = SpectralParams
    name = "spectral-signatures"

    def defend(self, data, n_classes, arch, train, model, attack, rng) -> Defended:
        import torch

        p: SpectralParams = self.params  # type: ignore[assignment]
        with torch.inference_mode():
            feats = model[:-1](torch.from_numpy(data.x)).numpy()
        scores = spectral_scores(feats, data.y)
        keep = np.ones(len(data.y), dtype=bool)
        for c in np.unique(data.y):
            idx = np.flatnonzero(data.y == c)
            k = int(np.ceil(p.removal * p.expected_rate * len(idx)))
            keep[idx[np.argsort(-scores[idx])[:k]]] = False
        removed = ~keep
        filtered = PoisonedData(data.x[keep], data.y[keep], data.poisoned[keep], data.pool)
        new = train_model(filtered, n_classes, arch, train, rng,
                          attack if filtered.poisoned.any() else None)
        n_poison = int(data.poisoned.sum())
        info = {
            "removed": int(removed.sum()),
            "poison_removed": int((removed & data.poisoned).sum()),
            "poison_total": n_poison,
            "poison_recall": float((removed & data.poisoned).sum() / n_poison) if n_poison else 1.0,
        }
        return Defended(new, {}, info)
