"""Helpers shared by the commands: ``--format``, ``--set``, printing one JSON document, and the
one precedence every command follows: defaults < YAML recipe < ``--set`` < explicit flags."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import click

from aisec.io import dumps_json

__all__ = [
    "format_option",
    "set_option",
    "peer_options",
    "emit",
    "console",
    "given",
    "split_flags",
    "executor_options",
    "layered",
]

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


def peer_options(certs_help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The options of a two-party command run against a remote peer: ``--listen``/``--peer``
    (one of them), ``--certs`` (mutual TLS) and the outgoing link's shaping."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        for opt in reversed(
            [
                click.option(
                    "--listen", default=None, metavar="HOST:PORT", help="Wait for the peer here."
                ),
                click.option(
                    "--peer", default=None, metavar="HOST:PORT", help="Connect to the peer here."
                ),
                click.option(
                    "--certs",
                    "certs_dir",
                    type=click.Path(file_okay=False),
                    required=True,
                    help=certs_help,
                ),
                click.option(
                    "--bandwidth-mbps", type=float, default=None, help="Shape the outgoing link."
                ),
                click.option(
                    "--latency-ms",
                    type=float,
                    default=0.0,
                    show_default=True,
                    help="One-way latency added to each message (ms).",
                ),
            ]
        ):
            fn = opt(fn)
        return fn

    return wrap


def executor_options(
    default_workers: int | None = 1,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--workers N`` and ``--ray ADDRESS`` (keyword ``ray``): where the independent cells of
    a grid run (``aisec.bench.cells.Executor``). ``default_workers`` None lets a recipe decide."""
    workers_help = "Run grid cells in this many local processes" + (
        "." if default_workers else " (default: the recipe's, else 1)."
    )

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn = click.option(
            "--ray",
            "ray",
            default=None,
            metavar="ADDRESS",
            help="Run grid cells as Ray tasks: 'local' or a cluster address (extra distributed).",
        )(fn)
        return click.option(
            "--workers",
            type=click.IntRange(min=1),
            default=default_workers,
            show_default=default_workers is not None,
            help=workers_help,
        )(fn)

    return wrap


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


def given(name: str | None) -> bool:
    """Whether the user set option ``name`` of the running command (on the command line or in
    the environment) instead of leaving it at its default. A name that is not an option of the
    command (a value derived from several flags) counts as set."""
    from click.core import ParameterSource

    ctx = click.get_current_context(silent=True)
    if ctx is None or name is None:
        return True
    source = ctx.get_parameter_source(name)
    return source is None or source not in (ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)


def split_flags(
    flags: Mapping[str, Any], options: Mapping[str, str | None] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(explicit, defaults)``: the flags the user set and those left at their defaults.

    ``options`` maps a key of ``flags`` to the option it comes from when the names differ
    (``{"attack_params": "poison_rate"}``); None values are dropped from both.
    """
    options = options or {}
    explicit, defaults = {}, {}
    for key, value in flags.items():
        if value is None:
            continue
        (explicit if given(options.get(key, key)) else defaults)[key] = value
    return explicit, defaults


def layered(
    recipe: Mapping[str, Any],
    overrides: Iterable[str],
    flags: Mapping[str, Any],
    defaults: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The configuration every command resolves, in one order of precedence:
    ``defaults`` (the flags' own defaults) < ``recipe`` (YAML) < ``--set`` items (parsed by
    :func:`aisec.config.parse_overrides` alone) < ``flags`` the user gave. Mappings merge key by
    key; None values in ``flags`` and ``defaults`` are ignored."""
    from aisec.config import apply_overrides, parse_overrides

    out = apply_overrides({}, {k: v for k, v in (defaults or {}).items() if v is not None})
    out = apply_overrides(out, recipe)
    out = apply_overrides(out, parse_overrides(overrides))
    return apply_overrides(out, {k: v for k, v in flags.items() if v is not None})
