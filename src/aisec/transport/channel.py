"""The party/channel API: typed messages between two named parties, with accounting and shaping.

A :class:`Channel` connects this party to one peer. ``send(step, message)`` and
``recv(step)`` move one message (see :mod:`aisec.transport.frames`); the step names the protocol
step, so a message arriving at the wrong step, a silent peer (timeout) or a closed connection
raises :class:`aisec.errors.PeerError` naming the peer and the step. Every message is counted
per step: bytes and messages each way, and rounds (a round starts each time this party sends
after having received). An optional :class:`Link` shapes the traffic (bandwidth, latency) so a
benchmark on one machine sees a LAN or a WAN.
"""

from __future__ import annotations

import re
import threading
import time
from abc import ABC, abstractmethod
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from aisec.errors import ParameterError, PeerError
from aisec.transport import frames

__all__ = ["Link", "StepStats", "CommStats", "Channel", "LAN", "WAN"]


@dataclass(frozen=True)
class Link:
    """Link shaping: each message takes ``latency_s + bytes * 8 / bandwidth_bps`` to arrive,
    and messages queue behind each other on the sender's side (one link per direction).

    Args:
        bandwidth_bps: bits per second (``None``: unlimited).
        latency_s: one-way latency in seconds.
    """

    bandwidth_bps: float | None = None
    latency_s: float = 0.0

    def __post_init__(self) -> None:
        if self.bandwidth_bps is not None and self.bandwidth_bps <= 0:
            raise ParameterError("bandwidth_bps", "must be positive or None", self.bandwidth_bps)
        if self.latency_s < 0:
            raise ParameterError("latency_s", "must be >= 0", self.latency_s)

    def transfer_seconds(self, nbytes: int) -> float:
        return 0.0 if self.bandwidth_bps is None else nbytes * 8.0 / self.bandwidth_bps

    def describe(self) -> str:
        bw = "unlimited" if self.bandwidth_bps is None else f"{self.bandwidth_bps / 1e6:g} Mbit/s"
        return f"{bw}, {self.latency_s * 1e3:g} ms"


_CLASS_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,63}")
_STEP_NAME = re.compile(r"[A-Za-z0-9_.:\- ]{1,64}")


def _public(text: object, pattern: re.Pattern[str] = _STEP_NAME) -> str:
    """``text`` if it is a short name matching ``pattern``, else ""."""
    return text if isinstance(text, str) and pattern.fullmatch(text) else ""


LAN = Link(bandwidth_bps=10e9, latency_s=0.0001)
WAN = Link(bandwidth_bps=100e6, latency_s=0.020)


@dataclass
class StepStats:
    bytes_sent: int = 0
    bytes_received: int = 0
    messages_sent: int = 0
    messages_received: int = 0
    rounds: int = 0
    wait_seconds: float = 0.0

    def as_dict(self) -> dict[str, float | int]:
        return dict(self.__dict__)


@dataclass
class CommStats:
    """Per-step communication counters of one party's channel."""

    steps: dict[str, StepStats] = field(default_factory=lambda: defaultdict(StepStats))

    def total(self) -> StepStats:
        t = StepStats()
        for s in self.steps.values():
            for k, v in s.__dict__.items():
                setattr(t, k, getattr(t, k) + v)
        return t

    def as_dict(self) -> dict[str, dict[str, float | int]]:
        return {k: v.as_dict() for k, v in sorted(self.steps.items())}

    def reset(self) -> None:
        self.steps.clear()


class Channel(ABC):
    """One party's end of a two-party connection.

    Args:
        party: this party's name.
        peer: the peer's name.
        link: traffic shaping (default: none).
        timeout_s: how long ``recv`` waits before the peer is declared dead.
    """

    def __init__(
        self, party: str, peer: str, link: Link | None = None, timeout_s: float = 120.0
    ) -> None:
        self.party, self.peer = party, peer
        self.link = link or Link()
        self.timeout_s = float(timeout_s)
        self.stats = CommStats()
        self._last_op = "recv"
        self._link_free = 0.0
        self._lock = threading.Lock()
        self.closed = False

    # subclasses move raw frames ------------------------------------------------------------
    @abstractmethod
    def _send_frame(self, frame: bytes, deliver_at: float, step: str) -> None: ...

    @abstractmethod
    def _recv_frame(self, timeout_s: float, step: str) -> bytes: ...

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> Channel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # public API ----------------------------------------------------------------------------
    def send(self, step: str, message: dict[str, Any]) -> None:
        """Send one message at protocol step ``step``."""
        if self.closed:
            raise PeerError(self.peer, step, "channel is closed")
        frame = frames.encode(step, message)
        with self._lock:
            now = time.monotonic()
            start = max(now, self._link_free)
            self._link_free = start + self.link.transfer_seconds(len(frame))
            deliver_at = self._link_free + self.link.latency_s
            st = self.stats.steps[step]
            st.bytes_sent += len(frame)
            st.messages_sent += 1
            if self._last_op == "recv":
                st.rounds += 1
            self._last_op = "send"
        self._send_frame(frame, deliver_at, step)

    def recv(self, step: str, timeout_s: float | None = None) -> dict[str, Any]:
        """Receive the peer's message for ``step``; raises PeerError on a mismatch or timeout."""
        if self.closed:
            raise PeerError(self.peer, step, "channel is closed")
        t0 = time.monotonic()
        frame = self._recv_frame(self.timeout_s if timeout_s is None else timeout_s, step)
        try:
            got, message = frames.decode(frame)
        except frames.FrameError as exc:
            raise PeerError(self.peer, step, f"bad frame: {exc}") from None
        if got == "__abort__":
            kind = _public(message.get("error"), _CLASS_NAME) or "an error"
            where = _public(message.get("step"))
            raise PeerError(
                self.peer,
                step,
                f"peer aborted with {kind}"
                + (f" at its step {where!r}" if where else "")
                + " (the details stay in the peer's own log)",
            )
        if got != step:
            raise PeerError(self.peer, step, f"protocol out of step: received {got!r}")
        with self._lock:
            st = self.stats.steps[step]
            st.bytes_received += len(frame)
            st.messages_received += 1
            st.wait_seconds += time.monotonic() - t0
            self._last_op = "recv"
        return message

    def abort(self, error: BaseException | str, step: str = "") -> None:
        """Tell the peer this party gives up (best effort), then close.

        Only the error's class name and the protocol step cross the link: an exception's text
        may hold private values (a feature, a row, a local path), so it stays with this party.

        Args:
            error: the exception (only its class name is sent) or a class-like name.
            step: the protocol step where this party failed (a name chosen by the code).
        """
        kind = error if isinstance(error, str) else type(error).__name__
        msg = {"error": _public(kind, _CLASS_NAME) or "Error", "step": _public(step)}
        try:
            self._send_frame(frames.encode("__abort__", msg), 0.0, "__abort__")
        except Exception:  # the peer may be gone already; closing is what matters
            pass
        self.close()
