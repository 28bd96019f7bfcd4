"""GGUF export: the file llama.cpp runs computes what transformers computes; cache; refusals."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from aisec.errors import AssetError, ConfigError, ParameterError
from aisec.llm import GenerationConfig

PROMPTS = ["How do I bake bread?", "Name a colour.", "Write one word about the sea, please now."]


def test_interleave_rope_reorders_each_head_to_adjacent_pairs():
    from aisec.llm.gguf_export import _interleave_rope

    # 2 heads of dim 4, one input column: rows [h0: 0 1 2 3, h1: 4 5 6 7]
    w = np.arange(8, dtype=np.float32).reshape(8, 1)
    out = _interleave_rope(w, 2).ravel().tolist()
    # half-split (0,2)(1,3) pairs become adjacent: 0 2 1 3 | 4 6 5 7
    assert out == [0, 2, 1, 3, 4, 6, 5, 7]


def test_unknown_quant_and_model_type_are_refused(tiny_lm, tmp_path):
    from aisec.llm.gguf_export import export_gguf

    with pytest.raises(ParameterError, match="quant"):
        export_gguf(tiny_lm, tmp_path / "x.gguf", "q3_k")
    fake = SimpleNamespace(
        model=SimpleNamespace(config=SimpleNamespace(model_type="gpt2")), tokenizer=None, name="g"
    )
    with pytest.raises(ConfigError, match="'gpt2'"):
        export_gguf(fake, tmp_path / "g.gguf")
    assert not list(tmp_path.iterdir())  # nothing half-written


@pytest.fixture(scope="module")
def tiny_f32(tiny_lm, tmp_path_factory):
    from aisec.llm.gguf_export import export_gguf

    return export_gguf(tiny_lm, tmp_path_factory.mktemp("gguf") / "tiny-f32.gguf", "f32")


def test_exported_tiny_llama_logits_match_transformers(tiny_lm, tiny_f32):
    pytest.importorskip("llama_cpp")
    torch = pytest.importorskip("torch")
    from aisec.llm.llamacpp import LlamaCppLM

    lc = LlamaCppLM(tiny_f32, n_threads=1)
    for text in PROMPTS:
        ids = tiny_lm.encode(tiny_lm.chat.user(text))
        assert lc.encode(tiny_lm.chat.user(text)) == ids
        with torch.no_grad():
            ref = tiny_lm.model(torch.tensor([ids])).logits[0, -1].double().numpy()
        lc.reset()
        got = lc._prefill(ids).astype(np.float64)
        scale = np.abs(ref).max()
        assert np.abs(got - ref).max() <= 3e-4 * scale + 1e-5  # 4e-3 without the rope reorder


def test_exported_tiny_llama_greedy_matches_transformers_on_32_tokens(tiny_lm, tiny_f32):
    pytest.importorskip("llama_cpp")
    from aisec.llm.llamacpp import LlamaCppLM

    lc = LlamaCppLM(tiny_f32, n_threads=1)
    cfg = GenerationConfig(max_new_tokens=32, stop_at_eos=False)
    agree = 0
    for text in PROMPTS:
        ids = tiny_lm.encode(tiny_lm.chat.user(text))
        ref = tiny_lm.generate([tiny_lm.chat.user(text)], cfg)[0].text
        got = lc.decode(lc.generate_ids(ids, cfg))
        agree += ref == got
    assert agree >= 2  # "most of a few prompts": a near-tie may flip one


def test_export_cached_reuses_the_file_and_keys_by_quant(tiny_lm):
    from aisec.llm.gguf_export import export_cached

    a = export_cached("tiny-llama", quant="f16")
    mtime = a.path.stat().st_mtime_ns
    b = export_cached("tiny-llama", quant="f16")
    assert b.path == a.path and b.path.stat().st_mtime_ns == mtime
    c = export_cached("tiny-llama", quant="q8_0")
    assert c.path != a.path and c.key != a.key
    assert c.path.stat().st_size < a.path.stat().st_size
    meta = json.loads(a.path.with_suffix(".json").read_text())
    assert meta["quant"] == "f16" and meta["model_hash"]


def test_adapter_whose_base_does_not_match_is_one_line_error(tmp_path):
    pytest.importorskip("peft")
    torch = pytest.importorskip("torch")
    from peft import LoraConfig, get_peft_model

    from aisec.llm import load_causal_lm
    from aisec.llm.gguf_export import export_cached

    tiny = load_causal_lm("tiny-llama")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        peft_model = get_peft_model(
            tiny.model, LoraConfig(r=2, target_modules=["q_proj"], task_type="CAUSAL_LM")
        )
    d = tmp_path / "adapter"
    peft_model.save_pretrained(str(d))
    cfg = json.loads((d / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = "smollm2-135m-instruct"  # hidden 576, not tiny's 64
    (d / "adapter_config.json").write_text(json.dumps(cfg))
    with pytest.raises(AssetError, match="cannot apply adapter") as info:
        export_cached(str(d))
    assert "\n" not in str(info.value)


@pytest.mark.slow
def test_smollm2_f16_export_greedy_agrees_with_transformers():
    pytest.importorskip("llama_cpp")
    from aisec.llm import load_causal_lm
    from aisec.llm.gguf_export import export_cached
    from aisec.llm.llamacpp import LlamaCppLM

    tf = load_causal_lm("smollm2-135m-instruct")
    lc = LlamaCppLM(export_cached("smollm2-135m-instruct", quant="f16").path, n_threads=1)
    cfg = GenerationConfig(max_new_tokens=32, stop_at_eos=False)
    texts = PROMPTS + ["Why do we need sleep?", "Explain what a database index is."]
    agree = 0
    for t in texts:
        ids = tf.encode(tf.chat.user(t))
        ref = tf.generate([tf.chat.user(t)], cfg)[0].text
        agree += lc.decode(lc.generate_ids(ids, cfg)) == ref
    assert agree >= 4


def test_exported_tiny_qwen2_logits_match_transformers(tiny_lm, tmp_path):
    pytest.importorskip("llama_cpp")
    torch = pytest.importorskip("torch")
    import transformers

    from aisec.llm.gguf_export import export_gguf
    from aisec.llm.llamacpp import LlamaCppLM
    from aisec.llm.local import LocalLM

    tok = tiny_lm.tokenizer
    cfg = transformers.Qwen2Config(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=False,
        rope_theta=10000.0,
    )
    with torch.random.fork_rng():
        torch.manual_seed(1)
        model = transformers.Qwen2ForCausalLM(cfg).eval()
        with torch.no_grad():  # non-zero q/k/v biases, so their mapping is exercised
            for layer in model.model.layers:
                for proj in (
                    layer.self_attn.q_proj,
                    layer.self_attn.k_proj,
                    layer.self_attn.v_proj,
                ):
                    proj.bias.normal_(0.0, 0.5)
    lm = LocalLM(model=model, tokenizer=tok, chat=tiny_lm.chat, name="tiny-qwen2")
    path = export_gguf(lm, tmp_path / "qwen2.gguf", "f32")
    lc = LlamaCppLM(path, n_threads=1)
    assert lc.architecture == "qwen2"
    for text in PROMPTS:
        ids = tiny_lm.encode(tiny_lm.chat.user(text))
        with torch.no_grad():
            ref = model(torch.tensor([ids])).logits[0, -1].double().numpy()
        lc.reset()
        got = lc._prefill(ids).astype(np.float64)
        assert np.abs(got - ref).max() <= 3e-4 * np.abs(ref).max() + 1e-5
