"""The robustness experiment end to end on the mixture backbone (tiny), and recipe errors."""

from __future__ import annotations

import pytest

from aisec.errors import ConfigError, UnknownNameError
from aisec.provenance.robustness import METHODS, RobustnessRecipe, run_robustness


def test_tiny_run_reports_every_method_and_condition(gmm) -> None:
    r = RobustnessRecipe(
        backbone="gmm-digits",
        n=8,
        n_fit=8,
        n_cal=12,
        n_heldout=8,
        steps=10,
        gnr=None,
        distortions={"jpeg": 50.0},
        attacks={},
        sweep={"rotation": [3.0]},
    )
    rep = run_robustness(r, seed=0)
    conds = {(row["distortion"], row["strength"]) for row in rep.rows}
    assert conds == {("none", 0.0), ("jpeg", 50.0), ("rotation", 3.0)}
    assert {row["method"] for row in rep.rows} == set(METHODS)
    gm = rep.get("gaussmarker", "none")
    assert 0.0 <= gm["tpr_at_1fpr"] <= 1.0 and gm["n_pos"] == gm["n_neg"] == 8
    assert "tpr_tr_score" in gm and "tpr_gs_bit_acc" in gm
    assert set(rep.fusers) == {"gaussmarker", "gaussmarker_nognr"}
    assert rep.fusers["gaussmarker"].kind == "minimax"
    assert rep.calibration["n_cal"] == 12
    assert set(rep.calibration["heldout_fpr"]) == set(METHODS)
    assert all(0.0 <= v <= 1.0 for v in rep.calibration["heldout_fpr"].values())
    # The fit margin is reported for every fitting condition (none + the recipe's distortions).
    assert set(rep.calibration["gaussmarker.fit_margin"]) == {"none", "jpeg"}
    assert rep.timings["detect_s_per_image"] > 0


def test_recipe_errors() -> None:
    with pytest.raises(UnknownNameError, match="rotation"):
        run_robustness(RobustnessRecipe(distortions={"rotate": 3.0}, attacks={}))
    with pytest.raises(ConfigError, match="adversarial"):
        run_robustness(RobustnessRecipe(distortions={}, attacks={"adversarial": 0.1}))
    with pytest.raises(ConfigError, match="unknown methods"):
        run_robustness(RobustnessRecipe(methods=("stable_signature",)))
    with pytest.raises(Exception, match="n_fitt"):
        RobustnessRecipe(n_fitt=3)
