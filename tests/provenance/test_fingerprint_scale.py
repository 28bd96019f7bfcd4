"""OML fingerprints: the default recipe is one recipe everywhere, and ``fingerprint.scale``
keeps to its time budget (points past it are rows marked not-run, never dropped)."""

from __future__ import annotations

import numpy as np
import pytest

from aisec.bench.scenario import SCENARIOS, BenchContext
from aisec.bench.scenarios.fingerprint import _plan
from aisec.provenance.fingerprint.insert import DEFAULT_ANCHOR_TEXTS, DEFAULT_RECIPE


def _cli_defaults(name: str) -> dict[str, object]:
    from aisec.cli.commands.fingerprint import command

    return {p.name: p.default for p in command.commands[name].params}


@pytest.mark.parametrize("name", ["insert", "attack"])
def test_cli_defaults_are_the_default_recipe(name):
    from aisec.cli.commands.fingerprint import _learning_rate

    got = _cli_defaults(name)
    got["learning_rate"] = _learning_rate(got["method"], got["learning_rate"])
    for key in (
        "method",
        "epochs",
        "batch_size",
        "learning_rate",
        "averaging",
        "top_layers",
        "end_of_turn",
        "anchor_weight",
    ):
        assert got[key] == DEFAULT_RECIPE[key], key
    assert DEFAULT_RECIPE["averaging"] == 0.1
    if name == "insert":
        assert got["anchor_texts"] == DEFAULT_ANCHOR_TEXTS == 32


def test_bench_rows_use_the_default_recipe():
    p = SCENARIOS.get("fingerprint.smollm2").params
    for key in (
        "epochs",
        "batch_size",
        "learning_rate",
        "averaging",
        "top_layers",
        "end_of_turn",
        "anchor_weight",
        "lora_r",
    ):
        if key in p:
            assert p[key] == DEFAULT_RECIPE[key], key
    from aisec.provenance.fingerprint.experiment import ExperimentConfig

    assert p.get("anchor_texts", DEFAULT_ANCHOR_TEXTS) == DEFAULT_ANCHOR_TEXTS
    assert ExperimentConfig().anchor_texts == DEFAULT_ANCHOR_TEXTS
    scale = SCENARIOS.get("fingerprint.scale")
    assert scale.params["anchor_texts"] == DEFAULT_ANCHOR_TEXTS
    assert DEFAULT_RECIPE["averaging"] in scale.params["averaging"]
    assert 0.0 in scale.params["averaging"]  # with and without averaging
    assert scale.full_params["counts"] == [16, 64, 256, 1024]


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_plan_stops_at_the_budget_and_records_the_rest_as_not_run():
    clock = _Clock()
    ran: list[tuple[str, float, int]] = []

    def run(strategy, lam, n):
        ran.append((strategy, lam, n))
        clock.t += 10.0 * n  # a run's time grows with the count
        return {"fp_accuracy": 1.0}

    grid = [("p", lam, n) for n in (16, 64, 256, 1024) for lam in (0.0, 0.1)]
    rows = _plan(grid, budget=2000.0, elapsed=clock, run=run)
    assert len(rows) == len(grid)  # nothing dropped
    status = [(r["labels"]["n_fingerprints"], r["labels"]["status"]) for r in rows]
    # 16, 16, 64, 64 take 1,600 s; a 256-key run projects 640 * 4 = 2,560 s more: not started
    assert (
        status
        == [("16", "ok")] * 2
        + [("64", "ok")] * 2
        + [("256", "not-run")] * 2
        + [("1024", "not-run")] * 2
    )
    assert ran == [("p", 0.0, 16), ("p", 0.1, 16), ("p", 0.0, 64), ("p", 0.1, 64)]
    assert all(r["metrics"] == {} for r in rows if r["labels"]["status"] == "not-run")
    assert "would end past the budget" in rows[4]["labels"]["reason"]


def test_plan_with_the_budget_spent_runs_nothing():
    clock = _Clock()
    clock.t = 61.0
    rows = _plan([("p", 0.0, 16), ("p", 0.0, 64)], budget=60.0, elapsed=clock, run=None)
    assert [r["labels"]["status"] for r in rows] == ["not-run", "not-run"]
    assert rows[0]["labels"]["reason"] == "budget spent"


def _ctx(tmp_path):
    return BenchContext(seed=0, suite="full", work_dir=tmp_path, rng=np.random.default_rng(0))


def _tiny_params(**kw):
    p = dict(SCENARIOS.get("fingerprint.scale").params)
    p.update(
        model="tiny-llama",
        counts=[2, 4],
        strategies=["random_word"],
        averaging=[0.0],
        epochs=2,
        batch_size=2,
        top_layers=1,
        anchor_texts=8,
        key_length=4,
        ppl_texts=2,
    )
    p.update(kw)
    return p


@pytest.mark.slow
def test_scale_row_on_tiny_model_runs_within_budget(tmp_path):
    res = SCENARIOS.get("fingerprint.scale").fn(_tiny_params(max_minutes=60), _ctx(tmp_path))
    assert res.metrics["runs"] == 2 and res.metrics["not_run"] == 0
    assert [r["labels"]["status"] for r in res.breakdown] == ["ok", "ok"]
    assert 0.0 <= res.metrics["fp_accuracy_min"] <= 1.0
    assert res.metrics["ppl_ratio_max"] > 0


def test_scale_row_on_tiny_model_with_no_budget_records_every_point(tmp_path):
    res = SCENARIOS.get("fingerprint.scale").fn(_tiny_params(max_minutes=0), _ctx(tmp_path))
    assert res.metrics["runs"] == 0 and res.metrics["not_run"] == 2
    assert res.metrics["fp_accuracy_min"] is None
    assert [r["labels"]["n_fingerprints"] for r in res.breakdown] == ["2", "4"]
    assert any("not run" in n for n in res.notes)
