"""Small CNNs for certification experiments, trainable on a CPU in minutes; safetensors checkpoints.

Every network is a plain ``torch.nn.Sequential`` of ``Conv2d``, ``ReLU``, ``Flatten`` and ``Linear``
layers so that the interval bound propagation certifier can walk it layer by layer. A checkpoint
stores the weights as safetensors and the architecture (and how the model was trained) as JSON in
the safetensors metadata; loading checks that the tensors match the stored architecture.

What a checkpoint is fit for is stored as plain metadata keys (``PROVENANCE_KEYS``): the data set
it was trained on, the certifier it was trained for, its training mode ("noise" or "ibp") and, for
noise training, the noise level sigma. ``aisec certify run`` refuses a checkpoint whose provenance
disagrees with the data set, certifier or sigma asked for. A checkpoint written before these keys
existed has them inferred from its JSON training record (``Checkpoint.provenance_source`` says so).

Reference: the "small" IBP model of Gowal et al., "On the Effectiveness of Interval Bound
Propagation for Training Verifiably Robust Models", 2018.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field

from aisec.config import StrictModel, validate
from aisec.errors import DataError, InputFileError
from aisec.io import load_safetensors, save_safetensors
from aisec.perturb.triggers import check_images

if TYPE_CHECKING:
    import torch

__all__ = [
    "ArchConfig",
    "build_model",
    "Checkpoint",
    "save_checkpoint",
    "load_checkpoint",
    "as_batch",
    "predict_logits",
    "load_npy_images",
    "provenance_from_info",
    "PROVENANCE_KEYS",
]

FORMAT = "aisec.robustness.cnn/1"
PROVENANCE_KEYS = ("dataset", "certifier", "train_mode", "sigma")


class ArchConfig(StrictModel):
    """Architecture of the small CNN.

    Two convolutions (16 and 32 channels; the first keeps resolution (3x3, stride 1) on inputs
    smaller than 16 pixels, otherwise it halves it (4x4, stride 2); ``first_stride`` 1 or 2
    forces either), a hidden dense layer and the class logits.
    """

    name: str = "small-cnn"
    height: int = Field(28, ge=4, le=256)
    width: int = Field(28, ge=4, le=256)
    channels: int = Field(1, ge=1, le=4)
    n_classes: int = Field(10, ge=2, le=1000)
    conv1: int = Field(16, ge=1, le=256)
    conv2: int = Field(32, ge=1, le=256)
    hidden: int = Field(100, ge=1, le=4096)
    first_stride: int = Field(0, ge=0, le=4)


def build_model(arch: ArchConfig) -> torch.nn.Sequential:
    """A freshly initialised network (initialise under ``torch.random.fork_rng`` for seeding)."""
    from torch import nn

    small = min(arch.height, arch.width) < 16 if arch.first_stride == 0 else arch.first_stride == 1
    k1, s1 = (3, 1) if small else (4, 2)
    h1 = (arch.height + 2 - k1) // s1 + 1
    w1 = (arch.width + 2 - k1) // s1 + 1
    h2, w2 = (h1 + 2 - 4) // 2 + 1, (w1 + 2 - 4) // 2 + 1
    return nn.Sequential(
        nn.Conv2d(arch.channels, arch.conv1, k1, stride=s1, padding=1),
        nn.ReLU(),
        nn.Conv2d(arch.conv1, arch.conv2, 4, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(arch.conv2 * h2 * w2, arch.hidden),
        nn.ReLU(),
        nn.Linear(arch.hidden, arch.n_classes),
    )


def init_model(arch: ArchConfig, seed: int) -> torch.nn.Sequential:
    """``build_model`` with weights drawn from a private generator (no global seeding)."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(arch)


@dataclass(frozen=True)
class Checkpoint:
    """A loaded model with its architecture, training record and provenance.

    ``provenance`` maps each of ``PROVENANCE_KEYS`` to its value (None: not recorded; ``sigma`` is
    a float or None); ``provenance_source`` is "metadata", "inferred from the training record"
    (an older checkpoint) or "none" (no record at all).
    """

    model: torch.nn.Sequential
    arch: ArchConfig
    info: dict[str, Any]
    path: str | None = None
    provenance: dict[str, Any] = field(default_factory=lambda: dict.fromkeys(PROVENANCE_KEYS))
    provenance_source: str = "none"


def provenance_from_info(info: dict[str, Any]) -> dict[str, Any]:
    """Data set, certifier, training mode and sigma from a training record (as
    :func:`~aisec.robustness.pipeline.run_experiment` writes it); None where it has none."""
    cert = info.get("certifier")
    train = info.get("train") if isinstance(info.get("train"), dict) else {}
    mode = train.get("mode")
    sigma = train.get("sigma") if mode == "noise" else None
    return {
        "dataset": info.get("dataset") if isinstance(info.get("dataset"), str) else None,
        "certifier": cert.get("certifier")
        if isinstance(cert, dict)
        else (cert if isinstance(cert, str) else None),
        "train_mode": mode if isinstance(mode, str) else None,
        "sigma": float(sigma) if isinstance(sigma, int | float) else None,
    }


