"""Training: learns digits in a few epochs, is reproducible from its seed, validates its input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aisec.errors import ConfigError, DataError
from aisec.robustness.availability import make_attack
from aisec.robustness.data import load_split
from aisec.robustness.pipeline import arch_for, clean_data
from aisec.robustness.training import TrainParams, train_model


@pytest.fixture(scope="module")
def digits():
    return load_split("digits", "train", 300), load_split("digits", "test", 100)


@pytest.mark.parametrize("mode", ["noise", "ibp"])
def test_learns_and_is_reproducible(digits, mode):
    tr, te = digits
    p = TrainParams(mode=mode, epochs=4, batch_size=32, epsilon=0.02, warmup=0.5, ramp=0.3)
    a = train_model(clean_data(tr), 10, arch_for(tr), p, 3)
    b = train_model(clean_data(tr), 10, arch_for(tr), p, 3)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    with torch.no_grad():
        acc = (a(torch.from_numpy(te.x)).argmax(1).numpy() == te.y).mean()
    assert acc > 0.5


def test_poisoned_rows_need_their_attack(digits, rng):
    tr, _ = digits
    data = make_attack("random-label", rate=0.05).poison(tr.x, tr.y, 10, rng)
    with pytest.raises(DataError, match="attack"):
        train_model(data, 10, arch_for(tr), TrainParams(epochs=1), 0)


def test_data_splits_are_fixed_and_disjoint():
    tr, te = load_split("digits", "train"), load_split("digits", "test")
    assert len(tr) + len(te) == 1797 and tr.x.shape[1:] == (1, 8, 8)
    assert 0.0 <= tr.x.min() and tr.x.max() <= 1.0
    again = load_split("digits", "test", 10)
    np.testing.assert_array_equal(again.x, te.x[:10])
    train_rows = {r.tobytes() for r in tr.x}
    assert sum(r.tobytes() in train_rows for r in te.x) < 0.05 * len(te)  # digits has duplicates
    with pytest.raises(ConfigError, match="dataset"):
        load_split("cifar", "train")


@pytest.mark.parametrize("mode", ["noise", "ibp"])
def test_rebuild_gives_identical_weights_whatever_the_callers_thread_count(mode):
    # the issue: rebuild_shipped(seed=0) from Python (default threads) and `certify train` (one
    # thread) gave weights differing by up to 0.6; the thread count changes CPU reduction order
    from aisec.robustness.experiment import Experiment
    from aisec.robustness.pipeline import run_experiment

    exp = Experiment(
        dataset="mnist-5k",
        train_limit=200,
        test_limit=2,
        certifier="smoothing" if mode == "noise" else "ibp",
        certifier_params={"n": 10, "n0": 5} if mode == "noise" else {},
        train={"epochs": 2},
        attack="cert-aware",
        attack_params={"rate": 0.05},
    )
    before = torch.get_num_threads()
    weights = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            model, _, _ = run_experiment(exp, seed=5)
            weights.append({k: v.clone() for k, v in model.state_dict().items()})
            assert torch.get_num_threads() == threads  # restored after training
    finally:
        torch.set_num_threads(before)
    assert not torch.are_deterministic_algorithms_enabled()
    a, b = weights
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
