"""Training the pixel DDPM leaves torch's global random state and thread count as they were."""

from __future__ import annotations

import numpy as np
import torch

from aisec.diffusion.pixel_ddpm import DDPMConfig, DDPMTrainConfig, train_ddpm
from aisec.io import load_safetensors

CFG = DDPMConfig(image_size=8, block_out_channels=(8, 8), norm_num_groups=4)
TRAIN = DDPMTrainConfig(steps=2, batch_size=2, warmup=1, threads=1)


def test_training_is_scoped_and_deterministic(tmp_path) -> None:
    images = np.random.default_rng(0).integers(0, 256, (6, 8, 8), dtype=np.uint8)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        torch.manual_seed(1234)
        state = torch.random.get_rng_state()
        a = train_ddpm(images, tmp_path / "a.safetensors", CFG, TRAIN, seed=3)
        assert torch.equal(torch.random.get_rng_state(), state)  # global generator untouched
        assert torch.get_num_threads() == 2  # restored after training on TRAIN.threads
        torch.manual_seed(99)  # a different global state must not change the weights
        b = train_ddpm(images, tmp_path / "b.safetensors", CFG, TRAIN, seed=3)
    finally:
        torch.set_num_threads(threads)
    wa, wb = load_safetensors(a), load_safetensors(b)
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
