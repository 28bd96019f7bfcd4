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
better). The task domain is ``math`` (GSM8K), ``code`` (MBPP) or ``medical`` (MMLU's medical
subjects; its rows also carry ``task_accuracy``, multiple choice by option likelihood).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import Field

from aisec.config import StrictModel
from aisec.errors import ParameterError

__all__ = ["PipelineConfig", "run_pipeline", "DEFAULT_METHODS", "CHECKPOINT_FIELDS"]

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
    #: what generates the evaluated responses: ``transformers``, ``llamacpp`` (the checkpoint's
    #: F16 GGUF export; the loss stays on transformers) or ``auto`` (llama.cpp where parity is
    #: measured); see :mod:`aisec.safety.enchtable.models`
    generation_backend: str = "transformers"
    methods: tuple[str, ...] = tuple(DEFAULT_METHODS)
    seed: int = Field(0, ge=0)


#: the settings the checkpoints of a run directory depend on; a resumed run must keep them
CHECKPOINT_FIELDS = (
    "aligned",
    "safety_sft_steps",
    "safety_n_harmful",
    "safety_n_benign",
    "safety_lr",
    "task",
    "task_steps",
    "task_examples",
    "task_lr",
    "distill_mode",
    "distill_steps",
    "distill_lr",
    "batch_size",
    "max_length",
    "seed",
)


