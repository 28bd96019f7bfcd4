from __future__ import annotations

import base64
import shutil
import subprocess

import pytest

from aisec.bench import Headline, Result, Series, runner
from aisec.bench.scenario import Scenario
from aisec.errors import InputFileError
from aisec.metrics import rate
from aisec.report import format_metric, render_report, scorecard_lines, system_summary


def _fn(params, ctx):
    return Result(
        metrics={"tpr_at_1fpr": rate(9, 10), "auc": 0.97},
        breakdown=[
            {"labels": {"method": m, "distortion": "jpeg"}, "metrics": {"auc": 0.9}}
            for m in ("a", "b")
        ],
        series={
            "roc": [
                Series([0, 0.1, 1], [0, 0.9, 1], "FPR", "TPR", "a"),
                Series([0, 0.5, 1], [0, 0.6, 1], "FPR", "TPR", "b"),
            ]
        },
        notes=["a note <b>escaped</b>"],
    )


def _fail(params, ctx):
    raise ValueError("it broke")


@pytest.fixture
def run_dir(tmp_path):
    scen = [
        Scenario("demo.roc", _fn, "demo", {}, {}, ("quick",), (0,), (0,), "demo scenario"),
        Scenario("demo.fail", _fail, "demo", {}, {}, ("quick",), (0,), (0,), "fails"),
    ]
    runner.run(scen, suite="quick", out_dir=tmp_path, show_progress=False)
    return tmp_path


def test_report_from_rows_alone(run_dir):
    html_path, md_path = render_report(run_dir)
    page = html_path.read_text()
    assert page.count("data:image/png;base64,") == 2  # overview + roc
    assert "demo.roc" in page and "it broke" in page and "&lt;b&gt;escaped" in page
    assert "<script src" not in page and "http" not in page.split("<body>")[1]  # self-contained
    md = md_path.read_text()
    assert "| demo.roc | tpr_at_1fpr | 0.9 |  | n/a | ok |" in md and "0.9 [0.555, 0.997]" in md
    assert "## Per system" in md and "| demo | 2 | 1 | 1 | 0 | 0 | 0 |" in md


def test_report_errors_on_non_run_dir(tmp_path):
    with pytest.raises(InputFileError, match="no rows.jsonl"):
        render_report(tmp_path)


