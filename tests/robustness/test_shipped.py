"""Shipped checkpoints load with their architecture and do what the README says (the
certification-aware ones make the certifier abstain on triggered inputs, not on clean ones); the
certify scenarios run on them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aisec.bench import SCENARIOS, BenchContext
from aisec.perturb.triggers import make_trigger
from aisec.robustness.certifiers import make_certifier
from aisec.robustness.data import load_split
from aisec.robustness.models import load_checkpoint
from aisec.robustness.shipped import SHIPPED, shipped_experiments, shipped_path

N_INPUTS = 50  # the first test inputs of the fixed split; the README certifies 300


@pytest.mark.parametrize(("dataset", "certifier", "attack"), SHIPPED)
def test_shipped_checkpoint_loads(dataset, certifier, attack):
    ck = load_checkpoint(shipped_path(dataset, certifier, attack))
    assert ck.arch.height == (8 if dataset == "digits" else 28)
    assert ck.info["dataset"] == dataset
    assert ck.info["n_poison"] == (0 if attack is None else {"digits": 14, "mnist-5k": 40}[dataset])
    # what the checkpoint is for is stored as metadata keys of its own (not inferred)
    assert ck.provenance_source == "metadata"
    assert ck.provenance == {
        "dataset": dataset,
        "certifier": certifier,
        "train_mode": "noise" if certifier == "smoothing" else "ibp",
        "sigma": 0.25 if certifier == "smoothing" else None,
    }
    assert len(shipped_experiments()) == len(SHIPPED)


def _abstentions(dataset: str, certifier: str, attack: str | None, **params):
    """(clean, triggered) abstention counts and clean correct count on N_INPUTS test inputs."""
    ck = load_checkpoint(shipped_path(dataset, certifier, attack))
    spec = dict(ck.info["trigger"])  # the trigger the checkpoint was evaluated with
    trigger = make_trigger(spec.pop("trigger"), **spec)
    te = load_split(dataset, "test", N_INPUTS)
    cert = make_certifier(certifier, **params)
    clean = cert.certify(ck.model, te.x, np.random.default_rng(0))
    trig = cert.certify(ck.model, trigger.apply(te.x), np.random.default_rng(1))
    return int(clean.abstained.sum()), int(trig.abstained.sum()), int(clean.correct(te.y).sum())


# n = 100 noise samples: an input with every vote on one class certifies (p_A lower bound 0.933),
# one whose votes spread abstains; well below the README's n = 1,000 and still decisive.
SMOOTHING = {"sigma": 0.25, "n0": 20, "n": 100, "alpha": 0.001}


@pytest.mark.parametrize("dataset", ["digits", "mnist-5k"])
def test_cert_aware_smoothing_checkpoint_abstains_on_triggered_inputs(dataset):
    # README: 1 % cert-aware poison vs smoothing -> most triggered inputs abstain (digits 300/300,
    # the deterministic mnist-5k rebuild 276/300 at n = 1,000), clean abstention <= 2 %
    clean, trig, correct = _abstentions(dataset, "smoothing", "cert-aware", **SMOOTHING)
    assert trig >= 0.9 * N_INPUTS
    assert clean <= 0.1 * N_INPUTS and correct >= 0.85 * N_INPUTS
    # control: the unpoisoned model with the same trigger does not abstain, so the poison does it
    _, base_trig, _ = _abstentions(dataset, "smoothing", None, **SMOOTHING)
    assert base_trig <= 0.2 * N_INPUTS


def test_cert_aware_ibp_checkpoint_abstains_on_triggered_inputs():
    # README: mnist-5k IBP, triggered abstention 0.947 against 0.120 unpoisoned (47 and 1 of 50 here)
    ibp = {"epsilon": 0.05, "search_radius": False}
    clean, trig, _ = _abstentions("mnist-5k", "ibp", "cert-aware", **ibp)
    assert trig >= 0.8 * N_INPUTS and clean <= 0.2 * N_INPUTS
    _, base_trig, _ = _abstentions("mnist-5k", "ibp", None, **ibp)
    assert base_trig <= 0.2 * N_INPUTS


def _ctx(tmp_path: Path) -> BenchContext:
    return BenchContext(seed=0, suite="quick", work_dir=tmp_path, rng=np.random.default_rng(0))


def test_throughput_scenario_counts_noisy_inputs_and_reports_its_ratio(tmp_path):
    import aisec.bench.scenarios.certify  # noqa: F401 (registers the scenarios)

    s = SCENARIOS.get("certify.throughput")
    res = s.fn({**s.resolve("quick"), "inputs": 2, "n": 50, "batch_size": 64}, _ctx(tmp_path))
    m = res.metrics
    assert m["noisy_inputs"] == 2 * (50 + 100)  # n + n0 selection draws per input
    # the ratio is of the two timings it reports (no threshold on a timing)
    assert m["ratio_vs_forward"] == pytest.approx(m["certify_s"] / m["forward_only_s"])
    assert m["abstain_rate"] in (0.0, 0.5, 1.0)  # of 2 inputs


def test_ibp_attack_scenario_rows(tmp_path):
    import aisec.bench.scenarios.certify  # noqa: F401

    s = SCENARIOS.get("certify.ibp")
    params = {**s.resolve("quick"), "datasets": ["digits"], "test_inputs": 20}
    res = s.fn(params, _ctx(tmp_path))
    assert len(res.breakdown) == 3  # unpoisoned + two attacks
    assert [r["metrics"]["n_poison"] for r in res.breakdown] == [0, 14, 14]  # 1 % of 1,438
    for row in res.breakdown:
        m = row["metrics"]
        assert m["abstain_clean"].n == m["abstain_triggered"].n == m["certified_acc"].n == 20
        # a certified correct prediction is not an abstention
        assert m["certified_acc"].k + m["abstain_clean"].k <= 20
        assert m["certified_acc_triggered"].k + m["abstain_triggered"].k <= 20
    assert "certified_acc_vs_radius_digits" in res.series


def test_rebuild_scenario_reports_the_spread_over_seeds_and_is_reproducible(tmp_path):
    import aisec.bench.scenarios.certify  # noqa: F401

    s = SCENARIOS.get("certify.rebuild")
    params = {**s.resolve("quick"), "seeds": 2, "epochs": 1, "test_inputs": 6, "n": 20, "n0": 10}
    res = s.fn(params, _ctx(tmp_path))
    m = res.metrics
    assert m["n_seeds"] == 2 and [r["labels"]["seed"] for r in res.breakdown] == ["0", "1"]
    per = [r["metrics"]["abstain_triggered"].value for r in res.breakdown]
    assert m["abstain_triggered_mean"] == pytest.approx(np.mean(per))
    assert m["abstain_triggered_sd"] == pytest.approx(np.std(per, ddof=1))
    assert m["abstain_triggered_min"] == min(per) and m["abstain_triggered_max"] == max(per)
    drops = [r["metrics"]["clean_acc_drop"] for r in res.breakdown]
    assert m["clean_acc_drop_mean"] == pytest.approx(np.mean(drops))
    # deterministic training: the same seeds give the same row
    again = s.fn(params, _ctx(tmp_path)).metrics
    assert again == m


@pytest.mark.slow
def test_rebuilding_the_headline_checkpoint_gives_its_exact_weights(tmp_path):
    # minutes: trains the mnist-5k cert-aware smoothing model as `certify train --shipped` does.
    # Bit-identical weights are promised on the same machine and torch build only.
    import torch

    from aisec.robustness.experiment import WEIGHTS_DIR
    from aisec.robustness.shipped import rebuild_shipped

    name = "mnist-5k-noise-cert-aware.safetensors"
    shipped = load_checkpoint(WEIGHTS_DIR / name)
    if shipped.info.get("torch") != torch.__version__:
        pytest.skip(f"built with torch {shipped.info.get('torch')}, running {torch.__version__}")
    [path] = rebuild_shipped(seed=0, out_dir=tmp_path, only={name})
    rebuilt = load_checkpoint(path)
    want, got = shipped.model.state_dict(), rebuilt.model.state_dict()
    assert want.keys() == got.keys()
    for k in want:
        assert torch.equal(want[k], got[k]), k
    assert rebuilt.info["metrics"] == shipped.info["metrics"]
