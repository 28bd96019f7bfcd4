"""Merge cost on tensors shaped like an 8B Llama's: ``merge_seconds`` and ``merge_peak_rss_gb``
of a merge method against mergekit's own task arithmetic on the same inputs.

:func:`write_random_llama` writes a Llama checkpoint of random weights with Llama-3-8B's
decoder shapes (hidden 4096, MLP 14336, 32 query and 8 key-value heads) and ``n_layers``
decoder layers as sharded safetensors (one shard per layer, with an index), with a small
vocabulary (the embedding and LM head are not full size: say so beside the figures).
:func:`measure` writes a base, a task model (base plus small noise on every layer tensor) and a
harmful surrogate (base plus other noise on the attention projections only: the reference's
default distillation trains ``self_attn``, so the safety vector is zero on the MLP and EnchTable
runs its SVDs on the four attention matrices of each layer; ``harmful_modules=None`` puts it on
every tensor), then runs each method in a fresh Python process and reads that process's own
peak resident set size.

Extrapolation to 32 layers. mergekit computes one output tensor at a time, but its writer
keeps output tensors in memory until a shard is full (``out_shard_size``, 5e9 bytes by
default), so the anonymous peak is a working set plus that buffer. :func:`extrapolate_anon`
takes the working set as the measured peak minus the buffered output of the measured layers
and adds the buffer a 32-layer model fills (at most one shard). The 2-layer task-arithmetic run
checks that model (``anon_model_error_gb``). Peak RSS (``VmHWM``) also counts the mapped
safetensors pages; its 32-layer figure is ``peak + (32 - n_layers) * per_layer_gb`` with the
growth measured from 1 to 2 layers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from aisec.errors import ParameterError

__all__ = [
    "LLAMA_8B",
    "SHARD_BYTES",
    "write_random_llama",
    "largest_tensor_set_gb",
    "output_gib",
    "extrapolate_anon",
    "run_one",
    "measure",
]

#: mergekit's default output shard size in bytes (``--out-shard-size 5B``)
SHARD_BYTES = 5_000_000_000

#: Llama-3-8B's decoder shapes
LLAMA_8B = {
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
}


def _layer_shapes(cfg: dict[str, int]) -> dict[str, tuple[int, ...]]:
    h, f = cfg["hidden_size"], cfg["intermediate_size"]
    kv = h // cfg["num_attention_heads"] * cfg["num_key_value_heads"]
    return {
        "self_attn.q_proj.weight": (h, h),
        "self_attn.k_proj.weight": (kv, h),
        "self_attn.v_proj.weight": (kv, h),
        "self_attn.o_proj.weight": (h, h),
        "mlp.gate_proj.weight": (f, h),
        "mlp.up_proj.weight": (f, h),
        "mlp.down_proj.weight": (h, f),
        "input_layernorm.weight": (h,),
        "post_attention_layernorm.weight": (h,),
    }


def write_random_llama(
    out: str | Path,
    n_layers: int,
    *,
    seed: int,
    base: str | Path | None = None,
    noise: float = 0.01,
    vocab: int = 256,
    shapes: dict[str, int] | None = None,
    only: tuple[str, ...] | None = None,
) -> Path:
    """Write a random Llama checkpoint (``base is None``) or ``base`` plus Gaussian noise of
    scale ``noise`` on every decoder tensor (seeded; with ``only``, on the tensors whose name
    holds one of those strings, the rest copied), as one safetensors shard per layer."""
    import torch
    from safetensors.torch import save_file

    if n_layers < 1:
        raise ParameterError("n_layers", "must be >= 1", n_layers)
    cfg = dict(shapes or LLAMA_8B)
    h = cfg["hidden_size"]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(int(seed))
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "num_hidden_layers": n_layers,
        "vocab_size": vocab,
        "max_position_embeddings": 8192,
        "rms_norm_eps": 1e-5,
        "rope_theta": 500000.0,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        **cfg,
    }
    (out / "config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
    weight_map: dict[str, str] = {}

    def tensor(name: str, shape: tuple[int, ...], shard: str) -> Any:
        if base is None:
            if len(shape) == 1:
                return torch.ones(shape)
            return torch.randn(shape, generator=g) * (1.0 / shape[1] ** 0.5)
        from safetensors import safe_open

        with safe_open(str(Path(base) / shard), framework="pt") as fh:
            t = fh.get_tensor(name)
        if only is not None and not any(o in name for o in only):
            return t
        return t + noise * t.std() * torch.randn(t.shape, generator=g)

    outer = {
        "model.embed_tokens.weight": (vocab, h),
        "model.norm.weight": (h,),
        "lm_head.weight": (vocab, h),
    }
    shard = "model-outer.safetensors"
    save_file({n: tensor(n, s, shard).contiguous() for n, s in outer.items()}, str(out / shard))
    weight_map.update({n: shard for n in outer})
    for i in range(n_layers):
        shard = f"model-layer{i:02d}.safetensors"
        sd = {}
        for n, s in _layer_shapes(cfg).items():
            name = f"model.layers.{i}.{n}"
            sd[name] = tensor(name, s, shard).contiguous()
        save_file(sd, str(out / shard))
        weight_map.update({n: shard for n in sd})
        del sd
    index = {"metadata": {}, "weight_map": weight_map}
    (out / "model.safetensors.index.json").write_text(json.dumps(index), encoding="utf-8")
    return out


def largest_tensor_set_gb(path: str | Path, n_inputs: int) -> float:
    """GiB of the largest tensor in fp32 times ``n_inputs`` inputs plus the output:
    what mergekit holds at once for one output tensor."""
    from safetensors import safe_open

    idx = json.loads((Path(path) / "model.safetensors.index.json").read_text(encoding="utf-8"))
    biggest = 0
    for shard in sorted(set(idx["weight_map"].values())):
        with safe_open(str(Path(path) / shard), framework="pt") as fh:
            for name in fh.keys():
                n = 1
                for d in fh.get_slice(name).get_shape():
                    n *= int(d)
                biggest = max(biggest, n)
    return biggest * 4 * (n_inputs + 1) / 2**30


def output_gib(n_layers: int, shapes: dict[str, int] | None = None, vocab: int = 256) -> float:
    """GiB of a merged fp32 checkpoint of ``n_layers`` layers (what mergekit's writer buffers)."""
    cfg = dict(shapes or LLAMA_8B)
    per_layer = 0
    for shape in _layer_shapes(cfg).values():
        n = 1
        for d in shape:
            n *= d
        per_layer += n
    outer = 2 * vocab * cfg["hidden_size"] + cfg["hidden_size"]
    return (n_layers * per_layer + outer) * 4 / 2**30


def extrapolate_anon(
    peak_anon_gib: float,
    n_layers: int,
    to_layers: int = 32,
    *,
    shapes: dict[str, int] | None = None,
    vocab: int = 256,
    shard_bytes: int = SHARD_BYTES,
) -> float:
    """Anonymous peak at ``to_layers``: the working set (measured peak minus the output buffered
    for ``n_layers``) plus the output buffered for ``to_layers`` (at most one shard)."""
    cap = shard_bytes / 2**30
    working = peak_anon_gib - min(output_gib(n_layers, shapes, vocab), cap)
    return working + min(output_gib(to_layers, shapes, vocab), cap)


def run_one(config: dict[str, Any], out: str | Path, threads: int = 1) -> dict[str, Any]:
    """Run one merge in a fresh Python process; its merge seconds, its own peak RSS
    (``VmHWM``, which counts the pages of the safetensors files mergekit maps and reads) and
    its peak anonymous memory (``RssAnon`` sampled every 20 ms: what the merge itself holds)."""
    code = (
        "import json,sys,threading,time,torch\n"
        f"torch.set_num_threads({int(threads)})\n"
        "peak={'anon':0}\n"
        "def anon():\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('RssAnon:'):\n"
        "            return int(line.split()[1])*1024\n"
        "    return 0\n"
        "def watch():\n"
        "    while True:\n"
        "        peak['anon']=max(peak['anon'],anon()); time.sleep(0.02)\n"
        "threading.Thread(target=watch,daemon=True).start()\n"
        "from aisec.safety.enchtable.merge import run_merge_yaml\n"
        "r=run_merge_yaml(json.loads(sys.argv[1]),sys.argv[2],overwrite=True)\n"
        "peak['anon']=max(peak['anon'],anon())\n"
        "print(json.dumps({'merge_seconds':r.merge_seconds,'peak_rss_gb':r.peak_rss_gb,"
        "'peak_anon_gb':peak['anon']/2**30}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(config), str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"merge subprocess failed: {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(
    work: str | Path,
    *,
    n_layers: int = 1,
    methods: tuple[str, ...] = ("task_arithmetic", "enchtable"),
    per_layer_from_two: bool = True,
    threads: int = 1,
    seed: int = 0,
    shapes: dict[str, int] | None = None,
    harmful_modules: tuple[str, ...] | None = ("self_attn",),
) -> dict[str, Any]:
    """Merge cost of ``methods`` on random 8B-shaped inputs of ``n_layers`` layers (see the
    module docstring); returns the per-method figures and the extrapolation to 32 layers."""
    import shutil

    from aisec.safety.enchtable.merge import merge_config

    work = Path(work)

    def inputs(n: int) -> dict[str, Path]:
        root = work / f"L{n}"
        paths = {k: root / k for k in ("base", "task", "harmful")}
        if not (paths["harmful"] / "model.safetensors.index.json").exists():
            write_random_llama(paths["base"], n, seed=seed, shapes=shapes)
            write_random_llama(paths["task"], n, seed=seed + 1, base=paths["base"], shapes=shapes)
            write_random_llama(
                paths["harmful"],
                n,
                seed=seed + 2,
                base=paths["base"],
                noise=0.02,
                shapes=shapes,
                only=harmful_modules,
            )
        return paths

    def run(method: str, paths: dict[str, Path]) -> dict[str, Any]:
        params = {"beta": 0.5} if method == "enchtable" else {}
        cfg = merge_config(
            method,
            base=str(paths["base"]),
            task=str(paths["task"]),
            harmful=str(paths["harmful"]),
            parameters=params,
        )
        target = paths["base"].parent / f"out-{method}"
        try:
            return run_one(cfg, target, threads)
        finally:
            shutil.rmtree(target, ignore_errors=True)

    paths = inputs(n_layers)
    result: dict[str, Any] = {
        "n_layers": n_layers,
        "shapes": dict(shapes or LLAMA_8B),
        "vocab": 256,
        "harmful_modules": list(harmful_modules) if harmful_modules else "all",
        "largest_tensor_set_gb": largest_tensor_set_gb(paths["base"], 3),
        "methods": {m: run(m, paths) for m in methods},
    }
    per_layer = 0.0
    if per_layer_from_two:
        p2 = inputs(n_layers + 1)
        two = run("task_arithmetic", p2)
        one = (
            result["methods"]["task_arithmetic"]["peak_rss_gb"]
            if "task_arithmetic" in methods
            else run("task_arithmetic", paths)["peak_rss_gb"]
        )
        per_layer = max(0.0, two["peak_rss_gb"] - one)
        one_anon = result["methods"].get("task_arithmetic", {}).get("peak_anon_gb")
        if one_anon is not None:
            predicted = extrapolate_anon(one_anon, n_layers, n_layers + 1, shapes=shapes)
            result["anon_model_error_gb"] = two["peak_anon_gb"] - predicted
        result["task_arithmetic_next_layer"] = two
    result["per_layer_gb"] = per_layer
    for r in result["methods"].values():
        r["peak_rss_32_layers_gb"] = r["peak_rss_gb"] + (32 - n_layers) * per_layer
        r["peak_anon_32_layers_gb"] = extrapolate_anon(r["peak_anon_gb"], n_layers, shapes=shapes)
    if "task_arithmetic" in result["methods"]:
        ref = result["methods"]["task_arithmetic"]["peak_rss_gb"]
        ref_anon = result["methods"]["task_arithmetic"]["peak_anon_gb"]
        for r in result["methods"].values():
            r["rss_vs_mergekit"] = r["peak_rss_gb"] / ref
            r["anon_vs_mergekit"] = r["peak_anon_gb"] / ref_anon
    return result
