"""HashVFL's N-party split learning over Channels: one test body for 2 and 4 parties as threads,
resume from checkpoints, a dead party named with its step, refused inputs, and TLS."""

from __future__ import annotations

import dataclasses
import socket
import threading

import numpy as np
import pytest

from aisec.errors import ConfigError, DataError, PeerError, UnknownNameError
from aisec.privacy.vfl import VFLRecipe, load_split, run_local
from aisec.privacy.vfl.data import ids_digest
from aisec.privacy.vfl.protocol import Checkpoints, train_active, train_passive
from aisec.transport import inprocess_pair


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    from aisec.privacy.vfl.run import torch_threads

    with torch_threads(1):  # tiny models: intra-op threads only contend on a shared machine
        yield


def _recipe(parties: int = 2, defence: str = "hash", epochs: int = 2, **train) -> VFLRecipe:
    return VFLRecipe.model_validate(
        {
            "data": {"dataset": "digits", "parties": parties},
            "train": {
                "bottom": "mlp",
                "epochs": epochs,
                "batch_size": 64,
                "lr": 3e-3,
                "defence": {"name": defence, "code_bits": 16},
                "timeout_s": 20,
                **train,
            },
        }
    )


@pytest.fixture(scope="module")
def digits2():
    return load_split(_recipe(2).data)


@pytest.mark.parametrize("parties", [2, 4])
def test_parties_learn_together_and_hash_codes_cost_a_bit_per_dimension(parties):
    split = load_split(_recipe(parties).data)
    hashed = run_local(_recipe(parties, "hash", epochs=4), split=split)
    plain = run_local(_recipe(parties, "none", epochs=4), split=split)
    for m in (hashed, plain):
        assert m["acc"] > m["majority_rate"] + 0.3
        assert m["epochs_run"] == 4 and m["parties"] == parties
    # 16 bits = 2 bytes per row against 64 bytes of float32, plus the frame header per batch
    assert hashed["bytes_per_sample"] < plain["bytes_per_sample"] / 15
    assert plain["bytes_per_sample"] >= 64


def test_resume_continues_from_the_last_epoch_every_party_holds(tmp_path, digits2):
    r = _recipe(2, "hash", epochs=3)
    first = run_local(r, tmp_path, split=digits2)
    assert first["epochs_run"] == 3 and first["resumed_from_epoch"] == 0
    again = run_local(r, tmp_path, split=digits2)
    assert again["resumed_from_epoch"] == 3 and again["epochs_run"] == 0
    assert again["acc"] == pytest.approx(first["acc"])
    # P1 lost its last checkpoint: both parties go back to epoch 2 and train epoch 3 again
    (tmp_path / "checkpoints" / "P1" / "epoch-3.safetensors").unlink()
    third = run_local(r, tmp_path, split=digits2)
    assert third["resumed_from_epoch"] == 2 and third["epochs_run"] == 1


def test_a_checkpoint_from_other_parameters_is_refused(tmp_path, digits2):
    run_local(_recipe(2, "hash", epochs=1), tmp_path, split=digits2)
    with pytest.raises(ConfigError, match="other parameters"):
        run_local(_recipe(2, "hash", epochs=1, lr=0.01), tmp_path, split=digits2)


def test_a_slice_of_the_wrong_width_does_not_fit_the_checkpoint(tmp_path, digits2):
    r = _recipe(2, "hash", epochs=1)
    run_local(r, tmp_path, split=digits2)
    from aisec.privacy.vfl.protocol import _optimizer, make_bottom

    b = make_bottom(r.train, "P1", (8, 5))
    with pytest.raises(DataError, match="another width"):
        Checkpoints(tmp_path / "checkpoints" / "P1", "P1").restore(
            1, {"bottom": b}, _optimizer(r.train, [b]), r.train.agreed()
        )


