"""Files: atomic writes, user input files (JSONL, CSV), append-only logs that resume.

An atomic write goes to a temporary file beside the target, is fsynced, then renamed: a crash
leaves either the old file or the new one, never half of one. An append-only log
(:class:`JsonlStore`) keeps every finished batch of rows through a crash; at most its last line
is torn, and that line is tolerated and reported.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import tempfile
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

__all__ = [
    "JsonlStore",
    "read_jsonl_rows",
    "iter_jsonl",
    "iter_records",
    "read_user_text",
    "json_safe",
    "dumps_json",
    "fingerprint",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "save_safetensors",
    "load_safetensors",
    "write_private",
    "require_private",
]

_log = logging.getLogger("aisec.io")


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
    """Write ``obj`` as real JSON (NaN and infinities as null, numpy values as numbers)."""
    return atomic_write_text(path, dumps_json(obj, indent=2, sort_keys=True) + "\n", mode)


def write_private(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write secret material (keys) atomically with owner-only permissions (0600)."""
    return atomic_write_bytes(path, data, mode=0o600)


def require_private(path: str | os.PathLike[str], what: str, flag: str | None = None) -> Path:
    """Refuse a secret file that other users can access (any group/other permission bit), as
    ssh refuses an unprotected private key; ``flag`` names the option that accepts it anyway.
    No check where the OS has no POSIX modes."""
    from aisec.errors import InputFileError

    p = Path(path)
    if os.name != "posix" or not p.is_file():
        return p
    mode = p.stat().st_mode & 0o777
    if mode & 0o077:
        raise InputFileError(
            p,
            f"{what} is a secret but other users can access it (mode {mode:04o}); "
            f"run `chmod 600 {p}`" + (f", or pass {flag} to use it anyway" if flag else ""),
        )
    return p


