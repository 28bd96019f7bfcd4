from __future__ import annotations

import json
import os
import subprocess
import sys

import click

from aisec.cli.main import cli, main

AISEC = [sys.executable, "-m", "aisec.cli.main"]


def _walk(group: click.Group, ctx: click.Context, prefix: list[str]):
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        yield prefix + [name]
        if isinstance(cmd, click.Group):
            yield from _walk(cmd, click.Context(cmd, parent=ctx, info_name=name), prefix + [name])


def all_commands() -> list[list[str]]:
    return list(_walk(cli, click.Context(cli, info_name="aisec"), []))


def test_every_command_has_help(capsys):
    cmds = all_commands()
    assert ["bench", "run"] in cmds and ["assets", "check"] in cmds and ["report"] in cmds
    for path in cmds:
        assert main([*path, "--help"]) == 0, path
        out = capsys.readouterr().out
        assert "Usage:" in out, path


def test_top_level_help_imports_no_torch():
    # its wall time is a bench row (cli.help_time), not a test assertion
    code = (
        "import sys; from aisec.cli.main import main; rc = main(['--help']); "
        "print('TORCH' if 'torch' in sys.modules else 'NOTORCH')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "NOTORCH"


def test_version_and_exit_codes(tmp_path, capsys):
    assert main(["--version"]) == 0
    assert main(["no-such-command"]) == 2
    capsys.readouterr()
    assert main(["bench", "run", "no.such.scenario", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert (
        "unknown scenario 'no.such.scenario'; valid:" in err and len(err.strip().splitlines()) == 1
    )
    assert main(["report", str(tmp_path / "missing")]) == 2
    recipe = tmp_path / "r.yaml"
    recipe.write_text("suite: quick\nscenarioz: [assets.check]\n")
    assert main(["bench", "run", "--recipe", str(recipe), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "`scenarioz` is not a known key" in err
    assert (
        main(
            [
                "bench",
                "run",
                "assets.check",
                "--set",
                "assets.check.modelz=1",
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "assets.check.modelz" in capsys.readouterr().err
    assert main(["list", "nope"]) == 2


def test_list_registries_json(capsys):
    assert main(["list", "--format", "json"]) == 0
    regs = {r["registry"]: r["entries"] for r in json.loads(capsys.readouterr().out)}
    assert regs["asset"] >= 15 and regs["scenario"] >= 1
    assert main(["list", "asset", "--format", "json"]) == 0
    names = [r["name"] for r in json.loads(capsys.readouterr().out)]
    assert "adult-a9a" in names and "smollm2-135m-instruct" in names


def test_assets_list_json(capsys):
    assert main(["assets", "list", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    by = {r["name"]: r for r in rows}
    assert by["movielens-100k"]["redistributable"] is False
    assert all(r["available"] for r in rows), [r for r in rows if not r["available"]]
    assert by["smollm2-135m-instruct"]["bytes"] > 90e6


def test_assets_check_json_all_ok():
    out = subprocess.run(
        [*AISEC, "assets", "check", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    rows = json.loads(out.stdout)
    assert len(rows) >= 17 and all(r["status"] == "ok" for r in rows)


def test_bench_run_json_and_report(tmp_path):
    out = subprocess.run(
        [
            *AISEC,
            "bench",
            "run",
            "assets.check",
            "--set",
            "assets.check.models=false",
            "--out",
            str(tmp_path),
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    doc = json.loads(out.stdout)  # exactly one JSON document
    assert doc["run_dir"] == str(tmp_path) and len(doc["rows"]) == 1
    assert doc["rows"][0]["status"] == "ok" and doc["rows"][0]["params"] == {"models": False}
    assert (tmp_path / "report.html").exists() and (tmp_path / "report.md").exists()


def test_json_mode_keeps_native_writes_off_stdout():
    code = (
        "import os; from aisec.cli.main import _json_stdout\n"
        "with _json_stdout(True):\n"
        "    os.write(1, b'native library noise\\n'); print('{\"a\": 1}')\n"
        "print('after')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == '{"a": 1}\nafter\n'
    assert "native library noise" in out.stderr


def _strict_json(text: str):
    def refuse(name):
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_json_output_writes_null_for_nan(capsys):
    import numpy as np

    from aisec.cli.common import emit

    emit({"x": float("nan"), "y": [float("inf")], "z": np.float64("nan"), "ok": 1.5}, "json")
    assert _strict_json(capsys.readouterr().out) == {"x": None, "y": [None], "z": None, "ok": 1.5}


def test_bench_json_and_rows_hold_no_nan(tmp_path, capsys, monkeypatch):
    from aisec.bench import Headline, Result, runner
    from aisec.bench.scenario import Scenario

    def nan_metrics(params, ctx):
        return Result(metrics={"auc": float("nan"), "n": 3}, notes=[])

    scen = Scenario(
        "t.nan", nan_metrics, "t", {}, {}, ("quick",), (0,), (0,), "", (Headline("auc", ">= 0.5"),)
    )
    monkeypatch.setattr(runner, "select", lambda names, suite: [scen])
    rc = main(["bench", "run", "t.nan", "--out", str(tmp_path), "--format", "json", "--no-report"])
    assert rc == 0
    doc = _strict_json(capsys.readouterr().out)
    row = doc["rows"][0]
    assert row["metrics"]["auc"] is None and row["headline"][0]["value"] is None
    assert row["headline"][0]["met"] is None
    for line in (tmp_path / "rows.jsonl").read_text().splitlines():
        _strict_json(line)


# Each planned system, the package that holds it once built, and its command.
_PLANNED = {
    "SeSoRec": ("privacy/sesorec", "sesorec"),
    "HashVFL": ("privacy/vfl", "vfl"),
    "VideoMarkBench": ("provenance/video", "videomark"),
    "OML": ("provenance/fingerprint", "fingerprint"),
    "EnchTable": ("safety/enchtable", "enchtable"),
}


def test_help_and_package_docstrings_mark_what_is_not_built(capsys):
    import importlib
    from pathlib import Path

    import aisec

    root = Path(aisec.__file__).parent
    assert main(["--help"]) == 0
    text = capsys.readouterr().out.partition("Options:")[0]
    working, _, coming = text.partition("Not built yet:")
    commands = {c[0] for c in all_commands()}
    for name, (_package, cmd) in _PLANNED.items():
        if cmd in commands:  # built: named with its command, never as coming
            assert f"({cmd})" in working and name not in coming, name
        else:
            assert name in coming and name not in working, name
    for pkg in ("aisec", "aisec.privacy", "aisec.provenance", "aisec.safety"):
        doc = importlib.import_module(pkg).__doc__ or ""
        built, _, later = doc.partition("Not built yet:")
        for name, (package, _cmd) in _PLANNED.items():
            exists = (root / package / "__init__.py").exists()
            assert not (name in built and not exists), f"{pkg} names {name}, which is not built"
            assert not (name in later and exists), f"{pkg} says {name} is not built, but it is"


def test_bench_precedence_defaults_recipe_set_flags(tmp_path, capsys, monkeypatch):
    from aisec.bench import Result, runner
    from aisec.bench.scenario import Scenario

    scen = Scenario(
        "t.prec",
        lambda p, ctx: Result(metrics={"k": p["k"]}),
        "t",
        {"k": 1, "j": 0},
        {"k": 2},
        ("quick", "full"),
        (0,),
        (0,),
        "",
    )
    monkeypatch.setattr(runner, "select", lambda names, suite: [scen])
    recipe = tmp_path / "r.yaml"
    recipe.write_text("suite: full\nscenarios: [t.prec]\nparams:\n  t.prec: {k: 5, j: 3}\n")

    def run(*extra):
        out = tmp_path / f"o{len(list(tmp_path.iterdir()))}"
        assert (
            main(
                [
                    "bench",
                    "run",
                    "--recipe",
                    str(recipe),
                    "--out",
                    str(out),
                    "--format",
                    "json",
                    "--no-report",
                    *extra,
                ]
            )
            == 0
        )
        row = json.loads(capsys.readouterr().out)["rows"][0]
        return row["suite"], row["params"]

    assert run() == ("full", {"k": 5, "j": 3})  # the recipe beats the suite's defaults
    assert run("--set", "t.prec.k=7") == ("full", {"k": 7, "j": 3})  # --set beats the recipe
    assert run("--suite", "quick") == ("quick", {"k": 5, "j": 3})  # a flag beats the recipe
    assert main(["bench", "run", "t.prec", "--set", "t.k=1", "--out", str(tmp_path / "x")]) == 2
    assert "SCENARIO.PARAM=VALUE for a selected scenario (t.prec)" in capsys.readouterr().err


def test_bench_list_shows_headline_targets_within_80_columns(capsys):
    assert main(["bench", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert all(len(line) < 80 for line in lines)
    assert any(line.startswith("caesar.vs_secureml") and ">= 10x" in line for line in lines)
    assert main(["bench", "list", "--format", "json"]) == 0
    by = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert by["certify.smoothing"]["headline"][0] == {
        "metric": "abstain_triggered",
        "target": ">= 0.5",
        "label": "trig. abstain",
        "unit": "",
        "why": by["certify.smoothing"]["headline"][0]["why"],
    }
