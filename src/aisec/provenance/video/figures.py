"""Pictures of a VideoMarkBench grid: FNR / FPR heatmaps and a strip of frames.

:func:`heatmaps` draws, for one measure (``fnr`` or ``fpr``), one panel per aggregation rule
with methods as rows and (perturbation, strength) cells as columns, each cell annotated with its
value; :func:`frame_strip` shows one clean, watermarked and attacked clip side by side. Both
write a PNG atomically and return its path; the bench attaches them to its rows
(``Result.images``) and the report embeds them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from aisec.errors import ParameterError

__all__ = ["heatmaps", "frame_strip", "heatmap_table"]


def _label(p: str, s: float) -> str:
    return "clean" if p == "none" else f"{p} {s:g}"


def heatmap_table(
    flat: Sequence[dict[str, Any]], measure: str, rule: str
) -> tuple[list[str], list[str], np.ndarray]:
    """(methods, column labels, values (methods x columns)) of one rule; NaN where missing."""
    if measure not in ("fnr", "fpr"):
        raise ParameterError("measure", "must be 'fnr' or 'fpr'", measure)
    rows = [r for r in flat if r["aggregation"] == rule]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    cols = list(dict.fromkeys((r["perturbation"], float(r["strength"])) for r in rows))
    cols.sort(key=lambda c: (c[0] != "none", c[0], c[1]))
    val = np.full((len(methods), len(cols)), np.nan)
    for r in rows:
        val[methods.index(r["method"]), cols.index((r["perturbation"], float(r["strength"])))] = r[
            measure
        ]
    return methods, [_label(p, s) for p, s in cols], val


def heatmaps(
    flat: Sequence[dict[str, Any]],
    measure: str,
    path: str | os.PathLike[str],
    rules: Sequence[str] | None = None,
    title: str = "",
) -> Path:
    """One panel per aggregation rule: ``measure`` of every method x (perturbation, strength)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from aisec.io import atomic_path
    from aisec.provenance.video.aggregation import RULES

    rules = list(rules or [r for r in RULES if any(x["aggregation"] == r for x in flat)])
    if not rules:
        raise ParameterError("flat", "holds no rows of any aggregation rule", len(flat))
    tables = [heatmap_table(flat, measure, r) for r in rules]
    n_m = max(len(t[0]) for t in tables)
    n_c = max(len(t[1]) for t in tables)
    w = max(6.0, 0.55 * n_c + 2.5)
    h = 0.45 * n_m + 1.3
    fig, axes = plt.subplots(len(rules), 1, figsize=(w, h * len(rules) + 0.8), squeeze=False)
    for ax, rule, (methods, cols, val) in zip(axes[:, 0], rules, tables, strict=True):
        im = ax.imshow(
            val, vmin=0, vmax=1, cmap="viridis" if measure == "fnr" else "magma", aspect="auto"
        )
        ax.set_yticks(range(len(methods)), methods, fontsize=8)
        ax.set_xticks(range(len(cols)), cols, rotation=60, ha="right", fontsize=7)
        ax.set_title(f"{measure.upper()} - {rule}", fontsize=9)
        for i in range(val.shape[0]):
            for j in range(val.shape[1]):
                if np.isfinite(val[i, j]):
                    ax.text(
                        j,
                        i,
                        f"{val[i, j]:.2f}",
                        ha="center",
                        va="center",
                        fontsize=6,
                        color="white" if val[i, j] < 0.5 else "black",
                    )
        fig.colorbar(im, ax=ax, fraction=0.02, pad=0.01)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()) if title else None)
    p = Path(path)
    with atomic_path(p) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return p


def frame_strip(
    rows: dict[str, np.ndarray], path: str | os.PathLike[str], frames: int = 4, title: str = ""
) -> Path:
    """A grid of frames: one row per named clip (T, 3, H, W) in [0, 1], ``frames`` columns."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from aisec.io import atomic_path

    if not rows:
        raise ParameterError("rows", "must name at least one clip", 0)
    n = min(frames, min(len(v) for v in rows.values()))
    fig, axes = plt.subplots(len(rows), n, figsize=(1.8 * n, 1.9 * len(rows)), squeeze=False)
    for i, (name, clip) in enumerate(rows.items()):
        for j in range(n):
            ax = axes[i, j]
            ax.imshow(np.clip(clip[j].transpose(1, 2, 0), 0, 1))
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(name, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    p = Path(path)
    with atomic_path(p) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return p
