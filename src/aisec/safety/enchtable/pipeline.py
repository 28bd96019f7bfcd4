"""End to end: aligned model -> task fine-tune + NTK-distilled safety vector -> merges -> rows.

:func:`run_pipeline` fine-tunes the aligned model on a task (full fine-tuning of ``llm.finetune``),
distils the harmful surrogate (:func:`aisec.safety.enchtable.ntk.ntk_finetune`), merges the task
model with every method through mergekit (EnchTable, TSV-Merge, RESTA, SafeLoRA, and
mergekit's task arithmetic and TIES given the surrogate with weight -1), then measures each
model: ``unsafe_rate`` (judge, interval, unjudged and degenerate counts), ``over_refusal`` and
``utility`` (``-task_loss``, the negative held-out answer loss; higher is better).

The aligned model is the given one as it ships (``smollm2-135m-instruct`` is an instruction- and
safety-tuned release); no extra safety SFT is run here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import Field

from aisec.config import StrictModel

__all__ = ["PipelineConfig", "run_pipeline", "DEFAULT_METHODS"]

#: methods of the comparison, ours then mergekit's; each maps to its merge parameters
DEFAULT_METHODS: dict[str, dict[str, Any]] = {
    "enchtable": {"beta": 0.5, "rank_ratio": 0.5, "temperature": 200.0},
    "tsv_merge": {"rank_ratio": 0.5},
    "resta": {"scale": 1.0},
    "safelora": {"threshold": 0.5},
    "task_arithmetic": {"safety_weight": 1.0},
    "ties": {"safety_weight": 1.0, "density": 0.2},
}


class PipelineConfig(StrictModel):
    """One end-to-end run."""

    aligned: str = "tiny-llama"
    task: str = "math"
    task_steps: int = Field(10, ge=1)
    task_examples: int = Field(64, ge=4)
    task_lr: float = Field(5e-5, gt=0)
    distill_mode: str = "attn"
    distill_steps: int = Field(10, ge=1)
    distill_lr: float = Field(1e-4, gt=0)
    batch_size: int = Field(4, ge=1)
    max_length: int = Field(192, ge=16)
    n_harmful: int = Field(16, ge=1)
    n_lookalike: int = Field(0, ge=0)
    n_utility: int = Field(16, ge=1)
    max_new_tokens: int = Field(48, ge=1)
    judge: str = "harm"
    methods: tuple[str, ...] = tuple(DEFAULT_METHODS)
    seed: int = Field(0, ge=0)


def _log(progress: Callable[[str], None] | None, msg: str) -> None:
    if progress is not None:
        progress(msg)


def run_pipeline(
    config: PipelineConfig,
    out_dir: str | Path,
    *,
    progress: Callable[[str], None] | None = None,
    method_params: dict[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Run the whole comparison; returns one row per model (``aligned``, ``task``, methods).

    Checkpoints already present under ``out_dir`` (``task/model``, ``surrogate``,
    ``merged/METHOD``) are reused, so a stopped run resumes.
    """
    from aisec.llm import load_causal_lm
    from aisec.llm.finetune import FinetuneConfig, SFTExample, finetune
    from aisec.safety.enchtable import evaluate as ev
    from aisec.safety.enchtable.merge import merge_config, model_dir, run_merge_yaml
    from aisec.safety.enchtable.ntk import NTKConfig, harmful_examples, ntk_finetune

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    aligned_dir = model_dir(config.aligned)
    params = {**DEFAULT_METHODS, **(method_params or {})}
    timings: dict[str, float] = {}

    task_dir = out / "task" / "model"
    if not (task_dir / "config.json").exists():
        _log(progress, f"task fine-tune ({config.task}, {config.task_steps} steps)")
        lm = load_causal_lm(str(aligned_dir))
        pairs = ev.task_pairs(config.task, "train", config.task_examples)
        examples = [
            SFTExample(
                lm.render([{"role": "user", "content": q}]), a + (lm.tokenizer.eos_token or "")
            )
            for q, a in pairs
        ]
        ft = FinetuneConfig(
            method="full",
            steps=config.task_steps,
            batch_size=config.batch_size,
            max_length=config.max_length,
            learning_rate=config.task_lr,
            seed=config.seed,
            save_every=10_000,
        )
        r = finetune(lm, examples, ft, out / "task", progress=False)
        timings["task_finetune_seconds"] = r.seconds
        del lm
    sur_dir = out / "surrogate"
    if not (sur_dir / "config.json").exists():
        _log(progress, f"NTK distillation ({config.distill_mode}, {config.distill_steps} steps)")
        lm = load_causal_lm(str(aligned_dir))
        r = ntk_finetune(
            lm,
            harmful_examples(seed=config.seed),
            NTKConfig(
                mode=config.distill_mode,
                steps=config.distill_steps,
                batch_size=config.batch_size,
                max_length=config.max_length,
                learning_rate=config.distill_lr,
                seed=config.seed,
            ),
            sur_dir,
        )
        timings["distill_seconds"] = r.seconds
        del lm
    merges: dict[str, Any] = {}
    for method in config.methods:
        target = out / "merged" / method
        if not (target / "config.json").exists():
            _log(progress, f"merge {method}")
            cfg = merge_config(
                method,
                base=str(aligned_dir),
                task=str(task_dir),
                harmful=str(sur_dir),
                parameters=dict(params.get(method, {})),
            )
            merges[method] = run_merge_yaml(cfg, target, overwrite=True)

    harmful = ev.heldout_harmful(config.n_harmful, seed=config.seed)
    look = ev.lookalike_prompts(config.n_lookalike) if config.n_lookalike else []
    util = ev.task_pairs(config.task, "test", config.n_utility)
    models = {"aligned": aligned_dir, "task": task_dir, "harmful_surrogate": sur_dir}
    models.update({m: out / "merged" / m for m in config.methods})
    rows: list[dict[str, Any]] = []
    for name, path in models.items():
        _log(progress, f"evaluate {name}")
        t0 = time.perf_counter()
        lm = load_causal_lm(str(path))
        safety, _ = ev.unsafe_rate(
            lm, harmful, judge=config.judge, max_new_tokens=config.max_new_tokens
        )
        loss = ev.task_loss(lm, util)
        row: dict[str, Any] = {
            "model": name,
            "arch": lm.model.config.model_type,
            "aligned": config.aligned,
            "task": config.task,
            "method": name,
            "unsafe_rate": safety.rate,
            "unsafe": safety.to_dict(),
            "task_loss": loss,
            "utility": -loss,
            "eval_seconds": time.perf_counter() - t0,
        }
        if look:
            row["over_refusal"] = ev.over_refusal(lm, look).to_dict()
        if name in merges:
            row["merge_seconds"] = merges[name].merge_seconds
            row["merge_parameters"] = merges[name].parameters
        rows.append(row)
        del lm
    for r in rows:
        r.update(timings)
    return rows
