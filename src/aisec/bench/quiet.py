"""Keep the console ours while scenarios run: other libraries' output goes to a log file.

Third-party libraries print progress bars ("Loading weights", "Writing model shards"), warnings
(a transformers ``FutureWarning``) and, from native code, log lines (HEU's thread pool) straight
to file descriptors 1 and 2, interleaved with our progress. :func:`third_party_to_log` turns
their progress bars and verbosity down and points descriptors 1 and 2 at ``RUN_DIR/
third_party.log`` for the duration, so Python warnings, library loggers, tqdm bars and
C-level writes all land in the file. Our own progress writes to the stream it yields, a copy of
the real stderr. Everything is restored on exit.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

__all__ = ["third_party_to_log", "LOG_FILE"]

LOG_FILE = "third_party.log"

# Read when each library is first imported (most are imported inside a scenario).
_ENV = {
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "DIFFUSERS_VERBOSITY": "error",
}


def _hf_libs() -> dict[str, Any]:
    """The logging modules of the Hugging Face libraries already imported."""
    out: dict[str, Any] = {}
    for name in ("transformers", "diffusers"):
        if name in sys.modules:
            with contextlib.suppress(Exception):
                out[name] = __import__(f"{name}.utils.logging", fromlist=["logging"])
    return out


def _quiet_libraries() -> list[tuple[Any, ...]]:
    """Turn down libraries imported before the run; returns how to restore them."""
    undo: list[tuple[Any, ...]] = []
    for name, lg in _hf_libs().items():
        with contextlib.suppress(Exception):
            undo.append((name, lg, lg.get_verbosity(), lg.is_progress_bar_enabled()))
            lg.set_verbosity_error()
            lg.disable_progress_bar()
    # Hugging Face progress bars ("Loading weights", "Writing model shards") follow the hub's
    # switch, which transformers reads when it is imported: turn it off now (a cheap import),
    # not through HF_HUB_DISABLE_PROGRESS_BARS, which the hub would then refuse to undo.
    with contextlib.suppress(Exception):
        from huggingface_hub import utils as hub

        undo.append(("huggingface_hub", hub, None, not hub.are_progress_bars_disabled()))
        hub.disable_progress_bars()
    return undo


def _restore_libraries(undo: list[tuple[Any, ...]], env_before: dict[str, str | None]) -> None:
    """Put libraries back as they were; those imported during the run get their defaults."""
    seen = {u[0] for u in undo}
    hub_bars = True
    for name, mod, verbosity, bars in undo:
        with contextlib.suppress(Exception):
            if name == "huggingface_hub":
                hub_bars = bars
                mod.enable_progress_bars() if bars else mod.disable_progress_bars()
                continue
            mod.set_verbosity(verbosity)
            mod.enable_progress_bar() if bars else mod.disable_progress_bar()
    for name, lg in _hf_libs().items():  # imported during the run: their defaults
        if name in seen:
            continue
        with contextlib.suppress(Exception):
            env = env_before.get(f"{name.upper()}_VERBOSITY")
            lg.set_verbosity(getattr(logging, (env or "warning").upper(), logging.WARNING))
            if hub_bars:
                lg.enable_progress_bar()


@contextlib.contextmanager
def third_party_to_log(log_path: str | os.PathLike[str]) -> Iterator[TextIO]:
    """Send everything written to stdout and stderr while the block runs to ``log_path``.

    Yields a text stream on the real stderr for our own progress display. If stdout or stderr
    is not a real file descriptor (an embedding host), nothing is redirected and the stream is
    ``sys.stderr``; the libraries are still turned down.
    """
    path = Path(log_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    env_before = {k: os.environ.get(k) for k in _ENV}
    os.environ.update(_ENV)
    undo = _quiet_libraries()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    log = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - closed below
    log.write(f"--- aisec bench, {datetime.now(UTC).isoformat(timespec='seconds')}\n")
    log.flush()
    try:
        saved = (os.dup(1), os.dup(2))
    except OSError:
        saved = None
    console: TextIO = sys.stderr
    py_stdout = sys.stdout
    opened: list[TextIO] = []
    try:
        if saved is not None:
            console = open(saved[1], "w", encoding="utf-8", buffering=1, closefd=False)  # noqa: SIM115
            opened.append(console)
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            # With --format json, sys.stdout is the real stdout kept aside (cli.main); a library
            # that prints must not reach it, so Python's stdout follows descriptor 1 meanwhile.
            sys.stdout = open(1, "w", encoding="utf-8", buffering=1, closefd=False)  # noqa: SIM115
            opened.append(sys.stdout)
        yield console
    finally:
        for stream in (sys.stdout, sys.stderr, *opened):
            with contextlib.suppress(Exception):
                stream.flush()
        if saved is not None:
            sys.stdout = py_stdout
            for stream in opened:  # closefd=False: the descriptors stay open
                stream.close()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
        log.close()
        for k, v in env_before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        _restore_libraries(undo, env_before)
