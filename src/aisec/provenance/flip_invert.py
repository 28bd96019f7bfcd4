"""Mirrored and negative images: should detection also test those variants of an image?

A horizontal flip moves every cell of the initial noise to its mirror position, so the spatial
mark and the ring (unless it is rotation invariant) are not where the detector looks; inverting
the image (1 - x) sends the inverted noise to roughly its negative, so the sign mark comes back
with its bits flipped (bit accuracy near 0 instead of 1) and a one-sided test misses it. Both
are edits a user tries first.

The choice measured here: the **single** test (the image as given) against the **variant**
test, which scores the image, its mirror, its negative and the mirrored negative and keeps the
maximum. The variant test costs four DDIM inversions per image, and its threshold must account
for the extra tests: both thresholds are calibrated on the same ``n_cal`` clean images, each on
its own statistic (the maximum over the variants for the variant test), so both keep the target
FPR exactly (no Bonferroni bound needed) and the price of the extra tests shows as a lower TPR
under the other conditions.

Every method is scored by its detector without a fuser (raw or GNR-restored bit accuracy, ring
score), each with an empirical threshold, so that the comparison does not depend on a fuser fitted
for one choice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["VARIANTS", "EDITS", "run_flip_invert"]


def _flip(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x[..., ::-1])


def _negative(x: np.ndarray) -> np.ndarray:
    return (1.0 - x).astype(np.float32)


#: The variants of an image the variant test scores (the first is the image as given).
VARIANTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "as_given": lambda x: x,
    "flip": _flip,
    "negative": _negative,
    "flip_negative": lambda x: _negative(_flip(x)),
}
#: The user edits of the study (beside no edit and the recipe's distortions).
EDITS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"hflip": _flip, "invert": _negative}


def run_flip_invert(
    recipe: Any, seed: int = 0, log: Callable[[str], None] | None = None
) -> list[dict[str, Any]]:
    """Rows (method, condition, TPR and clean FPR of the single and of the variant test).

    ``recipe`` is a :class:`~aisec.provenance.robustness.RobustnessRecipe`: its backbone,
    methods, ``n`` (images per set), ``n_cal`` (calibration images), ``fpr``, ``steps``,
    ``distortions`` (further conditions) and ``gnr`` are used; no fusers are fitted.
    """
    import torch

    from aisec.metrics.detection import threshold_at_fpr
    from aisec.perturb.distortions import make_distortion
    from aisec.provenance.robustness import _check_recipe, _prepare

    _check_recipe(recipe)
    say = log or (lambda m: None)
    threads = torch.get_num_threads()
    torch.set_num_threads(recipe.threads)
    try:
        s = _prepare(recipe, seed, None, None, say, None)
        names = list(s.methods)

        def scores(x: np.ndarray) -> dict[str, np.ndarray]:
            """(V, B) scores of every method for every variant of the images ``x``."""
            per = [s.detect(names, s.invert(fn(x))) for fn in VARIANTS.values()]
            return {m: np.stack([d[m].score for d in per]) for m in names}

        images = {"clean": s.generate(None, recipe.n)}
        for fam in s.families():
            images[fam] = s.generate(fam, recipe.n)
        cal = scores(s.generate(None, recipe.n_cal))
        thr_single = {m: threshold_at_fpr(cal[m][0], recipe.fpr) for m in names}
        thr_var = {m: threshold_at_fpr(cal[m].max(0), recipe.fpr) for m in names}
        conds: list[tuple[str, Callable[[np.ndarray], np.ndarray]]] = [("none", lambda x: x)]
        conds += list(EDITS.items())
        for ci, (d, v) in enumerate(recipe.distortions.items()):
            dist = make_distortion(d, v)
            conds.append(
                (
                    f"{d} {v:g}",
                    lambda x, dist=dist, ci=ci: dist.apply(x, np.random.default_rng([seed, ci])),
                )
            )
        rows: list[dict[str, Any]] = []
        for cname, edit in conds:
            neg = scores(edit(images["clean"]))
            pos = {fam: scores(edit(images[fam])) for fam in s.families()}
            for m in names:
                p = pos[s.family[m]][m]
                rows.append(
                    {
                        "method": m,
                        "condition": cname,
                        "tpr_single": float(np.mean(p[0] > thr_single[m])),
                        "tpr_variants": float(np.mean(p.max(0) > thr_var[m])),
                        "fpr_single": float(np.mean(neg[m][0] > thr_single[m])),
                        "fpr_variants": float(np.mean(neg[m].max(0) > thr_var[m])),
                        "n": int(p.shape[1]),
                        "n_cal": int(cal[m].shape[1]),
                    }
                )
            say(
                f"{cname}: "
                + ", ".join(
                    f"{r['method']} {r['tpr_single']:.2f}/{r['tpr_variants']:.2f}"
                    for r in rows[-len(names) :]
                )
            )
        return rows
    finally:
        torch.set_num_threads(threads)
