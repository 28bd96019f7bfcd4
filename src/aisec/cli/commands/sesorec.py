"""``aisec sesorec``: secure social recommendation between a rating and a social platform.

aisec sesorec run RECIPE              both platforms in this process: every mode and baseline
aisec sesorec split RECIPE --out DIR  write the platforms' files (users, ratings, trust edges)
aisec sesorec party --role rating|social ...   one platform over TCP + mutual TLS
aisec sesorec attack RUN_DIR          recover the trust graph from the rating platform's view
"""

from __future__ import annotations

from typing import Any

import click

from aisec.cli.common import emit, format_option, peer_options, set_option


@click.group(name="sesorec")
def command() -> None:
    """SeSoRec: secure social recommendation with SSMM (ECAI'20), its leak and a hardened mode."""


def _recipe(recipe: str, overrides: tuple[str, ...]) -> Any:
    from aisec.privacy.sesorec.run import load_recipe_named

    return load_recipe_named(recipe, overrides)


def _progress(role: str) -> Any:
    def show(epoch: int, batch: int, _msg: str) -> None:
        if batch == 0:
            click.echo(f"[{role}] epoch {epoch + 1}", err=True)

    return show


_ROW_KEYS = (
    "matmul",
    "rmse",
    "mae",
    "rmse_gap_vs_plaintext",
    "seconds",
    "seconds_per_epoch",
    "overhead_vs_plaintext",
    "bytes",
    "bytes_per_batch",
    "analytic_bytes_per_batch",
    "rounds_per_batch",
    "offline_bytes",
    "edge_recovery",
    "edge_recovery_ssmm_leak",
    "edge_recovery_products",
    "edge_recovery_final_u",
    "edge_recovery_chance",
    "social_learns_u_pair_sums",
    "social_u_pair_sum_error",
    "note",
)


def _show(v: Any) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def _text_run(m: dict[str, Any]) -> None:
    for k, v in m.items():
        if k != "modes":
            click.echo(f"{k:>28}: {_show(v)}")
    for mode, row in m.get("modes", {}).items():
        click.echo(f"-- mode {mode}")
        for k in _ROW_KEYS:
            if k in row:
                click.echo(f"{k:>28}: {_show(row[k])}")


def _text_flat(m: dict[str, Any]) -> None:
    for k, v in m.items():
        if isinstance(v, dict):
            click.echo(f"-- {k}")
            for k2, v2 in v.items():
                click.echo(f"{k2:>28}: {_show(v2)}")
        else:
            click.echo(f"{k:>28}: {_show(v)}")


@command.command("run")
@click.argument("recipe")
@set_option
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Write metrics.json, recipe.json, models, views and checkpoints here; rerunning "
    "with the same directory resumes each mode from its last checkpoint.",
)
@format_option
def run_cmd(recipe: str, overrides: tuple[str, ...], out_dir: str | None, fmt: str) -> None:
    """Train both platforms in one process on RECIPE (a YAML file or a built-in name:
    filmtrust, movielens, quick): plaintext SoReg and MF baselines, then each mode, with
    RMSE, MAE, seconds, bytes and the attack on the rating platform's view."""
    from aisec.config import save_resolved
    from aisec.privacy.sesorec.run import load_data, run_local

    r = _recipe(recipe, overrides)
    load_data(r.data, r.seed)  # bad data fails here, before anything is written
    if out_dir:
        save_resolved(out_dir, r)
    emit(run_local(r, out_dir, progress=_progress("social")), fmt, _text_run)


@command.command("split")
@click.argument("recipe")
@set_option
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True)
@format_option
def split_cmd(recipe: str, overrides: tuple[str, ...], out_dir: str, fmt: str) -> None:
    """Write RECIPE's data as the platforms' files: users.txt (shared id list),
    rating-train.txt and rating-test.txt (rating platform), social.txt (social platform)."""
    from aisec.privacy.sesorec.data import write_party_files
    from aisec.privacy.sesorec.run import load_data

    r = _recipe(recipe, overrides)
    files = write_party_files(load_data(r.data, r.seed), out_dir)
    emit(files, fmt, lambda f: [click.echo(f"{k}: {v}") for k, v in f.items()])


@command.command("party")
@click.option(
    "--role",
    type=click.Choice(["rating", "social"]),
    required=True,
    help="rating: ratings, learns U and V; social: the trust graph.",
)
@peer_options(
    "ca.pem and this platform's <role>.pem/.key (aisec mpc certs DIR --parties rating,social)."
)
@click.option(
    "--data",
    "data_path",
    type=click.Path(dir_okay=False),
    required=True,
    help="rating: `user item rating` lines; social: `truster trustee weight` lines.",
)
@click.option(
    "--users",
    "users_path",
    type=click.Path(dir_okay=False),
    required=True,
    help="The shared user id list (one id per line) both platforms align on.",
)
@click.option(
    "--test",
    "test_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="rating only: held-out ratings to report RMSE/MAE on.",
)
@click.option("--recipe", default="filmtrust", help="Recipe whose protocol section is used.")
@set_option
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True)
@format_option
def party_cmd(
    role: str,
    listen: str | None,
    peer: str | None,
    certs_dir: str,
    data_path: str,
    users_path: str,
    test_path: str | None,
    recipe: str,
    overrides: tuple[str, ...],
    out_dir: str,
    bandwidth_mbps: float | None,
    latency_ms: float,
    fmt: str,
) -> None:
    """Run one platform against a remote peer over TCP with mutual TLS."""
    from aisec.privacy.sesorec.run import LinkSpec, run_party

    r = _recipe(recipe, overrides)
    link = LinkSpec(bandwidth_mbps=bandwidth_mbps, latency_ms=latency_ms).link()
    out = run_party(
        role,  # type: ignore[arg-type]
        data_path,
        users_path,
        certs_dir,
        r,
        out_dir,
        test_path=test_path,
        listen=listen,
        peer=peer,
        link=link,
        progress=_progress(role),
    )
    emit(out, fmt, _text_flat)


@command.command("attack")
@click.argument("run_dir", type=click.Path(file_okay=False))
@format_option
def attack_cmd(run_dir: str, fmt: str) -> None:
    """Recover the trust graph from the rating platform's recorded view in RUN_DIR (from
    `aisec sesorec run --out`); prints precision at the true edge count beside chance."""
    from aisec.privacy.sesorec.run import run_attack

    emit(run_attack(run_dir), fmt, _text_flat)
