"""Per-batch cost of CAESAR training, with the parties as threads or as two processes.

:func:`measure_batches` trains a few batches (no final reveal) and returns what they cost: both
parties as threads of this process over an in-process channel, or as two processes over TCP +
mutual TLS on loopback (the two-host layout on one machine; party B is a child process that
listens, this process is party A and connects). Benchmarks call it; the protocol itself is in
:mod:`aisec.privacy.caesar.protocol`.

Reference: Chen et al., KDD 2021 (per-batch cost independent of d and of the non-zeros).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from aisec.errors import PeerError
from aisec.privacy.caesar.data import PartyData
from aisec.privacy.caesar.protocol import PROTOCOL, CaesarParams, train_party
from aisec.transport import Link, inprocess_pair

__all__ = ["BatchCost", "measure_batches"]


@dataclass(frozen=True)
class BatchCost:
    """What the training batches of one CAESAR run cost.

    Attributes:
        seconds_per_batch: mean seconds per batch (two processes: the slower party's, per batch).
        bytes_per_batch: bytes both ways per batch, training steps only (B's count).
        setup_seconds: everything outside the batches (handshake, keys, shapes).
        batches: batches run.
        he_scheme: the HE scheme that ran.
        layout: ``"threads"`` or ``"processes"``.
    """

    seconds_per_batch: float
    bytes_per_batch: float
    setup_seconds: float
    batches: int
    he_scheme: str
    layout: Literal["threads", "processes"]


def measure_batches(
    x_a: sp.spmatrix,
    x_b: sp.spmatrix,
    y: np.ndarray,
    params: CaesarParams,
    *,
    link: Link | None = None,
    processes_dir: str | Path | None = None,
    timeout_s: float = 600.0,
) -> BatchCost:
    """Train ``params.epochs`` x ``params.max_batches`` batches and measure them.

    Args:
        x_a: (n, d_a) A's features; x_b: (n, d_b) B's features; y: (n,) labels in {0, 1}.
        params: the protocol parameters (set ``max_batches`` to bound the work).
        link: shaping of the A-B link (None: unshaped).
        processes_dir: run the parties as two processes over TCP + TLS on loopback, with the
            certificates kept in ``processes_dir/certs``; None runs them as threads.
        timeout_s: how long either party waits for the other.
    Returns:
        the per-batch cost.
    """
    ids = np.arange(x_a.shape[0])
    a, b = PartyData(ids, sp.csr_matrix(x_a)), PartyData(ids, sp.csr_matrix(x_b), y)
    if processes_dir is not None:
        return _two_processes(a, b, params, link, Path(processes_dir), timeout_s)
    from aisec.privacy.caesar.run import run_two_threads

    ca, cb = inprocess_pair("A", "B", link, timeout_s)
    t0 = time.perf_counter()
    _, rb = run_two_threads(
        lambda: train_party("A", ca, a, params, finish=False)[1],
        lambda: train_party("B", cb, b, params, finish=False)[1],
    )
    total = time.perf_counter() - t0
    return BatchCost(
        seconds_per_batch=float(np.mean(rb.seconds_per_batch)),
        bytes_per_batch=rb.bytes_per_batch,
        setup_seconds=total - sum(rb.seconds_per_batch),
        batches=rb.batches,
        he_scheme=params.he_scheme,
        layout="threads",
    )


def _party_b_process(
    port: int,
    certs: str,
    data: dict[str, Any],
    params: dict[str, Any],
    link: Link | None,
    timeout_s: float,
    queue: Any,
) -> None:
    """Party B in its own process: listen on loopback, train, report to the parent."""
    from aisec.transport.tcp import listen

    try:
        ch = listen(
            "B", "A", "127.0.0.1", port, certs, protocol=PROTOCOL, link=link, timeout_s=timeout_s
        )
        party = PartyData(data["ids"], data["X"], data["y"])
        try:
            rep = train_party("B", ch, party, CaesarParams(**params), finish=False)[1]
        finally:
            ch.close()
        queue.put(
            {"seconds_per_batch": rep.seconds_per_batch, "bytes_per_batch": rep.bytes_per_batch}
        )
    except Exception as exc:  # reported to the parent, which raises it
        queue.put({"error": f"{type(exc).__name__}: {exc}"})


def _two_processes(
    a: PartyData,
    b: PartyData,
    params: CaesarParams,
    link: Link | None,
    root: Path,
    timeout_s: float,
) -> BatchCost:
    import multiprocessing as mp
    import socket

    from aisec.transport.certs import make_certs
    from aisec.transport.tcp import connect

    certs = root / "certs"
    if not (certs / "ca.pem").exists():
        make_certs(certs, ("A", "B"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ctx = mp.get_context("forkserver")
    queue = ctx.Queue()
    proc = ctx.Process(
        target=_party_b_process,
        args=(
            port,
            str(certs),
            {"ids": b.ids, "X": b.X, "y": b.y},
            params.model_dump(),
            link,
            timeout_s,
            queue,
        ),
    )
    proc.start()
    try:
        ch = connect(
            "A",
            "B",
            "127.0.0.1",
            port,
            certs,
            protocol=PROTOCOL,
            link=link,
            timeout_s=timeout_s,
            retry_s=60,
        )
        t0 = time.perf_counter()
        try:
            ra = train_party("A", ch, a, params, finish=False)[1]
        finally:
            ch.close()
        total = time.perf_counter() - t0
        rb = queue.get(timeout=timeout_s)
    finally:
        proc.join(timeout=30)
        if proc.is_alive():
            proc.terminate()
    if "error" in rb:
        raise PeerError("B", "train", rb["error"])
    per_batch = [
        max(x, z) for x, z in zip(ra.seconds_per_batch, rb["seconds_per_batch"], strict=True)
    ]
    return BatchCost(
        seconds_per_batch=float(np.mean(per_batch)),
        bytes_per_batch=rb["bytes_per_batch"],
        setup_seconds=total - sum(ra.seconds_per_batch),
        batches=ra.batches,
        he_scheme=params.he_scheme,
        layout="processes",
    )
