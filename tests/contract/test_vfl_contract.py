"""Every HashVFL registry entry, by behaviour: each defence trains two parties and sends what
the receiver decodes, each bottom model maps its slice to (B, dim), each reconstruction attack
returns one finite reconstruction per observed row."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aisec.privacy.attacks.reconstruction import ATTACKS, wire_values
from aisec.privacy.vfl import DEFENCES, VFLRecipe, load_split, run_local
from aisec.privacy.vfl.defences import DefenceSpec, decode, encode
from aisec.privacy.vfl.models import BOTTOMS, Bottom
from aisec.privacy.vfl.run import torch_threads


@pytest.fixture(scope="module")
def split():
    return load_split(VFLRecipe.model_validate({"data": {"dataset": "digits"}}).data)


@pytest.mark.parametrize("name", DEFENCES.names())
def test_defence_round_trips_on_the_wire_and_trains(name, split):
    spec = DefenceSpec(name=name, code_bits=16)
    g = torch.Generator().manual_seed(0)
    out = torch.randn(32, 16)
    if spec.hashed:
        out = torch.where(out >= 0, 1.0, -1.0)
    sent, fields = encode(spec, out.requires_grad_(True), g)
    got = decode(spec, fields, 32)
    assert torch.allclose(got, sent.detach()) and got.shape == (32, 16)
    recipe = VFLRecipe.model_validate(
        {
            "data": {"dataset": "digits"},
            "train": {"bottom": "mlp", "epochs": 1, "batch_size": 64, "defence": {"name": name}},
        }
    )
    with torch_threads(1):
        m = run_local(recipe, split=split)
    assert 0 <= m["acc"] <= 1 and m["epochs_run"] == 1 and m["bytes_per_sample"] > 0


@pytest.mark.parametrize("name", BOTTOMS.names())
@pytest.mark.parametrize("hashed", [False, True])
def test_bottom_maps_an_image_slice_to_its_dimension(name, hashed):
    b = Bottom(name, (8, 4), 12, hidden=16, hashed=hashed)
    out = b(torch.rand(5, 8, 4))
    assert out.shape == (5, 12) and torch.isfinite(out).all()
    if hashed:
        assert set(out.unique().tolist()) <= {-1.0, 1.0}


@pytest.mark.parametrize("name", ATTACKS.names())
def test_reconstruction_attack_returns_one_finite_row_per_observation(name, split):
    spec = DefenceSpec(name="none", code_bits=8)
    bottom = Bottom("mlp", split.parties["aux"][1].shape, 8, hidden=16)
    aux = split.parties["aux"][1].x
    obs = wire_values(bottom, split.parties["test"][1].x[:6], spec, torch.Generator())
    kw = {"epochs": 2} if name == "decoder" else {"steps": 3}
    rec = ATTACKS.get(name)(bottom, spec, aux, obs, rng=np.random.default_rng(0), **kw)
    assert rec.shape == (6, *aux.shape[1:]) and np.isfinite(rec).all()
