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
    # Without a GNR both fusers are fitted on none and the recipe's distortions only.
    assert set(rep.calibration["gaussmarker.fit_margin"]) == {"none", "jpeg"}
    assert set(rep.calibration["gaussmarker_nognr.fit_margin"]) == {"none", "jpeg"}
    assert rep.timings["detect_s_per_image"] > 0


def test_fit_sweep_conditions_fit_the_gnr_fuser_only(gmm, monkeypatch) -> None:
    import torch

    from aisec.provenance import robustness
    from aisec.provenance.gnr import GNRConfig, train_gnr

    torch.set_num_threads(1)

    def tiny_gnr(key_map, spec, log):  # a 3-step GNR for whatever key the run draws
        return train_gnr(key_map, GNRConfig(steps=3, nf=4, depth=1, batch_size=8, threads=1))

    monkeypatch.setattr(robustness, "_gnr_for", tiny_gnr)
    r = RobustnessRecipe(
        backbone="gmm-digits",
        n=4,
        n_fit=4,
        n_cal=8,
        n_heldout=0,
        steps=4,
        distortions={"jpeg": 50.0},
        attacks={},
        fit_sweep={"rotation": [15.0]},
    )
    rep = run_robustness(r, seed=0)
    assert "gnr_margin" in rep.fusers["gaussmarker"].features
    assert set(rep.calibration["gaussmarker.fit_margin"]) == {"none", "jpeg", "rotation@15"}
    assert set(rep.calibration["gaussmarker_nognr.fit_margin"]) == {"none", "jpeg"}


def test_recipe_errors() -> None:
    with pytest.raises(UnknownNameError, match="rotation"):
        run_robustness(RobustnessRecipe(distortions={"rotate": 3.0}, attacks={}))
    with pytest.raises(ConfigError, match="unmarker"):
        run_robustness(RobustnessRecipe(distortions={}, attacks={"unmarker": 0.1}))
    with pytest.raises(ConfigError, match="unknown methods"):
        run_robustness(RobustnessRecipe(methods=("stable_signature",)))
    with pytest.raises(Exception, match="n_fitt"):
        RobustnessRecipe(n_fitt=3)


def test_pgd_through_inversion_lowers_the_spatial_mark() -> None:
    import warnings

    import numpy as np
    import torch

    from aisec.provenance.base import get_method
    from aisec.provenance.pipeline import generate, invert, load_backbone
    from aisec.provenance.robustness import _pgd
    from aisec.rng import InsecureRandom

    torch.set_num_threads(1)
    bb = load_backbone("ddpm-fmnist")
    gs = get_method("gaussian_shading")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        key = gs.keygen(bb.latent_shape, InsecureRandom(5))
    wm = generate(bb, gs, key, 6, torch.Generator().manual_seed(0), 10).images
    attack = _pgd(
        8 / 255, 5, bb, "gaussian_shading", {"gaussian_shading": gs}, {"gaussian_shading": key}, 10
    )
    adv = attack.apply(wm, np.random.default_rng(0))
    assert np.abs(adv - wm).max() <= 8 / 255 + 1e-6  # inside the L-inf budget (8-bit grid)
    before = gs.detect(key, invert(bb, wm, 10)).bit_acc.mean()
    after = gs.detect(key, invert(bb, adv, 10)).bit_acc.mean()
    assert after < before - 0.1


def test_pgd_on_gaussmarker_also_attacks_the_gnr_margin() -> None:
    import warnings
    from pathlib import Path

    import numpy as np
    import torch

    import aisec.provenance as prov
    from aisec.provenance.base import get_method
    from aisec.provenance.gnr import GNR, key_fingerprint
    from aisec.provenance.pipeline import generate, invert, load_backbone
    from aisec.provenance.robustness import _pgd
    from aisec.rng import InsecureRandom

    torch.set_num_threads(1)
    bb = load_backbone("ddpm-fmnist")
    gm = get_method("gaussmarker")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        key = gm.keygen(bb.latent_shape, InsecureRandom(0))  # the shipped GNR's key
    fp = key_fingerprint(gm.encrypted_map(key))
    gnr = GNR.load(Path(prov.__file__).parent / "weights" / f"gnr_{fp}.safetensors")
    wm = generate(bb, gm, key, 6, torch.Generator().manual_seed(0), 10).images
    attack = _pgd(8 / 255, 5, bb, "gaussmarker", {"gaussmarker": gm}, {"gaussmarker": key}, 10, gnr)
    adv = attack.apply(wm, np.random.default_rng(0))
    gm.with_detector(gnr=gnr)
    before = gm.detect(key, invert(bb, wm, 10)).features["gnr_margin"].mean()
    after = gm.detect(key, invert(bb, adv, 10)).features["gnr_margin"].mean()
    assert after < before - 1.0
