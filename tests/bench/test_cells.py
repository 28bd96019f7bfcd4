"""Grids of independent cells (bench.cells): in-process, local processes, Ray; resumable."""

from __future__ import annotations

import importlib
import sys
import textwrap

import pytest

from aisec.bench.cells import Executor, run_cells
from aisec.errors import ParameterError

_MODULE = '''
import os


def cell(base, scale, x):
    """A deterministic cell: its value and the process that computed it."""
    return {"value": base + scale * x, "pid": os.getpid()}


def scaled(obj, x):
    return {"value": obj.scale * x}


def local_object(scale):
    class Local:  # plain pickle cannot carry a class defined in a function; cloudpickle can
        pass

    obj = Local()
    obj.scale = scale
    return obj


def broken(x):
    return [x]
'''


@pytest.fixture
def demo(tmp_path, monkeypatch):
    """A module the spawned workers can import by name (they inherit sys.path)."""
    name = f"aisec_cells_demo_{abs(hash(str(tmp_path))) % 10**8}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    mod = importlib.import_module(name)
    yield mod
    sys.modules.pop(name, None)


def _values(rows):
    return {c: r["value"] for c, r in rows.items()}


def test_in_process_and_local_processes_give_the_same_rows(demo, tmp_path):
    cells = [(f"x={x}", (x,)) for x in range(4)]
    here = run_cells(demo.cell, cells, (10, 3))
    procs = run_cells(demo.cell, cells, (10, 3), executor=Executor(workers=2))
    assert _values(here) == _values(procs) == {f"x={x}": 10 + 3 * x for x in range(4)}
    import os

    assert {r["pid"] for r in here.values()} == {os.getpid()}
    assert os.getpid() not in {r["pid"] for r in procs.values()}
    assert all(r["id"] == c for c, r in procs.items())


def test_shared_objects_of_local_classes_reach_the_worker_processes(demo):
    pytest.importorskip("cloudpickle")
    cells = [("a", (2,)), ("b", (3,))]
    rows = run_cells(demo.scaled, cells, (demo.local_object(5),), executor=Executor(workers=2))
    assert _values(rows) == {"a": 10, "b": 15}


def test_a_stored_cell_is_not_recomputed_unless_the_fingerprint_changes(demo, tmp_path):
    store = tmp_path / "cells.jsonl"
    cells = [("a", (1,)), ("b", (2,))]
    first = run_cells(demo.cell, cells[:1], (0, 1), store=store, fingerprint="f1")
    seen = []
    progress = lambda f, c: seen.append((f, c))  # noqa: E731
    both = run_cells(demo.cell, cells, (0, 1), store=store, fingerprint="f1", progress=progress)
    assert both["a"] == first["a"] and seen == [(1.0, "b")]  # only "b" ran
    shared_calls = []

    def lazy():
        shared_calls.append(1)
        return (0, 1)

    again = run_cells(demo.cell, cells, lazy, store=store, fingerprint="f1")
    assert _values(again) == {"a": 1, "b": 2} and shared_calls == []  # nothing left to run
    other = run_cells(demo.cell, cells, (5, 1), store=store, fingerprint="f2")
    assert _values(other) == {"a": 6, "b": 7}
    assert len(store.read_text().splitlines()) == 4


def test_bad_cells_and_executors_are_one_line_errors(demo):
    with pytest.raises(ParameterError, match="distinct ids"):
        run_cells(demo.cell, [("a", (1,)), ("a", (2,))], (0, 1))
    with pytest.raises(ParameterError, match="workers"):
        Executor(workers=0)
    with pytest.raises(TypeError, match="non-dict"):
        run_cells(demo.broken, [("a", (1,))])
    assert Executor().describe() == "in-process"
    assert Executor(workers=3).describe() == "3 processes"
    assert Executor(ray="ray://head:10001").describe() == "ray:ray://head:10001"


def test_the_bench_runner_hands_its_executor_to_the_scenario(tmp_path):
    from aisec.bench import Result, Scenario
    from aisec.bench.runner import run

    seen = []

    def fn(params, ctx):
        seen.append(ctx.executor)
        return Result(metrics={"n": params["n"]})

    # not registered: the global registry (and the quick suite) stays as it is
    s = Scenario("cellsdemo.executor", fn, "cellsdemo", {"n": 2}, {}, ("quick",), (0,), (0,), "")
    _, rows = run(
        [s],
        out_dir=tmp_path,
        show_progress=False,
        third_party_log=False,
        executor=Executor(workers=2),
    )
    assert rows[0]["status"] == "ok" and rows[0]["executor"] == "2 processes"
    assert seen == [Executor(workers=2)]
    _, rows = run([s], out_dir=tmp_path / "b", show_progress=False, third_party_log=False)
    assert rows[0]["executor"] == "in-process" and seen[-1] == Executor()


@pytest.mark.slow
def test_cells_on_a_local_ray_instance_match_the_local_run(demo, tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    import os

    # Ray's workers import the cell function by name: the local instance inherits PYTHONPATH
    path = os.pathsep.join(p for p in (str(tmp_path), os.environ.get("PYTHONPATH")) if p)
    monkeypatch.setenv("PYTHONPATH", path)
    cells = [(f"x={x}", (x,)) for x in range(3)]
    local = run_cells(demo.cell, cells, (1, 2))
    store = tmp_path / "cells.jsonl"
    on_ray = run_cells(
        demo.cell, cells, (1, 2), store=store, executor=Executor(workers=1, ray="local")
    )
    assert _values(on_ray) == _values(local)
    assert os.getpid() not in {r["pid"] for r in on_ray.values()}
    assert not ray.is_initialized()  # the instance run_cells started is shut down
    assert len(store.read_text().splitlines()) == 3


def test_recipe_and_cli_take_workers_and_a_ray_address(tmp_path):
    from click.testing import CliRunner

    from aisec.bench.recipe import load_bench_recipe
    from aisec.cli.main import cli

    (tmp_path / "r.yaml").write_text("scenarios: [assets.check]\nworkers: 2\nray: auto\n")
    r = load_bench_recipe(tmp_path / "r.yaml")
    assert (r.workers, r.ray) == (2, "auto")
    (tmp_path / "bad.yaml").write_text("workers: 0\n")
    with pytest.raises(Exception, match="workers"):
        load_bench_recipe(tmp_path / "bad.yaml")
    out = CliRunner().invoke(cli, ["bench", "run", "--help"]).output
    assert "--workers" in out and "--ray" in out
