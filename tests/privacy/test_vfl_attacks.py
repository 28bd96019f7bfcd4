"""Attacks against VFL runs (reconstruction, label inference) and HashVFL's abnormal-input
detection, on small digits runs trained once per module."""

from __future__ import annotations

import numpy as np
import pytest

from aisec.errors import ConfigError, ParameterError, UnknownNameError
from aisec.privacy.attacks import class_mean_baseline, gradient_label_attack
from aisec.privacy.attacks.harness import run_attack
from aisec.privacy.vfl import VFLRecipe, load_split, run_local
from aisec.privacy.vfl.detect import detect_abnormal


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    from aisec.privacy.vfl.run import torch_threads

    with torch_threads(1):  # tiny models: intra-op threads only contend on a shared machine
        yield


def _recipe(defence: str) -> VFLRecipe:
    return VFLRecipe.model_validate(
        {
            "data": {"dataset": "digits", "parties": 2},
            "train": {
                "bottom": "mlp",
                "epochs": 4,
                "batch_size": 64,
                "lr": 3e-3,
                "defence": {"name": defence, "code_bits": 16},
            },
        }
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    split = load_split(_recipe("none").data)
    out = {}
    for d in ("none", "hash"):
        path = tmp_path_factory.mktemp(f"vfl-{d}")
        run_local(_recipe(d), path, split=split)
        out[d] = path
    return split, out


def test_decoder_reconstructs_plain_embeddings_better_than_the_class_mean(runs):
    split, dirs = runs
    # the decoder at its defaults: 15 epochs left it within noise of the class mean (flaky)
    m = run_attack(dirs["none"], "decoder", targets=100, split=split, epochs=60, hidden=256)
    assert m["recon_mse"] < m["recon_mse_class_mean"]
    assert m["recon_ssim"] > m["recon_ssim_class_mean"] + 0.05  # measured 0.81 vs 0.64
    assert np.isfinite([m["recon_error"], m["recon_error_class_mean"]]).all()


def test_every_attack_reports_its_figures_beside_the_baseline(runs):
    split, dirs = runs
    for d, path in dirs.items():
        inv = run_attack(path, "inversion", targets=20, split=split, steps=20)
        assert {"recon_mse", "recon_mse_class_mean", "recon_ssim", "recon_ssim_class_mean"} <= set(
            inv
        )
        assert (path / "attacks" / "inversion-P1.safetensors").is_file()
        lab = run_attack(path, "grad-direction", split=split)
        assert lab["label_attack_acc"] > lab["majority_rate"], d
        comp = run_attack(path, "completion", split=split)
        assert 0 <= comp["label_attack_acc"] <= 1 and comp["known"] == 10 * split.n_classes


def test_unknown_attack_or_party_is_refused(runs):
    _, dirs = runs
    with pytest.raises(UnknownNameError, match="decoder, inversion"):
        run_attack(dirs["hash"], "psychic")
    with pytest.raises(UnknownNameError, match="P0, P1"):
        run_attack(dirs["hash"], "decoder", party="P7")


def test_norm_scoring_needs_a_binary_task_and_finds_an_obvious_signal():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    g = rng.normal(size=(400, 8)) * np.where(y == 1, 3.0, 1.0)[:, None]
    m = gradient_label_attack(g, y, method="norm", per_class=10, rng=rng)
    assert m["acc"] > 0.75
    with pytest.raises(ParameterError, match="binary"):
        gradient_label_attack(g, rng.integers(0, 3, 400), method="norm", per_class=5, rng=rng)


def test_class_mean_baseline_uses_the_true_class():
    aux = np.stack([np.zeros((2, 2)), np.ones((2, 2))]).astype(np.float32)
    out = class_mean_baseline(aux, np.array([0, 1]), np.array([1, 0, 1]))
    assert out[:, 0, 0].tolist() == [1.0, 0.0, 1.0]


def test_hamming_detection_scores_noise_and_needs_codes(runs):
    split, dirs = runs
    m = detect_abnormal(dirs["hash"], kinds=("noise", "pgd"), rows=100, steps=5, split=split)
    assert 0 <= m["detect_auc_pgd"] <= 1 and m["detect_auc_noise"] > 0.5
    assert m["hamming_noise"] > m["hamming_normal"]
    with pytest.raises(ConfigError, match="needs HashVFL codes"):
        detect_abnormal(dirs["none"], split=split)
