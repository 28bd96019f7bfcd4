"""Stable Diffusion as a diffusion backbone (diffusers; needs the weights and, in practice, a GPU).

Generation: DDIM (eta 0) from the initial latent with a text prompt and classifier-free guidance;
the latent is decoded by the VAE. Detection follows GaussMarker / Tree-Ring: VAE-encode the image
(the posterior mode; the reference samples, which adds noise), then DDIM inversion with the EMPTY
prompt and guidance 1, because the detector does not know the prompt. ``eps`` (used by inversion
and by diffusion regeneration) is that empty-prompt prediction. The UNet's output is converted to
epsilon according to the scheduler's ``prediction_type`` (``epsilon``, ``v_prediction`` as in
SD 2.x at 768 px, or ``sample``). The DDIM update and inversion are
:mod:`aisec.diffusion.schedule`'s, on the pipeline's own alpha-bar.

Reference: Rombach et al., "High-Resolution Image Synthesis with Latent Diffusion Models", CVPR
2022; GaussMarker ``gaussmarker_det.py`` (empty-prompt 50-step inversion).
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

from aisec.diffusion.backbone import DDIMBackbone
from aisec.diffusion.schedule import PREDICTION_TYPES
from aisec.errors import ConfigError, DependencyError, ParameterError

if TYPE_CHECKING:
    import torch

    from aisec.diffusion.schedule import EpsFn

__all__ = ["StableDiffusionBackbone", "load_pipeline"]


def load_pipeline(model: str, device: str) -> Any:
    """A diffusers ``StableDiffusionPipeline`` from a hub id or local path, without safety checker."""
    import torch

    if importlib.util.find_spec("transformers") is None:  # SD's CLIP text encoder and tokenizer
        raise DependencyError("transformers", "diffusion")
    try:
        from diffusers import StableDiffusionPipeline
    except ImportError:
        raise DependencyError("diffusers", "diffusion") from None
    from aisec.assets import resolve_model

    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    return StableDiffusionPipeline.from_pretrained(
        resolve_model(model).location, torch_dtype=dtype, safety_checker=None
    ).to(device)


class StableDiffusionBackbone(DDIMBackbone):
    """A diffusers Stable Diffusion pipeline by hub id or local path, or a pipeline object.

    Args:
        model: hub id (e.g. ``stabilityai/stable-diffusion-2-1-base``) or local directory.
        device: torch device ("cuda" recommended; "cpu" works but takes minutes per image).
        prompt: generation prompt (detection always uses the empty prompt).
        guidance: classifier-free guidance scale for generation (reference 7.5).
        size: image side in pixels (a multiple of the VAE's downsampling factor, 8 for SD).
        pipeline: an already built pipeline (anything with ``unet``, ``vae``, ``tokenizer``,
            ``text_encoder`` and ``scheduler``); ``model`` is then only its name.
    """

    channels = 3
    clip = None

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

        if pipeline is None:
            pipeline = load_pipeline(model, device)
        vae = pipeline.vae
        self.factor = 2 ** (len(vae.config.block_out_channels) - 1)
        if size % self.factor:
            raise ParameterError("size", f"must be a multiple of {self.factor}", size)
        ptype = getattr(pipeline.scheduler.config, "prediction_type", "epsilon")
        if ptype not in PREDICTION_TYPES:
            raise ConfigError(
                f"backbone 'stable-diffusion:{model}': scheduler prediction_type must be one of "
                f"{PREDICTION_TYPES}; got {ptype!r}"
            )
        self.pipe = pipeline
        self.prediction_type = ptype
        self.name = f"stable-diffusion:{model}"
        self.device = device
        self.prompt = prompt
        self.guidance = float(guidance)
        self.size = size
        self.dtype = next(self.pipe.unet.parameters()).dtype
        self.alphas_cumprod = self.pipe.scheduler.alphas_cumprod.to(torch.float64).cpu()
        self.scaling = float(vae.config.scaling_factor)
        shift = getattr(vae.config, "shift_factor", None)
        self.shift = float(shift) if shift is not None else 0.0
        self._emb: dict[str, torch.Tensor] = {}

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        s = self.size // self.factor
        return (int(self.pipe.unet.config.in_channels), s, s)

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

    def _unet_eps(self, x: torch.Tensor, t: int, emb: torch.Tensor) -> torch.Tensor:
        """UNet output at x (B, C, h, w) and timestep t, converted to epsilon (device dtype)."""
        import torch

        from aisec.diffusion.schedule import to_eps

        xd = x.to(self.device, self.dtype)
        tt = torch.full((x.shape[0],), t, device=self.device)
        out = self.pipe.unet(xd, tt, encoder_hidden_states=emb).sample
        return to_eps(out, xd, float(self.alphas_cumprod[t]), self.prediction_type)

    def _eps(self, x: torch.Tensor, t: int) -> torch.Tensor:
        """Empty-prompt, guidance-1 noise prediction (the detector's and the regenerator's)."""
        emb = self._embed("").expand(len(x), -1, -1)
        return self._unet_eps(x, t, emb).to(x.dtype).cpu()

    def _generation_eps(self) -> EpsFn:
        import torch

        if self.guidance == 1.0:
            cond = self._embed(self.prompt)

            def eps1(x: torch.Tensor, t: int) -> torch.Tensor:
                with torch.no_grad():
                    e = self._unet_eps(x, t, cond.expand(len(x), -1, -1))
                return e.to(x.dtype).cpu()

            return eps1
        cond, uncond = self._embed(self.prompt), self._embed("")

        def eps(x: torch.Tensor, t: int) -> torch.Tensor:
            n = len(x)
            emb = torch.cat([uncond.expand(n, -1, -1), cond.expand(n, -1, -1)])
            with torch.no_grad():
                eu, ec = self._unet_eps(torch.cat([x, x]), t, emb).chunk(2)
            return (eu + self.guidance * (ec - eu)).to(x.dtype).cpu()

        return eps

    def _to_model(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, size, size) in [0, 1] -> scaled VAE latents (posterior mode), float32."""
        import torch

        lat = self.pipe.vae.encode((x * 2 - 1).to(self.device, self.dtype)).latent_dist.mode()
        return ((lat - self.shift) * self.scaling).to(torch.float32).cpu()

    def _from_model(self, z0: torch.Tensor) -> torch.Tensor:
        """Scaled VAE latents -> images (B, 3, size, size) in [0, 1], float32."""
        import torch

        z = (z0.to(self.device, self.dtype) / self.scaling) + self.shift
        x = self.pipe.vae.decode(z).sample
        return ((x.to(torch.float32).clamp(-1, 1) + 1) / 2).cpu()
