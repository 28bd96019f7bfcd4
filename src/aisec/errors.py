"""Typed errors with one-line messages that name the parameter, the rule and the value.

Every error a user or a peer can cause is one of these. The CLI maps them to exit codes:
``ConfigError`` and its subclasses exit 2 (usage or configuration), everything else exits 1.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AisecError",
    "ConfigError",
    "ParameterError",
    "UnknownNameError",
    "InputFileError",
    "AssetError",
    "DependencyError",
    "PeerError",
    "DataError",
]


def _show(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class AisecError(Exception):
    """Base class of every aisec error; ``exit_code`` is what the CLI exits with."""

    exit_code: int = 1

    def __str__(self) -> str:  # always one line
        return " ".join(super().__str__().split())


class ConfigError(AisecError, ValueError):
    """A usage or configuration error (exit code 2)."""

    exit_code = 2


class ParameterError(ConfigError):
    """A parameter broke a rule: "`height` must be divisible by 8; got 30"."""

    def __init__(self, name: str, rule: str, value: Any) -> None:
        self.name, self.rule, self.value = name, rule, value
        super().__init__(f"`{name}` {rule}; got {_show(value)}")


class UnknownNameError(ConfigError, LookupError):
    """A name missing from a registry; the message lists the valid names."""

    def __init__(self, kind: str, name: str, valid: list[str]) -> None:
        self.kind, self.name, self.valid = kind, name, list(valid)
        shown = ", ".join(valid) if valid else "(none registered)"
        super().__init__(f"unknown {kind} {name!r}; valid: {shown}")


class InputFileError(ConfigError, FileNotFoundError):
    """A file the user named is missing, unreadable or malformed."""

    def __init__(self, path: Any, problem: str) -> None:
        self.path = str(path)
        super().__init__(f"{self.path}: {problem}")


class DataError(AisecError, ValueError):
    """Input data broke a rule (shape, range, NaN, mismatched ids); exit code 2."""

    exit_code = 2


class AssetError(AisecError, FileNotFoundError):
    """A model or data set could not be found; the message says how to get it."""


class DependencyError(AisecError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""

    def __init__(self, module: str, extra: str) -> None:
        self.module, self.extra = module, extra
        super().__init__(
            f"optional dependency {module!r} is not installed; install it with "
            f"`pip install 'aisec[{extra}]'` (or run scripts/setup.sh)"
        )


class PeerError(AisecError, ConnectionError):
    """A protocol peer failed, vanished or was not who it claimed; names the party and step."""

    def __init__(self, party: str, step: str, problem: str) -> None:
        self.party, self.step = party, step
        super().__init__(f"peer {party!r} at step {step!r}: {problem}")
