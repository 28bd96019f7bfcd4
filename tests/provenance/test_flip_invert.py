"""The flip / negative study: the variant test finds mirrored and negative marked images at the
same calibrated clean FPR, where the single test misses them."""

from __future__ import annotations


def test_variant_test_finds_flipped_and_inverted_marks(gmm) -> None:
    from aisec.provenance.flip_invert import run_flip_invert
    from aisec.provenance.robustness import RobustnessRecipe

    r = RobustnessRecipe(
        backbone="gmm-digits",
        methods=("gaussian_shading",),
        gnr=None,
        n=6,
        n_cal=30,
        steps=20,
        fpr=0.1,
        distortions={},
        attacks={},
    )
    rows = {row["condition"]: row for row in run_flip_invert(r, seed=0)}
    assert set(rows) == {"none", "hflip", "invert"}
    assert rows["none"]["tpr_single"] == rows["none"]["tpr_variants"] == 1.0
    for edit in ("hflip", "invert"):
        assert rows[edit]["tpr_single"] <= 0.5 and rows[edit]["tpr_variants"] == 1.0, rows[edit]
    # Calibrated on the maximum over the variants: no more clean alarms than the single test.
    assert rows["none"]["fpr_variants"] <= 0.1 + 3 * (0.09 / 6) ** 0.5
