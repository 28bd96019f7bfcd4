"""Decorator registries for methods, attacks, scenarios and assets.

A registry rejects a duplicate name and, on a miss, lists the valid names. A variant family is one
object registered under several names with different default parameters (``defaults``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from aisec.errors import ConfigError, UnknownNameError

T = TypeVar("T")

__all__ = ["Entry", "Registry", "registries"]

# Index of every registry by kind, so `aisec list KIND` can find them. Registries are created once
# at import time of the module that owns them; nothing here is mutable configuration.
_INDEX: dict[str, Registry[Any]] = {}


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered object with the defaults of its variant and a one-line summary."""

    name: str
    obj: T
    defaults: Mapping[str, Any] = field(default_factory=dict)
    summary: str = ""


class Registry(Generic[T]):
    """A named collection of registered objects.

    Args:
        kind: what the entries are ("watermark method", "scenario"); used in error messages.
    """

    def __init__(self, kind: str) -> None:
        if kind in _INDEX:
            raise ConfigError(f"a registry for {kind!r} already exists")
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        _INDEX[kind] = self

    def register(
        self, name: str, *, summary: str = "", **defaults: Any
    ) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name`` (with variant ``defaults``)."""

        def deco(obj: T) -> T:
            self.add(name, obj, summary=summary, **defaults)
            return obj

        return deco

    def add(self, name: str, obj: T, *, summary: str = "", **defaults: Any) -> None:
        if not name or not isinstance(name, str):
            raise ConfigError(f"{self.kind} name must be a non-empty string; got {name!r}")
        if name in self._entries:
            raise ConfigError(f"{self.kind} {name!r} is already registered")
        if not summary:
            doc = (getattr(obj, "__doc__", None) or "").strip()
            summary = doc.splitlines()[0] if doc else ""
        self._entries[name] = Entry(name, obj, MappingProxyType(dict(defaults)), summary)

    def entry(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, self.names()) from None

    def get(self, name: str) -> T:
        return self.entry(name).obj

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[Entry[T]]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self)} entries)"


def registries() -> dict[str, Registry[Any]]:
    """Every registry created so far, by kind (import the owning modules first)."""
    return dict(_INDEX)
