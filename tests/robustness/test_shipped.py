"""Shipped checkpoints load with their architecture; the certify scenarios run on them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aisec.bench import SCENARIOS, BenchContext
from aisec.robustness.models import load_checkpoint
from aisec.robustness.shipped import SHIPPED, shipped_experiments, shipped_path


@pytest.mark.parametrize(("dataset", "certifier", "attack"), SHIPPED)
def test_shipped_checkpoint_loads(dataset, certifier, attack):
    ck = load_checkpoint(shipped_path(dataset, certifier, attack))
    assert ck.arch.height == (8 if dataset == "digits" else 28)
    assert ck.info["dataset"] == dataset
    assert ck.info["n_poison"] == (0 if attack is None else
                                   {"digits": 14, "mnist-5k": 40}[dataset])
    assert len(shipped_experiments()) == len(SHIPPED)


def _ctx(tmp_path: Path) -> BenchContext:
    return BenchContext(seed=0, suite="quick", work_dir=tmp_path, rng=np.random.default_rng(0))


def test_throughput_scenario_measures_a_ratio(tmp_path):
    import aisec.bench.scenarios.certify  # noqa: F401 (registers the scenarios)

    s = SCENARIOS.get("certify.throughput")
    res = s.fn({**s.resolve("quick"), "inputs": 2, "n": 50, "batch_size": 64}, _ctx(tmp_path))
    assert res.metrics["noisy_inputs"] == 2 * 150 and res.metrics["ratio_vs_forward"] > 0


def test_ibp_attack_scenario_rows(tmp_path):
    import aisec.bench.scenarios.certify  # noqa: F401

    s = SCENARIOS.get("certify.ibp")
    params = {**s.resolve("quick"), "datasets": ["digits"], "test_inputs": 20}
    res = s.fn(params, _ctx(tmp_path))
    assert len(res.breakdown) == 3  # unpoisoned + two attacks
    for row in res.breakdown:
        for k in ("clean_acc", "abstain_clean", "abstain_triggered", "certified_acc"):
            assert 0 <= row["metrics"][k].value <= 1
    assert "certified_acc_vs_radius_digits" in res.series
