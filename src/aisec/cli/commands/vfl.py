"""``aisec vfl``: split (vertical) federated learning with HashVFL and the defences it is
compared with, and the attacks against them.

aisec vfl train DATASET --defence hash --out DIR   every party in this process; accuracy
aisec vfl split DATASET --out DIR                  each party's train/test file
aisec vfl party --party P1 ...                     one party over TCP + mutual TLS
aisec vfl attack --attack decoder RUN_DIR          reconstruction / label inference figures
aisec vfl detect RUN_DIR                           abnormal-input detection (HashVFL codes)
"""

from __future__ import annotations

from typing import Any

import click

from aisec.cli.common import emit, format_option, set_option

DATASET = click.Choice(["mnist", "fashion", "digits", "adult", "reviews"])


@click.group(name="vfl")
def command() -> None:
    """HashVFL: vertical federated learning whose hashing layer defeats data reconstruction."""


def _text(m: dict[str, Any]) -> None:
    for k, v in m.items():
        if isinstance(v, list | dict):
            continue
        click.echo(f"{k:>28}: {v:.4g}" if isinstance(v, float) else f"{k:>28}: {v}")


def _recipe(
    dataset: str | None,
    overrides: tuple[str, ...],
    flags: dict[str, Any],
    base: str | None = None,
) -> Any:
    """Defaults < recipe file < ``--set`` < flags; the bottom follows the data set unless set."""
    from aisec.config import apply_overrides, load_yaml, parse_overrides, validate
    from aisec.privacy.vfl.run import VFLRecipe, default_bottom

    data: dict[str, Any] = load_yaml(base) if base else {}
    data = apply_overrides(data, parse_overrides(overrides))
    if dataset is not None:
        data = apply_overrides(data, {"data": {"dataset": dataset}})
    explicit: dict[str, Any] = {"data": {}, "train": {"defence": {}}}
    for key, (section, name) in {
        "parties": ("data", "parties"),
        "rows": ("data", "rows"),
        "epochs": ("train", "epochs"),
        "batch_size": ("train", "batch_size"),
        "bottom": ("train", "bottom"),
        "lr": ("train", "lr"),
    }.items():
        if flags.get(key) is not None:
            explicit[section][name] = flags[key]
    for key, name in {"defence": "name", "bits": "code_bits", "epsilon": "epsilon"}.items():
        if flags.get(key) is not None:
            explicit["train"]["defence"][name] = flags[key]
    if flags.get("noise") is not None:
        explicit["train"]["defence"]["noise_scale"] = flags["noise"]
    data = apply_overrides(data, explicit)
    train = data.setdefault("train", {})
    if "bottom" not in train:
        train["bottom"] = default_bottom(data.get("data", {}).get("dataset", "mnist"))
    recipe = validate(VFLRecipe, data, where="vfl recipe")
    recipe.train.check()  # unknown defence or bottom: one line listing the valid names
    return recipe


def _train_options(f: Any) -> Any:
    for opt in reversed(
        [
            click.option("--defence", default=None, help="none | hash | noise | dp | gradperturb"),
            click.option("--bits", type=int, default=None, help="Code / embedding length."),
            click.option("--parties", type=int, default=None, help="Number of parties (2-8)."),
            click.option("--epochs", type=int, default=None),
            click.option("--batch-size", type=int, default=None),
            click.option("--bottom", default=None, help="Bottom model: cnn | mlp."),
            click.option("--lr", type=float, default=None),
            click.option("--rows", type=int, default=None, help="Subsample this many rows."),
            click.option("--noise", type=float, default=None, help="noise: std / clip."),
            click.option("--epsilon", type=float, default=None, help="dp: epsilon per epoch."),
            set_option,
        ]
    ):
        f = opt(f)
    return f


@command.command("train")
@click.argument("dataset", type=DATASET)
@_train_options
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Run directory (models, checkpoints, metrics); rerun with it to resume.",
)
@click.option(
    "--threads",
    type=int,
    default=None,
    help="Torch intra-op threads while training (parties already run as threads; 1 is "
    "fastest on a small shared machine).",
)
@format_option
def train_cmd(
    dataset: str,
    overrides: tuple[str, ...],
    out_dir: str | None,
    threads: int | None,
    fmt: str,
    **flags: Any,
) -> None:
    """Train every party of DATASET in this process and print test accuracy and traffic."""
    from aisec.privacy.vfl.run import run_local, torch_threads

    recipe = _recipe(dataset, overrides, flags)

    def progress(epoch: int, batch: int, _party: str) -> None:
        if batch == 0:
            click.echo(f"[P0] epoch {epoch + 1}/{recipe.train.epochs}", err=True)

    with torch_threads(threads):
        m = run_local(recipe, out_dir, progress=progress)
    m = {"dataset": dataset, "defence": recipe.train.defence.name, **m}
    if out_dir:
        m["run_dir"] = out_dir
    emit(m, fmt, _text)


