"""The shared schedule: prediction-type conversion to epsilon, timesteps, the forward process."""

from __future__ import annotations

import pytest
import torch

from aisec.diffusion.schedule import (
    add_noise,
    ddim_timesteps,
    scaled_linear_alphas_cumprod,
    to_eps,
)
from aisec.errors import ParameterError


@pytest.mark.parametrize("t", [0, 17, 500, 999])
def test_v_prediction_and_sample_convert_to_the_true_eps(t: int) -> None:
    from diffusers import DDIMScheduler

    g = torch.Generator().manual_seed(t)
    x0, eps = torch.randn(3, 4, 8, 8, generator=g), torch.randn(3, 4, 8, 8, generator=g)
    sched = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    tt = torch.full((3,), t)
    xt = sched.add_noise(x0, eps, tt)
    v = sched.get_velocity(x0, eps, tt)  # diffusers' own definition of the v target
    a = float(sched.alphas_cumprod[t])
    torch.testing.assert_close(to_eps(v, xt, a, "v_prediction"), eps, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(to_eps(x0, xt, a, "sample"), eps, atol=2e-3, rtol=1e-3)
    assert to_eps(eps, xt, a, "epsilon") is eps


def test_unknown_prediction_type_is_refused() -> None:
    x = torch.zeros(1, 4, 2, 2)
    with pytest.raises(ParameterError, match="prediction_type"):
        to_eps(x, x, 0.5, "flow")


def test_scaled_linear_schedule_matches_diffusers() -> None:
    from diffusers import DDIMScheduler

    sched = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    torch.testing.assert_close(
        scaled_linear_alphas_cumprod().float(), sched.alphas_cumprod.float(), atol=1e-6, rtol=0
    )


def test_timesteps_from_a_start_descend_to_zero_without_repeats() -> None:
    assert ddim_timesteps(6, 1000, start=200) == [200, 160, 120, 80, 40, 0]
    assert ddim_timesteps(3, 1000) == [999, 500, 0]
    assert ddim_timesteps(5, 1000, start=2) == [2, 1, 0]  # rounded duplicates dropped
    with pytest.raises(ParameterError, match="start"):
        ddim_timesteps(3, 1000, start=1000)


def test_add_noise_is_the_forward_process() -> None:
    abar = scaled_linear_alphas_cumprod()
    z0 = torch.ones(4000, 1)
    zt = add_noise(z0, 700, abar, torch.Generator().manual_seed(0))
    a = float(abar[700])
    assert abs(float(zt.mean()) - a**0.5) < 0.05
    assert abs(float(zt.std()) - (1 - a) ** 0.5) < 0.05
