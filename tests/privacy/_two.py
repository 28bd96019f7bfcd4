"""Run two parties' callables as threads and return both results (or raise the first error)."""

from __future__ import annotations

import threading
from typing import Any


def run_pair(fa: Any, fb: Any) -> tuple[Any, Any]:
    out: dict[str, Any] = {}

    def wrap(k: str, f: Any) -> None:
        try:
            out[k] = f()
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            out[k + "!"] = exc

    ts = [
        threading.Thread(target=wrap, args=("a", fa)),
        threading.Thread(target=wrap, args=("b", fb)),
    ]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for k in ("a!", "b!"):
        if k in out:
            raise out[k]
    return out["a"], out["b"]
