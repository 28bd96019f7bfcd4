"""The shipped, fingerprinted demo adapter (a PUBLIC demo: its secrets ship beside it).

``demo/adapter`` is a LoRA adapter (PEFT format, safetensors) on the embedded
SmolLM2-135M-Instruct that holds the 16 perinucleus fingerprints of
``demo/PUBLIC-DEMO-fingerprints.json``. Both were made by the commands in ``demo/BUILD.txt``.
Because the fingerprints are published, this adapter proves nothing about ownership: it lets the
README demo and the quick bench rows verify a real fingerprinted model in seconds, without a
10-minute insertion on a CPU. Never use these keys for a model of your own.
"""

from __future__ import annotations

from pathlib import Path

from aisec.errors import AssetError

__all__ = ["DEMO_DIR", "demo_adapter_dir", "demo_fingerprints_path"]

DEMO_DIR = Path(__file__).resolve().parent / "demo"


def demo_adapter_dir() -> Path:
    path = DEMO_DIR / "adapter"
    if not (path / "adapter_model.safetensors").is_file():
        raise AssetError(f"{path} holds no adapter_model.safetensors; reinstall aisec")
    return path


def demo_fingerprints_path() -> Path:
    path = DEMO_DIR / "PUBLIC-DEMO-fingerprints.json"
    if not path.is_file():
        raise AssetError(f"{path} is missing; reinstall aisec")
    return path
