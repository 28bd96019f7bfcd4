"""NTK-linearised fine-tuning (EnchTable stage 1) and the safety vector.

Chosen modules are replaced by their first-order Taylor expansion around the aligned weights
``p0``: ``f_lin(x; p) = f(x; p0) + J_p f(x; p0) (p - p0)``, computed with ``torch.func.jvp``
over ``torch.func.functional_call``. Only the linearised modules train; the rest of the network
stays as it is (non-linear, frozen), as in the reference's ``freeze`` fine-tuning.

Modes (which modules are linearised, each separately):

* ``attn``: every attention projection (q, k, v, o). A projection is affine in its weights, so
  this is exactly plain fine-tuning of those projections (a test checks it);
* ``ffn``: every decoder layer's whole MLP block (SwiGLU is not linear in its weights);
* ``attn_ffn``: both;
* ``decoder``: every decoder layer as one function (each layer linearised on its own: the
  reference's ``modulelist`` mode linearises the whole stack as one function; this one does not).

After training the wrappers are removed and the model is an ordinary checkpoint (the harmful
surrogate); the safety vector is ``aligned - surrogate``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from aisec.config import StrictModel
from aisec.errors import ParameterError

__all__ = [
    "MODES",
    "NTKConfig",
    "DistillResult",
    "linearise",
    "unlinearise",
    "select_modules",
    "ntk_finetune",
    "harmful_examples",
]

MODES = ("attn", "ffn", "attn_ffn", "decoder")
_ATTN = ("q_proj", "k_proj", "v_proj", "o_proj")


class NTKConfig(StrictModel):
    """The recipe of the NTK-linearised harmful fine-tune."""

    mode: Literal["attn", "ffn", "attn_ffn", "decoder"] = "attn"
    modules: tuple[str, ...] = ()  # explicit module names; overrides ``mode`` when given
    learning_rate: float = Field(1e-4, gt=0.0)
    steps: int = Field(20, ge=1)
    batch_size: int = Field(4, ge=1)
    max_length: int = Field(128, ge=8)
    max_grad_norm: float = Field(1.0, gt=0.0)
    seed: int = Field(0, ge=0)
    linearised: bool = True  # False: plain fine-tuning of the same modules (the ablation)


@dataclass(frozen=True)
class DistillResult:
    """The harmful surrogate a run produced."""

    out_dir: Path
    modules: list[str]
    losses: list[float]
    seconds: float


def _layers(model: Any) -> tuple[str, Any]:
    for prefix in ("model.layers", "model.model.layers", "transformer.h"):
        obj = model
        try:
            for part in prefix.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            continue
        return prefix, obj
    raise ParameterError("model", "has no decoder layer list (model.layers)", type(model).__name__)


def select_modules(model: Any, mode: str, modules: Sequence[str] = ()) -> list[str]:
    """Names of the modules ``mode`` linearises (or the explicit ``modules``, checked)."""
    named = dict(model.named_modules())
    if modules:
        for m in modules:
            if m not in named or m == "":
                raise ParameterError("modules", "must name modules of the model", m)
        return list(modules)
    if mode not in MODES:
        raise ParameterError("mode", f"must be one of {', '.join(MODES)}", mode)
    prefix, layers = _layers(model)
    out: list[str] = []
    for i in range(len(layers)):
        lp = f"{prefix}.{i}"
        if mode == "decoder":
            out.append(lp)
            continue
        if mode in ("attn", "attn_ffn"):
            out.extend(f"{lp}.self_attn.{p}" for p in _ATTN if f"{lp}.self_attn.{p}" in named)
        if mode in ("ffn", "attn_ffn") and f"{lp}.mlp" in named:
            out.append(f"{lp}.mlp")
    if not out:
        raise ParameterError("mode", "selects no module of this model", mode)
    return out


def _wrapper_class() -> Any:
    import torch
    from torch.func import functional_call, jvp

    class Linearised(torch.nn.Module):
        """``inner`` linearised around a frozen copy of its parameters."""

        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner
            self._p0 = {n: p.detach().clone() for n, p in inner.named_parameters()}

        def forward(self, *args: Any, **kwargs: Any) -> Any:
            names = list(self._p0)
            p0 = tuple(self._p0[n] for n in names)
            cur = dict(self.inner.named_parameters())
            tangent = tuple(cur[n] - self._p0[n] for n in names)

            def f(*ps: Any) -> Any:
                return functional_call(self.inner, dict(zip(names, ps, strict=True)), args, kwargs)

            out, dout = jvp(f, p0, tangent)
            return torch.utils._pytree.tree_map(
                lambda a, b: a + b if isinstance(a, torch.Tensor) and a.is_floating_point() else a,
                out,
                dout,
            )

    return Linearised


def linearise(model: Any, names: Sequence[str]) -> None:
    """Replace each named module by its linearisation, in place; freeze everything else."""
    cls = _wrapper_class()
    for p in model.parameters():
        p.requires_grad_(False)
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        inner = getattr(parent, child)
        for p in inner.parameters():
            p.requires_grad_(True)
        setattr(parent, child, cls(inner))


def unlinearise(model: Any) -> None:
    """Put the trained inner modules back (the model is an ordinary one again)."""
    cls_name = "Linearised"
    for name, mod in list(model.named_modules()):
        if type(mod).__name__ == cls_name:
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, mod.inner)


def harmful_examples(n: int | None = None, seed: int = 0) -> list[tuple[str, str]]:
    """Harmful SFT pairs (request, compliant response): the judge corpus's ``train`` split rows
    labelled ``attempted`` or ``unsafe`` on StrongREJECT, AdvBench and HarmBench prompts
    (responses of the embedded models that tried to comply). Evaluation prompts must come from
    outside the corpus (:func:`aisec.safety.enchtable.evaluate.heldout_harmful`)."""
    import numpy as np

    from aisec.judges.corpus import load_corpus

    rows = [
        r
        for r in load_corpus("train")
        if r["label"] in ("attempted", "unsafe")
        and r["set"] in ("strongreject", "advbench", "harmbench")
        and str(r["response"]).strip()
    ]
    rows.sort(key=lambda r: r["id"])
    if n is not None and n < len(rows):
        pick = np.sort(np.random.default_rng([seed, 20]).choice(len(rows), n, replace=False))
        rows = [rows[int(i)] for i in pick]
    return [(str(r["prompt"]), str(r["response"])) for r in rows]


def ntk_finetune(
    lm: Any,
    pairs: Sequence[tuple[str, str]],
    config: NTKConfig,
    out_dir: str | Path,
) -> DistillResult:
    """Fine-tune ``lm`` (a LocalLM) on (user request, response) pairs with the selected modules
    linearised; save the surrogate to ``out_dir`` (an HF checkpoint with the tokenizer).

    Raises:
        ParameterError: an unknown mode or module name, or fewer pairs than the batch size.
    """
    import numpy as np
    import torch

    from aisec.llm.finetune import SFTExample, build_batch

    if len(pairs) < config.batch_size:
        raise ParameterError(
            "pairs", f"must hold at least batch_size={config.batch_size}", len(pairs)
        )
    model = lm.model
    names = select_modules(model, config.mode, config.modules)
    examples = [
        SFTExample(lm.render([{"role": "user", "content": q}]), a + (lm.tokenizer.eos_token or ""))
        for q, a in pairs
    ]
    if config.linearised and any(
        not isinstance(model.get_submodule(n), torch.nn.Linear) for n in names
    ):
        # forward-mode AD through the fused CPU attention kernel is not implemented in torch:
        # linearised blocks that contain attention run the eager (math) attention
        if hasattr(model, "set_attn_implementation"):
            model.set_attn_implementation("eager")
    if config.linearised:
        linearise(model, names)
    else:
        for p in model.parameters():
            p.requires_grad_(False)
        for n in names:
            for p in model.get_submodule(n).parameters():
                p.requires_grad_(True)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=0.0)
    model.train()
    losses: list[float] = []
    t0 = time.perf_counter()
    try:
        for step in range(config.steps):
            rng = np.random.default_rng([config.seed, step])
            idx = rng.choice(len(examples), config.batch_size, replace=False)
            batch = build_batch(lm.tokenizer, [examples[int(i)] for i in idx], config.max_length)
            batch = {k: v.to(lm.device) for k, v in batch.items()}
            loss = model(**batch).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            opt.step()
            losses.append(float(loss.detach()))
    finally:
        unlinearise(model)
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    lm.tokenizer.save_pretrained(str(out))
    (out / "enchtable_distill.json").write_text(
        json.dumps({"modules": names, "config": config.model_dump(), "losses": losses}, indent=1),
        encoding="utf-8",
    )
    return DistillResult(out, names, losses, time.perf_counter() - t0)
