"""VideoMarkBench: robustness of video watermarks under removal and forgery.

Modules: :mod:`~aisec.provenance.video.methods` (the ``video watermark`` registry: ``embed`` and
``detect`` on (T, C, H, W) video with per-frame logits), :mod:`~aisec.provenance.video.aggregation`
(the seven video-level decision rules and their thresholds), :mod:`~aisec.provenance.video.clips`
(reading video through PyAV and the clip sets) and :mod:`~aisec.provenance.video.benchmark` (the
resumable removal/forgery grid). The perturbations live in :mod:`aisec.perturb.video`.

Reference: Jiang et al., "VideoMarkBench: Benchmarking Robustness of Video Watermarking",
arXiv 2505.21620 (2025).
"""

from aisec.provenance.video import hidden as _hidden  # noqa: F401 - registers "hidden"
from aisec.provenance.video import segmark as _segmark  # noqa: F401 - registers "segmark"
from aisec.provenance.video import videoshield as _videoshield  # noqa: F401 - registers it
from aisec.provenance.video.aggregation import RULES, aggregate, aggregate_all, thresholds
from aisec.provenance.video.methods import (
    VIDEO_WATERMARKS,
    RivaGAN,
    VideoKey,
    VideoWatermark,
    get_video_method,
)

__all__ = [
    "RULES",
    "VIDEO_WATERMARKS",
    "RivaGAN",
    "VideoKey",
    "VideoWatermark",
    "aggregate",
    "aggregate_all",
    "get_video_method",
    "thresholds",
]
