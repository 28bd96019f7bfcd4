"""End-to-end steps shared by the CLI and the benchmarks: train (optionally poisoned), certify clean
and triggered test inputs, summarise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from aisec.errors import ConfigError
from aisec.metrics import Rate, rate
from aisec.rng import make_rng
from aisec.robustness.availability.base import AvailabilityAttack, PoisonedData
from aisec.robustness.certificate import Certificate
from aisec.robustness.certifiers.base import Certifier
from aisec.robustness.data import ImageSplit
from aisec.robustness.models import ArchConfig, Checkpoint
from aisec.robustness.training import TRAIN_THREADS, TrainParams, mode_for, train_model

if TYPE_CHECKING:
    import torch

    from aisec.robustness.experiment import Experiment

__all__ = [
    "arch_for",
    "clean_data",
    "train",
    "Evaluation",
    "evaluate",
    "summary",
    "torch_threads",
    "run_experiment",
    "run_defence",
    "check_fit",
]


def arch_for(split: ImageSplit) -> ArchConfig:
    """The small-CNN architecture for a data set's image size and class count."""
    _, c, h, w = split.x.shape
    return ArchConfig(height=h, width=w, channels=c, n_classes=split.n_classes)


def clean_data(split: ImageSplit) -> PoisonedData:
    return PoisonedData(split.x, split.y, np.zeros(len(split.y), dtype=bool))


def train(
    split: ImageSplit,
    params: TrainParams,
    rng: np.random.Generator | int,
    attack: AvailabilityAttack | None = None,
    progress=None,
) -> tuple[torch.nn.Sequential, PoisonedData]:
    """Poison ``split`` with ``attack`` (if any) and train a network for it."""
    r = make_rng(rng)
    data = attack.poison(split.x, split.y, split.n_classes, r) if attack else clean_data(split)
    model = train_model(data, split.n_classes, arch_for(split), params, r, attack, progress)
    return model, data


@dataclass(frozen=True)
class Evaluation:
    """Certification of the clean and the triggered test inputs of one model."""

    clean: Certificate
    triggered: Certificate
    y: np.ndarray
    clean_acc: Rate  # plain (uncertified) accuracy on clean inputs (possibly a larger test set)

    def metrics(self, radius: float = 0.0) -> dict[str, Rate]:
        n = len(self.y)
        return {
            "clean_acc": self.clean_acc,
            "abstain_clean": rate(int(self.clean.abstained.sum()), n),
            "abstain_triggered": rate(int(self.triggered.abstained.sum()), n),
            "certified_acc": rate(
                int((self.clean.correct(self.y) & self.clean.certified(radius)).sum()), n
            ),
            "certified_acc_triggered": rate(
                int((self.triggered.correct(self.y) & self.triggered.certified(radius)).sum()), n
            ),
        }

    def curve(self, radii: list[float], triggered: bool = False) -> list[float]:
        cert = self.triggered if triggered else self.clean
        return [cert.certified_accuracy(self.y, r) for r in radii]


def evaluate(
    model: torch.nn.Module,
    certifier: Certifier,
    test: ImageSplit,
    trigger,
    rng: np.random.Generator | int,
    accuracy_on: ImageSplit | None = None,
) -> Evaluation:
    """Certify ``test`` and its triggered copy; ``trigger`` is an :class:`~aisec.perturb.Trigger`.

    The plain clean accuracy is measured on ``accuracy_on`` (default ``test``): it is cheap, so
    the benchmarks use the whole test split for it and certify a subset.
    """
    from aisec.robustness.models import predict_logits

    r = make_rng(rng)
    acc_split = accuracy_on or test
    logits = predict_logits(model, acc_split.x)
    acc = rate(int((logits.argmax(1) == acc_split.y).sum()), len(acc_split.y))
    clean = certifier.certify(model, test.x, r)
    trig = certifier.certify(model, trigger.apply(test.x), r)
    return Evaluation(clean, trig, test.y, acc)


def summary(ev: Evaluation, radius: float = 0.0) -> dict[str, Any]:
    return {k: round(v.value, 4) for k, v in ev.metrics(radius).items()}


def torch_threads(n: int | None):
    """Context manager: run torch with ``n`` intra-op threads, restoring the previous setting.

    On a loaded shared machine one thread per process is several times faster for these small
    networks than oversubscribed cores.
    """
    import contextlib

    @contextlib.contextmanager
    def _ctx():
        import torch

        before = torch.get_num_threads()
        if n:
            torch.set_num_threads(n)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    return _ctx()


def run_experiment(
    exp: Experiment,
    seed: int,
    model: torch.nn.Module | None = None,
    progress=None,
) -> tuple[torch.nn.Module, Evaluation, dict[str, Any]]:
    """Train (unless ``model`` is given) and evaluate one :class:`~.experiment.Experiment`.

    Returns the network, its evaluation and a record (settings, poison count).
    """
    from aisec.robustness.availability.base import make_attack
    from aisec.robustness.data import load_split
    from aisec.robustness.experiment import build

    train_params, cert, attack, limit = build(exp)
    full_test = load_split(exp.dataset, "test")
    te = full_test.head(exp.test_limit)
    rng = make_rng(seed)
    n_poison, n_train = 0, None
    if model is None:
        tr = load_split(exp.dataset, "train", limit)
        model, data = train(tr, train_params, rng, attack, progress)
        n_poison, n_train = data.n_poison, len(tr)
    # an unpoisoned baseline is the same attack at rate 0: it is evaluated with the same trigger
    trigger = (attack or make_attack("random-label")).trigger(te.x.shape[-2])
    ev = evaluate(model, cert, te, trigger, make_rng(seed + 1), accuracy_on=full_test)
    record = {
        "dataset": exp.dataset,
        "certifier": cert.describe(),
        "train": train_params.model_dump(),
        "attack": attack.describe() if attack else None,
        "n_train": n_train,
        "n_poison": n_poison,
        "n_test": len(te),
        "n_test_accuracy": len(full_test),
        "trigger": trigger.describe(),
    }
    if n_train is not None:  # what the weights depend on besides the recipe and the seed
        import torch

        record["train_threads"] = TRAIN_THREADS
        record["torch"] = torch.__version__
    return model, ev, record


