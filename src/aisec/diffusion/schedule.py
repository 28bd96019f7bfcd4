"""DDIM sampling and DDIM inversion over a noise-prediction model (shared by every backbone).

DDIM (Song et al., ICLR 2021) is deterministic, so a generated image can be mapped back to the
initial noise z_T by running the same update backwards ("DDIM inversion"; Mokady et al. 2023).
The backward update needs eps at the *next* (noisier) step, which is unknown; the usual
approximation evaluates eps at the current step. ``refine`` > 0 replaces it by a fixed-point
iteration (Pan et al., "Effective real image editing with accelerated iterative diffusion
inversion", ICCV 2023; Hong et al., "On exact inversion of DPM-solvers", CVPR 2024), which makes
the inversion of an unmodified sample exact up to the network's Lipschitz constant.

Reference: Song, Meng, Ermon, "Denoising Diffusion Implicit Models", ICLR 2021.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from aisec.errors import ParameterError

if TYPE_CHECKING:
    import torch

__all__ = [
    "linear_alphas_cumprod",
    "scaled_linear_alphas_cumprod",
    "ddim_timesteps",
    "ddim_sample",
    "ddim_invert",
    "add_noise",
    "to_eps",
    "PREDICTION_TYPES",
    "EpsFn",
]

#: What a noise-prediction network may output (diffusers' ``scheduler.config.prediction_type``).
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")

EpsFn = Callable[["torch.Tensor", int], "torch.Tensor"]


def linear_alphas_cumprod(
    num_train_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02
) -> torch.Tensor:
    """Cumulative products of (1 - beta_t) for DDPM's linear beta schedule, float64 (T,)."""
    import torch

    betas = torch.linspace(beta_start, beta_end, num_train_steps, dtype=torch.float64)
    return torch.cumprod(1.0 - betas, dim=0)


def scaled_linear_alphas_cumprod(
    num_train_steps: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.012
) -> torch.Tensor:
    """Stable Diffusion's "scaled_linear" schedule (betas linear in sqrt space), float64 (T,)."""
    import torch

    betas = (
        torch.linspace(beta_start**0.5, beta_end**0.5, num_train_steps, dtype=torch.float64) ** 2
    )
    return torch.cumprod(1.0 - betas, dim=0)


def ddim_timesteps(num_steps: int, num_train_steps: int, start: int | None = None) -> list[int]:
    """Evenly spaced training timesteps, descending from ``start`` (default T - 1) to 0.

    With ``start`` below ``num_steps - 1`` some rounded timesteps coincide; duplicates are dropped,
    so fewer than ``num_steps`` timesteps come back.
    """
    if not 1 <= num_steps <= num_train_steps:
        raise ParameterError("num_steps", f"must be in [1, {num_train_steps}]", num_steps)
    top = num_train_steps - 1 if start is None else start
    if not 0 <= top <= num_train_steps - 1:
        raise ParameterError("start", f"must be in [0, {num_train_steps - 1}]", start)
    if num_steps == 1:
        return [top]
    step = top / (num_steps - 1)
    ts = [round(top - i * step) for i in range(num_steps)]
    return sorted(set(ts), reverse=True)


