"""Watermark key files: a JSON document written with owner-only permissions (0600).

Format (``aisec-watermark-key`` version 1): method name, latent shape, method parameters and the
secret material as base64 arrays. Keys are never logged; :class:`WatermarkKey`'s repr hides them.
Loading rejects a file that is not a key, a truncated/corrupt one, or one of another method with
a one-line error.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np

from aisec.errors import ConfigError, InputFileError
from aisec.provenance.base import WatermarkKey

__all__ = ["save_key", "load_key", "KEY_FORMAT"]

KEY_FORMAT = "aisec-watermark-key"


def _enc(a: np.ndarray) -> dict[str, Any]:
    a = np.ascontiguousarray(a)
    return {
        "dtype": a.dtype.str,
        "shape": list(a.shape),
        "data": base64.b64encode(a.tobytes()).decode(),
    }


def _dec(d: dict[str, Any]) -> np.ndarray:
    raw = base64.b64decode(d["data"], validate=True)
    return np.frombuffer(raw, dtype=np.dtype(d["dtype"])).reshape(d["shape"]).copy()


def save_key(key: WatermarkKey, path: str | Path) -> Path:
    """Write ``key`` to ``path`` atomically with mode 0600."""
    from aisec.io import write_private

    doc = {
        "format": KEY_FORMAT,
        "version": 1,
        "method": key.method,
        "latent_shape": list(key.latent_shape),
        "params": key.params,
        "material": {k: _enc(v) for k, v in key.material.items()},
    }
    return write_private(path, json.dumps(doc).encode())


def load_key(path: str | Path, method: str | None = None) -> WatermarkKey:
    """Read a key file; with ``method``, reject a key of any other method."""
    p = Path(path)
    if not p.is_file():
        raise InputFileError(p, "no such key file")
    try:
        doc = json.loads(p.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InputFileError(
            p, "not a watermark key (not JSON; truncated or wrong file?)"
        ) from None
    if not isinstance(doc, dict) or doc.get("format") != KEY_FORMAT:
        raise InputFileError(p, f"not a watermark key (format is not {KEY_FORMAT!r})")
    try:
        key = WatermarkKey(
            method=str(doc["method"]),
            latent_shape=tuple(int(s) for s in doc["latent_shape"]),
            params=dict(doc["params"]),
            material={k: _dec(v) for k, v in doc["material"].items()},
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InputFileError(p, f"corrupt watermark key ({type(exc).__name__}: {exc})") from None
    if method is not None and key.method != method:
        raise ConfigError(f"key file {p} is for method {key.method!r}, not {method!r}")
    return key
