"""An in-generation video watermark in the manner of VideoShield: Gaussian Shading in the latents.

The clip is *generated* watermarked; there is no post-hoc ``embed`` (a given video cannot be
marked after the fact: :meth:`VideoShield.embed` refuses with a one-line error).

Generation. The embedded pixel DDPM (:mod:`aisec.diffusion.pixel_ddpm`, 32 x 32 grayscale,
4 x 16 x 16 initial noise) is an image model, so the clip's temporal coherence comes from its
initial noise: ``anchors`` key noises n_0 .. n_{A-1} ~ N(0, I) are spherically interpolated
(slerp) along the clip, n_t for frame t. The watermark is a Gaussian-Shading template
(:class:`aisec.provenance.gaussian_shading.GaussianShading`): the key's message tiled
(``channel_copy`` x ``hw_copy`` x ``hw_copy`` copies per bit) and XOR-ed with a ChaCha20 key
stream gives a sign map m, and frame t starts from z_t = (2 m_t - 1) |n_t|, which is exactly
N(0, I) per frame. DDIM (``gen_steps`` steps) turns z_t into the frame; frames are rounded to
8 bits and repeated to RGB. Unwatermarked clips of the same model start from n_t itself.

Templates (``templates``):

* ``"clip"`` (default): one template for every frame of the clip. The signs of z_t are then the
  same in every frame and only the magnitudes |n_t| move smoothly, so consecutive frames stay
  coherent. Frame swaps and removals do not matter to the detector.
* ``"frame"``: VideoShield's per-frame templates (frame t's key stream uses its own nonce, for
  ``max_frames`` positions). The detector matches each frame's inverted signs against every
  template and decodes with the best one, which is how VideoShield localises temporal
  tampering. On an image model the signs of consecutive frames are then independent, so the
  frames are not coherent (VideoShield gets coherence from its video model); the mean absolute
  difference of consecutive frames is reported by :func:`temporal_difference`.

Detection: each frame is resized to 32 x 32 if needed, DDIM-inverted (``steps`` steps) back to
its initial noise, decrypted with the template's key stream, and every bit's copies are averaged
as tanh(z) into one logit per bit: per-frame logits (T, bits), positive = bit 1, for the seven
rules of :mod:`aisec.provenance.video.aggregation`. :meth:`VideoShield.torch_logits` is the same
function through the differentiable inversion, for WEvade-style white-box attacks
(:mod:`aisec.provenance.video.whitebox`).

Key: a :class:`~aisec.provenance.video.methods.VideoKey` whose message (256 bits by default)
is the whole secret: the ChaCha20 key and the nonces are derived from it with SHA-256 (domain
separated); a template whose signs are unbalanced (|sum(2m - 1)| > sqrt(size) / 2, the balance
rule of our Gaussian Shading) is redrawn with the next counter, deterministically. Detection
needs the key, so a detecting instance is bound to one (``VideoShield(key=...)`` or
:meth:`VideoShield.bind`). As in the reference Gaussian Shading and VideoShield, every clip of
one key carries the same templates.

Deviations from VideoShield: an image model with interpolated noise instead of a video model,
one template per clip by default (above), a 4 x 16 x 16 latent (VideoShield: 4 x T x 64 x 64 with
frame copies), no tamper localisation output.

Reference: Hu et al., "VideoShield: Regulating Diffusion-based Video Generation Models via
Watermarking", ICLR 2025; Yang et al., "Gaussian Shading", CVPR 2024.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from aisec.errors import ConfigError, ParameterError
from aisec.provenance.video.methods import VIDEO_WATERMARKS, VideoKey, VideoWatermark

if TYPE_CHECKING:
    import torch

__all__ = ["VideoShield", "slerp", "temporal_difference", "TEMPLATES"]

TEMPLATES = ("clip", "frame")
_DOMAIN = b"aisec.videoshield.v1"


def slerp(a: np.ndarray, b: np.ndarray, s: float) -> np.ndarray:
    """Spherical interpolation between two noise arrays (s = 0: a, s = 1: b)."""
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    cos = float(np.clip(np.dot(a.ravel(), b.ravel()) / (na * nb), -1.0, 1.0))
    theta = np.arccos(cos)
    if theta < 1e-6:
        return (1 - s) * a + s * b
    return (np.sin((1 - s) * theta) * a + np.sin(s * theta) * b) / np.sin(theta)


def temporal_difference(video: np.ndarray) -> float:
    """Mean absolute difference of consecutive frames (0 for a still clip)."""
    v = np.asarray(video, dtype=np.float64)
    return float(np.abs(np.diff(v, axis=0)).mean()) if len(v) > 1 else 0.0


@VIDEO_WATERMARKS.register(
    "videoshield",
    summary="VideoShield-style in-generation Gaussian Shading (embedded DDPM, 256 bits)",
)
class VideoShield(VideoWatermark):
    """Generate-with-watermark and detect-by-inversion on the embedded DDPM.

    Args:
        key: the key a detecting instance is bound to (needed by :meth:`detect`).
        steps: DDIM inversion steps of the detector.
        gen_steps: DDIM sampling steps of the generator.
        anchors: key noises interpolated along a clip.
        templates: ``"clip"`` or ``"frame"`` (module docstring).
        max_frames: templates of the ``"frame"`` mode (longer clips are refused).
        channel_copy, hw_copy: Gaussian Shading's copies per bit (bits = 4/cc * (16/hw)^2).
        weights: DDPM weights (default: the shipped ones).
        threads: torch intra-op threads while generating or detecting.
    """

    name = "videoshield"
    bits = 256  # the default parameters'; an instance sets its own
    in_generation: ClassVar[bool] = True

    def __init__(
        self,
        key: VideoKey | None = None,
        steps: int = 10,
        gen_steps: int = 10,
        anchors: int = 3,
        templates: str = "clip",
        max_frames: int = 64,
        channel_copy: int = 1,
        hw_copy: int = 2,
        weights: str | None = None,
        threads: int = 1,
    ) -> None:
        if templates not in TEMPLATES:
            raise ParameterError("videoshield.templates", f"must be one of {TEMPLATES}", templates)
        for nm, v in (("steps", steps), ("gen_steps", gen_steps), ("anchors", anchors)):
            if int(v) < 1:
                raise ParameterError(f"videoshield.{nm}", "must be >= 1", v)
        if max_frames < 1 or threads < 1:
            raise ParameterError(
                "videoshield.max_frames/threads", "must be >= 1", (max_frames, threads)
            )
        from aisec.provenance.gaussian_shading import GaussianShading, message_shape

        self.gs = GaussianShading(channel_copy=channel_copy, hw_copy=hw_copy, balanced=True)
        self.latent_shape = (4, 16, 16)
        self.bits = int(np.prod(message_shape(self.latent_shape, self.gs.params)))  # type: ignore[misc]
        self.steps, self.gen_steps, self.anchors = int(steps), int(gen_steps), int(anchors)
        self.templates, self.max_frames = templates, int(max_frames)
        self.weights, self.threads = weights, int(threads)
        self._bb: Any = None
        self.key: VideoKey | None = None
        if key is not None:
            self.check_key(key)
            self.key = key

    # -- key and templates ---------------------------------------------------------------
    def bind(self, key: VideoKey) -> VideoShield:
        """This instance, bound to ``key`` for detection (the key is checked)."""
        self.check_key(key)
        self.key = key
        return self

    def _bound(self) -> VideoKey:
        if self.key is None:
            raise ConfigError(
                "videoshield: detection needs the key (decrypting the inverted latents is keyed): "
                "bind one with VideoShield(key=...) or use `aisec videomark shield detect --key`"
            )
        return self.key

    def streams(self, key: VideoKey) -> np.ndarray:
        """The key streams of the templates, (n_templates, C*H*W) uint8 (derived, balanced)."""
        msg = self.check_key(key)
        n = 1 if self.templates == "clip" else self.max_frames
        return _streams(
            np.packbits(msg).tobytes(), n, self.latent_shape, self.gs.params.model_dump_json()
        )

    def sign_maps(self, key: VideoKey) -> np.ndarray:
        """The templates' sign maps m (n_templates, C, H, W) uint8 0/1."""
        tiled = self._tiled(key).reshape(-1)
        return (tiled[None] ^ self.streams(key)).reshape(-1, *self.latent_shape)

    def _tiled(self, key: VideoKey) -> np.ndarray:
        from aisec.provenance.base import WatermarkKey

        wk = WatermarkKey(
            "gaussian_shading",
            self.latent_shape,
            self.gs.params.model_dump(),
            {"message": self.check_key(key)},
        )
        return self.gs.tiled_message(wk)

    # -- model ---------------------------------------------------------------------------
    def backbone(self) -> Any:
        if self._bb is None:
            from aisec.diffusion.pixel_ddpm import PixelDDPM

            self._bb = PixelDDPM.load(self.weights)
        return self._bb

    def __getstate__(self) -> dict[str, Any]:  # Ray / pickling: reload the model there
        d = dict(self.__dict__)
        d["_bb"] = None
        return d

    # -- verbs ---------------------------------------------------------------------------
    def embed(self, video: np.ndarray, key: VideoKey) -> np.ndarray:
        raise ConfigError(
            "videoshield is an in-generation watermark: it cannot mark a given video after the "
            "fact; generate a watermarked clip (VideoShield.generate, `aisec videomark shield "
            "generate`)"
        )

    def noise_path(self, frames: int, rng: np.random.Generator) -> np.ndarray:
        """Smooth initial noise (frames, C, H, W): slerp between ``anchors`` key noises."""
        if frames < 1:
            raise ParameterError("frames", "must be >= 1", frames)
        size = int(np.prod(self.latent_shape))
        keys = rng.standard_normal((self.anchors, size))
        out = np.empty((frames, size))
        for t in range(frames):
            u = t * (self.anchors - 1) / max(frames - 1, 1)
            i = min(int(np.floor(u)), self.anchors - 2) if self.anchors > 1 else 0
            out[t] = keys[0] if self.anchors == 1 else slerp(keys[i], keys[i + 1], u - i)
        return out.reshape(frames, *self.latent_shape).astype(np.float32)

    def initial_latents(
        self, key: VideoKey | None, frames: int, rng: np.random.Generator
    ) -> np.ndarray:
        """z_t for every frame: (2 m_t - 1) |n_t| with ``key``, n_t without (unwatermarked)."""
        n = self.noise_path(frames, rng)
        if key is None:
            return n
        if self.templates == "frame" and frames > self.max_frames:
            raise ParameterError(
                "frames",
                f"must be <= max_frames = {self.max_frames} with per-frame templates",
                frames,
            )
        maps = self.sign_maps(key)
        idx = np.zeros(frames, dtype=int) if self.templates == "clip" else np.arange(frames)
        return (np.abs(n) * (maps[idx].astype(np.float32) * 2 - 1)).astype(np.float32)

    def generate(self, key: VideoKey | None, frames: int, rng: np.random.Generator) -> np.ndarray:
        """A generated clip (frames, 3, 32, 32) in [0, 1] on the 8-bit grid; watermarked with
        ``key``, unwatermarked (same model, same noise process) with ``key=None``."""
        import torch

        z = torch.from_numpy(self.initial_latents(key, frames, rng))
        with _threads(self.threads):
            img = self.backbone().generate(z, num_steps=self.gen_steps)  # (T, 1, 32, 32)
        img = np.round(np.clip(img, 0, 1) * 255.0) / 255.0
        return np.repeat(img, 3, axis=1).astype(np.float32)

    def _frames(self, video: Any) -> np.ndarray:
        from aisec.perturb.video import check_video

        x = check_video(video)
        if x.shape[-2:] != (32, 32):
            import torch
            import torch.nn.functional as F

            x = (
                F.interpolate(
                    torch.from_numpy(x),
                    size=(32, 32),
                    mode="bilinear",
                    antialias=True,
                    align_corners=False,
                )
                .clamp(0, 1)
                .numpy()
            )
        return x

    def inverted(self, video: Any) -> np.ndarray:
        """Each frame DDIM-inverted to its initial noise, (T, C, H, W)."""
        x = self._frames(video)
        with _threads(self.threads):
            return self.backbone().invert(x, num_steps=self.steps).numpy()

    def detect(self, video: np.ndarray) -> np.ndarray:
        """Per-frame logits (T, bits) under the bound key."""
        key = self._bound()
        z = self.inverted(video)
        import torch

        return self._logits(torch.from_numpy(z), key).double().numpy()

    def torch_logits(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`detect` through the differentiable inversion: (T, 3, H, W) in [0, 1] -> (T, n)."""
        import torch.nn.functional as F

        key = self._bound()
        if x.shape[-2:] != (32, 32):
            x = F.interpolate(x, size=(32, 32), mode="bilinear", antialias=True)
        z = self.backbone().invert_differentiable(x, num_steps=self.steps)
        return self._logits(z, key)

    def template_index(self, z: np.ndarray, key: VideoKey) -> np.ndarray:
        """For each inverted frame, the template its signs agree with most (T,)."""
        maps = self.sign_maps(key).reshape(len(self.streams(key)), -1)
        signs = (np.asarray(z).reshape(len(z), -1) > 0).astype(np.float32)
        agree = signs @ maps.T.astype(np.float32) + (1 - signs) @ (1 - maps.T.astype(np.float32))
        return agree.argmax(axis=1)

    def _logits(self, z: torch.Tensor, key: VideoKey) -> torch.Tensor:
        import torch

        streams = self.streams(key)
        idx = (
            np.zeros(len(z), dtype=int)
            if self.templates == "clip"
            else self.template_index(z.detach().numpy(), key)
        )
        flip = torch.from_numpy(1.0 - 2.0 * streams[idx].astype(np.float32))  # XOR in +-1 form
        dec = torch.tanh(z.reshape(len(z), -1) * flip)
        p = self.gs.params
        c, h, w = self.latent_shape
        dec = dec.reshape(
            len(z),
            c // p.channel_copy,
            p.channel_copy,
            h // p.hw_copy,
            p.hw_copy,
            w // p.hw_copy,
            p.hw_copy,
        )
        return dec.mean(dim=(2, 4, 6)).reshape(len(z), -1)


@lru_cache(maxsize=64)
def _streams(packed: bytes, n: int, shape: tuple[int, int, int], params: str) -> np.ndarray:
    """Derived, balanced ChaCha20 key streams for ``n`` templates of one message."""
    from aisec.provenance.gaussian_shading import chacha_stream

    size = int(np.prod(shape))
    base = hashlib.sha256(_DOMAIN + b"|key|" + params.encode() + b"|" + packed).digest()
    out = np.empty((n, size), dtype=np.uint8)
    for t in range(n):
        for counter in range(1000):
            nonce = hashlib.sha256(
                _DOMAIN
                + b"|nonce|"
                + base
                + t.to_bytes(4, "little")
                + counter.to_bytes(4, "little")
            ).digest()[:12]
            s = chacha_stream(base, nonce, size)
            out[t] = s
            if _balanced(packed, s, shape, params):  # on the sign map m = tiled XOR s
                break
        else:  # p < 1e-200
            raise ConfigError("videoshield: could not derive a balanced template in 1000 tries")
    return out


def _balanced(packed: bytes, stream: np.ndarray, shape: tuple[int, int, int], params: str) -> bool:
    import json

    c, h, w = shape
    p = json.loads(params)
    cc, hw = p["channel_copy"], p["hw_copy"]
    k = (c // cc) * (h // hw) * (w // hw)
    bits = np.unpackbits(np.frombuffer(packed, dtype=np.uint8))[:k].reshape(
        c // cc, h // hw, w // hw
    )
    tiled = np.repeat(np.repeat(np.repeat(bits, cc, 0), hw, 1), hw, 2).reshape(-1)
    m = (tiled ^ stream).astype(np.int64)
    return abs(int((2 * m - 1).sum())) <= len(m) ** 0.5 / 2


class _threads:
    """torch intra-op threads set for a block, restored after."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __enter__(self) -> None:
        import torch

        self.old = torch.get_num_threads()
        torch.set_num_threads(self.n)

    def __exit__(self, *exc: object) -> None:
        import torch

        torch.set_num_threads(self.old)