def _run_pair(active_data, passive_data, params, passive_fn=None):
    ca, cb = inprocess_pair("P0", "P1", timeout_s=params.timeout_s)
    errors: dict[str, BaseException] = {}

    def passive():
        try:
            (passive_fn or train_passive)("P1", cb, passive_data, params)
        except BaseException as exc:  # noqa: BLE001
            errors["P1"] = exc

    t = threading.Thread(target=passive)
    t.start()
    try:
        train_active({"P1": ca}, active_data, params)
    except BaseException as exc:  # noqa: BLE001
        errors["P0"] = exc
    t.join()
    return errors


def test_a_dead_party_is_named_with_the_epoch_batch_and_step(digits2, tmp_path):
    params = _recipe(2, "hash", epochs=2, timeout_s=2).train
    a, b = digits2.parties["train"]

    def dies_after_setup(party, ch, data, p):
        ch.send(
            "setup",
            {
                "party": party,
                "params": p.agreed(),
                "n": data.n,
                "ids": ids_digest(data.ids),
                "shape": list(data.shape),
                "epochs": [],
            },
        )
        ch.recv("setup")
        ch.close()  # crashes before its first embedding

    errors = _run_pair(a, b, params, dies_after_setup)
    err = errors["P0"]
    assert isinstance(err, PeerError) and err.party == "P1"
    assert "epoch 1 batch 1 emb" in str(err) and "closed" in str(err)


def test_a_silent_party_times_out_with_its_name_and_step(digits2):
    params = _recipe(2, "none", epochs=1, timeout_s=0.5).train
    a, _ = digits2.parties["train"]
    ca, _cb = inprocess_pair("P0", "P1", timeout_s=0.5)
    with pytest.raises(PeerError, match="peer 'P1' at step 'setup': no message within 0.5 s"):
        train_active({"P1": ca}, a, params)


def test_mismatched_sample_ids_or_counts_are_refused_naming_the_party(digits2):
    params = _recipe(2, "hash", epochs=1).train
    a, b = digits2.parties["train"]
    shifted = dataclasses.replace(b, ids=b.ids + 1)
    errors = _run_pair(a, shifted, params)
    assert isinstance(errors["P0"], DataError) and "P1" in str(errors["P0"])
    assert "ids differ" in str(errors["P0"])
    assert isinstance(errors["P1"], PeerError) and "DataError" in str(errors["P1"])
    fewer = dataclasses.replace(b, x=b.x[:-5], ids=b.ids[:-5])
    errors = _run_pair(a, fewer, params)
    assert "holds" in str(errors["P0"]) and "rows" in str(errors["P0"])


def test_nan_features_are_refused_before_anything_is_sent(digits2):
    params = _recipe(2, "hash", epochs=1, timeout_s=1).train
    a, b = digits2.parties["train"]
    x = b.x.copy()
    x[3, 0, 0] = np.nan
    ca, cb = inprocess_pair("P0", "P1")
    with pytest.raises(DataError, match="party P1: features hold 1 NaN"):
        train_passive("P1", cb, dataclasses.replace(b, x=x), params)
    assert cb.stats.total().messages_sent == 0


def test_unknown_defence_or_bottom_is_a_usage_error(digits2):
    with pytest.raises(UnknownNameError, match="vfl defence"):
        run_local(_recipe(2, "rot13"), split=digits2)
    with pytest.raises(UnknownNameError, match="vfl bottom model"):
        run_local(_recipe(2, "hash", bottom="resnet"), split=digits2)


