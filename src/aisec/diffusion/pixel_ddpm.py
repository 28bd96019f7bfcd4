"""A small DDPM trained here on Fashion-MNIST, in a pixel-unshuffled 4x16x16 "latent" space.

The 28x28 images are padded to 32x32, scaled to [-1, 1] and pixel-unshuffled (space-to-depth,
factor 2) into 4x16x16 tensors. Pixel-unshuffle is a lossless, fixed "VAE": it gives the latent the
4-channel layout of Stable Diffusion's latent that Tree-Ring (ring in one channel's FFT) and
Gaussian Shading (per-channel bit tiling) assume, while costing nothing. The noise predictor is a
diffusers ``UNet2DModel`` trained with the DDPM epsilon loss (linear betas, T = 1000) and an EMA of
the weights; sampling and inversion are DDIM (:mod:`aisec.diffusion.schedule`) with
the predicted x_0 clamped to [-1, 1] at every step (diffusers' ``clip_sample``, the default of its
pixel-space schedulers): on this small model it raises the sign agreement of 10-step inversion of
8-bit samples with their initial noise from 0.65 to 0.80 (measured after 800 training steps).

The shipped weights (``diffusion/weights/ddpm_fmnist.safetensors``, fp16) are rebuilt with
``aisec watermark train-ddpm``.

Reference: Ho, Jain, Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aisec.config import StrictModel
from aisec.diffusion.backbone import DDIMBackbone
from aisec.errors import DependencyError, InputFileError, ParameterError

if TYPE_CHECKING:
    import torch

__all__ = [
    "DDPMConfig",
    "DDPMTrainConfig",
    "PixelDDPM",
    "build_unet",
    "train_ddpm",
    "DEFAULT_WEIGHTS",
    "images_to_model_space",
]

DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "ddpm_fmnist.safetensors"


class DDPMConfig(StrictModel):
    """Architecture and schedule of the pixel-unshuffled DDPM."""

    image_size: int = 32
    unshuffle: int = 2
    block_out_channels: tuple[int, ...] = (32, 64, 64)
    layers_per_block: int = 1
    norm_num_groups: int = 8
    num_train_steps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        s = self.image_size // self.unshuffle
        return (self.unshuffle**2, s, s)


class DDPMTrainConfig(StrictModel):
    """Training recipe (the defaults built the shipped weights)."""

    steps: int = 4000
    batch_size: int = 32
    lr: float = 1e-3
    warmup: int = 200
    ema_decay: float = 0.995
    max_minutes: float = 45.0
    threads: int = 1


def build_unet(cfg: DDPMConfig) -> Any:
    """The diffusers ``UNet2DModel`` noise predictor for ``cfg`` (random init)."""
    try:
        from diffusers import UNet2DModel
    except ImportError:
        raise DependencyError("diffusers", "diffusion") from None

    c, s, _ = cfg.latent_shape
    n = len(cfg.block_out_channels)
    return UNet2DModel(
        sample_size=s,
        in_channels=c,
        out_channels=c,
        layers_per_block=cfg.layers_per_block,
        block_out_channels=tuple(cfg.block_out_channels),
        down_block_types=("DownBlock2D",) * n,
        up_block_types=("UpBlock2D",) * n,
        norm_num_groups=cfg.norm_num_groups,
    )


def images_to_model_space(images: np.ndarray, cfg: DDPMConfig) -> torch.Tensor:
    """uint8 grayscale images (N, H, W) with H, W <= image_size -> (N, C, s, s) float in [-1, 1].

    Smaller images are centred on a black canvas (Fashion-MNIST 28x28 -> 32x32).
    """
    import torch
    import torch.nn.functional as F

    x = np.asarray(images)
    if x.ndim != 3:
        raise ParameterError("images", "must have shape (N, H, W)", x.shape)
    n, h, w = x.shape
    if h > cfg.image_size or w > cfg.image_size:
        raise ParameterError("images", f"must be at most {cfg.image_size} pixels a side", (h, w))
    canvas = np.zeros((n, cfg.image_size, cfg.image_size), dtype=np.float32)
    top, left = (cfg.image_size - h) // 2, (cfg.image_size - w) // 2
    canvas[:, top : top + h, left : left + w] = x.astype(np.float32) / 255.0
    t = torch.from_numpy(canvas * 2.0 - 1.0)[:, None]
    return F.pixel_unshuffle(t, cfg.unshuffle)


class PixelDDPM(DDIMBackbone):
    """The trained DDPM as a diffusion backbone: ``generate`` from noise, ``invert`` to noise.

    Images at the boundary are float arrays (B, 1, H, W) in [0, 1] (grayscale, channel first);
    RGB input is reduced to luminance. Sampling and inversion clamp the predicted x_0 to [-1, 1].

    Args:
        unet: the noise predictor (a diffusers ``UNet2DModel``) in eval mode.
        cfg: its architecture and schedule.
    """

    name = "ddpm-fmnist"
    channels = 1
    clip = 1.0

    def __init__(self, unet: Any, cfg: DDPMConfig) -> None:
        from aisec.diffusion.schedule import linear_alphas_cumprod

        self.unet = unet.eval()
        self.cfg = cfg
        self.size = cfg.image_size
        self.alphas_cumprod = linear_alphas_cumprod(
            cfg.num_train_steps, cfg.beta_start, cfg.beta_end
        )

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return self.cfg.latent_shape

    @classmethod
    def load(cls, path: str | Path | None = None) -> PixelDDPM:
        """Load weights written by :func:`train_ddpm` (default: the shipped ones)."""
        import torch
        from safetensors import safe_open

        from aisec.io import load_safetensors

        p = Path(path) if path is not None else DEFAULT_WEIGHTS
        tensors = load_safetensors(p)
        try:
            with safe_open(str(p), framework="pt") as f:
                meta = f.metadata() or {}
            cfg = DDPMConfig(**json.loads(meta["config"]))
        except (KeyError, ValueError) as exc:
            raise InputFileError(p, f"not an aisec DDPM weight file ({exc})") from None
        unet = build_unet(cfg)
        try:
            unet.load_state_dict({k: v.to(torch.float32) for k, v in tensors.items()})
        except RuntimeError:
            raise InputFileError(p, "weights do not match the DDPM architecture") from None
        return cls(unet, cfg)

    def _eps(self, x: torch.Tensor, t: int) -> torch.Tensor:
        import torch

        return self.unet(x, torch.full((x.shape[0],), t, dtype=torch.long)).sample

    def _to_model(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, 1, 32, 32) in [0, 1] -> model space (B, 4, 16, 16) in [-1, 1]."""
        import torch.nn.functional as F

        return F.pixel_unshuffle(x * 2.0 - 1.0, self.cfg.unshuffle)

    def _from_model(self, z0: torch.Tensor) -> torch.Tensor:
        """Model space (B, 4, 16, 16) -> images (B, 1, 32, 32) in [0, 1]."""
        import torch.nn.functional as F

        return (F.pixel_shuffle(z0, self.cfg.unshuffle).clamp(-1, 1) + 1) / 2


