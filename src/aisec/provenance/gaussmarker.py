"""GaussMarker: dual-domain watermark of the initial noise (Gaussian Shading, then a Tree-Ring key).

Pipelined injector: z = TR_inject(GS_embed(w)): the multi-bit spatial mark is drawn first and the
zero-bit ring key is then written into the FFT of one channel of that same latent, so both marks
are consistent (the ring overwrites a few low-frequency coefficients and flips a few signs).
Detection on the inverted noise computes (a) GS bit accuracy of the raw sign map, (b) the same
after the Gaussian Noise Restorer (:mod:`aisec.provenance.gnr`) when one is given, with the
GNR's logit margin towards the mark (``gnr_margin``, the statistic the fuser uses), (c) the
Tree-Ring score, and fuses them with a small fitted classifier (:mod:`aisec.provenance.fuser`).
Without a fuser the score is the spatial branch alone (bit accuracy, GNR-restored when a GNR
is attached); the fuser must be fitted per diffusion model (the reference ships one for SD 2.1).

Reference: Li, Huang, Hou, Hong, "GaussMarker: Robust Dual-Domain Watermark for Diffusion
Models", ICML 2025, arXiv 2506.11444 (code: SunnierLee/GaussMarker).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np

from aisec.config import StrictModel
from aisec.errors import ConfigError
from aisec.provenance.base import IMAGE_WATERMARKS, Detection, LatentWatermark, WatermarkKey
from aisec.provenance.gaussian_shading import GaussianShading, GaussianShadingParams
from aisec.provenance.tree_ring import TreeRing, TreeRingParams

if TYPE_CHECKING:
    import torch

    from aisec.provenance.fuser import Fuser
    from aisec.provenance.gnr import GNR
    from aisec.rng import CryptoRandom

__all__ = ["GaussMarker", "GaussMarkerParams"]


class GaussMarkerParams(StrictModel):
    """GaussMarker parameters: the two component marks."""

    gs: GaussianShadingParams = GaussianShadingParams()
    tr: TreeRingParams = TreeRingParams()


@IMAGE_WATERMARKS.register("gaussmarker", summary="GaussMarker: GS bits + Tree-Ring ring, fused")
class GaussMarker(LatentWatermark):
    """GaussMarker with optional GNR and fuser (set with :meth:`with_detector`)."""

    Params = GaussMarkerParams
    name: ClassVar[str] = "gaussmarker"
    multibit: ClassVar[bool] = True
    params: GaussMarkerParams

    def __init__(self, params: StrictModel | None = None, **overrides: object) -> None:
        super().__init__(params, **overrides)
        self.gs = GaussianShading(self.params.gs)
        self.tr = TreeRing(self.params.tr)
        self.gnr: GNR | None = None
        self.fuser: Fuser | None = None

    def with_detector(self, gnr: GNR | None = None, fuser: Fuser | None = None) -> GaussMarker:
        """Attach a trained GNR and/or a fitted fuser (returns self)."""
        self.gnr = gnr
        self.fuser = fuser
        return self

    # -- key: the union of both components' material, prefixed ------------------------------
    def keygen(self, latent_shape: tuple[int, int, int], rng: CryptoRandom) -> WatermarkKey:
        ks = self.gs.keygen(latent_shape, rng)
        kt = self.tr.keygen(latent_shape, rng)
        material = {f"gs.{k}": v for k, v in ks.material.items()}
        material.update({f"tr.{k}": v for k, v in kt.material.items()})
        return WatermarkKey(self.name, ks.latent_shape, self.params.model_dump(), material)

    def split(self, key: WatermarkKey) -> tuple[WatermarkKey, WatermarkKey]:
        """The Gaussian-Shading and Tree-Ring sub-keys of a GaussMarker key."""
        self.check_key(key)
        try:
            gs = {k[3:]: v for k, v in key.material.items() if k.startswith("gs.")}
            tr = {k[3:]: v for k, v in key.material.items() if k.startswith("tr.")}
            return (
                WatermarkKey(self.gs.name, key.latent_shape, self.params.gs.model_dump(), gs),
                WatermarkKey(self.tr.name, key.latent_shape, self.params.tr.model_dump(), tr),
            )
        except KeyError as exc:
            raise ConfigError(f"gaussmarker key lacks {exc}") from None

    def encrypted_map(self, key: WatermarkKey, nonce: bytes | None = None) -> np.ndarray:
        return self.gs.encrypted_map(self.split(key)[0], nonce)

    def n_bits(self, latent_shape: tuple[int, int, int]) -> int:
        return self.gs.n_bits(latent_shape)

    # -- verbs ------------------------------------------------------------------------------
    def embed(
        self,
        key: WatermarkKey,
        n: int,
        generator: torch.Generator,
        nonces: list[bytes] | None = None,
    ) -> torch.Tensor:
        ks, kt = self.split(key)
        return self.tr.inject(kt, self.gs.embed(ks, n, generator, nonces))

    def detect(
        self, key: WatermarkKey, z: torch.Tensor, nonces: list[bytes] | None = None
    ) -> Detection:
        self.check_key(key, tuple(z.shape[1:]))
        ks, kt = self.split(key)
        raw = self.gs.detect(ks, z, nonces)
        ring = self.tr.detect(kt, z)
        feats = {"gs_bit_acc": raw.bit_acc, "tr_score": ring.score}
        bits, acc = raw.bits, raw.bit_acc
        if self.gnr is not None:
            if nonces is not None:
                raise ConfigError(
                    "the GNR is trained for the key's fixed nonce; per-image nonces cannot use it"
                )
            from aisec.provenance.gnr import mark_margin

            signs = (z.detach().cpu().numpy() > 0).astype(np.uint8)
            logits = self.gnr.logits(signs)
            bits, acc = self.gs.decode_signs(ks, (logits > 0).astype(np.uint8))
            feats["gnr_bit_acc"] = acc
            feats["gnr_margin"] = mark_margin(logits, self.gs.encrypted_map(ks))
        if self.fuser is not None:
            score = self.fuser.logit(feats)
        else:
            score = acc
        return Detection(
            score=np.asarray(score, np.float64), bits=bits, bit_acc=acc, features=feats
        )
