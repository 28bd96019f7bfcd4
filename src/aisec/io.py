"""Atomic file writes: write to a temporary file beside the target, fsync, then rename.

A crash leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

__all__ = [
    "read_jsonl_rows",
    "iter_jsonl",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "save_safetensors",
    "load_safetensors",
    "write_private",
]


@contextmanager
def atomic_path(path: str | os.PathLike[str], mode: int | None = None) -> Iterator[Path]:
    """Yield a temporary path; on success it is renamed over ``path`` (with ``mode`` if given)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if mode is None:  # mkstemp makes 0600 files; ordinary outputs follow the umask
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp_path, mode)
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, mode: int | None = None) -> Path:
    with atomic_path(path, mode) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str, mode: int | None = None) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"), mode)


def atomic_write_json(path: str | os.PathLike[str], obj: Any, mode: int | None = None) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n", mode)


def write_private(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write secret material (keys) atomically with owner-only permissions (0600)."""
    return atomic_write_bytes(path, data, mode=0o600)


def save_safetensors(
    path: str | os.PathLike[str], tensors: Mapping[str, Any], metadata: Mapping[str, str] | None = None
) -> Path:
    """Save torch tensors or numpy arrays as safetensors, atomically (never pickle)."""
    items = dict(tensors)
    with atomic_path(path) as tmp:
        first = next(iter(items.values()), None)
        if first is not None and type(first).__module__.startswith("torch"):
            from safetensors.torch import save_file

            save_file({k: v.detach().contiguous().cpu() for k, v in items.items()}, str(tmp),
                      metadata=dict(metadata or {}))
        else:
            import numpy as np
            from safetensors.numpy import save_file

            save_file({k: np.ascontiguousarray(v) for k, v in items.items()}, str(tmp),
                      metadata=dict(metadata or {}))
    return Path(path)


def load_safetensors(path: str | os.PathLike[str], framework: str = "pt") -> dict[str, Any]:
    """Load a safetensors file as torch tensors (``pt``) or numpy arrays (``np``)."""
    from aisec.errors import InputFileError

    p = Path(path)
    if not p.is_file():
        raise InputFileError(p, "no such file")
    try:
        if framework == "pt":
            from safetensors.torch import load_file
        else:
            from safetensors.numpy import load_file
        return load_file(str(p))
    except Exception as exc:  # safetensors raises its own error types on corrupt headers
        raise InputFileError(p, f"not a valid safetensors file ({type(exc).__name__})") from None


def iter_jsonl(path: str | os.PathLike[str]) -> Iterator[tuple[int, Any]]:
    """Yield (line number, parsed value) for each non-blank line of a JSONL file.

    A missing file or a line that is not JSON raises a one-line :class:`InputFileError`.
    """
    from aisec.errors import InputFileError

    p = Path(path)
    if not p.is_file():
        raise InputFileError(p, "no such file")
    for ln, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield ln, json.loads(line)
        except ValueError:
            raise InputFileError(p, f"line {ln} is not JSON") from None


def read_jsonl_rows(path: str | os.PathLike[str]) -> list[Any]:
    """Rows of an append-only JSONL log; a missing file is empty and a line that does not parse
    (a torn last line left by a crash mid-write) is skipped."""
    p = Path(path)
    if not p.exists():
        return []
    rows = []
    for line in p.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows


def open_append_line(path: str | os.PathLike[str]) -> IO[str]:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return open(path, "a", encoding="utf-8")
