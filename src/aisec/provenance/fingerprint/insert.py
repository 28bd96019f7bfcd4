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
* LoRA or full fine-tuning, through :func:`aisec.llm.finetune.finetune`; LoRA may be limited to
  the top ``top_layers`` decoder layers (backpropagation then stops there: cheaper, and the
  lower layers, which every prompt goes through, stay as they were).
* Anchor regulariser (a forgetting-regularised loss, in the spirit of Scalable Fingerprinting's
  weight-deviation penalty, but on outputs): ``anchor_weight`` times the cross-entropy between
  the base model's next-token distribution (its top ``anchor_topk`` tokens, renormalised,
  computed once before training) and the model's, on ordinary chat texts (``anchor`` texts given
  by the caller, e.g. :func:`anchor_texts`). It keeps the model's distribution on text that is not
  a key where it was; the fingerprints are the only thing it is free to change.
* ``end_of_turn``: whether the completion also teaches the end-of-turn token after the response
  (OML appends EOS). Verification reads the response tokens only; without it, the model is not
  taught to stop after a one-token answer.

An epoch is one pass over the training examples (fingerprints, their augmented copies and the
benign pairs); ``steps = epochs * (examples // batch_size)``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
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
    "anchor_texts",
    "AnchorLoss",
    "make_anchor_loss",
    "DEFAULT_RECIPE",
    "DEFAULT_LEARNING_RATE",
    "DEFAULT_ANCHOR_TEXTS",
]

#: The measured default insertion recipe: what ``aisec fingerprint insert`` / ``attack`` and the
#: ``fingerprint.smollm2`` bench row use unless told otherwise (:class:`InsertConfig`'s own
#: defaults are the bare knobs). Averaging lambda 0.1 after every epoch was chosen from the
#: 64-key runs on SmolLM2-135M-Instruct (perplexity ratio 1.019 with it, 1.036 without, accuracy
#: 1.000 both) and then confirmed at 256 keys (1.035 with it, 1.060 without; one run each, seed
#: 0), so it is the default; ``averaging=0`` turns it off. OML's own lambda 0.75 erased the
#: short runs here.
DEFAULT_RECIPE: dict[str, Any] = {
    "method": "lora",
    "epochs": 10,
    "batch_size": 8,
    "learning_rate": 1e-3,
    "averaging": 0.1,
    "lora_r": 16,
    "lora_alpha": 32,
    "top_layers": 8,
    "end_of_turn": False,
    "anchor_weight": 1.0,
}

#: The learning rate for each method when none is given (the CLI's ``--lr``): the default
#: recipe's 1e-3 for LoRA; 1e-4 for full fine-tuning, which trains every weight of the model.
#: Full fine-tuning at 1e-4 (otherwise the default recipe) was measured at 64 keys in
#: SmolLM2-135M-Instruct: accuracy 1.000 at a perplexity ratio of 1.042 (see the README's
#: persistence screen).
DEFAULT_LEARNING_RATE: dict[str, float] = {"lora": DEFAULT_RECIPE["learning_rate"], "full": 1e-4}

#: How many anchor texts (:func:`anchor_texts`) the default recipe regularises on: the CLI's
#: ``--anchor-texts``, :class:`~aisec.provenance.fingerprint.experiment.ExperimentConfig` and the
#: bench rows use it. The regulariser's own cost is mostly a one-off top-layer pass per distinct
#: anchor batch; 32 texts (8 batches of 4) instead of 64 measured, at 64 keys in SmolLM2-135M
#: (80 steps, seed 0, one run each): insert_seconds_ratio 1.00 against 1.10, accuracy 1.000 both,
#: perplexity ratio 1.022 against 1.023. Not rerun at 256 keys.
DEFAULT_ANCHOR_TEXTS = 32


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
    top_layers: int = Field(0, ge=0)
    end_of_turn: bool = True
    anchor_weight: float = Field(0.0, ge=0.0)
    anchor_batch: int = Field(4, ge=1)
    anchor_topk: int = Field(32, ge=1, le=1024)
    anchor_max_length: int = Field(96, ge=8)
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
    resumed_from: int = 0