def add_noise(
    z0: torch.Tensor, t: int, alphas_cumprod: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """The forward process q(z_t | z_0): sqrt(a_t) z_0 + sqrt(1 - a_t) n, n ~ N(0, I) from ``generator``."""
    import torch

    a = float(alphas_cumprod[t])
    noise = torch.randn(z0.shape, generator=generator).to(z0.device, z0.dtype)
    return a**0.5 * z0 + (1 - a) ** 0.5 * noise


def to_eps(
    output: torch.Tensor, x: torch.Tensor, alpha_bar: float, prediction_type: str
) -> torch.Tensor:
    """Convert a network's output at x_t (noise level ``alpha_bar``) to its implied epsilon.

    With x_t = sqrt(a) x_0 + sqrt(1 - a) eps and v = sqrt(a) eps - sqrt(1 - a) x_0:
    ``epsilon``: eps = output; ``v_prediction``: eps = sqrt(a) v + sqrt(1 - a) x_t;
    ``sample`` (output is x_0): eps = (x_t - sqrt(a) x_0) / sqrt(1 - a).
    """
    if prediction_type == "epsilon":
        return output
    if prediction_type == "v_prediction":
        return alpha_bar**0.5 * output + (1.0 - alpha_bar) ** 0.5 * x
    if prediction_type == "sample":
        if alpha_bar >= 1.0:
            raise ParameterError("alpha_bar", "must be < 1 for prediction_type 'sample'", alpha_bar)
        return (x - alpha_bar**0.5 * output) / (1.0 - alpha_bar) ** 0.5
    raise ParameterError("prediction_type", f"must be one of {PREDICTION_TYPES}", prediction_type)


def _step(
    x: torch.Tensor,
    eps: torch.Tensor,
    a_from: float,
    a_to: float,
    clip: float | None = None,
    recompute_eps: bool = True,
) -> torch.Tensor:
    """Move x from noise level a_from (alpha-bar) to a_to along the DDIM (eta=0) trajectory.

    ``clip`` clamps the predicted x_0 to [-clip, clip] (diffusers' ``clip_sample`` for pixel-space
    models); when sampling, eps is then recomputed from the clamped x_0, as diffusers does.
    """
    x0 = (x - (1.0 - a_from) ** 0.5 * eps) / a_from**0.5 if a_from < 1.0 else x
    if clip is not None:
        x0 = x0.clamp(-clip, clip)
        if recompute_eps and a_from < 1.0:
            eps = (x - a_from**0.5 * x0) / (1.0 - a_from) ** 0.5
    return a_to**0.5 * x0 + (1.0 - a_to) ** 0.5 * eps


def ddim_sample(
    eps_fn: EpsFn,
    z_t: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    num_steps: int,
    clip: float | None = None,
    start: int | None = None,
) -> torch.Tensor:
    """Deterministic DDIM sampling (eta = 0) from z_T (or z_start) to x_0.

    Args:
        eps_fn: noise predictor ``eps_fn(x, t) -> eps`` with x, eps of shape (B, C, H, W).
        z_t: initial noise, (B, C, H, W) float32, standard normal.
        alphas_cumprod: (T,) float64 alpha-bar of the training schedule.
        num_steps: number of DDIM steps.
        clip: clamp predicted x_0 to [-clip, clip] at every step (None = off).
        start: the timestep ``z_t`` is at (default T - 1; SDEdit-style regeneration starts lower).

    Returns:
        x_0 estimate, (B, C, H, W) float32 (model space, e.g. [-1, 1] pixels or VAE latents).
    """
    ts = ddim_timesteps(num_steps, len(alphas_cumprod), start)
    a = alphas_cumprod.tolist()
    x = z_t
    for i, t in enumerate(ts):
        a_prev = a[ts[i + 1]] if i + 1 < len(ts) else 1.0
        x = _step(x, eps_fn(x, t), a[t], a_prev, clip)
    return x


def ddim_invert(
    eps_fn: EpsFn,
    x0: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    num_steps: int,
    refine: int = 0,
    clip: float | None = None,
) -> torch.Tensor:
    """DDIM inversion: map x_0 back to the initial noise z_T of the same DDIM schedule.

    Args:
        eps_fn: noise predictor as in :func:`ddim_sample`.
        x0: (B, C, H, W) float32 clean sample in model space.
        alphas_cumprod: (T,) float64 alpha-bar.
        num_steps: number of DDIM steps (should match generation; the detector does not know it
            for real images and uses its own default).
        refine: fixed-point iterations per step (0 = the classic approximate inversion).
        clip: clamp the x_0 implied at each step to [-clip, clip] (match the sampler's setting).

    Returns:
        z_T estimate, (B, C, H, W) float32.
    """
    if refine < 0:
        raise ParameterError("refine", "must be >= 0", refine)
    ts = list(reversed(ddim_timesteps(num_steps, len(alphas_cumprod))))
    a = alphas_cumprod.tolist()
    x = x0
    # Sampling went t_k -> t_{k-1} using eps(x_{t_k}, t_k); the last step went t_0 -> clean (a=1).
    levels = [(1.0, ts[0])] + [(a[ts[i]], ts[i + 1]) for i in range(len(ts) - 1)]
    for a_from, t_to in levels:
        a_to = a[t_to]
        # First guess: eps evaluated at the current point with the target's timestep.
        eps = eps_fn(x, t_to)
        x_next = _step(x, eps, a_from, a_to, clip, recompute_eps=False)
        for _ in range(refine):
            eps = eps_fn(x_next, t_to)
            x_next = _step(x, eps, a_from, a_to, clip, recompute_eps=False)
        x = x_next
    return x
