"""``aisec assets list|check``: the embedded models and data sets."""

from __future__ import annotations

from typing import Any

import click

from aisec.cli.common import emit, format_option


@click.group("assets")
def command() -> None:
    """Embedded models and data sets (offline defaults)."""


def _size(spec: Any) -> int | None:
    from aisec.assets.packages import package_dir, shared_data_dir
    from aisec.errors import AssetError

    try:
        if spec.source == "shared/data":
            files = list(shared_data_dir().glob(spec.relpath or ""))
        elif spec.source.startswith("debian:"):
            from pathlib import Path

            p = Path(spec.relpath or "")
            files = list(p.rglob("*")) if p.is_dir() else [p]
        elif spec.module:
            base = package_dir(spec.module, spec.source.removeprefix("pypi:"))
            files = list(base.glob(spec.relpath)) if spec.relpath else []
        else:
            return None
    except AssetError:
        return None
    total = 0
    for f in files:
        if f.is_dir():
            total += sum(x.stat().st_size for x in f.rglob("*") if x.is_file())
        elif f.exists():
            total += f.stat().st_size
    return total


@command.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include data read from shared/data.")
@format_option
def list_cmd(show_all: bool, fmt: str) -> None:
    """Every embedded asset: kind, source package, size, licence and whether it loads now."""
    from aisec.assets import ASSETS, asset_status

    rows = []
    for name in ASSETS.names():
        spec = ASSETS.get(name)
        if not spec.embedded and not show_all:
            continue
        present, why = asset_status(spec)
        rows.append({"name": name, "kind": spec.kind, "source": spec.source, "bytes": _size(spec),
                     "licence": spec.licence, "redistributable": spec.redistribute,
                     "embedded": spec.embedded, "available": present, "status": why,
                     "description": spec.description})

    def text(rs: list[dict[str, Any]]) -> None:
        from rich.console import Console
        from rich.table import Table

        t = Table(title="aisec assets")
        for c in ("name", "kind", "source", "size", "licence", "available"):
            t.add_column(c, overflow="fold")
        for r in rs:
            size = f"{r['bytes'] / 1e6:.1f} MB" if r["bytes"] else "-"
            avail = "[green]yes[/]" if r["available"] else f"[red]no[/] ({r['status']})"
            t.add_row(r["name"], r["kind"], r["source"], size, r["licence"], avail)
        Console().print(t)

    emit(rows, fmt, text)


@command.command("check")
@click.argument("names", nargs=-1)
@click.option("--all", "show_all", is_flag=True, help="Include data read from shared/data.")
@format_option
def check_cmd(names: tuple[str, ...], show_all: bool, fmt: str) -> None:
    """Load each asset (or NAMES) and run one real read or forward pass; exit 1 if any fails."""
    from aisec.assets import ASSETS, check_asset

    specs = [ASSETS.get(n) for n in names] if names else [
        ASSETS.get(n) for n in ASSETS.names() if show_all or ASSETS.get(n).embedded
    ]
    results = []
    for spec in specs:
        if fmt == "text":
            click.echo(f"checking {spec.name} ...", err=True)
        results.append(check_asset(spec))

    def text(rs: list[dict[str, Any]]) -> None:
        for r in rs:
            mark = "ok   " if r["status"] == "ok" else "ERROR"
            click.echo(f"{mark} {r['name']:<24} {r['seconds']:>6.1f}s  {r['detail'] or r['error']}")

    emit(results, fmt, text)
    if any(r["status"] != "ok" for r in results):
        raise SystemExit(1)
