"""``aisec caesar``: two-party sparse logistic regression (CAESAR, Paillier HE + secret sharing).

aisec caesar run RECIPE              both parties in this process; metrics vs plaintext LR
aisec caesar split RECIPE --out DIR  write the parties' data files (A/B x train/test)
aisec caesar party --role A|B ...    one party over TCP + mutual TLS (two processes or hosts)
aisec caesar predict ...             split prediction with the two parties' models
"""

from __future__ import annotations

from typing import Any

import click

from aisec.cli.common import emit, format_option, peer_options, set_option

ROLE = click.Choice(["A", "B"])


@click.group(name="caesar")
def command() -> None:
    """CAESAR: secure sparse logistic regression between two organisations (KDD'21)."""


def _recipe(recipe: str | None, overrides: tuple[str, ...]) -> Any:
    from aisec.privacy.caesar.run import CaesarRecipe, load_recipe_named

    if recipe is None:
        from aisec.config import load_recipe

        return load_recipe(CaesarRecipe, None, overrides)
    return load_recipe_named(recipe, overrides)


def _progress(role: str) -> Any:
    """Print one line to stderr every 50 batches and at the start of each epoch."""

    def show(epoch: int, batch: int, _msg: str) -> None:
        if batch % 50 == 0:
            click.echo(f"[{role}] epoch {epoch + 1} batch {batch + 1}", err=True)

    return show


def _text_metrics(m: dict[str, Any]) -> None:
    for k, v in m.items():
        if isinstance(v, list):
            if v and all(isinstance(x, str) for x in v):  # e.g. checkpoint fallbacks
                click.echo(f"{k:>30}: " + f"\n{'':>32}".join(v))
            continue
        click.echo(f"{k:>30}: {v:.6g}" if isinstance(v, float) else f"{k:>30}: {v}")


HE_OPTION = click.option(
    "--he",
    "he_scheme",
    type=click.Choice(["gmpy2-paillier", "heu-ou"]),
    default=None,
    help="Homomorphic scheme (both parties must agree): gmpy2 Paillier (default) or "
    "SecretFlow HEU's Okamoto-Uchiyama (faster; needs sf-heu).",
)


@command.command("run")
@click.argument("recipe", required=False)
@set_option
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Write models, checkpoints, metrics.json and resolved.yaml here; rerunning "
    "with the same directory resumes from the last checkpoint.",
)
@click.option("--workers", type=int, default=None, help="HE worker processes per party.")
@click.option("--ray-address", default=None, help="Run HE work on this Ray cluster.")
@HE_OPTION
@format_option
def run_cmd(
    recipe: str | None,
    overrides: tuple[str, ...],
    out_dir: str | None,
    workers: int | None,
    ray_address: str | None,
    he_scheme: str | None,
    fmt: str,
) -> None:
    """Train both parties in one process on RECIPE (a YAML file or an embedded name:
    a9a, a9a-quick, reviews-bow, zipf) and compare with plaintext logistic regression."""
    from aisec.config import save_resolved
    from aisec.privacy.caesar.run import run_local

    extra = list(overrides)
    if workers is not None:
        extra.append(f"protocol.workers={workers}")
    if ray_address is not None:
        extra.append(f"protocol.ray_address={ray_address}")
    if he_scheme is not None:
        extra.append(f"protocol.he_scheme={he_scheme}")
    r = _recipe(recipe, tuple(extra))
    if out_dir:
        save_resolved(out_dir, r)
    emit(run_local(r, out_dir, progress=_progress("B")), fmt, _text_metrics)


@command.command("split")
@click.argument("recipe", required=False)
@set_option
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True)
@format_option
def split_cmd(recipe: str | None, overrides: tuple[str, ...], out_dir: str, fmt: str) -> None:
    """Write the parties' data files of RECIPE's data: A-train, B-train, A-test, B-test."""
    from aisec.privacy.caesar.run import write_split

    files = write_split(_recipe(recipe, overrides), out_dir)
    emit(files, fmt, lambda f: [click.echo(f"{k}: {v}") for k, v in f.items()])


