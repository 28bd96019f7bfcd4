"""The shipped DDPM and GNR: load, match the benchmark key, and behave like a trained model."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from aisec.provenance.base import get_method
from aisec.provenance.gnr import GNR, key_fingerprint
from aisec.provenance.pipeline import detect, generate, load_backbone
from aisec.rng import InsecureRandom

WEIGHTS = Path(__import__("aisec.provenance", fromlist=["x"]).__file__).parent / "weights"


def _bench_key():
    gm = get_method("gaussmarker")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gm, gm.keygen((4, 16, 16), InsecureRandom(0))


def test_shipped_gnr_matches_benchmark_key() -> None:
    gm, key = _bench_key()
    fp = key_fingerprint(gm.encrypted_map(key))
    gnr = GNR.load(WEIGHTS / f"gnr_{fp}.safetensors")
    assert gnr.fingerprint == fp
    # Random i.i.d. sign maps are pulled only mildly towards the mark (measured 0.63).
    rnd = (np.random.default_rng(0).random((16, 4, 16, 16)) < 0.5).astype(np.uint8)
    ks, _ = gm.split(key)
    assert gm.gs.decode_signs(ks, gnr.restore(rnd))[1].mean() < 0.7


def test_trained_ddpm_samples_and_detection() -> None:
    torch.set_num_threads(1)
    bb = load_backbone("ddpm-fmnist")
    gm, key = _bench_key()
    g = torch.Generator().manual_seed(0)
    clean = generate(bb, None, None, 8, g, 10)
    wm = generate(bb, gm, key, 8, g, 10)
    # A trained model makes images with a dark background, not rescaled noise.
    assert 0.1 < clean.images.mean() < 0.6
    assert (clean.images < 0.05).mean() > 0.2
    pos = detect(bb, gm.with_detector(), key, wm.images, num_steps=10)
    neg = detect(bb, gm, key, clean.images, num_steps=10)
    assert pos.bit_acc.mean() > 0.9 and abs(neg.bit_acc.mean() - 0.5) < 0.1
    # With the shipped GNR, clean images stay near chance (no hallucinated mark).
    fp = key_fingerprint(gm.encrypted_map(key))
    gm.with_detector(gnr=GNR.load(WEIGHTS / f"gnr_{fp}.safetensors"))
    assert abs(detect(bb, gm, key, clean.images, num_steps=10).bit_acc.mean() - 0.5) < 0.12
    assert detect(bb, gm, key, wm.images, num_steps=10).bit_acc.mean() > 0.9
