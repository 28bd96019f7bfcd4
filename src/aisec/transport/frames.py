"""Wire format: length-prefixed frames of a JSON header plus raw bytes; no pickle.

A frame is ``MAGIC (4) | version (1) | header length (4, BE) | payload length (8, BE) | header |
payload``. The header is UTF-8 JSON: ``{"step": str, "meta": {...}, "fields": [...]}`` where each
field names its kind and its slice of the payload:

* ``array``: a numeric numpy array (dtype string and shape); object dtypes are refused;
* ``bigints``: signed integers of any size as fixed-width two's-complement big-endian blocks;
* ``bytes``: raw bytes (e.g. ciphertexts already serialised by their key).

A message is a ``dict[str, value]``; JSON scalars, lists and dicts go into ``meta``.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np

from aisec.errors import ParameterError

__all__ = [
    "MAGIC",
    "VERSION",
    "PREFIX",
    "BigInts",
    "encode",
    "decode",
    "parse_prefix",
    "FrameError",
]

MAGIC = b"AISF"
VERSION = 1
PREFIX = struct.Struct(">4sBIQ")
MAX_HEADER = 1 << 20
MAX_PAYLOAD = 1 << 34


class FrameError(ValueError):
    """A frame that is not ours, of another version, or malformed."""


class BigInts(list):
    """A list of Python integers to send as fixed-width signed blocks."""


def _field_bytes(name: str, value: Any) -> tuple[dict[str, Any], bytes] | None:
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biufc":
            raise ParameterError(
                name, "must be a numeric array (no object dtype on the wire)", str(value.dtype)
            )
        arr = np.ascontiguousarray(value)
        return {
            "name": name,
            "kind": "array",
            "dtype": arr.dtype.str,
            "shape": list(arr.shape),
        }, arr.tobytes()
    if isinstance(value, BigInts):
        width = max([(int(v).bit_length() + 8) // 8 for v in value] + [1])
        raw = b"".join(int(v).to_bytes(width, "big", signed=True) for v in value)
        return {"name": name, "kind": "bigints", "width": width, "count": len(value)}, raw
    if isinstance(value, bytes | bytearray | memoryview):
        return {"name": name, "kind": "bytes"}, bytes(value)
    return None


def encode(step: str, message: dict[str, Any]) -> bytes:
    """A message as one frame."""
    fields, chunks, meta, offset = [], [], {}, 0
    for name, value in message.items():
        got = _field_bytes(name, value)
        if got is None:
            meta[name] = value
            continue
        head, raw = got
        head["offset"], head["size"] = offset, len(raw)
        offset += len(raw)
        fields.append(head)
        chunks.append(raw)
    try:
        header = json.dumps(
            {"step": step, "meta": meta, "fields": fields}, separators=(",", ":"), allow_nan=False
        ).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise ParameterError(
            "message", "must hold arrays, BigInts, bytes or JSON values", str(exc)
        ) from None
    payload = b"".join(chunks)
    return PREFIX.pack(MAGIC, VERSION, len(header), len(payload)) + header + payload


def parse_prefix(prefix: bytes) -> tuple[int, int]:
    """Header and payload lengths from a frame prefix; raises FrameError on a foreign frame."""
    if len(prefix) != PREFIX.size:
        raise FrameError("truncated frame prefix")
    magic, version, hlen, plen = PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise FrameError("not an aisec frame (bad magic)")
    if version != VERSION:
        raise FrameError(f"wire version {version} is not supported (this side speaks {VERSION})")
    if hlen > MAX_HEADER or plen > MAX_PAYLOAD:
        raise FrameError(f"frame too large (header {hlen} B, payload {plen} B)")
    return hlen, plen


def decode(frame: bytes) -> tuple[str, dict[str, Any]]:
    """``(step, message)`` from one frame."""
    hlen, plen = parse_prefix(frame[: PREFIX.size])
    body = frame[PREFIX.size :]
    if len(body) != hlen + plen:
        raise FrameError("frame length does not match its prefix")
    try:
        header = json.loads(body[:hlen].decode("utf-8"))
        step, meta, fields = header["step"], dict(header["meta"]), header["fields"]
    except (ValueError, KeyError, TypeError):
        raise FrameError("malformed frame header") from None
    payload = memoryview(body)[hlen:]
    out: dict[str, Any] = dict(meta)
    for f in fields:
        try:
            raw = payload[f["offset"] : f["offset"] + f["size"]]
            if len(raw) != f["size"]:
                raise FrameError("field outside the payload")
            if f["kind"] == "array":
                dt = np.dtype(f["dtype"])
                if dt.kind not in "biufc":
                    raise FrameError("non-numeric array on the wire")
                out[f["name"]] = np.frombuffer(raw, dtype=dt).reshape(f["shape"]).copy()
            elif f["kind"] == "bigints":
                w, k = int(f["width"]), int(f["count"])
                if w * k != len(raw):
                    raise FrameError("bigint block size mismatch")
                b = bytes(raw)
                out[f["name"]] = BigInts(
                    int.from_bytes(b[i * w : (i + 1) * w], "big", signed=True) for i in range(k)
                )
            elif f["kind"] == "bytes":
                out[f["name"]] = bytes(raw)
            else:
                raise FrameError(f"unknown field kind {f['kind']!r}")
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, FrameError):
                raise
            raise FrameError("malformed field") from None
    return step, out
