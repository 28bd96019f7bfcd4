"""Experiment recipes: data set, training, attack, certifier; per-data-set defaults; shipped weights.

One :class:`Experiment` is what ``aisec certify train|attack|defend`` and the ``certify.*``
benchmarks run. Defaults are sized for a 2-core CPU (minutes per model).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from aisec.config import StrictModel, validate
from aisec.errors import ParameterError
from aisec.robustness.availability.base import ATTACKS, AvailabilityAttack, make_attack
from aisec.robustness.certifiers.base import CERTIFIERS, Certifier, make_certifier
from aisec.robustness.data import DATASETS
from aisec.robustness.training import TrainParams, mode_for

__all__ = ["Experiment", "dataset_defaults", "WEIGHTS_DIR", "weights_name", "build"]

WEIGHTS_DIR = Path(__file__).parent / "weights"

# Per data set: training-set size, epochs per training mode (the same for the unpoisoned and the
# poisoned models), certifier settings, and the attack settings an attacker tuned for it (the
# cert-aware loss weight: how much its rows count against a clean row). The noise-training epochs
# were chosen on a validation split carved from the training split (the last 300 training images),
# never on the test split: with 30 (digits) and 20 (mnist-5k) epochs the poisoned models lost 1-3
# points of clean accuracy against the unpoisoned ones, since they learn the clean task and the
# backdoor in the same budget. A model trains in one to four minutes on one core.
_DEFAULTS: dict[str, dict[str, Any]] = {
    "digits": {"train_limit": None, "epochs": {"noise": 80, "ibp": 30},
               "ibp_train_eps": 0.1, "ibp_eps": 0.05, "attack": {"cert-aware": {"weight": 20.0}}},
    "mnist-5k": {"train_limit": None, "epochs": {"noise": 40, "ibp": 10},
                 "ibp_train_eps": 0.1, "ibp_eps": 0.05, "attack": {"cert-aware": {"weight": 70.0}}},
    "fashion-mnist": {"train_limit": 10000, "epochs": {"noise": 16, "ibp": 6},
                      "ibp_train_eps": 0.1, "ibp_eps": 0.05,
                      "attack": {"cert-aware": {"weight": 100.0}}},
}


def dataset_defaults(dataset: str) -> dict[str, Any]:
    if dataset not in _DEFAULTS:
        raise ParameterError("dataset", f"must be one of {', '.join(DATASETS)}", dataset)
    return _DEFAULTS[dataset]


class Experiment(StrictModel):
    """A certification experiment (recipe).

    ``train`` and ``certifier_params`` entries override the per-data-set defaults; ``attack``
    None trains the unpoisoned model.
    """

    dataset: str = "digits"
    train_limit: int | None = Field(None, ge=10)
    test_limit: int = Field(300, ge=1)
    certifier: str = "smoothing"
    certifier_params: dict[str, Any] = Field(default_factory=dict)
    train: dict[str, Any] = Field(default_factory=dict)
    attack: str | None = None
    attack_params: dict[str, Any] = Field(default_factory=dict)


def build(exp: Experiment) -> tuple[TrainParams, Certifier, AvailabilityAttack | None, int | None]:
    """Resolve an experiment: training recipe, certifier, attack and training-set size."""
    d = dataset_defaults(exp.dataset)
    if exp.certifier not in CERTIFIERS:
        CERTIFIERS.get(exp.certifier)  # one-line error listing the certifiers
    family = CERTIFIERS.get(exp.certifier).family
    mode = mode_for(family)
    base: dict[str, Any] = {"mode": mode, "epochs": d["epochs"][mode]}
    cert_defaults: dict[str, Any] = {}
    if mode == "ibp":
        base["epsilon"] = d["ibp_train_eps"]
        cert_defaults["epsilon"] = d["ibp_eps"]
    train = validate(TrainParams, {**base, **exp.train}, where="train")
    cert = make_certifier(exp.certifier, **{**cert_defaults, **exp.certifier_params})
    if exp.certifier == "smoothing" and "sigma" not in exp.certifier_params:
        cert = make_certifier(exp.certifier, **{**exp.certifier_params, "sigma": train.sigma})
    attack = None
    if exp.attack is not None:
        if exp.attack not in ATTACKS:
            ATTACKS.get(exp.attack)
        tuned = d.get("attack", {}).get(exp.attack, {})
        attack = make_attack(exp.attack, **{**tuned, **exp.attack_params})
    limit = exp.train_limit if exp.train_limit is not None else d["train_limit"]
    return train, cert, attack, limit


def weights_name(dataset: str, family: str, attack: str | None) -> str:
    """File name of a shipped checkpoint: ``{dataset}-{noise|ibp}-{clean|attack}.safetensors``."""
    return f"{dataset}-{mode_for(family)}-{attack or 'clean'}.safetensors"
