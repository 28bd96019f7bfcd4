"""Party channels for multi-party protocols: in-process (threads) and TCP with mutual TLS.

Frames are length-prefixed, versioned, JSON header plus raw bytes (never pickle); every channel
counts bytes, messages and rounds per protocol step and can shape its link (bandwidth, latency).
"""

from aisec.transport.channel import LAN, WAN, Channel, CommStats, Link, StepStats
from aisec.transport.frames import BigInts
from aisec.transport.inprocess import InProcessChannel, inprocess_pair
from aisec.transport.linkspec import LinkSpec

__all__ = [
    "Channel",
    "CommStats",
    "StepStats",
    "Link",
    "LinkSpec",
    "LAN",
    "WAN",
    "BigInts",
    "InProcessChannel",
    "inprocess_pair",
]
