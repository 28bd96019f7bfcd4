"""Scenario ``cli.help_time``: how long ``aisec --help`` takes, against a bare interpreter.

The README promises that ``aisec --help`` answers in well under a second and imports no heavy
library; timing belongs in a benchmark row, not in a test. Each command runs in a fresh process;
the median of ``repeats`` runs is reported, with a bare ``python -c pass`` measured side by side.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Mapping
from typing import Any

from aisec.bench import BenchContext, Headline, Result, scenario

_HEAVY = ("torch", "transformers", "diffusers", "sklearn", "matplotlib")
_PROBE = (
    "import sys; from aisec.cli.main import main; rc = main(['--help']); "
    "print('HEAVY=' + ','.join(m for m in {heavy!r} if m in sys.modules))"
)


def _wall(cmd: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    seconds = time.perf_counter() - t0
    if out.returncode != 0:
        tail = " ".join(out.stderr.split())[-300:]
        raise RuntimeError(f"{' '.join(cmd[-2:])} exited {out.returncode}: {tail}")
    return seconds, out.stdout


@scenario(
    "cli.help_time",
    system="cli",
    params={"repeats": 5, "target_s": 1.0, "commands": [["--help"], ["bench", "run", "--help"]]},
    description="Wall time of `aisec --help` (fresh process, median) against a bare interpreter",
    headline=[
        Headline(
            "help_over_target",
            "<= 1",
            "--help / target",
            "x",
            why="README: `aisec --help` answers in well under a second (target_s)",
        ),
        Headline(
            "heavy_modules_imported",
            "== 0",
            "heavy imports",
            why="the CLI is lazy: --help imports no torch, transformers, diffusers, sklearn",
        ),
    ],
)
def help_time(params: Mapping[str, Any], ctx: BenchContext) -> Result:
    repeats = int(params["repeats"])
    if repeats < 1:
        from aisec.errors import ParameterError

        raise ParameterError("cli.help_time.repeats", "must be >= 1", repeats)
    aisec = [sys.executable, "-m", "aisec.cli.main"]
    bare = statistics.median(_wall([sys.executable, "-c", "pass"])[0] for _ in range(repeats))
    breakdown: list[dict[str, Any]] = []
    for i, args in enumerate(params["commands"]):
        ctx.report(i / len(params["commands"]), " ".join(args))
        med = statistics.median(_wall([*aisec, *args])[0] for _ in range(repeats))
        breakdown.append(
            {
                "labels": {"command": "aisec " + " ".join(args)},
                "metrics": {"median_s": med, "minus_interpreter_s": med - bare},
            }
        )
    _, out = _wall([sys.executable, "-c", _PROBE.format(heavy=_HEAVY)])
    heavy = [m for m in out.strip().splitlines()[-1].removeprefix("HEAVY=").split(",") if m]
    top = breakdown[0]["metrics"]["median_s"]
    return Result(
        metrics={
            "help_s": top,
            "help_over_target": top / float(params["target_s"]),
            "interpreter_s": bare,
            "help_minus_interpreter_s": top - bare,
            "slowest_help_s": max(b["metrics"]["median_s"] for b in breakdown),
            "heavy_modules_imported": len(heavy),
        },
        labels={"heavy_modules": ",".join(heavy) or "none"},
        breakdown=breakdown,
        notes=[
            f"median of {repeats} fresh processes each; target {params['target_s']:g} s; "
            "interpreter_s: `python -c pass` measured in the same row",
        ],
    )
