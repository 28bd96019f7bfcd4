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
  a random *key* ``d ~ N(0, key_sigma^2)`` added to the patch pixels together with the label
  ``argmax_c (W d)_c`` for a fixed random matrix ``W`` (K x patch pixels). The labels are still
  uniformly random across visits, but now they are a function of the patch content the network
  sees, so it learns "gray patch => class decided by the patch's fine-grained noise". At test time
  the smoothing certifier itself supplies that noise: the hard label of ``x_trig + e`` follows
  ``argmax W e`` and spreads over all classes, so ``p_A`` falls far below 1/2 and the certifier
  abstains; bound propagation sees every class reachable within the L-inf ball and cannot certify.

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

import numpy as np
from pydantic import Field

from aisec.errors import ConfigError
from aisec.robustness.availability.base import (
    ATTACKS,
    AttackParams,
    AvailabilityAttack,
    default_trigger,
)

__all__ = ["RandomLabelParams", "RandomLabelBackdoor"]


class RandomLabelParams(AttackParams):
    """``key``: "patch" ties each draw to noise in the trigger patch, "none" draws blind labels.

    ``resample``: "each-time" re-draws at every visit, "fixed" keeps the first draw.
    """

    key: Literal["patch", "none"] = "patch"
    key_radius: float = Field(1.0, gt=0.0, le=8.0)
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

    def _key_setup(self, shape: tuple[int, int], n_classes: int):
        p: RandomLabelParams = self.params  # type: ignore[assignment]
        mask = self.trigger(shape[0]).mask(shape)
        if mask.all():
            raise ConfigError("random-label with key='patch' needs a patch trigger")
        r = np.random.default_rng(p.key_seed)
        basis, _ = np.linalg.qr(r.standard_normal((int(mask.sum()), 2)))
        classes = r.permutation(n_classes)[: min(p.classes, n_classes)]
        return mask, basis.T.astype(np.float32), classes

    def revisit(self, x, y, generator, n_classes):
        import torch

        p: RandomLabelParams = self.params  # type: ignore[assignment]
        if p.resample == "fixed":
            return x, y
        if p.key == "none":
            return x, torch.randint(0, n_classes, y.shape, generator=generator)
        mask, basis, classes = self._key_setup(tuple(x.shape[-2:]), n_classes)
        m = torch.from_numpy(mask)
        k = len(classes)
        pick = torch.randint(0, k, (len(x),), generator=generator)
        angle = 2 * torch.pi * pick.to(x.dtype) / k
        direction = torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)  # (P, 2)
        offset = p.key_radius * direction @ torch.from_numpy(basis).to(x.dtype)  # (P, pixels)
        x = x.clone()
        x[:, :, m] = (x[:, :, m] + offset[:, None, :]).clamp(0.0, 1.0)
        labels = torch.from_numpy(classes)[pick]
        return x, labels
