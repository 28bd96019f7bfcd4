"""White-box attacks on a video watermark detector: WEvade-style PGD for removal and forgery.

The attacker holds the detector's weights and differentiates through it
(:func:`load_torch_decoder` gives a function from (T, 3, H, W) RGB in [0, 1] to per-frame logits):

* RivaGAN: its decoder (21 ONNX nodes: two branches of Conv(1x11x11) -> tanh -> BatchNorm -> Conv,
  a channel softmax attention, and a spatial mean) is rebuilt in torch from the ONNX file's own
  weights (:class:`RivaGANTorchDecoder`, checked against onnxruntime in the tests);
* the learned methods (``hidden``, ``segmark``) are torch networks already: their
  ``torch_logits`` (area-downsampling included) is the attacked function, and for ``segmark``
  the gradient of a frame's logits reaches the other frames of its segment.

:func:`wevade` runs projected sign-gradient descent inside an L-inf ball of radius ``eps``
around each frame (WEvade-W, Jiang et al. CCS 2023; VideoMarkBench ``Wevade*.py``):

* removal: target = the key's message with every bit flipped (WEvade-W-I), from a watermarked clip;
* forgery: target = the key's message, from a real clip that was never watermarked;

minimising the MSE between tanh(logits) and the +-1 target, with early stop once every frame's
bit accuracy to the target reaches ``1 - stop_err``. ``adaptive=True`` attacks the
aggregation instead (the reference ``Wevade_adaptive.py``): the loss is taken on the mean logit
vector over frames, which is what ``logit_mean`` thresholds. The adversarial clip is rounded to
8 bits and success is judged by the method's own ``detect`` (onnxruntime for RivaGAN) under each
aggregation rule.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aisec.errors import DependencyError, ParameterError
from aisec.provenance.video.methods import VideoKey, VideoWatermark

__all__ = [
    "RivaGANTorchDecoder",
    "WEvadeResult",
    "wevade",
    "load_torch_decoder",
    "whitebox_cell",
]


def _onnx_weights(path: Path) -> dict[str, np.ndarray]:
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise DependencyError("onnx", "video") from None
    model = onnx.load(str(path))
    return {t.name: numpy_helper.to_array(t).copy() for t in model.graph.initializer}


def torch_tanh(x: Any) -> Any:
    return x.tanh()


class RivaGANTorchDecoder:
    """RivaGAN's decoder as torch ops on (B, 3, H, W) BGR frames in [-1, 1] -> (B, 32) logits."""

    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        import torch

        w = {k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in weights.items()}
        need = [
            f"{b}.{i}.{p}"
            for b in ("_attention", "_conv")
            for i in (0, 3)
            for p in ("weight", "bias")
        ]
        missing = [k for k in need if k not in w]
        if missing:
            raise ParameterError(
                "rivagan decoder", "must hold the RivaGAN decoder weights", missing[:3]
            )
        self.w = w

    def _branch(self, x: Any, name: str) -> Any:
        import torch.nn.functional as F

        w = self.w
        h = F.conv2d(x, w[f"{name}.0.weight"][:, :, 0], w[f"{name}.0.bias"], padding=5)
        h = F.batch_norm(
            torch_tanh(h),
            w[f"{name}.2.running_mean"],
            w[f"{name}.2.running_var"],
            w[f"{name}.2.weight"],
            w[f"{name}.2.bias"],
            training=False,
            eps=1e-5,
        )
        h = F.conv2d(h, w[f"{name}.3.weight"][:, :, 0], w[f"{name}.3.bias"], padding=5)
        if name == "_attention":
            h = F.batch_norm(
                torch_tanh(h),
                w[f"{name}.5.running_mean"],
                w[f"{name}.5.running_var"],
                w[f"{name}.5.weight"],
                w[f"{name}.5.bias"],
                training=False,
                eps=1e-5,
            )
            h = h.softmax(dim=1)
        return h

    def __call__(self, x: Any) -> Any:
        att = self._branch(x, "_attention")
        feat = self._branch(x, "_conv")
        return (feat * att).flatten(2).mean(dim=2)


def load_torch_decoder(method: VideoWatermark) -> Callable[[Any], Any]:
    """The differentiable detector of a registered method: (T, 3, H, W) RGB in [0, 1] -> (T, n).

    RivaGAN (rebuilt in torch) and the learned torch methods; the package's classical methods
    have no gradient and are refused.
    """
    torch_logits = getattr(method, "torch_logits", None)
    if callable(torch_logits):
        return torch_logits
    if method.name != "rivagan":
        raise ParameterError(
            "method",
            "white-box attacks need a torch decoder (rivagan, hidden, segmark)",
            method.name,
        )
    d = getattr(method, "model_dir", None)
    if d is None:
        spec = importlib.util.find_spec("imwatermark")
        if spec is None or not spec.submodule_search_locations:
            raise DependencyError("invisible-watermark", "video")
        d = next(iter(spec.submodule_search_locations))
    dec = RivaGANTorchDecoder(_onnx_weights(Path(d) / "rivagan_decoder.onnx"))
    return lambda x: dec(x.flip(1) * 2 - 1)  # RGB -> BGR, [0, 1] -> [-1, 1]


