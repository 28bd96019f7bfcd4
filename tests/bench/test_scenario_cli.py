from __future__ import annotations

from aisec.bench import runner
from aisec.bench.scenario import SCENARIOS


def test_cli_help_time_row_reports_ratio_to_target_and_no_heavy_imports(tmp_path):
    runner.discover()
    s = SCENARIOS.get("cli.help_time")
    overrides = {"cli.help_time": {"repeats": 1, "commands": [["--help"]], "target_s": 2.0}}
    _, rows = runner.run(
        [s], suite="quick", out_dir=tmp_path, overrides=overrides, show_progress=False
    )
    row = rows[0]
    assert row["status"] == "ok", row.get("error")
    m = row["metrics"]
    assert m["help_over_target"] == m["help_s"] / 2.0
    assert m["help_minus_interpreter_s"] == m["help_s"] - m["interpreter_s"]
    # `aisec --help` imports no heavy library: a correctness check, not a timing one
    assert m["heavy_modules_imported"] == 0 and row["labels"]["heavy_modules"] == "none"
    heads = {h["metric"]: h for h in row["headline"]}
    assert heads["heavy_modules_imported"]["met"] is True
    assert heads["help_over_target"]["target"] == "<= 1"
    assert [b["labels"]["command"] for b in row["breakdown"]] == ["aisec --help"]
