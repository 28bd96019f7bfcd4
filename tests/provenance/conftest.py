"""Session fixtures: the exact-score Gaussian-mixture backbone and seeded keys."""

from __future__ import annotations

import warnings

import pytest


@pytest.fixture(scope="session")
def gmm():
    import torch

    from aisec.provenance.pipeline import load_backbone

    # Two intra-op threads on a shared 2-core machine spin against each other (25x slower here).
    torch.set_num_threads(1)

    return load_backbone("gmm-digits")


@pytest.fixture()
def crypto(seed):
    from aisec.rng import InsecureRandom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return InsecureRandom(seed)
