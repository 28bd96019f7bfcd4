"""A YAML recipe for a benchmark run: which scenarios, which suite, parameter overrides, seeds.

Example::

    suite: quick
    scenarios: [assets.check, "caesar.*"]
    params:
      assets.check: {models: false}
    seeds: [0, 1]
    workers: 2          # cells of grid scenarios in 2 local processes (default 1: in-process)
    ray: null           # or "local" / a Ray cluster address: cells as Ray tasks
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import Field

from aisec.config import StrictModel, load_recipe

__all__ = ["BenchRecipe", "load_bench_recipe"]


class BenchRecipe(StrictModel):
    suite: Literal["quick", "full"] = "quick"
    scenarios: list[str] = Field(default_factory=list)
    params: dict[str, dict[str, Any]] = Field(default_factory=dict)
    seeds: list[int] | None = None
    workers: int = Field(default=1, ge=1)
    ray: str | None = None


def load_bench_recipe(path: str | os.PathLike[str]) -> BenchRecipe:
    return load_recipe(BenchRecipe, path)
