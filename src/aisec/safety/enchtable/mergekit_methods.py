"""EnchTable, TSV-Merge, RESTA and SafeLoRA as mergekit merge methods.

Importing this module (or calling :func:`register`) adds ``enchtable``, ``tsv_merge``,
``resta`` and ``safelora`` to mergekit's method registry, so a mergekit YAML can name them;
``aisec merge CONFIG.yaml`` does the import for you. Each model in the YAML carries a
``role`` parameter:

* ``base_model``: the task model's reference (the aligned model it was fine-tuned from);
* ``role: task``: the fine-tuned task model (exactly one);
* ``role: harmful``: the harmful surrogate (exactly one);
* ``role: safe``: the aligned model the surrogate was distilled from (optional; the base is
  used when absent).

EnchTable's global scale ``alpha = beta * ||tau|| / ||delta||`` needs norms over all tensors,
which a per-tensor method cannot see: give ``alpha`` directly, or give ``beta`` to
``aisec merge``, which streams the norms first (:func:`aisec.safety.enchtable.merge.global_norms`).
"""

from __future__ import annotations

from typing import Any

from aisec.errors import DependencyError

__all__ = ["register", "METHOD_NAMES"]

METHOD_NAMES = ("enchtable", "tsv_merge", "resta", "safelora")
_ROLES = ("task", "harmful", "safe")


def _mergekit() -> Any:
    try:
        import mergekit.merge_methods as mm
    except ImportError:
        raise DependencyError("mergekit", "merge") from None
    return mm


def _split(group: Any, role: Any) -> tuple[Any, Any, Any, Any]:
    """(base, task, safe, harmful) tensors of a group by the inputs' roles."""
    by: dict[str, Any] = {}
    for entry in group.non_base:
        r = role[entry.id]
        if r not in _ROLES:
            raise ValueError(f"role {r!r} of input {entry.id} must be one of {', '.join(_ROLES)}")
        if r in by:
            raise ValueError(f"two inputs have role {r!r}; each role is taken at most once")
        by[r] = entry.tensor
    for need in ("task", "harmful"):
        if need not in by:
            raise ValueError(f"no input has role {need!r} (give each model parameters.role)")
    base = group.base.tensor
    return base, by["task"], by.get("safe", base), by["harmful"]


def _build() -> list[Any]:
    mm = _mergekit()
    from mergekit.merge_methods.base import (
        BasePolicy,
        InputContract,
        OptionalTensorPolicy,
        PerNonBase,
        TensorGroup,
    )

    from aisec.safety.enchtable import rules

    contract = InputContract(base=BasePolicy.REQUIRED, min_inputs=3, max_inputs=4)
    policy = OptionalTensorPolicy.PASSTHROUGH_BASE_SINGLETON

    def enchtable(
        group: TensorGroup,
        role: PerNonBase[str],
        alpha: float,
        rank_ratio: float = 0.5,
        temperature: float = 200.0,
    ) -> Any:
        base, task, safe, harmful = _split(group, role)
        return rules.enchtable_tensor(
            base,
            task,
            safe,
            harmful,
            alpha=alpha,
            rank_ratio=rank_ratio,
            temperature=temperature,
        ).to(task.dtype)

    def tsv_merge(
        group: TensorGroup,
        role: PerNonBase[str],
        safety_scale: float = 1.0,
        rank_ratio: float = 0.5,
        scale: float = 1.0,
    ) -> Any:
        base, task, safe, harmful = _split(group, role)
        deltas = [task.float() - base.float(), safety_scale * (safe.float() - harmful.float())]
        return rules.tsv_tensor(base, deltas, rank_ratio=rank_ratio, scale=scale).to(task.dtype)

    def resta(
        group: TensorGroup,
        role: PerNonBase[str],
        scale: float = 1.0,
        density: float = 1.0,
        seed: int = 0,
    ) -> Any:
        base, task, safe, harmful = _split(group, role)
        return rules.resta_tensor(
            base,
            task,
            safe,
            harmful,
            scale=scale,
            density=density,
            seed=seed,
            name=str(group.metadata.name or ""),
        ).to(task.dtype)

    def safelora(
        group: TensorGroup,
        role: PerNonBase[str],
        threshold: float = 0.5,
        max_dim: int = 16384,
    ) -> Any:
        base, task, safe, harmful = _split(group, role)
        if group.metadata.vocabulary_axis is not None:
            return task.clone()
        merged, _ = rules.safelora_tensor(
            base, task, safe, harmful, threshold=threshold, max_dim=max_dim
        )
        return merged.to(task.dtype)

    # mergekit reads the kernel's annotations; the return type must be torch.Tensor itself
    import torch

    out = []
    refs = {
        "enchtable": ("EnchTable", "https://arxiv.org/abs/2511.09880"),
        "tsv_merge": ("TSV-Merge (task + safety vector)", "https://arxiv.org/abs/2412.00081"),
        "resta": ("RESTA", "https://arxiv.org/abs/2402.11746"),
        "safelora": ("SafeLoRA", "https://arxiv.org/abs/2405.16833"),
    }
    for fn in (enchtable, tsv_merge, resta, safelora):
        fn.__annotations__["return"] = torch.Tensor
        fn.__annotations__["group"] = TensorGroup
        fn.__annotations__["role"] = PerNonBase[str]
        pretty, url = refs[fn.__name__]
        out.append(
            mm.merge_method(
                fn,
                name=fn.__name__,
                pretty_name=pretty,
                reference_url=url,
                contract=contract,
                optional_tensor_policy=policy,
                uses_accelerator=False,
            )
        )
    return out


def register() -> tuple[str, ...]:
    """Add our methods to mergekit's registry (idempotent); returns their names."""
    mm = _mergekit()
    have = {m.spec.name for m in mm.registered_methods()}
    for method in _build():
        if method.spec.name not in have:
            mm.register(method)
    return METHOD_NAMES
