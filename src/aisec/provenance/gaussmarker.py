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

Two registered variants of the one class: ``gaussmarker`` detects with the GNR (``restorer``
True: a GNR must be attached, or detection refuses to run) and ``gaussmarker_nognr`` without it
(raw signs and ring only). Both use the same keys (``method`` "gaussmarker"). The GNR-restored
bit accuracy is not a binomial test (the GNR pulls some clean maps to the mark), so the
``gaussmarker`` variant has no user-free threshold: it needs a fuser calibrated for its key.

Reference: Li, Huang, Hou, Hong, "GaussMarker: Robust Dual-Domain Watermark for Diffusion
Models", ICML 2025, arXiv 2506.11444 (code: SunnierLee/GaussMarker).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np

from aisec.config import StrictModel
from aisec.errors import ConfigError
from aisec.provenance.base import (
    IMAGE_WATERMARKS,
    Detection,
    LatentWatermark,
    MaterialSpec,
    WatermarkKey,
)
from aisec.provenance.gaussian_shading import GaussianShading, GaussianShadingParams
from aisec.provenance.tree_ring import TreeRing, TreeRingParams

if TYPE_CHECKING:
    import torch

    from aisec.provenance.fuser import Fuser
    from aisec.provenance.gnr import GNR
    from aisec.rng import CryptoRandom

__all__ = ["GaussMarker", "GaussMarkerParams"]


class GaussMarkerParams(StrictModel):
    """GaussMarker parameters: the two component marks, and whether detection uses the GNR.

    ``restorer`` is a detection setting, not part of the mark: keys do not store it.
    """

    gs: GaussianShadingParams = GaussianShadingParams()
    tr: TreeRingParams = TreeRingParams()
    restorer: bool = True