def train_ddpm(
    images: np.ndarray,
    out: str | Path,
    cfg: DDPMConfig | None = None,
    train: DDPMTrainConfig | None = None,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Train the DDPM on uint8 images (N, H, W) and write fp16 EMA weights as safetensors.

    Checkpoints are written atomically every 250 steps, so an interrupted run leaves usable
    weights. Stops after ``train.steps`` steps or ``train.max_minutes`` minutes.
    """

    import torch

    cfg = cfg or DDPMConfig()
    train = train or DDPMTrainConfig()
    threads = torch.get_num_threads()
    torch.set_num_threads(train.threads)
    try:
        return _train(images, out, cfg, train, seed, log)
    finally:
        torch.set_num_threads(threads)


def _train(
    images: np.ndarray,
    out: str | Path,
    cfg: DDPMConfig,
    train: DDPMTrainConfig,
    seed: int,
    log: Callable[[str], None] | None,
) -> Path:
    import copy

    import torch

    from aisec.diffusion.schedule import linear_alphas_cumprod
    from aisec.io import save_safetensors

    gen = torch.Generator().manual_seed(seed)
    data = images_to_model_space(images, cfg)
    # diffusers initialises weights from torch's global generator: seed it inside a fork, so the
    # caller's global random state is left as it was
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = build_unet(cfg).train()
    ema = copy.deepcopy(unet).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    opt = torch.optim.AdamW(unet.parameters(), lr=train.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: (
            min(1.0, (s + 1) / train.warmup)
            * 0.5
            * (1 + np.cos(np.pi * min(s, train.steps) / train.steps))
            + 0.02
        ),
    )
    abar = linear_alphas_cumprod(cfg.num_train_steps, cfg.beta_start, cfg.beta_end).float()
    start = time.time()
    meta = {"config": cfg.model_dump_json(), "train": train.model_dump_json(), "seed": str(seed)}
    p = Path(out)
    p.parent.mkdir(parents=True, exist_ok=True)
    running = None
    for step in range(1, train.steps + 1):
        idx = torch.randint(0, data.shape[0], (train.batch_size,), generator=gen)
        x0 = data[idx]
        if torch.rand((), generator=gen) < 0.5:  # horizontal flip in image space
            x0 = torch.nn.functional.pixel_unshuffle(
                torch.nn.functional.pixel_shuffle(x0, cfg.unshuffle).flip(-1), cfg.unshuffle
            )
        t = torch.randint(0, cfg.num_train_steps, (train.batch_size,), generator=gen)
        noise = torch.randn(x0.shape, generator=gen)
        a = abar[t].view(-1, 1, 1, 1)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
        loss = torch.nn.functional.mse_loss(unet(xt, t).sample, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        sched.step()
        decay = min(train.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, pu in zip(ema.parameters(), unet.parameters(), strict=True):
                pe.mul_(decay).add_(pu, alpha=1 - decay)
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        done = (time.time() - start) / 60 > train.max_minutes or step == train.steps
        if step % 100 == 0 or done:
            meta["steps"] = str(step)
            save_safetensors(p, {k: v.half() for k, v in ema.state_dict().items()}, meta)
            if log:
                log(f"step {step} loss {running:.4f} {time.time() - start:.0f}s")
        if done:
            break
    return p