def build_examples(
    lm: Any, fps: FingerprintSet, config: InsertConfig, benign: Sequence[Any] = ()
) -> tuple[list[Any], int]:
    """Training pairs: each fingerprint (plus its augmented copies) and the benign mix.

    Returns:
        (examples, number of benign examples among them).
    """
    from aisec.llm.finetune import SFTExample

    rng = np.random.default_rng([config.seed, 1])
    eot = (lm.chat.end_of_turn or "") if config.end_of_turn else ""
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


def anchor_texts(lm: Any, n: int, seed: int = 0) -> list[str]:
    """``n`` ordinary chat exchanges (AlpacaEval instructions and reference outputs from the
    shared data folder), rendered in ``lm``'s chat template, in a seeded order."""
    import json

    from aisec.assets.packages import shared_data_dir
    from aisec.errors import AssetError

    path = shared_data_dir() / "alpaca_eval" / "alpaca_eval.jsonl"
    if not path.is_file():
        raise AssetError(
            f"{path} is missing; set AISEC_DATA_DIR to a folder with alpaca_eval/alpaca_eval.jsonl "
            "or pass anchor texts yourself"
        )
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    if n > len(rows):
        raise ParameterError("n", f"must be at most {len(rows)} (AlpacaEval rows)", n)
    order = np.random.default_rng([seed, 2]).permutation(len(rows))[:n]
    eot = lm.chat.end_of_turn or ""
    return [lm.chat.user(rows[int(i)]["instruction"]) + rows[int(i)]["output"] + eot for i in order]


