"""A judge's identity (and fingerprint) changes with whatever changes its verdicts."""

from __future__ import annotations

import numpy as np

from aisec.judges import make_judge
from aisec.judges.base import array_digest
from aisec.judges.embedding import EmbeddingJudge
from aisec.judges.harm import HarmJudge
from aisec.judges.refusal import RefusalDetector, RefusalJudge


def test_two_loads_of_one_judge_share_a_fingerprint():
    assert make_judge("harm").fingerprint() == make_judge("harm").fingerprint()
    assert make_judge("refusal").fingerprint() == make_judge("refusal").fingerprint()


def test_harm_heads_thresholds_and_degeneracy_each_change_the_fingerprint():
    base = HarmJudge()
    others = [
        HarmJudge(standard="strict"),
        HarmJudge(threshold=0.99),
        HarmJudge(degenerate=False),
    ]
    fps = {base.fingerprint(), *(j.fingerprint() for j in others)}
    assert len(fps) == 4


def test_harm_weights_enter_the_identity(tmp_path):
    from aisec.io import load_safetensors, save_safetensors
    from aisec.judges.harm import HARM_WEIGHTS

    w = {k: np.asarray(v) for k, v in load_safetensors(HARM_WEIGHTS, "np").items()}
    w["harm_coef"] = w["harm_coef"] + 1e-6  # a refit that moved one head a little
    save_safetensors(tmp_path / "refit.safetensors", w)
    assert HarmJudge(tmp_path / "refit.safetensors").fingerprint() != HarmJudge().fingerprint()


def test_settings_of_the_rule_based_and_embedding_judges_enter_the_identity():
    assert RefusalDetector(opening=10).fingerprint() != RefusalDetector(opening=11).fingerprint()
    assert RefusalJudge(("no",)).fingerprint() != RefusalJudge(("nope",)).fingerprint()
    a = EmbeddingJudge(coef=np.zeros(4), intercept=0.0, encoder=object())
    b = EmbeddingJudge(coef=np.zeros(4), intercept=0.5, encoder=object())
    assert a.fingerprint() != b.fingerprint()


def test_array_digest_sees_names_shapes_and_dtypes():
    x = np.arange(6, dtype=np.float64)
    assert array_digest({"a": x}) != array_digest({"b": x})
    assert array_digest({"a": x}) != array_digest({"a": x.reshape(2, 3)})
    assert array_digest({"a": x}) != array_digest({"a": x.astype(np.float32)})
    assert array_digest({"a": x, "b": x}) == array_digest({"b": x, "a": x})
