from __future__ import annotations

import json

import pytest

from aisec.bench import Result, Series, runner
from aisec.bench.scenario import SCENARIOS, Scenario
from aisec.errors import ParameterError, UnknownNameError
from aisec.metrics import rate

CALLS: list[int] = []


def _ok(params, ctx):
    CALLS.append(ctx.seed)
    ctx.report(0.5, "half")
    return Result(
        metrics={"acc": rate(params["k"], 10), "x": float("nan")},
        labels={"method": "m"},
        breakdown=[{"labels": {"d": "rot"}, "metrics": {"acc": 0.5}}],
        series={"curve": [Series([0, 1], [0, 1], "a", "b", "m")]},
        notes=["n"],
    )


def _fail(params, ctx):
    raise RuntimeError("boom\nsecond line")


def _scen(name, fn, **kw):
    return Scenario(name, fn, "testsys", {"k": 3}, {"k": 7}, ("quick", "full"), (0, 1), (0,), "d")


def test_rows_metrics_failures_and_resume(tmp_path):
    ok, bad = _scen("t.ok", _ok), _scen("t.bad", _fail)
    CALLS.clear()
    run_dir, rows = runner.run([ok, bad], suite="quick", out_dir=tmp_path, show_progress=False)
    assert [r["status"] for r in rows] == ["ok", "ok", "error", "error"]
    r0 = rows[0]
    assert r0["metrics"]["acc"]["value"] == 0.3 and r0["metrics"]["acc"]["ci_low"] < 0.3
    assert r0["metrics"]["x"] is None  # NaN is not valid JSON
    assert (
        r0["params"] == {"k": 3} and r0["timings"]["seconds"] >= 0 and "python" in r0["environment"]
    )
    assert rows[2]["error"] == "RuntimeError: boom second line"
    lines = (tmp_path / "rows.jsonl").read_text().splitlines()
    assert len(lines) == 4 and all(json.loads(line) for line in lines)
    assert (tmp_path / "run.yaml").exists()
    # resume: finished rows are skipped, failed ones retried
    CALLS.clear()
    _, rows2 = runner.run([ok, bad], suite="quick", out_dir=tmp_path, show_progress=False)
    assert CALLS == [] and len(rows2) == 4
    assert len((tmp_path / "rows.jsonl").read_text().splitlines()) == 6
    # a different suite means different params: run again
    _, rows3 = runner.run([ok], suite="full", out_dir=tmp_path, show_progress=False)
    assert CALLS == [0] and rows3[0]["params"] == {"k": 7}


def test_torn_last_line_is_ignored(tmp_path):
    runner.run([_scen("t.ok", _ok)], suite="quick", out_dir=tmp_path, show_progress=False)
    with open(tmp_path / "rows.jsonl", "a") as fh:
        fh.write('{"scenario": "t.ok", "trunc')
    assert len(runner.read_rows(tmp_path)) == 2


def test_overrides_validated():
    s = _scen("t.ok", _ok)
    assert runner.plan([s], "quick", {"t.ok": {"k": 5}})[0].params == {"k": 5}
    with pytest.raises(ParameterError, match="t.ok.kk"):
        runner.plan([s], "quick", {"t.ok": {"kk": 5}})
    with pytest.raises(ParameterError, match="selected scenario"):
        runner.plan([s], "quick", {"other": {"k": 5}})


def test_select_by_name_glob_system_and_unknown():
    assert runner.discover() == {}
    assert [s.name for s in runner.select(["assets.check"])] == ["assets.check"]
    assert [s.name for s in runner.select(["assets.*"])] == ["assets.check"]
    assert "assets.check" in [s.name for s in runner.select(["assets"])]
    with pytest.raises(UnknownNameError, match="valid:"):
        runner.select(["nope.nothing"])
    assert all("quick" in s.suites for s in runner.select(suite="quick"))
    assert "assets.check" in SCENARIOS


def test_headlines_are_evaluated_into_the_row(tmp_path):
    from aisec.bench import Headline

    hl = (
        Headline("acc", ">= 0.25", "accuracy"),
        Headline("acc", "> base"),
        Headline("acc", "< base"),
        Headline("missing", ">= 1"),
        Headline("acc"),
    )

    def fn(params, ctx):
        return Result(metrics={"acc": rate(3, 10), "base": 0.2})

    s = Scenario("t.head", fn, "testsys", {}, {}, ("quick",), (0,), (0,), "", hl)
    _, rows = runner.run([s], suite="quick", out_dir=tmp_path, show_progress=False)
    got = [(h["value"], h["reference"], h["met"]) for h in rows[0]["headline"]]
    assert got == [
        (0.3, 0.25, True),
        (0.3, 0.2, True),
        (0.3, 0.2, False),
        (None, 1.0, None),
        (0.3, None, None),
    ]
    assert rows[0]["headline"][0]["label"] == "accuracy"
    # a failed row keeps its headlines, unevaluated
    bad = Scenario("t.bad", _fail, "testsys", {}, {}, ("quick",), (0,), (0,), "", hl[:1])
    _, rows = runner.run([bad], suite="quick", out_dir=tmp_path, show_progress=False)
    assert rows[0]["headline"][0]["met"] is None and rows[0]["headline"][0]["value"] is None


def test_headline_target_syntax_is_checked():
    from aisec.bench import Headline

    for bad in ("10", "=> 10", ">=", "about 10"):
        with pytest.raises(ParameterError, match="Headline.target"):
            Headline("x", bad)
    with pytest.raises(ParameterError, match="headline"):
        from aisec.bench import scenario

        scenario("t.never", system="t", headline=["x >= 1"])
