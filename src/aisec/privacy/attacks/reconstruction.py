"""Feature reconstruction against a VFL party: a learned decoder and white-box model inversion.

* ``decoder``: the attacker computes the victim bottom model's outputs (after the victim's
  defence) on auxiliary rows of the victim's feature space and trains a decoder (wire value ->
  features); it then decodes the values it observed for the target rows. (He et al., "Model
  inversion attacks against collaborative inference", ACSAC 2019; HashVFL's ``frtest.py``.)
* ``inversion``: white-box optimisation of x in the feature box so that the bottom model's output
  matches the observed embedding (squared error) or code (a hinge on the pre-sign values, since
  sign() has no gradient). (He et al. 2019, white-box rMLE.)

Scores: MSE and SSIM for images (per slice), mean absolute per-feature error for tabular
data, each beside the class-mean baseline (the mean auxiliary row of the target's true class).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from aisec.errors import DataError
from aisec.privacy.vfl.defences import DefenceSpec, encode
from aisec.privacy.vfl.models import Bottom
from aisec.registry import Registry

__all__ = [
    "ATTACKS",
    "ReconResult",
    "wire_values",
    "decoder_attack",
    "inversion_attack",
    "class_mean_baseline",
    "score_reconstruction",
]

ATTACKS: Registry[Callable[..., np.ndarray]] = Registry("vfl reconstruction attack")


@dataclass(frozen=True)
class ReconResult:
    """Reconstruction quality against the class-mean baseline (lower error / higher SSIM wins).

    ``ssim`` and ``ssim_class_mean`` are None for tabular data.
    """

    mse: float
    mse_class_mean: float
    error: float
    error_class_mean: float
    ssim: float | None
    ssim_class_mean: float | None


def wire_values(
    bottom: Bottom, x: np.ndarray, spec: DefenceSpec, gen: torch.Generator
) -> torch.Tensor:
    """What the party sends for rows ``x`` (n, *slice): (n, bits) float32, no graph."""
    bottom.eval()
    with torch.no_grad():
        sent, _ = encode(spec, bottom(torch.from_numpy(np.asarray(x, np.float32))), gen)
    return sent.detach()


def class_mean_baseline(aux_x: np.ndarray, aux_y: np.ndarray, target_y: np.ndarray) -> np.ndarray:
    """Each target's guess is the mean auxiliary row of its true class: (n, *slice)."""
    out = np.empty((len(target_y), *aux_x.shape[1:]), np.float32)
    overall = aux_x.mean(axis=0)
    for c in np.unique(target_y):
        sel = aux_y == c
        out[target_y == c] = aux_x[sel].mean(axis=0) if sel.any() else overall
    return out


def score_reconstruction(
    truth: np.ndarray, recon: np.ndarray, baseline: np.ndarray, image: bool
) -> ReconResult:
    from aisec.metrics.image import ssim

    if truth.shape != recon.shape or truth.shape != baseline.shape:
        raise DataError(f"shapes differ: {truth.shape}, {recon.shape}, {baseline.shape}")
    mse = float(np.mean((truth - recon) ** 2))
    mse_b = float(np.mean((truth - baseline) ** 2))
    err = float(np.mean(np.abs(truth - recon)))
    err_b = float(np.mean(np.abs(truth - baseline)))
    s = sb = None
    if image:
        s = float(np.mean(ssim(truth.astype(np.float64), np.clip(recon, 0, 1).astype(np.float64))))
        sb = float(np.mean(ssim(truth.astype(np.float64), baseline.astype(np.float64))))
    return ReconResult(mse, mse_b, err, err_b, s, sb)


