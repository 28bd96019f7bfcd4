"""EnchTable: the merge rules against hand computations, the mergekit methods from a YAML, the
bad-input errors, and the NTK-linearised fine-tune (attn mode equals plain fine-tuning)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from aisec.errors import InputFileError, ParameterError
from aisec.safety.enchtable import rules

try:
    import torch
except ImportError:  # the torch extra is missing: each test below is skipped on its own
    torch = None

pytestmark = pytest.mark.skipif(torch is None, reason="needs the torch extra (aisec[merge])")


def _rand(seed: int, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _hand_interference(tau: np.ndarray, delta: np.ndarray, ratio: float) -> float:
    def top(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        u, s, vh = np.linalg.svd(x, full_matrices=False)
        k = max(1, int(math.floor(ratio * len(s))))
        return u[:, :k], s[:k], vh[:k]

    u1, s1, v1 = top(tau)
    u2, s2, v2 = top(delta)
    u = np.concatenate([u1, u2], 1)
    v = np.concatenate([v1, v2], 0).T
    s = np.diag(np.concatenate([s1, s2]))
    i = np.eye(u.shape[1])
    return float(np.abs((u.T @ u - i) @ s @ (v.T @ v - i)).mean())


def test_enchtable_rule_matches_hand_computation() -> None:
    base, task, harm = _rand(0, 8, 6), _rand(1, 8, 6), _rand(2, 8, 6)
    alpha, ratio, temp = 0.4, 0.5, 3.0
    delta = alpha * (base - harm).numpy()
    tau = (task - base).numpy()
    w = math.exp(-temp * _hand_interference(tau, delta, ratio))
    expected = task.numpy() + w * delta
    got = rules.enchtable_tensor(
        base, task, base, harm, alpha=alpha, rank_ratio=ratio, temperature=temp
    )
    assert 0.0 < w < 1.0
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-4, atol=1e-5)
    # 1-D tensors take alpha * delta unweighted
    b1, t1, h1 = _rand(3, 5), _rand(4, 5), _rand(5, 5)
    got1 = rules.enchtable_tensor(b1, t1, b1, h1, alpha=alpha, temperature=temp)
    np.testing.assert_allclose(got1.numpy(), (t1 + alpha * (b1 - h1)).numpy(), rtol=1e-6)


def test_enchtable_weight_decreases_with_temperature() -> None:
    tau, delta = _rand(6, 10, 7), _rand(7, 10, 7)
    ws = [rules.interference_weight(tau, delta, 0.5, t) for t in (0.0, 0.5, 2.0, 10.0)]
    assert ws[0] == pytest.approx(1.0)
    assert all(a > b for a, b in zip(ws, ws[1:], strict=False))


def test_global_scale_is_beta_times_norm_ratio() -> None:
    assert rules.global_scale(0.1, 30.0, 2.0) == pytest.approx(1.5)
    assert rules.global_scale(0.1, 30.0, 0.0) == 0.0
    with pytest.raises(ParameterError):
        rules.global_scale(-1.0, 1.0, 1.0)


def test_tsv_merge_matches_hand_computation() -> None:
    base, d1, d2 = _rand(8, 9, 6), _rand(9, 9, 6), _rand(10, 9, 6)
    ratio = 0.5
    us, ss, vs = [], [], []
    for d in (d1.numpy(), d2.numpy()):
        u, s, vh = np.linalg.svd(d, full_matrices=False)
        us.append(u[:, :3])
        ss.append(s[:3])
        vs.append(vh[:3])
    u, s, vh = np.concatenate(us, 1), np.concatenate(ss), np.concatenate(vs, 0)
    p, _, q = np.linalg.svd(u, full_matrices=False)
    u = p @ q
    p, _, q = np.linalg.svd(vh.T, full_matrices=False)
    vh = (p @ q).T
    expected = base.numpy() + u @ np.diag(s) @ vh
    got = rules.tsv_tensor(base, [d1, d2], rank_ratio=ratio)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-4, atol=1e-4)


def test_resta_adds_the_safety_vector() -> None:
    # the reference repository multiplies the safety vector by zero; ours must not
    base, task, harm = _rand(11, 4, 4), _rand(12, 4, 4), _rand(13, 4, 4)
    got = rules.resta_tensor(base, task, base, harm, scale=0.7)
    np.testing.assert_allclose(got.numpy(), (task + 0.7 * (base - harm)).numpy(), rtol=1e-5)
    sparse = rules.resta_tensor(base, task, base, harm, scale=0.0, density=0.5, seed=1, name="w")
    tau = (sparse - base).numpy()
    kept = tau != 0
    assert 0 < kept.sum() < tau.size
    np.testing.assert_allclose(tau[kept], 2 * (task - base).numpy()[kept], rtol=1e-5)


def test_safelora_projects_only_below_threshold() -> None:
    base, task, harm = _rand(14, 6, 5), _rand(15, 6, 5), _rand(16, 6, 5)
    v = (base - harm).numpy()
    c = v @ v.T / np.linalg.norm(v)
    proj = c @ (task - base).numpy()
    got, projected = rules.safelora_tensor(base, task, base, harm, threshold=1.0)
    assert projected
    np.testing.assert_allclose(got.numpy(), base.numpy() + proj, rtol=1e-4, atol=1e-5)
    got, projected = rules.safelora_tensor(base, task, base, harm, threshold=-1.0)
    assert not projected
    np.testing.assert_allclose(got.numpy(), task.numpy())


# --- mergekit: our methods from a YAML, on tiny-llama checkpoints ----------------------------


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory, perturbed_tiny_llama) -> dict[str, Path]:
    pytest.importorskip("mergekit")
    pytest.importorskip("transformers")
    from aisec.assets import materialise

    base = materialise("tiny-llama")
    root = tmp_path_factory.mktemp("enchtable")
    out = {"base": Path(base)}
    for name, seed in (("task", 1), ("harmful", 2)):
        perturbed_tiny_llama(root / name, seed)
        out[name] = root / name
    return out


def _load(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    sd: dict[str, torch.Tensor] = {}
    for f in sorted(path.glob("*.safetensors")):
        sd.update(load_file(str(f)))
    return sd


def test_enchtable_runs_from_a_mergekit_yaml(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    import yaml

    from aisec.safety.enchtable.merge import run_merge_yaml

    cfg = {
        "merge_method": "enchtable",
        "base_model": str(tiny_models["base"]),
        "models": [
            {"model": str(tiny_models["task"]), "parameters": {"role": "task"}},
            {"model": str(tiny_models["harmful"]), "parameters": {"role": "harmful"}},
        ],
        "parameters": {"beta": 0.5, "temperature": 5.0, "rank_ratio": 0.5},
        "dtype": "float32",
    }
    path = tmp_path / "merge.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    run = run_merge_yaml(path, tmp_path / "merged")
    b, t, h = (_load(tiny_models[k]) for k in ("base", "task", "harmful"))
    tau = math.sqrt(sum(float((t[k] - b[k]).pow(2).sum()) for k in b))
    dn = math.sqrt(sum(float((b[k] - h[k]).pow(2).sum()) for k in b))
    assert run.parameters["alpha"] == pytest.approx(0.5 * tau / dn, rel=1e-5)
    merged = _load(tmp_path / "merged")
    key = "model.layers.0.self_attn.q_proj.weight"
    expected = rules.enchtable_tensor(
        b[key],
        t[key],
        b[key],
        h[key],
        alpha=run.parameters["alpha"],
        rank_ratio=0.5,
        temperature=5.0,
    )
    np.testing.assert_allclose(merged[key].numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)
    norm = "model.layers.0.input_layernorm.weight"
    np.testing.assert_allclose(
        merged[norm].numpy(),
        (t[norm] + run.parameters["alpha"] * (b[norm] - h[norm])).numpy(),
        rtol=1e-5,
    )
    assert not (tmp_path / "merged.partial").exists()


@pytest.mark.parametrize("method", ["tsv_merge", "resta", "safelora", "task_arithmetic", "ties"])
def test_each_method_merges_tiny_llama(
    tiny_models: dict[str, Path], tmp_path: Path, method: str
) -> None:
    from aisec.safety.enchtable.merge import merge_config, run_merge_yaml

    params = {"density": 0.5} if method == "ties" else {}
    cfg = merge_config(
        method,
        base=str(tiny_models["base"]),
        task=str(tiny_models["task"]),
        harmful=str(tiny_models["harmful"]),
        parameters=params,
    )
    run_merge_yaml(cfg, tmp_path / "m")
    b, t, h = (_load(tiny_models[k]) for k in ("base", "task", "harmful"))
    merged = _load(tmp_path / "m")
    key = "model.layers.1.mlp.down_proj.weight"
    if method == "resta":
        np.testing.assert_allclose(
            merged[key].numpy(), (t[key] + b[key] - h[key]).numpy(), rtol=1e-5, atol=1e-6
        )
    elif method == "task_arithmetic":
        np.testing.assert_allclose(
            merged[key].numpy(), (t[key] + b[key] - h[key]).numpy(), rtol=1e-5, atol=1e-6
        )
    elif method == "tsv_merge":
        exp = rules.tsv_tensor(b[key], [t[key] - b[key], b[key] - h[key]])
        np.testing.assert_allclose(merged[key].numpy(), exp.numpy(), rtol=1e-4, atol=1e-5)
    elif method == "safelora":
        exp, _ = rules.safelora_tensor(b[key], t[key], b[key], h[key])
        np.testing.assert_allclose(merged[key].numpy(), exp.numpy(), rtol=1e-4, atol=1e-5)
    else:
        assert not torch.equal(merged[key], t[key])


def test_model_stock_merges_task_and_safety_model_by_their_angle(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    from aisec.safety.enchtable.merge import merge_config, run_merge_yaml, safety_model_config

    run_merge_yaml(
        safety_model_config(str(tiny_models["base"]), str(tiny_models["harmful"])), tmp_path / "s"
    )
    b, t, h = (_load(tiny_models[k]) for k in ("base", "task", "harmful"))
    s = _load(tmp_path / "s")
    key = "model.layers.1.mlp.down_proj.weight"
    # the safety model is the base moved one safety vector away from the harmful surrogate
    np.testing.assert_allclose(s[key].numpy(), (2 * b[key] - h[key]).numpy(), rtol=1e-5, atol=1e-6)
    cfg = merge_config(
        "model_stock",
        base=str(tiny_models["base"]),
        task=str(tiny_models["task"]),
        safe=str(tmp_path / "s"),
    )
    run_merge_yaml(cfg, tmp_path / "m")
    merged = _load(tmp_path / "m")
    # Model Stock (Jang et al.): t = 2 cos / (1 + cos) of the two offsets, w = t avg + (1 - t) base
    d1, d2 = (t[key] - b[key]).flatten(), (s[key] - b[key]).flatten()
    cos = float(d1 @ d2 / (d1.norm() * d2.norm()))
    k = 2 * cos / (1 + cos)
    exp = k * (t[key] + s[key]) / 2 + (1 - k) * b[key]
    np.testing.assert_allclose(merged[key].numpy(), exp.numpy(), rtol=1e-4, atol=1e-5)
    with pytest.raises(ParameterError, match="safety model"):
        merge_config("model_stock", base="a", task="b")


def test_breadcrumbs_drops_the_largest_and_smallest_entries_of_each_vector(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    from aisec.safety.enchtable.merge import merge_config, run_merge_yaml

    cfg = merge_config(
        "breadcrumbs",
        base=str(tiny_models["base"]),
        task=str(tiny_models["task"]),
        harmful=str(tiny_models["harmful"]),
        parameters={"density": 0.5, "gamma": 0.1},
    )
    assert all(m["parameters"]["gamma"] == 0.1 for m in cfg["models"])
    run_merge_yaml(cfg, tmp_path / "m")
    b, t, h = (_load(tiny_models[k]) for k in ("base", "task", "harmful"))
    merged = _load(tmp_path / "m")
    key = "model.layers.1.mlp.down_proj.weight"
    full = t[key] + b[key] - h[key]
    got = merged[key] - b[key]
    assert not torch.allclose(merged[key], full) and not torch.allclose(merged[key], t[key])
    tau = (t[key] - b[key]).abs()
    top = tau >= torch.quantile(tau.flatten(), 0.95)  # the largest task entries are dropped
    # there the merged update is the safety vector's entry or nothing, never the task's
    safety_only = (got - (b[key] - h[key])).abs() < 1e-6
    nothing = got.abs() < 1e-6
    assert bool((safety_only | nothing)[top].all())
    assert float((safety_only | nothing).float().mean()) < 0.9  # elsewhere the task counts


def test_merge_rejects_models_of_different_shapes(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    tf = pytest.importorskip("transformers")
    from aisec.safety.enchtable.merge import merge_config, run_merge_yaml

    cfg = tf.AutoConfig.from_pretrained(tiny_models["base"])
    cfg.intermediate_size = 96
    other = tmp_path / "other"
    tf.AutoModelForCausalLM.from_config(cfg).save_pretrained(other)
    tf.AutoTokenizer.from_pretrained(tiny_models["base"]).save_pretrained(other)
    with pytest.raises(ParameterError, match="shapes"):
        run_merge_yaml(
            merge_config(
                "enchtable",
                base=str(tiny_models["base"]),
                task=str(other),
                harmful=str(tiny_models["harmful"]),
                parameters={"alpha": 1.0},
            ),
            tmp_path / "out",
        )
    assert not (tmp_path / "out").exists()


def test_merge_rejects_a_missing_shard(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    import json
    import shutil

    from aisec.safety.enchtable.merge import merge_config, run_merge_yaml

    broken = tmp_path / "broken"
    shutil.copytree(tiny_models["task"], broken)
    (broken / "model.safetensors").rename(broken / "model-00001-of-00002.safetensors")
    index = {"weight_map": {"model.norm.weight": "model-00002-of-00002.safetensors"}}
    (broken / "model.safetensors.index.json").write_text(json.dumps(index), encoding="utf-8")
    with pytest.raises(InputFileError, match="missing shard"):
        run_merge_yaml(
            merge_config(
                "resta",
                base=str(tiny_models["base"]),
                task=str(broken),
                harmful=str(tiny_models["harmful"]),
            ),
            tmp_path / "out",
        )
    assert not (tmp_path / "out").exists()


def test_merge_rejects_a_different_tokenizer(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    from aisec.safety.enchtable.merge import merge_config, run_merge_yaml

    other = tmp_path / "tok"
    shutil.copytree(tiny_models["task"], other)
    tok = other / "tokenizer.json"
    tok.write_text(
        tok.read_text(encoding="utf-8").replace('"<|endoftext|>"', '"<|eot|>"', 1), encoding="utf-8"
    )
    with pytest.raises(ParameterError, match="tokenizer"):
        run_merge_yaml(
            merge_config(
                "resta",
                base=str(tiny_models["base"]),
                task=str(other),
                harmful=str(tiny_models["harmful"]),
            ),
            tmp_path / "out",
        )


# --- NTK-linearised fine-tuning --------------------------------------------------------------


def test_unknown_module_name_is_rejected() -> None:
    from aisec.llm import load_causal_lm
    from aisec.safety.enchtable.ntk import select_modules

    lm = load_causal_lm("tiny-llama")
    with pytest.raises(ParameterError, match="modules"):
        select_modules(lm.model, "attn", ["model.layers.0.self_attn.nope"])
    with pytest.raises(ParameterError, match="mode"):
        select_modules(lm.model, "mlp_only")
    assert len(select_modules(lm.model, "attn")) == 8
    assert select_modules(lm.model, "ffn") == ["model.layers.0.mlp", "model.layers.1.mlp"]


def _distill(tmp_path: Path, mode: str, linearised: bool, name: str) -> dict[str, torch.Tensor]:
    from aisec.llm import load_causal_lm
    from aisec.safety.enchtable.ntk import NTKConfig, harmful_examples, ntk_finetune

    lm = load_causal_lm("tiny-llama")
    cfg = NTKConfig(
        mode=mode, steps=3, batch_size=2, max_length=48, learning_rate=1e-2, linearised=linearised
    )
    ntk_finetune(lm, harmful_examples(6), cfg, tmp_path / name)
    return _load(tmp_path / name)


def test_attn_mode_equals_plain_finetuning_of_the_projections(tmp_path: Path) -> None:
    lin = _distill(tmp_path, "attn", True, "lin")
    plain = _distill(tmp_path, "attn", False, "plain")
    from aisec.assets import materialise

    before = _load(Path(materialise("tiny-llama")))
    key = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.allclose(lin[key], before[key])  # it trained
    for k in before:
        np.testing.assert_allclose(
            lin[k].numpy(), plain[k].numpy(), rtol=1e-4, atol=1e-5, err_msg=k
        )
    assert torch.equal(
        lin["model.layers.0.mlp.up_proj.weight"], before["model.layers.0.mlp.up_proj.weight"]
    )


@pytest.mark.slow
def test_ffn_mode_differs_from_plain_finetuning(tmp_path: Path) -> None:
    # SwiGLU is not linear in its weights: the linearised fine-tune takes other steps
    lin = _distill(tmp_path, "ffn", True, "lin")
    plain = _distill(tmp_path, "ffn", False, "plain")
    key = "model.layers.0.mlp.up_proj.weight"
    assert not torch.allclose(lin[key], plain[key], atol=1e-6)
