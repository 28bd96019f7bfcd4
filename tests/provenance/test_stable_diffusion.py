"""The Stable Diffusion backbone's plumbing on a tiny random diffusers pipeline (no hub, no GPU).

Random weights say nothing about robustness; this checks shapes, the VAE/UNet calls, the
empty-prompt inversion path and that a watermark survives generate -> invert on the same pipeline.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from aisec.diffusion.stable_diffusion import StableDiffusionBackbone
from aisec.provenance.base import get_method


def _tiny_pipeline() -> SimpleNamespace:
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16,
        norm_num_groups=4,
        attention_head_dim=2,
    ).eval()
    vae = AutoencoderKL(
        block_out_channels=(8, 8, 8, 8),
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        norm_num_groups=4,
        sample_size=64,
    ).eval()

    class Tok:
        model_max_length = 7

        def __call__(self, texts, **kw):  # noqa: ANN001, ANN204
            ids = torch.tensor([[len(t) % 5] * 7 for t in texts])
            return SimpleNamespace(input_ids=ids)

    class Text(torch.nn.Module):
        def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor]:
            return (torch.sin(ids[..., None].float() + torch.arange(16.0)),)

    sched = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    return SimpleNamespace(
        unet=unet, vae=vae, tokenizer=Tok(), text_encoder=Text(), scheduler=sched
    )


def test_sd_backbone_generate_and_invert(crypto) -> None:
    torch.set_num_threads(1)
    bb = StableDiffusionBackbone(
        "tiny", device="cpu", prompt="a cat", guidance=3.0, size=64, pipeline=_tiny_pipeline()
    )
    assert bb.latent_shape == (4, 8, 8)
    tr = get_method("tree_ring", radius=2)
    key = tr.keygen(bb.latent_shape, crypto)
    z = tr.embed(key, 2, torch.Generator().manual_seed(0))
    imgs = bb.generate(z, num_steps=3)
    assert imgs.shape == (2, 3, 64, 64) and 0 <= imgs.min() and imgs.max() <= 1
    zr = bb.invert(imgs, num_steps=3)
    assert zr.shape == (2, 4, 8, 8) and torch.isfinite(zr).all()
    gray = bb.invert(imgs[:, :1], num_steps=2)  # grayscale input is promoted to RGB
    assert gray.shape == (2, 4, 8, 8)
    assert np.isfinite(tr.detect(key, zr).score).all()
