"""Training-time availability attacks on certifiers (registered under "availability attack")."""

from aisec.robustness.availability.base import (
    ATTACKS,
    AttackParams,
    AvailabilityAttack,
    PoisonedData,
    TrainContext,
    make_attack,
)
from aisec.robustness.availability.certification_aware import CertificationAwareBackdoor
from aisec.robustness.availability.random_label import RandomLabelBackdoor

__all__ = ["ATTACKS", "AttackParams", "AvailabilityAttack", "PoisonedData", "TrainContext",
           "make_attack", "CertificationAwareBackdoor", "RandomLabelBackdoor"]
