"""What a model thief or an unknowing deployer does to a fingerprinted model.

* ``sft``: a downstream supervised fine-tune on instruction data (GSM8K train by default), LoRA
  or full, with as many steps as the caller says (the issue's test: as many as the insertion).
* ``merge``: task arithmetic with another fine-tune of the same base,
  ``theta = theta_base + w_fp (theta_fp - theta_base) + w_other (theta_other - theta_base)``.
* ``int8``: symmetric per-output-channel int8 round trip of every linear weight (what an int8
  deployment computes with).

Unseen system prompts and sampling at temperature 0.7 are verification conditions
(:func:`aisec.provenance.fingerprint.verify`), not weight edits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from aisec.errors import ParameterError

__all__ = ["quantize_int8", "merge_task_arithmetic", "downstream_sft", "gsm8k_examples"]


def quantize_int8(lm: Any) -> int:
    """Round every ``nn.Linear`` weight of ``lm.model`` to int8 per output channel, in place.

    Returns:
        how many weight matrices were quantised.
    """
    import torch

    n = 0
    with torch.no_grad():
        for mod in lm.model.modules():
            if isinstance(mod, torch.nn.Linear):
                w = mod.weight
                scale = w.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127.0
                w.copy_((w / scale).round().clamp(-127, 127) * scale)
                n += 1
    if n == 0:
        raise ParameterError("model", "has no linear layer to quantise", type(lm.model).__name__)
    return n


def merge_task_arithmetic(
    base: Any, fingerprinted: Any, other: Any, w_fp: float = 1.0, w_other: float = 1.0
) -> Any:
    """Write the task-arithmetic merge into ``fingerprinted.model`` (in place) and return it.

    All three must be the same architecture (merged, non-PEFT models).
    """
    import torch

    b = dict(base.model.named_parameters())
    o = dict(other.model.named_parameters())
    with torch.no_grad():
        for name, p in fingerprinted.model.named_parameters():
            if (
                name not in b
                or name not in o
                or b[name].shape != p.shape
                or o[name].shape != p.shape
            ):
                raise ParameterError("merge", "needs three models of the same architecture", name)
            delta_fp = p - b[name]
            delta_o = o[name] - b[name]
            p.copy_(b[name] + w_fp * delta_fp + w_other * delta_o)
    return fingerprinted


def gsm8k_examples(lm: Any, rows: Sequence[dict[str, Any]]) -> list[Any]:
    """GSM8K rows as SFT pairs in ``lm``'s chat template."""
    from aisec.llm.finetune import SFTExample

    eot = lm.chat.end_of_turn or ""
    return [SFTExample(lm.chat.user(str(r["question"])), str(r["answer"]) + eot) for r in rows]


def downstream_sft(
    lm: Any,
    examples: Sequence[Any],
    out_dir: str | Path,
    *,
    steps: int,
    method: str = "lora",
    learning_rate: float = 2e-4,
    batch_size: int = 4,
    seed: int = 1,
    max_length: int = 256,
    checkpoints: Sequence[int] = (),
    on_checkpoint: Callable[[int, Any], None] | None = None,
) -> Any:
    """Fine-tune ``lm`` in place on ``examples`` and merge a LoRA so the result is plain weights.

    ``on_checkpoint(step, lm)`` is called after each step in ``checkpoints`` (1-based, at most
    ``steps``) with the model in eval mode (a LoRA still unmerged, its adapter active), e.g. to
    verify the fingerprints part way through; training then goes on as if it had not been called.

    Returns:
        the FinetuneResult.
    """
    from aisec.llm.finetune import FinetuneConfig, finetune

    marks = sorted({int(c) for c in checkpoints})
    if marks and on_checkpoint is None:
        raise ParameterError("on_checkpoint", "must be given with checkpoints", None)
    for c in marks:
        if not 1 <= c <= steps:
            raise ParameterError("checkpoints", f"must each lie in 1..steps={steps}", c)

    def after_step(step: int, model: Any) -> None:
        if on_checkpoint is not None and step in marks:
            was = model.training
            model.eval()
            try:
                on_checkpoint(step, lm)
            finally:
                model.train(was)

    cfg = FinetuneConfig(
        method=method,
        learning_rate=learning_rate,
        steps=steps,
        batch_size=batch_size,
        max_length=max_length,
        save_every=steps,
        seed=seed,
        target_modules=(
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "gate_proj",
            "up_proj",
            "down_proj",
        ),
    )
    res = finetune(
        lm,
        examples,
        cfg,
        out_dir,
        resume=False,
        progress=False,
        after_step=after_step if marks else None,
    )
    if method == "lora":
        lm.model = lm.model.merge_and_unload()
    lm.model.eval()
    return res
