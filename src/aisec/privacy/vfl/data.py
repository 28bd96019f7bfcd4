"""Vertically split data for VFL: embedded data sets cut into per-party feature slices.

Images (mnist, fashion, digits) are cut into vertical strips (2 parties: left and right halves),
tabular data (adult, the a9a encoding) by columns, text (reviews, bag of words) by vocabulary.
Rows are split into ``train`` (the parties' training rows), ``aux`` (rows no party trains on: the
attacker's auxiliary data) and ``test``. Party 0 ("P0", the active party) holds the labels.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from aisec.config import StrictModel
from aisec.errors import DataError, InputFileError, ParameterError

__all__ = [
    "DATASETS",
    "DataSpec",
    "PartyData",
    "VFLSplit",
    "load_split",
    "party_name",
    "ids_digest",
    "check_party",
    "save_party",
    "load_party",
]

DATASETS = ("mnist", "fashion", "digits", "adult", "reviews")
Split = Literal["train", "aux", "test"]


def party_name(i: int) -> str:
    return f"P{i}"


class DataSpec(StrictModel):
    """Which data, how many rows, and how the features are cut between parties."""

    dataset: Literal["mnist", "fashion", "digits", "adult", "reviews"] = "mnist"
    parties: int = Field(2, ge=2, le=8, description="number of parties (P0 is active)")
    rows: int | None = Field(None, ge=100, description="subsample this many rows (None: default)")
    test_frac: float = Field(0.2, gt=0, lt=0.5)
    aux_frac: float = Field(0.1, gt=0, lt=0.5, description="rows held out as attacker aux data")
    vocab: int = Field(1000, ge=10, description="reviews: keep the most frequent words")
    seed: int = Field(0, ge=0, description="seed of the row subsample and the split")


_DEFAULT_ROWS = {"mnist": None, "fashion": 6000, "digits": None, "adult": 10000, "reviews": 8000}


@dataclass(frozen=True)
class PartyData:
    """One party's rows of one split.

    Attributes:
        party: "P0" (active, holds ``y``) or "P1".."P{N-1}".
        x: (n, *shape) float32 features of this party's slice.
        ids: (n,) int64 sample ids (aligned across parties).
        y: (n,) int64 labels (active party only) else None.
        n_classes: number of classes (public).
    """

    party: str
    x: np.ndarray
    ids: np.ndarray
    y: np.ndarray | None
    n_classes: int

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.x.shape[1:])


@dataclass(frozen=True)
class VFLSplit:
    """Every party's slices of the train, aux and test rows, plus the joined inputs.

    ``full[split]`` is the joined input (images (n, H, W); tabular (n, d)) for attack
    evaluation only; ``cols[i]`` says which columns of the joined input party i holds.
    """

    spec: DataSpec
    kind: Literal["image", "tabular"]
    parties: dict[str, list[PartyData]]
    full: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    cols: list[np.ndarray]
    n_classes: int


def ids_digest(ids: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(ids, dtype=np.int64).tobytes()).hexdigest()


def check_party(data: PartyData, shape: tuple[int, ...] | None = None) -> None:
    """Refuse non-finite features, a wrong slice width, or labels/ids of the wrong length."""
    if data.ids.shape != (data.n,):
        raise DataError(f"party {data.party}: {data.ids.shape[0]} ids for {data.n} rows")
    if data.y is not None and data.y.shape != (data.n,):
        raise DataError(f"party {data.party}: {data.y.shape[0]} labels for {data.n} rows")
    bad = int(np.size(data.x) - np.count_nonzero(np.isfinite(data.x)))
    if bad:
        raise DataError(f"party {data.party}: features hold {bad} NaN or infinite value(s)")
    if shape is not None and data.shape != tuple(shape):
        raise DataError(
            f"party {data.party}: feature slice has shape {list(data.shape)}, "
            f"the model expects {list(shape)}"
        )
    if data.y is not None and data.n and (data.y.min() < 0 or data.y.max() >= data.n_classes):
        raise DataError(f"party {data.party}: labels must lie in [0, {data.n_classes})")


def _load_joined(spec: DataSpec) -> tuple[np.ndarray, np.ndarray, int, str]:
    from aisec.assets import load_dataset

    if spec.dataset in ("mnist", "fashion", "digits"):
        name = {"mnist": "mnist-5k", "fashion": "fashion-mnist", "digits": "digits"}[spec.dataset]
        ds = load_dataset(name)
        return ds.x.astype(np.float32) / 255.0, ds.y.astype(np.int64), ds.n_classes, "image"
    if spec.dataset == "adult":
        ds = load_dataset("adult-a9a")
        return ds.X.toarray().astype(np.float32), ds.y.astype(np.int64), 2, "tabular"
    ds = load_dataset("reviews-bow")
    x = ds.X.tocsc()
    df = np.asarray((x > 0).sum(axis=0)).ravel()
    keep = np.sort(np.argsort(-df, kind="stable")[: spec.vocab])
    dense = (x[:, keep].toarray() > 0).astype(np.float32)
    return dense, ds.y.astype(np.int64), 2, "tabular"


def load_split(spec: DataSpec) -> VFLSplit:
    """Load ``spec.dataset`` and cut it into parties x {train, aux, test}."""
    x, y, n_classes, kind = _load_joined(spec)
    rng = np.random.default_rng(spec.seed)
    rows = spec.rows if spec.rows is not None else _DEFAULT_ROWS[spec.dataset]
    idx = np.arange(x.shape[0])
    if rows is not None and rows < x.shape[0]:
        idx = np.sort(rng.choice(x.shape[0], size=rows, replace=False))
    idx = rng.permutation(idx)
    n_test = int(round(len(idx) * spec.test_frac))
    n_aux = int(round(len(idx) * spec.aux_frac))
    parts = {
        "test": np.sort(idx[:n_test]),
        "aux": np.sort(idx[n_test : n_test + n_aux]),
        "train": np.sort(idx[n_test + n_aux :]),
    }
    width = x.shape[2] if kind == "image" else x.shape[1]
    if width < spec.parties:
        raise ParameterError(
            "parties", f"must be at most the {width} feature columns", spec.parties
        )
    cols = np.array_split(np.arange(width), spec.parties)
    out: dict[str, list[PartyData]] = {}
    for split, rid in parts.items():
        out[split] = []
        for i, c in enumerate(cols):
            xs = x[rid][:, :, c] if kind == "image" else x[rid][:, c]
            out[split].append(
                PartyData(
                    party_name(i),
                    np.ascontiguousarray(xs, dtype=np.float32),
                    rid.astype(np.int64),
                    y[rid] if i == 0 else None,
                    n_classes,
                )
            )
    return VFLSplit(
        spec,
        kind,  # type: ignore[arg-type]
        out,
        {k: x[v] for k, v in parts.items()},
        {k: y[v] for k, v in parts.items()},
        cols,
        n_classes,
    )


def save_party(path: str | Path, data: PartyData) -> Path:
    """One party's rows as safetensors (no pickle)."""
    from aisec.io import save_safetensors

    tensors = {"x": data.x, "ids": data.ids}
    if data.y is not None:
        tensors["y"] = data.y
    meta = {
        "format": "aisec-vfl-party-1",
        "party": data.party,
        "n_classes": json.dumps(data.n_classes),
    }
    return save_safetensors(path, tensors, metadata=meta)


def load_party(path: str | Path) -> PartyData:
    from safetensors import safe_open

    from aisec.io import load_safetensors

    t = load_safetensors(path, framework="np")
    with safe_open(str(path), framework="np") as fh:
        meta = fh.metadata() or {}
    if meta.get("format") != "aisec-vfl-party-1" or not {"x", "ids"} <= t.keys():
        raise InputFileError(path, "not an aisec VFL party file")
    data = PartyData(
        meta["party"],
        t["x"].astype(np.float32),
        t["ids"].astype(np.int64),
        t["y"].astype(np.int64) if "y" in t else None,
        int(json.loads(meta["n_classes"])),
    )
    check_party(data)
    return data
