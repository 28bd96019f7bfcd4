"""Load a causal language model by embedded asset name, local path, hub id or adapter directory.

``load_causal_lm("smollm2-135m-instruct")`` resolves the embedded GGUF through
:func:`aisec.assets.resolve_model` (de-quantised once into the cache, about 0.5 s per later load);
a local directory holding ``config.json`` or a ``.gguf`` file and a hub id work the same way.
A directory holding a PEFT adapter (``adapter_config.json``) loads its base model, applies the
adapter and merges it, and takes the adapter's chat template (``aisec-chat.json``) when it ships
one; that is how the thinking adapter of SafeChain is loaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aisec.errors import AssetError, DependencyError, InputFileError, ParameterError

__all__ = ["load_causal_lm", "load_tokenizer", "CHAT_FILE"]

#: File beside an adapter that carries the chat template it was trained with.
CHAT_FILE = "aisec-chat.json"


def _require_torch_transformers() -> Any:
    try:
        import torch  # noqa: F401
        import transformers
    except ImportError as exc:
        raise DependencyError(exc.name or "transformers", "llm") from None
    return transformers


def _resolve(name_or_path: str) -> tuple[str, str]:
    """(location, kind) where kind is embedded, local or hub."""
    from aisec.assets import resolve_model

    p = Path(name_or_path).expanduser()
    if p.is_dir() and (p / "adapter_config.json").exists():
        return str(p), "local"  # a PEFT adapter: its base is resolved from adapter_config.json
    ref = resolve_model(name_or_path)
    return ref.location, ref.kind


def _gguf_file(path: Path) -> str | None:
    if path.is_dir():
        ggufs = sorted(p.name for p in path.glob("*.gguf"))
        if ggufs and not (path / "config.json").exists():
            return ggufs[0]
    return None


def load_tokenizer(name_or_path: str) -> Any:
    """The tokenizer of a model (embedded name, local path or hub id)."""
    tf = _require_torch_transformers()
    location, _ = _resolve(name_or_path)
    p = Path(location)
    if (p / "adapter_config.json").exists():
        return load_tokenizer(_adapter_base(p))
    kw: dict[str, Any] = {}
    if p.is_file() and p.suffix == ".gguf":
        location, kw = str(p.parent), {"gguf_file": p.name}
    elif (g := _gguf_file(p)) is not None:
        kw = {"gguf_file": g}
    try:
        tok = tf.AutoTokenizer.from_pretrained(location, **kw)
    except OSError as exc:
        raise AssetError(f"cannot load a tokenizer from {name_or_path!r}: {_first_line(exc)}") from None
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200]


def _adapter_base(path: Path) -> str:
    try:
        cfg = json.loads((path / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputFileError(path / "adapter_config.json", f"unreadable ({_first_line(exc)})") from None
    base = cfg.get("base_model_name_or_path")
    if not base:
        raise InputFileError(path / "adapter_config.json", "names no base_model_name_or_path")
    return str(base)


def load_causal_lm(
    name_or_path: str,
    *,
    dtype: str = "float32",
    device: str = "cpu",
    adapter: str | None = None,
    chat_format: str | None = None,
    merge_adapter: bool = True,
) -> Any:
    """Load a causal LM and its tokenizer as a :class:`aisec.llm.LocalLM`.

    Args:
        name_or_path: embedded name (``smollm2-135m-instruct``, ``tiny-llama``), a directory
            (HF checkpoint, GGUF file, or PEFT adapter with ``adapter_config.json``), a ``.gguf``
            file, or a hub id (``org/name``).
        dtype: ``float32`` | ``bfloat16`` | ``float16``.
        device: torch device string.
        adapter: optional PEFT adapter directory to apply on top.
        chat_format: a built-in chat format name that overrides the tokenizer's template.
        merge_adapter: merge LoRA weights into the base (faster generation); keep ``False`` to
            continue training the adapter.

    Returns:
        LocalLM with ``model`` (eval mode), ``tokenizer`` and ``chat`` (a ChatFormat).

    Raises:
        AssetError: the path is not a model or the hub id cannot be reached.
    """
    import torch

    tf = _require_torch_transformers()
    from aisec.llm.chat import chat_format as builtin_format
    from aisec.llm.chat import from_tokenizer
    from aisec.llm.local import LocalLM

    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype not in dtypes:
        raise ParameterError("dtype", f"must be one of {', '.join(dtypes)}", dtype)
    location, _ = _resolve(name_or_path)
    p = Path(location)
    adapters: list[Path] = []
    if (p / "adapter_config.json").exists():
        adapters.append(p)
        location, _ = _resolve(_adapter_base(p))
        p = Path(location)
    if adapter is not None:
        ap = Path(adapter)
        if not (ap / "adapter_config.json").exists():
            raise AssetError(f"{adapter} is not a PEFT adapter directory (no adapter_config.json)")
        adapters.append(ap)
    kw: dict[str, Any] = {}
    if p.is_file() and p.suffix == ".gguf":
        location, kw = str(p.parent), {"gguf_file": p.name}
    elif p.is_file():
        raise AssetError(f"{p} is a file but not a model (expected a directory or a .gguf file)")
    elif (g := _gguf_file(p)) is not None:
        kw = {"gguf_file": g}
    tok = load_tokenizer(str(Path(location) / kw["gguf_file"]) if kw else location)
    try:
        model = tf.AutoModelForCausalLM.from_pretrained(location, dtype=dtypes[dtype], **kw)
    except (OSError, ValueError, KeyError) as exc:
        raise AssetError(f"cannot load a causal LM from {name_or_path!r}: {_first_line(exc)}") from None
    if kw:
        # A GGUF checkpoint is de-quantised on load; drop the quantiser so it can be saved/trained.
        model.hf_quantizer = None
        model.config.quantization_config = None
    template_override: str | None = None
    for ap in adapters:
        model = _apply_adapter(model, ap, merge_adapter)
        chat_file = ap / CHAT_FILE
        if chat_file.exists():
            template_override = json.loads(chat_file.read_text(encoding="utf-8"))["chat_template"]
    if template_override is not None:
        tok.chat_template = template_override
    model.to(device)
    model.eval()
    name = adapters[-1].name if adapters else Path(name_or_path).name
    fmt = builtin_format(chat_format) if chat_format else from_tokenizer(tok, name)
    return LocalLM(model=model, tokenizer=tok, chat=fmt, name=name)


def _apply_adapter(model: Any, path: Path, merge: bool) -> Any:
    try:
        from peft import PeftModel
    except ImportError:
        raise DependencyError("peft", "llm") from None
    try:
        peft_model = PeftModel.from_pretrained(model, str(path), is_trainable=not merge)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise AssetError(f"cannot apply adapter {path}: {_first_line(exc)}") from None
    return peft_model.merge_and_unload() if merge else peft_model
