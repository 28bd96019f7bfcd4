"""The ``aisec`` command: a lazy click group, so ``aisec --help`` imports no heavy library.

Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pkgutil
import sys
from collections.abc import Iterator

import click

from aisec import __version__
from aisec.errors import AisecError

_COMMANDS_PKG = "aisec.cli.commands"


class LazyGroup(click.Group):
    """Finds subcommands as modules of :mod:`aisec.cli.commands`; imports one only when used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        import aisec.cli.commands as pkg

        return sorted(
            m.name.replace("_", "-")
            for m in pkgutil.iter_modules(pkg.__path__)
            if not m.name.startswith("_")
        )

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.list_commands(ctx):
            return None
        module = importlib.import_module(f"{_COMMANDS_PKG}.{name.replace('-', '_')}")
        return module.command

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_help_text(ctx, formatter)
        with formatter.indentation():
            for paragraph in systems_help(self.list_commands(ctx)):
                formatter.write_paragraph()
                formatter.write_text(paragraph)


# The nine systems of DEVELOPERS.md and the command each one has, or will have once built.
SYSTEMS = (
    ("CAESAR", "caesar"),
    ("SeSoRec", "sesorec"),
    ("HashVFL", "vfl"),
    ("GaussMarker", "watermark"),
    ("VideoMarkBench", "videomark"),
    ("OML fingerprints", "fingerprint"),
    ("EnchTable", "enchtable"),
    ("SafeChain", "safechain"),
    ("certifier availability attacks", "certify"),
)


def systems_help(commands: list[str]) -> list[str]:
    """What ``aisec --help`` says of the systems: those whose command exists, then the rest."""
    built = [f"{name} ({cmd})" for name, cmd in SYSTEMS if cmd in commands]
    coming = [name for name, cmd in SYSTEMS if cmd not in commands]
    out = ["Systems: " + ", ".join(built) + "."]
    if coming:
        out.append("Not built yet: " + ", ".join(coming) + ".")
    return out


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="aisec")
def cli() -> None:
    """aisec: secure AI systems across their life, on one asset resolver (assets), one
    benchmark harness (bench) and one report (report)."""


def _wants_json(argv: list[str]) -> bool:
    return "--format=json" in argv or any(
        a == "--format" and b == "json" for a, b in zip(argv, argv[1:], strict=False)
    )


@contextlib.contextmanager
def _json_stdout(active: bool) -> Iterator[None]:
    """With ``--format json``, stdout must hold exactly one JSON document. Native libraries
    (e.g. HEU's thread-pool logger) write to file descriptor 1 behind Python's back, so fd 1 is
    pointed at stderr while the command runs and Python's ``sys.stdout`` keeps the real stdout."""
    try:
        real = sys.stdout is sys.__stdout__ and sys.stdout.fileno() == 1
    except (AttributeError, OSError, ValueError):
        real = False
    if not (active and real):
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    stream = open(saved, "w", encoding="utf-8", buffering=1, closefd=False)  # noqa: SIM115
    sys.stdout = stream
    try:
        yield
    finally:
        stream.flush()
        sys.stdout = sys.__stdout__
        os.dup2(saved, 1)
        os.close(saved)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI and map errors to exit codes and one-line messages."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        with _json_stdout(_wants_json(args)):
            cli.main(args=args, prog_name="aisec", standalone_mode=False)
        return 0
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.UsageError as exc:
        hint = f"\nTry '{exc.ctx.command_path} --help' for help." if exc.ctx else ""
        click.echo(f"error: {exc.format_message()}{hint}", err=True)
        return 2
    except click.ClickException as exc:  # e.g. a click.Path that does not exist
        click.echo(f"error: {exc.format_message()}", err=True)
        return exc.exit_code if exc.exit_code in (1, 2) else 1
    except click.Abort:
        click.echo("aborted", err=True)
        return 1
    except AisecError as exc:
        click.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except Exception as exc:  # an unexpected failure: one line, the traceback on request
        if os.environ.get("AISEC_DEBUG"):
            raise
        msg = " ".join(str(exc).split())
        click.echo(
            f"error: {type(exc).__name__}: {msg} (set AISEC_DEBUG=1 for the traceback)", err=True
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
