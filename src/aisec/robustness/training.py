"""Training the small CNNs for a certifier: Gaussian noise augmentation (for randomized smoothing)
or interval-bound-propagation training (for the IBP certifier), optionally under an attack.

- ``mode="noise"``: cross-entropy on ``x + N(0, sigma^2)`` (Cohen et al.'s training, which makes the
  base classifier accurate under the noise the smoothed classifier integrates over).
- ``mode="ibp"``: ``kappa * CE(z(x)) + (1 - kappa) * CE(z_worst(x, eps))`` with epsilon ramped from 0
  and ``kappa`` from 1 to ``kappa_end`` (Gowal et al.).

An :class:`~aisec.robustness.availability.AvailabilityAttack` changes the labels of its poisoned
rows in every batch and may replace their loss; the clean rows are always trained as above.

Training is deterministic: the same data, recipe and seed give bit-identical weights on the same
machine and torch build. Model initialisation, batch order, noise and poison refreshes all come
from generators derived from ``rng``, and training runs under :func:`deterministic_torch`
(``TRAIN_THREADS`` intra-op threads, torch's deterministic algorithms): the thread count changes
how CPU kernels split their sums, and after tens of epochs those rounding differences grow into
visibly different weights.

References: Cohen et al., ICML 2019; Gowal et al., arXiv 1810.12715.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field

from aisec.config import StrictModel
from aisec.errors import DataError
from aisec.rng import make_rng, torch_generator
from aisec.robustness.availability.base import AvailabilityAttack, PoisonedData, TrainContext
from aisec.robustness.bounds import worst_case_logits
from aisec.robustness.models import ArchConfig, init_model

if TYPE_CHECKING:
    import torch

__all__ = ["TrainParams", "train_model", "mode_for", "deterministic_torch", "TRAIN_THREADS"]

# Intra-op threads of every training run, whatever the caller's setting (part of the recipe: see
# the module docstring). One thread is also the fastest setting for these small networks.
TRAIN_THREADS = 1


@contextlib.contextmanager
def deterministic_torch(threads: int = TRAIN_THREADS) -> Iterator[None]:
    """Run torch with ``threads`` intra-op threads and deterministic algorithms; restore both."""
    import torch

    threads_before = torch.get_num_threads()
    det_before = torch.are_deterministic_algorithms_enabled()
    warn_before = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(det_before, warn_only=warn_before)
        torch.set_num_threads(threads_before)


class TrainParams(StrictModel):
    """Training recipe of a small CNN."""

    mode: Literal["noise", "ibp"] = "noise"
    epochs: int = Field(20, ge=1, le=1000)
    batch_size: int = Field(64, ge=1, le=65536)
    lr: float = Field(1e-3, gt=0.0, le=1.0)
    weight_decay: float = Field(0.0, ge=0.0, le=1.0)
    sigma: float = Field(0.25, ge=0.0, le=4.0)
    epsilon: float = Field(0.1, ge=0.0, le=1.0)
    kappa_end: float = Field(0.5, ge=0.0, le=1.0)
    warmup: float = Field(0.1, ge=0.0, le=1.0)
    ramp: float = Field(0.4, ge=0.0, le=1.0)


def mode_for(family: str) -> str:
    """The training mode a certifier family needs: "noise" for smoothing, "ibp" for bounds."""
    return "ibp" if family == "bound" else "noise"


def _schedule(step: int, total: int, p: TrainParams) -> tuple[float, float]:
    warm, ramp = int(p.warmup * total), max(int(p.ramp * total), 1)
    frac = min(max((step - warm) / ramp, 0.0), 1.0)
    return p.epsilon * frac, 1.0 - (1.0 - p.kappa_end) * frac


def _clean_loss(model, xb, yb, p: TrainParams, eps: float, kappa: float, gen):
    import torch
    import torch.nn.functional as F  # noqa: N812

    if p.mode == "noise":
        noisy = xb + p.sigma * torch.randn(xb.shape, generator=gen, dtype=xb.dtype)
        return F.cross_entropy(model(noisy), yb, reduction="sum")
    loss = kappa * F.cross_entropy(model(xb), yb, reduction="sum")
    if kappa < 1.0 and eps > 0:
        loss = loss + (1 - kappa) * F.cross_entropy(
            worst_case_logits(model, xb, yb, eps), yb, reduction="sum"
        )
    return loss


def train_model(
    data: PoisonedData,
    n_classes: int,
    arch: ArchConfig,
    params: TrainParams,
    rng: np.random.Generator | int | None = None,
    attack: AvailabilityAttack | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> torch.nn.Sequential:
    """Train a fresh network on ``data`` (poisoned rows handled by ``attack``).

    Args:
        data: training images (N, C, H, W) float32 in [0, 1] with labels and the poison mask.
        n_classes: number of classes K.
        arch: the architecture to build.
        params: the training recipe.
        rng: seed or generator; model initialisation, batch order and noise derive from it.
        attack: the availability attack that produced the poisoned rows (None: no attack).
        progress: called with (fraction done, message) after each epoch.

    Returns:
        The trained network in eval mode.
    """
    if data.x.ndim != 4 or data.x.shape[0] != data.y.shape[0]:
        raise DataError(f"training data must be (N, C, H, W) with N labels; got {data.x.shape}")
    if data.poisoned.any() and attack is None:
        raise DataError("poisoned rows need the attack that made them")
    with deterministic_torch():
        return _train(data, n_classes, arch, params, make_rng(rng), attack, progress)


def _train(data, n_classes, arch, params, r, attack, progress):  # noqa: ANN001, ANN202
    import torch

    model = init_model(arch, int(r.integers(2**31)))
    gen = torch_generator(r)
    opt = torch.optim.Adam(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    x = torch.from_numpy(np.ascontiguousarray(data.x, dtype=np.float32))
    y = torch.from_numpy(data.y.astype(np.int64))
    pmask = torch.from_numpy(data.poisoned.astype(bool))
    pool = None if data.pool is None else torch.from_numpy(np.ascontiguousarray(data.pool))
    n = len(y)
    steps_per_epoch = (n + params.batch_size - 1) // params.batch_size
    total = params.epochs * steps_per_epoch
    step = 0
    model.train()
    for epoch in range(params.epochs):
        order = torch.randperm(n, generator=gen)
        for i in range(0, n, params.batch_size):
            idx = order[i : i + params.batch_size]
            xb, yb, pb = x[idx], y[idx].clone(), pmask[idx]
            eps, kappa = _schedule(step, total, params)
            extra = None
            if attack is not None and bool(pb.any()):
                xb = xb.clone()
                xb[pb] = attack.refresh(xb[pb], pool, gen)
                xb[pb], yb[pb] = attack.revisit(xb[pb], yb[pb], gen, n_classes)
                ctx = TrainContext(
                    params.mode, params.sigma, max(eps, 1e-3) if params.mode == "ibp" else eps, gen
                )
                extra = attack.loss(model, xb[pb], yb[pb], ctx)
            rows = ~pb if extra is not None else torch.ones_like(pb)
            loss = torch.zeros(())
            if bool(rows.any()):
                loss = _clean_loss(model, xb[rows], yb[rows], params, eps, kappa, gen)
            if extra is not None:
                loss = loss + extra * int(pb.sum())
            loss = loss / len(idx)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
        if progress is not None:
            progress((epoch + 1) / params.epochs, f"epoch {epoch + 1}/{params.epochs}")
    model.eval()
    return model
