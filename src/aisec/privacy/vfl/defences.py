"""Defences compared in one harness: what a party sends in place of its bottom model's output,
and what the active party does to the gradients it returns.

* ``none``: plain split VFL, float32 embeddings on the wire (the baseline);
* ``hash``: HashVFL, +-1 codes bit-packed on the wire (optional Laplace noise after hashing,
  which then travels as float32);
* ``noise``: embeddings clipped to L2 norm ``clip`` plus Gaussian noise of std
  ``noise_scale * clip`` (a Gaussian mechanism; epsilon reported at ``delta``);
* ``dp``: embeddings clipped to L1 norm ``clip`` plus Laplace noise calibrated to ``epsilon``
  per release (each training row is released once per epoch);
* ``gradperturb``: plain embeddings; the active party adds Gaussian noise of std
  ``grad_noise`` times the batch's RMS gradient to the gradients it sends back.

The privacy budget of ``noise`` and ``dp`` is accounted with Google's dp-accounting (its Renyi-DP
accountant), composing one release per epoch; the replace-one L2 / L1 sensitivity of a
clipped embedding is ``2 * clip``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from pydantic import Field

from aisec.config import StrictModel
from aisec.errors import DataError, DependencyError
from aisec.privacy.vfl.hashing import pack_codes, unpack_codes
from aisec.registry import Registry

__all__ = ["DEFENCES", "DefenceSpec", "encode", "decode", "perturb_grad", "epsilon_spent"]

DEFENCES: Registry[str] = Registry("vfl defence")
DEFENCES.add("none", "none", summary="plain split VFL: float32 embeddings (baseline)")
DEFENCES.add("hash", "hash", summary="HashVFL: BatchNorm, sign (STE), class codes, packed bits")
DEFENCES.add("noise", "noise", summary="L2-clipped embeddings plus Gaussian noise")
DEFENCES.add("dp", "dp", summary="L1-clipped embeddings plus Laplace noise at epsilon per epoch")
DEFENCES.add("gradperturb", "gradperturb", summary="Gaussian noise on the returned gradients")


class DefenceSpec(StrictModel):
    """The defence and its strength; every party must agree on it."""

    name: str = "hash"
    code_bits: int = Field(16, ge=2, le=1024, description="embedding / code length per party")
    hash_noise: float = Field(0.0, ge=0, description="hash: Laplace scale added after the sign")
    noise_scale: float = Field(0.5, ge=0, description="noise: std as a multiple of clip")
    clip: float = Field(1.0, gt=0, description="noise/dp: embedding norm bound")
    epsilon: float = Field(1.0, gt=0, description="dp: epsilon per release (one per epoch)")
    delta: float = Field(1e-5, gt=0, lt=1, description="delta at which epsilon is reported")
    grad_noise: float = Field(1.0, ge=0, description="gradperturb: noise std / RMS gradient")

    def check(self) -> None:
        DEFENCES.entry(self.name)  # UnknownNameError listing the valid names

    @property
    def hashed(self) -> bool:
        return self.name == "hash"


def _laplace(shape: tuple[int, ...], scale: float, gen: torch.Generator) -> torch.Tensor:
    u = torch.rand(shape, generator=gen) - 0.5
    return -scale * torch.sign(u) * torch.log1p(-2.0 * u.abs().clamp(max=0.5 - 1e-7))


def _clip(z: torch.Tensor, bound: float, p: int) -> torch.Tensor:
    norm = z.norm(p=p, dim=1, keepdim=True).clamp(min=1e-12)
    return z * torch.clamp(bound / norm, max=1.0)


def encode(
    spec: DefenceSpec, out: torch.Tensor, gen: torch.Generator
) -> tuple[torch.Tensor, dict[str, Any]]:
    """What a party sends for its bottom output ``out`` (B, bits).

    Returns ``(sent, fields)``: ``sent`` (B, bits) keeps the autograd graph back to ``out`` (the
    party backpropagates the gradient it receives through it); ``fields`` is the wire message.
    """
    if spec.name == "hash":
        if spec.hash_noise > 0:
            sent = out + _laplace(tuple(out.shape), spec.hash_noise, gen)
            return sent, {"e": sent.detach().numpy().astype(np.float32)}
        return out, {"c": pack_codes(out)}
    if spec.name == "noise":
        sent = _clip(out, spec.clip, 2) + spec.noise_scale * spec.clip * torch.randn(
            tuple(out.shape), generator=gen
        )
    elif spec.name == "dp":
        sent = _clip(out, spec.clip, 1) + _laplace(
            tuple(out.shape), 2.0 * spec.clip / spec.epsilon, gen
        )
    else:
        sent = out
    return sent, {"e": sent.detach().numpy().astype(np.float32)}


def decode(spec: DefenceSpec, fields: dict[str, Any], rows: int) -> torch.Tensor:
    """The (rows, bits) float32 tensor the active party sees from a party's message."""
    if "c" in fields:
        h = unpack_codes(fields["c"], spec.code_bits)
    elif "e" in fields:
        h = torch.from_numpy(np.asarray(fields["e"], dtype=np.float32))
    else:
        raise DataError("embedding message holds neither codes nor embeddings")
    if tuple(h.shape) != (rows, spec.code_bits):
        raise DataError(f"embedding of shape {list(h.shape)}; expected [{rows}, {spec.code_bits}]")
    if not torch.isfinite(h).all():
        raise DataError("embedding holds NaN or infinite values")
    return h


def perturb_grad(spec: DefenceSpec, grad: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """The gradient the active party returns (noised for ``gradperturb``)."""
    if spec.name != "gradperturb" or spec.grad_noise == 0:
        return grad
    rms = grad.pow(2).sum(dim=1).mean().sqrt()
    return grad + spec.grad_noise * rms * torch.randn(tuple(grad.shape), generator=gen)


def epsilon_spent(spec: DefenceSpec, releases: int) -> float | None:
    """Epsilon (at ``spec.delta``) after ``releases`` releases of each row, for noise and dp;
    None for defences without a DP guarantee."""
    if spec.name not in ("noise", "dp") or releases <= 0:
        return None
    if spec.name == "noise" and spec.noise_scale == 0:
        return float("inf")
    try:
        import dp_accounting as dpa
        from dp_accounting.rdp import rdp_privacy_accountant
    except ImportError:
        raise DependencyError("dp_accounting", "vfl") from None
    if spec.name == "noise":
        event = dpa.GaussianDpEvent(noise_multiplier=spec.noise_scale / 2.0)
    else:
        event = dpa.LaplaceDpEvent(noise_multiplier=1.0 / spec.epsilon)
    # Renyi DP: cheap at any noise level (a PLD at noise multiplier 0.025 exhausted 24 GB here)
    acc = rdp_privacy_accountant.RdpAccountant()
    acc.compose(dpa.SelfComposedDpEvent(event, releases))
    return float(acc.get_epsilon(spec.delta))
