"""The availability-attack interface (verb: ``poison``) and its registry.

An availability attack acts at training time so that, at test time, inputs carrying its trigger
make the certifier abstain (invoke the fallback) while clean inputs are classified and certified as
before. ``poison`` returns the poisoned training set; during training the trainer asks the attack
for the labels of the poisoned rows of each batch (``relabel``) and for an extra loss on them
(``loss``; ``None`` means "train them like clean rows with the relabelled targets").
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from pydantic import Field

from aisec.config import StrictModel, validate
from aisec.errors import DataError
from aisec.perturb.triggers import TRIGGERS, Trigger, make_trigger
from aisec.registry import Registry

if TYPE_CHECKING:
    import torch

__all__ = ["ATTACKS", "AttackParams", "AvailabilityAttack", "PoisonedData", "TrainContext",
           "make_attack", "default_trigger"]


def default_trigger(height: int) -> dict[str, Any]:
    """The default patch trigger for an image size: 3x3 below 16 px, else 5x5 (checkerboard)."""
    return {"name": "patch", "size": 3 if height < 16 else 5}


class AttackParams(StrictModel):
    """Parameters shared by every availability attack.

    ``rate`` is the number of poisoned samples *added*, relative to the clean training set
    (0.01 = 1 %); at least one sample is added when ``rate > 0``. ``fresh_images``: at every
    visit a poisoned row gets a new base image from the attacker's pool (in-distribution images;
    in our experiments the clean training images stand in for them), so the backdoor sees varied
    content while the poisoned share of what the model reads stays ``rate``. ``trigger`` names a trigger of
    :mod:`aisec.perturb.triggers` with its parameters (``{"name": "patch", "size": 3}``); empty
    means the size-dependent default patch.
    """

    rate: float = Field(0.01, ge=0.0, le=0.5)
    trigger: dict[str, Any] = Field(default_factory=dict)
    fresh_images: bool = True


@dataclass(frozen=True)
class PoisonedData:
    """A training set with poisoned samples appended.

    Attributes:
        x: (N, C, H, W) float32 in [0, 1]; poisoned rows carry the trigger.
        y: (N,) int64 stored labels (for poisoned rows: one random draw, what a defender sees).
        poisoned: (N,) bool marks the attacker's rows (known to the experiment, not the defender).
        pool: (M, C, H, W) the attacker's own in-distribution images, from which an attack that
            controls the data feed may draw a fresh base image for a poisoned row at every visit
            (None: the rows keep their base image).
    """

    x: np.ndarray
    y: np.ndarray
    poisoned: np.ndarray
    pool: np.ndarray | None = None

    @property
    def n_poison(self) -> int:
        return int(self.poisoned.sum())


@dataclass(frozen=True)
class TrainContext:
    """What the trainer tells an attack's loss: the training mode and its current strengths."""

    mode: str  # "noise" (for smoothing) or "ibp" (for bound propagation)
    sigma: float
    epsilon: float
    generator: Any  # torch.Generator


class AvailabilityAttack(ABC):
    """A training-time attack that makes a certifier abstain on triggered inputs."""

    Params: ClassVar[type[AttackParams]] = AttackParams
    name: ClassVar[str]

    def __init__(self, params: AttackParams | None = None, **kwargs: Any) -> None:
        if params is None:
            params = validate(self.Params, kwargs, where=f"attack {self.name!r}")
        self.params = params

    def default_trigger(self, height: int) -> dict[str, Any]:
        return default_trigger(height)

    def trigger(self, height: int) -> Trigger:
        spec = dict(self.params.trigger) or self.default_trigger(height)
        name = spec.pop("name", "patch")
        if name not in TRIGGERS:
            TRIGGERS.get(name)  # raises the one-line error listing valid triggers
        return make_trigger(name, **spec)

    def poison(
        self, x: np.ndarray, y: np.ndarray, n_classes: int, rng: np.random.Generator
    ) -> PoisonedData:
        """Append ``round(rate * N)`` triggered copies of random training images to (x, y)."""
        if x.ndim != 4 or len(x) != len(y):
            raise DataError(f"training images must be (N, C, H, W) with N labels; got {x.shape}, "
                            f"{np.shape(y)}")
        n = int(round(self.params.rate * len(x)))
        if self.params.rate > 0:
            n = max(n, 1)
        src = rng.choice(len(x), size=n, replace=n > len(x))
        xp = self.trigger(x.shape[-2]).apply(x[src]) if n else x[:0]
        yp = rng.integers(0, n_classes, size=n)
        return PoisonedData(
            np.concatenate([x, xp]).astype(np.float32),
            np.concatenate([y, yp]).astype(np.int64),
            np.concatenate([np.zeros(len(x), bool), np.ones(n, bool)]),
            x if self.params.fresh_images else None,
        )

    def refresh(self, x: torch.Tensor, pool: torch.Tensor | None,
                generator: torch.Generator) -> torch.Tensor:
        """Poisoned rows with fresh base images from ``pool`` (triggered), or ``x`` unchanged."""
        import torch

        if pool is None or len(pool) == 0 or len(x) == 0:
            return x
        idx = torch.randint(0, len(pool), (len(x),), generator=generator)
        trig = self.trigger(x.shape[-2])
        return torch.from_numpy(trig.apply(pool[idx].numpy()))

    @abstractmethod
    def revisit(
        self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator, n_classes: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The poisoned rows ``x`` (P, C, H, W) and labels ``y`` (P,) as this batch sees them."""

    def loss(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
             ctx: TrainContext) -> torch.Tensor | None:
        """Extra loss on the poisoned rows (P, C, H, W); None = the trainer's own loss on them."""
        return None

    def describe(self) -> dict[str, Any]:
        return {"attack": self.name, **self.params.model_dump()}


ATTACKS: Registry[type[AvailabilityAttack]] = Registry("availability attack")


def make_attack(name: str, **params: Any) -> AvailabilityAttack:
    """Build a registered attack by name with parameter overrides."""
    entry = ATTACKS.entry(name)
    return entry.obj(**{**entry.defaults, **params})
