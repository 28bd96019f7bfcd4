"""Offline assets: one resolver for models and data sets.

A name resolves to an embedded default that ships inside a registry package aisec depends on
(read by path, never copied), a model built in code (tests), a local path, or a hub id (for
users with the hub). ``aisec assets list`` / ``aisec assets check`` show and exercise them all.
"""

from aisec.assets.catalog import ASSETS, AssetSpec, asset_status, check_asset, load_dataset
from aisec.assets.models import materialise, resolve_model
from aisec.assets.packages import cache_dir, shared_data_dir
from aisec.assets.types import (
    ImageDataset,
    ModelRef,
    Prompt,
    PromptSet,
    RatingsDataset,
    SparseDataset,
    Template,
    VideoClip,
)

__all__ = [
    "ASSETS", "AssetSpec", "asset_status", "check_asset", "load_dataset", "materialise",
    "resolve_model", "cache_dir", "shared_data_dir", "ImageDataset", "ModelRef", "Prompt",
    "PromptSet", "RatingsDataset", "SparseDataset", "Template", "VideoClip",
]
