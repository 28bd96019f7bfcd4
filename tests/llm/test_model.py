from __future__ import annotations

import pytest

from aisec.errors import AssetError
from aisec.llm import load_causal_lm


def test_path_that_is_not_a_model(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(AssetError) as e:
        load_causal_lm(str(tmp_path))
    assert "not a model" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(AssetError):
        load_causal_lm(str(tmp_path / "notes.txt"))


def test_unknown_name_is_one_line():
    with pytest.raises(AssetError) as e:
        load_causal_lm("no-such-model")
    assert "\n" not in str(e.value)


def test_tiny_model_loads_with_template(tiny_lm):
    assert tiny_lm.chat.thinking
    assert tiny_lm.count_tokens("hello world") >= 2
