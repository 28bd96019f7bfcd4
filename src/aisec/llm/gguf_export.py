"""Export a transformers causal LM (full, or base + merged LoRA) to a GGUF file for llama.cpp.

Written on the ``gguf`` package's :class:`gguf.GGUFWriter`, its tensor-name maps
(:func:`gguf.get_tensor_name_map`) and its numpy quantisers. Architectures: Llama (SmolLM2),
Qwen2 and Gemma 3 (text).

Weight types (``quant``):

- ``f32``, ``f16``, ``q8_0`` and ``q4_0`` are written here for the 2-D weights; norms stay F32.
  In ``q4_0`` the token embedding (also the output matrix when tied) is kept at Q8_0.
- ``q4_k_m``, ``q5_k_m`` and ``q6_k`` are made by llama.cpp's own quantiser
  (``llama_model_quantize``) from our F16 export: the k-quant mixes (which tensors get more bits)
  are llama.cpp's, so they are not re-implemented here.

Llama's rotary layout differs between the two formats: transformers rotates the two halves of each
head, llama.cpp rotates adjacent pairs, so the rows of ``q_proj`` and ``k_proj`` are reordered
(half-split -> interleaved) per head; Qwen2 and Gemma 3 run with the half-split ("NeoX") layout
in llama.cpp and are written unchanged.

Gemma 3: transformers' ``Gemma3RMSNorm`` multiplies by ``1 + w`` and llama.cpp by ``w``, so every
norm weight (input, post-attention, pre- and post-feed-forward, q/k and final norms) is written
as ``1 + w``; llama.cpp scales the token embeddings by sqrt(hidden) itself, as transformers does,
so they are written raw; the output matrix is the tied embedding. The per-layer sliding/full
attention pattern (``layer_types``), the window, the global and the local rope bases go in the
header. The attention scale llama.cpp uses is 1/sqrt(head_dim) (1/sqrt(hidden/heads) for the
62-layer 27B), so a config whose ``query_pre_attn_scalar`` differs is refused, never written wrong.

The tokenizer goes in from the Hugging Face fast tokenizer: tokens, token types, special ids,
whether a BOS is added, and the chat template the model is used with (an adapter's
``aisec-chat.json`` included). Byte-level BPE tokenizers (SmolLM2, Qwen2) are written as ``gpt2``
with their merges and the pre-tokenizer name llama.cpp needs, read off the tokenizer's own
pre-tokenizer (byte-level GPT-2 regex -> ``gpt-2``; with single-digit splitting -> ``smollm``;
Qwen2 -> ``qwen2``). SentencePiece-style BPE with byte fallback (Gemma) is written as ``llama``
with one score per token: minus the rank of the merge that makes it, so llama.cpp's
highest-score-first merging replays the merges in order. An unknown tokenizer is a one-line
error, never a silent default.

:func:`export_cached` keys the file by a hash of the model's weights and config (and of the
adapter's), the weight type and this exporter's version. An adapter's export is kept next to it
(in ``.aisec-gguf/`` inside the adapter directory) when that directory is writable, else under
``$AISEC_CACHE_DIR/gguf/``; the metadata file beside the GGUF records which and why. Beside an
adapter one file per weight type is kept: an export made before the adapter changed is removed
when the new one is written.
"""

from __future__ import annotations

import ctypes
import glob
import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aisec.errors import ConfigError, DependencyError, ParameterError

__all__ = [
    "QUANTS",
    "LLAMACPP_QUANTS",
    "Exported",
    "export_gguf",
    "export_cached",
    "model_key",
    "quantize_llamacpp",
    "cache_location",
]

#: bump when the written file changes for the same inputs
EXPORTER_VERSION = "2"

#: weight types made by llama.cpp's quantiser from our F16 export (name -> llama.cpp ftype)
LLAMACPP_QUANTS = {
    "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M",
    "q5_k_m": "LLAMA_FTYPE_MOSTLY_Q5_K_M",
    "q6_k": "LLAMA_FTYPE_MOSTLY_Q6_K",
}

