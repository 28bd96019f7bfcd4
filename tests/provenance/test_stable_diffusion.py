"""A watermark through a tiny Stable Diffusion pipeline built in code: generate -> 8-bit -> invert
-> detect, with text conditioning and guidance at generation and the empty prompt at detection.

The pipeline (:mod:`aisec.diffusion.tiny_sd`) is diffusers' and transformers' own classes at toy
sizes; its UNet is a v-predictor close to the exact denoiser of N(0, I) latents and its VAE is
fitted for a round trip. Survival here shows the plumbing is right, not that SD is robust.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aisec.provenance.base import get_method
from aisec.provenance.pipeline import detect, generate

N, STEPS = 8, 10


def _backbone(tmp_path, **kwargs):  # noqa: ANN001, ANN003, ANN202
    pytest.importorskip("transformers")
    from aisec.diffusion.stable_diffusion import StableDiffusionBackbone
    from aisec.diffusion.tiny_sd import tiny_sd_pipeline

    torch.set_num_threads(1)
    pipe = tiny_sd_pipeline(tmp_path, **kwargs)
    return StableDiffusionBackbone(
        "tiny", device="cpu", prompt="a cat", guidance=3.0, size=16, pipeline=pipe
    )


def _scores(bb, crypto, seed):  # noqa: ANN001, ANN202
    gs = get_method("gaussian_shading")
    key = gs.keygen(bb.latent_shape, crypto)
    gen = torch.Generator().manual_seed(seed)
    wm = generate(bb, gs, key, N, gen, STEPS)
    clean = generate(bb, None, None, N, gen, STEPS)
    assert wm.images.shape == (N, 3, 16, 16)
    pos = detect(bb, gs, key, wm.images, STEPS).score
    neg = detect(bb, gs, key, clean.images, STEPS).score
    return pos, neg, gs.threshold(key, 0.01)


def test_gaussian_shading_survives_tiny_sd_generate_invert_detect(tmp_path, crypto, seed) -> None:
    bb = _backbone(tmp_path)
    pos, neg, thr = _scores(bb, crypto, seed)
    # every watermarked image is detected at the 1 % FPR binomial threshold, no clean one is
    assert pos.min() >= thr, (pos, thr)
    assert neg.max() < thr, (neg, thr)


def test_a_random_vae_destroys_the_mark(tmp_path, crypto, seed) -> None:
    """Control: the survival above depends on the VAE round trip (so the test above can fail)."""
    bb = _backbone(tmp_path, vae_steps=0)
    pos, neg, thr = _scores(bb, crypto, seed)
    assert (pos >= thr).mean() < 0.5, (pos, thr)


def test_grayscale_input_is_promoted_and_size_checked(tmp_path) -> None:
    from aisec.errors import ParameterError

    bb = _backbone(tmp_path, vae_steps=0)
    x = np.random.default_rng(0).random((2, 1, 16, 16)).astype(np.float32)
    assert bb.invert(x, num_steps=2).shape == (2, 4, 8, 8)
    with pytest.raises(ParameterError, match="16x16"):
        bb.invert(np.zeros((1, 3, 8, 8), np.float32))
