"""Export a transformers causal LM (full, or base + merged LoRA) to a GGUF file for llama.cpp.

Written on the ``gguf`` package's :class:`gguf.GGUFWriter`, its tensor-name maps
(:func:`gguf.get_tensor_name_map`) and its numpy quantisers. Architectures: Llama (SmolLM2) and
Qwen2. Gemma 3 is refused with a one-line error (its norm offsets and embedding scale are not
written here yet).

Weight types (``quant``): ``f32``, ``f16``, ``q8_0`` and ``q4_0`` for the 2-D weights; norms stay
F32. In ``q4_0`` the token embedding (also the output matrix when tied) is kept at Q8_0.

Llama's rotary layout differs between the two formats: transformers rotates the two halves of each
head, llama.cpp rotates adjacent pairs, so the rows of ``q_proj`` and ``k_proj`` are reordered
(half-split -> interleaved) per head; Qwen2 runs with the half-split ("NeoX") layout in llama.cpp
and is written unchanged.

The tokenizer goes in from the Hugging Face fast tokenizer: tokens, token types, merges, special
ids, whether a BOS is added, and the chat template the model is used with (an adapter's
``aisec-chat.json`` included). The pre-tokenizer name llama.cpp needs is read off the
tokenizer's own pre-tokenizer (byte-level GPT-2 regex -> ``gpt-2``; with single-digit splitting ->
``smollm``; Qwen2 -> ``qwen2``); an unknown one is a one-line error, never a silent default.

:func:`export_cached` keys the file by a hash of the model's weights and config (and of the
adapter's), the weight type and this exporter's version, under ``$AISEC_CACHE_DIR/gguf/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aisec.errors import ConfigError, DependencyError, ParameterError

__all__ = ["QUANTS", "Exported", "export_gguf", "export_cached", "model_key"]

#: bump when the written file changes for the same inputs
EXPORTER_VERSION = "1"

#: weight types the exporter writes (the 2-D weights; norms are F32)
QUANTS = ("f32", "f16", "q8_0", "q4_0")

_ARCHES = {"llama": "LLAMA", "qwen2": "QWEN2"}


@dataclass(frozen=True)
class Exported:
    """An exported GGUF: its path, display name, chat template and cache key."""

    path: Path
    name: str
    chat_template: str | None
    key: str
    quant: str


def _gguf() -> Any:
    try:
        import gguf
    except ImportError:
        raise DependencyError("gguf", "llamacpp") from None
    return gguf


def _interleave_rope(w: np.ndarray, n_head: int) -> np.ndarray:
    """Rows of a q/k projection from transformers' half-split rotary layout to interleaved pairs."""
    rows = w.shape[0]
    head_dim = rows // n_head
    return w.reshape(n_head, 2, head_dim // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape).copy()


def _pre_tokenizer(tok_json: dict[str, Any], model_type: str) -> str:
    if model_type == "qwen2":
        return "qwen2"
    pre = tok_json.get("pre_tokenizer") or {}
    parts = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    kinds = [(p.get("type"), p.get("individual_digits"), p.get("use_regex")) for p in parts]
    if kinds == [("ByteLevel", None, True)]:
        return "gpt-2"
    if kinds == [("Digits", True, None), ("ByteLevel", None, True)]:
        return "smollm"
    raise ConfigError(
        f"GGUF export: the tokenizer's pre-tokenizer {json.dumps(pre)[:120]} has no known "
        "llama.cpp name (known: byte-level GPT-2 regex, with or without single-digit splitting)"
    )


def _tokenizer_fields(tok: Any, vocab_size: int, model_type: str) -> dict[str, Any]:
    gguf = _gguf()
    tok_json = json.loads(tok.backend_tokenizer.to_str())
    model = tok_json.get("model") or {}
    if model.get("type") != "BPE":
        raise ConfigError(
            f"GGUF export supports byte-level BPE tokenizers; this one is {model.get('type')!r}"
        )
    vocab = tok.get_vocab()
    tokens = [f"[PAD{i}]" for i in range(vocab_size)]
    types = [int(gguf.TokenType.UNUSED)] * vocab_size
    for text, i in vocab.items():
        if i >= vocab_size:
            raise ConfigError(
                f"GGUF export: token {text!r} has id {i} >= the model's vocab size {vocab_size}"
            )
        tokens[i], types[i] = text, int(gguf.TokenType.NORMAL)
    for i, added in tok.added_tokens_decoder.items():
        if i < vocab_size:
            special = bool(getattr(added, "special", False))
            types[i] = int(gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    with_special = tok("a")["input_ids"]
    without = tok("a", add_special_tokens=False)["input_ids"]
    return {
        "pre": _pre_tokenizer(tok_json, model_type),
        "tokens": tokens,
        "types": types,
        "merges": merges,
        "add_bos": len(with_special) > len(without) and with_special[0] == tok.bos_token_id,
        "bos": tok.bos_token_id,
        "eos": tok.eos_token_id,
        "unk": tok.unk_token_id,
        "pad": tok.pad_token_id,
    }


def _weight_type(name: str, shape: tuple[int, ...], quant: str) -> Any:
    gguf = _gguf()
    q = gguf.GGMLQuantizationType
    if len(shape) < 2 or quant == "f32":
        return q.F32
    if quant == "f16":
        return q.F16
    block = gguf.GGML_QUANT_SIZES[q.Q8_0][0]
    if shape[-1] % block:
        return q.F16  # rows not a whole number of quantisation blocks
    if quant == "q4_0" and name != "token_embd.weight":
        return q.Q4_0
    return q.Q8_0


def export_gguf(
    lm: Any, out_path: str | Path, quant: str = "f16", *, name: str | None = None
) -> Path:
    """Write ``lm`` (a :class:`aisec.llm.LocalLM`, LoRA merged) as a GGUF file, atomically.

    Args:
        lm: the model; a PEFT-wrapped model is merged first (on a copy of nothing: merging
            changes ``lm.model`` in place, as ``merge_and_unload`` does).
        out_path: the ``.gguf`` file to write.
        quant: ``f32`` | ``f16`` | ``q8_0`` | ``q4_0``.
        name: ``general.name`` (default: ``lm.name``).

    Raises:
        ConfigError: an architecture or tokenizer the exporter does not handle.
    """
    gguf = _gguf()
    if quant not in QUANTS:
        raise ParameterError("quant", f"must be one of {', '.join(QUANTS)}", quant)
    model = lm.model
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    cfg = model.config
    mtype = getattr(cfg, "model_type", None)
    if mtype not in _ARCHES:
        raise ConfigError(
            f"GGUF export supports model types {', '.join(_ARCHES)}; this model is {mtype!r}"
            + (" (gemma3 export is not implemented yet)" if str(mtype).startswith("gemma") else "")
        )
    arch = getattr(gguf.MODEL_ARCH, _ARCHES[mtype])
    arch_name = gguf.MODEL_ARCH_NAMES[arch]
    n_layer = int(cfg.num_hidden_layers)
    n_head = int(cfg.num_attention_heads)
    n_kv = int(getattr(cfg, "num_key_value_heads", None) or n_head)
    hidden = int(cfg.hidden_size)
    head_dim = int(getattr(cfg, "head_dim", None) or hidden // n_head)
    rope = getattr(cfg, "rope_parameters", None) or {}
    if (rope.get("rope_type") or "default") != "default":
        raise ConfigError(
            f"GGUF export: rope scaling {rope.get('rope_type')!r} is not written by this exporter"
        )
    theta = float(rope.get("rope_theta") or getattr(cfg, "rope_theta", 10000.0))
    tokf = _tokenizer_fields(lm.tokenizer, int(cfg.vocab_size), mtype)

    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        w = gguf.GGUFWriter(str(tmp), arch_name)
        w.add_type(gguf.GGUFType.MODEL)
        w.add_name(name or str(getattr(lm, "name", "model")))
        w.add_context_length(int(cfg.max_position_embeddings))
        w.add_embedding_length(hidden)
        w.add_block_count(n_layer)
        w.add_feed_forward_length(int(cfg.intermediate_size))
        w.add_head_count(n_head)
        w.add_head_count_kv(n_kv)
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)
        w.add_rope_dimension_count(head_dim)
        w.add_rope_freq_base(theta)
        w.add_layer_norm_rms_eps(float(cfg.rms_norm_eps))
        w.add_vocab_size(int(cfg.vocab_size))
        ftype = {
            "f32": "ALL_F32",
            "f16": "MOSTLY_F16",
            "q8_0": "MOSTLY_Q8_0",
            "q4_0": "MOSTLY_Q4_0",
        }
        w.add_file_type(int(getattr(gguf.LlamaFileType, ftype[quant])))
        w.add_quantization_version(gguf.GGML_QUANT_VERSION)
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre(tokf["pre"])
        w.add_token_list(tokf["tokens"])
        w.add_token_types(tokf["types"])
        w.add_token_merges(tokf["merges"])
        for key, adder in (
            ("bos", w.add_bos_token_id),
            ("eos", w.add_eos_token_id),
            ("unk", w.add_unk_token_id),
            ("pad", w.add_pad_token_id),
        ):
            if tokf[key] is not None:
                adder(int(tokf[key]))
        w.add_add_bos_token(bool(tokf["add_bos"]))
        template = getattr(getattr(lm, "chat", None), "template", None)
        if template:
            w.add_chat_template(template)

        names = gguf.get_tensor_name_map(arch, n_layer)
        state = model.state_dict()
        tied = bool(getattr(cfg, "tie_word_embeddings", False))
        for hf_name, tensor in state.items():
            if tied and hf_name == "lm_head.weight":
                continue
            if "rotary_emb" in hf_name:
                continue
            gg_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
            if gg_name is None:
                raise ConfigError(f"GGUF export: no GGUF name for tensor {hf_name!r} ({mtype})")
            data = tensor.detach().float().cpu().numpy()
            if mtype == "llama" and hf_name.endswith("q_proj.weight"):
                data = _interleave_rope(data, n_head)
            elif mtype == "llama" and hf_name.endswith("k_proj.weight"):
                data = _interleave_rope(data, n_kv)
            qtype = _weight_type(gg_name, data.shape, quant)
            if qtype == gguf.GGMLQuantizationType.F32:
                w.add_tensor(gg_name, data.astype(np.float32))
            elif qtype == gguf.GGMLQuantizationType.F16:
                w.add_tensor(gg_name, data.astype(np.float16))
            else:
                w.add_tensor(gg_name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out


_HASHES: dict[tuple[str, int, int], str] = {}


def _file_hash(path: Path) -> str:
    st = path.stat()
    memo = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if memo not in _HASHES:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
        _HASHES[memo] = h.hexdigest()
    return _HASHES[memo]


def _dir_hash(d: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(d.iterdir()):
        if f.is_file() and (f.suffix in (".json", ".safetensors", ".jinja", ".model")):
            h.update(f.name.encode() + b"\0" + _file_hash(f).encode())
    return h.hexdigest()


def model_key(spec: str, adapter: str | None = None) -> tuple[str, str]:
    """(display name, hash of the model's and adapter's files) for a spec :func:`export_cached`
    takes."""
    from aisec.llm.model import _adapter_base, _resolve

    loc, _ = _resolve(spec)
    p = Path(loc)
    parts: list[Path] = []
    name = Path(spec).name
    if (p / "adapter_config.json").exists():
        parts.append(p)
        loc, _ = _resolve(_adapter_base(p))
        p = Path(loc)
    if adapter is not None:
        parts.append(Path(adapter))
        name = Path(adapter).name
    if not p.is_dir() or not (p / "config.json").exists():
        raise ConfigError(
            f"GGUF export needs a transformers checkpoint directory (config.json); {spec!r} "
            f"resolves to {p}"
        )
    h = hashlib.sha256(_dir_hash(p).encode())
    for a in parts:
        h.update(_dir_hash(a).encode())
    return name, h.hexdigest()


def export_cached(spec: str, *, adapter: str | None = None, quant: str = "f16") -> Exported:
    """The GGUF of ``spec`` (+ ``adapter``) at ``quant``, exported once and cached by hash.

    ``spec`` is anything :func:`aisec.llm.load_causal_lm` loads as a checkpoint directory or an
    adapter directory (its base is loaded and the LoRA merged).
    """
    from aisec.assets.packages import cache_dir

    if quant not in QUANTS:
        raise ParameterError("quant", f"must be one of {', '.join(QUANTS)}", quant)
    name, digest = model_key(spec, adapter)
    key = hashlib.sha256(f"{digest}:{quant}:{EXPORTER_VERSION}".encode()).hexdigest()[:16]
    out = cache_dir() / "gguf" / f"{name}-{key}-{quant}.gguf"
    meta = out.with_suffix(".json")
    if out.exists() and meta.exists():
        info = json.loads(meta.read_text(encoding="utf-8"))
        return Exported(out, name, info.get("chat_template"), key, quant)
    from aisec.io import atomic_write_json
    from aisec.llm.model import load_causal_lm

    lm = load_causal_lm(spec, adapter=adapter)
    export_gguf(lm, out, quant, name=name)
    atomic_write_json(
        meta,
        {
            "name": name,
            "source": spec,
            "adapter": adapter,
            "quant": quant,
            "key": key,
            "model_hash": digest,
            "exporter": EXPORTER_VERSION,
            "chat_template": lm.chat.template,
        },
    )
    return Exported(out, name, lm.chat.template, key, quant)
