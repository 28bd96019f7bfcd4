"""Advanced attacks: identity at strength 0, what each does, bad parameters."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aisec.errors import ConfigError, DataError
from aisec.perturb.attacks import ATTACKS, LinearAutoencoder, make_attack


class _Toy:
    """A one-Gaussian 'diffusion model' in pixel space: eps is exact for N(0.5, 0.01 I)."""

    def __init__(self) -> None:
        from aisec.diffusion.schedule import linear_alphas_cumprod

        self.alphas_cumprod = linear_alphas_cumprod()

    def encode(self, x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(x, np.float32) - 0.5)

    def decode(self, z: torch.Tensor) -> np.ndarray:
        return z.numpy() + 0.5

    def eps(self, x: torch.Tensor, t: int) -> torch.Tensor:
        a = float(self.alphas_cumprod[t])
        return x * (1 - a) ** 0.5 / (a * 0.01 + 1 - a)


def test_registered() -> None:
    assert set(ATTACKS.names()) >= {"diffusion_regen", "compression_regen", "adversarial"}


def test_diffusion_regen_identity_and_pull_to_model() -> None:
    x = np.random.default_rng(0).random((4, 8, 8)).astype(np.float32)
    g = torch.Generator().manual_seed(0)
    np.testing.assert_array_equal(make_attack("diffusion_regen", _Toy(), 0.0).apply(x, g), x)
    y = make_attack("diffusion_regen", _Toy(), 0.6).apply(x, g)
    assert y.shape == x.shape and y.std() < 0.5 * x.std()  # regenerated towards the model
    with pytest.raises(ConfigError, match="lacks"):
        make_attack("diffusion_regen", object(), 0.5)


def test_compression_regen_drops_detail() -> None:
    rng = np.random.default_rng(0)
    clean = rng.random((64, 1, 6, 6)).astype(np.float32)
    codec = LinearAutoencoder.fit(clean)
    x = clean[:4]
    np.testing.assert_array_equal(make_attack("compression_regen", codec, 0.0).apply(x), x)
    near = make_attack("compression_regen", codec, 0.01).apply(x)
    far = make_attack("compression_regen", codec, 0.9).apply(x)
    assert np.abs(near - x).mean() < np.abs(far - x).mean()
    with pytest.raises(DataError, match="shape"):
        make_attack("compression_regen", codec, 0.5).apply(
            rng.random((2, 1, 5, 5)).astype(np.float32)
        )


def test_adversarial_lowers_score_within_budget() -> None:
    x = np.full((2, 8, 8), 0.5, np.float32)

    def score(imgs: torch.Tensor) -> torch.Tensor:
        return imgs.mean(dim=(-2, -1))

    y = make_attack("adversarial", score, 8 / 255).apply(x, torch.Generator().manual_seed(0))
    assert np.abs(y - x).max() <= 8 / 255 + 1 / 255
    assert y.mean() < x.mean() - 4 / 255
    np.testing.assert_array_equal(make_attack("adversarial", score, 0).apply(x, None), x)
