"""Merge cost: the random Llama checkpoints are sharded like a real one and load in
transformers; each method's peak RSS comes from its own process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SMALL = {
    "hidden_size": 64,
    "intermediate_size": 96,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
}


def test_random_llama_is_sharded_per_layer_and_loads(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("transformers")
    from aisec.safety.enchtable.merge_cost import largest_tensor_set_gb, write_random_llama

    base = write_random_llama(tmp_path / "b", 2, seed=0, shapes=SMALL)
    task = write_random_llama(tmp_path / "t", 2, seed=1, base=base, shapes=SMALL)
    idx = json.loads((base / "model.safetensors.index.json").read_text())
    assert sorted(set(idx["weight_map"].values())) == [
        "model-layer00.safetensors",
        "model-layer01.safetensors",
        "model-outer.safetensors",
    ]
    mb = tf.AutoModelForCausalLM.from_pretrained(base)
    mt = tf.AutoModelForCausalLM.from_pretrained(task)
    w = "model.layers.1.mlp.gate_proj.weight"
    pb, pt = dict(mb.named_parameters())[w], dict(mt.named_parameters())[w]
    assert pb.shape == (96, 64)
    rel = float((pt - pb).detach().norm() / pb.detach().norm())
    assert 0.001 < rel < 0.05  # the task model is the base plus 1 % noise
    assert not torch.equal(pb, pt)
    # largest tensor: the 96 x 64 MLP matrix (vocab 256 x 64 embeddings are larger here)
    assert largest_tensor_set_gb(base, 3) == pytest.approx(256 * 64 * 4 * 4 / 2**30)


@pytest.mark.slow
def test_measure_reports_each_method_from_its_own_process(tmp_path: Path) -> None:
    pytest.importorskip("mergekit")
    from aisec.safety.enchtable.merge_cost import measure

    r = measure(tmp_path, n_layers=1, shapes=SMALL)
    for m in ("task_arithmetic", "enchtable"):
        v = r["methods"][m]
        assert v["merge_seconds"] > 0 and v["peak_rss_gb"] > 0.05
        assert 0 < v["peak_anon_gb"] <= v["peak_rss_gb"] * 1.05
        assert v["peak_rss_32_layers_gb"] == pytest.approx(
            v["peak_rss_gb"] + 31 * r["per_layer_gb"]
        )
        assert v["peak_anon_32_layers_gb"] > v["peak_anon_gb"]
    assert r["methods"]["task_arithmetic"]["rss_vs_mergekit"] == pytest.approx(1.0)


def test_anonymous_peak_extrapolates_as_working_set_plus_one_shard_of_output() -> None:
    from aisec.safety.enchtable.merge_cost import SHARD_BYTES, extrapolate_anon, output_gib

    layer = output_gib(2) - output_gib(1)
    # a Llama-3-8B decoder layer: 218,112,000 parameters, fp32
    assert layer == pytest.approx(218_112_000 * 4 / 2**30)
    # below a shard, each extra layer adds its output; beyond, the buffer stays one shard
    assert extrapolate_anon(2.0, 1, 2) == pytest.approx(2.0 + layer)
    cap = SHARD_BYTES / 2**30
    assert extrapolate_anon(2.0, 1, 32) == pytest.approx(2.0 - output_gib(1) + cap)
    assert extrapolate_anon(2.0, 1, 64) == extrapolate_anon(2.0, 1, 32)
