"""In-process channels between parties running as threads (tests, single-process runs).

Frames are fully encoded and decoded, so byte counts and the no-pickle wire format are the same
as over TCP; shaping delays delivery without blocking the sender.
"""

from __future__ import annotations

import queue
import time

from aisec.errors import PeerError
from aisec.transport.channel import Channel, Link

__all__ = ["InProcessChannel", "inprocess_pair"]

_CLOSED = object()


class InProcessChannel(Channel):
    """One end of an in-process pair; build both with :func:`inprocess_pair`."""

    def __init__(
        self,
        party: str,
        peer: str,
        inbox: queue.Queue,
        outbox: queue.Queue,
        link: Link | None = None,
        timeout_s: float = 120.0,
    ) -> None:
        super().__init__(party, peer, link, timeout_s)
        self._inbox, self._outbox = inbox, outbox

    def _send_frame(self, frame: bytes, deliver_at: float, step: str) -> None:
        self._outbox.put((deliver_at, frame))

    def _recv_frame(self, timeout_s: float, step: str) -> bytes:
        try:
            item = self._inbox.get(timeout=timeout_s)
        except queue.Empty:
            raise PeerError(self.peer, step, f"no message within {timeout_s:g} s") from None
        if item is _CLOSED:
            self._inbox.put(_CLOSED)
            raise PeerError(self.peer, step, "connection closed by peer")
        deliver_at, frame = item
        delay = deliver_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        return frame

    def close(self) -> None:
        if not self.closed:
            self._outbox.put(_CLOSED)
        super().close()


def inprocess_pair(
    a: str = "A", b: str = "B", link: Link | None = None, timeout_s: float = 120.0
) -> tuple[InProcessChannel, InProcessChannel]:
    """Two connected channels ``(a's end, b's end)``."""
    qa: queue.Queue = queue.Queue()
    qb: queue.Queue = queue.Queue()
    return (
        InProcessChannel(a, b, qa, qb, link, timeout_s),
        InProcessChannel(b, a, qb, qa, link, timeout_s),
    )
