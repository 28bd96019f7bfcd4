"""SSIM without scikit-image: a DependencyError naming the extra, not a raw ImportError."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from aisec.errors import DependencyError
from aisec.metrics.image import ssim


def test_ssim_without_scikit_image_names_the_video_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "skimage", None)
    monkeypatch.setitem(sys.modules, "skimage.metrics", None)
    x = np.zeros((2, 8, 8))
    with pytest.raises(DependencyError, match=r"'scikit-image'.*aisec\[video\]"):
        ssim(x, x)
