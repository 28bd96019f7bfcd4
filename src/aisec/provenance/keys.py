"""Watermark key files: a JSON document written with owner-only permissions (0600).

Format (``aisec-watermark-key`` version 1): method name, latent shape, method parameters and the
secret material as base64 arrays. Keys are never logged; :class:`WatermarkKey`'s repr hides them.
Loading rejects a file that is not a key, a truncated/corrupt one, one whose parameters and
material disagree (the whole key is validated against its method: every entry present, of the
right dtype and shape, bits in {0, 1}), or one of another method, with a one-line error.

The public demo key (:func:`demo_key`, ``aisec watermark keygen --demo``) is the benchmark key:
GaussMarker's key drawn from ``InsecureRandom(0)`` for the embedded DDPM's latent, the key the
shipped GNR and fusers belong to. Its seed is published, so it is INSECURE: anyone can detect
and forge its mark. It exists so that a first-time user reaches the shipped GNR and fusers in
minutes; its file says ``"insecure_demo": true`` and the CLI labels it wherever it is used.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np

from aisec.errors import ConfigError, InputFileError
from aisec.provenance.base import WatermarkKey

__all__ = ["save_key", "load_key", "demo_key", "KEY_FORMAT", "DEMO_SEED"]

KEY_FORMAT = "aisec-watermark-key"
DEMO_SEED = 0  # public: the demo key is the benchmark key of the robustness run with seed 0
DEMO_METHOD = "gaussmarker"


def demo_key(latent_shape: tuple[int, int, int] = (4, 16, 16)) -> WatermarkKey:
    """The public, INSECURE GaussMarker demo key for ``latent_shape`` (default: the embedded
    DDPM's), regenerated deterministically from :data:`DEMO_SEED`."""
    import dataclasses
    import warnings

    from aisec.provenance.base import get_method
    from aisec.rng import InsecureRandom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # insecure on purpose, and labelled so
        # ring pattern: the benchmark key's, which the shipped fusers were fitted on (public
        # anyway, so the ring key's low entropy costs nothing)
        method = get_method(DEMO_METHOD, tr={"pattern": "rings"})
        key = method.keygen(tuple(latent_shape), InsecureRandom(DEMO_SEED))
    return dataclasses.replace(key, demo=True)


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
    if key.demo:
        doc["insecure_demo"] = True
        doc["warning"] = "PUBLIC DEMO KEY: its seed is published; anyone can detect or forge it"
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
        _upgrade_params(doc)
        key = WatermarkKey(
            method=str(doc["method"]),
            latent_shape=tuple(int(s) for s in doc["latent_shape"]),
            params=dict(doc["params"]),
            material={k: _dec(v) for k, v in doc["material"].items()},
            demo=doc.get("insecure_demo") is True,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        what = f"missing entry {exc}" if isinstance(exc, KeyError) else f"{exc}"
        raise InputFileError(p, f"corrupt watermark key ({type(exc).__name__}: {what})") from None
    if method is not None and key.method != method:
        raise ConfigError(f"key file {p} is for method {key.method!r}, not {method!r}")
    validate_key(key, p)
    return key


def _upgrade_params(doc: dict[str, Any]) -> None:
    """Keys written before Tree-Ring's ``pattern`` parameter hold ring patterns: say so."""
    params = doc.get("params")
    if not isinstance(params, dict):
        return
    tr = params.get("tr") if doc.get("method") == "gaussmarker" else params
    if doc.get("method") in ("gaussmarker", "tree_ring") and isinstance(tr, dict):
        tr.setdefault("pattern", "rings")


def validate_key(key: WatermarkKey, source: str | Path = "key") -> None:
    """Validate the whole key against its method (one-line :class:`InputFileError` naming
    ``source``): known method, valid parameters, material that fits them."""
    import aisec.provenance  # noqa: F401  (registers every method)
    from aisec.provenance.base import IMAGE_WATERMARKS, get_method

    if key.method not in IMAGE_WATERMARKS.names():
        raise InputFileError(source, f"corrupt watermark key (unknown method {key.method!r})")
    try:
        get_method(key.method, **key.params).validate_key(key)
    except ConfigError as exc:  # ParameterError is one too
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputFileError(source, f"corrupt watermark key: {msg}") from None