@command.command("party")
@click.option("--role", type=ROLE, required=True, help="A: features only; B: features and labels.")
@peer_options("Directory with ca.pem and this party's <ROLE>.pem/.key (aisec mpc certs).")
@click.option(
    "--data",
    "data_path",
    type=click.Path(dir_okay=False),
    required=True,
    help="This party's data file (aisec caesar split) or an svmlight file.",
)
@click.option("--recipe", default=None, help="Recipe whose `protocol` section is used.")
@set_option
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    required=True,
    help="Model, report and checkpoints; rerun with it to resume.",
)
@HE_OPTION
@format_option
def party_cmd(
    role: str,
    listen: str | None,
    peer: str | None,
    certs_dir: str,
    data_path: str,
    recipe: str | None,
    overrides: tuple[str, ...],
    out_dir: str,
    bandwidth_mbps: float | None,
    latency_ms: float,
    he_scheme: str | None,
    fmt: str,
) -> None:
    """Run one CAESAR party against a remote peer over TCP with mutual TLS."""
    from aisec.privacy.caesar.run import LinkSpec, run_party

    extra = (f"protocol.he_scheme={he_scheme}",) if he_scheme else ()
    r = _recipe(recipe, overrides + extra)
    link = LinkSpec(bandwidth_mbps=bandwidth_mbps, latency_ms=latency_ms).link()
    model, report = run_party(
        role,
        data_path,
        certs_dir,
        r.protocol,
        out_dir,
        listen=listen,
        peer=peer,
        link=link,
        progress=_progress(role),
    )
    out = {
        "role": role,
        "model": f"{out_dir}/model-{role}.safetensors",
        "weights": len(model.weights),
        "epochs_run": report.epochs_run,
        "resumed_from_epoch": report.resumed_from_epoch,
        **(
            {"checkpoint_fallback": report.checkpoint_fallback}
            if report.checkpoint_fallback
            else {}
        ),
        "batches": report.batches,
        "seconds": report.seconds,
        "bytes_per_batch": report.bytes_per_batch,
    }
    emit(out, fmt, _text_metrics)


@command.command("predict")
@click.option("--role", type=ROLE, default=None, help="Party mode: this party's role.")
@click.option("--model", "model_path", type=click.Path(dir_okay=False), default=None)
@click.option("--data", "data_path", type=click.Path(dir_okay=False), default=None)
@click.option("--listen", default=None, metavar="HOST:PORT")
@click.option("--peer", default=None, metavar="HOST:PORT")
@click.option("--certs", "certs_dir", type=click.Path(file_okay=False), default=None)
@click.option(
    "--models",
    "models_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Local mode: directory with model-A/-B.safetensors (aisec caesar run --out).",
)
@click.option("--data-a", type=click.Path(dir_okay=False), default=None)
@click.option("--data-b", type=click.Path(dir_okay=False), default=None)
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the probabilities (B) as JSON here.",
)
@format_option
def predict_cmd(
    role: str | None,
    model_path: str | None,
    data_path: str | None,
    listen: str | None,
    peer: str | None,
    certs_dir: str | None,
    models_dir: str | None,
    data_a: str | None,
    data_b: str | None,
    out_path: str | None,
    fmt: str,
) -> None:
    """Score rows with the split model: party mode (--role, --model, --data, --listen/--peer,
    --certs) or local mode (--models DIR --data-a FILE --data-b FILE). B gets the probabilities."""
    from pathlib import Path

    from aisec.errors import ParameterError
    from aisec.io import atomic_write_json
    from aisec.privacy.caesar.run import predict_local, predict_remote

    if models_dir is not None:
        if not (data_a and data_b):
            raise ParameterError("--data-a/--data-b", "are both required with --models", None)
        res = predict_local(
            Path(models_dir) / "model-A.safetensors",
            Path(models_dir) / "model-B.safetensors",
            data_a,
            data_b,
        )
    else:
        if not (role and model_path and data_path and certs_dir):
            raise ParameterError(
                "predict",
                "needs --role, --model, --data and --certs (or --models with --data-a/--data-b)",
                None,
            )
        res = predict_remote(role, model_path, data_path, certs_dir, listen=listen, peer=peer)
    if out_path and "probabilities" in res:
        atomic_write_json(out_path, {"ids": res["ids"], "probabilities": res["probabilities"]})
    shown = {k: v for k, v in res.items() if k not in ("ids", "probabilities")}
    emit(shown if out_path else res, fmt, _text_metrics)
