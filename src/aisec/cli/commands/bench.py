"""``aisec bench``: run benchmark scenarios (default: the quick suite) and print a scorecard."""

from __future__ import annotations

import sys
from typing import Any

import click

from aisec.cli.common import emit, executor_options, format_option


def _scenario_sets(items: tuple[str, ...], names: list[str]) -> dict[str, dict[str, Any]]:
    """``--set SCENARIO.PARAM=VALUE`` items, parsed by :func:`aisec.config.parse_overrides` alone
    (values read as YAML scalars), as ``{scenario: {param: value}}``.

    Scenario names hold dots themselves, so the key path is split after the first prefix that
    names one of ``names`` (the selected scenarios).
    """
    from aisec.config import apply_overrides, parse_overrides
    from aisec.errors import ParameterError

    out: dict[str, dict[str, Any]] = {}
    for item in items:
        node: Any = parse_overrides([item])
        path: list[str] = []
        while isinstance(node, dict) and len(node) == 1 and ".".join(path) not in names:
            key, node = next(iter(node.items()))
            path.append(key)
        scen = ".".join(path)
        if scen not in names or not isinstance(node, dict) or not node:
            raise ParameterError(
                "--set",
                f"must look like SCENARIO.PARAM=VALUE for a selected scenario "
                f"({', '.join(sorted(names))})",
                item,
            )
        out[scen] = apply_overrides(out.get(scen, {}), node)
    return out


def _print_scorecard(rows: list[dict[str, Any]], run_dir: str, report: str | None) -> None:
    """One line per row (headline, value, target, verdict, status), each under 80 columns."""
    from aisec.report import scorecard_lines, system_summary
    from aisec.report.scorecard import verdict

    lines = scorecard_lines(rows)
    click.secho(lines[0], bold=True)
    for r, line in zip(rows, lines[1:], strict=True):
        v = verdict(r)
        colour = (
            "red"
            if r.get("status") != "ok"
            else "yellow"
            if v.startswith("missed")
            else "green"
            if v.startswith("met")
            else None
        )
        click.secho(line, fg=colour)
    ok = sum(r.get("status") == "ok" for r in rows)
    totals = {k: sum(s[k] for s in system_summary(rows)) for k in ("met", "missed", "n/a")}
    click.echo(
        f"{ok}/{len(rows)} rows ok; targets: {totals['met']} met, {totals['missed']} missed, "
        f"{totals['n/a']} n/a"
    )
    click.echo(f"rows: {run_dir}/rows.jsonl")
    if report:
        click.echo(f"report: {report}")
    log = _third_party_log(run_dir)
    if log:
        click.echo(f"other libraries' output: {log}")


def _third_party_log(run_dir: str) -> str | None:
    """The run's third-party log when something besides the run headers landed in it."""
    from pathlib import Path

    from aisec.bench.runner import LOG_FILE

    path = Path(run_dir) / LOG_FILE
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    return str(path) if any(not ln.startswith("--- aisec bench") for ln in lines) else None


def _run(
    names: tuple[str, ...],
    suite: str,
    out: str | None,
    fmt: str,
    sets: tuple[str, ...],
    seeds: tuple[int, ...],
    report: bool,
    fresh: bool,
    recipe: str | None = None,
    suite_given: bool = False,
    workers: int | None = None,
    ray: str | None = None,
) -> None:
    """Precedence: scenario defaults < suite < recipe < ``--set`` < flags (``--suite``,
    ``--seed``, named scenarios)."""
    import os
    import time
    from pathlib import Path

    from aisec.bench import runner
    from aisec.bench.cells import Executor
    from aisec.config import apply_overrides

    params: dict[str, Any] = {}
    if recipe is not None:
        from aisec.bench.recipe import load_bench_recipe

        r = load_bench_recipe(recipe)
        names = names or tuple(r.scenarios)
        suite = suite if suite_given else r.suite
        seeds = seeds or tuple(r.seeds or ())
        params = dict(r.params)
        workers = workers or r.workers
        ray = ray or r.ray
    executor = Executor(workers=workers or 1, ray=ray)
    errors = runner.discover()
    scenarios = runner.select(names, suite)
    overrides = apply_overrides(params, _scenario_sets(sets, [s.name for s in scenarios]))
    out_dir = Path(out or os.path.join("runs", suite))
    if fresh and (out_dir / runner.ROWS_FILE).exists():
        (out_dir / runner.ROWS_FILE).rename(out_dir / f"rows.jsonl.bak-{int(time.time())}")
    run_dir, rows = runner.run(
        scenarios,
        suite=suite,
        out_dir=out_dir,
        overrides=overrides,
        seeds=seeds or None,
        show_progress=fmt == "text" or sys.stderr.isatty(),
        discovery_errors=errors if not names else None,
        executor=executor,
    )
    if errors and not names:
        rows = [
            r
            for r in runner.latest_rows(runner.read_rows(run_dir))
            if r["scenario"].startswith("import:")
        ] + rows
    html_path = None
    if report:
        from aisec.bench.quiet import third_party_to_log
        from aisec.report import render_report

        # matplotlib may log (e.g. building its font cache on a fresh machine)
        with third_party_to_log(run_dir / runner.LOG_FILE):
            html_path, _ = render_report(run_dir)
    payload = {
        "run_dir": str(run_dir),
        "report": str(html_path) if html_path else None,
        "rows": rows,
        "third_party_log": _third_party_log(str(run_dir)),
    }
    emit(payload, fmt, lambda p: _print_scorecard(p["rows"], p["run_dir"], p["report"]))
    if any(r.get("status") != "ok" for r in rows):
        raise SystemExit(1)


