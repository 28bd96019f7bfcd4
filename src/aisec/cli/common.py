"""Helpers shared by the commands: ``--format``, ``--set``, printing one JSON document."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

__all__ = ["format_option", "set_option", "emit", "console"]

format_option = click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
    help="text for people; json prints exactly one JSON document on stdout (logs go to stderr).",
)

set_option = click.option(
    "--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE",
    help="Override a recipe value (repeatable); values are read as YAML scalars.",
)


def emit(obj: Any, fmt: str, text: Callable[[Any], None] | None = None) -> None:
    """Print ``obj`` as one JSON document (``fmt == "json"``) or through ``text``."""
    if fmt == "json":
        click.echo(json.dumps(obj, indent=2, default=str))
    elif text is not None:
        text(obj)
    else:
        click.echo(json.dumps(obj, indent=2, default=str))


def console(stderr: bool = False):  # noqa: ANN201 - rich is imported lazily
    from rich.console import Console

    return Console(stderr=stderr)
