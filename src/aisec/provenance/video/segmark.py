"""A video-native post-hoc watermark with temporal context: segments of frames as one unit.

In the manner of REVMark and VideoSeal, a clip is cut into segments of ``segment`` frames (4 in
the shipped weights; REVMark uses 8) and each segment is encoded and decoded as a whole by 3D
convolutions over (time, height, width): the residual of a frame depends on its neighbours,
and the decoder's logits for a frame pool evidence from the frames around it (receptive field
of 7 frames in time, inside the segment). The decoder still returns one logit vector per frame,
so VideoMarkBench's seven aggregation rules apply unchanged. The tail of a clip is padded to a
whole segment by repeating its last frame. Trained here on CPU with the noise layer of
:mod:`~aisec.provenance.video.noise_layer`, including its temporal ops (frame averaging, swaps,
drops); shipped weights ``weights/segmark.safetensors``.

Differences from the references: no attention, no discriminator, a 32 px working side and 32
bits (REVMark: 128 px, 96 bits, a distortion pool with H.264 simulated by a network; VideoSeal:
a 2D embedder with temporal pooling of the residual, a 256 px side, 96 bits).

Reference: Zhang et al., "REVMark: Robust and Efficient Video Watermarking", 2024;
Fernandez et al., "Video Seal: Open and Efficient Video Watermarking", arXiv 2412.09492 (2024).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from aisec.provenance.video.learned import LearnedVideoWatermark
from aisec.provenance.video.methods import VIDEO_WATERMARKS

__all__ = ["build_segmark_net", "SegMarkWatermark"]


def build_segmark_net(bits: int, ch: int, grid: int = 1, size: int = 32) -> Any:
    """A randomly initialised network (torch ``nn.Module``); ``grid`` > 1 lays the message out
    on a grid x grid map and reads it back from a grid x grid pooling (1: broadcast and global
    average, HiDDeN's layout)."""
    return _net_class()(bits, ch, grid, size)


@lru_cache(maxsize=1)
def _net_class() -> Any:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class SegMarkNet(nn.Module):
        """encode: (B, T, 3, S, S), (B, n) -> residual (B, T, 3, S, S); decode -> (B, T, n)."""

        def __init__(self, bits: int, ch: int, grid: int, size: int) -> None:
            super().__init__()
            self.bits = bits
            self.grid = grid
            pm = "replicate"
            self.img = nn.Sequential(nn.Conv3d(3, ch, 3, padding=1, padding_mode=pm), nn.ReLU())
            self.msg = nn.Linear(bits, ch * grid * grid)
            self.enc = nn.Sequential(
                nn.Conv3d(2 * ch + 3, ch, 3, padding=1, padding_mode=pm),
                nn.ReLU(),
                nn.Conv3d(ch, ch, (1, 3, 3), padding=(0, 1, 1), padding_mode=pm),
                nn.ReLU(),
                nn.Conv3d(ch, 3, 1),
            )
            # a learned carrier per bit and a matched filter (see hidden.py); the filter's per-frame
            # responses are then mixed over neighbouring frames by a learned temporal kernel
            self.carrier = nn.Parameter(torch.randn(bits, 3, size, size) / bits**0.5)
            self.matched = nn.Parameter(self.carrier.detach().clone() * 0.5)
            self.mix = nn.Conv1d(bits, bits, 3, padding=1, padding_mode="replicate", groups=bits)
            with torch.no_grad():
                self.mix.weight.copy_(torch.tensor([0.25, 0.5, 0.25]).expand(bits, 1, 3))
                self.mix.bias.zero_()
            self.dec = nn.Sequential(
                nn.Conv3d(3, ch, (1, 3, 3), padding=(0, 1, 1)),
                nn.ReLU(),
                nn.Conv3d(ch, ch, 3, padding=1, stride=(1, 2, 2), padding_mode=pm),
                nn.ReLU(),
                nn.Conv3d(ch, 2 * ch, 3, padding=1, padding_mode=pm),
                nn.ReLU(),
                nn.Conv3d(2 * ch, 2 * ch, 3, padding=1, stride=(1, 2, 2), padding_mode=pm),
                nn.ReLU(),
                nn.Conv3d(2 * ch, bits, 1),
            )
            self.head = nn.Linear(bits * grid * grid, bits)

        def encode(self, x: Any, m: Any) -> Any:
            v = x.transpose(1, 2) * 2 - 1  # (B, 3, T, S, S)
            h = self.img(v)
            g = self.grid
            mf = self.msg(m * 2 - 1).reshape(len(m), -1, 1, g, g)
            mf = F.interpolate(mf, size=h.shape[2:], mode="nearest")
            r = self.enc(torch.cat([h, mf, v], 1))
            r = r + torch.einsum("bn,nchw->bchw", m * 2 - 1, self.carrier)[:, :, None]
            return r.transpose(1, 2)

        def decode(self, x: Any) -> Any:
            b, t = x.shape[:2]
            h = self.dec(x.transpose(1, 2) * 2 - 1)  # (B, n, T, S/4, S/4)
            h = F.adaptive_avg_pool3d(h, (h.shape[2], self.grid, self.grid))
            conv = self.head(h.permute(0, 2, 1, 3, 4).flatten(2))  # (B, T, n)
            f = x.flatten(0, 1)
            hp = f - F.avg_pool2d(F.pad(f, (2, 2, 2, 2), mode="replicate"), 5, stride=1)
            lin = torch.einsum("bchw,nchw->bn", hp, self.matched).reshape(b, t, -1)
            return conv + self.mix(lin.transpose(1, 2)).transpose(1, 2)

    return SegMarkNet


@VIDEO_WATERMARKS.register(
    "segmark",
    summary="REVMark/VideoSeal-style 3D-conv segment encoder/decoder (trained here, 32 bits)",
)
class SegMarkWatermark(LearnedVideoWatermark):
    name = "segmark"
    kind = "segmark"
