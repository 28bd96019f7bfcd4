"""``aisec mpc``: set-up shared by the multi-party protocols (certificates for mutual TLS)."""

from __future__ import annotations

import click

from aisec.cli.common import emit, format_option


@click.group(name="mpc")
def command() -> None:
    """Multi-party set-up: certificates for TCP + mutual TLS channels."""


@command.command("certs")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--parties", default="A,B", show_default=True, help="Comma-separated party names.")
@click.option(
    "--hosts",
    default="localhost,127.0.0.1",
    show_default=True,
    help="Comma-separated host names/IPs put in every certificate.",
)
@click.option("--days", type=int, default=365, show_default=True)
@format_option
def certs_cmd(out_dir: str, parties: str, hosts: str, days: int, fmt: str) -> None:
    """Make a small CA and one certificate per party in OUT_DIR.

    Copy ca.pem plus <PARTY>.pem and <PARTY>.key to each party's host; keep ca.key offline.
    """
    from aisec.transport.certs import make_certs

    files = make_certs(
        out_dir,
        [p.strip() for p in parties.split(",") if p.strip()],
        [h.strip() for h in hosts.split(",") if h.strip()],
        days,
    )
    emit(files, fmt, lambda f: [click.echo(f"{k}: {v}") for k, v in f.items()])