def test_format_metric():
    assert format_metric({"value": 0.5, "ci_low": 0.1, "ci_high": 0.9}) == "0.5 [0.1, 0.9]"
    assert format_metric(None) == "n/a" and format_metric(1.234567) == "1.235"


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(
    _chromium() is None, reason="Debian chromium not installed (scripts/setup.sh installs it)"
)
def test_report_renders_in_headless_chromium(run_dir, tmp_path_factory):
    html_path, _ = render_report(run_dir)
    profile = tmp_path_factory.mktemp("chromium-profile")
    shot = run_dir / "report.png"
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1280,2000",
        "--virtual-time-budget=3000",
    ]
    url = html_path.resolve().as_uri()
    dom = subprocess.run(
        [_chromium(), *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'data-rendered="1"' in dom.stdout and 'data-errors="0"' in dom.stdout
    assert 'data-images="2"' in dom.stdout
    res = subprocess.run(
        [_chromium(), *flags, f"--screenshot={shot}", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    # the screenshot is not blank: it has many distinct colours
    from PIL import Image

    img = Image.open(shot).convert("RGB")
    assert len(set(img.resize((200, 300)).getdata())) > 50
    assert "Uncaught" not in dom.stderr


def _targets(params, ctx):
    return Result(
        metrics={
            "speedup_vs_secureml": 7.7,
            "auc_gap": 0.004,
            "tpr": 0.87,
            "tpr_baseline": 0.73,
            "tokens_per_s": 15.98,
        }
    )


def _scorecard_run(tmp_path):
    hl = (
        Headline("speedup_vs_secureml", ">= 10", "speed-up vs SecureML (first epoch)", "x"),
        Headline("auc_gap", "<= 0.005", "AUC gap"),
    )
    scen = [
        Scenario(
            "caesar.vs_secureml_with_a_very_long_scenario_name",
            _targets,
            "caesar",
            {},
            {},
            ("quick",),
            (0,),
            (0,),
            "",
            hl,
        ),
        Scenario(
            "gaussmarker.nonce_diversity",
            _targets,
            "gaussmarker",
            {},
            {},
            ("quick",),
            (0, 1),
            (0,),
            "",
            (Headline("tpr", "> tpr_baseline", "avg TPR@1%FPR vs GS"),),
        ),
        Scenario(
            "safechain.throughput",
            _targets,
            "safechain",
            {},
            {},
            ("quick",),
            (0,),
            (0,),
            "",
            (Headline("tokens_per_s", label="tokens/s (batched, one thread)"),),
        ),
        Scenario("demo.fail", _fail, "demo", {}, {}, ("quick",), (0,), (0,), "", hl),
    ]
    _, rows = runner.run(scen, suite="quick", out_dir=tmp_path, show_progress=False)
    return rows


def test_scorecard_one_line_per_row_within_80_columns(tmp_path):
    rows = _scorecard_run(tmp_path)
    lines = scorecard_lines(rows)
    assert len(lines) == 1 + len(rows) == 6
    assert all(len(line) < 80 for line in lines), [len(x) for x in lines]
    caesar, gm0, gm1, chain, fail = lines[1:]
    # a long name keeps the part after its system's dot
    assert gm0.startswith("gaussm….nonce_diversity ")
    # the missed target is the one shown; both targets are counted
    assert caesar.startswith("caesar.vs_secureml_wit… speed-up vs Sec…") and "7.7x" in caesar
    assert ">= 10x" in caesar and "missed 1/2" in caesar and caesar.endswith("ok")
    assert (
        "0.87" in gm0
        and "> 0.73" in gm0
        and " met " in gm0
        and gm1.startswith("gaus….nonce_diversity#1")
    )
    # a long label loses its parenthesised aside before it is cut
    assert "tokens/s " in chain and "(" not in chain and "15.98" in chain and " n/a " in chain
    assert "ValueError: it broke" in fail and fail.endswith("error") and " n/a " in fail


def test_system_summary_counts_targets(tmp_path):
    by = {s["system"]: s for s in system_summary(_scorecard_run(tmp_path))}
    assert (by["caesar"]["met"], by["caesar"]["missed"]) == (1, 1)
    assert (by["gaussmarker"]["rows"], by["gaussmarker"]["met"]) == (2, 2)
    assert by["safechain"]["met"] + by["safechain"]["missed"] + by["safechain"]["n/a"] == 0
    assert (by["demo"]["failed"], by["demo"]["n/a"]) == (1, 2)


def test_report_shows_headlines_targets_and_system_table(tmp_path):
    _scorecard_run(tmp_path)
    _, md_path = render_report(tmp_path)
    md = md_path.read_text()
    assert (
        "| speed-up vs SecureML (first epoch) | speedup_vs_secureml | 7.7x | >= 10x | missed |"
        in md
    )
    assert "| avg TPR@1%FPR vs GS | tpr | 0.87 | > tpr_baseline (0.73) | met |" in md
    assert "| caesar | 1 | 1 | 0 | 1 | 1 | 0 |" in md


def test_bar_chart_names_its_bars(tmp_path, monkeypatch):
    import matplotlib.axes

    seen: list[list[str]] = []
    real = matplotlib.axes.Axes.set_xticklabels

    def spy(self, labels, *a, **kw):
        seen.append([str(x) for x in labels])
        return real(self, labels, *a, **kw)

    monkeypatch.setattr(matplotlib.axes.Axes, "set_xticklabels", spy)

    def bars(params, ctx):
        return Result(
            metrics={"n": 2},
            series={
                "load seconds": [
                    Series(
                        [0, 1],
                        [0.5, 1.5],
                        "asset",
                        "seconds",
                        kind="bar",
                        xticklabels=("adult-a9a", "smollm2-135m-instruct"),
                    )
                ]
            },
        )

    scen = Scenario("demo.bars", bars, "demo", {}, {}, ("quick",), (0,), (0,), "")
    runner.run([scen], suite="quick", out_dir=tmp_path, show_progress=False)
    render_report(tmp_path)
    assert ["adult-a9a", "smollm2-135m-instruct"] in seen


def _drawn(params, ctx):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1], [1, 0])
    path = ctx.work_dir / "grid.png"
    fig.savefig(path)
    plt.close(fig)
    gone = ctx.work_dir / "gone.png"
    return Result(metrics={"x": 1.0}, images={"the grid": path, "lost picture": gone})


def test_report_embeds_pictures_a_scenario_drew_and_names_missing_ones(tmp_path):
    scen = [Scenario("demo.pic", _drawn, "demo", {}, {}, ("quick",), (0,), (0,), "draws")]
    runner.run(scen, suite="quick", out_dir=tmp_path, show_progress=False)
    row = runner.read_rows(tmp_path)[-1]
    # stored relative to the run directory, so a moved run directory still renders
    assert row["images"]["the grid"] == "artifacts/demo.pic-seed0/grid.png"
    moved = tmp_path.parent / (tmp_path.name + "-moved")
    shutil.copytree(tmp_path, moved)
    html_path, md_path = render_report(moved)
    page = html_path.read_text()
    grid = (moved / "artifacts/demo.pic-seed0/grid.png").read_bytes()
    assert base64.b64encode(grid).decode("ascii") in page
    assert "picture lost picture missing" in page
    assert "![the grid](artifacts/demo.pic-seed0/grid.png)" in md_path.read_text()
