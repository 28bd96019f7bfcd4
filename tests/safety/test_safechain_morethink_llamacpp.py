"""MoreThink cuts an over-long thought piece to its remaining budget on the llama.cpp backend
too (it has no transformers tokenizer; the cut used to raise ConfigError mid-run)."""

from __future__ import annotations

import pytest


def test_morethink_truncation_uses_llamacpp_encode_decode():
    pytest.importorskip("llama_cpp")
    from aisec.errors import AssetError
    from aisec.llm import load_lm
    from aisec.safety.safechain.strategies import _truncate_tokens

    try:
        lm = load_lm("smollm2-135m-instruct", backend="llamacpp", n_threads=1)
    except AssetError as exc:
        pytest.skip(str(exc))
    text = "The quick brown fox jumps over the lazy dog. " * 4
    n = lm.count_tokens(text)
    cut, k = _truncate_tokens(lm, text, n, 5)
    assert k == 5 and lm.count_tokens(cut) == 5 and text.startswith(cut)
    assert _truncate_tokens(lm, text, n, n + 1) == (text, n)
