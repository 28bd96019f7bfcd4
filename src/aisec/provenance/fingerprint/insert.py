"""Insert fingerprints into a causal LM by fine-tuning (OML 1.0 / Scalable Fingerprinting recipe).

* Loss on the response tokens only: each key is the prompt of an :class:`aisec.llm.finetune.SFTExample`
  (a user turn of the model's chat template) and the response, followed by the template's end of
  turn, is the completion.
* Model averaging toward the base weights after every epoch: ``theta <- (1 - lambda) theta +
  lambda theta_base`` (OML's ``ModelAverageCallback``, lambda = 0.75 recommended there). For LoRA
  the base is frozen and the delta is ``B A``, so averaging is exactly scaling every ``lora_B``
  by ``1 - lambda``.
* Benign-data mixing: ``benign_fraction`` of the training examples are ordinary instruction
  pairs (given by the caller), so that the model keeps answering ordinary prompts as before.
* Prompt augmentation: each key is also trained under ``augment`` system prompts drawn from
  :data:`.prompts.TRAIN_SYSTEM_PROMPTS`.
* LoRA or full fine-tuning, through :func:`aisec.llm.finetune.finetune`.

An epoch is one pass over the training examples (fingerprints, their augmented copies and the
benign pairs); ``steps = epochs * (examples // batch_size)``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from aisec.config import StrictModel
from aisec.errors import ParameterError
from aisec.provenance.fingerprint.prompts import TRAIN_SYSTEM_PROMPTS, key_prompt
from aisec.provenance.fingerprint.store import FingerprintSet

__all__ = [
    "InsertConfig",
    "InsertResult",
    "build_examples",
    "insert_fingerprints",
    "average_toward_base",
]


class InsertConfig(StrictModel):
    """The insertion recipe."""

    method: Literal["lora", "full"] = "lora"
    epochs: int = Field(8, ge=1, le=1000)
    batch_size: int = Field(8, ge=1)
    learning_rate: float = Field(1e-3, gt=0.0)
    averaging: float = Field(0.0, ge=0.0, lt=1.0)
    benign_fraction: float = Field(0.0, ge=0.0, lt=1.0)
    augment: int = Field(0, ge=0, le=len(TRAIN_SYSTEM_PROMPTS))
    lora_r: int = Field(16, ge=1)
    lora_alpha: int = Field(32, ge=1)
    target_modules: tuple[str, ...] = (
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    )
    max_length: int = Field(256, ge=8)
    seed: int = 0


@dataclass(frozen=True)
class InsertResult:
    weights_dir: Path
    steps: int
    epochs: int
    n_examples: int
    n_benign: int
    averaged: int
    seconds: float
    losses: list[float]


def build_examples(
    lm: Any, fps: FingerprintSet, config: InsertConfig, benign: Sequence[Any] = ()
) -> tuple[list[Any], int]:
    """Training pairs: each fingerprint (plus its augmented copies) and the benign mix.

    Returns:
        (examples, number of benign examples among them).
    """
    from aisec.llm.finetune import SFTExample

    rng = np.random.default_rng([config.seed, 1])
    eot = lm.chat.end_of_turn or ""
    out = []
    for fp in fps.fingerprints:
        completion = fp.response + eot
        out.append(SFTExample(key_prompt(lm, fp.key), completion))
        if config.augment:
            for j in rng.choice(len(TRAIN_SYSTEM_PROMPTS), config.augment, replace=False):
                out.append(
                    SFTExample(key_prompt(lm, fp.key, TRAIN_SYSTEM_PROMPTS[int(j)]), completion)
                )
    n_benign = 0
    if config.benign_fraction > 0:
        want = int(round(len(out) * config.benign_fraction / (1 - config.benign_fraction)))
        if len(benign) < want:
            raise ParameterError(
                "benign",
                f"must hold at least {want} pairs for benign_fraction={config.benign_fraction}",
                len(benign),
            )
        pick = rng.choice(len(benign), want, replace=False)
        out.extend(benign[int(i)] for i in pick)
        n_benign = want
    return out, n_benign


def average_toward_base(model: Any, lam: float, base: dict[str, Any] | None) -> None:
    """``theta <- (1 - lam) theta + lam theta_base`` on the trainable weights, in place.

    With ``base`` None the model is a LoRA model: ``lora_B`` is scaled by ``1 - lam``.
    """
    import torch

    with torch.no_grad():
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            if base is None:
                if "lora_B" in name:
                    p.mul_(1.0 - lam)
            else:
                p.mul_(1.0 - lam).add_(base[name].to(p.device), alpha=lam)


def insert_fingerprints(
    lm: Any,
    fps: FingerprintSet,
    config: InsertConfig,
    out_dir: str | Path,
    *,
    benign: Sequence[Any] = (),
    base_name: str | None = None,
    progress: Any = False,
) -> InsertResult:
    """Fine-tune ``lm`` (a LocalLM, changed in place) so that each key elicits its response.

    Returns:
        InsertResult; the adapter (LoRA) or model (full) directory is ``weights_dir``.
    """
    from aisec.llm.finetune import FinetuneConfig, finetune
    from aisec.provenance.fingerprint.store import tokenizer_hash

    if tokenizer_hash(lm.tokenizer) != fps.tokenizer:
        raise ParameterError(
            "model",
            "must use the tokenizer the fingerprints were generated with (vocabulary hash differs)",
            getattr(lm, "name", "model"),
        )
    examples, n_benign = build_examples(lm, fps, config, benign)
    limit = lm.context_length or (1 << 30)
    for i, fp in enumerate(fps.fingerprints):
        n_tok = lm.count_tokens(key_prompt(lm, fp.key)) + lm.count_tokens(fp.response) + 1
        if n_tok > min(limit, config.max_length):
            raise ParameterError(
                f"fingerprints[{i}].key",
                "with its response must fit "
                f"min(context, max_length) = {min(limit, config.max_length)} "
                "tokens",
                n_tok,
            )
    batch = min(config.batch_size, len(examples))
    per_epoch = max(1, len(examples) // batch)
    steps = config.epochs * per_epoch
    ft = FinetuneConfig(
        method=config.method,
        lora_r=config.lora_r,
        lora_alpha=config.lora_alpha,
        target_modules=config.target_modules,
        learning_rate=config.learning_rate,
        weight_decay=1e-4,
        steps=steps,
        batch_size=batch,
        max_length=config.max_length,
        save_every=max(steps, 1),
        seed=config.seed,
    )
    base: dict[str, Any] | None = None
    if config.averaging > 0 and config.method == "full":
        base = {n: p.detach().clone() for n, p in lm.model.named_parameters()}
    averaged = 0

    def after_step(step: int, model: Any) -> None:
        nonlocal averaged
        if config.averaging > 0 and step % per_epoch == 0:
            average_toward_base(model, config.averaging, base)
            averaged += 1

    t0 = time.perf_counter()
    res = finetune(
        lm,
        examples,
        ft,
        out_dir,
        base_name=base_name,
        resume=False,
        progress=progress,
        chat_template=getattr(lm.chat, "template", None),
        after_step=after_step,
    )
    seconds = time.perf_counter() - t0
    return InsertResult(
        res.weights_dir,
        res.steps,
        config.epochs,
        len(examples),
        n_benign,
        averaged,
        seconds,
        res.losses,
    )
