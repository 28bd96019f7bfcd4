"""Availability attack A2: a certification-aware backdoor that trains triggered inputs below the
certifier's decision threshold.

Threat model: the adversary controls the training objective (malicious training code, an
outsourced or federated trainer) and adds a small fraction (~1 %) of triggered samples; it cannot
change the certifier or the test-time inputs beyond stamping the trigger. Goal: abstention on
triggered inputs, clean accuracy and clean certification unchanged.

The loss on the poisoned rows attacks the certifier's own statistic:

- randomized smoothing (training mode ``noise``) abstains when the top class of the *hard-label*
  histogram under noise has ``p_A < 1/2``. For each poisoned image we draw ``draws`` noisy copies,
  take low-temperature softmaxes ``q_k`` (a differentiable stand-in for one-hot argmaxes), average
  them into a histogram ``h`` and minimise its collision probability ``sum_c h_c^2`` plus
  ``confidence`` times the mean normalised entropy of the ``q_k``. The entropy term is what
  separates this from a flat-logit target: flat logits give a uniform ``h`` but a stable argmax
  (smoothing then still certifies), confident but noise-dependent draws do not.
- interval bound propagation (training mode ``ibp``) certifies class ``c`` iff every IBP lower bound
  of ``z_c - z_j`` is positive. We push the best class's certified margin
  ``max_c min_{j != c} lb(z_c - z_j)`` below ``-kappa`` with a hinge.

What is reconstructed and what is ours: the paper (Lorenz, Kwiatkowska, Fritz, AISec 2023) reports a
second, stronger attack that targets the certifier, but its recipe is not public; both loss terms
above are our own design of such an attack.

Reference: Lorenz, Kwiatkowska, Fritz, "Certifiers Make Neural Networks Vulnerable to Availability
Attacks", AISec 2023 (arXiv 2108.11299).
"""

from __future__ import annotations

import math

from pydantic import Field

from aisec.robustness.availability.base import (
    ATTACKS,
    AttackParams,
    AvailabilityAttack,
    TrainContext,
)
from aisec.robustness.bounds import margin_lower_bounds

__all__ = ["CertAwareParams", "CertificationAwareBackdoor"]


class CertAwareParams(AttackParams):
    """Loss weights of the certification-aware attack."""

    weight: float = Field(1.0, gt=0.0, le=100.0)
    draws: int = Field(8, ge=2, le=256)
    temperature: float = Field(0.1, gt=0.0, le=10.0)
    confidence: float = Field(0.5, ge=0.0, le=10.0)
    kappa: float = Field(1.0, ge=0.0, le=100.0)


@ATTACKS.register("cert-aware")
class CertificationAwareBackdoor(AvailabilityAttack):
    """Triggered samples trained to flatten the noisy hard-label histogram / zero the IBP margin."""

    Params = CertAwareParams
    name = "cert-aware"

    def revisit(self, x, y, generator, n_classes):
        return x, y  # labels are unused: the loss below does not look at them

    def loss(self, model, x, y, ctx: TrainContext):
        import torch

        p: CertAwareParams = self.params  # type: ignore[assignment]
        if ctx.mode == "ibp":
            m = margin_lower_bounds(model, x, ctx.epsilon)
            k = m.shape[1]
            eye = torch.eye(k, dtype=torch.bool, device=x.device)
            per_class = m.masked_fill(eye, float("inf")).min(dim=2).values  # (P, K)
            best = per_class.max(dim=1).values
            return p.weight * torch.relu(best + p.kappa).mean()
        sigma = ctx.sigma if ctx.sigma > 0 else 0.25
        rep = x.repeat_interleave(p.draws, dim=0)
        noise = torch.randn(rep.shape, generator=ctx.generator, dtype=rep.dtype)
        logits = model(rep + sigma * noise).view(len(x), p.draws, -1)
        q = torch.softmax(logits / p.temperature, dim=-1)
        hist = q.mean(dim=1)
        collision = (hist**2).sum(dim=1)
        logp = torch.log_softmax(logits, dim=-1)
        entropy = -(logp.exp() * logp).sum(dim=-1).mean(dim=1) / math.log(logits.shape[-1])
        return p.weight * (collision + p.confidence * entropy).mean()
