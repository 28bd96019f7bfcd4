"""CAESAR cost measurement (threads and two processes over TLS), the SecureML sweep, and that a
missing HE library is recorded, never silently replaced."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from aisec.privacy.caesar import CaesarParams, split_columns, zipf_sparse
from aisec.privacy.caesar.compare import SecureMLComparison, compare_with_secureml
from aisec.privacy.caesar.measure import measure_batches
from aisec.privacy.caesar.run import he_scheme_here

pytest.importorskip("gmpy2")


def _xy(n: int = 32, d: int = 40):
    x, y = zipf_sparse(n, d, 4, np.random.default_rng(0))
    a, b = split_columns(x, y, 0.5)
    return a.X, b.X, y


def _params(batch: int = 16) -> CaesarParams:
    return CaesarParams(key_bits=1024, sigmoid="minimax", batch_size=batch, epochs=1, max_batches=2)


def test_measure_batches_threads_counts_two_batches_and_their_bytes() -> None:
    xa, xb, y = _xy()
    c = measure_batches(xa, xb, y, _params())
    assert c.layout == "threads" and c.batches == 2 and c.he_scheme == "gmpy2-paillier"
    # linear sigmoid: per batch one error ciphertext per row each way plus packed z shares
    assert c.bytes_per_batch > 2 * 16 * 128
    assert c.seconds_per_batch > 0


def test_measure_batches_two_processes_over_tls_matches_threads_bytes(tmp_path: Path) -> None:
    xa, xb, y = _xy()
    t = measure_batches(xa, xb, y, _params())
    p = measure_batches(xa, xb, y, _params(), processes_dir=tmp_path, timeout_s=120)
    assert p.layout == "processes" and p.batches == 2
    assert (tmp_path / "certs" / "ca.pem").is_file()
    # same messages on either transport (ciphertext sizes vary by a few bytes)
    assert abs(p.bytes_per_batch - t.bytes_per_batch) / t.bytes_per_batch < 0.01


def test_he_scheme_here_records_the_fallback_when_heu_is_missing(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "heu", None)  # `import heu` now fails
    scheme, why = he_scheme_here("heu-ou")
    assert scheme == "gmpy2-paillier"
    assert why is not None and "heu-ou" in why and "sf-heu" in why
    assert he_scheme_here("gmpy2-paillier") == ("gmpy2-paillier", None)


def test_compare_with_secureml_skips_missing_heu_and_says_so(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "heu", None)
    spec = SecureMLComparison(
        dims=[40],
        densities=[0.1],
        batch_size=8,
        batches=1,
        secureml_he_dims=[],
        schemes=["gmpy2-paillier", "heu-ou"],
        latency_ms=0.0,
    )
    out = compare_with_secureml(spec, np.random.default_rng(0))
    assert out.schemes == ["gmpy2-paillier"]
    assert out.skipped == {"heu-ou": "sf-heu is not installed"}
    assert [r["labels"]["scheme"] for r in out.rows] == ["gmpy2-paillier"]
    assert any("heu-ou skipped" in n for n in out.notes)
    assert out.secureml_he_scheme == "gmpy2-paillier"
    m = out.rows[0]["metrics"]
    assert m["speedup_vs_secureml"] == pytest.approx(m["secureml_seconds"] / m["caesar_seconds"])


def test_vs_secureml_scenario_labels_the_skipped_scheme(monkeypatch, tmp_path: Path) -> None:
    from aisec.bench.scenario import BenchContext
    from aisec.bench.scenarios.caesar import vs_secureml

    monkeypatch.setitem(sys.modules, "heu", None)
    params = {
        "dims": [40],
        "densities": [0.1],
        "batch_size": 8,
        "batches": 1,
        "secureml_he_dims": [],
        "schemes": ["gmpy2-paillier", "heu-ou"],
        "latency_ms": 0.0,
        "bandwidth_mbps": 100.0,
    }
    ctx = BenchContext(seed=0, suite="quick", work_dir=tmp_path, rng=np.random.default_rng(0))
    res = vs_secureml(params, ctx)
    assert res.labels["skipped"] == "heu-ou: sf-heu is not installed"
    assert {r["labels"]["scheme"] for r in res.breakdown} == {"gmpy2-paillier"}


def test_auc_scenario_labels_the_heu_fallback(monkeypatch, tmp_path: Path) -> None:
    from aisec.bench.scenario import BenchContext
    from aisec.bench.scenarios.caesar import auc_vs_plaintext

    monkeypatch.setitem(sys.modules, "heu", None)
    params = {
        "dataset": "adult-a9a",
        "rows": 200,
        "key_bits": 1024,
        "sigmoid": "minimax",
        "learning_rate": 1.0,
        "epochs": 1,
        "batch_size": 64,
        "workers": 1,
        "he_scheme": "heu-ou",
    }
    ctx = BenchContext(seed=0, suite="quick", work_dir=tmp_path, rng=np.random.default_rng(0))
    res = auc_vs_plaintext(params, ctx)
    assert res.labels["he_scheme"] == "gmpy2-paillier"  # what ran, not what was asked
    assert res.labels["fallback"] == "heu-ou -> gmpy2-paillier: sf-heu is not installed"
    assert any(n.startswith("fallback:") for n in res.notes)
