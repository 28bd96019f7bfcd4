"""The Stable Diffusion backbone on the tiny in-code pipeline: every capability, prediction types."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from aisec.diffusion.backbone import CAPABILITIES, capabilities_of, require
from aisec.errors import ConfigError, DependencyError


def _sd(tmp_path, prediction_type: str = "v_prediction"):  # noqa: ANN001, ANN202
    pytest.importorskip("transformers")
    from aisec.diffusion.stable_diffusion import StableDiffusionBackbone
    from aisec.diffusion.tiny_sd import tiny_sd_pipeline

    torch.set_num_threads(1)
    pipe = tiny_sd_pipeline(tmp_path, prediction_type=prediction_type, vae_steps=0)
    return StableDiffusionBackbone("tiny", device="cpu", size=16, pipeline=pipe), pipe


@pytest.mark.parametrize("ptype", ["epsilon", "v_prediction", "sample"])
def test_eps_converts_the_unet_output_by_prediction_type(tmp_path, ptype: str) -> None:
    bb, pipe = _sd(tmp_path, ptype)
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    t = 600
    emb = bb._embed("").expand(2, -1, -1)
    with torch.no_grad():
        raw = pipe.unet(x, torch.full((2,), t), encoder_hidden_states=emb).sample
    a = float(pipe.scheduler.alphas_cumprod[t])
    want = {
        "epsilon": raw,
        "v_prediction": a**0.5 * raw + (1 - a) ** 0.5 * x,
        "sample": (x - a**0.5 * raw) / (1 - a) ** 0.5,
    }[ptype]
    torch.testing.assert_close(bb.eps(x, t), want, atol=1e-5, rtol=1e-4)
    if ptype != "epsilon":  # the output is not read as epsilon
        assert not torch.allclose(bb.eps(x, t), raw, atol=1e-3)


def test_unsupported_prediction_type_is_refused_when_built(tmp_path) -> None:
    pytest.importorskip("transformers")
    from aisec.diffusion.stable_diffusion import StableDiffusionBackbone
    from aisec.diffusion.tiny_sd import tiny_sd_pipeline

    pipe = tiny_sd_pipeline(tmp_path, vae_steps=0)
    pipe.scheduler.register_to_config(prediction_type="flow")
    with pytest.raises(ConfigError, match="prediction_type .* got 'flow'"):
        StableDiffusionBackbone("tiny", device="cpu", size=16, pipeline=pipe)


def test_sd_has_every_capability_and_they_run(tmp_path) -> None:
    bb, _ = _sd(tmp_path)
    assert capabilities_of(bb) == CAPABILITIES
    require(bb, CAPABILITIES, "everything")
    assert bb.latent_shape == (4, 8, 8) and bb.image_shape == (16, 16, 3)
    z = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    img = bb.decode(z)
    assert img.shape == (2, 3, 16, 16) and img.dtype == np.float32
    assert bb.encode(img).shape == (2, 4, 8, 8)
    x = torch.from_numpy(img).requires_grad_(True)
    zt = bb.invert_differentiable(x, num_steps=2)
    (grad,) = torch.autograd.grad(zt.square().sum(), x)
    assert grad.shape == x.shape and float(grad.abs().sum()) > 0  # gradients reach the pixels


def test_diffusion_regen_runs_on_sd(tmp_path) -> None:
    from aisec.perturb.attacks import make_attack

    bb, _ = _sd(tmp_path)
    x = np.random.default_rng(0).random((2, 3, 16, 16)).astype(np.float32)
    y = make_attack("diffusion_regen", bb, 0.3, steps=2).apply(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and not np.allclose(y, x)


def test_missing_diffusers_names_the_extra(monkeypatch, tmp_path) -> None:
    from aisec.diffusion.pixel_ddpm import DDPMConfig, build_unet
    from aisec.diffusion.stable_diffusion import load_pipeline
    from aisec.diffusion.tiny_sd import tiny_sd_pipeline

    monkeypatch.setitem(sys.modules, "diffusers", None)
    for call in (
        lambda: load_pipeline("some/model", "cpu"),
        lambda: build_unet(DDPMConfig()),
        lambda: tiny_sd_pipeline(tmp_path),
    ):
        with pytest.raises(DependencyError, match=r"aisec\[diffusion\]"):
            call()


def test_missing_transformers_names_the_extra(monkeypatch, tmp_path) -> None:
    from aisec.diffusion.stable_diffusion import load_pipeline
    from aisec.diffusion.tiny_sd import tiny_sd_pipeline

    monkeypatch.setitem(sys.modules, "transformers", None)
    for call in (lambda: load_pipeline("some/model", "cpu"), lambda: tiny_sd_pipeline(tmp_path)):
        with pytest.raises(DependencyError, match=r"'transformers'.*aisec\[diffusion\]"):
            call()
