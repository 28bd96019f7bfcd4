"""Loading the models of an EnchTable run: the prompt layout of a base model, and generation
on llama.cpp where its export has measured parity.

**Base models.** A tokenizer without a chat template (Gemma-3-270m is a base model) gets llm/'s
``plain`` format, which writes neither the BOS token nor a system turn, and aisec encodes
prompts without special tokens. Gemma without its BOS continues the prompt as noise, and
Self-Reminder's system text would vanish. :func:`prepare_chat` therefore gives such a model
:func:`base_chat`: the same ``## Instruction: ... / ## Response: `` layout, opened by the BOS
token when the tokenizer's own encodings start with it, with a system message written as a
preamble paragraph. A model with its own template keeps it (SmolLM2's ChatML is unchanged).

**Generation backend.** :func:`load_model` with ``generation_backend="llamacpp"`` (or ``auto``:
llama.cpp for the architectures of :data:`aisec.llm.llamacpp.PARITY_ARCHITECTURES`) returns a
:class:`SplitLM`: greedy generation runs on the checkpoint's F16 GGUF export (exported once and
cached), everything else (the held-out loss, SafeDecoding's logits, fine-tuning) on the
transformers model. Both render prompts with the same chat format.

**Bases from a GGUF.** The Gemma-3-270m and Qwen2.5-Coder-0.5B-Instruct bases ship only as
Q4_K_M GGUF files; mergekit and the fine-tunes need a safetensors checkpoint.
:func:`checkpoint_from_gguf` de-quantises one to fp32 (transformers' GGUF reader) and writes the
checkpoint with its tokenizer and chat template, atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aisec.errors import ParameterError

__all__ = [
    "BASE_TEMPLATE",
    "GENERATION_BACKENDS",
    "base_chat",
    "prepare_chat",
    "load_model",
    "SplitLM",
    "checkpoint_from_gguf",
]

#: the prompt layout of a model without a chat template (see the module docstring)
BASE_TEMPLATE = (
    "{% if bos_token %}{{ bos_token }}{% endif %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] + '\n\n' }}"
    "{% elif message['role'] == 'user' %}{{ '## Instruction: ' + message['content'] + '\n' }}"
    "{% else %}{{ '## Response: ' + message['content'] + '\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '## Response: ' }}{% endif %}"
)

GENERATION_BACKENDS = ("transformers", "llamacpp", "auto")


def _adds_bos(tokenizer: Any) -> bool:
    """Whether ``tokenizer`` puts its BOS token first in an encoding with special tokens (what
    the model was trained to see; ``add_bos_token`` is not reliable: Gemma's says False)."""
    bos_id = getattr(tokenizer, "bos_token_id", None)
    if bos_id is None:
        return False
    try:
        ids = list(tokenizer("a")["input_ids"])
    except Exception:  # not a callable Hugging Face tokenizer
        return bool(getattr(tokenizer, "add_bos_token", False))
    return ids[:1] == [bos_id]


def base_chat(tokenizer: Any) -> Any:
    """The chat format of a base model: :data:`BASE_TEMPLATE`, opened by the tokenizer's BOS
    token when the tokenizer puts one first in its own encodings."""
    from aisec.llm.chat import ChatFormat

    bos = str(tokenizer.bos_token) if _adds_bos(tokenizer) else ""
    return ChatFormat("base-plain", BASE_TEMPLATE, None, {"bos_token": bos}, "")


def prepare_chat(lm: Any) -> Any:
    """``lm`` with :func:`base_chat` when its chat format is llm/'s ``plain`` fallback (no chat
    template); unchanged otherwise. Returns ``lm``."""
    if getattr(getattr(lm, "chat", None), "name", None) == "plain":
        lm.chat = base_chat(lm.tokenizer)
    return lm


class SplitLM:
    """A transformers model whose :meth:`generate` runs on a llama.cpp model of the same
    weights; every other attribute is the transformers model's."""

    def __init__(self, lm: Any, generator: Any) -> None:
        self.lm = lm
        self.generator = generator
        generator.chat = lm.chat
        self.backend = f"transformers+{getattr(generator, 'backend', 'llamacpp')}"

    def generate(self, prompts: Any, config: Any = None, **kw: Any) -> Any:
        return self.generator.generate(prompts, config, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["lm"], name)


def load_model(
    spec: str,
    *,
    generation_backend: str = "transformers",
    n_threads: int = 1,
    context_length: int = 1024,
    **kw: Any,
) -> Any:
    """A model of an EnchTable run (:func:`aisec.llm.load_causal_lm` with ``kw``), its chat
    format prepared (:func:`prepare_chat`); with ``generation_backend`` ``llamacpp`` (or ``auto``
    for an architecture with measured llama.cpp parity) a :class:`SplitLM` that generates on
    llama.cpp (``n_threads`` threads)."""
    from aisec.llm import load_causal_lm

    if generation_backend not in GENERATION_BACKENDS:
        raise ParameterError(
            "generation_backend", f"must be one of {', '.join(GENERATION_BACKENDS)}",
            generation_backend,
        )
    lm = prepare_chat(load_causal_lm(spec, **kw))
    backend = generation_backend
    if backend == "auto":
        from aisec.llm.llamacpp import auto_backend

        backend, _ = auto_backend(spec)
    if backend != "llamacpp":
        return lm
    from aisec.llm.llamacpp import load_llamacpp

    gen = load_llamacpp(spec, n_threads=n_threads, context_length=context_length)
    return SplitLM(lm, gen)


def checkpoint_from_gguf(gguf: str | Path, out: str | Path) -> Path:
    """De-quantise the GGUF file ``gguf`` into an fp32 safetensors checkpoint at ``out`` (with
    its tokenizer and, when the GGUF has one, its chat template) and return ``out``.

    The checkpoint is written to ``OUT.partial`` and renamed when complete, so ``out`` is never
    half-written. An ``out`` that already holds a ``config.json`` is reused as it is. A path
    that is not a readable GGUF file is a one-line :class:`~aisec.errors.InputFileError`.
    """
    import shutil

    from aisec.llm.llamacpp import check_gguf
    from aisec.llm.model import _require_torch_transformers

    src, dst = Path(gguf), Path(out)
    if (dst / "config.json").exists():
        return dst
    check_gguf(src)  # file, magic, size, architecture: one line before transformers reads it
    tf = _require_torch_transformers()
    import torch

    tok = tf.AutoTokenizer.from_pretrained(str(src.parent), gguf_file=src.name)
    model = tf.AutoModelForCausalLM.from_pretrained(
        str(src.parent), gguf_file=src.name, dtype=torch.float32
    )
    # the weights are plain fp32 now: drop the quantiser so that save_pretrained writes them
    model.hf_quantizer = None
    model.config.quantization_config = None
    tmp = dst.with_name(dst.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        model.save_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))
        if dst.exists():
            shutil.rmtree(dst)
        tmp.rename(dst)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dst
