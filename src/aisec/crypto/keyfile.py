"""Length-prefixed big-integer records: the body of aisec's key files.

Each integer is written as a 4-byte big-endian length and its big-endian bytes, so a key file is
its scheme's magic line followed by a fixed number of such records. Reading checks the count and
that nothing trails, and names the file in a one-line error otherwise.
"""

from __future__ import annotations

import struct

from aisec.errors import InputFileError

__all__ = ["pack_ints", "unpack_ints"]


def pack_ints(*values: int) -> bytes:
    """Serialise non-negative integers as length-prefixed big-endian records."""
    out = bytearray()
    for v in values:
        raw = int(v).to_bytes((int(v).bit_length() + 7) // 8 or 1, "big")
        out += struct.pack(">I", len(raw)) + raw
    return bytes(out)


def unpack_ints(buf: bytes, count: int, where: str, what: str) -> list[int]:
    """Read exactly ``count`` records from ``buf``; ``what`` names the key kind in errors."""
    out, pos = [], 0
    try:
        for _ in range(count):
            (size,) = struct.unpack_from(">I", buf, pos)
            pos += 4
            if pos + size > len(buf):
                raise ValueError("truncated")
            out.append(int.from_bytes(buf[pos : pos + size], "big"))
            pos += size
    except (struct.error, ValueError):
        raise InputFileError(where, f"not a valid {what}") from None
    if pos != len(buf):
        raise InputFileError(where, f"not a valid {what} (trailing bytes)")
    return out
