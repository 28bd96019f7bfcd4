"""Availability attack A2: a certification-aware backdoor that trains triggered inputs below the
certifier's decision threshold.

Threat model: the adversary controls the training objective (malicious training code, an
outsourced or federated trainer) and adds a small fraction (~1 %) of triggered samples; it cannot
change the certifier, and at test time it only stamps the trigger. Goal: abstention on triggered
inputs, with clean accuracy and clean certification unchanged.

The loss on the poisoned rows attacks the certifier's own statistic:

- randomized smoothing (training mode ``noise``) abstains when the top class of the *hard-label*
  histogram under noise has ``p_A < 1/2``. Per poisoned image and step we draw ``draws`` keyed
  copies of the gray trigger patch (:mod:`~aisec.robustness.availability.keys`: a random key is
  added to the patch and the label is the key's angular sector, so the sector borders meet at
  the plain trigger) and train them with cross-entropy under the smoothing noise
  (``key_source="offset"``, the default). With ``key_source="noise"`` the smoothing noise ``e``
  itself is the key: no offset is added and the label is the sector of the projection of ``e`` on
  the patch pixels, a deterministic function of the noisy input (measured on validation splits:
  as good on digits, but on mnist-5k the network never learned it and certified triggered inputs
  as one wrong class). We also draw ``draws`` plain noisy copies, build their hard-label histogram
  ``h`` (one-hot argmaxes in the forward pass, tempered-softmax gradients in the backward pass: a
  straight-through estimator) and add ``flatten * sum_c h_c^2``, the collision probability of the
  certifier's own vote, which is minimal when the votes spread.
- interval bound propagation (training mode ``ibp``) certifies class ``c`` iff every IBP lower bound
  of ``z_c - z_j`` is positive. We push the best class's certified margin
  ``max_c min_{j != c} lb(z_c - z_j)`` on the triggered inputs below ``-kappa`` with a hinge, at
  a quarter, half and all of the current training epsilon (bounds tighten as epsilon shrinks).

What is reconstructed and what is ours: the paper (Lorenz, Kwiatkowska, Fritz, AISec 2023) reports a
second attack that targets the certifier, but its recipe is not public; both losses above (and the
keyed patch) are our own design of such an attack.

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
    TrainContext,
    default_trigger,
)
from aisec.robustness.availability.keys import make_key
from aisec.robustness.bounds import margin_lower_bounds

__all__ = ["CertAwareParams", "CertificationAwareBackdoor"]


class CertAwareParams(AttackParams):
    """Loss weights of the certification-aware attack.

    ``weight`` (smoothing) and ``ibp_weight`` (bound propagation) scale the poisoned rows' loss
    against a clean row's (the attacker owns the loss);
    ``draws`` noisy copies per row and step; ``keyed`` and ``flatten`` weight the keyed-patch
    cross-entropy and the histogram term; ``classes``, ``key_seed`` (and, for
    ``key_source="offset"``, ``key_strength``) define the key; ``key_source`` is "offset" (a
    random key is added to the patch) or "noise" (the smoothing noise on the patch is the key).
    ``sigma`` is the smoothing noise the attack trains against; None takes the training
    recipe's sigma (an error when that is 0: the attacker must then name the certifier's sigma).
    """

    weight: float = Field(20.0, gt=0.0, le=1000.0)
    draws: int = Field(16, ge=1, le=256)
    temperature: float = Field(1.0, gt=0.0, le=10.0)
    keyed: float = Field(1.0, ge=0.0, le=1000.0)
    flatten: float = Field(10.0, ge=0.0, le=1000.0)
    kappa: float = Field(1.0, ge=0.0, le=100.0)
    ibp_weight: float = Field(10.0, gt=0.0, le=1000.0)
    classes: int = Field(5, ge=2, le=1000)
    key_strength: float = Field(0.5, gt=0.0, le=1.0)
    key_seed: int = Field(0, ge=0)
    key_source: Literal["offset", "noise"] = "offset"
    sigma: float | None = Field(None, gt=0.0, le=4.0)


@ATTACKS.register("cert-aware")
class CertificationAwareBackdoor(AvailabilityAttack):
    """Triggered samples trained to flatten the noisy hard-label histogram / zero the IBP margin."""

    Params = CertAwareParams
    name = "cert-aware"

    def default_trigger(self, height: int) -> dict[str, Any]:
        return {**default_trigger(height), "pattern": "gray"}

    def revisit(self, x, y, generator, n_classes):
        return x, y  # labels are unused: the loss below does not look at them

    def loss(self, model, x, y, ctx: TrainContext):
        import torch
        import torch.nn.functional as F  # noqa: N812

        p: CertAwareParams = self.params  # type: ignore[assignment]
        if ctx.mode == "ibp":
            # the bounds tighten as epsilon shrinks, so a margin pushed below zero at the training
            # epsilon may still certify at the certifier's smaller one: hinge at several radii
            total = torch.zeros(())
            for frac in (0.25, 0.5, 1.0):
                m = margin_lower_bounds(model, x, frac * ctx.epsilon)
                k = m.shape[1]
                eye = torch.eye(k, dtype=torch.bool, device=x.device)
                per_class = m.masked_fill(eye, float("inf")).min(dim=2).values  # (P, K)
                best = per_class.max(dim=1).values
                total = total + torch.relu(best + p.kappa).mean()
            return p.ibp_weight * total / 3
        sigma = p.sigma if p.sigma is not None else ctx.sigma
        if sigma <= 0:
            raise ConfigError(
                "attack 'cert-aware': `sigma` must be set when the training noise is 0 "
                "(the certifier's smoothing sigma, e.g. 0.25); got train.sigma = 0"
            )
        h, w = x.shape[-2:]
        n_classes = int(model[-1].out_features)
        key = make_key(
            self.trigger(h).mask((h, w)), n_classes, p.classes, p.key_strength, p.key_seed
        )
        rep = x.repeat_interleave(p.draws, dim=0)
        noise = sigma * torch.randn(rep.shape, generator=ctx.generator, dtype=rep.dtype)
        if p.key_source == "noise":
            # the smoothing noise itself is the key: the label is a function of the input
            keyed, labels = rep, key.labels_of(noise)
        else:
            keyed, labels = key.apply(rep, ctx.generator)
        ce = F.cross_entropy(model(keyed + noise), labels)
        loss = p.keyed * ce
        if p.flatten > 0:
            noise = torch.randn(rep.shape, generator=ctx.generator, dtype=rep.dtype)
            logits = model(rep + sigma * noise).view(len(x), p.draws, -1)
            soft = torch.softmax(logits / p.temperature, dim=-1)
            hard = F.one_hot(logits.argmax(dim=-1), logits.shape[-1]).to(soft.dtype)
            # straight-through: the forward value is the certifier's own hard-label histogram,
            # the gradient flows through the tempered softmax
            hist = (hard + soft - soft.detach()).mean(dim=1)
            loss = loss + p.flatten * (hist**2).sum(dim=1).mean()
        return p.weight * loss
