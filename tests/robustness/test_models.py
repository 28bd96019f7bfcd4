"""Checkpoints: safetensors round trip, wrong architecture and foreign files are one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aisec.errors import DataError, InputFileError
from aisec.io import save_safetensors
from aisec.robustness.models import (
    ArchConfig,
    as_batch,
    init_model,
    load_checkpoint,
    save_checkpoint,
)

ARCH = ArchConfig(height=8, width=8, hidden=16)


def test_round_trip(tmp_path, rng):
    model = init_model(ARCH, 0).eval()
    path = save_checkpoint(tmp_path / "m.safetensors", model, ARCH, {"dataset": "digits"})
    ck = load_checkpoint(path, expect=ARCH)
    x = torch.from_numpy(rng.random((2, 1, 8, 8), dtype=np.float32))
    with torch.no_grad():
        torch.testing.assert_close(ck.model(x), model(x))
    assert ck.arch == ARCH and ck.info == {"dataset": "digits"}


def test_init_is_seeded_without_touching_global_state():
    state = torch.random.get_rng_state()
    a, b = init_model(ARCH, 5), init_model(ARCH, 5)
    assert torch.equal(torch.random.get_rng_state(), state)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_other_architecture_and_foreign_files(tmp_path):
    path = save_checkpoint(tmp_path / "m.safetensors", init_model(ARCH, 0), ARCH)
    other = ArchConfig(height=28, width=28)
    with pytest.raises(InputFileError, match="another architecture"):
        load_checkpoint(path, expect=other)
    foreign = save_safetensors(tmp_path / "f.safetensors", {"w": torch.zeros(3)})
    with pytest.raises(InputFileError, match="not an aisec robustness checkpoint"):
        load_checkpoint(foreign)
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(InputFileError, match="safetensors"):
        load_checkpoint(tmp_path / "junk.safetensors")
    with pytest.raises(InputFileError, match="no such file"):
        load_checkpoint(tmp_path / "missing.safetensors")


def test_tensors_that_do_not_fit_the_architecture(tmp_path):
    big = ArchConfig(height=8, width=8, hidden=32)
    path = save_checkpoint(tmp_path / "m.safetensors", init_model(big, 0), ARCH)
    with pytest.raises(InputFileError, match="do not match"):
        load_checkpoint(path)


def test_image_validation(rng):
    assert as_batch(rng.random((3, 8, 8), dtype=np.float32), ARCH).shape == (3, 1, 8, 8)
    with pytest.raises(DataError, match=r"shape \(N, 1, 8, 8\)"):
        as_batch(rng.random((3, 28, 28), dtype=np.float32), ARCH)
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        as_batch(rng.random((3, 8, 8), dtype=np.float32) * 255, ARCH)
    with pytest.raises(DataError, match="finite"):
        as_batch(np.full((1, 8, 8), np.nan, np.float32), ARCH)


def test_checkpoint_records_dataset_certifier_and_sigma_as_metadata(tmp_path):
    from safetensors import safe_open

    arch = ArchConfig(height=8, width=8)
    info = {
        "dataset": "digits",
        "certifier": {"certifier": "smoothing", "sigma": 0.25},
        "train": {"mode": "noise", "sigma": 0.5},
    }
    path = save_checkpoint(tmp_path / "m.safetensors", init_model(arch, 0), arch, info)
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata()
    assert (meta["dataset"], meta["certifier"], meta["train_mode"], float(meta["sigma"])) == (
        "digits",
        "smoothing",
        "noise",
        0.5,
    )  # the training sigma, not the certifier's
    ck = load_checkpoint(path)
    assert ck.provenance_source == "metadata"
    assert ck.provenance == {
        "dataset": "digits",
        "certifier": "smoothing",
        "train_mode": "noise",
        "sigma": 0.5,
    }


def test_older_checkpoint_provenance_is_inferred_from_its_record_and_says_so(tmp_path):
    import json

    arch = ArchConfig(height=8, width=8)
    info = {"dataset": "digits", "certifier": {"certifier": "ibp"}, "train": {"mode": "ibp"}}
    meta = {
        "format": "aisec.robustness.cnn/1",
        "arch": json.dumps(arch.model_dump()),
        "info": json.dumps(info),
    }  # as written before the provenance keys existed
    path = tmp_path / "old.safetensors"
    save_safetensors(path, dict(init_model(arch, 0).state_dict()), metadata=meta)
    ck = load_checkpoint(path)
    assert ck.provenance_source == "inferred from the training record"
    assert ck.provenance == {
        "dataset": "digits",
        "certifier": "ibp",
        "train_mode": "ibp",
        "sigma": None,
    }
    bare = save_checkpoint(tmp_path / "bare.safetensors", init_model(arch, 0), arch)
    assert load_checkpoint(bare).provenance_source == "none"
    bad = tmp_path / "bad.safetensors"
    save_safetensors(
        bad, dict(init_model(arch, 0).state_dict()), metadata={**meta, "sigma": "wide"}
    )
    with pytest.raises(InputFileError, match="sigma"):
        load_checkpoint(bad)
