"""End to end: (safety SFT of the base ->) aligned model -> task fine-tune + NTK-distilled
safety vector -> merges and inference-time defences -> rows.

:func:`run_pipeline` optionally makes the aligned model by a safety SFT of the base
(:mod:`~aisec.safety.enchtable.safety_sft`, when ``safety_sft_steps > 0``; otherwise the base
as it ships is the aligned model), fine-tunes it on a task (full fine-tuning of
``llm.finetune``), distils the harmful surrogate (:func:`aisec.safety.enchtable.ntk.ntk_finetune`),
merges the task model with every merge method through mergekit (EnchTable, TSV-Merge, RESTA,
SafeLoRA; mergekit's task arithmetic, TIES and Model Breadcrumbs given the surrogate with
weight -1, and Model Stock given the safety model ``aligned + delta``), wraps the task model in
the inference-time defences (Self-Reminder; SafeDecoding with the aligned model as the
expert), then measures each: ``unsafe_rate`` (judge, interval, unjudged and degenerate counts),
``over_refusal`` and ``utility`` (``-task_loss``, the negative held-out answer loss; higher is
better).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import Field

from aisec.config import StrictModel
from aisec.errors import ParameterError

__all__ = ["PipelineConfig", "run_pipeline", "DEFAULT_METHODS"]

#: methods of the comparison, ours then mergekit's; each maps to its merge parameters
DEFAULT_METHODS: dict[str, dict[str, Any]] = {
    "enchtable": {"beta": 0.5, "rank_ratio": 0.5, "temperature": 200.0},
    "tsv_merge": {"rank_ratio": 0.5},
    "resta": {"scale": 1.0},
    "safelora": {"threshold": 0.5},
    "task_arithmetic": {"safety_weight": 1.0},
    "ties": {"safety_weight": 1.0, "density": 0.2},
    "breadcrumbs": {"safety_weight": 1.0, "density": 0.9, "gamma": 0.01},
    "model_stock": {},
    "self_reminder": {},
    "safedecoding": {"alpha": 3.0, "first_m": 2, "num_common": 5},
}


class PipelineConfig(StrictModel):
    """One end-to-end run."""

    aligned: str = "tiny-llama"
    safety_sft_steps: int = Field(0, ge=0)
    safety_n_harmful: int = Field(48, ge=1)
    safety_n_benign: int = Field(48, ge=0)
    safety_lr: float = Field(3e-4, gt=0)
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
    from aisec.safety.enchtable.merge import (
        merge_config,
        model_dir,
        run_merge_yaml,
        safety_model_config,
    )
    from aisec.safety.enchtable.ntk import NTKConfig, harmful_examples, ntk_finetune
    from aisec.safety.enchtable.responders import INFERENCE_METHODS, ModelResponder, make_inference

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    params = {**DEFAULT_METHODS, **(method_params or {})}
    unknown = [m for m in config.methods if m not in params]
    if unknown:
        raise ParameterError("methods", f"must be among {', '.join(params)}", unknown[0])
    timings: dict[str, float] = {}

    base_dir = model_dir(config.aligned)
    if config.safety_sft_steps:
        from aisec.safety.enchtable.safety_sft import SafetySFTConfig, safety_sft

        aligned_dir = out / "aligned" / "model"
        if not (aligned_dir / "config.json").exists():
            _log(progress, f"safety SFT of the base ({config.safety_sft_steps} LoRA steps)")
            r0 = safety_sft(
                str(base_dir),
                SafetySFTConfig(
                    steps=config.safety_sft_steps,
                    n_harmful=config.safety_n_harmful,
                    n_benign=config.safety_n_benign,
                    learning_rate=config.safety_lr,
                    batch_size=config.batch_size,
                    max_length=config.max_length,
                    seed=config.seed,
                ),
                out / "aligned",
            )
            timings["safety_sft_seconds"] = r0.seconds
    else:
        aligned_dir = base_dir

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
    merge_methods = [m for m in config.methods if m not in INFERENCE_METHODS]
    inference_methods = [m for m in config.methods if m in INFERENCE_METHODS]
    safe_model = out / "safety_model"
    if "model_stock" in merge_methods and not (safe_model / "config.json").exists():
        _log(progress, "safety model (aligned + safety vector) for Model Stock")
        run_merge_yaml(
            safety_model_config(str(aligned_dir), str(sur_dir)), safe_model, overwrite=True
        )
    for method in merge_methods:
        target = out / "merged" / method
        if not (target / "config.json").exists():
            _log(progress, f"merge {method}")
            cfg = merge_config(
                method,
                base=str(aligned_dir),
                task=str(task_dir),
                harmful=str(sur_dir),
                safe=str(safe_model) if method == "model_stock" else None,
                parameters=dict(params.get(method, {})),
            )
            merges[method] = run_merge_yaml(cfg, target, overwrite=True)

    harmful = ev.heldout_harmful(config.n_harmful, seed=config.seed)
    look = ev.lookalike_prompts(config.n_lookalike) if config.n_lookalike else []
    util = ev.task_pairs(config.task, "test", config.n_utility)
    models = {"aligned": aligned_dir, "task": task_dir, "harmful_surrogate": sur_dir}
    models.update({m: out / "merged" / m for m in merge_methods})
    rows: list[dict[str, Any]] = []

    def measure(name: str, responder: Any, kind: str) -> dict[str, Any]:
        _log(progress, f"evaluate {name}")
        t0 = time.perf_counter()
        safety, _ = ev.unsafe_rate(
            responder, harmful, judge=config.judge, max_new_tokens=config.max_new_tokens
        )
        loss = ev.task_loss(responder, util)
        row: dict[str, Any] = {
            "model": name,
            "kind": kind,
            "arch": responder.lm.model.config.model_type,
            "aligned": config.aligned,
            "safety_sft": bool(config.safety_sft_steps),
            "task": config.task,
            "method": name,
            "unsafe_rate": safety.rate,
            "unsafe": safety.to_dict(),
            "task_loss": loss,
            "utility": -loss,
        }
        if look:
            row["over_refusal"] = ev.over_refusal(responder, look).to_dict()
        row["eval_seconds"] = time.perf_counter() - t0
        return row

    for name, path in models.items():
        lm = load_causal_lm(str(path))
        row = measure(
            name,
            ModelResponder(lm, name),
            "model" if name in ("aligned", "task", "harmful_surrogate") else "merge",
        )
        if name in merges:
            row["merge_seconds"] = merges[name].merge_seconds
            row["merge_parameters"] = merges[name].parameters
        rows.append(row)
        del lm
    if inference_methods:
        task_lm = load_causal_lm(str(task_dir))
        expert = load_causal_lm(str(aligned_dir))
        for name in inference_methods:
            responder = make_inference(name, task_lm, expert, dict(params.get(name, {})))
            row = measure(name, responder, "inference")
            row["method_parameters"] = dict(params.get(name, {}))
            if hasattr(responder, "outside_sample_space"):
                row["loss_tokens_outside_sample_space"] = responder.outside_sample_space
                row["loss_tokens_steered"] = responder.scored_positions
            rows.append(row)
        del task_lm, expert
    for r in rows:
        r.update(timings)
    return rows
