"""Run scenarios and write one JSONL row per (scenario, seed); resumable.

Rows are appended to ``RUN_DIR/rows.jsonl`` through :class:`aisec.io.JsonlStore` (one fsynced
write per row, NaN written as null), so an interrupted run keeps what it finished; a rerun into
the same directory skips rows already ``ok`` for the same parameters and retries the failed
ones. The resolved run configuration is saved as ``run.yaml``; what other libraries print while
the scenarios run goes to ``third_party.log`` (:mod:`aisec.bench.quiet`).
"""

from __future__ import annotations

import fnmatch
import hashlib
import importlib
import json
import math
import os
import pkgutil
import platform
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from aisec import __version__
from aisec.bench.cells import Executor
from aisec.bench.quiet import LOG_FILE, third_party_to_log
from aisec.bench.scenario import SCENARIOS, SUITES, BenchContext, Result, Scenario, Series
from aisec.errors import ParameterError, UnknownNameError
from aisec.io import JsonlStore, atomic_write_text
from aisec.metrics.stats import Rate

__all__ = [
    "discover",
    "select",
    "run",
    "read_rows",
    "latest_rows",
    "RunPlan",
    "ROWS_FILE",
    "LOG_FILE",
]

ROWS_FILE = "rows.jsonl"


def discover() -> dict[str, str]:
    """Import every scenario module; returns {module: error} for those that failed to import."""
    import aisec.bench.scenarios as pkg

    failed: dict[str, str] = {}
    for m in pkgutil.iter_modules(pkg.__path__):
        if m.name.startswith("_"):
            continue
        try:
            importlib.import_module(f"{pkg.__name__}.{m.name}")
        except Exception as exc:  # one broken system must not hide the others
            failed[m.name] = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    return failed


def select(names: Iterable[str] = (), suite: str | None = None) -> list[Scenario]:
    """Scenarios by exact name, glob (``caesar.*``) or system name, else every one in ``suite``."""
    if suite is not None and suite not in SUITES:
        raise ParameterError("--suite", f"must be one of {', '.join(SUITES)}", suite)
    names = list(names)
    every = [SCENARIOS.get(n) for n in SCENARIOS.names()]
    if not names:
        return [s for s in every if (suite or "quick") in s.suites]
    chosen: list[Scenario] = []
    for pat in names:
        hits = [
            s for s in every if s.name == pat or s.system == pat or fnmatch.fnmatchcase(s.name, pat)
        ]
        if not hits:
            raise UnknownNameError("scenario", pat, SCENARIOS.names())
        chosen += [s for s in hits if s not in chosen]
    return chosen