@IMAGE_WATERMARKS.register(
    "gaussmarker", summary="GaussMarker: GS bits restored by the GNR + Tree-Ring ring, fused"
)
@IMAGE_WATERMARKS.register(
    "gaussmarker_nognr",
    summary="GaussMarker without the GNR: raw GS bits + Tree-Ring ring, fused",
    restorer=False,
)
class GaussMarker(LatentWatermark):
    """GaussMarker with a GNR (``restorer``) and an optional fuser (see :meth:`with_detector`)."""

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

    @property
    def variant(self) -> str:
        """The registered name of this configuration."""
        return "gaussmarker" if self.params.restorer else "gaussmarker_nognr"

    @property
    def uses_gnr(self) -> bool:
        return self.params.restorer

    @property
    def fusion_features(self) -> tuple[str, ...]:
        if self.params.restorer:
            return ("gs_bit_acc", "gnr_margin", "tr_score")
        return ("gs_bit_acc", "tr_score")

    def with_detector(self, gnr: GNR | None = None, fuser: Fuser | None = None) -> GaussMarker:
        """Attach a trained GNR and/or a fitted fuser (returns self); None detaches."""
        if gnr is not None and not self.params.restorer:
            raise ConfigError("gaussmarker_nognr detects without a GNR; use gaussmarker for one")
        if fuser is not None:
            extra = sorted(set(fuser.features) - set(self.fusion_features))
            if extra:
                raise ConfigError(
                    f"the fuser reads {extra}, which {self.variant} does not compute"
                    + ("; give the key's GNR (--gnr)" if "gnr_margin" in extra else "")
                )
        self.gnr = gnr
        self.fuser = fuser
        return self

    def key_fingerprint(self, key: WatermarkKey) -> str:
        """:func:`aisec.provenance.gnr.key_fingerprint` of the key's sign map (GNR and fuser)."""
        from aisec.provenance.gnr import key_fingerprint

        return key_fingerprint(self.encrypted_map(key))

    def _require_gnr(self, key: WatermarkKey) -> GNR:
        if self.gnr is None:
            raise ConfigError(
                "gaussmarker detects with a GNR: attach the key's GNR (with_detector(gnr=...); "
                "train one with `aisec watermark train-gnr`), or use gaussmarker_nognr"
            )
        kfp = self.key_fingerprint(key)
        if self.gnr.fingerprint != kfp:
            raise ConfigError(
                f"the GNR was trained for another key (GNR {self.gnr.fingerprint}, key {kfp})"
            )
        return self.gnr

    # -- key: the union of both components' material, prefixed ------------------------------
    def keygen(self, latent_shape: tuple[int, int, int], rng: CryptoRandom) -> WatermarkKey:
        ks = self.gs.keygen(latent_shape, rng)
        kt = self.tr.keygen(latent_shape, rng)
        material = {f"gs.{k}": v for k, v in ks.material.items()}
        material.update({f"tr.{k}": v for k, v in kt.material.items()})
        params = self.params.model_dump(exclude={"restorer"})  # the mark only
        return WatermarkKey(self.name, ks.latent_shape, params, material)

    def material_spec(self, latent_shape: tuple[int, int, int]) -> dict[str, MaterialSpec]:
        spec = {f"gs.{k}": v for k, v in self.gs.material_spec(latent_shape).items()}
        spec.update({f"tr.{k}": v for k, v in self.tr.material_spec(latent_shape).items()})
        return spec

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
        if self.params.restorer:
            gnr = self._require_gnr(key)
            if nonces is not None:
                raise ConfigError(
                    "the GNR is trained for the key's fixed nonce; per-image nonces cannot use it"
                )
            from aisec.provenance.gnr import mark_margin

            signs = (z.detach().cpu().numpy() > 0).astype(np.uint8)
            logits = gnr.logits(signs)
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

    def soft_score(self, key: WatermarkKey, z: torch.Tensor) -> torch.Tensor:
        """Sum of the branch surrogates: GS soft sign agreement, Tree-Ring ring score and, with
        the GNR, its logit margin towards m on the soft signs tanh(3 z) over its clip (so an
        attacker lowers every statistic the fuser reads)."""
        import torch

        self.check_key(key, tuple(z.shape[1:]))
        ks, kt = self.split(key)
        score = self.gs.soft_score(ks, z) + self.tr.soft_score(kt, z)
        if self.params.restorer:
            from aisec.provenance.gnr import MARGIN_CLIP

            gnr = self._require_gnr(key)
            sign = torch.from_numpy(self.gs.encrypted_map(ks).astype(np.float32) * 2 - 1)
            logits = gnr.net(torch.tanh(3 * z)).clamp(-MARGIN_CLIP, MARGIN_CLIP)
            score = score + (logits * sign).flatten(1).mean(1) / MARGIN_CLIP
        return score

    def threshold(self, key: WatermarkKey, fpr: float) -> float:
        """The attached fuser's calibrated threshold; without a fuser, the binomial threshold on
        the raw bit accuracy (``gaussmarker_nognr``). ``gaussmarker`` without a fuser has none:
        the GNR-restored bit accuracy is not a binomial test (measured FPR 0.014 at 1 %)."""
        self.check_key(key)
        if self.fuser is not None:
            kfp = self.key_fingerprint(key)
            if self.fuser.key_fingerprint != kfp:
                raise ConfigError(
                    "the fuser was not calibrated for this key (fuser key "
                    f"{self.fuser.key_fingerprint or 'none'}, key {kfp}); fit one with "
                    "`aisec watermark robustness --key KEY`"
                )
            return self.fuser.threshold_for(fpr)
        if self.params.restorer:
            raise ConfigError(
                "gaussmarker with a GNR needs a fuser calibrated for this key (the binomial "
                "threshold is not valid on GNR-restored bits): fit one with `aisec watermark "
                "robustness --key KEY --set gnr=GNR --out DIR` and pass "
                "--fuser DIR/fuser_<backbone>_gnr.safetensors"
            )
        return self.gs.threshold(self.split(key)[0], fpr)
