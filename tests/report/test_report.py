from __future__ import annotations

import shutil
import subprocess

import pytest

from aisec.bench import Result, Series, runner
from aisec.bench.scenario import Scenario
from aisec.errors import InputFileError
from aisec.metrics import rate
from aisec.report import format_metric, render_report


def _fn(params, ctx):
    return Result(metrics={"tpr_at_1fpr": rate(9, 10), "auc": 0.97},
                  breakdown=[{"labels": {"method": m, "distortion": "jpeg"},
                              "metrics": {"auc": 0.9}} for m in ("a", "b")],
                  series={"roc": [Series([0, 0.1, 1], [0, 0.9, 1], "FPR", "TPR", "a"),
                                  Series([0, 0.5, 1], [0, 0.6, 1], "FPR", "TPR", "b")]},
                  notes=["a note <b>escaped</b>"])


def _fail(params, ctx):
    raise ValueError("it broke")


@pytest.fixture
def run_dir(tmp_path):
    scen = [Scenario("demo.roc", _fn, "demo", {}, {}, ("quick",), (0,), (0,), "demo scenario"),
            Scenario("demo.fail", _fail, "demo", {}, {}, ("quick",), (0,), (0,), "fails")]
    runner.run(scen, suite="quick", out_dir=tmp_path, show_progress=False)
    return tmp_path


def test_report_from_rows_alone(run_dir):
    html_path, md_path = render_report(run_dir)
    page = html_path.read_text()
    assert page.count("data:image/png;base64,") == 2  # overview + roc
    assert "demo.roc" in page and "it broke" in page and "&lt;b&gt;escaped" in page
    assert "<script src" not in page and "http" not in page.split("<body>")[1]  # self-contained
    md = md_path.read_text()
    assert "| demo.roc | 0 | ok |" in md and "0.9 [0.555, 0.997]" in md


def test_report_errors_on_non_run_dir(tmp_path):
    with pytest.raises(InputFileError, match="no rows.jsonl"):
        render_report(tmp_path)


def test_format_metric():
    assert format_metric({"value": 0.5, "ci_low": 0.1, "ci_high": 0.9}) == "0.5 [0.1, 0.9]"
    assert format_metric(None) == "n/a" and format_metric(1.234567) == "1.235"


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None, reason="Debian chromium not installed (scripts/setup.sh installs it)")
def test_report_renders_in_headless_chromium(run_dir, tmp_path_factory):
    html_path, _ = render_report(run_dir)
    profile = tmp_path_factory.mktemp("chromium-profile")
    shot = run_dir / "report.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--window-size=1280,2000", "--virtual-time-budget=3000"]
    url = html_path.resolve().as_uri()
    dom = subprocess.run([_chromium(), *flags, "--dump-dom", url], capture_output=True, text=True,
                         timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'data-rendered="1"' in dom.stdout and 'data-errors="0"' in dom.stdout
    assert 'data-images="2"' in dom.stdout
    res = subprocess.run([_chromium(), *flags, f"--screenshot={shot}", url], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    # the screenshot is not blank: it has many distinct colours
    from PIL import Image

    img = Image.open(shot).convert("RGB")
    assert len(set(img.resize((200, 300)).getdata())) > 50
    assert "Uncaught" not in dom.stderr
