"""Helpers shared by the commands: ``--format``, ``--set``, printing one JSON document."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from aisec.io import dumps_json

__all__ = ["format_option", "set_option", "emit", "console"]

format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text for people; json prints exactly one JSON document on stdout (logs go to stderr).",
)

set_option = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY.PATH=VALUE",
    help="Override a recipe value (repeatable); values are read as YAML scalars.",
)


def emit(obj: Any, fmt: str, text: Callable[[Any], None] | None = None) -> None:
    """Print ``obj`` as one JSON document (``fmt == "json"``) or through ``text``.

    The JSON is strict: NaN and infinities print as ``null`` (``NaN`` is not JSON).
    """
    if fmt == "json" or text is None:
        click.echo(dumps_json(obj, indent=2))
    else:
        text(obj)


def console(stderr: bool = False):  # noqa: ANN201 - rich is imported lazily
    from rich.console import Console

    return Console(stderr=stderr)
