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
    with pytest.raises(
        ConfigError, match="lacks decode, encode, eps, which attack 'diffusion_regen'"
    ):
        make_attack("diffusion_regen", object(), 0.5)


def test_diffusion_regen_refuses_a_backbone_declaring_no_eps_before_any_work() -> None:
    class NoEps(_Toy):
        name = "no-eps"
        capabilities = frozenset({"encode", "decode", "generate", "invert"})

        def encode(self, x: np.ndarray) -> torch.Tensor:
            raise AssertionError("work started before the capability check")

    with pytest.raises(ConfigError, match="backbone 'no-eps' lacks eps"):
        make_attack("diffusion_regen", NoEps(), 0.5)


def test_diffusion_regen_is_ddim_from_the_noised_timestep() -> None:
    from aisec.diffusion.schedule import ddim_timesteps

    calls: list[int] = []

    class Spy(_Toy):
        def eps(self, x: torch.Tensor, t: int) -> torch.Tensor:
            calls.append(t)
            return super().eps(x, t)

    x = np.random.default_rng(0).random((2, 8, 8)).astype(np.float32)
    make_attack("diffusion_regen", Spy(), 0.2, steps=5).apply(x, torch.Generator().manual_seed(0))
    assert calls == [200, 160, 120, 80, 40, 0] == ddim_timesteps(6, 1000, start=200)


def test_diffusion_regen_of_rgb_by_a_grayscale_model_keeps_the_shape() -> None:
    class Gray(_Toy):
        def encode(self, x: np.ndarray) -> torch.Tensor:
            return super().encode(np.asarray(x).mean(1, keepdims=True))

    x = np.random.default_rng(0).random((2, 3, 8, 8)).astype(np.float32)
    y = make_attack("diffusion_regen", Gray(), 0.3, steps=2).apply(
        x, torch.Generator().manual_seed(0)
    )
    assert y.shape == x.shape
    np.testing.assert_array_equal(y[:, 0], y[:, 2])  # regenerated as gray


def test_compression_regen_drops_detail() -> None:
    rng = np.random.default_rng(0)
    clean = rng.random((64, 1, 6, 6)).astype(np.float32)
    codec = LinearAutoencoder.fit(clean)
    x = clean[:4]
    np.testing.assert_array_equal(make_attack("compression_regen", codec, 0.0).apply(x), x)
    near = make_attack("compression_regen", codec, 0.01).apply(x)
    far = make_attack("compression_regen", codec, 0.9).apply(x)
    assert np.abs(near - x).mean() < np.abs(far - x).mean()
    with pytest.raises(DataError, match="fitted on 6x6 planes; got images of shape"):
        make_attack("compression_regen", codec, 0.5).apply(
            rng.random((2, 1, 5, 5)).astype(np.float32)
        )


def test_compression_codec_fitted_on_gray_planes_codes_each_rgb_channel() -> None:
    rng = np.random.default_rng(0)
    codec = LinearAutoencoder.fit(rng.random((64, 1, 6, 6)).astype(np.float32))
    rgb = rng.random((3, 3, 6, 6)).astype(np.float32)
    y = make_attack("compression_regen", codec, 0.5).apply(rgb)
    assert y.shape == rgb.shape
    for c in range(3):  # each channel as if it were a grayscale image of its own
        alone = make_attack("compression_regen", codec, 0.5).apply(rgb[:, c : c + 1])
        np.testing.assert_allclose(y[:, c : c + 1], alone, atol=1e-6)


def test_compression_codec_refuses_planes_too_large_for_pca() -> None:
    with pytest.raises(DataError, match="at most 16384 pixels"):
        LinearAutoencoder.fit(np.zeros((2, 1, 129, 129), np.float32))


def test_adversarial_lowers_score_within_budget() -> None:
    x = np.full((2, 8, 8), 0.5, np.float32)

    def score(imgs: torch.Tensor) -> torch.Tensor:
        return imgs.mean(dim=(-2, -1))

    y = make_attack("adversarial", score, 8 / 255).apply(x, torch.Generator().manual_seed(0))
    assert np.abs(y - x).max() <= 8 / 255 + 1 / 255
    assert y.mean() < x.mean() - 4 / 255
    np.testing.assert_array_equal(make_attack("adversarial", score, 0).apply(x, None), x)