def check_fit(
    ck: Checkpoint,
    *,
    certifier: str,
    dataset: str | None = None,
    sigma: float | None = None,
    force: bool = False,
) -> tuple[float | None, list[str]]:
    """Check that checkpoint ``ck`` fits the data set, certifier and noise level asked for.

    Args:
        ck: the loaded checkpoint (its ``provenance``: data set, certifier, training mode, sigma).
        certifier: the certifier's registered name; its family must match the training mode
            (noise training for smoothing, IBP training for bound propagation).
        dataset: the data set whose inputs are certified (None: the user's own inputs).
        sigma: an explicit smoothing noise level (None: the checkpoint's).
        force: certify despite a mismatch; the mismatch is then returned as a note.

    Returns:
        (the sigma to certify with, or None for a non-smoothing certifier; notes on forced
        mismatches and on what the checkpoint does not record, for the output).

    Raises:
        ConfigError: a mismatch without ``force`` (one line naming both values).
    """
    import math

    from aisec.robustness.certifiers.base import CERTIFIERS

    family = CERTIFIERS.get(certifier).family
    prov, notes = ck.provenance, []
    where = ck.path or "the checkpoint"

    def mismatch(msg: str) -> None:
        if not force:
            raise ConfigError(f"{where}: {msg} (--force certifies anyway)")
        notes.append(f"forced: {msg}")

    def unknown(what: str) -> None:
        notes.append(f"unchecked: {where} records no {what}")

    if dataset is not None:
        if prov["dataset"] is None:
            unknown("training data set")
        elif prov["dataset"] != dataset:
            mismatch(f"trained on {prov['dataset']!r}, not on the data set asked for, {dataset!r}")
    want_mode = mode_for(family)
    if prov["train_mode"] is None:
        unknown("training mode")
    elif prov["train_mode"] != want_mode:
        mismatch(
            f"trained for {prov['certifier'] or prov['train_mode']!r} ({prov['train_mode']} "
            f"training); certifier {certifier!r} needs {want_mode} training"
        )
    if family != "smoothing":
        return None, notes
    trained = prov["sigma"] if prov["train_mode"] == "noise" else None
    if sigma is None:
        if trained is None:
            unknown("training noise sigma; certifying at the default 0.25")
            return 0.25, notes
        if trained <= 0:
            raise ConfigError(
                f"{where}: trained without noise (sigma 0); give --sigma (and "
                f"--force) to smooth it anyway"
            )
        return trained, notes
    if trained is None:
        unknown("training noise sigma")
    elif not math.isclose(sigma, trained, rel_tol=1e-9, abs_tol=0.0):
        mismatch(
            f"trained at sigma {trained:g}; certifying at sigma {sigma:g} gives radii for a "
            f"noise level the model never saw"
        )
    return sigma, notes


def run_defence(exp: Experiment, defence: str, seed: int, log=None) -> dict[str, Any]:
    """Poison and train as ``exp`` says, then apply ``defence``; evaluate both networks."""
    from aisec.robustness.certifiers.base import make_certifier
    from aisec.robustness.data import load_split
    from aisec.robustness.defences.base import make_defence
    from aisec.robustness.experiment import build

    train_params, cert, attack, limit = build(exp)
    d = make_defence(defence)
    tr = load_split(exp.dataset, "train", limit)
    full_test = load_split(exp.dataset, "test")
    te = full_test.head(exp.test_limit)
    rng = make_rng(seed)
    if log:
        log("training the poisoned model")
    model, data = train(tr, train_params, rng, attack)
    trigger = (attack or _default_attack()).trigger(tr.x.shape[-2])
    before = evaluate(model, cert, te, trigger, make_rng(seed + 1), accuracy_on=full_test)
    if log:
        log(f"applying defence {defence}")
    out = d.defend(data, tr.n_classes, arch_for(tr), train_params, model, attack, rng)
    cert2 = make_certifier(cert.name, **{**cert.params.model_dump(), **out.certifier_params})
    after = evaluate(out.model, cert2, te, trigger, make_rng(seed + 1), accuracy_on=full_test)
    rows = [
        {"model": "undefended", "metrics": {k: v.value for k, v in before.metrics().items()}},
        {"model": "defended", "metrics": {k: v.value for k, v in after.metrics().items()}},
    ]
    return {
        "rows": rows,
        "info": out.info,
        "defence": {"name": defence, **d.params.model_dump()},
        "n_poison": data.n_poison,
        "evaluations": (before, after),
    }


def _default_attack():
    from aisec.robustness.availability.base import make_attack

    return make_attack("random-label")
