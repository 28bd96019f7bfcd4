"""The defence interface (verb: ``defend``) and its registry.

A defence gets the (possibly poisoned) training set, the network trained on it and the training
recipe, and returns a new network (and, where it changes the certifier, new certifier settings).
It is evaluated exactly like the attack: clean accuracy, abstention on clean and triggered inputs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from aisec.config import StrictModel, validate
from aisec.registry import Registry
from aisec.robustness.availability.base import AvailabilityAttack, PoisonedData
from aisec.robustness.models import ArchConfig
from aisec.robustness.training import TrainParams

if TYPE_CHECKING:
    import torch

__all__ = ["DEFENCES", "Defence", "Defended", "make_defence"]


@dataclass(frozen=True)
class Defended:
    """A defended network, the certifier settings it needs and what the defence did."""

    model: torch.nn.Sequential
    certifier_params: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


class Defence(ABC):
    """A training-time defence against availability attacks."""

    Params: ClassVar[type[StrictModel]]
    name: ClassVar[str]

    def __init__(self, params: StrictModel | None = None, **kwargs: Any) -> None:
        if params is None:
            params = validate(self.Params, kwargs, where=f"defence {self.name!r}")
        self.params = params

    @abstractmethod
    def defend(
        self, data: PoisonedData, n_classes: int, arch: ArchConfig, train: TrainParams,
        model: torch.nn.Sequential, attack: AvailabilityAttack | None,
        rng: np.random.Generator,
    ) -> Defended:
        """Return a defended network for training set ``data`` (``model`` was trained on it)."""


DEFENCES: Registry[type[Defence]] = Registry("certifier defence")


def make_defence(name: str, **params: Any) -> Defence:
    entry = DEFENCES.entry(name)
    return entry.obj(**{**entry.defaults, **params})
