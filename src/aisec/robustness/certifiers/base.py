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

    def predict(
        self, model: torch.nn.Module, x: np.ndarray, rng: np.random.Generator | int | None = None
    ) -> Certificate:
        """The predictions of the classifier that ``certify`` certifies, with radius 0.

        A certificate from ``certify`` promises that, within its radius, ``predict`` never returns
        another class. Bound-propagation certifiers certify the network itself, so the default is
        its argmax (``statistic``: the gap between the two largest logits); randomized smoothing
        overrides it with the smoothed classifier, which may abstain.
        """
        import torch

        xs = np.asarray(x, dtype=np.float32)
        preds, gaps = [], []
        with torch.inference_mode():
            for i in range(0, len(xs), 1000):
                top2 = model(torch.from_numpy(xs[i : i + 1000])).topk(2, dim=1)
                preds.append(top2.indices[:, 0].numpy())
                gaps.append((top2.values[:, 0] - top2.values[:, 1]).double().numpy())
        pred = np.concatenate(preds).astype(np.int64) if preds else np.zeros(0, np.int64)
        gap = np.concatenate(gaps) if gaps else np.zeros(0)
        return Certificate(
            self.name,
            self.norm,
            pred,
            np.zeros(len(pred)),
            gap,
            {**self.params.model_dump(), "mode": "predict"},
        )

    def describe(self) -> dict[str, Any]:
        return {"certifier": self.name, **self.params.model_dump()}


CERTIFIERS: Registry[type[Certifier]] = Registry("certifier")


def make_certifier(name: str, **params: Any) -> Certifier:
    """Build a registered certifier by name with parameter overrides."""
    entry = CERTIFIERS.entry(name)
    return entry.obj(**{**entry.defaults, **params})
