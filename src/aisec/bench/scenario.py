"""Declarative benchmark scenarios.

A scenario is a function ``fn(params, ctx) -> Result`` registered with its default parameters
(the ``quick`` suite), the overrides it takes in the ``full`` suite, its seeds, its system and its
headline metrics with their targets (:class:`Headline`), which the scorecard shows one line a row.
Scenario modules live in :mod:`aisec.bench.scenarios` and must import cheaply: import heavy
libraries (torch, transformers) inside the function.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aisec.bench.cells import Executor
from aisec.errors import ParameterError
from aisec.metrics.stats import Rate
from aisec.registry import Registry

__all__ = [
    "SCENARIOS",
    "SUITES",
    "Series",
    "Result",
    "BenchContext",
    "Headline",
    "Scenario",
    "scenario",
    "metric_value",
]

SUITES = ("quick", "full")

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
    "==": lambda a, b: a == b,
}


def metric_value(value: Any) -> float | None:
    """The number behind a row metric: a float, an int, a bool, or a rate's ``value``; else None."""
    if isinstance(value, Mapping):
        value = value.get("value")
    if isinstance(value, Rate):
        value = value.value
    if isinstance(value, bool | int | float | np.integer | np.floating):
        v = float(value)
        return v if math.isfinite(v) else None
    return None


@dataclass(frozen=True)
class Headline:
    """A headline metric of a scenario and the target the project states for it.

    Attributes:
        metric: a key of the row's ``metrics``.
        target: ``"OP REF"``: ``OP`` one of ``>= <= > < ==``; ``REF`` a number or the name of
            another metric of the same row (a baseline run side by side, e.g.
            ``"> gaussian_shading.avg_tpr_at_1fpr"``). Empty: no stated target (``n/a``).
        label: a short name for the scorecard (default: ``metric``).
        unit: printed after the value and a numeric target (``"x"``, ``"/s"``).
        why: where the target comes from (the paper or README claim), shown in the report.
    """

    metric: str
    target: str = ""
    label: str = ""
    unit: str = ""
    why: str = ""

    def __post_init__(self) -> None:
        if not self.metric:
            raise ParameterError("Headline.metric", "must name a metric", self.metric)
        if self.target:
            self._parse()

    def _parse(self) -> tuple[str, str]:
        op, _, ref = self.target.strip().partition(" ")
        if op not in _OPS or not ref.strip():
            raise ParameterError(
                "Headline.target",
                f"must look like 'OP REF' with OP in {' '.join(_OPS)}",
                self.target,
            )
        return op, ref.strip()

    def evaluate(self, metrics: Mapping[str, Any]) -> dict[str, Any]:
        """This headline on a row's ``metrics``: value, resolved target, and ``met``.

        ``met`` is True or False when the value and the target's reference are both numbers,
        else None (no target, metric missing or not a number, a failed row).
        """
        value = metric_value(metrics.get(self.metric))
        out: dict[str, Any] = {
            "metric": self.metric,
            "label": self.label or self.metric,
            "unit": self.unit,
            "target": self.target,
            "why": self.why,
            "value": value,
            "reference": None,
            "met": None,
        }
        if not self.target:
            return out
        op, ref = self._parse()
        try:
            reference: float | None = float(ref)
        except ValueError:  # another metric of the row: a baseline measured side by side
            reference = metric_value(metrics.get(ref))
        out["reference"] = reference
        if value is not None and reference is not None:
            out["met"] = bool(_OPS[op](value, reference))
        return out

    def to_dict(self) -> dict[str, str]:
        return {
            "metric": self.metric,
            "target": self.target,
            "label": self.label,
            "unit": self.unit,
            "why": self.why,
        }


@dataclass(frozen=True)
class Series:
    """A curve for the report: ``y`` against ``x`` (e.g. ROC, robustness vs strength).

    ``xticklabels`` names the bars of a ``"bar"`` series (one per ``x``), e.g. asset names.
    """

    x: list[float]
    y: list[float]
    xlabel: str = "x"
    ylabel: str = "y"
    label: str = ""
    kind: str = "line"  # "line" | "bar" | "scatter"
    logx: bool = False
    logy: bool = False
    xticklabels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.xticklabels and len(self.xticklabels) != len(self.x):
            raise ParameterError(
                "Series.xticklabels",
                f"must name each of the {len(self.x)} x values",
                len(self.xticklabels),
            )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "x": [float(v) for v in self.x],
            "y": [float(v) for v in self.y],
            "xlabel": self.xlabel,
            "ylabel": self.ylabel,
            "label": self.label,
            "kind": self.kind,
            "logx": self.logx,
            "logy": self.logy,
        }
        if self.xticklabels:
            out["xticklabels"] = [str(t) for t in self.xticklabels]
        return out


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
        images: named pictures the scenario drew itself (PNG files it wrote under its
            ``ctx.work_dir``), embedded in the report beside the row.
    """

    metrics: dict[str, MetricValue]
    labels: dict[str, str] = field(default_factory=dict)
    breakdown: list[dict[str, Any]] = field(default_factory=list)
    series: dict[str, list[Series]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    images: dict[str, str | os.PathLike[str]] = field(default_factory=dict)


@dataclass
class BenchContext:
    """Run-time context handed to a scenario: its seed, generator, scratch dir and progress, and
    where a grid of independent cells runs (:func:`aisec.bench.cells.run_cells`)."""

    seed: int
    suite: str
    work_dir: Path
    rng: np.random.Generator
    progress: Callable[[float, str], None] = lambda frac, msg="": None
    executor: Executor = field(default_factory=Executor)

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
    headline: tuple[Headline, ...] = ()

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
    headline: Sequence[Headline] = (),
) -> Callable[[Callable[[Mapping[str, Any], BenchContext], Result]], Callable[..., Result]]:
    """Register ``fn(params, ctx) -> Result`` as a benchmark scenario.

    ``headline`` lists the metrics the scorecard shows for the row, the first one foremost,
    each with the target the project states for it (see :class:`Headline`).
    """
    for s in suites:
        if s not in SUITES:
            raise ParameterError("suites", f"must be among {SUITES}", s)
    params = dict(params or {})
    extra = set(full_params or {}) - set(params)
    if extra:
        raise ParameterError("full_params", "may only override keys of params", sorted(extra))

    for h in headline:
        if not isinstance(h, Headline):
            raise ParameterError("headline", "must hold bench.Headline entries", h)

    def deco(fn: Callable[[Mapping[str, Any], BenchContext], Result]) -> Callable[..., Result]:
        doc = description or ((fn.__doc__ or "").strip().splitlines() or [""])[0]
        SCENARIOS.add(
            name,
            Scenario(
                name,
                fn,
                system,
                params,
                dict(full_params or {}),
                tuple(suites),
                tuple(seeds),
                tuple(full_seeds or seeds),
                doc,
                tuple(headline),
            ),
            summary=doc,
        )
        return fn

    return deco
