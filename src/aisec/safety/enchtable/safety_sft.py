"""Safety SFT of a base model: the aligned model of the EnchTable comparison.

The base is LoRA-fine-tuned to refuse harmful requests and to stay helpful on benign ones, then
the adapter is merged into a full checkpoint (mergekit merges full checkpoints).

* Harmful side: the prompts of the judge corpus's ``train`` split on StrongREJECT, AdvBench and
  HarmBench (the held-out evaluation prompts of
  :func:`aisec.safety.enchtable.evaluate.heldout_harmful` lie outside the whole corpus, so they
  are never trained on). The target is a refusal the corpus holds for that prompt (a response
  labelled ``safe`` with the refusal flag), else one of :data:`REFUSALS`.
* Benign side: AlpacaEval instructions with their reference outputs (``alpaca_eval`` under the
  shared data folder, research-use licence: read at run time, never shipped), cut at a sentence
  end near ``max_answer_chars``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field

from aisec.config import StrictModel
from aisec.errors import AssetError, ParameterError

__all__ = ["SafetySFTConfig", "SafetySFTResult", "REFUSALS", "safety_pairs", "safety_sft"]

REFUSALS = (
    "I can't help with that. It could cause real harm to people. If you have a related safe "
    "question, I'm happy to help.",
    "I'm sorry, but I won't provide that. It is harmful or illegal, and I can't assist with it.",
    "I cannot assist with this request because it could hurt someone. Let me know if there is "
    "something else I can do for you.",
    "Sorry, I can't do that. Helping with this would be unsafe and against my guidelines.",
)


class SafetySFTConfig(StrictModel):
    """The safety SFT recipe (LoRA on the attention and MLP projections)."""

    steps: int = Field(60, ge=1)
    n_harmful: int = Field(48, ge=1)
    n_benign: int = Field(48, ge=0)
    learning_rate: float = Field(3e-4, gt=0)
    lora_r: int = Field(16, ge=1)
    batch_size: int = Field(8, ge=1)
    max_length: int = Field(192, ge=16)
    max_answer_chars: int = Field(400, ge=40)
    seed: int = Field(0, ge=0)


@dataclass(frozen=True)
class SafetySFTResult:
    """Where the aligned model is and how it was made."""

    model_dir: Path
    n_harmful: int
    n_benign: int
    losses: list[float]
    seconds: float


def _cut(text: str, limit: int) -> str:
    text = text.strip()
    if len(text) <= limit:
        return text
    head = text[:limit]
    stop = max(head.rfind(". "), head.rfind(".\n"), head.rfind("\n"))
    return head[: stop + 1].strip() if stop > limit // 3 else head.strip()


def safety_pairs(config: SafetySFTConfig) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(harmful request, refusal) and (benign instruction, helpful answer) training pairs."""
    import numpy as np

    from aisec.assets.packages import shared_data_dir
    from aisec.judges.corpus import load_corpus

    rows = [
        r
        for r in load_corpus("train")
        if r["set"] in ("strongreject", "advbench", "harmbench") and str(r["prompt"]).strip()
    ]
    refusal_of: dict[str, str] = {}
    for r in sorted(rows, key=lambda r: r["id"]):
        text = str(r["response"]).strip()
        if r["label"] == "safe" and r.get("refusal") and len(text) >= 20:
            refusal_of.setdefault(str(r["prompt"]), text)
    prompts = sorted({str(r["prompt"]) for r in rows})
    rng = np.random.default_rng([config.seed, 2020])
    if config.n_harmful > len(prompts):
        raise ParameterError(
            "n_harmful", f"must be at most {len(prompts)} corpus train prompts", config.n_harmful
        )
    pick = np.sort(rng.choice(len(prompts), config.n_harmful, replace=False))
    harmful = []
    for i in pick:
        p = prompts[int(i)]
        harmful.append((p, refusal_of.get(p) or REFUSALS[int(rng.integers(len(REFUSALS)))]))
    benign: list[tuple[str, str]] = []
    if config.n_benign:
        path = shared_data_dir() / "alpaca_eval" / "alpaca_eval.jsonl"
        if not path.exists():
            raise AssetError(f"{path} not found; the benign side of the safety SFT reads it")
        items = [
            json.loads(line)
            for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
        items = [
            it for it in items if len(it["instruction"]) <= 300 and len(it["output"].strip()) >= 20
        ]
        if config.n_benign > len(items):
            raise ParameterError(
                "n_benign", f"must be at most {len(items)} instructions", config.n_benign
            )
        pick = np.sort(rng.choice(len(items), config.n_benign, replace=False))
        benign = [
            (
                str(items[int(i)]["instruction"]),
                _cut(str(items[int(i)]["output"]), config.max_answer_chars),
            )
            for i in pick
        ]
    return harmful, benign


def safety_sft(base: str, config: SafetySFTConfig, out_dir: str | Path) -> SafetySFTResult:
    """LoRA safety SFT of ``base`` (an embedded name or a checkpoint directory); the merged
    aligned model is written to ``out_dir/model`` (written beside, then renamed into place)."""
    import shutil

    from aisec.llm.finetune import FinetuneConfig, SFTExample, finetune
    from aisec.safety.enchtable.merge import model_dir

    out = Path(out_dir)
    harmful, benign = safety_pairs(config)
    from aisec.safety.enchtable.models import load_model

    lm = load_model(str(model_dir(base)), merge_adapter=False)
    eos = lm.tokenizer.eos_token or ""
    examples = [
        SFTExample(lm.render([{"role": "user", "content": q}]), a + eos)
        for q, a in harmful + benign
    ]
    ft = FinetuneConfig(
        method="lora",
        lora_r=config.lora_r,
        lora_alpha=2 * config.lora_r,
        target_modules=(
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "gate_proj",
            "up_proj",
            "down_proj",
        ),
        steps=config.steps,
        batch_size=config.batch_size,
        max_length=config.max_length,
        learning_rate=config.learning_rate,
        seed=config.seed,
        save_every=10_000,
    )
    run = finetune(lm, examples, ft, out / "sft", progress=False)
    merged: Any = lm.model.merge_and_unload()
    target = out / "model"
    tmp = out / "model.partial"
    if tmp.exists():
        shutil.rmtree(tmp)
    merged.save_pretrained(str(tmp), safe_serialization=True)
    lm.tokenizer.save_pretrained(str(tmp))
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)
    return SafetySFTResult(target, len(harmful), len(benign), list(run.losses), run.seconds)
