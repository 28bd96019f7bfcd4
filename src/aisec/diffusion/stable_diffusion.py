"""Stable Diffusion as a watermark backbone (diffusers; needs the weights and, in practice, a GPU).

Generation: DDIM (eta 0) from the watermarked initial latent with a text prompt and classifier-free
guidance; the latent is decoded by the VAE. Detection follows GaussMarker / Tree-Ring: VAE-encode
the image (the posterior mode; the reference samples, which adds noise), then DDIM inversion with
the EMPTY prompt and guidance 1, because the detector does not know the prompt. The DDIM update
and inversion are :mod:`aisec.diffusion.schedule`'s, on the pipeline's own alpha-bar.

Reference: Rombach et al., "High-Resolution Image Synthesis with Latent Diffusion Models", CVPR
2022; GaussMarker ``gaussmarker_det.py`` (empty-prompt 50-step inversion).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from aisec.errors import DependencyError, ParameterError

if TYPE_CHECKING:
    import torch

__all__ = ["StableDiffusionBackbone"]


class StableDiffusionBackbone:
    """A diffusers ``StableDiffusionPipeline`` by hub id or local path.

    Args:
        model: hub id (e.g. ``stabilityai/stable-diffusion-2-1-base``) or local directory.
        device: torch device ("cuda" recommended; "cpu" works but takes minutes per image).
        prompt: generation prompt (detection always uses the empty prompt).
        guidance: classifier-free guidance scale for generation (reference 7.5).
        size: image side in pixels (multiple of 8).
    """

    channels = 3

    def __init__(
        self,
        model: str,
        device: str = "cuda",
        prompt: str = "",
        guidance: float = 7.5,
        size: int = 512,
        pipeline: Any = None,
    ) -> None:
        import torch

        if size % 8:
            raise ParameterError("size", "must be a multiple of 8", size)
        if pipeline is None:
            try:
                from diffusers import StableDiffusionPipeline
            except ImportError:  # pragma: no cover - diffusers is a core dependency here
                raise DependencyError("diffusers", "provenance") from None
            from aisec.assets import resolve_model

            dtype = torch.float16 if device.startswith("cuda") else torch.float32
            pipeline = StableDiffusionPipeline.from_pretrained(
                resolve_model(model).location, torch_dtype=dtype, safety_checker=None
            ).to(device)
        self.pipe = pipeline
        self.name = f"stable-diffusion:{model}"
        self.device = device
        self.prompt = prompt
        self.guidance = float(guidance)
        self.size = size
        self.dtype = next(self.pipe.unet.parameters()).dtype
        self.alphas_cumprod = self.pipe.scheduler.alphas_cumprod.to(torch.float64).cpu()
        self._emb: dict[str, torch.Tensor] = {}

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return (int(self.pipe.unet.config.in_channels), self.size // 8, self.size // 8)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.size, self.size, 3)

    def _embed(self, prompt: str) -> torch.Tensor:
        import torch

        if prompt not in self._emb:
            tok = self.pipe.tokenizer(
                [prompt],
                padding="max_length",
                truncation=True,
                max_length=self.pipe.tokenizer.model_max_length,
                return_tensors="pt",
            )
            with torch.no_grad():
                self._emb[prompt] = self.pipe.text_encoder(tok.input_ids.to(self.device))[0]
        return self._emb[prompt]

    def _eps_fn(self, prompt: str, guidance: float):  # noqa: ANN202
        import torch

        cond, uncond = self._embed(prompt), self._embed("")

        def eps(x: torch.Tensor, t: int) -> torch.Tensor:
            xd = x.to(self.device, self.dtype)
            tt = torch.full((x.shape[0],), t, device=self.device)
            with torch.no_grad():
                if guidance == 1.0:
                    e = self.pipe.unet(
                        xd, tt, encoder_hidden_states=cond.expand(len(x), -1, -1)
                    ).sample
                else:
                    emb = torch.cat([uncond.expand(len(x), -1, -1), cond.expand(len(x), -1, -1)])
                    eu, ec = self.pipe.unet(
                        torch.cat([xd, xd]), torch.cat([tt, tt]), encoder_hidden_states=emb
                    ).sample.chunk(2)
                    e = eu + guidance * (ec - eu)
            return e.to(x.dtype).cpu()

        return eps

    def generate(self, z_t: torch.Tensor, num_steps: int = 50) -> np.ndarray:
        """Images (B, 3, size, size) in [0, 1] from initial latents (B, 4, size/8, size/8)."""
        import torch

        from aisec.diffusion.schedule import ddim_sample

        lat = ddim_sample(
            self._eps_fn(self.prompt, self.guidance),
            z_t.to(torch.float32),
            self.alphas_cumprod,
            num_steps,
        )
        vae = self.pipe.vae
        with torch.no_grad():
            x = vae.decode(lat.to(self.device, self.dtype) / vae.config.scaling_factor).sample
        return ((x.float().clamp(-1, 1) + 1) / 2).cpu().numpy()

    def invert(self, images: np.ndarray, num_steps: int = 50, refine: int = 0) -> torch.Tensor:
        """Empty-prompt, guidance-1 DDIM inversion of images (B, 3, size, size) in [0, 1]."""
        import torch

        from aisec.diffusion.schedule import ddim_invert

        x = np.asarray(images, dtype=np.float32)
        if x.ndim != 4 or x.shape[1] not in (1, 3) or x.shape[2:] != (self.size, self.size):
            raise ParameterError("images", f"must be (B, 3, {self.size}, {self.size})", x.shape)
        if x.shape[1] == 1:
            x = np.repeat(x, 3, axis=1)
        vae = self.pipe.vae
        with torch.no_grad():
            t = torch.from_numpy(x * 2 - 1).to(self.device, self.dtype)
            lat = vae.encode(t).latent_dist.mode() * vae.config.scaling_factor
        return ddim_invert(
            self._eps_fn("", 1.0), lat.float().cpu(), self.alphas_cumprod, num_steps, refine
        )