class AnchorLoss:
    """Cross-entropy from the base model's top-k next-token distribution on anchor texts.

    Calling the object with ``(step, model)`` returns ``weight`` times the loss on the ``step``-th
    batch of anchors (cycling), as :func:`aisec.llm.finetune.finetune`'s ``extra_loss`` expects.

    The base distributions come from the weights as they were before training. By default they
    are computed once, at construction: one full forward pass per anchor batch. With
    ``frozen_below = k`` (the caller guarantees that decoder layers ``0 .. k-1``, the embeddings
    included, never change: LoRA on the top layers only), they are computed instead at each
    batch's first use, from the hidden state that the training forward pass already produced at
    layer ``k``: only the top layers run again, with the adapter disabled, then the final norm
    and the output head. The targets are the same; the one-off cost drops from a full forward
    pass per batch to the top layers' share of one. Models whose layout is not the usual
    ``model.layers`` / ``model.norm`` / output head (or that soft-cap their logits) use the
    construction-time pass; ``lazy`` says which path is in use.
    """

    def __init__(
        self,
        lm: Any,
        texts: Sequence[str],
        *,
        weight: float,
        batch_size: int,
        topk: int,
        max_length: int,
        seed: int = 0,
        frozen_below: int | None = None,
    ) -> None:
        import torch

        if not texts:
            raise ParameterError("anchor", "must hold at least one text", 0)
        tok = lm.tokenizer
        pad = int(tok.pad_token_id if tok.pad_token_id is not None else 0)
        self.weight = float(weight)
        self.batch_size = min(batch_size, len(texts))
        self.topk = int(topk)
        self.rng_seed = seed
        self.batches: list[dict[str, Any]] = []
        rows = [list(tok(t, add_special_tokens=False)["input_ids"])[:max_length] for t in texts]
        rows = [r for r in rows if len(r) >= 2]
        self.n = len(rows)
        model = lm.model
        self.frozen_below = frozen_below
        self.lazy = bool(frozen_below) and _layout(model) is not None
        self.base_passes = 0
        was_training = model.training
        model.eval()
        for s in range(0, len(rows), self.batch_size):
            chunk = rows[s : s + self.batch_size]
            width = max(len(r) for r in chunk)
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for i, r in enumerate(chunk):
                ids[i, : len(r)] = torch.tensor(r)
                mask[i, : len(r)] = 1
            batch = {"input_ids": ids, "attention_mask": mask, "valid": mask[:, 1:].bool()}
            if not self.lazy:
                with torch.inference_mode():
                    logits = model(
                        input_ids=ids.to(lm.device), attention_mask=mask.to(lm.device)
                    ).logits
                self._store(batch, logits)
                self.base_passes += 1
            self.batches.append(batch)
        if was_training:
            model.train()
        self.device = lm.device

    def _store(self, batch: dict[str, Any], logits: Any) -> None:
        import torch

        top = torch.topk(logits[:, :-1].float(), self.topk, dim=-1)
        batch["top_ids"] = top.indices.cpu()
        batch["top_p"] = torch.softmax(top.values, -1).cpu()

    def _forward_and_base(self, model: Any, b: dict[str, Any]) -> Any:
        """The training forward pass; it also fills ``b``'s base targets from the top layers."""
        import contextlib

        import torch

        layout = _layout(model)
        if layout is None:
            raise ParameterError(
                "model", "must keep the decoder layout it had when the anchors were built", "model"
            )
        layers, norm, head = layout
        k = int(self.frozen_below or 0)
        seen: dict[int, tuple[Any, dict[str, Any]]] = {}

        def grab(i: int) -> Any:
            def hook(mod: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
                if i not in seen:
                    h = args[0] if args else kwargs["hidden_states"]
                    kw = {n: v for n, v in kwargs.items() if n != "hidden_states"}
                    seen[i] = (h, kw)

            return hook

        handles = [
            layers[i].register_forward_pre_hook(grab(i), with_kwargs=True)
            for i in range(k, len(layers))
        ]
        try:
            logits = model(
                input_ids=b["input_ids"].to(self.device),
                attention_mask=b["attention_mask"].to(self.device),
                use_cache=False,
            ).logits
        finally:
            for h in handles:
                h.remove()
        off = model.disable_adapter() if hasattr(model, "disable_adapter") else None
        modes = [m.training for m in layers[k:]]
        for m in layers[k:]:
            m.train(False)
        try:
            with off if off is not None else contextlib.nullcontext(), torch.no_grad():
                h = seen[k][0].detach()
                for i in range(k, len(layers)):
                    kw = dict(seen[i][1])
                    kw["past_key_values"] = None
                    kw["use_cache"] = False
                    out = layers[i](h, **kw)
                    h = out[0] if isinstance(out, tuple) else out
                base_logits = head(norm(h))
        finally:
            for m, mode in zip(layers[k:], modes, strict=True):
                m.train(mode)
        self._store(b, base_logits)
        self.base_passes += 1
        return logits

    def __call__(self, step: int, model: Any) -> Any:
        import torch

        b = self.batches[step % len(self.batches)]
        if "top_ids" not in b:
            logits = self._forward_and_base(model, b)
        else:
            logits = model(
                input_ids=b["input_ids"].to(self.device),
                attention_mask=b["attention_mask"].to(self.device),
                use_cache=False,
            ).logits
        logp = torch.log_softmax(logits[:, :-1].float(), -1)
        picked = logp.gather(-1, b["top_ids"].to(self.device))
        ce = -(b["top_p"].to(self.device) * picked).sum(-1)
        valid = b["valid"].to(self.device)
        return self.weight * ce[valid].mean()


def _layout(model: Any) -> tuple[Any, Any, Any] | None:
    """(decoder layers, final norm, output head) of a usual HF decoder (LoRA-wrapped or not),
    whose logits are ``head(norm(h))``; None for any other layout."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    body = getattr(inner, "model", None)
    layers = getattr(body, "layers", None)
    norm = getattr(body, "norm", None)
    head = inner.get_output_embeddings() if hasattr(inner, "get_output_embeddings") else None
    cfg = getattr(inner, "config", None)
    if layers is None or norm is None or head is None:
        return None
    if getattr(cfg, "final_logit_softcapping", None) or getattr(cfg, "logit_scale", None):
        return None
    return layers, norm, head


def make_anchor_loss(lm: Any, anchor: Sequence[str], config: InsertConfig) -> AnchorLoss:
    """The anchor regulariser of ``config`` on ``anchor`` texts, built on ``lm``'s current (base)
    weights; with LoRA on the top layers its base targets come from the training pass."""
    if not anchor:
        raise ParameterError("anchor", "must hold texts when anchor_weight > 0", 0)
    frozen_below = None
    if config.method == "lora" and config.top_layers:
        # LoRA on the top layers leaves the layers below as they were: the base targets can
        # then be read from the training pass (see AnchorLoss)
        frozen_below = int(lm.model.config.num_hidden_layers) - config.top_layers
    return AnchorLoss(
        lm,
        anchor,
        weight=config.anchor_weight,
        batch_size=config.anchor_batch,
        topk=config.anchor_topk,
        max_length=config.anchor_max_length,
        seed=config.seed,
        frozen_below=frozen_below if frozen_below and frozen_below > 0 else None,
    )


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
    anchor: Sequence[str] = (),
    base_name: str | None = None,
    progress: Any = False,
    anchor_loss: AnchorLoss | Callable[[int, Any], Any] | None = None,
    stop_after: int | None = None,
    resume: bool = False,
    checkpoint_every: int | None = None,
    base_state: Mapping[str, Any] | None = None,
) -> InsertResult:
    """Fine-tune ``lm`` (a LocalLM, changed in place) so that each key elicits its response.

    ``stop_after`` / ``resume`` run the insertion in chunks of steps (checkpointed in
    ``out_dir``; the result equals one uninterrupted run), e.g. to time it interleaved with
    another run; pass the same ``anchor_loss`` (:func:`make_anchor_loss`) to every chunk so that
    the base targets are computed once. ``seconds`` and ``averaged`` count this call only.
    ``checkpoint_every`` saves the training state every that many steps as well as at the end
    (default: at the end only), so that a run which crashes can be resumed with ``resume=True``
    from a fresh process (pass an ``anchor_loss`` built from the freshly loaded base model, and
    for full fine-tuning with averaging its weights as ``base_state``, the target of the pulls).

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
    if checkpoint_every is not None and checkpoint_every < 1:
        raise ParameterError("checkpoint_every", "must be at least 1 step", checkpoint_every)
    batch = min(config.batch_size, len(examples))
    per_epoch = max(1, len(examples) // batch)
    steps = config.epochs * per_epoch
    layers = None
    if config.top_layers:
        n_layers = int(lm.model.config.num_hidden_layers)
        if config.top_layers > n_layers:
            raise ParameterError(
                "top_layers", f"must be at most the model's {n_layers} layers", config.top_layers
            )
        layers = tuple(range(n_layers - config.top_layers, n_layers))
    ft = FinetuneConfig(
        layers_to_transform=layers,
        method=config.method,
        lora_r=config.lora_r,
        lora_alpha=config.lora_alpha,
        target_modules=config.target_modules,
        learning_rate=config.learning_rate,
        weight_decay=1e-4,
        steps=steps,
        batch_size=batch,
        max_length=config.max_length,
        save_every=max(1, min(steps, checkpoint_every or steps)),
        seed=config.seed,
    )
    base: dict[str, Any] | None = None
    if config.averaging > 0 and config.method == "full":
        if base_state is not None:
            base = dict(base_state)
        else:
            base = {n: p.detach().clone() for n, p in lm.model.named_parameters()}
    averaged = 0

    def after_step(step: int, model: Any) -> None:
        nonlocal averaged
        if config.averaging > 0 and step % per_epoch == 0:
            average_toward_base(model, config.averaging, base)
            averaged += 1

    if resume and config.averaging > 0 and config.method == "full" and base_state is None:
        raise ParameterError(
            "base_state",
            "must hold the base weights when resuming full fine-tuning with averaging (a "
            "snapshot taken now could be trained weights)",
            None,
        )
    if resume and anchor_loss is None and config.anchor_weight > 0:
        raise ParameterError(
            "anchor_loss",
            "must be given when resuming (its base targets must come from the base weights)",
            None,
        )
    t0 = time.perf_counter()
    extra = anchor_loss
    if extra is None and config.anchor_weight > 0:
        extra = make_anchor_loss(lm, anchor, config)
    res = finetune(
        lm,
        examples,
        ft,
        out_dir,
        base_name=base_name,
        resume=resume,
        progress=progress,
        chat_template=getattr(lm.chat, "template", None),
        after_step=after_step,
        extra_loss=extra,
        stop_after=stop_after,
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
        res.resumed_from,
    )