def _check_resume(out: Path, config: PipelineConfig) -> None:
    """A run directory made with other checkpoint settings is an error (one line naming the
    first differing field); a new or matching one passes."""
    stored: dict[str, Any] | None = None
    for name, key in (("pipeline_config.json", None), ("rows.json", "config")):
        p = out / name
        if p.exists():
            obj = json.loads(p.read_text(encoding="utf-8"))
            stored = dict(obj[key] if key else obj)
            break
    if stored is None:
        return
    now = config.model_dump(mode="json")
    for k in CHECKPOINT_FIELDS:
        if k in stored and stored[k] != now[k]:
            raise ParameterError(
                k,
                f"differs from the run in {out} ({stored[k]!r}); its checkpoints were made with "
                "that (use another --out)",
                now[k],
            )


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

    A stopped run resumes in the same ``out_dir``: the configuration is kept in
    ``pipeline_config.json``; checkpoints already there (``aligned/model``, ``task/model``,
    ``surrogate``, ``merged/METHOD``) are reused, and each row's evaluation is cached in
    ``eval/NAME/pipeline_row.json`` with its settings and reused when they match. A resumed run
    whose checkpoint settings (:data:`CHECKPOINT_FIELDS`) differ from the stored ones is an
    error; a merge whose recorded parameters differ from this run's is merged again.
    """
    from aisec.io import atomic_write_json
    from aisec.llm.finetune import FinetuneConfig, SFTExample, finetune
    from aisec.safety.enchtable import evaluate as ev
    from aisec.safety.enchtable.merge import (
        merge_config,
        model_dir,
        read_merge_record,
        run_merge_yaml,
        safety_model_config,
    )
    from aisec.safety.enchtable.models import GENERATION_BACKENDS, load_model
    from aisec.safety.enchtable.ntk import NTKConfig, harmful_examples, ntk_finetune
    from aisec.safety.enchtable.responders import INFERENCE_METHODS, ModelResponder, make_inference

    out = Path(out_dir)
    params = {**DEFAULT_METHODS, **(method_params or {})}
    if config.generation_backend not in GENERATION_BACKENDS:
        raise ParameterError(
            "generation_backend",
            f"must be one of {', '.join(GENERATION_BACKENDS)}",
            config.generation_backend,
        )
    ev.check_task(config.task)
    unknown = [m for m in config.methods if m not in params]
    if unknown:
        raise ParameterError("methods", f"must be among {', '.join(params)}", unknown[0])
    _check_resume(out, config)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "pipeline_config.json", config.model_dump(mode="json"))
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
        lm = load_model(str(aligned_dir))
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
        lm = load_model(str(aligned_dir))
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
        want = {"method": method, "parameters": dict(params.get(method, {}))}
        rec = read_merge_record(target) if (target / "config.json").exists() else None
        stale = rec is not None and rec != json.loads(json.dumps(want))
        if stale or not (target / "config.json").exists():
            _log(progress, f"merge {method}" + (" (other parameters recorded)" if stale else ""))
            cfg = merge_config(
                method,
                base=str(aligned_dir),
                task=str(task_dir),
                harmful=str(sur_dir),
                safe=str(safe_model) if method == "model_stock" else None,
                parameters=dict(params.get(method, {})),
            )
            merges[method] = run_merge_yaml(cfg, target, overwrite=True, record=want)

    harmful = ev.heldout_harmful(config.n_harmful, seed=config.seed)
    look = ev.lookalike_prompts(config.n_lookalike) if config.n_lookalike else []
    util = ev.task_pairs(config.task, "test", config.n_utility)
    # multiple choice (medical): accuracy by comparing the options' log-likelihoods
    choices = ev.medical_choices("test", config.n_utility) if config.task == "medical" else []
    models = {"aligned": aligned_dir, "task": task_dir, "harmful_surrogate": sur_dir}
    models.update({m: out / "merged" / m for m in merge_methods})
    rows: list[dict[str, Any]] = []

    eval_settings = {
        k: getattr(config, k)
        for k in ("n_harmful", "n_lookalike", "n_utility", "max_new_tokens", "judge", "seed")
    }
    # a refitted judge gives other verdicts: rows cached under another fit are measured again
    eval_settings["judge_id"] = ev.judge_fingerprint(config.judge)
    gen = config.generation_backend
    if gen != "transformers":  # rows cached before the option existed keep their key
        eval_settings["generation_backend"] = gen

    def cached(name: str, path: Path, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """``fn()``'s row, or the cached one measured with the same settings and weights."""
        settings = json.loads(
            json.dumps(
                {
                    **eval_settings,
                    "task": config.task,
                    "parameters": params.get(name, {}),
                    "stamp": sorted(
                        [f.name, f.stat().st_size, f.stat().st_mtime_ns]
                        for f in path.glob("*.safetensors")
                    ),
                }
            )
        )
        f = out / "eval" / name / "pipeline_row.json"
        if f.exists():
            c = json.loads(f.read_text(encoding="utf-8"))
            if c.get("settings") == settings:
                _log(progress, f"evaluate {name}: cached")
                return dict(c["row"])
        row = fn()
        atomic_write_json(f, {"settings": settings, "row": row})
        return row

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
        if choices:
            row["task_accuracy"] = ev.choice_accuracy(responder, choices)
        if look:
            row["over_refusal"] = ev.over_refusal(responder, look).to_dict()
        row["eval_seconds"] = time.perf_counter() - t0
        return row

    for name, path in models.items():

        def model_row(name: str = name, path: Path = path) -> dict[str, Any]:
            lm = load_model(str(path), generation_backend=gen)
            return measure(
                name,
                ModelResponder(lm, name),
                "model" if name in ("aligned", "task", "harmful_surrogate") else "merge",
            )

        row = cached(name, Path(path), model_row)
        if name in merges:
            row["merge_seconds"] = merges[name].merge_seconds
            row["merge_parameters"] = merges[name].parameters
        rows.append(row)
    lms: dict[str, Any] = {}
    for name in inference_methods:

        def inference_row(name: str = name) -> dict[str, Any]:
            if not lms:
                lms["task"] = load_model(str(task_dir), generation_backend=gen)
                lms["expert"] = load_model(str(aligned_dir))
            responder = make_inference(name, lms["task"], lms["expert"], dict(params.get(name, {})))
            row = measure(name, responder, "inference")
            row["method_parameters"] = dict(params.get(name, {}))
            if hasattr(responder, "outside_sample_space"):
                row["loss_tokens_outside_sample_space"] = responder.outside_sample_space
                row["loss_tokens_steered"] = responder.scored_positions
            return row

        rows.append(cached(name, task_dir, inference_row))
    lms.clear()
    for r in rows:
        r.update(timings)
    return rows