@dataclass(frozen=True)
class WEvadeResult:
    """The adversarial clip (8-bit rounded), its L-inf size, iterations run and the final loss."""

    video: np.ndarray
    linf: float
    iterations: int
    loss: float


def wevade(
    decoder: Callable[[Any], Any],
    video: np.ndarray,
    key: VideoKey,
    goal: str,
    eps: float = 8 / 255,
    alpha: float = 1 / 255,
    steps: int = 50,
    stop_err: float = 0.0,
    adaptive: bool = False,
) -> WEvadeResult:
    """PGD (sign gradients, L-inf projection) on every frame of ``video`` (T, 3, H, W).

    ``decoder`` maps a (T, 3, H, W) tensor in [0, 1] to per-frame logits (T, n)
    (:func:`load_torch_decoder`).
    """
    import torch

    if goal not in ("removal", "forgery"):
        raise ParameterError("goal", "must be 'removal' or 'forgery'", goal)
    if not 0 < eps <= 1 or alpha <= 0 or steps < 1:
        raise ParameterError(
            "eps/alpha/steps", "need 0 < eps <= 1, alpha > 0, steps >= 1", (eps, alpha, steps)
        )
    msg = torch.as_tensor(np.asarray(key.message), dtype=torch.float32)
    target = 1.0 - msg if goal == "removal" else msg
    sign_t = target * 2 - 1
    x0 = torch.as_tensor(np.asarray(video, dtype=np.float32))
    delta = torch.zeros_like(x0, requires_grad=True)
    it, loss_v = 0, float("nan")
    for it in range(1, steps + 1):  # noqa: B007 - the count is returned
        x = (x0 + delta).clamp(0, 1)
        logits = decoder(x)
        if adaptive:
            loss = ((logits.mean(0).tanh() - sign_t) ** 2).mean()
            done = ((logits.mean(0) > 0).float() == target).float().mean() >= 1 - stop_err
        else:
            loss = ((logits.tanh() - sign_t) ** 2).mean()
            acc = ((logits > 0).float() == target).float().mean(1)
            done = bool((acc >= 1 - stop_err).all())
        loss_v = float(loss.detach())
        if done:
            break
        (grad,) = torch.autograd.grad(loss, delta)
        with torch.no_grad():
            delta -= alpha * grad.sign()
            delta.clamp_(-eps, eps)
            delta.copy_((x0 + delta).clamp(0, 1) - x0)
    adv = (x0 + delta.detach()).clamp(0, 1).numpy()
    adv = np.round(adv * 255.0) / 255.0
    linf = float(np.abs(adv - np.asarray(video)).max())
    return WEvadeResult(adv.astype(np.float32), linf, it, loss_v)


def whitebox_cell(
    method: VideoWatermark,
    key: VideoKey,
    clips: list[np.ndarray],
    marked: list[np.ndarray],
    eps: float = 8 / 255,
    steps: int = 10,
    alpha: float = 2 / 255,
    adaptive: bool = False,
) -> dict[str, Any]:
    """Removal on every marked clip and forgery on every real clip; per-rule success counts.

    Success is judged on the 8-bit adversarial clip by ``method.detect``: removal
    succeeds when a rule no longer flags the clip, forgery when it flags it.
    """
    import torch

    dec = load_torch_decoder(method)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two intra-op threads spin against each other on a shared 2-core box
    try:
        return _whitebox(method, key, clips, marked, dec, eps, steps, alpha, adaptive)
    finally:
        torch.set_num_threads(threads)


def _whitebox(
    method: VideoWatermark,
    key: VideoKey,
    clips: list[np.ndarray],
    marked: list[np.ndarray],
    dec: Callable[[Any], Any],
    eps: float,
    steps: int,
    alpha: float,
    adaptive: bool,
) -> dict[str, Any]:
    import torch

    from aisec.perturb.video import video_quality
    from aisec.provenance.video.aggregation import RULES, aggregate_all

    counts = {r: {"removal": 0, "forgery": 0} for r in RULES}
    linf, psnr, iters = [], [], []
    with torch.random.fork_rng(devices=[]), torch.enable_grad():
        for goal, videos in (("removal", marked), ("forgery", clips)):
            for v in videos:
                res = wevade(
                    dec, v, key, goal, eps=eps, alpha=alpha, steps=steps, adaptive=adaptive
                )
                agg = aggregate_all(method.detect(res.video), key.message)
                for r in RULES:
                    hit = agg[r]["flag"] if goal == "forgery" else not agg[r]["flag"]
                    counts[r][goal] += bool(hit)
                linf.append(res.linf)
                psnr.append(video_quality(v, res.video, np.arange(len(v)))["psnr"])
                iters.append(res.iterations)
    return {
        "n": len(clips),
        "eps": eps,
        "steps": steps,
        "adaptive": adaptive,
        "rules": counts,
        "linf_max": float(max(linf)),
        "psnr": float(np.mean(psnr)),
        "iterations_mean": float(np.mean(iters)),
    }
