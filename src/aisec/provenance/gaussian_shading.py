"""Gaussian Shading: a multi-bit watermark in the signs of a diffusion model's initial noise.

Embedding: a k-bit message w is tiled (each bit repeated over a ``channel_copy x hw_copy x
hw_copy`` block of the latent), XOR-ed with a ChaCha20 key stream (key 32 bytes, nonce 12 bytes)
to a pseudo-random bit map m, and the initial noise is drawn as z = (2m - 1) * |N(0, 1)|, which is
exactly standard normal ("distribution-preserving sampling"). Detection: m' = [z_rec > 0],
decrypt, majority vote over each bit's copies, bit accuracy against w.

Key balance (our deviation, ``balanced=True``; the reference is ``balanced=False``): with a fixed
nonce the mean of z is 0.8 * mean(2m - 1) for every image, and a small latent (4x16x16) is very
sensitive to it: on the embedded DDPM a 1-sigma imbalance of m moves the mean image brightness
from 0.36 to 0.56, and an unlucky key (2.9 sigma) gives black images that cannot be inverted.
``keygen`` therefore redraws the cipher key until |sum(2m - 1)| <= sqrt(size) / 2 (about 38 % of
keys pass: 1.4 bits of key entropy are spent). Per-image nonces do not need it.

The reference code (and GaussMarker's) uses ONE key/nonce pair, hence the same m, for every
image: the sign pattern of every watermarked latent is identical and only |z| varies. Passing a
fresh nonce per image (``nonces``) restores independent signs; the detector then needs the nonce
(stored by the generator, or one nonce per user = one key per user).

Reference: Yang et al., "Gaussian Shading: Provable Performance-Lossless Image Watermarking for
Diffusion Models", CVPR 2024 (code: bsmhmmlf/Gaussian-Shading); nonce reuse critique: Thietke et al.,
arXiv 2503.11404.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np
from pydantic import Field

from aisec.config import StrictModel
from aisec.errors import ConfigError, ParameterError
from aisec.provenance.base import (
    IMAGE_WATERMARKS,
    Detection,
    LatentWatermark,
    MaterialSpec,
    WatermarkKey,
    check_n,
)

if TYPE_CHECKING:
    import torch

    from aisec.rng import CryptoRandom

__all__ = ["GaussianShading", "GaussianShadingParams", "chacha_stream", "message_shape"]


class GaussianShadingParams(StrictModel):
    """Gaussian Shading parameters (reference: channel_copy 1, hw_copy 8 on 4x64x64 = 256 bits)."""

    channel_copy: int = Field(1, ge=1)
    hw_copy: int = Field(4, ge=1)
    chacha: bool = True
    balanced: bool = True


def message_shape(latent_shape: tuple[int, int, int], p: GaussianShadingParams) -> tuple[int, ...]:
    """Shape (C / channel_copy, H / hw_copy, W / hw_copy) of the message for a latent shape."""
    c, h, w = latent_shape
    if c % p.channel_copy or h % p.hw_copy or w % p.hw_copy:
        raise ParameterError(
            "hw_copy/channel_copy",
            f"must divide the latent shape {tuple(latent_shape)}",
            (p.channel_copy, p.hw_copy),
        )
    return (c // p.channel_copy, h // p.hw_copy, w // p.hw_copy)


def chacha_stream(key: bytes, nonce: bytes, nbits: int) -> np.ndarray:
    """``nbits`` key-stream bits (uint8 0/1) of ChaCha20 (RFC 8439, counter 0)."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

    if len(key) != 32 or len(nonce) != 12:
        raise ParameterError("key/nonce", "must be 32 and 12 bytes", (len(key), len(nonce)))
    enc = Cipher(algorithms.ChaCha20(key, b"\x00" * 4 + nonce), mode=None).encryptor()
    stream = enc.update(b"\x00" * ((nbits + 7) // 8))
    return np.unpackbits(np.frombuffer(stream, dtype=np.uint8))[:nbits]


@IMAGE_WATERMARKS.register("gaussian_shading", summary="Gaussian Shading: 256-bit sign watermark")
class GaussianShading(LatentWatermark):
    """Gaussian Shading (multi-bit, spatial domain of the initial noise)."""

    Params = GaussianShadingParams
    name: ClassVar[str] = "gaussian_shading"
    multibit: ClassVar[bool] = True
    params: GaussianShadingParams

    # -- key ------------------------------------------------------------------------------
    def keygen(self, latent_shape: tuple[int, int, int], rng: CryptoRandom) -> WatermarkKey:
        shape = message_shape(tuple(latent_shape), self.params)
        k = int(np.prod(shape))
        bits = np.unpackbits(np.frombuffer(rng.bytes((k + 7) // 8), dtype=np.uint8))[:k]
        size = int(np.prod(latent_shape))
        for _ in range(1000):
            material = {
                "message": bits.astype(np.uint8),
                "cipher_key": np.frombuffer(rng.bytes(32), dtype=np.uint8).copy(),
                "nonce": np.frombuffer(rng.bytes(12), dtype=np.uint8).copy(),
                # Non-ChaCha variant: a one-time pad over the whole tiled map.
                "pad": np.unpackbits(np.frombuffer(rng.bytes((size + 7) // 8), np.uint8))[:size],
            }
            key = WatermarkKey(self.name, tuple(latent_shape), self.params.model_dump(), material)
            if not self.params.balanced:
                return key
            m = self.encrypted_map(key).astype(np.int64)
            if abs(int((2 * m - 1).sum())) <= size**0.5 / 2:
                return key
        raise ConfigError("could not draw a balanced key in 1000 tries")  # p < 1e-200

    def material_spec(self, latent_shape: tuple[int, int, int]) -> dict[str, MaterialSpec]:
        size = int(np.prod(latent_shape))
        return {
            "message": MaterialSpec("uint8", (self.n_bits(latent_shape),), bits=True),
            "cipher_key": MaterialSpec("uint8", (32,)),
            "nonce": MaterialSpec("uint8", (12,)),
            "pad": MaterialSpec("uint8", (size,), bits=True),
        }

    def n_bits(self, latent_shape: tuple[int, int, int]) -> int:
        return int(np.prod(message_shape(tuple(latent_shape), self.params)))

    def _stream(self, key: WatermarkKey, nonce: bytes | None) -> np.ndarray:
        size = int(np.prod(key.latent_shape))
        if not self.params.chacha:
            return key.material["pad"].astype(np.uint8)
        n = bytes(key.material["nonce"].tobytes()) if nonce is None else nonce
        return chacha_stream(bytes(key.material["cipher_key"].tobytes()), n, size)

    def tiled_message(self, key: WatermarkKey) -> np.ndarray:
        """The message tiled over the latent, (C, H, W) uint8."""
        shape = message_shape(key.latent_shape, self.params)
        w = key.material["message"].reshape(shape)
        p = self.params
        return np.repeat(np.repeat(np.repeat(w, p.channel_copy, 0), p.hw_copy, 1), p.hw_copy, 2)

    def encrypted_map(self, key: WatermarkKey, nonce: bytes | None = None) -> np.ndarray:
        """m = tiled message XOR key stream, (C, H, W) uint8 0/1 (the sign map of the noise)."""
        sd = self.tiled_message(key).reshape(-1)
        return (sd ^ self._stream(key, nonce)).reshape(key.latent_shape).astype(np.uint8)

    # -- verbs ----------------------------------------------------------------------------
    def embed(
        self,
        key: WatermarkKey,
        n: int,
        generator: torch.Generator,
        nonces: list[bytes] | None = None,
    ) -> torch.Tensor:
        import torch

        self.check_key(key)
        n = check_n(n)
        if nonces is not None and len(nonces) != n:
            raise ParameterError("nonces", f"must hold one nonce per image ({n})", len(nonces))
        maps = (
            np.stack([self.encrypted_map(key, nc) for nc in nonces])
            if nonces is not None
            else np.broadcast_to(self.encrypted_map(key), (n, *key.latent_shape))
        )
        mag = torch.randn((n, *key.latent_shape), generator=generator).abs()
        sign = torch.from_numpy(maps.astype(np.float32) * 2.0 - 1.0)
        return mag * sign

    def decode_signs(
        self, key: WatermarkKey, signs: np.ndarray, nonces: list[bytes] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Decrypt and vote a sign map (B, C, H, W) uint8 -> (bits (B, k) uint8, bit_acc (B,))."""
        b = signs.shape[0]
        flat = signs.reshape(b, -1).astype(np.uint8)
        if nonces is None:
            stream = self._stream(key, None)[None]
        else:
            if len(nonces) != b:
                raise ParameterError("nonces", f"must hold one nonce per image ({b})", len(nonces))
            stream = np.stack([self._stream(key, nc) for nc in nonces])
        sd = (flat ^ stream).reshape(b, *key.latent_shape).astype(np.float32)
        p = self.params
        c, h, w = message_shape(key.latent_shape, p)
        votes = sd.reshape(b, c, p.channel_copy, h, p.hw_copy, w, p.hw_copy).mean(axis=(2, 4, 6))
        bits = (votes > 0.5).astype(np.uint8).reshape(b, -1)
        acc = (bits == key.material["message"][None]).mean(axis=1)
        return bits, acc.astype(np.float64)

    def detect(
        self, key: WatermarkKey, z: torch.Tensor, nonces: list[bytes] | None = None
    ) -> Detection:
        self.check_key(key, tuple(z.shape[1:]))
        signs = (z.detach().cpu().numpy() > 0).astype(np.uint8)
        bits, acc = self.decode_signs(key, signs, nonces)
        return Detection(score=acc, bits=bits, bit_acc=acc, features={"gs_bit_acc": acc})

    def soft_score(self, key: WatermarkKey, z: torch.Tensor) -> torch.Tensor:
        """Soft sign agreement with the key's sign map m: mean tanh(3 z) (2 m - 1), in [-1, 1]."""
        import torch

        self.check_key(key, tuple(z.shape[1:]))
        sign = torch.from_numpy(self.encrypted_map(key).astype(np.float32) * 2 - 1)
        return (torch.tanh(3 * z) * sign.to(z.dtype)).flatten(1).mean(1)

    def threshold(self, key: WatermarkKey, fpr: float) -> float:
        """Exact binomial bit-accuracy threshold at ``fpr`` (bits of clean noise are fair coins)."""
        from aisec.metrics.watermark import binomial_threshold

        return binomial_threshold(self.n_bits(key.latent_shape), fpr)


def require_multibit(method: LatentWatermark) -> None:
    if not method.multibit:
        raise ConfigError(f"{method.name} is a zero-bit watermark and carries no message")
