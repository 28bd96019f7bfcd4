"""Image data for the certification experiments: fixed train/test splits of the embedded data sets.

``mnist-5k`` and ``digits`` ship without a split; we fix one (80 % / 20 %, a permutation drawn once
from seed 20230926, so every run and every user sees the same test set). ``fashion-mnist`` keeps its
own 60k/10k split. Images become float32 (N, 1, H, W) in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from aisec.errors import ParameterError

__all__ = ["DATASETS", "ImageSplit", "load_split"]

DATASETS = ("digits", "mnist-5k", "fashion-mnist")
_SPLIT_SEED = 20230926
_TEST_FRACTION = 0.2


@dataclass(frozen=True)
class ImageSplit:
    """Images ``x`` (N, 1, H, W) float32 in [0, 1] and labels ``y`` (N,) int64."""

    name: str
    split: str
    x: np.ndarray
    y: np.ndarray
    n_classes: int

    def __len__(self) -> int:
        return len(self.y)

    def head(self, n: int | None) -> ImageSplit:
        if n is None or n >= len(self):
            return self
        return ImageSplit(self.name, self.split, self.x[:n], self.y[:n], self.n_classes)


def load_split(
    name: str, split: Literal["train", "test"] = "train", limit: int | None = None
) -> ImageSplit:
    """Load ``split`` of a data set, in a fixed shuffled order, optionally its first ``limit``.

    Args:
        name: one of ``DATASETS``.
        split: "train" or "test".
        limit: keep the first ``limit`` images of the (fixed) shuffled order; None keeps all.
    """
    from aisec.assets import load_dataset

    if name not in DATASETS:
        raise ParameterError("dataset", f"must be one of {', '.join(DATASETS)}", name)
    if split not in ("train", "test"):
        raise ParameterError("split", "must be 'train' or 'test'", split)
    if limit is not None and limit < 1:
        raise ParameterError("limit", "must be >= 1", limit)
    perm_rng = np.random.default_rng(_SPLIT_SEED)
    if name == "fashion-mnist":
        ds = load_dataset(name, split=split)
        order = perm_rng.permutation(len(ds.y))
    else:
        ds = load_dataset(name)
        perm = perm_rng.permutation(len(ds.y))
        n_test = int(round(_TEST_FRACTION * len(perm)))
        order = perm[n_test:] if split == "train" else perm[:n_test]
    if limit is not None:
        order = order[:limit]
    x = (ds.x[order].astype(np.float32) / 255.0)[:, None]
    return ImageSplit(name, split, x, ds.y[order].astype(np.int64), int(ds.n_classes))
