"""Common interface of generation-time (initial-noise) image watermarks.

A latent watermark writes a key-dependent pattern into the initial Gaussian noise z_T of a
diffusion model and detects it in the noise recovered from an image by DDIM inversion. The family
verbs are ``keygen`` (secret material), ``embed`` (watermarked initial noise) and ``detect``
(scores and, for multi-bit methods, the decoded message) on recovered noise. Running the
diffusion model around them is :mod:`aisec.provenance.pipeline`'s job, so the same method works
on the embedded DDPM, the exact-score Gaussian mixture and Stable Diffusion.

Threat model: the key (message, cipher key, ring pattern) is secret to the model owner, who
generates and later detects; the adversary sees watermarked images only and edits them (the
distortions and attacks of :mod:`aisec.perturb`) to remove the mark, or presents clean images
hoping for a false accusation. Detection is private-key (the detector holds the key).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from aisec.config import StrictModel
from aisec.errors import ConfigError, ParameterError
from aisec.registry import Registry

if TYPE_CHECKING:
    import torch

    from aisec.rng import CryptoRandom

__all__ = [
    "IMAGE_WATERMARKS",
    "LatentWatermark",
    "WatermarkKey",
    "MaterialSpec",
    "Detection",
    "get_method",
]

IMAGE_WATERMARKS: Registry[type[LatentWatermark]] = Registry("image watermark")


@dataclass(frozen=True)
class WatermarkKey:
    """Secret key material of one method for one latent shape.

    Attributes:
        method: registered method name.
        latent_shape: (C, H, W) of the initial noise the key fits.
        params: the method's parameters (a dict of its parameter model).
        material: named numpy arrays (uint8 key bytes, message bits, ring pattern ...).
    """

    method: str
    latent_shape: tuple[int, int, int]
    params: dict[str, Any]
    material: dict[str, np.ndarray]
    demo: bool = False  # the public demo key (insecure: its seed is published)

    def __repr__(self) -> str:  # never print secrets
        tag = ", PUBLIC DEMO KEY" if self.demo else ""
        return (
            f"WatermarkKey(method={self.method!r}, latent_shape={self.latent_shape}, <secret>{tag})"
        )


@dataclass(frozen=True)
class MaterialSpec:
    """One entry of a key's material: numpy dtype string, shape, whether it holds bits (0/1)."""

    dtype: str
    shape: tuple[int, ...]
    bits: bool = False


@dataclass(frozen=True)
class Detection:
    """Detection scores for a batch of B images (higher score = more likely watermarked).

    Attributes:
        score: (B,) float64, the method's decision statistic.
        bits: (B, k) uint8 decoded message, or None for zero-bit methods.
        bit_acc: (B,) float64 fraction of message bits correct, or None.
        features: named (B,) float64 per-branch statistics (for fusion and reports).
    """

    score: np.ndarray
    bits: np.ndarray | None = None
    bit_acc: np.ndarray | None = None
    features: dict[str, np.ndarray] | None = None