#: weight types the exporter writes itself (the 2-D weights; norms are F32)
WRITTEN_QUANTS = ("f32", "f16", "q8_0", "q4_0")

#: every weight type :func:`export_gguf` and :func:`export_cached` take
QUANTS = WRITTEN_QUANTS + tuple(LLAMACPP_QUANTS)

#: llama.cpp ftypes :func:`quantize_llamacpp` takes (its own quantiser; ``q8_0``/``q4_0`` too, to
#: compare with ours)
_FTYPES = {"q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0", "q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0", **LLAMACPP_QUANTS}

_ARCHES = {"llama": "LLAMA", "qwen2": "QWEN2", "gemma3_text": "GEMMA3"}

#: subdirectory of an adapter that holds its cached exports (ignored by git)
ADAPTER_CACHE = ".aisec-gguf"


@dataclass(frozen=True)
class Exported:
    """An exported GGUF: its path, display name, chat template, cache key and where it is kept."""

    path: Path
    name: str
    chat_template: str | None
    key: str
    quant: str
    location: str = "user-cache"


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


def _is_byte_level(tok_json: dict[str, Any]) -> bool:
    pre = tok_json.get("pre_tokenizer") or {}
    parts = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    return any(p.get("type") == "ByteLevel" for p in parts)


def _spm_space_prefix(tok_json: dict[str, Any]) -> bool:
    """Whether the SentencePiece-style tokenizer puts a "▁" before the text (llama.cpp's
    ``add_space_prefix``): a ``Prepend`` normaliser or a ``Metaspace`` that prepends."""
    norm = tok_json.get("normalizer") or {}
    steps = norm.get("normalizers", [norm]) if norm.get("type") == "Sequence" else [norm]
    if any(s.get("type") == "Prepend" for s in steps):
        return True
    pre = tok_json.get("pre_tokenizer") or {}
    parts = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    return any(
        p.get("type") == "Metaspace" and p.get("prepend_scheme", "always") != "never" for p in parts
    )


_BYTE_TOKEN = re.compile(r"<0x[0-9A-Fa-f]{2}>")