class _Decoder(nn.Module):
    def __init__(self, bits: int, out_shape: tuple[int, ...], hidden: int, bounded: bool) -> None:
        super().__init__()
        d = int(np.prod(out_shape))
        self.out_shape, self.bounded = out_shape, bounded
        self.net = nn.Sequential(
            nn.Linear(bits, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, d),
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        z = self.net(h)
        z = torch.sigmoid(z) if self.bounded else z
        return z.view(-1, *self.out_shape)


@ATTACKS.register("decoder", summary="decoder trained on auxiliary rows (wire value -> features)")
def decoder_attack(
    bottom: Bottom,
    spec: DefenceSpec,
    aux_x: np.ndarray,
    observed: torch.Tensor,
    *,
    rng: np.random.Generator,
    epochs: int = 60,
    hidden: int = 256,
    lr: float = 1e-3,
    batch_size: int = 64,
) -> np.ndarray:
    """Reconstruct the victim's features for the ``observed`` wire values (n, bits).

    Args:
        bottom: the victim's bottom model (known to the attacker).
        spec: the victim's defence (the attacker applies it to its auxiliary rows, noise too).
        aux_x: (m, *slice) auxiliary rows in the victim's feature space, values in [0, 1].
        observed: (n, bits) what the victim sent for the target rows.
    Returns:
        (n, *slice) float32 reconstructions.
    """
    g = torch.Generator()
    g.manual_seed(int(rng.integers(2**62)))
    shape = tuple(aux_x.shape[1:])
    bounded = bool(aux_x.min() >= 0 and aux_x.max() <= 1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(rng.integers(2**62)))
        dec = _Decoder(spec.code_bits, shape, hidden, bounded)
    opt = torch.optim.Adam(dec.parameters(), lr=lr)
    xa = torch.from_numpy(np.asarray(aux_x, np.float32))
    for _ in range(epochs):
        # a fresh draw of the defence's noise each pass: the attacker knows the mechanism
        ha = wire_values(bottom, aux_x, spec, g)
        order = torch.randperm(len(xa), generator=g)
        for i in range(0, len(xa), batch_size):
            idx = order[i : i + batch_size]
            loss = nn.functional.mse_loss(dec(ha[idx]), xa[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    dec.eval()
    with torch.no_grad():
        return dec(observed).numpy().astype(np.float32)


@ATTACKS.register("inversion", summary="white-box optimisation of x to match the code/embedding")
def inversion_attack(
    bottom: Bottom,
    spec: DefenceSpec,
    aux_x: np.ndarray,
    observed: torch.Tensor,
    *,
    rng: np.random.Generator,
    steps: int = 300,
    lr: float = 0.05,
    tv: float = 0.01,
) -> np.ndarray:
    """Find x in the feature box whose output matches ``observed``; starts at the aux mean.

    Codes (+-1) are matched by a hinge on the pre-sign values, ``relu(1 - h * bn(z(x)))``;
    embeddings by squared error. Images get a small total-variation prior (weight ``tv``).
    """
    del rng  # deterministic: starts from the auxiliary mean
    shape = tuple(aux_x.shape[1:])
    bottom.eval()
    for p in bottom.parameters():
        p.requires_grad_(False)
    lo, hi = float(np.min(aux_x)), float(np.max(aux_x))
    start = np.clip(np.asarray(aux_x, np.float32).mean(axis=0), lo + 1e-3, hi - 1e-3)
    u0 = np.log((start - lo) / (hi - start))  # logit of the start inside the box
    u = torch.tensor(np.broadcast_to(u0, (observed.shape[0], *shape)).copy(), requires_grad=True)
    opt = torch.optim.Adam([u], lr=lr)
    codes = bottom.hashed and spec.hash_noise == 0
    for _ in range(steps):
        x = lo + (hi - lo) * torch.sigmoid(u)
        if codes:
            z = bottom.pre_hash(x)
            loss = torch.relu(1.0 - observed * z).mean()
        else:
            z = bottom.pre_hash(x) if bottom.hashed else bottom(x)
            loss = ((z - observed) ** 2).mean()
        if tv > 0 and len(shape) == 2:
            loss = loss + tv * (
                (x[:, 1:, :] - x[:, :-1, :]).abs().mean()
                + (x[:, :, 1:] - x[:, :, :-1]).abs().mean()
            )
        opt.zero_grad()
        loss.backward()
        opt.step()
    for p in bottom.parameters():
        p.requires_grad_(True)
    with torch.no_grad():
        return (lo + (hi - lo) * torch.sigmoid(u)).numpy().astype(np.float32)
