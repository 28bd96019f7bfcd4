"""Declarative benchmark scenarios.

A scenario is a function ``fn(params, ctx) -> Result`` registered with its default parameters
(the ``quick`` suite), the overrides it takes in the ``full`` suite, its seeds and its system.
Scenario modules live in :mod:`aisec.bench.scenarios` and must import cheaply: import heavy
libraries (torch, transformers) inside the function.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aisec.errors import ParameterError
from aisec.metrics.stats import Rate
from aisec.registry import Registry

__all__ = ["SCENARIOS", "SUITES", "Series", "Result", "BenchContext", "Scenario", "scenario"]

SUITES = ("quick", "full")


@dataclass(frozen=True)
class Series:
    """A curve for the report: ``y`` against ``x`` (e.g. ROC, robustness vs strength)."""

    x: list[float]
    y: list[float]
    xlabel: str = "x"
    ylabel: str = "y"
    label: str = ""
    kind: str = "line"  # "line" | "bar" | "scatter"
    logx: bool = False
    logy: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "x": [float(v) for v in self.x], "y": [float(v) for v in self.y],
            "xlabel": self.xlabel, "ylabel": self.ylabel, "label": self.label, "kind": self.kind,
            "logx": self.logx, "logy": self.logy,
        }


MetricValue = float | int | bool | str | Rate | None


@dataclass
class Result:
    """What a scenario returns.

    Attributes:
        metrics: headline numbers of the row (floats, ints or :class:`Rate` with intervals).
        labels: what the row is about (``method``, ``distortion``, ``dataset`` ...).
        breakdown: labelled sub-results, e.g. one per (method, distortion), each
            ``{"labels": {...}, "metrics": {...}}``; the report renders them as tables.
        series: named plots; a list of :class:`Series` under one name shares one figure.
        notes: caveats shown in the report (e.g. "secureml seconds extrapolated").
    """

    metrics: dict[str, MetricValue]
    labels: dict[str, str] = field(default_factory=dict)
    breakdown: list[dict[str, Any]] = field(default_factory=list)
    series: dict[str, list[Series]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class BenchContext:
    """Run-time context handed to a scenario: its seed, generator, scratch dir and progress."""

    seed: int
    suite: str
    work_dir: Path
    rng: np.random.Generator
    progress: Callable[[float, str], None] = lambda frac, msg="": None

    def report(self, fraction: float, message: str = "") -> None:
        """Tell the progress bar how far the scenario is (0..1)."""
        self.progress(min(max(float(fraction), 0.0), 1.0), message)


@dataclass(frozen=True)
class Scenario:
    name: str
    fn: Callable[[Mapping[str, Any], BenchContext], Result]
    system: str
    params: Mapping[str, Any]
    full_params: Mapping[str, Any]
    suites: tuple[str, ...]
    seeds: tuple[int, ...]
    full_seeds: tuple[int, ...]
    description: str

    def resolve(self, suite: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Parameters for ``suite`` with ``overrides``; an unknown key is an error."""
        out = dict(self.params)
        if suite == "full":
            out.update(self.full_params)
        for k, v in (overrides or {}).items():
            if k not in out:
                raise ParameterError(
                    f"{self.name}.{k}", f"is not a parameter (valid: {', '.join(sorted(out))})", v
                )
            out[k] = v
        return out

    def seeds_for(self, suite: str) -> tuple[int, ...]:
        return self.full_seeds if suite == "full" else self.seeds


SCENARIOS: Registry[Scenario] = Registry("scenario")


def scenario(
    name: str,
    *,
    system: str,
    params: Mapping[str, Any] | None = None,
    full_params: Mapping[str, Any] | None = None,
    suites: tuple[str, ...] = SUITES,
    seeds: tuple[int, ...] = (0,),
    full_seeds: tuple[int, ...] | None = None,
    description: str = "",
) -> Callable[[Callable[[Mapping[str, Any], BenchContext], Result]], Callable[..., Result]]:
    """Register ``fn(params, ctx) -> Result`` as a benchmark scenario."""
    for s in suites:
        if s not in SUITES:
            raise ParameterError("suites", f"must be among {SUITES}", s)
    params = dict(params or {})
    extra = set(full_params or {}) - set(params)
    if extra:
        raise ParameterError("full_params", "may only override keys of params", sorted(extra))

    def deco(fn: Callable[[Mapping[str, Any], BenchContext], Result]) -> Callable[..., Result]:
        doc = description or ((fn.__doc__ or "").strip().splitlines() or [""])[0]
        SCENARIOS.add(
            name,
            Scenario(name, fn, system, params, dict(full_params or {}), tuple(suites),
                     tuple(seeds), tuple(full_seeds or seeds), doc),
            summary=doc,
        )
        return fn

    return deco
