"""``aisec certify``: certifiers (randomized smoothing, IBP) and availability attacks on them.

aisec certify train --dataset D --certifier C [--attack A --poison-rate R] --out M.safetensors
aisec certify train --shipped            rebuild the checkpoints shipped in robustness/weights/
aisec certify run --certifier C [--checkpoint M] [--dataset D | --input X.npy] [--triggered]
aisec certify attack --attack A --poison-rate R [--dataset D --certifier C]
aisec certify defend --defence F --attack A --poison-rate R [--dataset D --certifier C]
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields
from typing import Any

import click

from aisec.cli.common import emit, format_option, given, set_option

_DATASETS = click.Choice(["digits", "mnist-5k", "fashion-mnist"])


@click.group(name="certify")
def command() -> None:
    """Certifiers and availability attacks (Lorenz, Kwiatkowska, Fritz, AISec'23)."""


@dataclass(frozen=True)
class _Common:
    """The options every ``certify`` command shares (see :func:`_common`)."""

    dataset: str
    certifier: str
    seed: int
    test_limit: int
    train_limit: int | None
    recipe: str | None
    overrides: tuple[str, ...]
    fmt: str

    def experiment(self, **flags: Any) -> Any:
        """The resolved experiment; ``flags`` add to (or replace) the shared options."""
        base = {
            "dataset": self.dataset,
            "certifier": self.certifier,
            "test_limit": self.test_limit,
            "train_limit": self.train_limit,
        }
        return _experiment(self.recipe, self.overrides, **{**base, **flags})


def _common(command_fn):  # noqa: ANN001, ANN202
    """Add the shared options; the command receives them as one :class:`_Common` first."""

    @functools.wraps(command_fn)
    def fn(**kwargs: Any) -> Any:
        common = _Common(**{f.name: kwargs.pop(f.name) for f in fields(_Common)})
        return command_fn(common, **kwargs)

    fn = click.option("--dataset", type=_DATASETS, default="digits", show_default=True)(fn)
    fn = click.option(
        "--certifier",
        default="smoothing",
        show_default=True,
        help="smoothing (randomized smoothing, L2) or ibp (interval bounds, Linf).",
    )(fn)
    fn = click.option("--seed", type=int, default=0, show_default=True)(fn)
    fn = click.option(
        "--test-limit",
        type=int,
        default=300,
        show_default=True,
        help="Number of test inputs to certify.",
    )(fn)
    fn = click.option(
        "--train-limit",
        type=int,
        default=None,
        help="Train on the first N training images (default: per data set).",
    )(fn)
    fn = click.option(
        "--recipe",
        default=None,
        help="YAML experiment recipe (keys of robustness.experiment.Experiment).",
    )(fn)
    return set_option(format_option(fn))


def _experiment(recipe: str | None, overrides: tuple[str, ...], **flags: Any) -> Any:
    """The experiment: flag defaults < YAML recipe < ``--set`` < flags given by the user."""
    from aisec.cli.common import layered, split_flags
    from aisec.config import load_yaml, validate
    from aisec.robustness.experiment import Experiment

    given, defaults = split_flags(flags, {"attack_params": "poison_rate", "train": "epochs"})
    data = layered(load_yaml(recipe) if recipe else {}, overrides, given, defaults)
    return validate(Experiment, data, where=recipe or "certify")


def _print_metrics(rows: list[dict[str, Any]]) -> None:
    keys = [
        "clean_acc",
        "abstain_clean",
        "abstain_triggered",
        "certified_acc",
        "certified_acc_triggered",
    ]
    click.echo(f"{'model':<12}" + "".join(f"{k:>24}" for k in keys))
    for r in rows:
        click.echo(f"{r['model']:<12}" + "".join(f"{r['metrics'][k]:>24.4f}" for k in keys))


def _metric_dict(ev: Any) -> dict[str, float]:
    return {k: v.value for k, v in ev.metrics().items()}


@command.command("train")
@_common
@click.option("--attack", default=None, help="random-label or cert-aware (none: clean model).")
@click.option("--poison-rate", type=float, default=None, help="Poisoned samples added (0.01 = 1%).")
@click.option("--epochs", type=int, default=None)
@click.option("--out", "out", default=None, help="Checkpoint path (.safetensors).")
@click.option(
    "--shipped",
    is_flag=True,
    help="Rebuild every checkpoint shipped in src/aisec/robustness/weights/.",
)
def train_cmd(
    opts: _Common,
    attack,
    poison_rate,
    epochs,
    out,
    shipped,
) -> None:
    """Train a network for CERTIFIER on DATASET, optionally poisoned; evaluate and save it."""
    from aisec.errors import ParameterError
    from aisec.robustness.models import save_checkpoint
    from aisec.robustness.pipeline import arch_for, run_experiment, torch_threads
    from aisec.robustness.shipped import rebuild_shipped

    if shipped:
        with torch_threads(1):
            written = rebuild_shipped(seed=opts.seed, log=lambda m: click.echo(m, err=True))
        emit(
            {"written": [str(p) for p in written]},
            opts.fmt,
            lambda d: [click.echo(p) for p in d["written"]],
        )
        return
    if out is None:
        raise ParameterError("--out", "is required (a .safetensors path) unless --shipped", None)
    _not_a_directory(out)
    exp = opts.experiment(
        attack=attack,
        attack_params={"rate": poison_rate} if poison_rate is not None else None,
        train={"epochs": epochs} if epochs else None,
    )
    with torch_threads(1):
        model, ev, record = run_experiment(
            exp, opts.seed, progress=lambda f, m: click.echo(f"train {m}", err=True)
        )
    from aisec.robustness.data import load_split

    arch = arch_for(load_split(exp.dataset, "test", 1))
    save_checkpoint(out, model, arch, {**record, "seed": opts.seed, "experiment": exp.model_dump()})
    doc = {"checkpoint": out, "record": record, "metrics": _metric_dict(ev)}
    emit(
        doc,
        opts.fmt,
        lambda d: (
            click.echo(f"wrote {out}"),
            _print_metrics([{"model": "trained", "metrics": d["metrics"]}]),
        ),
    )


@command.command("run")
@_common
@click.option(
    "--checkpoint",
    default=None,
    help="Model checkpoint (default: the shipped clean model of --dataset). Its data "
    "set, certifier and sigma are the defaults of --dataset, --certifier, --sigma.",
)
@click.option(
    "--input",
    "input_path",
    default=None,
    help=".npy images (N, H, W) or (N, 1, H, W), float in [0, 1], instead of --dataset.",
)
@click.option("--triggered", is_flag=True, help="Stamp the default trigger on the inputs.")
@click.option("--n", type=int, default=None, help="Smoothing: noise samples per input.")
@click.option(
    "--sigma",
    type=float,
    default=None,
    help="Smoothing: noise standard deviation (default: the checkpoint's training sigma).",
)
@click.option("--alpha", type=float, default=None, help="Smoothing: failure probability.")
@click.option("--epsilon", type=float, default=None, help="IBP: L-inf radius to certify.")
@click.option(
    "--force",
    is_flag=True,
    help="Certify even if the checkpoint was trained for another data set, certifier "
    "or sigma (the mismatch is reported).",
)
def run_cmd(
    opts: _Common,
    checkpoint,
    input_path,
    triggered,
    n,
    sigma,
    alpha,
    epsilon,
    force,
) -> None:
    """Certify inputs: prediction, radius and abstain per input."""
    from aisec.robustness.availability import make_attack
    from aisec.robustness.certifiers import CERTIFIERS
    from aisec.robustness.data import load_split
    from aisec.robustness.experiment import WEIGHTS_DIR, build, weights_name
    from aisec.robustness.models import as_batch, load_checkpoint, load_npy_images
    from aisec.robustness.pipeline import check_fit, torch_threads

    certifier, dataset = opts.certifier, opts.dataset
    if checkpoint is not None:
        _not_a_directory(checkpoint)
        ck = load_checkpoint(checkpoint)
        # the checkpoint says what it is for, unless the user says otherwise (then checked)
        prov = ck.provenance
        if not given("certifier") and prov["certifier"] in CERTIFIERS:
            certifier = prov["certifier"]
        if not given("dataset") and prov["dataset"] is not None and input_path is None:
            dataset = prov["dataset"]
        path = checkpoint
    params = {
        k: v
        for k, v in {"n": n, "sigma": sigma, "alpha": alpha, "epsilon": epsilon}.items()
        if v is not None
    }
    exp = opts.experiment(
        dataset=dataset,
        certifier=certifier,
        certifier_params=params or None,
    )
    if checkpoint is None:  # the shipped model for the resolved data set and certifier
        family = CERTIFIERS.get(exp.certifier).family
        path = str(WEIGHTS_DIR / weights_name(exp.dataset, family, None))
        ck = load_checkpoint(path)
    fit_sigma, notes = check_fit(
        ck,
        certifier=exp.certifier,
        dataset=None if input_path else exp.dataset,
        sigma=exp.certifier_params.get("sigma"),
        force=force,
    )
    if fit_sigma is not None:
        exp = exp.model_copy(
            update={"certifier_params": {**exp.certifier_params, "sigma": fit_sigma}}
        )
    _, cert, _, _ = build(exp)
    if input_path:
        x, y = as_batch(load_npy_images(input_path), ck.arch, name=input_path), None
    else:
        te = load_split(exp.dataset, "test", exp.test_limit)
        x, y = as_batch(te.x, ck.arch, name=f"{exp.dataset} images"), te.y
    if triggered:
        x = make_attack("random-label").trigger(ck.arch.height).apply(x)
    for note in notes:  # after every input check, so that an error stays one line
        click.echo(f"warning: {note}", err=True)
    with torch_threads(1):
        c = cert.certify(ck.model, x, opts.seed)
    recs = c.records()
    if y is not None:
        for r, label in zip(recs, y, strict=True):
            r["label"] = int(label)
    doc = {
        "checkpoint": path,
        "dataset": None if input_path else exp.dataset,
        "certifier": cert.describe(),
        "checkpoint_provenance": ck.provenance,
        "provenance_source": ck.provenance_source,
        "notes": notes,
        "abstain_rate": c.abstain_rate(),
        "certified_accuracy": c.certified_accuracy(y) if y is not None else None,
        "inputs": recs,
    }

    def text(d: dict[str, Any]) -> None:
        for i, r in enumerate(d["inputs"]):
            pred = "ABSTAIN" if r["abstain"] else str(r["prediction"])
            lab = f" label={r['label']}" if "label" in r else ""
            click.echo(f"{i:>5} prediction={pred:<8} radius={r['radius']:.4f}{lab}")
        click.echo(
            f"abstain rate {d['abstain_rate']:.4f}"
            + (
                f", certified accuracy {d['certified_accuracy']:.4f}"
                if d["certified_accuracy"] is not None
                else ""
            )
        )

    emit(doc, opts.fmt, text)


def _not_a_directory(path: str) -> None:
    from pathlib import Path

    from aisec.errors import InputFileError

    if Path(path).is_dir():
        raise InputFileError(path, "is a directory, not a file")


@command.command("attack")
@_common
@click.option("--attack", default="random-label", show_default=True)
@click.option("--poison-rate", type=float, default=0.01, show_default=True)
@click.option("--epochs", type=int, default=None)
def attack_cmd(
    opts: _Common,
    attack,
    poison_rate,
    epochs,
) -> None:
    """Train an unpoisoned and a poisoned model; compare accuracy and abstention."""
    from aisec.robustness.pipeline import run_experiment, torch_threads

    rows = []
    poisoned = opts.experiment(
        attack=attack,
        attack_params={"rate": poison_rate},
        train={"epochs": epochs} if epochs else None,
    )
    # the unpoisoned model: the same experiment with no poison, whatever rate was resolved
    clean = poisoned.model_copy(update={"attack_params": {**poisoned.attack_params, "rate": 0.0}})
    for label, exp in (("unpoisoned", clean), ("poisoned", poisoned)):
        with torch_threads(1):
            _, ev, record = run_experiment(
                exp, opts.seed, progress=lambda f, m, lb=label: click.echo(f"{lb}: {m}", err=True)
            )
        rows.append({"model": label, "metrics": _metric_dict(ev), "record": record})
    emit({"rows": rows}, opts.fmt, lambda d: _print_metrics(d["rows"]))


@command.command("defend")
@_common
@click.option(
    "--defence",
    default="spectral-signatures",
    show_default=True,
    help="spectral-signatures, activation-clustering or more-noise.",
)
@click.option("--attack", default="random-label", show_default=True)
@click.option("--poison-rate", type=float, default=0.01, show_default=True)
def defend_cmd(
    opts: _Common,
    defence,
    attack,
    poison_rate,
) -> None:
    """Poison, train, apply DEFENCE, and compare the defended model with the undefended one."""
    from aisec.robustness.pipeline import run_defence, torch_threads

    exp = opts.experiment(
        attack=attack,
        attack_params={"rate": poison_rate},
    )
    with torch_threads(1):
        out = run_defence(exp, defence, opts.seed, log=lambda m: click.echo(m, err=True))
    out.pop("evaluations")
    emit(out, opts.fmt, lambda d: (_print_metrics(d["rows"]), click.echo(f"defence: {d['info']}")))
