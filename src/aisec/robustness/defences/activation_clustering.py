"""Activation-clustering data filtering: split each class's penultimate-layer activations into two
clusters and drop the smaller one when it is small enough to be a poison, then retrain.

Poisoned points that share a trigger activate the network differently from the clean points they
are labelled with. Per class (by stored label), reduce the activations to ``dims`` principal
components, run 2-means, and remove the smaller cluster if its share of the class is below
``max_share`` (the "relative size" analysis; IBM ART's defaults: 10 dimensions, 2 clusters,
0.35). Against the availability attacks the poisons carry random labels, so each class holds only
about one class's share of them.

Reference: Chen et al., "Detecting Backdoor Attacks on Deep Neural Networks by Activation
Clustering", SafeAI@AAAI 2019.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from aisec.config import StrictModel
from aisec.robustness.availability.base import PoisonedData
from aisec.robustness.defences.base import DEFENCES, Defence, Defended
from aisec.robustness.training import train_model

__all__ = ["ClusteringParams", "ActivationClustering", "cluster_outliers"]


class ClusteringParams(StrictModel):
    """``dims``: principal components kept; ``max_share``: largest class share flagged."""

    dims: int = Field(10, ge=1, le=1024)
    max_share: float = Field(0.35, gt=0.0, lt=0.5)


def cluster_outliers(
    features: np.ndarray, labels: np.ndarray, dims: int, max_share: float, seed: int
) -> np.ndarray:
    """(N,) bool: members of a class's smaller 2-means cluster whose share is below ``max_share``."""
    from sklearn.cluster import KMeans

    flagged = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if len(idx) < 4:
            continue
        f = features[idx] - features[idx].mean(axis=0)
        _, _, vt = np.linalg.svd(f, full_matrices=False)
        z = f @ vt[: min(dims, vt.shape[0])].T
        assign = KMeans(2, n_init=10, random_state=seed).fit_predict(z)
        small = int(np.argmin(np.bincount(assign, minlength=2)))
        if (assign == small).mean() < max_share:
            flagged[idx[assign == small]] = True
    return flagged


@DEFENCES.register("activation-clustering")
class ActivationClustering(Defence):
    """Remove each class's small activation cluster (Chen et al.), then retrain."""

    Params = ClusteringParams
    name = "activation-clustering"

    def defend(self, data, n_classes, arch, train, model, attack, rng) -> Defended:
        import torch

        p: ClusteringParams = self.params  # type: ignore[assignment]
        with torch.inference_mode():
            feats = model[:-1](torch.from_numpy(data.x)).numpy()
        removed = cluster_outliers(feats, data.y, p.dims, p.max_share, int(rng.integers(2**31)))
        keep = ~removed
        filtered = PoisonedData(data.x[keep], data.y[keep], data.poisoned[keep], data.pool)
        new = train_model(
            filtered, n_classes, arch, train, rng, attack if filtered.poisoned.any() else None
        )
        n_poison = int(data.poisoned.sum())
        info = {
            "removed": int(removed.sum()),
            "poison_removed": int((removed & data.poisoned).sum()),
            "poison_total": n_poison,
            "poison_recall": float((removed & data.poisoned).sum() / n_poison) if n_poison else 1.0,
        }
        return Defended(new, {}, info)