class LatentWatermark(ABC):
    """Base class: a watermark of the initial noise of a diffusion model.

    Subclasses set ``Params`` (a strict pydantic model) and implement the three verbs.
    """

    Params: ClassVar[type[StrictModel]]
    name: ClassVar[str]
    multibit: ClassVar[bool] = False
    gnr: Any = None  # attached detector parts (see with_detector); none by default
    fuser: Any = None

    def __init__(self, params: StrictModel | None = None, **overrides: Any) -> None:
        if params is None:
            try:
                params = self.Params(**overrides)
            except Exception as exc:  # pydantic ValidationError -> one line naming the method
                first = str(exc).splitlines()
                raise ConfigError(
                    f"{self.name}: invalid parameters ({'; '.join(first[:3])})"
                ) from None
        self.params = params

    def check_key(self, key: WatermarkKey, latent_shape: tuple[int, ...] | None = None) -> None:
        """Reject a key of another method or another latent shape with a one-line error."""
        if key.method != self.name:
            raise ConfigError(f"key is for method {key.method!r}, not {self.name!r}")
        if latent_shape is not None and tuple(latent_shape) != tuple(key.latent_shape):
            raise ConfigError(
                f"key fits latents of shape {tuple(key.latent_shape)}, not {tuple(latent_shape)}"
            )

    @abstractmethod
    def keygen(self, latent_shape: tuple[int, int, int], rng: CryptoRandom) -> WatermarkKey:
        """Fresh secret key for initial noise of shape (C, H, W)."""

    @abstractmethod
    def material_spec(self, latent_shape: tuple[int, int, int]) -> dict[str, MaterialSpec]:
        """What a key of this method (with these parameters) holds for a latent shape."""

    def validate_key(self, key: WatermarkKey) -> None:
        """Check the whole key against this method's parameters: method, latent shape, every
        material entry (present, none extra, dtype, shape, finite, bits in {0, 1}). Raises
        :class:`ConfigError` with a one-line message naming the first problem."""
        self.check_key(key)
        shape = key.latent_shape
        if len(shape) != 3 or any(int(s) < 1 for s in shape):
            raise ConfigError(f"key latent_shape must be 3 positive sizes (C, H, W), not {shape}")
        spec = self.material_spec(shape)
        missing = sorted(set(spec) - set(key.material))
        extra = sorted(set(key.material) - set(spec))
        if missing or extra:
            raise ConfigError(
                f"{self.name} key material: missing {missing}, unexpected {extra}"
                if missing and extra
                else (
                    f"{self.name} key lacks material {missing}"
                    if missing
                    else f"{self.name} key has unexpected material {extra}"
                )
            )
        for name, ms in spec.items():
            a = key.material[name]
            if a.dtype != np.dtype(ms.dtype):
                raise ConfigError(f"key material {name!r} has dtype {a.dtype}, not {ms.dtype}")
            if tuple(a.shape) != tuple(ms.shape):
                raise ConfigError(
                    f"key material {name!r} has shape {tuple(a.shape)}, but the parameters and "
                    f"latent shape {tuple(shape)} need {tuple(ms.shape)}"
                )
            if a.dtype.kind == "f" and not np.isfinite(a).all():
                raise ConfigError(f"key material {name!r} holds NaN or infinite values")
            if ms.bits and ((a != 0) & (a != 1)).any():
                raise ConfigError(f"key material {name!r} must hold bits (0 or 1 only)")

    @abstractmethod
    def embed(
        self,
        key: WatermarkKey,
        n: int,
        generator: torch.Generator,
        nonces: list[bytes] | None = None,
    ) -> torch.Tensor:
        """Watermarked initial noise (n, C, H, W) float32, marginally standard normal.

        ``nonces`` (one 12-byte nonce per image) overrides the key's fixed nonce where the
        method uses a stream cipher; other methods ignore it.
        """

    @abstractmethod
    def detect(
        self, key: WatermarkKey, z: torch.Tensor, nonces: list[bytes] | None = None
    ) -> Detection:
        """Scores for recovered initial noise z (B, C, H, W)."""

    @abstractmethod
    def soft_score(self, key: WatermarkKey, z: torch.Tensor) -> torch.Tensor:
        """Differentiable surrogate of the detection score, (B,) float, for noise z (B, C, H, W).

        Higher = more watermarked, as ``detect``'s score; white-box attacks (PGD through the
        inversion) lower it. It uses the key's fixed nonce.
        """

    @abstractmethod
    def threshold(self, key: WatermarkKey, fpr: float) -> float:
        """Deployed threshold on ``detect(...).score`` ("score > threshold" = watermarked).

        It needs no clean images from the user, or is the calibrated threshold the attached
        detector carries; a method that has neither raises :class:`ConfigError` saying how to
        calibrate one.
        """

    # -- detector attachments (GNR, fuser); methods without them take none --------------------
    @property
    def uses_gnr(self) -> bool:
        """Whether ``detect`` needs a Gaussian Noise Restorer attached (``with_detector``)."""
        return False

    @property
    def fusion_features(self) -> tuple[str, ...]:
        """Names of the ``Detection.features`` a fitted fuser combines (empty: no fuser)."""
        return ()

    def key_fingerprint(self, key: WatermarkKey) -> str:
        """Short public fingerprint of a key (matches a fitted fuser or a GNR with its key)."""
        import hashlib

        h = hashlib.sha256(b"aisec-key")
        for name in sorted(key.material):
            h.update(name.encode() + np.ascontiguousarray(key.material[name]).tobytes())
        return h.hexdigest()[:16]

    def with_detector(self, gnr: Any = None, fuser: Any = None) -> LatentWatermark:
        """Attach a trained GNR and/or a fitted fuser (returns self)."""
        if gnr is not None or fuser is not None:
            raise ConfigError(f"{self.name} takes no GNR or fuser")
        return self


def get_method(name: str, **params: Any) -> LatentWatermark:
    """Instantiate a registered image watermark by name with parameter overrides."""
    # Importing the package registers every method.
    import aisec.provenance.gaussian_shading  # noqa: F401
    import aisec.provenance.gaussmarker  # noqa: F401
    import aisec.provenance.tree_ring  # noqa: F401

    entry = IMAGE_WATERMARKS.entry(name)
    merged = {**entry.defaults, **params}
    return entry.obj(**merged)


def check_n(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ParameterError("n", "must be a positive integer", n)
    return int(n)
