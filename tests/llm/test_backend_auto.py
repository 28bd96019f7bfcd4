"""load_lm's backend choice: auto picks llama.cpp where parity is measured, records why, and an
explicit backend is honoured (never a quiet fallback)."""

from __future__ import annotations

import json
import sys

import pytest

from aisec.errors import ConfigError


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    """A tiny GPT-2 checkpoint (an architecture without llama.cpp parity here), loadable."""
    pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from aisec.llm.model import load_tokenizer

    d = tmp_path_factory.mktemp("gpt2")
    tok = load_tokenizer("tiny-llama")
    cfg = transformers.GPT2Config(
        n_layer=1, n_embd=16, n_head=2, n_positions=128, vocab_size=len(tok)
    )
    transformers.GPT2LMHeadModel(cfg).save_pretrained(d)
    tok.save_pretrained(d)
    return d


def test_auto_runs_a_llama_model_on_llamacpp_and_records_why(tiny_lm):
    pytest.importorskip("llama_cpp")
    from aisec.llm.llamacpp import LlamaCppLM
    from aisec.llm.remote import load_lm

    lm = load_lm("tiny-llama", chat_format_name="chatml-think", n_threads=1)
    assert isinstance(lm, LlamaCppLM) and lm.backend == "llamacpp"
    assert lm.backend_reason.startswith("auto:") and "parity" in lm.backend_reason


def test_backend_transformers_is_honoured_and_recorded(tiny_lm):
    from aisec.llm.local import LocalLM
    from aisec.llm.remote import load_lm

    lm = load_lm("tiny-llama", chat_format_name="chatml-think", backend="transformers")
    assert isinstance(lm, LocalLM) and lm.backend == "transformers"
    assert lm.backend_reason == "chosen: backend='transformers'"


def test_auto_runs_an_unsupported_architecture_on_transformers_with_the_reason(gpt2_dir):
    pytest.importorskip("llama_cpp")
    from aisec.llm.local import LocalLM
    from aisec.llm.remote import load_lm

    lm = load_lm(str(gpt2_dir), chat_format_name="chatml")
    assert isinstance(lm, LocalLM) and lm.backend == "transformers"
    assert "'gpt2' has no measured llama.cpp parity" in lm.backend_reason
    assert lm.backend_reason.startswith("auto:")


def test_llamacpp_named_explicitly_never_falls_back(gpt2_dir):
    pytest.importorskip("llama_cpp")
    from aisec.llm.remote import load_lm

    with pytest.raises(ConfigError, match="gpt2") as info:
        load_lm(str(gpt2_dir), chat_format_name="chatml", backend="llamacpp")
    assert "\n" not in str(info.value)


def test_auto_without_llama_cpp_says_it_is_not_installed(monkeypatch):
    from aisec.llm.llamacpp import auto_backend

    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import llama_cpp -> ImportError
    chosen, reason = auto_backend("tiny-llama")
    assert chosen == "transformers"
    assert "llama_cpp not installed" in reason and "aisec[llamacpp]" in reason


def test_architecture_is_read_without_loading_weights(tmp_path, embedded_gguf_path):
    from aisec.llm.llamacpp import auto_backend, model_architecture

    assert model_architecture("smollm2-135m-instruct") == "llama"
    assert model_architecture(str(embedded_gguf_path)) == "llama"
    d = tmp_path / "gemma"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "gemma3_text"}))
    assert model_architecture(str(d)) == "gemma3"
    pytest.importorskip("llama_cpp")
    assert auto_backend(str(d))[0] == "llamacpp"  # Gemma 3 parity measured (20/20 prompts)
    d = tmp_path / "phi"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "phi3"}))
    chosen, reason = auto_backend(str(d))
    assert chosen == "transformers" and "'phi3' has no measured llama.cpp parity" in reason


@pytest.fixture()
def embedded_gguf_path():
    from aisec.llm.llamacpp import _embedded_gguf

    return _embedded_gguf("smollm2-135m-instruct")


def test_auto_without_torch_runs_the_shipped_gguf_and_says_so(monkeypatch, embedded_gguf_path):
    pytest.importorskip("llama_cpp")
    import aisec.llm.gguf_export as gx
    from aisec.errors import DependencyError
    from aisec.llm.remote import load_lm

    def no_torch(*args, **kwargs):
        raise DependencyError("transformers", "llm")

    monkeypatch.setattr(gx, "export_cached", no_torch)
    lm = load_lm("smollm2-135m-instruct", n_threads=1)
    assert lm.backend == "llamacpp" and lm.path == embedded_gguf_path
    assert "needs transformers (not installed)" in lm.backend_reason
    with pytest.raises(DependencyError):  # named explicitly: no quiet change of weights
        load_lm("smollm2-135m-instruct", backend="llamacpp", n_threads=1)