def save_safetensors(
    path: str | os.PathLike[str],
    tensors: Mapping[str, Any],
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Save torch tensors or numpy arrays as safetensors, atomically (never pickle)."""
    items = dict(tensors)
    with atomic_path(path) as tmp:
        first = next(iter(items.values()), None)
        if first is not None and type(first).__module__.startswith("torch"):
            from safetensors.torch import save_file

            save_file(
                {k: v.detach().contiguous().cpu() for k, v in items.items()},
                str(tmp),
                metadata=dict(metadata or {}),
            )
        else:
            import numpy as np
            from safetensors.numpy import save_file

            save_file(
                {k: np.ascontiguousarray(v) for k, v in items.items()},
                str(tmp),
                metadata=dict(metadata or {}),
            )
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


# --- reading user files ---------------------------------------------------------------------

_BOM = b"\xef\xbb\xbf"


def _user_file_bytes(path: str | os.PathLike[str]) -> tuple[Path, bytes]:
    """The bytes of a file the user named, without a UTF-8 byte-order mark."""
    from aisec.errors import InputFileError

    p = Path(path)
    if p.is_dir():
        raise InputFileError(p, "is a directory, not a file")
    if not p.exists():
        raise InputFileError(p, "no such file")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputFileError(p, f"cannot be read ({exc.strerror or type(exc).__name__})") from None
    return p, data[len(_BOM) :] if data.startswith(_BOM) else data


def _not_utf8(p: Path, data: bytes, exc: UnicodeDecodeError, line: int | None = None) -> Exception:
    from aisec.errors import InputFileError

    if line is None:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
    else:
        col = exc.start + 1
    byte = exc.object[exc.start]
    return InputFileError(
        p,
        f"line {line} is not UTF-8 text (byte 0x{byte:02x} at column {col}); "
        "save the file as UTF-8",
    )


def read_user_text(path: str | os.PathLike[str]) -> str:
    """The text of a file the user named (UTF-8, a byte-order mark dropped).

    A missing file, a directory or bytes that are not UTF-8 raise a one-line
    :class:`InputFileError` naming the file (and the line of the first bad byte).
    """
    p, data = _user_file_bytes(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _not_utf8(p, data, exc) from None


def iter_jsonl(path: str | os.PathLike[str]) -> Iterator[tuple[int, Any]]:
    """Yield (line number, parsed value) for each non-blank line of a JSONL file.

    A UTF-8 byte-order mark is accepted. A missing file, a directory, a line that is not UTF-8 or
    not JSON raises a one-line :class:`InputFileError` naming the file (and the line).
    """
    from aisec.errors import InputFileError

    p, data = _user_file_bytes(path)
    # split on "\n" only: str.splitlines would also split inside strings holding U+2028
    for ln, raw in enumerate(data.split(b"\n"), 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _not_utf8(p, raw, exc, ln) from None
        if not line.strip():
            continue
        try:
            yield ln, json.loads(line)
        except ValueError:
            raise InputFileError(p, f"line {ln} is not JSON") from None


def iter_records(path: str | os.PathLike[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, row) for each row of a JSONL or CSV file (CSV when the name ends in
    ``.csv``; its first line names the columns, as in XSTest or HarmBench files).

    CSV cells are strings (an empty cell is ``""``). Errors are one-line :class:`InputFileError`
    naming the file and the line: not UTF-8, not JSON, a JSON row that is not an object, a CSV
    row with more cells than the header has columns, a header without names or with repeats.
    """
    import csv
    import io as _io

    from aisec.errors import InputFileError

    if not str(path).lower().endswith(".csv"):
        for ln, row in iter_jsonl(path):
            if not isinstance(row, dict):
                raise InputFileError(path, f"line {ln} is not a JSON object")
            yield ln, row
        return
    p, data = _user_file_bytes(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _not_utf8(p, data, exc) from None
    reader = csv.reader(_io.StringIO(text, newline=""))
    header: list[str] | None = None
    start = 1
    try:
        for cells in reader:
            ln, start = start, reader.line_num + 1
            if not cells or not any(c.strip() for c in cells):
                continue
            if header is None:
                header = [c.strip() for c in cells]
                if not all(header) or len(set(header)) != len(header):
                    raise InputFileError(
                        p,
                        f"line {ln}: the CSV header needs distinct, "
                        f"non-empty column names; got {header}",
                    )
                continue
            if len(cells) > len(header):
                raise InputFileError(
                    p, f"line {ln} has {len(cells)} cells; the header names {len(header)} columns"
                )
            yield ln, dict(zip(header, cells + [""] * (len(header) - len(cells)), strict=True))
    except csv.Error as exc:
        raise InputFileError(p, f"line {reader.line_num} is not valid CSV ({exc})") from None


# --- JSON that is JSON ----------------------------------------------------------------------


def json_safe(value: Any) -> Any:
    """A copy of ``value`` that ``json.dumps(..., allow_nan=False)`` accepts: NaN and infinities
    become None, numpy scalars and arrays Python numbers and lists, tuples lists, keys strings."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars, without importing numpy
    if tolist is not None and type(value).__module__ == "numpy":
        return json_safe(tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dumps_json(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`json_safe` ``(value)``, refusing NaN (so the text is real JSON)."""
    kwargs.setdefault("default", str)
    return json.dumps(json_safe(value), allow_nan=False, **kwargs)


def fingerprint(value: Any) -> str:
    """A short stable hash (16 hex digits of SHA-256) of a JSON-able value, key order ignored."""
    blob = dumps_json(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


# --- append-only logs that resume ----------------------------------------------------------


def _read_log(path: Path) -> tuple[list[Any], int | None]:
    """Rows of an append-only JSONL log and the line number of a torn last line (or None)."""
    from aisec.errors import InputFileError

    if not path.exists():
        return [], None
    if path.is_dir():
        raise InputFileError(path, "is a directory, not a file")
    data = path.read_bytes()
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    lines = data.split(b"\n")
    rows: list[Any] = []
    torn = None
    for ln, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            rows.append(json.loads(raw.decode("utf-8")))
        except ValueError as exc:  # UnicodeDecodeError is a ValueError too
            if ln == len(lines):  # no newline after it: a write cut short by a crash
                torn = ln
                continue
            what = "UTF-8 text" if isinstance(exc, UnicodeDecodeError) else "JSON"
            raise InputFileError(
                path,
                f"line {ln} is not {what}; only a torn last line (a write "
                "cut short by a crash) is tolerated in a log",
            ) from None
    return rows, torn


def _report_torn(path: Path, line: int) -> None:
    _log.warning(
        "%s: line %d was cut short by an interrupted write; it is ignored and will be rewritten",
        path,
        line,
    )


def read_jsonl_rows(path: str | os.PathLike[str]) -> list[Any]:
    """Rows of an append-only JSONL log; a missing file is empty.

    A torn last line (a crash mid-write: no newline after it and not JSON) is skipped and
    reported on the ``aisec.io`` logger. Any other line that is not JSON raises
    :class:`InputFileError` naming the file and the line.
    """
    p = Path(path)
    rows, torn = _read_log(p)
    if torn is not None:
        _report_torn(p, torn)
    return rows


class JsonlStore:
    """An append-only JSONL log of rows, resumable by key.

    Rows are appended in batches, each one write that is flushed and fsynced, so a crash keeps
    every finished batch and leaves at most one torn last line. Reading tolerates that line and
    reports it (:attr:`torn_line`, and a warning on the ``aisec.io`` logger); any other line that
    is not JSON is an :class:`InputFileError` naming the file and the line. The next append cuts
    the torn line off before writing. Rows are written with :func:`dumps_json` (NaN -> null).

    Args:
        path: the JSONL file; it and its folder are created on the first append.
        key: the field that identifies a row (default ``"id"``) or a function of the row; a later
            row with the same key supersedes an earlier one in :meth:`latest`.

    Example:
        >>> store = JsonlStore(run_dir / "samples.jsonl")            # doctest: +SKIP
        >>> done = store.latest()                                    # {id: row}
        >>> store.append([row for row in new_rows if row["id"] not in done])
    """

    def __init__(
        self, path: str | os.PathLike[str], key: str | Callable[[Any], Hashable] = "id"
    ) -> None:
        self.path = Path(path)
        self._key = key
        self.torn_line: int | None = None

    def key_of(self, row: Any) -> Hashable:
        """The key of ``row``."""
        from aisec.errors import InputFileError

        if callable(self._key):
            return self._key(row)
        if not isinstance(row, Mapping) or self._key not in row:
            raise InputFileError(self.path, f"holds a row without the key field {self._key!r}")
        return row[self._key]

    def rows(self) -> list[Any]:
        """Every row in file order (a missing file has none); sets :attr:`torn_line`."""
        rows, self.torn_line = _read_log(self.path)
        if self.torn_line is not None:
            _report_torn(self.path, self.torn_line)
        return rows

    def latest(self) -> dict[Hashable, Any]:
        """The last row written under each key, in the order keys were first written."""
        out: dict[Hashable, Any] = {}
        for row in self.rows():
            out[self.key_of(row)] = row
        return out

    def append(self, rows: Iterable[Any]) -> int:
        """Append ``rows`` in one flushed, fsynced write; returns how many were written."""
        lines = [dumps_json(r, ensure_ascii=False) + "\n" for r in rows]
        if not lines:
            return 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._mend()
        with open(self.path, "ab") as fh:
            fh.write("".join(lines).encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())
        return len(lines)

    def _mend(self) -> None:
        """End the file with a newline: drop a torn last line, or terminate a whole one."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size == 0:
            return
        with open(self.path, "r+b") as fh:
            fh.seek(size - 1)
            if fh.read(1) == b"\n":
                return
            fh.seek(0)
            data = fh.read()
            cut = data.rfind(b"\n") + 1
            try:
                json.loads(data[cut:].decode("utf-8"))
            except ValueError:
                _log.warning(
                    "%s: dropped a torn last line (%d bytes) before appending",
                    self.path,
                    len(data) - cut,
                )
                fh.truncate(cut)
            else:
                fh.seek(size)
                fh.write(b"\n")
            fh.flush()
            os.fsync(fh.fileno())


def open_append_line(path: str | os.PathLike[str]) -> IO[str]:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return open(path, "a", encoding="utf-8")