_common = [
    click.option(
        "--suite",
        type=click.Choice(["quick", "full"]),
        default="quick",
        show_default=True,
        help="Suite to run when no scenario is named.",
    ),
    click.option(
        "--out",
        type=click.Path(file_okay=False),
        default=None,
        help="Run directory (default runs/SUITE); rerunning into it skips finished rows.",
    ),
    format_option,
    click.option(
        "--set",
        "sets",
        multiple=True,
        metavar="SCENARIO.PARAM=VALUE",
        help="Override a scenario parameter (repeatable).",
    ),
    click.option(
        "--seed", "seeds", multiple=True, type=int, help="Seeds (default: the scenario's)."
    ),
    click.option(
        "--report/--no-report",
        default=True,
        show_default=True,
        help="Render report.html and report.md into the run directory.",
    ),
    click.option("--fresh", is_flag=True, help="Set aside finished rows and run everything again."),
    executor_options(default_workers=None),
]


def _with_common(f: Any) -> Any:
    for opt in reversed(_common):
        f = opt(f)
    return f


@click.group("bench", invoke_without_command=True)
@_with_common
@click.pass_context
def command(
    ctx: click.Context,
    suite: str,
    out: str | None,
    fmt: str,
    sets: tuple[str, ...],
    seeds: tuple[int, ...],
    report: bool,
    fresh: bool,
    workers: int | None,
    ray: str | None,
) -> None:
    """Benchmarks. Without a subcommand: run the SUITE on the embedded defaults and report."""
    if ctx.invoked_subcommand is None:
        given = _given(ctx, "suite")
        _run((), suite, out, fmt, sets, seeds, report, fresh, None, given, workers, ray)


def _given(ctx: click.Context, name: str) -> bool:
    """Whether the user set option ``name`` (on the command line or in the environment)."""
    from click.core import ParameterSource

    return ctx.get_parameter_source(name) in (
        ParameterSource.COMMANDLINE,
        ParameterSource.ENVIRONMENT,
    )


@command.command("run")
@click.argument("scenarios", nargs=-1)
@click.option(
    "--recipe",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="YAML recipe: suite, scenarios, params (per scenario), seeds.",
)
@_with_common
def run_cmd(
    scenarios: tuple[str, ...],
    recipe: str | None,
    suite: str,
    out: str | None,
    fmt: str,
    sets: tuple[str, ...],
    seeds: tuple[int, ...],
    report: bool,
    fresh: bool,
    workers: int | None,
    ray: str | None,
) -> None:
    """Run SCENARIOS (names, globs like 'caesar.*', or system names), else the whole SUITE.

    Writes one JSONL row per (scenario, seed) to OUT/rows.jsonl; exits 1 if any row failed.
    Precedence: scenario defaults < suite < --recipe < --set < flags (--suite, --seed, names).
    Scenarios made of independent cells (e.g. videomark.nobox) run them in --workers local
    processes or on the Ray cluster at --ray; finished cells are kept, so a rerun resumes.
    """
    ctx = click.get_current_context()
    given = _given(ctx, "suite")
    _run(scenarios, suite, out, fmt, sets, seeds, report, fresh, recipe, given, workers, ray)


@command.command("list")
@click.option("--suite", type=click.Choice(["quick", "full"]), default=None)
@format_option
def list_cmd(suite: str | None, fmt: str) -> None:
    """List registered scenarios: suites and headline targets (json: also params, seeds)."""
    from aisec.bench import SCENARIOS
    from aisec.bench.runner import discover

    errors = discover()
    items = [SCENARIOS.get(n) for n in SCENARIOS.names()]
    data = [
        {
            "name": s.name,
            "system": s.system,
            "suites": list(s.suites),
            "seeds": list(s.seeds),
            "params": dict(s.params),
            "full_params": dict(s.full_params),
            "description": s.description,
            "headline": [h.to_dict() for h in s.headline],
        }
        for s in items
        if suite is None or suite in s.suites
    ]

    def text(rows: list[dict[str, Any]]) -> None:
        click.echo(f"{'scenario':<27} {'suites':<10} headline targets")
        for r in rows:
            heads = "; ".join(
                f"{h['label'] or h['metric']} {h['target']}{h['unit'] if h['target'] else ''}".strip()
                for h in r["headline"]
            )
            line = f"{r['name']:<27} {','.join(r['suites']):<10} {heads}"
            click.echo(line if len(line) < 80 else line[:78] + "…")
        for mod, err in errors.items():
            click.echo(f"(scenario module {mod} failed to import: {err})", err=True)

    emit(data, fmt, text)
