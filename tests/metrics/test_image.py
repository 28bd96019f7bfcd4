"""Image metrics: PSNR, SSIM and pairwise diversity."""

from __future__ import annotations

import numpy as np
import pytest

from aisec.errors import DataError
from aisec.metrics.image import pairwise_diversity, psnr, ssim


def test_psnr_known_value_and_identity() -> None:
    a = np.zeros((2, 8, 8))
    b = a + 0.1
    np.testing.assert_allclose(psnr(a, b), [20.0, 20.0])
    assert np.isinf(psnr(a, a)).all()
    with pytest.raises(DataError):
        psnr(a, b[:, :4])


def test_ssim_identity_and_noise() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((3, 32, 32))
    np.testing.assert_allclose(ssim(x, x), 1.0)
    assert (ssim(x, np.clip(x + rng.normal(0, 0.3, x.shape), 0, 1)) < 0.7).all()


def test_diversity_orders_sets() -> None:
    rng = np.random.default_rng(0)
    base = rng.random((1, 16, 16))
    same = np.repeat(base, 6, axis=0) + rng.normal(0, 0.01, (6, 16, 16))
    diverse = rng.random((6, 16, 16))
    assert pairwise_diversity(same)["rms"] < pairwise_diversity(diverse)["rms"]
    assert (
        pairwise_diversity(same)["one_minus_ssim"] < pairwise_diversity(diverse)["one_minus_ssim"]
    )
    with pytest.raises(DataError):
        pairwise_diversity(base)