def _tokenizer_fields(tok: Any, vocab_size: int, model_type: str) -> dict[str, Any]:
    gguf = _gguf()
    tok_json = json.loads(tok.backend_tokenizer.to_str())
    model = tok_json.get("model") or {}
    if model.get("type") != "BPE":
        raise ConfigError(
            f"GGUF export supports BPE tokenizers (byte-level, or SentencePiece-style with byte "
            f"fallback); this one is {model.get('type')!r}"
        )
    spm = bool(model.get("byte_fallback")) and not _is_byte_level(tok_json)
    if model_type == "gemma3_text" and not spm:
        raise ConfigError(
            "GGUF export: a Gemma 3 tokenizer must be SentencePiece-style BPE with byte fallback "
            "(llama.cpp's 'llama' tokenizer); this one is not"
        )
    vocab = tok.get_vocab()
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    tokens = [f"[PAD{i}]" for i in range(vocab_size)]
    types = [int(gguf.TokenType.UNUSED)] * vocab_size
    scores = [-1e9] * vocab_size  # never preferred by llama.cpp's SentencePiece merging
    rank: dict[str, int] = {}
    if spm:
        for r, m in enumerate(merges):
            a, _, b = m.partition(" ")
            rank.setdefault(a + b, r)
    for text, i in vocab.items():
        if i >= vocab_size:
            raise ConfigError(
                f"GGUF export: token {text!r} has id {i} >= the model's vocab size {vocab_size}"
            )
        tokens[i], types[i] = text, int(gguf.TokenType.NORMAL)
        if spm and _BYTE_TOKEN.fullmatch(text):
            types[i], scores[i] = int(gguf.TokenType.BYTE), 0.0
        elif spm:
            # made by a merge: minus its rank (earlier merges win); a base symbol: below them all
            scores[i] = -float(rank[text]) if text in rank else -float(len(merges) + i)
    for i, added in tok.added_tokens_decoder.items():
        if i < vocab_size:
            special = bool(getattr(added, "special", False))
            types[i] = int(gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED)
            scores[i] = -1000.0
    if spm and tok.unk_token_id is not None and types[tok.unk_token_id] == gguf.TokenType.NORMAL:
        types[tok.unk_token_id] = int(gguf.TokenType.UNKNOWN)
    with_special = tok("a")["input_ids"]
    without = tok("a", add_special_tokens=False)["input_ids"]
    return {
        "model": "llama" if spm else "gpt2",
        "pre": "default" if spm else _pre_tokenizer(tok_json, model_type),
        "tokens": tokens,
        "types": types,
        "scores": scores if spm else None,
        "merges": None if spm else merges,
        "space_prefix": _spm_space_prefix(tok_json) if spm else None,
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


def _rope(cfg: Any, mtype: str) -> dict[str, Any]:
    """Rope bases and scaling: ``{"theta", "theta_swa", "linear"}``; unsupported kinds refused."""
    params = getattr(cfg, "rope_parameters", None) or {}
    if mtype == "gemma3_text":
        full = params.get("full_attention", params) if isinstance(params, dict) else {}
        local = params.get("sliding_attention", {}) if isinstance(params, dict) else {}
        if (local.get("rope_type") or "default") != "default":
            raise ConfigError(
                f"GGUF export: local (sliding) rope scaling {local.get('rope_type')!r} is not "
                "supported by llama.cpp's Gemma 3"
            )
        kind = full.get("rope_type") or "default"
        if kind not in ("default", "linear"):
            raise ConfigError(f"GGUF export: Gemma 3 rope scaling {kind!r} is not written here")
        theta = full.get("rope_theta") or getattr(cfg, "rope_theta", None) or 1_000_000.0
        theta_swa = local.get("rope_theta") or getattr(cfg, "rope_local_base_freq", None)
        return {
            "theta": float(theta),
            "theta_swa": float(theta_swa or 10000.0),
            "linear": float(full["factor"]) if kind == "linear" else None,
        }
    kind = params.get("rope_type") or "default"
    if kind != "default":
        raise ConfigError(f"GGUF export: rope scaling {kind!r} is not written by this exporter")
    theta = params.get("rope_theta") or getattr(cfg, "rope_theta", 10000.0)
    return {"theta": float(theta), "theta_swa": None, "linear": None}


def _gemma3_header(w: Any, cfg: Any, n_layer: int, hidden: int, n_head: int, head_dim: int) -> None:
    """Gemma 3's header fields: sliding window and per-layer pattern, soft-capping; refusals."""
    if getattr(cfg, "attn_logit_softcapping", None):
        raise ConfigError("GGUF export: Gemma 3 with attention logit soft-capping is not supported")
    if getattr(cfg, "use_bidirectional_attention", False):
        raise ConfigError("GGUF export: bidirectional (embedding) Gemma 3 is not a causal LM")
    scalar = float(getattr(cfg, "query_pre_attn_scalar", head_dim) or head_dim)
    expected = float(hidden // n_head) if n_layer == 62 else float(head_dim)
    if scalar != expected:
        raise ConfigError(
            f"GGUF export: Gemma 3 query_pre_attn_scalar {scalar:g} differs from the "
            f"{expected:g} llama.cpp scales attention by for a {n_layer}-layer model"
        )
    if cap := getattr(cfg, "final_logit_softcapping", None):
        w.add_final_logit_softcapping(float(cap))
    window = getattr(cfg, "sliding_window", None)
    types = list(getattr(cfg, "layer_types", None) or [])
    if window and types:
        if len(types) != n_layer or not set(types) <= {"sliding_attention", "full_attention"}:
            raise ConfigError(
                f"GGUF export: Gemma 3 layer_types must name sliding_attention or "
                f"full_attention for each of {n_layer} layers; got {types[:4]}..."
            )
        w.add_sliding_window(int(window))
        w.add_sliding_window_pattern([t == "sliding_attention" for t in types])


def export_gguf(
    lm: Any, out_path: str | Path, quant: str = "f16", *, name: str | None = None
) -> Path:
    """Write ``lm`` (a :class:`aisec.llm.LocalLM`, LoRA merged) as a GGUF file, atomically.

    Args:
        lm: the model; a PEFT-wrapped model is merged first (merging changes ``lm.model`` in
            place, as ``merge_and_unload`` does).
        out_path: the ``.gguf`` file to write.
        quant: one of :data:`QUANTS`; the llama.cpp k-quants (``q4_k_m`` ...) are made by
            llama.cpp's quantiser from an F16 export written first.
        name: ``general.name`` (default: ``lm.name``).

    Raises:
        ConfigError: an architecture, configuration or tokenizer the exporter does not handle.
    """
    if quant not in QUANTS:
        raise ParameterError("quant", f"must be one of {', '.join(QUANTS)}", quant)
    out = Path(out_path)
    if quant in LLAMACPP_QUANTS:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out.parent, prefix=".f16-") as d:
            f16 = _write_gguf(lm, Path(d) / "f16.gguf", "f16", name)
            return quantize_llamacpp(f16, out, quant)
    return _write_gguf(lm, out, quant, name)


def _write_gguf(lm: Any, out: Path, quant: str, name: str | None) -> Path:
    gguf = _gguf()
    model = lm.model
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    cfg = model.config
    mtype = getattr(cfg, "model_type", None)
    if mtype not in _ARCHES:
        hint = " (export the text model, Gemma3ForCausalLM)" if mtype == "gemma3" else ""
        raise ConfigError(
            f"GGUF export supports model types {', '.join(_ARCHES)}; this model is {mtype!r}{hint}"
        )
    arch = getattr(gguf.MODEL_ARCH, _ARCHES[mtype])
    arch_name = gguf.MODEL_ARCH_NAMES[arch]
    gemma = mtype == "gemma3_text"
    n_layer = int(cfg.num_hidden_layers)
    n_head = int(cfg.num_attention_heads)
    n_kv = int(getattr(cfg, "num_key_value_heads", None) or n_head)
    hidden = int(cfg.hidden_size)
    head_dim = int(getattr(cfg, "head_dim", None) or hidden // n_head)
    rope = _rope(cfg, mtype)
    tokf = _tokenizer_fields(lm.tokenizer, int(cfg.vocab_size), mtype)

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
        w.add_rope_freq_base(rope["theta"])
        if rope["linear"] is not None:
            w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
            w.add_rope_scaling_factor(rope["linear"])
        if gemma:
            w.add_rope_freq_base_swa(rope["theta_swa"])
            _gemma3_header(w, cfg, n_layer, hidden, n_head, head_dim)
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
        w.add_tokenizer_model(tokf["model"])
        w.add_tokenizer_pre(tokf["pre"])
        w.add_token_list(tokf["tokens"])
        w.add_token_types(tokf["types"])
        if tokf["scores"] is not None:
            w.add_token_scores(tokf["scores"])
            w.add_add_space_prefix(bool(tokf["space_prefix"]))
        if tokf["merges"] is not None:
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
        written: dict[str, str] = {}
        for hf_name, tensor in state.items():
            if tied and hf_name == "lm_head.weight":
                continue
            if "rotary_emb" in hf_name:
                continue
            gg_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
            if gg_name is None:
                raise ConfigError(f"GGUF export: no GGUF name for tensor {hf_name!r} ({mtype})")
            if gg_name in written:
                raise ConfigError(
                    f"GGUF export: tensors {written[gg_name]!r} and {hf_name!r} both map to "
                    f"{gg_name!r} ({mtype})"
                )
            written[gg_name] = hf_name
            data = tensor.detach().float().cpu().numpy()
            if mtype == "llama" and hf_name.endswith("q_proj.weight"):
                data = _interleave_rope(data, n_head)
            elif mtype == "llama" and hf_name.endswith("k_proj.weight"):
                data = _interleave_rope(data, n_kv)
            elif gemma and hf_name.endswith("norm.weight"):
                data = data + 1.0  # Gemma3RMSNorm scales by (1 + w); llama.cpp by w
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
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a cache others read should not be
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out


def quantize_llamacpp(
    src: str | Path,
    out_path: str | Path,
    quant: str,
    *,
    n_threads: int | None = None,
    keep_embeddings: str | None = None,
) -> Path:
    """Quantise the GGUF ``src`` (F16/F32) with llama.cpp's own quantiser, atomically.

    Args:
        src: an F16 or F32 GGUF (checked before llama.cpp reads it).
        out_path: the ``.gguf`` file to write.
        quant: ``q4_k_m`` | ``q5_k_m`` | ``q6_k`` | ``q8_0`` | ``q4_0`` (llama.cpp's mixes: in
            ``q4_k_m`` some tensors get Q6_K, and rows that are not a whole number of 256-wide
            k-quant blocks fall back to llama.cpp's legacy types).
        n_threads: quantiser threads (default: llama.cpp's choice).
        keep_embeddings: ``"f16"`` keeps the token embedding and the output matrix at F16
            (llama.cpp's ``token_embedding_type`` / ``output_tensor_type``).

    Raises:
        InputFileError: ``src`` is not a readable, complete GGUF (one line).
        ConfigError: llama.cpp refused to quantise it.
    """
    if quant not in _FTYPES:
        raise ParameterError("quant", f"must be one of {', '.join(_FTYPES)}", quant)
    if keep_embeddings not in (None, "f16"):
        raise ParameterError("keep_embeddings", "must be None or 'f16'", keep_embeddings)
    try:
        import llama_cpp
    except ImportError:
        raise DependencyError("llama_cpp", "llamacpp") from None
    from aisec.llm.llamacpp import check_gguf

    src = Path(src)
    check_gguf(src)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = int(getattr(llama_cpp, _FTYPES[quant]))
        params.nthread = int(n_threads or 0)
        if keep_embeddings == "f16":
            params.token_embedding_type = int(llama_cpp.GGML_TYPE_F16)
            params.output_tensor_type = int(llama_cpp.GGML_TYPE_F16)
        from llama_cpp._utils import suppress_stdout_stderr

        with suppress_stdout_stderr(disable=False):  # one log line per tensor otherwise
            rc = llama_cpp.llama_model_quantize(
                str(src).encode(), str(tmp).encode(), ctypes.byref(params)
            )
        if rc != 0:
            raise ConfigError(f"llama.cpp could not quantise {src} to {quant} (return code {rc})")
        os.chmod(tmp, 0o644)
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


def _sources(spec: str, adapter: str | None) -> tuple[str, Path, list[Path]]:
    """(display name, base checkpoint directory, adapter directories applied on it in order)."""
    from aisec.llm.model import _adapter_base, _resolve

    loc, _ = _resolve(spec)
    p = Path(loc)
    adapters: list[Path] = []
    name = Path(spec).name
    if (p / "adapter_config.json").exists():
        adapters.append(p)
        loc, _ = _resolve(_adapter_base(p))
        p = Path(loc)
    if adapter is not None:
        adapters.append(Path(adapter))
        name = Path(adapter).name
    if not p.is_dir() or not (p / "config.json").exists():
        raise ConfigError(
            f"GGUF export needs a transformers checkpoint directory (config.json); {spec!r} "
            f"resolves to {p}"
        )
    return name, p, adapters


def model_key(spec: str, adapter: str | None = None) -> tuple[str, str]:
    """(display name, hash of the model's and adapter's files) for a spec :func:`export_cached`
    takes."""
    name, base, adapters = _sources(spec, adapter)
    return name, _key_hash(base, adapters)


def _key_hash(base: Path, adapters: list[Path]) -> str:
    h = hashlib.sha256(_dir_hash(base).encode())
    for a in adapters:
        h.update(_dir_hash(a).encode())
    return h.hexdigest()


def _writable(d: Path) -> str | None:
    """None when files can be created in ``d`` (made if missing), else why not."""
    try:
        d.mkdir(exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".probe-", dir=d)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return None


def cache_location(adapter_dir: str | Path | None) -> tuple[Path, str, str]:
    """Where an export is cached: ``(directory, "adapter" | "user-cache", reason)``.

    Next to the adapter (its ``.aisec-gguf/`` subdirectory, which its hash ignores) when the
    adapter directory is writable; else the user cache ``$AISEC_CACHE_DIR/gguf``.
    """
    if adapter_dir is not None:
        d = Path(adapter_dir) / ADAPTER_CACHE
        problem = _writable(d) if Path(adapter_dir).is_dir() else "not a directory"
        if problem is None:
            return d, "adapter", f"next to the adapter {adapter_dir}"
        reason = f"the adapter directory {adapter_dir} is not writable ({problem})"
    else:
        reason = "not an adapter: exports of full checkpoints live in the user cache"
    d = _user_cache()
    d.mkdir(parents=True, exist_ok=True)
    return d, "user-cache", reason


def _user_cache() -> Path:
    from aisec.assets.packages import cache_dir

    return cache_dir() / "gguf"


def export_cached(spec: str, *, adapter: str | None = None, quant: str = "f16") -> Exported:
    """The GGUF of ``spec`` (+ ``adapter``) at ``quant``, exported once and cached by hash.

    ``spec`` is anything :func:`aisec.llm.load_causal_lm` loads as a checkpoint directory or an
    adapter directory (its base is loaded and the LoRA merged). The file is kept next to the
    adapter when its directory is writable, else in the user cache (:func:`cache_location`);
    an export already in either place is reused. The llama.cpp k-quants are made from the
    cached F16 export.
    """
    if quant not in QUANTS:
        raise ParameterError("quant", f"must be one of {', '.join(QUANTS)}", quant)
    name, base, adapters = _sources(spec, adapter)
    digest = _key_hash(base, adapters)
    key = hashlib.sha256(f"{digest}:{quant}:{EXPORTER_VERSION}".encode()).hexdigest()[:16]
    fname = f"{name}-{key}-{quant}.gguf"
    candidates = [(adapters[-1] / ADAPTER_CACHE, "adapter")] if adapters else []
    for d, loc in [*candidates, (_user_cache(), "user-cache")]:
        out = d / fname
        meta = out.with_suffix(".json")
        if out.exists() and meta.exists():
            info = json.loads(meta.read_text(encoding="utf-8"))
            return Exported(out, name, info.get("chat_template"), key, quant, loc)
    where, location, reason = cache_location(adapters[-1] if adapters else None)
    out = where / fname
    from aisec.io import atomic_write_json

    if quant in LLAMACPP_QUANTS:
        f16 = export_cached(spec, adapter=adapter, quant="f16")
        quantize_llamacpp(f16.path, out, quant)
        template = f16.chat_template
    else:
        from aisec.llm.model import load_causal_lm

        lm = load_causal_lm(spec, adapter=adapter)
        export_gguf(lm, out, quant, name=name)
        template = lm.chat.template
    atomic_write_json(
        out.with_suffix(".json"),
        {
            "name": name,
            "source": spec,
            "adapter": adapter,
            "quant": quant,
            "key": key,
            "model_hash": digest,
            "exporter": EXPORTER_VERSION,
            "chat_template": template,
            "location": location,
            "location_reason": reason,
        },
    )
    if location == "adapter":
        _drop_stale(where, name, quant, keep=out)
    return Exported(out, name, template, key, quant, location)


def _drop_stale(where: Path, name: str, quant: str, keep: Path) -> None:
    """Remove the adapter's older exports at ``quant`` (made before its weights changed), so the
    cache beside an adapter holds one file per weight type."""
    for old in where.glob(f"{glob.escape(name)}-*-{quant}.gguf"):
        if old != keep and re.fullmatch(
            rf"{re.escape(name)}-[0-9a-f]{{16}}-{quant}\.gguf", old.name
        ):
            old.unlink(missing_ok=True)
            old.with_suffix(".json").unlink(missing_ok=True)
