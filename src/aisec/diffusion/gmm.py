"""Exact-score diffusion on a Gaussian mixture: deterministic, training-free test backbone.

A Gaussian mixture (one low-rank-plus-isotropic Gaussian per class) is fitted to sklearn's 8x8
digits upsampled to 32x32 and pixel-unshuffled to 4x16x16, like the trained DDPM. For a mixture
the denoiser E[x0 | x_t] is closed form (posterior responsibilities times a per-component Wiener
filter in each component's eigenbasis), so DDIM sampling and inversion use the exact score and
their only error is discretisation, the same error source as a trained model's, minus the
network's approximation error. Used by the fast tests; numbers from it are not the benchmark.

Reference: Song et al., "Denoising Diffusion Implicit Models", ICLR 2021; the closed-form
mixture score is standard (e.g. Karras et al., "Elucidating the Design Space of Diffusion-Based
Generative Models", NeurIPS 2022, App. B).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from aisec.diffusion.backbone import DDIMBackbone
from aisec.errors import ParameterError

if TYPE_CHECKING:
    import torch

__all__ = ["GMMDiffusion"]


class GMMDiffusion(DDIMBackbone):
    """Exact-score DDIM on a Gaussian mixture fitted to images (N, h, w) uint8 with labels.

    Args:
        images: (N, h, w) uint8 training images (upsampled to ``image_size``).
        labels: (N,) int class labels; one mixture component per class.
        image_size: side of the generated images (multiple of 2).
        rank: eigen-directions kept per component; the rest is isotropic variance.
        floor: minimum isotropic variance (keeps the components non-degenerate).
    """

    name = "gmm-digits"
    channels = 1
    clip = 1.0

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        image_size: int = 32,
        rank: int = 48,
        floor: float = 2e-2,
    ) -> None:
        import torch
        import torch.nn.functional as F

        from aisec.diffusion.schedule import linear_alphas_cumprod

        if image_size % 2:
            raise ParameterError("image_size", "must be even", image_size)
        x = torch.from_numpy(np.asarray(images, dtype=np.float32) / 255.0)[:, None]
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
        z = F.pixel_unshuffle(x * 2 - 1, 2).to(torch.float64)
        self.size = image_size
        self._latent = tuple(z.shape[1:])
        flat = z.reshape(len(z), -1)
        self.means, self.bases, self.eigs, self.iso, self.logw = [], [], [], [], []
        labels = np.asarray(labels)
        for c in np.unique(labels):
            xc = flat[torch.from_numpy(labels == c)]
            mu = xc.mean(0)
            u, s, _ = torch.linalg.svd((xc - mu).T, full_matrices=False)
            var = s**2 / max(len(xc) - 1, 1)
            r = min(rank, len(var))
            rest = var[r:].sum() / max(flat.shape[1] - r, 1)
            iso = max(float(rest), floor)
            self.means.append(mu)
            self.bases.append(u[:, :r])
            self.eigs.append(torch.clamp(var[:r] - iso, min=0.0))  # excess over isotropic part
            self.iso.append(iso)
            self.logw.append(float(np.log(len(xc) / len(flat))))
        self.alphas_cumprod = linear_alphas_cumprod()

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return self._latent  # type: ignore[return-value]

    def _x0(self, xt: torch.Tensor, a: float) -> torch.Tensor:
        import torch

        b = xt.shape[0]
        x = xt.reshape(b, -1).to(torch.float64)
        logps, posts = [], []
        for mu, u, lam, iso, lw in zip(
            self.means, self.bases, self.eigs, self.iso, self.logw, strict=True
        ):
            d = x - a**0.5 * mu
            v_iso = a * iso + (1 - a)  # variance of x_t orthogonal to u
            v_dir = v_iso + a * lam  # along u
            c = d @ u
            perp = d - c @ u.T
            quad = (c**2 / v_dir).sum(1) + (perp**2).sum(1) / v_iso
            logdet = torch.log(v_dir).sum() + (x.shape[1] - len(lam)) * np.log(v_iso)
            logps.append(lw - 0.5 * (quad + logdet))
            # E[x0 | x_t, k] = mu + sqrt(a) Sigma (a Sigma + (1-a) I)^-1 d
            post = mu + a**0.5 * ((c * ((iso + lam) / v_dir)) @ u.T + perp * (iso / v_iso))
            posts.append(post)
        r = torch.softmax(torch.stack(logps, 1), dim=1)
        x0 = (r[:, :, None] * torch.stack(posts, 1)).sum(1)
        return x0.reshape(xt.shape)

    def _eps(self, x: torch.Tensor, t: int) -> torch.Tensor:
        a = float(self.alphas_cumprod[t])
        x0 = self._x0(x, a)
        return ((x.to(x0.dtype) - a**0.5 * x0) / (1 - a) ** 0.5).to(x.dtype)

    def _to_model(self, x: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as F

        return F.pixel_unshuffle(x * 2 - 1, 2)

    def _from_model(self, z0: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as F

        return (F.pixel_shuffle(z0.float(), 2).clamp(-1, 1) + 1) / 2
