"""The link-shaping section of a protocol recipe (bandwidth in Mbit/s, latency in ms)."""

from __future__ import annotations

from pydantic import Field

from aisec.config import StrictModel
from aisec.transport.channel import Link

__all__ = ["LinkSpec"]


class LinkSpec(StrictModel):
    """Recipe units for :class:`Link`: ``bandwidth_mbps`` (None: unlimited) and ``latency_ms``."""

    bandwidth_mbps: float | None = Field(None, gt=0)
    latency_ms: float = Field(0.0, ge=0)

    def link(self) -> Link:
        bw = None if self.bandwidth_mbps is None else self.bandwidth_mbps * 1e6
        return Link(bandwidth_bps=bw, latency_s=self.latency_ms / 1e3)
