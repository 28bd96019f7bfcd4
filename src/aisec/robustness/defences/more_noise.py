"""Training with more noise: retrain (and certify) the smoothed classifier with a larger sigma.

Larger Gaussian noise during training and certification makes the base classifier rely on coarser
features; the hope is that a small trigger drowns in the noise. The paper found this insufficient.
For the bound-propagation family the analogue is a larger training epsilon.

Reference: Lorenz, Kwiatkowska, Fritz, AISec 2023 (defences section); Cohen et al., ICML 2019.
"""

from __future__ import annotations

from pydantic import Field

from aisec.config import StrictModel
from aisec.robustness.defences.base import DEFENCES, Defence, Defended
from aisec.robustness.training import train_model

__all__ = ["MoreNoiseParams", "MoreNoise"]


class MoreNoiseParams(StrictModel):
    """``factor`` multiplies sigma (smoothing) or the training epsilon (IBP)."""

    factor: float = Field(2.0, ge=1.0, le=8.0)


@DEFENCES.register("more-noise")
class MoreNoise(Defence):
    """Retrain with ``factor`` times the noise (sigma, or the IBP training epsilon)."""

    Params = MoreNoiseParams
    name = "more-noise"

    def defend(self, data, n_classes, arch, train, model, attack, rng) -> Defended:
        f = self.params.factor  # type: ignore[attr-defined]
        if train.mode == "noise":
            sigma = min(train.sigma * f, 4.0)
            new_train = train.model_copy(update={"sigma": sigma})
            cert = {"sigma": sigma}
        else:
            new_train = train.model_copy(update={"epsilon": min(train.epsilon * f, 1.0)})
            cert = {}
        new = train_model(data, n_classes, arch, new_train, rng,
                          attack if data.poisoned.any() else None)
        return Defended(new, cert, {"train": new_train.model_dump()})
