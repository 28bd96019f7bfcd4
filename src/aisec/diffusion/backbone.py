"""The diffusion backbone protocol, its capabilities, and the DDIM base every backbone shares.

A backbone maps initial noise to images (``generate``) and images back to noise (``invert``, DDIM
inversion). Callers need different parts of it: the watermark pipeline needs ``generate`` and
``invert``; diffusion regeneration needs ``encode``, ``decode``, ``eps`` and the schedule
(``alphas_cumprod``); a white-box attack needs ``invert_differentiable``. Each backbone declares
what it offers in ``capabilities``, and a caller checks with :func:`require` before any work starts,
so a missing capability is a one-line configuration error rather than a crash after generation.

:class:`DDIMBackbone` implements all six verbs from three model-specific hooks (image tensor ->
model space, model space -> image tensor, a differentiable noise prediction), so the schedule,
DDIM sampling and inversion live in one place (:mod:`aisec.diffusion.schedule`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

from aisec.errors import ConfigError, ParameterError

if TYPE_CHECKING:
    import torch

    from aisec.diffusion.schedule import EpsFn

__all__ = ["Backbone", "CAPABILITIES", "DDIMBackbone", "capabilities_of", "require"]

#: Every capability a backbone can declare. ``eps`` includes the schedule (``alphas_cumprod``).
CAPABILITIES = frozenset({"generate", "invert", "encode", "decode", "eps", "invert_differentiable"})

_LUMA = (0.299, 0.587, 0.114)


class Backbone(Protocol):
    """What callers may use of a diffusion model; ``capabilities`` says which verbs work.

    Images at this boundary are float (B, C, H, W) in [0, 1]; latents are (B, *latent_shape).
    """

    name: str
    capabilities: frozenset[str]
    alphas_cumprod: torch.Tensor  # (T,) float64 alpha-bar of the training schedule

    @property
    def latent_shape(self) -> tuple[int, int, int]: ...

    @property
    def image_shape(self) -> tuple[int, int, int]: ...  # (H, W, C)

    def encode(self, images: np.ndarray) -> torch.Tensor: ...

    def decode(self, z0: torch.Tensor) -> np.ndarray: ...

    def eps(self, x: torch.Tensor, t: int) -> torch.Tensor: ...

    def generate(self, z_t: torch.Tensor, num_steps: int = 20) -> np.ndarray: ...

    def invert(self, images: np.ndarray, num_steps: int = 20, refine: int = 0) -> torch.Tensor: ...

    def invert_differentiable(self, images: torch.Tensor, num_steps: int = 20) -> torch.Tensor: ...


def capabilities_of(backbone: Any) -> frozenset[str]:
    """The capabilities ``backbone`` declares and really has (a declared verb must be callable).

    An object without a ``capabilities`` declaration (e.g. an attacker's own model) is credited
    with the verbs it has; ``eps`` counts only together with ``alphas_cumprod``.
    """
    declared = getattr(backbone, "capabilities", None)
    present = {c for c in CAPABILITIES if callable(getattr(backbone, c, None))}
    if not hasattr(backbone, "alphas_cumprod"):
        present.discard("eps")
    return frozenset(present if declared is None else present & set(declared))


def require(backbone: Any, caps: Iterable[str], purpose: str) -> None:
    """Refuse ``backbone`` for ``purpose`` unless it has every capability in ``caps``.

    Raises:
        ParameterError: a name in ``caps`` is not a capability.
        ConfigError: one line naming the backbone, the purpose and the missing capabilities.
    """
    wanted = set(caps)
    unknown = wanted - CAPABILITIES
    if unknown:
        raise ParameterError("caps", f"must be among {sorted(CAPABILITIES)}", sorted(unknown))
    missing = sorted(wanted - capabilities_of(backbone))
    if missing:
        name = getattr(backbone, "name", type(backbone).__name__)
        raise ConfigError(
            f"backbone {name!r} lacks {', '.join(missing)}, which {purpose} needs "
            f"(it has: {', '.join(sorted(capabilities_of(backbone))) or 'nothing'})"
        )


class DDIMBackbone:
    """Base of the built-in backbones: every verb from three hooks and one DDIM schedule.

    Subclasses set ``name``, ``channels`` (image channels), ``size`` (image side),
    ``alphas_cumprod`` and ``clip`` (clamp of the predicted x_0, None = off), and implement
    :meth:`_to_model`, :meth:`_from_model` and :meth:`_eps`. They may override
    :meth:`_generation_eps` (e.g. text conditioning with guidance) while ``eps`` stays the
    detector's unconditional prediction.
    """

    name: str
    channels: int
    size: int
    clip: float | None = None
    alphas_cumprod: torch.Tensor
    capabilities: ClassVar[frozenset[str]] = CAPABILITIES

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        raise NotImplementedError

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.size, self.size, self.channels)

    # --- hooks -------------------------------------------------------------------------------

    def _to_model(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, channels, size, size) in [0, 1] -> model space (B, *latent_shape)."""
        raise NotImplementedError

    def _from_model(self, z0: torch.Tensor) -> torch.Tensor:
        """Model space (B, *latent_shape) -> images (B, channels, size, size) in [0, 1]."""
        raise NotImplementedError

    def _eps(self, x: torch.Tensor, t: int) -> torch.Tensor:
        """Noise prediction at timestep t; differentiable (gradients follow torch's grad mode)."""
        raise NotImplementedError

    def _generation_eps(self) -> EpsFn:
        return self.eps

    # --- verbs -------------------------------------------------------------------------------

    def as_images(self, images: Any) -> torch.Tensor:
        """(B, H, W), (B, 1, H, W) or (B, 3, H, W) array or tensor -> (B, channels, size, size).

        RGB becomes luminance for a 1-channel model; grayscale is repeated for a 3-channel one.
        Tensors keep their autograd graph.
        """
        import torch

        x = (
            images
            if isinstance(images, torch.Tensor)
            else torch.from_numpy(np.asarray(images, dtype=np.float32))
        )
        if x.ndim == 3:
            x = x[:, None]
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ParameterError(
                "images",
                "must have shape (B, C, H, W) with C in {1, 3} or (B, H, W)",
                tuple(x.shape),
            )
        if x.shape[-2:] != (self.size, self.size):
            raise ParameterError(
                "images",
                f"must be {self.size}x{self.size} pixels for {self.name}",
                tuple(x.shape),
            )
        if x.shape[1] == 3 and self.channels == 1:
            luma = torch.tensor(_LUMA, dtype=x.dtype, device=x.device)
            x = torch.einsum("bchw,c->bhw", x, luma)[:, None]
        elif x.shape[1] == 1 and self.channels == 3:
            x = x.expand(-1, 3, -1, -1)
        return x

    def encode(self, images: np.ndarray) -> torch.Tensor:
        """Images (B, C, H, W) in [0, 1] -> clean latents z_0 (B, *latent_shape)."""
        import torch

        with torch.no_grad():
            return self._to_model(self.as_images(images))

    def decode(self, z0: torch.Tensor) -> np.ndarray:
        """Latents z_0 (B, *latent_shape) -> images (B, channels, size, size) float32 in [0, 1]."""
        import torch

        with torch.no_grad():
            return self._from_model(z0).cpu().numpy().astype(np.float32)

    def eps(self, x: torch.Tensor, t: int) -> torch.Tensor:
        """Unconditional noise prediction at timestep t (no gradients)."""
        import torch

        with torch.no_grad():
            return self._eps(x, t)

    def generate(self, z_t: torch.Tensor, num_steps: int = 20) -> np.ndarray:
        """DDIM-sample images (B, channels, size, size) in [0, 1] from initial noise z_T."""
        import torch

        from aisec.diffusion.schedule import ddim_sample

        z0 = ddim_sample(
            self._generation_eps(),
            z_t.to(torch.float32),
            self.alphas_cumprod,
            num_steps,
            clip=self.clip,
        )
        return self.decode(z0)

    def invert(self, images: np.ndarray, num_steps: int = 20, refine: int = 0) -> torch.Tensor:
        """DDIM-invert images (B, C, H, W) in [0, 1] back to initial noise z_T."""
        from aisec.diffusion.schedule import ddim_invert

        return ddim_invert(
            self.eps, self.encode(images), self.alphas_cumprod, num_steps, refine, clip=self.clip
        )

    def invert_differentiable(self, images: torch.Tensor, num_steps: int = 20) -> torch.Tensor:
        """DDIM inversion with gradients: images tensor (B, C, H, W) in [0, 1] -> z_T (white-box
        attacks on the detector differentiate through it)."""
        from aisec.diffusion.schedule import ddim_invert

        z0 = self._to_model(self.as_images(images))
        return ddim_invert(self._eps, z0, self.alphas_cumprod, num_steps, 0, clip=self.clip)
