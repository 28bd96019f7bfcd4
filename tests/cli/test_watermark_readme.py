"""The README's GaussMarker quick start runs as written and reaches the GNR and fuser path."""

from __future__ import annotations

import glob
import json
import shlex
from pathlib import Path

import pytest

from aisec.cli.main import main

README = Path(__file__).resolve().parents[2] / "README.md"
HEADING = "#### Quick start: the public demo key"


def quickstart_commands() -> list[list[str]]:
    text = README.read_text(encoding="utf-8")
    start = text.index(HEADING)
    block = text[text.index("```bash", start) + len("```bash") : text.index("```\n", start + 10)]
    return [shlex.split(line, comments=True) for line in block.strip().splitlines()]


def test_readme_quickstart_names_the_demo_key_and_the_shipped_gnr() -> None:
    cmds = quickstart_commands()
    assert all(c[0] == "aisec" for c in cmds)
    assert ["keygen", "--demo"] == cmds[0][2:4]
    assert cmds[-1][1:3] == ["watermark", "detect"] and "--gnr" in cmds[-1]


def test_readme_quickstart_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    torch.set_num_threads(1)
    monkeypatch.chdir(tmp_path)
    cmds = quickstart_commands()
    for i, argv in enumerate(cmds[:-1]):
        # The README's commands draw fresh images each run. At the fuser's calibrated 1 % FPR
        # (measured 1.7 %: 10 of 600 fresh clean images) two or more of 8 clean images were
        # flagged in about 7e-3 of runs; a seed per generate command makes the test one fixed
        # draw (marked scores >= 4.77, clean <= 0.32, threshold 1.35), the commands otherwise
        # as written.
        if argv[2] == "generate":
            argv = [*argv, "--seed", str(i)]
        assert main(argv[1:]) == 0, argv
    last = [a for arg in cmds[-1][1:] for a in (sorted(glob.glob(arg)) or [arg])]
    capsys.readouterr()
    assert main([*last, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    n = len(glob.glob("wm/*.png"))
    assert n >= 4 and len(rows) == 2 * n
    # The full detector: GNR margin among the statistics, the fuser's calibrated threshold.
    assert all("gnr_margin" in r["statistics"] and r["demo_key"] for r in rows)
    assert sum(r["watermarked"] for r in rows[:n]) == n
    assert sum(r["watermarked"] for r in rows[n:]) <= 1
