"""Defences: spectral signatures find a planted direction; both defences retrain and report."""

from __future__ import annotations

import numpy as np
import pytest

from aisec.errors import ConfigError
from aisec.robustness.availability import PoisonedData, make_attack
from aisec.robustness.defences import DEFENCES, cluster_outliers, make_defence, spectral_scores
from aisec.robustness.models import ArchConfig, init_model
from aisec.robustness.training import TrainParams


def test_spectral_scores_rank_planted_outliers_first(rng):
    feats = rng.normal(size=(200, 16))
    labels = np.repeat([0, 1], 100)
    planted = np.r_[np.arange(5), 100 + np.arange(5)]
    feats[planted] += 6.0 * np.eye(16)[3]
    scores = spectral_scores(feats, labels)
    for c in (0, 1):
        idx = np.flatnonzero(labels == c)
        top = set(idx[np.argsort(-scores[idx])[:5]])
        assert top == set(planted[labels[planted] == c])


def test_activation_clustering_flags_a_small_separate_cluster(rng):
    feats = rng.normal(size=(300, 16))
    labels = np.repeat([0, 1, 2], 100)
    planted = np.r_[np.arange(8), 200 + np.arange(8)]
    feats[planted] += 8.0 * np.eye(16)[5]
    flagged = cluster_outliers(feats, labels, dims=4, max_share=0.35, seed=0)
    assert set(np.flatnonzero(flagged)) == set(planted)


@pytest.mark.parametrize("name", ["spectral-signatures", "more-noise", "activation-clustering"])
@pytest.mark.parametrize("mode", ["noise", "ibp"])
def test_defences_retrain(rng, name, mode):
    arch = ArchConfig(height=8, width=8, hidden=16)
    x = rng.random((60, 1, 8, 8), dtype=np.float32)
    y = rng.integers(0, 10, 60)
    att = make_attack("random-label", rate=0.05)
    data = att.poison(x, y, 10, rng)
    train = TrainParams(mode=mode, epochs=1, batch_size=32)
    out = make_defence(name).defend(data, 10, arch, train, init_model(arch, 0), att, rng)
    assert out.model[-1].out_features == 10
    if name in ("spectral-signatures", "activation-clustering"):
        info = out.info
        assert info["poison_total"] == data.n_poison == 3
        assert info["poison_removed"] <= min(info["removed"], info["poison_total"])
        assert info["poison_recall"] == info["poison_removed"] / info["poison_total"]
        if name == "spectral-signatures":
            # ceil(removal 1.5 * expected rate 0.01 * class size) = 1 per class present
            assert info["removed"] == len(np.unique(data.y))
    elif mode == "noise":
        assert out.certifier_params == {"sigma": 0.5}
    else:
        assert out.info["train"]["epsilon"] == pytest.approx(0.2)
    assert isinstance(data, PoisonedData)


def test_registry_and_params():
    assert {"spectral-signatures", "more-noise", "activation-clustering"} <= set(DEFENCES.names())
    with pytest.raises(ConfigError, match="factor"):
        make_defence("more-noise", factor=0.5)
