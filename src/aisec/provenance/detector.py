"""Detection of watermarks in image files with deployed thresholds (used by the CLI).

For each image: DDIM-invert with the backbone, score with the key's method, and decide with a
fixed threshold at the requested FPR, the method's ``threshold`` verb: the binomial bit-accuracy
threshold (Gaussian Shading, and GaussMarker without GNR and fuser), the simulated N(0, I)
threshold (Tree-Ring), or the fuser's calibrated logit threshold (GaussMarker with a fuser).
A fuser is fitted for one key (the ring score's scale depends on the key), so the shipped one is
used only with the benchmark key. GaussMarker with a GNR and no fuser for the key is refused:
the binomial threshold is not valid on GNR-restored bits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from aisec.errors import ConfigError

__all__ = ["detect_files", "shipped_fuser"]

WEIGHTS = Path(__file__).resolve().parent / "weights"


def shipped_fuser(backbone: str, with_gnr: bool) -> Path | None:
    """Path of the fuser shipped for ``backbone`` (None if there is none)."""
    p = WEIGHTS / f"fuser_{backbone}{'_gnr' if with_gnr else ''}.safetensors"
    return p if p.is_file() else None


def detect_files(
    paths: list[str],
    key_path: str,
    backbone: str = "ddpm-fmnist",
    model: str | None = None,
    gnr: str | None = None,
    fuser: str | None = None,
    fpr: float = 0.01,
    steps: int = 10,
) -> list[dict[str, Any]]:
    """Detect in image files; one dict per image (image, score, threshold, watermarked, bits ...)."""
    from aisec.provenance.base import get_method
    from aisec.provenance.fuser import Fuser
    from aisec.provenance.gnr import GNR, key_fingerprint
    from aisec.provenance.imageio import read_images
    from aisec.provenance.keys import load_key
    from aisec.provenance.pipeline import detect, load_backbone

    key = load_key(key_path)
    kwargs = (
        {}
        if model is None
        else ({"weights": model} if backbone == "ddpm-fmnist" else {"model": model})
    )
    bb = load_backbone(backbone, **kwargs)
    if key.method == "gaussmarker":
        # The variant follows the detector given: with a GNR "gaussmarker", else "_nognr".
        method = get_method("gaussmarker" if gnr else "gaussmarker_nognr", **key.params)
        kfp = key_fingerprint(method.encrypted_map(key))
        g = GNR.load(gnr) if gnr else None
        if g is not None and g.fingerprint != kfp:
            raise ConfigError(f"GNR {gnr} was trained for another key")
        fpath = Path(fuser) if fuser else shipped_fuser(backbone, g is not None)
        f = Fuser.load(fpath) if fpath else None
        if f is not None and f.key_fingerprint != kfp:
            if fuser:
                raise ConfigError(
                    f"fuser {fuser} was fitted for another key; refit it with "
                    "`aisec watermark robustness --key KEY` for this key"
                )
            f = None  # the shipped fuser belongs to the benchmark key: use the bit accuracy
        method.with_detector(gnr=g, fuser=f)
    else:
        if gnr or fuser:
            raise ConfigError(f"--gnr/--fuser apply to gaussmarker keys, not {key.method!r}")
        method = get_method(key.method, **key.params)
    method.check_key(key, bb.latent_shape)
    # Before any image work: gaussmarker with a GNR and no calibrated fuser has no valid one.
    threshold = method.threshold(key, fpr)
    shape = getattr(bb, "image_shape", None)
    images = read_images(paths, shape[:2] if shape and shape[-1] in (1, 3) else None)
    det = detect(bb, method, key, images, num_steps=steps)
    rows = []
    for i, p in enumerate(paths):
        row: dict[str, Any] = {
            "image": str(p),
            "score": float(det.score[i]),
            "threshold": float(threshold),
            "watermarked": bool(det.score[i] > threshold),
        }
        if det.bits is not None and det.bit_acc is not None:
            row["bits"] = np.packbits(det.bits[i]).tobytes().hex()
            row["bit_acc"] = float(det.bit_acc[i])
        rows.append(row)
    return rows