def save_checkpoint(
    path: str | os.PathLike[str],
    model: torch.nn.Module,
    arch: ArchConfig,
    info: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` as safetensors with its architecture and ``info`` (JSON) as metadata.

    The provenance keys (data set, certifier, training mode, sigma) are taken from ``info`` (see
    :func:`provenance_from_info`) and written as metadata keys of their own where known.
    """
    meta = {
        "format": FORMAT,
        "arch": json.dumps(arch.model_dump(), sort_keys=True),
        "info": json.dumps(info or {}, sort_keys=True, default=str),
    }
    for k, v in provenance_from_info(info or {}).items():
        if v is not None:
            meta[k] = repr(v) if k == "sigma" else str(v)
    return save_safetensors(path, dict(model.state_dict()), metadata=meta)


def _provenance(p: Path, meta: dict[str, str], info: dict[str, Any]) -> tuple[dict[str, Any], str]:
    if not any(k in meta for k in PROVENANCE_KEYS):
        inferred = provenance_from_info(info)
        found = any(v is not None for v in inferred.values())
        return inferred, "inferred from the training record" if found else "none"
    out: dict[str, Any] = {k: meta.get(k) for k in PROVENANCE_KEYS}
    if out["sigma"] is not None:
        try:
            out["sigma"] = float(out["sigma"])
        except ValueError:
            raise InputFileError(
                p, f"metadata sigma must be a number; got {out['sigma']!r}"
            ) from None
    return out, "metadata"


def _metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            return dict(fh.metadata() or {})
    except Exception as exc:  # corrupt header
        raise InputFileError(path, f"not a valid safetensors file ({type(exc).__name__})") from None


def load_checkpoint(path: str | os.PathLike[str], expect: ArchConfig | None = None) -> Checkpoint:
    """Load a checkpoint written by :func:`save_checkpoint`.

    Raises:
        InputFileError: missing file, not safetensors, not an aisec robustness checkpoint, tensors
            that do not fit the stored architecture, or (with ``expect``) another architecture.
    """
    p = Path(path)
    tensors = load_safetensors(p)
    meta = _metadata(p)
    if meta.get("format") != FORMAT or "arch" not in meta:
        raise InputFileError(
            p,
            f"not an aisec robustness checkpoint (format {meta.get('format')!r}, "
            f"expected {FORMAT!r})",
        )
    try:
        arch = validate(ArchConfig, json.loads(meta["arch"]), where="checkpoint architecture")
        info = json.loads(meta.get("info", "{}"))
    except (json.JSONDecodeError, ValueError) as exc:
        raise InputFileError(p, f"unreadable architecture metadata ({exc})") from None
    if expect is not None and arch != expect:
        diff = {
            k: (v, getattr(arch, k))
            for k, v in expect.model_dump().items()
            if getattr(arch, k) != v
        }
        raise InputFileError(
            p,
            "checkpoint of another architecture: "
            + ", ".join(f"{k} expected {a} got {b}" for k, (a, b) in diff.items()),
        )
    model = build_model(arch)
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in tensors.items()}
    if want != have:
        bad = sorted(set(want) ^ set(have)) or [k for k in want if want[k] != have[k]]
        raise InputFileError(
            p,
            f"tensors do not match architecture {arch.name!r} "
            f"({len(bad)} mismatched, e.g. {bad[0]!r})",
        )
    if not isinstance(info, dict):
        raise InputFileError(p, f"training record must be a JSON object; got {type(info).__name__}")
    prov, source = _provenance(p, meta, info)
    model.load_state_dict(tensors)
    model.eval()
    return Checkpoint(model, arch, info, str(p), prov, source)


def as_batch(x: Any, arch: ArchConfig, name: str = "x") -> np.ndarray:
    """Validate images for ``arch``: (N, H, W) or (N, C, H, W) float in [0, 1] -> (N, C, H, W)."""
    arr = check_images(x, name)
    if arr.ndim == 3 and arch.channels == 1:
        arr = arr[:, None]
    want = (arch.channels, arch.height, arch.width)
    if arr.ndim != 4 or tuple(arr.shape[1:]) != want:
        raise DataError(
            f"`{name}` must have shape (N, {want[0]}, {want[1]}, {want[2]}) for this model "
            f"(or (N, {want[1]}, {want[2]})); got {arr.shape}"
        )
    return np.ascontiguousarray(arr, dtype=np.float32)


_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"


def load_npy_images(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one array of images from a ``.npy`` file (never pickle).

    Raises:
        InputFileError: missing, a directory, an ``.npz`` archive, not a NumPy array file, an
            unreadable array, or no images (first dimension 0).
    """
    p = Path(path)
    if p.is_dir():
        raise InputFileError(p, "is a directory, not a .npy file")
    if not p.is_file():
        raise InputFileError(p, "no such file")
    with open(p, "rb") as fh:
        head = fh.read(6)
    if head.startswith(_ZIP_MAGIC):
        raise InputFileError(p, "is an .npz archive; save one image array with numpy.save (.npy)")
    if head != _NPY_MAGIC:
        raise InputFileError(p, "is not a .npy array file (no NumPy header)")
    try:
        arr = np.load(p, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc):  # an object array: never unpickled
            raise InputFileError(p, "holds Python objects, not numbers (not loaded)") from None
        raise InputFileError(p, f"not a readable .npy array ({exc})") from None
    except (OSError, EOFError) as exc:
        raise InputFileError(p, f"not a readable .npy array ({type(exc).__name__})") from None
    if arr.ndim == 0 or arr.shape[0] == 0:
        raise InputFileError(p, f"holds no images (shape {arr.shape})")
    return arr


def predict_logits(model: torch.nn.Module, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """Plain (uncertified) logits, (N, n_classes) float32, for validated images x (N, C, H, W)."""
    import torch

    out = []
    with torch.inference_mode():
        for i in range(0, len(x), batch_size):
            out.append(model(torch.from_numpy(x[i : i + batch_size])).numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)
