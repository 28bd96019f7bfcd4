"""CAESAR end to end on the in-process transport: exactness against plaintext SGD, resume after
a dropped connection, clear errors on bad input, split prediction, and the SecureML baseline."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from aisec.errors import ConfigError, DataError, PeerError, UnknownNameError
from aisec.privacy.baselines.plaintext_lr import fit_surrogate, scores_with_intercept
from aisec.privacy.baselines.secureml import train_secureml
from aisec.privacy.caesar import (
    RECIPES,
    CaesarModel,
    CaesarParams,
    load_recipe_named,
    predict_party,
    sigmoid_coefficients,
    train_party,
)
from aisec.privacy.caesar.data import PartyData, load_party, save_party, split_columns, zipf_sparse
from aisec.transport import inprocess_pair
from aisec.transport.inprocess import InProcessChannel

KEY = 512  # test-sized keys: the arithmetic is exact at any size


def _have_heu() -> bool:
    try:
        import heu  # noqa: F401
    except ImportError:
        return False
    return True


# only the tests that use SecretFlow HEU skip without it; the protocol tests always run
needs_heu = pytest.mark.skipif(
    not _have_heu(), reason="sf-heu (the optional HEU backend) is not installed"
)


def _data(rng: np.random.Generator, n: int = 160, d: int = 24, binary: bool = False):
    x, y = zipf_sparse(n, d, 5, rng, binary=binary, n_informative=8)
    return x, y, split_columns(x, y, 0.5)


def _run(
    a: PartyData,
    b: PartyData,
    params: CaesarParams,
    dirs: tuple[Any, Any] = (None, None),
    channels: tuple[Any, Any] | None = None,
) -> dict[str, Any]:
    ca, cb = channels or inprocess_pair(timeout_s=20)
    out: dict[str, Any] = {}

    def go(role: str, ch: Any, data: PartyData, ckpt: Any) -> None:
        try:
            out[role] = train_party(role, ch, data, params, ckpt)
        except Exception as exc:  # collected for the assertions
            out[role + "_err"] = exc

    ts = [
        threading.Thread(target=go, args=("A", ca, a, dirs[0])),
        threading.Thread(target=go, args=("B", cb, b, dirs[1])),
    ]
    [t.start() for t in ts]
    [t.join() for t in ts]
    return out


@pytest.mark.parametrize("sigmoid", ["minimax", "cubic"])
def test_matches_plaintext_sgd(rng: np.random.Generator, sigmoid: str) -> None:
    x, y, (a, b) = _data(rng)
    p = CaesarParams(key_bits=KEY, sigmoid=sigmoid, learning_rate=0.5, batch_size=40, epochs=2)
    out = _run(a, b, p)
    (ma, ra), (mb, rb) = out["A"], out["B"]
    w = fit_surrogate(x, y, sigmoid_coefficients(sigmoid), 0.5, p.l2, 40, 2)
    assert np.max(np.abs(np.concatenate([ma.weights, mb.weights]) - w)) < 1e-3
    assert ra.batches == rb.batches == 8
    # per-batch traffic: the e shares (n ciphertexts each way, 3n more from A for the cubic)
    # plus packed HE-to-SS; never more than 4n (linear) or 8n (cubic) ciphertexts
    per_ct = 2 * KEY // 8
    low = (2 if sigmoid != "cubic" else 5) * 40 * per_ct
    assert low < rb.bytes_per_batch < low * 1.6


def test_bytes_per_batch_do_not_follow_nonzeros(rng: np.random.Generator) -> None:
    p = CaesarParams(key_bits=KEY, batch_size=32, epochs=1, max_batches=2)
    sizes = []
    for nnz in (2, 12):
        x, y = zipf_sparse(64, 40, nnz, rng, n_informative=8)
        a, b = split_columns(x, y, 0.5)
        sizes.append(_run(a, b, p)["B"][1].bytes_per_batch)
    assert abs(sizes[0] - sizes[1]) < 0.01 * sizes[0]


class _DropAfter(InProcessChannel):
    """Closes itself after ``limit`` sends: a connection dropped mid-epoch."""

    def __init__(self, inner: InProcessChannel, limit: int) -> None:
        self.__dict__.update(inner.__dict__)
        self._limit = limit

    def send(self, step: str, message: dict[str, Any]) -> None:
        self._limit -= 1
        if self._limit < 0:
            self.close()
            raise PeerError(self.peer, step, "connection dropped (test)")
        super().send(step, message)


def test_dropped_connection_resumes_from_checkpoint(
    rng: np.random.Generator, tmp_path: Path
) -> None:
    x, y, (a, b) = _data(rng)
    p = CaesarParams(key_bits=KEY, learning_rate=0.5, batch_size=40, epochs=2)
    dirs = (tmp_path / "A", tmp_path / "B")
    ca, cb = inprocess_pair(timeout_s=20)
    # setup takes 5 sends; each batch 2 more: drop in the middle of epoch 2 (batch 6)
    out = _run(a, b, p, dirs, (ca, _DropAfter(cb, 5 + 2 * 5 + 1)))
    assert isinstance(out.get("A_err"), PeerError) and isinstance(out.get("B_err"), PeerError)
    assert "'A'" in str(out["B_err"]) or "'B'" in str(out["A_err"])
    assert not (dirs[0] / "model.safetensors").exists()
    assert sorted(q.name for q in dirs[1].glob("epoch-*")) == ["epoch-1.safetensors"]
    out = _run(a, b, p, dirs)
    (ma, ra), (mb, _) = out["A"], out["B"]
    assert ra.resumed_from_epoch == 1 and ra.epochs_run == 1
    w = fit_surrogate(x, y, sigmoid_coefficients("minimax"), 0.5, p.l2, 40, 2)
    assert np.max(np.abs(np.concatenate([ma.weights, mb.weights]) - w)) < 1e-3
    assert CaesarModel.load(dirs[0] / "model.safetensors").weights.shape == ma.weights.shape


def test_truncated_latest_checkpoint_falls_back_to_the_previous_one(
    rng: np.random.Generator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    x, y, (a, b) = _data(rng)
    p = CaesarParams(key_bits=KEY, learning_rate=0.5, batch_size=40, epochs=2)
    dirs = (tmp_path / "A", tmp_path / "B")
    out = _run(a, b, p, dirs)
    assert "A" in out and "B" in out
    latest = dirs[0] / "epoch-2.safetensors"
    assert (dirs[0] / "epoch-1.safetensors").is_file()
    latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 2])  # a torn write
    caplog.set_level("WARNING", logger="aisec.privacy.caesar.protocol")
    out = _run(a, b, p.model_copy(update={"epochs": 3}), dirs)
    (ma, ra), (mb, rb) = out["A"], out["B"]
    assert ra.resumed_from_epoch == rb.resumed_from_epoch == 1 and ra.epochs_run == 2
    assert len(ra.checkpoint_fallback) == 1 and rb.checkpoint_fallback == []
    assert "epoch 2 is unreadable" in ra.checkpoint_fallback[0]
    assert "resuming from epoch 1" in ra.checkpoint_fallback[0]
    assert any("epoch 2 is unreadable" in r.getMessage() for r in caplog.records)
    w = fit_surrogate(x, y, sigmoid_coefficients("minimax"), 0.5, p.l2, 40, 3)
    assert np.max(np.abs(np.concatenate([ma.weights, mb.weights]) - w)) < 1e-3


def test_unknown_recipe_name_lists_the_built_in_recipes() -> None:
    with pytest.raises(UnknownNameError) as info:
        load_recipe_named("a9a-quik")
    msg = str(info.value)
    assert "'a9a-quik'" in msg and all(name in msg for name in RECIPES)
    assert load_recipe_named("a9a-quick").protocol.key_bits == 1024


def test_row_count_and_id_mismatch(rng: np.random.Generator) -> None:
    _, _, (a, b) = _data(rng)
    p = CaesarParams(key_bits=KEY, epochs=1)
    out = _run(a.rows(np.arange(150)), b, p)
    msgs = " ".join(str(out.get(k)) for k in ("A_err", "B_err"))
    assert isinstance(out.get("A_err"), DataError) and "row counts differ" in msgs
    shuffled = PartyData(a.ids[::-1].copy(), a.X, None)
    out = _run(shuffled, b, p)
    assert isinstance(out.get("B_err"), DataError) and "ids differ" in str(out["B_err"])


@pytest.mark.parametrize("bad", [np.nan, np.inf, 1e9])
def test_bad_features_fail_fast_and_write_nothing(
    rng: np.random.Generator, tmp_path: Path, bad: float
) -> None:
    _, _, (a, b) = _data(rng)
    x = a.X.copy()
    x.data[3] = bad
    p = CaesarParams(key_bits=KEY, epochs=1)
    out = _run(PartyData(a.ids, x, None), b, p, (tmp_path / "A", tmp_path / "B"))
    assert isinstance(out.get("A_err"), DataError)
    assert str(out["A_err"]).count("\n") == 0 and "column" in str(out["A_err"])
    assert isinstance(out.get("B_err"), PeerError) and "aborted" in str(out["B_err"])
    assert not list(tmp_path.glob("*/*.safetensors"))


def test_abort_tells_the_peer_only_the_error_class_and_step(
    rng: np.random.Generator, tmp_path: Path
) -> None:
    _, _, (a, b) = _data(rng)
    x = a.X.copy()
    x.data[3] = 4242424.25  # a private feature value, out of range
    p = CaesarParams(key_bits=KEY, epochs=1)
    out = _run(PartyData(a.ids, x, None), b, p, (tmp_path / "alice-private", tmp_path / "B"))
    local, peer = str(out["A_err"]), str(out["B_err"])
    assert "4.24242e+06" in local  # the detail stays in A's own message
    assert isinstance(out["B_err"], PeerError) and "DataError" in peer and "'data'" in peer
    for private in ("4.24242e+06", "4242424", "column", "alice-private"):
        assert private not in peer, peer


def test_abort_keeps_a_local_checkpoint_path_from_the_peer(
    rng: np.random.Generator, tmp_path: Path
) -> None:
    _, _, (a, b) = _data(rng)
    blocked = tmp_path / "alice-private-ckpt"
    blocked.write_text("a file where A's checkpoint directory should be")
    p = CaesarParams(key_bits=KEY, epochs=1)
    out = _run(a, b, p, (blocked, tmp_path / "B"))
    local, peer = str(out["A_err"]), str(out["B_err"])
    assert "alice-private-ckpt" in local
    assert isinstance(out["B_err"], PeerError) and "'keys'" in peer
    assert "alice-private-ckpt" not in peer and str(tmp_path) not in peer, peer


def test_parameters_must_agree(rng: np.random.Generator) -> None:
    _, _, (a, b) = _data(rng)
    ca, cb = inprocess_pair(timeout_s=20)
    out: dict[str, Any] = {}

    def go(role, ch, data, lr):
        try:
            train_party(role, ch, data, CaesarParams(key_bits=KEY, learning_rate=lr, epochs=1))
        except Exception as exc:
            out[role] = exc

    ts = [
        threading.Thread(target=go, args=("A", ca, a, 0.5)),
        threading.Thread(target=go, args=("B", cb, b, 0.7)),
    ]
    [t.start() for t in ts]
    [t.join() for t in ts]
    assert isinstance(out["A"], ConfigError) and "learning_rate" in str(out["A"])


def test_split_prediction_and_party_files(rng: np.random.Generator, tmp_path: Path) -> None:
    _, _, (a, b) = _data(rng)
    ma = CaesarModel("A", rng.standard_normal(a.d))
    mb = CaesarModel("B", rng.standard_normal(b.d + 1))
    ma.save(tmp_path / "a.safetensors")
    assert np.array_equal(CaesarModel.load(tmp_path / "a.safetensors").weights, ma.weights)
    save_party(tmp_path / "b.safetensors", b)
    b2 = load_party(tmp_path / "b.safetensors")
    assert np.array_equal(b2.y, b.y) and (b2.X != b.X).nnz == 0
    ca, cb = inprocess_pair(timeout_s=20)
    res: dict[str, Any] = {}
    t = threading.Thread(target=lambda: res.setdefault("A", predict_party("A", ca, ma, a)))
    t.start()
    probs = predict_party("B", cb, mb, b2)
    t.join()
    z = ma.scores(a.X) + mb.scores(b.X)
    assert res["A"] is None and np.allclose(probs, 1 / (1 + np.exp(-z)))


def test_secureml_baseline_matches_plaintext_sgd(rng: np.random.Generator) -> None:
    x, y, (a, b) = _data(rng, n=200, d=30)
    r = train_secureml(
        a.X, b.X, y, coefficients=(0.5, 0.125), learning_rate=0.5, l2=1e-4, batch_size=50, epochs=2
    )
    w = fit_surrogate(x, y, (0.5, 0.125, 0.0), 0.5, 1e-4, 50, 2)
    assert np.max(np.abs(r.weights - w)) < 2e-3
    assert r.batches == 8 and r.bytes_dealer > 0
    # first epoch: each batch opens its masked rows (2 * m * d ring elements, dense); the
    # second epoch reuses them and sends only O(m + d)
    first, later = r.epoch_means(r.party_bytes_per_batch)
    assert r.batches_per_epoch == 4 and first > 2 * 50 * (30 + 1) * 8
    assert later < 4 * (50 + 31) * 8 + 2000
    assert len(r.online_seconds_per_batch) == len(r.offline_seconds_per_batch) == 8
    s = scores_with_intercept(x, r.weights)
    assert np.isfinite(s).all() and sp.issparse(a.X)


@needs_heu
@pytest.mark.parametrize("sigmoid,binary", [("minimax", True), ("cubic", False)])
def test_heu_ou_scheme_matches_plaintext_sgd(
    rng: np.random.Generator, sigmoid: str, binary: bool
) -> None:
    x, y, (a, b) = _data(rng, binary=binary)
    p = CaesarParams(
        key_bits=1024,
        he_scheme="heu-ou",
        sigmoid=sigmoid,
        learning_rate=0.5,
        batch_size=40,
        epochs=2,
    )
    out = _run(a, b, p)
    (ma, _), (mb, rb) = out["A"], out["B"]
    w = fit_surrogate(x, y, sigmoid_coefficients(sigmoid), 0.5, p.l2, 40, 2)
    assert np.max(np.abs(np.concatenate([ma.weights, mb.weights]) - w)) < 1e-3
    assert rb.batches == 8


@needs_heu
def test_heu_ou_resume_and_scheme_mismatch(rng: np.random.Generator, tmp_path: Path) -> None:
    x, y, (a, b) = _data(rng, binary=True)
    p = CaesarParams(key_bits=1024, he_scheme="heu-ou", batch_size=40, epochs=1)
    dirs = (tmp_path / "A", tmp_path / "B")
    out = _run(a, b, p, dirs)
    assert "A" in out and "B" in out
    assert (dirs[0] / "key.bin").read_bytes().startswith(b"AISEC-OU-SEC")
    out = _run(a, b, p.model_copy(update={"epochs": 2}), dirs)
    (ma, ra), (mb, _) = out["A"], out["B"]
    assert ra.resumed_from_epoch == 1 and ra.epochs_run == 1
    w = fit_surrogate(x, y, sigmoid_coefficients("minimax"), p.learning_rate, p.l2, 40, 2)
    assert np.max(np.abs(np.concatenate([ma.weights, mb.weights]) - w)) < 1e-3
    # a Paillier recipe over the OU checkpoint directories is refused, naming both schemes
    out = _run(a, b, p.model_copy(update={"he_scheme": "gmpy2-paillier", "epochs": 3}), dirs)
    err = out.get("A_err") or out.get("B_err")
    assert isinstance(err, ConfigError) and "heu-ou" in str(err)


@pytest.mark.parametrize("scheme", [pytest.param("heu-ou", marks=needs_heu), "gmpy2-paillier"])
def test_secureml_with_he_triples_matches_plaintext_sgd(
    rng: np.random.Generator, scheme: str
) -> None:
    x, y, (a, b) = _data(rng, n=24, d=6)
    kw = dict(coefficients=(0.5, 0.125), learning_rate=0.5, l2=1e-4, batch_size=8, epochs=1)
    r = train_secureml(a.X, b.X, y, triples="he", he_scheme=scheme, key_bits=1024, **kw)
    w = fit_surrogate(x, y, (0.5, 0.125, 0.0), 0.5, 1e-4, 8, 1)
    assert np.max(np.abs(r.weights - w)) < 2e-3
    assert r.triples == "he" and r.bytes_dealer == 0 and len(r.offline_seconds_per_batch) == 3
