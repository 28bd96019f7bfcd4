"""Scenario ``assets.check``: every embedded asset loads and runs one real read or forward pass."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aisec.bench import BenchContext, Headline, Result, Series, scenario
from aisec.metrics import rate


@scenario(
    "assets.check",
    system="assets",
    params={"models": True},
    description="Load every embedded asset and exercise it once",
    headline=[
        Headline(
            "loaded",
            target="== 1",
            label="assets loaded",
            why="README: every embedded asset loads and runs",
        )
    ],
)
def check_all(params: Mapping[str, Any], ctx: BenchContext) -> Result:
    from aisec.assets import ASSETS, check_asset

    specs = [ASSETS.get(n) for n in ASSETS.names()]
    specs = [s for s in specs if s.embedded and (params["models"] or s.kind != "model")]
    results = []
    for i, spec in enumerate(specs):
        ctx.report(i / len(specs), spec.name)
        results.append(check_asset(spec))
    ok = sum(r["status"] == "ok" for r in results)
    failed = [f"{r['name']}: {r['error']}" for r in results if r["status"] != "ok"]
    if failed:
        raise RuntimeError(f"{len(failed)} asset(s) failed: " + "; ".join(failed))
    return Result(
        metrics={"loaded": rate(ok, len(results)), "seconds": sum(r["seconds"] for r in results)},
        breakdown=[
            {
                "labels": {"asset": r["name"], "kind": r["kind"]},
                "metrics": {"seconds": r["seconds"], "status": r["status"]},
                "detail": r["detail"],
            }
            for r in results
        ],
        series={
            "load seconds": [
                Series(
                    x=list(range(len(results))),
                    y=[r["seconds"] for r in results],
                    xlabel="asset",
                    ylabel="seconds",
                    label="load + check",
                    kind="bar",
                    xticklabels=tuple(r["name"] for r in results),
                )
            ]
        },
    )
