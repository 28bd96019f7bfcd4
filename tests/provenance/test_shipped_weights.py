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
    """The benchmark key, which the shipped GNR and fusers belong to: the public demo key
    (InsecureRandom(0), reference ring pattern)."""
    from aisec.provenance.keys import demo_key

    return get_method("gaussmarker"), demo_key((4, 16, 16))


def test_demo_key_is_seed_0_with_ring_pattern() -> None:
    gm = get_method("gaussmarker", tr={"pattern": "rings"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        key = gm.keygen((4, 16, 16), InsecureRandom(0))
    demo = _bench_key()[1]
    assert all(np.array_equal(key.material[k], demo.material[k]) for k in key.material)


def test_shipped_gnr_matches_benchmark_key() -> None:
    gm, key = _bench_key()
    fp = key_fingerprint(gm.encrypted_map(key))
    gnr = GNR.load(WEIGHTS / f"gnr_{fp}.safetensors")
    assert gnr.fingerprint == fp


def test_shipped_gnr_restores_rotated_samples_not_clean_ones() -> None:
    from aisec.perturb.distortions import make_distortion
    from aisec.provenance.pipeline import invert

    torch.set_num_threads(1)
    bb = load_backbone("ddpm-fmnist")
    gm, key = _bench_key()
    ks, _ = gm.split(key)
    gnr = GNR.load(WEIGHTS / f"gnr_{key_fingerprint(gm.encrypted_map(key))}.safetensors")
    g = torch.Generator().manual_seed(3)
    wm = generate(bb, gm, key, 12, g, 10).images
    clean = generate(bb, None, None, 12, g, 10).images
    rot = make_distortion("rotation", 15.0)

    def accs(images: np.ndarray) -> tuple[float, float]:
        x = rot.apply(images, np.random.default_rng(0))
        signs = (invert(bb, x, 10).numpy() > 0).astype(np.uint8)
        raw = gm.gs.decode_signs(ks, signs)[1].mean()
        return float(raw), float(gm.gs.decode_signs(ks, gnr.restore(signs))[1].mean())

    raw, restored = accs(wm)
    # Rotation by 15 degrees leaves the raw signs at chance; the GNR restores part of the mark.
    assert raw < 0.6 and restored > raw + 0.1
    # Clean images stay near chance after restoration.
    assert abs(accs(clean)[1] - 0.5) < 0.12


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
    raw = get_method("gaussmarker_nognr")
    pos = detect(bb, raw, key, wm.images, num_steps=10)
    neg = detect(bb, raw, key, clean.images, num_steps=10)
    assert pos.bit_acc.mean() > 0.9 and abs(neg.bit_acc.mean() - 0.5) < 0.1
    # With the shipped GNR, clean images stay near chance (no hallucinated mark).
    fp = key_fingerprint(gm.encrypted_map(key))
    gm.with_detector(gnr=GNR.load(WEIGHTS / f"gnr_{fp}.safetensors"))
    assert abs(detect(bb, gm, key, clean.images, num_steps=10).bit_acc.mean() - 0.5) < 0.12
    assert detect(bb, gm, key, wm.images, num_steps=10).bit_acc.mean() > 0.9