def _clean(value: Any) -> Any:
    """JSON-safe copy: Rates become dicts, numpy scalars floats, NaN/inf None."""
    if isinstance(value, Rate):
        return _clean(value.to_dict())
    if isinstance(value, Series):
        return _clean(value.to_dict())
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return _clean(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return str(value)


def params_key(params: Mapping[str, Any]) -> str:
    blob = json.dumps(_clean(params), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def environment() -> dict[str, Any]:
    env: dict[str, Any] = {
        "aisec": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "numpy": np.__version__,
    }
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        env["torch"] = torch.__version__
        env["torch_threads"] = torch.get_num_threads()
        env["cuda"] = bool(torch.cuda.is_available())
    return env


def _row_key(row: Mapping[str, Any]) -> tuple[Any, Any, Any]:
    return (row.get("scenario"), row.get("seed"), row.get("params_key"))


def read_rows(run_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All rows of a run; a torn last line left by a crash is skipped (and logged)."""
    return JsonlStore(Path(run_dir) / ROWS_FILE, key=_row_key).rows()


def latest_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The last row per (scenario, seed, params), in first-seen order."""
    last: dict[tuple, dict[str, Any]] = {}
    for r in rows:
        last[_row_key(r)] = r
    return list(last.values())


@dataclass(frozen=True)
class RunPlan:
    scenario: Scenario
    seed: int
    params: dict[str, Any]

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.scenario.name, self.seed, params_key(self.params))


def plan(
    scenarios: list[Scenario],
    suite: str,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    seeds: Iterable[int] | None = None,
) -> list[RunPlan]:
    overrides = dict(overrides or {})
    unknown = set(overrides) - {s.name for s in scenarios}
    if unknown:
        raise ParameterError("--set", "must name a selected scenario", sorted(unknown)[0])
    out = []
    for s in scenarios:
        params = s.resolve(suite, overrides.get(s.name))
        for seed in tuple(seeds) if seeds is not None else s.seeds_for(suite):
            out.append(RunPlan(s, int(seed), params))
    return out


def _images(images: dict[str, Any], run_dir: Path) -> dict[str, str]:
    """Picture paths relative to the run directory, so a moved run directory still renders."""
    out: dict[str, str] = {}
    for name, path in images.items():
        path = Path(path).resolve()
        try:
            out[str(name)] = path.relative_to(run_dir.resolve()).as_posix()
        except ValueError:
            out[str(name)] = str(path)
    return out


def _run_one(
    p: RunPlan,
    suite: str,
    run_dir: Path,
    progress: Callable[[float, str], None],
    executor: Executor | None = None,
) -> dict[str, Any]:
    work = run_dir / "artifacts" / f"{p.scenario.name}-seed{p.seed}"
    work.mkdir(parents=True, exist_ok=True)
    ctx = BenchContext(
        seed=p.seed,
        suite=suite,
        work_dir=work,
        rng=np.random.default_rng(p.seed),
        progress=progress,
        executor=executor or Executor(),
    )
    started = datetime.now(UTC).isoformat(timespec="seconds")
    t0, c0 = time.perf_counter(), time.process_time()
    row: dict[str, Any] = {
        "scenario": p.scenario.name,
        "system": p.scenario.system,
        "seed": p.seed,
        "suite": suite,
        "params": _clean(p.params),
        "params_key": params_key(p.params),
        "description": p.scenario.description,
    }
    try:
        result = p.scenario.fn(dict(p.params), ctx)
        if not isinstance(result, Result):
            raise TypeError(f"scenario returned {type(result).__name__}, not bench.Result")
        row.update(
            status="ok",
            error=None,
            metrics=_clean(result.metrics),
            labels=_clean(result.labels),
            breakdown=_clean(result.breakdown),
            series={k: _clean(v if isinstance(v, list) else [v]) for k, v in result.series.items()},
            notes=list(result.notes),
            images=_images(result.images, run_dir),
        )
    except Exception as exc:  # a failed scenario still leaves its row
        row.update(
            status="error",
            error=f"{type(exc).__name__}: {' '.join(str(exc).split())}",
            traceback=traceback.format_exc(limit=8),
            metrics={},
            labels={},
            breakdown=[],
            series={},
            notes=[],
            images={},
        )
    row["headline"] = [h.evaluate(row["metrics"]) for h in p.scenario.headline]
    row["timings"] = {
        "seconds": round(time.perf_counter() - t0, 4),
        "cpu_seconds": round(time.process_time() - c0, 4),
    }
    row["started"] = started
    row["executor"] = ctx.executor.describe()
    row["environment"] = environment()
    return row


def run(
    scenarios: list[Scenario],
    *,
    suite: str = "quick",
    out_dir: str | os.PathLike[str],
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    seeds: Iterable[int] | None = None,
    show_progress: bool = True,
    discovery_errors: Mapping[str, str] | None = None,
    third_party_log: bool = True,
    executor: Executor | None = None,
) -> tuple[Path, list[dict[str, Any]]]:
    """Run ``scenarios``; returns (run_dir, the rows of this plan, old and new).

    ``executor`` says where scenarios that split into independent cells run them (local
    processes or a Ray cluster, :mod:`aisec.bench.cells`); it does not change the rows.

    With ``third_party_log`` (default), what other libraries write to stdout and stderr while
    the scenarios run (progress bars, warnings, native log lines) goes to
    ``RUN_DIR/third_party.log`` instead of the console; our progress stays on the console.
    """
    import yaml

    run_dir = Path(out_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    plans = plan(scenarios, suite, overrides, seeds)
    store = JsonlStore(run_dir / ROWS_FILE, key=_row_key)
    done = {k: r for k, r in store.latest().items() if r.get("status") == "ok"}
    atomic_write_text(
        run_dir / "run.yaml",
        yaml.safe_dump(
            {
                "suite": suite,
                "scenarios": [s.name for s in scenarios],
                "overrides": _clean(dict(overrides or {})),
                "seeds": list(seeds) if seeds else None,
                "aisec": __version__,
            },
            sort_keys=True,
        ),
    )

    rows: list[dict[str, Any]] = []
    todo = [p for p in plans if p.key not in done]
    store.append(
        {
            "scenario": f"import:{module}",
            "system": module,
            "seed": 0,
            "suite": suite,
            "params": {},
            "params_key": "",
            "status": "error",
            "metrics": {},
            "headline": [],
            "error": f"scenario module failed to import: {err}",
            "timings": {"seconds": 0},
        }
        for module, err in (discovery_errors or {}).items()
    )
    quiet = third_party_to_log(run_dir / LOG_FILE) if third_party_log else _Stderr()
    with quiet as console, _progress(show_progress, console) as prog:
        total = prog.add_task("bench", total=len(todo)) if prog else None
        for p in plans:
            if p.key in done:
                rows.append(done[p.key])
                continue
            label = _short(f"{p.scenario.name} (seed {p.seed})", 36)
            sub = prog.add_task(label, total=1.0) if prog else None

            def report(frac: float, msg: str = "", _sub: Any = sub, _label: str = label) -> None:
                if prog is not None:
                    text = _short(f"{_label} {msg}".strip(), 44)
                    prog.update(_sub, completed=frac, description=text)

            row = _run_one(p, suite, run_dir, report, executor)
            store.append([row])
            rows.append(row)
            if prog is not None:
                prog.update(sub, completed=1.0, visible=False)
                prog.advance(total)
    return run_dir, rows


def _short(text: str, width: int) -> str:
    """Our progress lines stay within 80 columns with the bar, percentage and clock."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


class _Stderr:
    def __enter__(self) -> TextIO:
        return sys.stderr

    def __exit__(self, *exc: object) -> None:
        return None


class _NoProgress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _progress(show: bool, console: TextIO) -> Any:
    if not show:
        return _NoProgress()
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    # No stdout/stderr redirection by rich: third-party writes go to the log, not through us.
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(bar_width=20),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=Console(file=console),
        transient=False,
        redirect_stdout=False,
        redirect_stderr=False,
    )
