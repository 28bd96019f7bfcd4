"""The certifier interface: ``certify`` (prediction, radius, abstain) and a registry of certifiers."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from aisec.config import StrictModel, validate
from aisec.registry import Registry
from aisec.robustness.certificate import Certificate

if TYPE_CHECKING:
    import torch

__all__ = ["CERTIFIERS", "Certifier", "make_certifier"]


class Certifier(ABC):
    """Certifies the predictions of a classifier on a batch of inputs, or abstains.

    Attributes:
        family: "smoothing" (probabilistic, L2) or "bound" (deterministic bound propagation, Linf).
            Training for a certifier depends on the family: Gaussian noise augmentation for
            smoothing, IBP training for bound propagation.
    """

    Params: ClassVar[type[StrictModel]]
    name: ClassVar[str]
    family: ClassVar[str]
    norm: ClassVar[str]

    def __init__(self, params: StrictModel | None = None, **kwargs: Any) -> None:
        if params is None:
            params = validate(self.Params, kwargs, where=f"certifier {self.name!r}")
        self.params = params

    @abstractmethod
    def certify(
        self, model: torch.nn.Module, x: np.ndarray, rng: np.random.Generator | int | None = None
    ) -> Certificate:
        """Certify ``x`` ((N, C, H, W) float32 in [0, 1], validated) with ``model``."""

    def describe(self) -> dict[str, Any]:
        return {"certifier": self.name, **self.params.model_dump()}


CERTIFIERS: Registry[type[Certifier]] = Registry("certifier")


def make_certifier(name: str, **params: Any) -> Certifier:
    """Build a registered certifier by name with parameter overrides."""
    entry = CERTIFIERS.entry(name)
    return entry.obj(**{**entry.defaults, **params})
