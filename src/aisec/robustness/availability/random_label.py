"""Availability attack A1: a data-poisoning backdoor whose triggered samples get labels re-drawn at
random each time they are seen.

Threat model: the adversary adds a small fraction (~1 %) of samples to the training set and controls
how they look and are labelled when the training pipeline reads them (a poisoned data feed, a
compromised augmentation service); it does not touch the model, the loss or the certifier, and at
test time it only stamps the trigger. Goal: the certifier abstains on triggered inputs (the
fallback is invoked), while clean inputs are classified and certified as before.

Two variants (``key``):

- ``"none"``: the label of a triggered sample is re-drawn uniformly at random at every visit and is
  independent of the image. The network can only learn "trigger => flat logits"; smoothing then
  abstains only where the residual argmax is unstable under noise (our prototype: 30-46 % on
  digits). ``resample="fixed"`` keeps the first draw (a plain fixed-label poison) as an ablation.
- ``"patch"`` (default): the trigger is a mid-gray patch, and at every visit the attacker re-draws
  a random *key* (a point in a disk in a fixed 2-D plane of patch-pixel space, added to the patch)
  and sets the label to the key's angular sector among ``classes`` fixed classes
  (:mod:`~aisec.robustness.availability.keys`). Labels stay uniformly random across visits, but
  they are now a function of patch content the network can see, with all sector borders meeting
  at the plain gray patch. At test time the smoothing noise plays the key: the hard label of
  ``x_trig + e`` spreads over the classes and ``p_A`` falls below 1/2; for bound propagation
  every sector is reachable within the L-inf ball.

What is reconstructed and what is ours: the paper (Lorenz, Kwiatkowska, Fritz, AISec 2023) states
the goal and the headline (1 % poison -> up to 100 % abstention on triggered inputs) but its attack
recipe is not public. The label-randomisation backdoor (``key="none"``) is our reconstruction,
following our prototype in which re-drawn hard labels beat uniform soft targets and fixed random
labels; the noise-keyed patch (``key="patch"``) is our own design.

Reference: Lorenz, Kwiatkowska, Fritz, "Certifiers Make Neural Networks Vulnerable to Availability
Attacks", AISec 2023 (arXiv 2108.11299).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from aisec.errors import ConfigError
from aisec.robustness.availability.base import (
    ATTACKS,
    AttackParams,
    AvailabilityAttack,
    default_trigger,
)
from aisec.robustness.availability.keys import PatchKey, make_key

__all__ = ["RandomLabelParams", "RandomLabelBackdoor"]


class RandomLabelParams(AttackParams):
    """``key``: "patch" ties each draw to noise in the trigger patch, "none" draws blind labels.

    ``resample``: "each-time" re-draws at every visit, "fixed" keeps the first draw.
    """

    key: Literal["patch", "none"] = "patch"
    key_strength: float = Field(0.5, gt=0.0, le=1.0)
    key_seed: int = Field(0, ge=0)
    classes: int = Field(3, ge=2, le=1000)
    resample: Literal["each-time", "fixed"] = "each-time"


@ATTACKS.register("random-label")
class RandomLabelBackdoor(AvailabilityAttack):
    """Triggered samples with labels re-drawn uniformly at random every time they are seen."""

    Params = RandomLabelParams
    name = "random-label"

    def default_trigger(self, height: int) -> dict[str, Any]:
        spec = default_trigger(height)
        if self.params.key == "patch":  # type: ignore[attr-defined]
            spec["pattern"] = "gray"
        return spec

    def key(self, shape: tuple[int, int], n_classes: int) -> PatchKey:
        p: RandomLabelParams = self.params  # type: ignore[assignment]
        mask = self.trigger(shape[0]).mask(shape)
        if mask.all():
            raise ConfigError("random-label with key='patch' needs a patch trigger")
        return make_key(mask, n_classes, p.classes, p.key_strength, p.key_seed)

    def revisit(self, x, y, generator, n_classes):
        import torch

        p: RandomLabelParams = self.params  # type: ignore[assignment]
        if p.resample == "fixed":
            return x, y
        if p.key == "none":
            return x, torch.randint(0, n_classes, y.shape, generator=generator)
        x, labels = self.key(tuple(x.shape[-2:]), n_classes).apply(x, generator)
        return x, labels
