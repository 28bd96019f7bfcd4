"""A tiny Stable Diffusion pipeline built in code (no hub, no download), for tests and smoke runs.

The parts are diffusers' and transformers' own classes at toy sizes (diffusers' test-style dummy
components): a ``UNet2DConditionModel`` with cross-attention, an ``AutoencoderKL`` with one 2x
downsampling (16x16 images, 4x8x8 latents), a ``CLIPTextModel`` from a tiny config and a
``CLIPTokenizer`` over a byte-level vocabulary written to a temporary directory, with a
``DDIMScheduler`` on SD's scaled-linear schedule. Random weights would make a watermark test
vacuous, so two parts are made meaningful, and the docstring of each step says how:

* the UNet predicts ``v`` (``prediction_type="v_prediction"``) and its output layer is scaled by
  ``unet_out_scale``: a v-predictor that outputs ~0 is the exact denoiser for N(0, I) latents
  (eps = sqrt(1 - a) x_t), so this UNet is that denoiser plus a small random, prompt-dependent
  perturbation, and its samples have latent statistics like SD's (unit scale);
* the VAE is fitted for ``vae_steps`` Adam steps so that encode(decode(z)) ~ z on N(0, I) latents
  (a random VAE's round trip is uncorrelated with its input, so nothing could survive it).

It says nothing about the robustness of a real Stable Diffusion model; it exercises every call the
real one gets (text encoding, guidance, VAE, prediction-type conversion, inversion).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from aisec.errors import DependencyError

__all__ = ["tiny_sd_pipeline"]

_SPECIALS = ("<|startoftext|>", "<|endoftext|>")


def _tokenizer(directory: Path) -> Any:
    """A CLIP BPE tokenizer over single bytes (+ end-of-word forms) and a few merges."""
    from transformers import CLIPTokenizer

    # CLIP's byte-to-unicode table: printable Latin-1 bytes map to themselves, the rest above 255
    keep = [*range(33, 127), *range(161, 173), *range(174, 256)]
    chars = [chr(b) for b in keep] + [chr(256 + i) for i in range(256 - len(keep))]
    tokens = chars + [c + "</w>" for c in chars] + ["ca", "cat</w>", *_SPECIALS]
    vocab = {t: i for i, t in enumerate(tokens)}
    (directory / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (directory / "merges.txt").write_text("#version: 0.2\nc a\nca t</w>\n", encoding="utf-8")
    return CLIPTokenizer(
        str(directory / "vocab.json"), str(directory / "merges.txt"), model_max_length=8
    )


def tiny_sd_pipeline(
    directory: str | Path,
    seed: int = 0,
    prediction_type: str = "v_prediction",
    unet_out_scale: float = 0.1,
    vae_steps: int = 150,
) -> SimpleNamespace:
    """Build the tiny pipeline (``unet``, ``vae``, ``text_encoder``, ``tokenizer``, ``scheduler``).

    Args:
        directory: where the tokenizer's vocabulary files are written.
        seed: seeds the weights (inside a forked torch RNG; global state is left alone) and the
            VAE fit.
        prediction_type: the scheduler's and UNet's ``prediction_type``.
        unet_out_scale: factor on the UNet's output layer (1 = plain random init).
        vae_steps: Adam steps fitting the VAE round trip on N(0, I) latents (0 = random VAE).

    Raises:
        DependencyError: diffusers or transformers is missing.
    """
    import torch

    try:  # first: with peft installed, diffusers' model imports need transformers too
        from transformers import CLIPTextConfig, CLIPTextModel
    except ImportError:
        raise DependencyError("transformers", "diffusion") from None
    try:
        from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    except ImportError:
        raise DependencyError("diffusers", "diffusion") from None

    tok = _tokenizer(Path(directory))
    n_vocab = len(tok.get_vocab())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # diffusers and transformers initialise from the global generator
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
            block_out_channels=(8, 8),
            in_channels=3,
            out_channels=3,
            latent_channels=4,
            down_block_types=("DownEncoderBlock2D",) * 2,
            up_block_types=("UpDecoderBlock2D",) * 2,
            norm_num_groups=4,
            sample_size=16,
            scaling_factor=1.0,
        )
        text = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=n_vocab,
                hidden_size=16,
                intermediate_size=32,
                num_attention_heads=2,
                num_hidden_layers=2,
                max_position_embeddings=8,
                bos_token_id=n_vocab - 2,
                eos_token_id=n_vocab - 1,
                pad_token_id=n_vocab - 1,
            )
        ).eval()
    with torch.no_grad():
        unet.conv_out.weight.mul_(unet_out_scale)
        unet.conv_out.bias.mul_(unet_out_scale)
    _fit_vae(vae, vae_steps, seed)
    sched = DDIMScheduler(
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        prediction_type=prediction_type,
    )
    return SimpleNamespace(
        unet=unet, vae=vae.eval(), tokenizer=tok, text_encoder=text, scheduler=sched
    )


def _fit_vae(vae: Any, steps: int, seed: int) -> None:
    """Adam on |encode(decode(z)) - z|^2 for z ~ N(0, I) (posterior mode, images clamped)."""
    import torch

    if steps == 0:
        return
    gen = torch.Generator().manual_seed(seed + 1)
    opt = torch.optim.Adam(vae.parameters(), lr=3e-3)
    vae.train()
    for _ in range(steps):
        z = torch.randn((16, 4, 8, 8), generator=gen)
        img = vae.decode(z).sample.clamp(-1, 1)
        loss = ((vae.encode(img).latent_dist.mode() - z) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    vae.requires_grad_(False)