@command.command("split")
@click.argument("dataset", type=DATASET)
@_train_options
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True)
@format_option
def split_cmd(
    dataset: str, overrides: tuple[str, ...], out_dir: str, fmt: str, **flags: Any
) -> None:
    """Write each party's train and test rows and the recipe, for one process per party."""
    from aisec.privacy.vfl.run import write_split

    files = write_split(_recipe(dataset, overrides, flags), out_dir)
    emit(files, fmt, lambda f: [click.echo(f"{k}: {v}") for k, v in f.items()])


@command.command("party")
@click.option("--party", "party", required=True, help="P0 (active, labels) or P1, P2, ...")
@click.option(
    "--recipe",
    "recipe_path",
    type=click.Path(dir_okay=False, exists=True),
    required=True,
    help="recipe.json written by `aisec vfl split` (every party must use the same).",
)
@click.option("--data", "data_path", type=click.Path(dir_okay=False), required=True)
@click.option("--test", "test_path", type=click.Path(dir_okay=False), default=None)
@click.option(
    "--certs",
    "certs_dir",
    type=click.Path(file_okay=False),
    required=True,
    help="ca.pem and this party's <PARTY>.pem/.key (aisec mpc certs --parties P0,P1).",
)
@click.option(
    "--listen",
    default=None,
    metavar="HOST:PORT",
    help="P0: listen here (passive party i on PORT + i - 1).",
)
@click.option("--peer", default=None, metavar="HOST:PORT", help="Passive party: P0's address.")
@set_option
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True)
@format_option
def party_cmd(
    party: str,
    recipe_path: str,
    data_path: str,
    test_path: str | None,
    certs_dir: str,
    listen: str | None,
    peer: str | None,
    overrides: tuple[str, ...],
    out_dir: str,
    fmt: str,
) -> None:
    """Run one party over TCP with mutual TLS; rerun with the same --out to resume."""
    from aisec.privacy.vfl.run import run_party

    recipe = _recipe(None, overrides, {}, base=recipe_path)
    out = run_party(
        party, recipe, data_path, certs_dir, out_dir, test_path=test_path, listen=listen, peer=peer
    )
    emit(out, fmt, _text)


@command.command("attack")
@click.option(
    "--attack",
    required=True,
    help="decoder | inversion | grad-norm | grad-direction | completion",
)
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--party", default="P1", show_default=True, help="The victim party.")
@click.option("--targets", type=int, default=200, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=int, default=None, help="Torch intra-op threads.")
@format_option
def attack_cmd(
    attack: str, run_dir: str, party: str, targets: int, seed: int, threads: int | None, fmt: str
) -> None:
    """Attack a finished run: reconstruction (MSE, SSIM vs the class mean) or label inference
    (accuracy vs the majority class)."""
    from aisec.privacy.attacks.harness import run_attack
    from aisec.privacy.vfl.run import torch_threads

    with torch_threads(threads):
        m = run_attack(run_dir, attack, party=party, targets=targets, seed=seed)
    emit(m, fmt, _text)


@command.command("detect")
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--party", default="P1", show_default=True, help="The party fed abnormal inputs.")
@click.option("--kinds", default="ood,noise,pgd", show_default=True)
@click.option("--rows", type=int, default=300, show_default=True)
@click.option("--threads", type=int, default=None, help="Torch intra-op threads.")
@format_option
def detect_cmd(
    run_dir: str, party: str, kinds: str, rows: int, threads: int | None, fmt: str
) -> None:
    """ROC AUC of the Hamming-distance detector for abnormal inputs of each kind."""
    from aisec.privacy.vfl.detect import detect_abnormal
    from aisec.privacy.vfl.run import torch_threads

    ks = tuple(k.strip() for k in kinds.split(",") if k.strip())
    with torch_threads(threads):
        m = detect_abnormal(run_dir, party=party, kinds=ks, rows=rows)
    emit(m, fmt, _text)
