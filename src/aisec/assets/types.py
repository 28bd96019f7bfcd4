"""Typed containers returned by the asset loaders."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    import scipy.sparse as sp

__all__ = [
    "SparseDataset",
    "RatingsDataset",
    "ImageDataset",
    "Prompt",
    "PromptSet",
    "Template",
    "VideoClip",
    "ModelRef",
]


@dataclass(frozen=True)
class SparseDataset:
    """Binary classification data as a sparse matrix.

    Attributes:
        X: (n, d) CSR matrix, float64.
        y: (n,) int64 labels in {0, 1}.
        feature_names: d names.
    """

    name: str
    X: sp.csr_matrix
    y: np.ndarray
    feature_names: list[str]

    @property
    def shape(self) -> tuple[int, int]:
        return self.X.shape


@dataclass(frozen=True)
class RatingsDataset:
    """Explicit ratings: a frame with columns user, item (0-based ints), rating, timestamp."""

    name: str
    ratings: pd.DataFrame
    n_users: int
    n_items: int


@dataclass(frozen=True)
class ImageDataset:
    """Greyscale images.

    Attributes:
        x: (N, H, W) uint8 in [0, 255].
        y: (N,) int64 class labels in [0, n_classes).
    """

    name: str
    x: np.ndarray
    y: np.ndarray
    n_classes: int

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclass(frozen=True)
class Prompt:
    id: str
    text: str
    category: str = ""
    source: str = ""


@dataclass(frozen=True)
class PromptSet:
    name: str
    prompts: list[Prompt] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.prompts)

    def texts(self) -> list[str]:
        return [p.text for p in self.prompts]


@dataclass(frozen=True)
class Template:
    """A jailbreak template; ``text`` holds the placeholder ``{prompt}``."""

    id: str
    text: str
    source: str = ""

    def render(self, prompt: str) -> str:
        return self.text.replace("{prompt}", prompt)


@dataclass(frozen=True)
class VideoClip:
    name: str
    path: Path


@dataclass(frozen=True)
class ModelRef:
    """Where a model can be loaded from.

    Attributes:
        kind: "embedded" (from a registry package, materialised in the cache), "local" (a path),
            or "hub" (a hub id, for users with the hub).
        location: a directory for ``from_pretrained`` or a hub id.
    """

    name: str
    kind: str
    location: str
