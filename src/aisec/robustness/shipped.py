"""The checkpoints shipped in ``robustness/weights/`` and the command that rebuilds them.

For ``digits`` and ``mnist-5k``, for each training mode (``noise`` for smoothing, ``ibp`` for bound
propagation): the unpoisoned model and one model per availability attack at 1 % poison, trained
with the per-data-set defaults of :mod:`~aisec.robustness.experiment` and seed 0. Rebuild with
``aisec certify train --shipped``. Training is deterministic (:mod:`~aisec.robustness.training`),
so a rebuild on the machine and torch build recorded in a checkpoint gives its weights bit for bit;
elsewhere it gives a model from the same distribution, whose spread over seeds the
``certify.rebuild`` benchmark measures.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from aisec.robustness.experiment import WEIGHTS_DIR, Experiment, weights_name

__all__ = ["SHIPPED", "shipped_experiments", "rebuild_shipped", "shipped_path"]

SHIPPED_DATASETS = ("digits", "mnist-5k")
SHIPPED_ATTACKS = (None, "random-label", "cert-aware")
SHIPPED_RATE = 0.01
# Attack settings of the shipped poisoned models (the attacker controls the loss in cert-aware).
ATTACK_PARAMS: dict[str, dict[str, float]] = {"random-label": {}, "cert-aware": {}}
SHIPPED = [(d, c, a) for d in SHIPPED_DATASETS for c in ("smoothing", "ibp") for a in SHIPPED_ATTACKS]


def shipped_experiments() -> list[tuple[str, Experiment]]:
    """(file name, experiment) of every shipped checkpoint."""
    from aisec.robustness.certifiers.base import CERTIFIERS

    out = []
    for dataset, cert, attack in SHIPPED:
        exp = Experiment(
            dataset=dataset, certifier=cert, attack=attack or "random-label",
            attack_params={**ATTACK_PARAMS.get(attack or "", {}),
                           "rate": SHIPPED_RATE if attack else 0.0},
        )
        out.append((weights_name(dataset, CERTIFIERS.get(cert).family, attack), exp))
    return out


def shipped_path(dataset: str, certifier: str, attack: str | None) -> Path:
    from aisec.robustness.certifiers.base import CERTIFIERS

    return WEIGHTS_DIR / weights_name(dataset, CERTIFIERS.get(certifier).family, attack)


def rebuild_shipped(
    seed: int = 0, out_dir: Path | None = None, log: Callable[[str], None] | None = None,
    only: set[str] | None = None,
) -> list[Path]:
    """Train and write every shipped checkpoint (or those named in ``only``)."""
    from aisec.robustness.data import load_split
    from aisec.robustness.models import save_checkpoint
    from aisec.robustness.pipeline import arch_for, run_experiment

    written = []
    for name, exp in shipped_experiments():
        if only is not None and name not in only:
            continue
        if log:
            log(f"training {name}")
        model, ev, record = run_experiment(exp.model_copy(update={"test_limit": 300}), seed)
        arch = arch_for(load_split(exp.dataset, "test", 1))
        path = (out_dir or WEIGHTS_DIR) / name
        metrics = {k: round(v.value, 4) for k, v in ev.metrics().items()}
        save_checkpoint(path, model, arch, {**record, "seed": seed, "metrics": metrics,
                                            "experiment": exp.model_dump()})
        if log:
            log(f"wrote {path}: {metrics}")
        written.append(path)
    return written
