"""Supervised fine-tuning of a causal LM: full or LoRA (peft), with checkpoints and resume.

The loss is next-token cross-entropy on the completion tokens only (the prompt is context).
Batches are drawn from a per-epoch permutation of a seeded generator, so a run that resumes
from a checkpoint sees exactly the batches the uninterrupted run would have seen. A checkpoint
is the trainable weights plus the AdamW state, both as safetensors (no pickle), plus a JSON
with the step and the loss log; it is written atomically every ``save_every`` steps.

Outputs in ``out_dir``: ``adapter/`` (LoRA, PEFT format: ``adapter_config.json`` +
``adapter_model.safetensors``) or ``model/`` (full), ``checkpoint/`` and ``train_log.jsonl``.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from aisec.config import StrictModel
from aisec.errors import DependencyError, InputFileError, ParameterError
from aisec.io import atomic_write_json, atomic_write_text, load_safetensors, save_safetensors

__all__ = ["SFTExample", "FinetuneConfig", "FinetuneResult", "finetune", "build_batch", "export_checkpoint"]


@dataclass(frozen=True)
class SFTExample:
    """A training pair: ``prompt`` (rendered chat, context only) and ``completion`` (learned)."""

    prompt: str
    completion: str


class FinetuneConfig(StrictModel):
    """Fine-tuning recipe."""

    method: Literal["lora", "full"] = "lora"
    lora_r: int = Field(8, ge=1)
    lora_alpha: int = Field(16, ge=1)
    lora_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    #: LoRA only in these decoder layers (0-based); None: every layer. Backpropagation then
    #: stops at the lowest adapted layer, so adapting the top layers only is also cheaper.
    layers_to_transform: tuple[int, ...] | None = None
    learning_rate: float = Field(2e-4, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    warmup_steps: int = Field(0, ge=0)
    steps: int = Field(100, ge=1)
    batch_size: int = Field(4, ge=1)
    max_length: int = Field(256, ge=8)
    save_every: int = Field(25, ge=1)
    max_grad_norm: float = Field(1.0, gt=0.0)
    seed: int = Field(0, ge=0)


@dataclass(frozen=True)
class FinetuneResult:
    """What a run produced: where the weights are, the losses and the time spent."""

    out_dir: Path
    weights_dir: Path
    steps: int
    losses: list[float]
    seconds: float
    resumed_from: int


def build_batch(tokenizer: Any, examples: Sequence[SFTExample], max_length: int) -> dict[str, Any]:
    """Tokenise examples into right-padded ids with labels -100 on the prompt and padding.

    Returns:
        dict of (B, L) long tensors ``input_ids``, ``attention_mask``, ``labels``.
    """
    import torch

    rows, labels = [], []
    for ex in examples:
        p = tokenizer(ex.prompt, add_special_tokens=False)["input_ids"]
        c = tokenizer(ex.completion, add_special_tokens=False)["input_ids"]
        ids = (p + c)[:max_length]
        lab = ([-100] * len(p) + c)[:max_length]
        rows.append(ids)
        labels.append(lab)
    width = max(len(r) for r in rows)
    pad = int(tokenizer.pad_token_id)
    ids_t = torch.full((len(rows), width), pad, dtype=torch.long)
    lab_t = torch.full((len(rows), width), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (r, lab) in enumerate(zip(rows, labels, strict=True)):
        ids_t[i, : len(r)] = torch.tensor(r)
        lab_t[i, : len(lab)] = torch.tensor(lab)
        mask[i, : len(r)] = 1
    return {"input_ids": ids_t, "attention_mask": mask, "labels": lab_t}


def _batch_indices(n: int, step: int, batch_size: int, seed: int) -> list[int]:
    """Indices of the examples of ``step`` (epoch-wise seeded permutations; resumable)."""
    per_epoch = max(1, n // batch_size)
    epoch, k = divmod(step, per_epoch)
    perm = np.random.default_rng([seed, epoch]).permutation(n)
    return [int(i) for i in perm[k * batch_size : (k + 1) * batch_size]]


def _trainable(model: Any) -> dict[str, Any]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def _save_checkpoint(ckpt: Path, model: Any, opt: Any, step: int, losses: list[float],
                     config: FinetuneConfig) -> None:
    tmp = ckpt.with_name(ckpt.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    params = _trainable(model)
    save_safetensors(tmp / "weights.safetensors",
                     {n: p.detach().contiguous() for n, p in params.items()})
    names = list(params)
    state: dict[str, Any] = {}
    for i, p in enumerate(params.values()):
        st = opt.state.get(p, {})
        for k, v in st.items():
            state[f"{names[i]}::{k}"] = v.detach().reshape(-1) if v.dim() == 0 else v.detach()
    if state:
        save_safetensors(tmp / "optimizer.safetensors", {k: v.contiguous() for k, v in state.items()})
    atomic_write_json(tmp / "trainer.json", {"step": step, "losses": losses,
                                             "config": config.model_dump(mode="json")})
    if ckpt.exists():
        shutil.rmtree(ckpt)
    tmp.rename(ckpt)


def _load_checkpoint(ckpt: Path, model: Any, opt: Any, config: FinetuneConfig) -> tuple[int, list[float]]:
    import torch

    meta = json.loads((ckpt / "trainer.json").read_text(encoding="utf-8"))
    saved = FinetuneConfig.model_validate(meta["config"])
    # how often a run checkpoints does not change what it trains: a resume may choose another
    if saved.model_copy(update={"save_every": config.save_every}) != config:
        raise InputFileError(ckpt, "was written with a different fine-tuning config; "
                             "use a new out_dir or the same config to resume")
    params = _trainable(model)
    weights = load_safetensors(ckpt / "weights.safetensors")
    missing = set(params) - set(weights)
    if missing:
        raise InputFileError(ckpt, f"misses {len(missing)} trainable tensors (e.g. {sorted(missing)[0]})")
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(weights[n])
    opt_file = ckpt / "optimizer.safetensors"
    if opt_file.exists():
        flat = load_safetensors(opt_file)
        for n, p in params.items():
            st = {k.split("::", 1)[1]: v for k, v in flat.items() if k.split("::", 1)[0] == n}
            if st:
                if "step" in st:
                    st["step"] = st["step"].reshape(())
                opt.state[p] = st
    return int(meta["step"]), [float(x) for x in meta["losses"]]


def finetune(
    lm: Any,
    examples: Sequence[SFTExample],
    config: FinetuneConfig,
    out_dir: str | Path,
    *,
    base_name: str | None = None,
    resume: bool = True,
    progress: bool | Callable[[int, int, float], None] = True,
    chat_template: str | None = None,
    stop_after: int | None = None,
    after_step: Callable[[int, Any], None] | None = None,
    extra_loss: Callable[[int, Any], Any] | None = None,
) -> FinetuneResult:
    """Fine-tune ``lm`` (a :class:`aisec.llm.LocalLM`) on ``examples``.

    Args:
        lm: the model to train; LoRA wraps ``lm.model`` in place with a PEFT model.
        examples: training pairs (at least ``config.batch_size``).
        config: the recipe.
        out_dir: where weights, checkpoints and the log go.
        base_name: what the adapter config names as its base (an embedded name keeps the
            adapter portable); defaults to the model's own ``name_or_path``.
        resume: continue from ``out_dir/checkpoint`` when present.
        progress: ``True`` for a progress bar on stderr, or a callback (step, steps, loss).
        chat_template: saved beside the adapter (``aisec-chat.json``) so loading it restores
            the template it was trained with.
        stop_after: stop (checkpoint and export) after this many steps while keeping the
            learning-rate schedule of ``config.steps``; a later call resumes to the end.
        after_step: called as ``after_step(step, model)`` after each optimizer step (1-based
            step), before the checkpoint, e.g. to average the weights toward the base model.
        extra_loss: ``extra_loss(step, model)`` (0-based step) returns a scalar tensor added to
            the batch loss before the backward pass, e.g. a regulariser toward the base model;
            the logged loss is the sum.

    Returns:
        FinetuneResult with the weights directory (``adapter`` or ``model``) and the losses.
    """
    import torch

    if len(examples) < config.batch_size:
        raise ParameterError("examples", f"must hold at least batch_size={config.batch_size} pairs",
                             len(examples))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = lm.model
    if config.method == "lora":
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError:
            raise DependencyError("peft", "llm") from None
        if not hasattr(model, "peft_config"):
            lcfg = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha,
                              lora_dropout=config.lora_dropout,
                              target_modules=list(config.target_modules), task_type="CAUSAL_LM",
                              layers_to_transform=(list(config.layers_to_transform)
                                                   if config.layers_to_transform else None))
            # LoRA's A matrices are random: seed them from the recipe (without touching the
            # caller's global torch RNG) so a run is reproducible and resumable.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(config.seed)
                model = get_peft_model(model, lcfg)
            lm.model = model
    else:
        for p in model.parameters():
            p.requires_grad_(True)
    model.train()
    params = list(_trainable(model).values())
    opt = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)

    def lr_at(step: int) -> float:
        if config.warmup_steps and step < config.warmup_steps:
            return config.learning_rate * (step + 1) / config.warmup_steps
        frac = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
        return config.learning_rate * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))

    ckpt = out / "checkpoint"
    start, losses = 0, []
    if resume and (ckpt / "trainer.json").exists():
        start, losses = _load_checkpoint(ckpt, model, opt, config)
    log = out / "train_log.jsonl"
    if start and log.exists():
        # steps logged after the checkpoint (a run stopped between two) are trained again
        kept = log.read_text(encoding="utf-8").splitlines()[:start]
        atomic_write_text(log, "".join(line + "\n" for line in kept))
    bar = _progress_bar(progress, config.steps, start)
    t0 = time.time()
    try:
        last = config.steps if stop_after is None else min(config.steps, stop_after)
        for step in range(start, last):
            batch = build_batch(lm.tokenizer, [examples[i] for i in _batch_indices(
                len(examples), step, config.batch_size, config.seed)], config.max_length)
            batch = {k: v.to(lm.device) for k, v in batch.items()}
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            loss = model(**batch).loss
            if extra_loss is not None:
                loss = loss + extra_loss(step, model)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            opt.step()
            if after_step is not None:
                after_step(step + 1, model)
            losses.append(float(loss.detach()))
            with open(log, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"step": step + 1, "loss": losses[-1], "lr": lr_at(step)}) + "\n")
            bar(step + 1, losses[-1])
            if (step + 1) % config.save_every == 0 or step + 1 == last:
                _save_checkpoint(ckpt, model, opt, step + 1, losses, config)
    finally:
        bar(None, None)
    model.eval()
    weights_dir = _export(lm, model, config, out, base_name, chat_template)
    return FinetuneResult(out, weights_dir, len(losses), losses, time.time() - t0, start)


def _export(lm: Any, model: Any, config: FinetuneConfig, out: Path, base_name: str | None,
            chat_template: str | None) -> Path:
    from aisec.llm.model import CHAT_FILE

    if config.method == "lora":
        target = out / "adapter"
        model.save_pretrained(str(target), safe_serialization=True)
        cfg_path = target / "adapter_config.json"
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        if base_name:
            cfg["base_model_name_or_path"] = base_name
        atomic_write_text(cfg_path, json.dumps(cfg, indent=2, sort_keys=True))
    else:
        target = out / "model"
        model.save_pretrained(str(target), safe_serialization=True)
        lm.tokenizer.save_pretrained(str(target))
    if chat_template:
        atomic_write_json(target / CHAT_FILE, {"chat_template": chat_template})
    return target


def _progress_bar(progress: bool | Callable[[int, int, float], None], total: int, start: int
                  ) -> Callable[[int | None, float | None], None]:
    if callable(progress):
        return lambda step, loss: progress(step, total, loss) if step is not None else None
    if not progress:
        return lambda step, loss: None
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    bar = Progress(TextColumn("fine-tune"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("loss {task.fields[loss]}"), TimeRemainingColumn(),
                   console=Console(stderr=True), transient=False)
    task = bar.add_task("train", total=total, completed=start, loss="-")
    bar.start()

    def update(step: int | None, loss: float | None) -> None:
        if step is None:
            bar.stop()
        else:
            bar.update(task, completed=step, loss=f"{loss:.3f}")

    return update


def export_checkpoint(out_dir: str | Path, base: str, *, chat_template: str | None = None,
                      target: str | Path | None = None) -> Path:
    """Turn ``out_dir/checkpoint`` of a LoRA run into a PEFT adapter directory (e.g. to ship
    the weights of a run stopped early). ``base`` is the model the run started from.

    Returns:
        the adapter directory (``target`` or ``out_dir/adapter-step<N>``).
    """
    import torch

    from aisec.llm.model import load_causal_lm

    out = Path(out_dir)
    ckpt = out / "checkpoint"
    if not (ckpt / "trainer.json").exists():
        raise InputFileError(ckpt, "holds no checkpoint (trainer.json missing)")
    meta = json.loads((ckpt / "trainer.json").read_text(encoding="utf-8"))
    config = FinetuneConfig.model_validate(meta["config"])
    if config.method != "lora":
        raise ParameterError("method", "must be lora to export an adapter", config.method)
    from peft import LoraConfig, get_peft_model

    lm = load_causal_lm(base)
    lcfg = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=list(config.target_modules), task_type="CAUSAL_LM",
                      layers_to_transform=(list(config.layers_to_transform)
                                           if config.layers_to_transform else None))
    model = get_peft_model(lm.model, lcfg)
    weights = load_safetensors(ckpt / "weights.safetensors")
    params = _trainable(model)
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(weights[n])
    lm.model = model
    dest = Path(target) if target else out / f"adapter-step{int(meta['step'])}"
    tmp = dest.with_name(dest.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    made = _export(lm, model, config, tmp, base, chat_template)
    if dest.exists():
        shutil.rmtree(dest)
    made.rename(dest)
    shutil.rmtree(tmp, ignore_errors=True)
    return dest
