"""Detection of watermarks in image files with deployed thresholds (used by the CLI).

For each image: DDIM-invert with the backbone, score with the key's method, and decide with a
fixed threshold at the requested FPR, the method's ``threshold`` verb: the binomial bit-accuracy
threshold (Gaussian Shading, and GaussMarker without GNR and fuser), the simulated N(0, I)
threshold (Tree-Ring), or the fuser's calibrated logit threshold (GaussMarker with a fuser).
A fuser is fitted for one key (the ring score's scale depends on the key), so the shipped one is
used only with the benchmark key. GaussMarker with a GNR and no fuser for the key is refused:
the binomial threshold is not valid on GNR-restored bits.

``gnr="shipped"`` picks the GNR shipped for the key (there is one for the public demo key).
Every readable image is judged; one that cannot be read (or has the wrong size) becomes a row
with an ``error`` and no score, so one bad file does not sink the batch. Decoded bits are
reported only for images judged watermarked: a GNR can restore a clean map to the exact mark
(bit accuracy 1.0), which is a statistic for the fuser, not proof; every row carries the
statistics (``statistics``) the decision read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from aisec.errors import ConfigError

__all__ = ["detect_files", "shipped_fuser", "shipped_gnr"]

WEIGHTS = Path(__file__).resolve().parent / "weights"


def shipped_fuser(backbone: str, with_gnr: bool) -> Path | None:
    """Path of the fuser shipped for ``backbone`` (None if there is none)."""
    p = WEIGHTS / f"fuser_{backbone}{'_gnr' if with_gnr else ''}.safetensors"
    return p if p.is_file() else None


def shipped_gnr(fingerprint: str) -> Path | None:
    """Path of the GNR shipped for the key with this fingerprint (None if there is none)."""
    p = WEIGHTS / f"gnr_{fingerprint}.safetensors"
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
    allow_readable_gnr: bool = False,
) -> list[dict[str, Any]]:
    """Detect in image files; one dict per image, in order: image, score, threshold, watermarked,
    statistics, and (watermarked multi-bit only) bits and bit_acc; or image and error."""
    from aisec.errors import InputFileError
    from aisec.provenance.base import get_method
    from aisec.provenance.fuser import Fuser
    from aisec.provenance.gnr import GNR, key_fingerprint
    from aisec.provenance.imageio import check_size, read_image, stack_images
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
        if gnr == "shipped":
            found = shipped_gnr(kfp)
            if found is None:
                raise ConfigError(
                    f"no GNR ships for this key (fingerprint {kfp}); the shipped one belongs to "
                    "the public demo key (`aisec watermark keygen --demo`); train one for your "
                    "key with `aisec watermark train-gnr`"
                )
            gnr = str(found)
        g = GNR.load(gnr, allow_readable_gnr, "--allow-readable-gnr") if gnr else None
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
    size = shape[:2] if shape and shape[-1] in (1, 3) else None
    rows: list[dict[str, Any]] = [{"image": str(p)} for p in paths]
    good: list[int] = []
    images: list[np.ndarray] = []
    for i, p in enumerate(paths):
        try:
            images.append(check_size(p, read_image(p), size))
            good.append(i)
        except InputFileError as exc:  # judged on its own: the others still count
            rows[i]["error"] = str(exc)
    if not good:
        return rows
    det = detect(bb, method, key, stack_images(images), num_steps=steps)
    feats = det.features or {}
    for j, i in enumerate(good):
        marked = bool(det.score[j] > threshold)
        row = rows[i]
        row.update(
            score=float(det.score[j]),
            threshold=float(threshold),
            watermarked=marked,
            statistics={k: float(v[j]) for k, v in sorted(feats.items())},
        )
        if marked and det.bits is not None and det.bit_acc is not None:
            row["bits"] = np.packbits(det.bits[j]).tobytes().hex()
            row["bit_acc"] = float(det.bit_acc[j])
        if key.demo:
            row["demo_key"] = True
    return rows
