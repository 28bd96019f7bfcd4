"""Pipeline steps keep process-wide torch state scoped: thread count restored, global RNGs untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aisec.robustness.availability import make_attack
from aisec.robustness.certifiers import make_certifier
from aisec.robustness.data import load_split
from aisec.robustness.pipeline import evaluate, torch_threads, train
from aisec.robustness.training import TrainParams


def test_torch_threads_is_scoped_and_restored_on_error():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), torch_threads(1):
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before
    with torch_threads(None):  # None leaves the setting alone
        assert torch.get_num_threads() == before


@pytest.mark.parametrize(("certifier", "mode"), [("smoothing", "noise"), ("ibp", "ibp")])
def test_train_and_certify_leave_global_rng_state_alone(certifier, mode):
    tr = load_split("digits", "train", 60)
    te = load_split("digits", "test", 4)
    torch_state = torch.random.get_rng_state()
    np_state = np.random.get_state()[1].copy()
    attack = make_attack("cert-aware", rate=0.05, draws=2)
    model, data = train(tr, TrainParams(mode=mode, epochs=1, batch_size=32), 0, attack)
    params = {"n0": 10, "n": 20} if certifier == "smoothing" else {}
    evaluate(model, make_certifier(certifier, **params), te, attack.trigger(8), 1)
    assert data.n_poison == 3
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    np.testing.assert_array_equal(np.random.get_state()[1], np_state)
