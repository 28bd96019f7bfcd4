"""The VideoMarkBench no-box grid: removal (FNR) and forgery (FPR) per cell, resumable.

A cell is (method, perturbation, strength). For each cell every clip is perturbed twice: its
watermarked copy (removal: a miss is a false negative) and its never-watermarked original
(forgery: a flag is a false positive); the per-frame logits of both go through all seven rules
of :mod:`aisec.provenance.video.aggregation`. Each cell also records the mean PSNR and SSIM of
the perturbed watermarked clips against the watermarked source, and their mean frame bit
accuracy. The clean cell is ``("none", 0)``.

This module holds the pure parts: :func:`run_cell`, the cell list (:func:`grid_cells`) and what
the cells depend on (:func:`grid_fingerprint`). The bench layer runs them
(``aisec.bench.scenarios.videomark.run_grid`` through the runner's grid capability,
:mod:`aisec.bench.cells`): in this process, in local processes or as Ray tasks (local instance
or cluster), each finished cell appended to a JSONL store, so an interrupted grid resumes where
it stopped. Each clip's random stream is derived from (seed, cell, clip index), so a resumed,
re-ordered or distributed grid gives the same numbers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from aisec.provenance.video.aggregation import RULES, aggregate_all, frame_bit_accuracy
from aisec.provenance.video.clips import Clip
from aisec.provenance.video.methods import VideoKey, VideoWatermark

__all__ = [
    "NOBOX_GRID",
    "cell_id",
    "run_cell",
    "grid_cells",
    "grid_fingerprint",
    "embed_clips",
]

# strengths per perturbation (the reference scripts' parameters in our units)
NOBOX_GRID: dict[str, tuple[float, ...]] = {
    "jpeg": (10.0, 30.0, 50.0, 70.0),
    "gaussian_noise": (0.01, 0.03, 0.05, 0.1),
    "blur": (0.5, 1.0, 2.0, 3.0),
    "crop": (0.1, 0.3, 0.5, 0.7),
    "h264": (18.0, 23.0, 28.0, 35.0),
    "frame_average": (2.0, 3.0, 4.0),
    "frame_swap": (0.1, 0.25, 0.5),
    "frame_removal": (0.1, 0.25, 0.5),
}


def cell_id(method: str, perturbation: str, strength: float) -> str:
    return f"{method}|{perturbation}|{float(strength):g}"


def _rng(seed: int, cell: str, i: int, which: str) -> np.random.Generator:
    h = hashlib.sha256(f"{seed}|{cell}|{i}|{which}".encode()).digest()
    return np.random.default_rng(int.from_bytes(h[:8], "little"))


def embed_clips(method: VideoWatermark, key: VideoKey, clips: Sequence[Clip]) -> list[np.ndarray]:
    """The watermarked copy of every clip."""
    return [method.embed(c.frames, key) for c in clips]


def run_cell(
    method: VideoWatermark,
    key: VideoKey,
    clips: Sequence[Clip],
    marked: Sequence[np.ndarray],
    perturbation: str,
    strength: float,
    seed: int = 0,
) -> dict[str, Any]:
    """One grid cell: a row with per-rule ``fnr_k`` / ``fpr_k`` counts and quality numbers."""
    from aisec.perturb.video import perturb_video, video_quality

    cell = cell_id(method.name, perturbation, strength)
    counts = {r: {"fn": 0, "fp": 0} for r in RULES}
    psnrs, ssims, bas, real_bas = [], [], [], []
    msg = key.message
    for i, (clip, wm) in enumerate(zip(clips, marked, strict=True)):
        for which, video in (("wm", wm), ("real", clip.frames)):
            if perturbation == "none":
                out, kept = video, np.arange(len(video))
            else:
                out, kept = perturb_video(video, perturbation, strength, _rng(seed, cell, i, which))
            logits = method.detect(out)
            agg = aggregate_all(logits, msg)
            ba = float(frame_bit_accuracy(logits, msg).mean())
            if which == "wm":
                q = video_quality(video, out, kept)
                psnrs.append(q["psnr"])
                ssims.append(q["ssim"])
                bas.append(ba)
                for r in RULES:
                    counts[r]["fn"] += not agg[r]["flag"]
            else:
                real_bas.append(ba)
                for r in RULES:
                    counts[r]["fp"] += bool(agg[r]["flag"])
    return {
        "id": cell,
        "method": method.name,
        "perturbation": perturbation,
        "strength": float(strength),
        "n_wm": len(clips),
        "n_real": len(clips),
        "psnr": float(np.mean(psnrs)),
        "ssim": float(np.mean(ssims)),
        "bit_acc_wm": float(np.mean(bas)),
        "bit_acc_real": float(np.mean(real_bas)),
        "rules": counts,
    }


def grid_cells(
    method_name: str, grid: Mapping[str, Sequence[float]], seed: int = 0
) -> list[tuple[str, tuple[Any, ...]]]:
    """The clean cell and every (perturbation, strength) of ``grid`` as ``(cell_id, args)``:
    :func:`run_cell` of shared (method, key, clips, marked) and args (perturbation, strength,
    seed)."""
    cells = [("none", 0.0)] + [(p, float(s)) for p, ss in grid.items() for s in ss]
    return [(cell_id(method_name, p, s), (p, s, seed)) for p, s in cells]


def grid_fingerprint(key: VideoKey, clips: Sequence[Clip], seed: int, *extra: Any) -> str:
    """What a cell depends on besides its own arguments: the key, the clips and the seed."""
    h = hashlib.sha256(np.asarray(key.message, dtype=np.uint8).tobytes())
    for c in clips:
        h.update(f"{c.name}|{c.kind}|{np.shape(c.frames)}".encode())
    h.update(repr((int(seed), *extra)).encode())
    return h.hexdigest()[:16]


def flatten(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per (cell, rule): method, aggregation, perturbation, strength, fnr, fpr, ..."""
    out = []
    for row in rows:
        for r in RULES:
            c = row["rules"][r]
            out.append(
                {
                    "method": row["method"],
                    "aggregation": r,
                    "perturbation": row["perturbation"],
                    "strength": row["strength"],
                    "fnr": c["fn"] / row["n_wm"],
                    "fpr": c["fp"] / row["n_real"],
                    "fn": c["fn"],
                    "fp": c["fp"],
                    "n_wm": row["n_wm"],
                    "n_real": row["n_real"],
                    "psnr": row["psnr"],
                    "ssim": row["ssim"],
                    "bit_acc_wm": row["bit_acc_wm"],
                }
            )
    return out
