"""A StegaStamp/HiDDeN-style per-frame watermark: a small conv encoder and decoder, 32 bits.

The encoder reads a frame (area-downsampled to the working side S) and the message broadcast
over every position (HiDDeN's message replication), and returns a residual bounded by
``eps * tanh``; the decoder is a strided conv stack whose per-position bit predictions are
averaged over the frame (HiDDeN's global average pooling), so a crop keeps every bit. Trained
here on CPU with a differentiable noise layer (:mod:`~aisec.provenance.video.learned`); the
shipped weights are ``weights/hidden.safetensors``. Applied to video frame by frame, as
VideoMarkBench applies StegaStamp.

Differences from the references: no adversarial (discriminator) or perceptual loss, a hard
L-inf bound instead, and a working side of 32 px rather than HiDDeN's 128 or StegaStamp's 400.

Reference: Zhu et al., "HiDDeN: Hiding Data With Deep Networks", ECCV 2018; Tancik et al.,
"StegaStamp: Invisible Hyperlinks in Physical Photographs", CVPR 2020.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from aisec.provenance.video.learned import LearnedVideoWatermark
from aisec.provenance.video.methods import VIDEO_WATERMARKS

__all__ = ["build_hidden_net", "HiddenWatermark"]


def build_hidden_net(bits: int, ch: int, grid: int = 1, size: int = 32) -> Any:
    """A randomly initialised network (torch ``nn.Module``); ``grid`` > 1 lays the message out
    on a grid x grid map and reads it back from a grid x grid pooling (1: broadcast and global
    average, HiDDeN's layout); ``size`` is the working side of the carriers."""
    return _net_class()(bits, ch, grid, size)


@lru_cache(maxsize=1)
def _net_class() -> Any:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class HiddenNet(nn.Module):
        """encode: (B, T, 3, S, S), (B, n) -> residual (B, T, 3, S, S); decode -> (B, T, n)."""

        def __init__(self, bits: int, ch: int, grid: int, size: int) -> None:
            super().__init__()
            self.bits = bits
            self.grid = grid
            self.img = nn.Sequential(nn.Conv2d(3, ch, 3, padding=1), nn.BatchNorm2d(ch), nn.ReLU())
            self.msg = nn.Linear(bits, ch * grid * grid)
            self.enc = nn.Sequential(
                nn.Conv2d(2 * ch + 3, ch, 3, padding=1),
                nn.BatchNorm2d(ch),
                nn.ReLU(),
                nn.Conv2d(ch, ch, 3, padding=1),
                nn.BatchNorm2d(ch),
                nn.ReLU(),
                nn.Conv2d(ch, 3, 1),
            )
            # a learned carrier per bit (spread spectrum) added to the conv output, read back by a
            # learned matched filter on the high-passed frame: the message is decodable from the
            # first step, which is what lets a small net train in minutes on a CPU
            self.carrier = nn.Parameter(torch.randn(bits, 3, size, size) / bits**0.5)
            self.matched = nn.Parameter(self.carrier.detach().clone() * 0.5)
            self.dec = nn.Sequential(
                nn.Conv2d(3, ch, 3, padding=1),
                nn.BatchNorm2d(ch),
                nn.ReLU(),
                nn.Conv2d(ch, ch, 3, padding=1, stride=2),
                nn.BatchNorm2d(ch),
                nn.ReLU(),
                nn.Conv2d(ch, 2 * ch, 3, padding=1),
                nn.BatchNorm2d(2 * ch),
                nn.ReLU(),
                nn.Conv2d(2 * ch, 2 * ch, 3, padding=1, stride=2),
                nn.BatchNorm2d(2 * ch),
                nn.ReLU(),
                nn.Conv2d(2 * ch, bits, 1),
            )
            self.head = nn.Linear(bits * grid * grid, bits)

        def encode(self, x: Any, m: Any) -> Any:
            b, t = x.shape[:2]
            f = x.flatten(0, 1)
            g = self.grid
            mf = self.msg(m * 2 - 1).repeat_interleave(t, 0).reshape(b * t, -1, g, g)
            h = self.img(f)
            mf = F.interpolate(mf, size=h.shape[-2:], mode="nearest")
            h = self.enc(torch.cat([h, mf, f * 2 - 1], 1))
            h = h + torch.einsum("bn,nchw->bchw", (m * 2 - 1).repeat_interleave(t, 0), self.carrier)
            return h.reshape(b, t, *h.shape[1:])

        def decode(self, x: Any) -> Any:
            b, t = x.shape[:2]
            f = x.flatten(0, 1)
            h = F.adaptive_avg_pool2d(self.dec(f * 2 - 1), self.grid)
            hp = f - F.avg_pool2d(F.pad(f, (2, 2, 2, 2), mode="replicate"), 5, stride=1)
            lin = torch.einsum("bchw,nchw->bn", hp, self.matched)
            return (self.head(h.flatten(1)) + lin).reshape(b, t, self.bits)

    return HiddenNet


@VIDEO_WATERMARKS.register(
    "hidden",
    summary="StegaStamp/HiDDeN-style per-frame conv encoder/decoder (trained here, 32 bits)",
)
class HiddenWatermark(LearnedVideoWatermark):
    name = "hidden"
    kind = "hidden"