def test_failed_run_leaves_only_whole_checkpoints(tmp_path, digits2):
    r = _recipe(2, "hash", epochs=2)
    run_local(r, tmp_path, split=digits2)
    for party in ("P0", "P1"):
        ck = Checkpoints(tmp_path / "checkpoints" / party, party)
        assert ck.readable() == ck.epochs() == [1, 2]
    assert not list(tmp_path.rglob("*.tmp*"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_parties_over_tls_and_a_peer_with_a_foreign_certificate(tmp_path, digits2):
    pytest.importorskip("cryptography")
    from aisec.privacy.vfl.data import save_party
    from aisec.privacy.vfl.run import run_party, run_threads
    from aisec.transport.certs import make_certs

    make_certs(tmp_path / "certs", ["P0", "P1"])
    make_certs(tmp_path / "other", ["P0", "P1"])
    r = _recipe(2, "hash", epochs=1, timeout_s=20, accept_timeout_s=20)
    files = {}
    for split in ("train", "test"):
        for pd in digits2.parties[split]:
            files[pd.party, split] = save_party(tmp_path / f"{pd.party}-{split}.safetensors", pd)
    port = _free_port()
    res = run_threads(
        [
            lambda: run_party(
                "P0",
                r,
                files["P0", "train"],
                tmp_path / "certs",
                tmp_path / "o0",
                test_path=files["P0", "test"],
                listen=f"127.0.0.1:{port}",
            ),
            lambda: run_party(
                "P1",
                r,
                files["P1", "train"],
                tmp_path / "certs",
                tmp_path / "o1",
                test_path=files["P1", "test"],
                peer=f"127.0.0.1:{port}",
            ),
        ]
    )
    assert res[0]["acc"] > 0.3 and res[1]["bytes_per_sample"] < 8
    r2 = _recipe(2, "hash", epochs=1, timeout_s=3, accept_timeout_s=3)
    port = _free_port()
    with pytest.raises(PeerError):
        run_threads(
            [
                lambda: run_party(
                    "P0",
                    r2,
                    files["P0", "train"],
                    tmp_path / "certs",
                    tmp_path / "o2",
                    listen=f"127.0.0.1:{port}",
                ),
                lambda: run_party(
                    "P1",
                    r2,
                    files["P1", "train"],
                    tmp_path / "other",
                    tmp_path / "o3",
                    peer=f"127.0.0.1:{port}",
                ),
            ]
        )
    assert not (tmp_path / "o2" / "models").exists()


def test_a_party_that_crashes_mid_epoch_is_named_and_the_rerun_resumes(digits2, tmp_path):
    params = _recipe(2, "hash", epochs=3, timeout_s=5).train
    a, b = digits2.parties["train"]
    per_epoch = -(-b.n // params.batch_size)
    ca, cb = inprocess_pair("P0", "P1", timeout_s=5)
    real_send, sent = cb.send, {"emb": 0}

    def crashing_send(step, message):
        if step == "emb":
            sent["emb"] += 1
            if sent["emb"] > per_epoch + 2:  # dies in epoch 2, batch 3
                cb.close()
                raise ConnectionResetError("P1's host went down")
        real_send(step, message)

    cb.send = crashing_send
    ck = {p: tmp_path / p for p in ("P0", "P1")}
    errors: dict[str, BaseException] = {}

    def passive():
        try:
            train_passive("P1", cb, b, params, ck["P1"])
        except BaseException as exc:  # noqa: BLE001
            errors["P1"] = exc

    t = threading.Thread(target=passive)
    t.start()
    with pytest.raises(PeerError, match="peer 'P1' at step 'epoch 2 batch 3 emb'"):
        train_active({"P1": ca}, a, params, ck["P0"])
    t.join()
    assert isinstance(errors["P1"], ConnectionResetError)
    # the rerun picks up after epoch 1, the last one both parties finished
    ca, cb = inprocess_pair("P0", "P1", timeout_s=5)
    out: dict[str, object] = {}
    t = threading.Thread(target=lambda: out.update(p1=train_passive("P1", cb, b, params, ck["P1"])))
    t.start()
    _, _, _, rep = train_active({"P1": ca}, a, params, ck["P0"])
    t.join()
    assert rep.resumed_from_epoch == 1 and rep.epochs_run == 2
    assert out["p1"][1].resumed_from_epoch == 1
