"""The per-tensor merge rules of EnchTable and of the safety-merge baselines, on plain tensors.

Every rule takes the tensors one output tensor is made of and returns the merged tensor; the
mergekit methods of :mod:`aisec.safety.enchtable.mergekit_methods` call them per tensor group,
so the same code runs from a mergekit YAML, from ``merge_state_dicts`` and from the tests.

Names: ``base`` is the task model's reference (the aligned model the task model was fine-tuned
from), ``task`` the fine-tuned task model, ``safe`` the aligned model the safety vector was
distilled from (usually ``base`` itself) and ``harmful`` its harmful surrogate. The task vector
is ``tau = task - base`` and the safety vector ``delta = safe - harmful``.

* EnchTable (Wu et al., S&P 2026): ``task + w * alpha * delta`` where ``alpha`` is the global
  scale ``beta * ||tau|| / ||delta||`` (norms over all parameters: :func:`global_scale`) and,
  for 2-D tensors, ``w = exp(-T * mean|R|)`` with ``R = (U^T U - I) S (V^T V - I)`` the
  interference of the top ``gamma`` share of singular triplets of ``tau`` and ``alpha * delta``
  (:func:`interference_weight`). 1-D tensors take ``alpha * delta`` unweighted.
* TSV-Merge (Gargiulo et al., CVPR 2025): per 2-D tensor, the top ``gamma`` share of singular
  triplets of each vector, the concatenated U and V orthogonalised (polar factor), re-summed.
  A matrix where only one of the vectors is non-zero keeps that vector whole (our choice: there
  is no interference to remove, and it spares the SVD of vocabulary-sized matrices).
* RESTA (Bhardwaj et al., ACL 2024): ``task + s * delta`` (the reference repository's path
  multiplies ``delta`` by zero; this one does not), with optional DARE on ``tau`` first.
* SafeLoRA (Hsu et al., NeurIPS 2024): ``C = V V^T / ||V||_F`` with ``V = safe - harmful``; the
  fine-tuning update ``dW = task - base`` is replaced by ``C dW`` when
  ``cos(C dW, dW) <= threshold``. Never applied to vocabulary-sized matrices.
"""

from __future__ import annotations

import math
import zlib
from typing import Any

from aisec.errors import ParameterError

__all__ = [
    "global_scale",
    "interference",
    "interference_weight",
    "enchtable_tensor",
    "tsv_tensor",
    "resta_tensor",
    "safelora_tensor",
    "dare",
]


def global_scale(beta: float, tau_norm: float, delta_norm: float) -> float:
    """EnchTable's adaptive scale ``beta * ||tau|| / ||delta||`` (0 when the safety vector is 0)."""
    if beta < 0:
        raise ParameterError("beta", "must be >= 0", beta)
    if delta_norm <= 0:
        return 0.0
    return float(beta) * float(tau_norm) / float(delta_norm)


def _top(x: Any, rank_ratio: float) -> tuple[Any, Any, Any]:
    import torch

    u, s, vh = torch.linalg.svd(x, full_matrices=False)
    k = max(1, int(math.floor(rank_ratio * s.shape[0])))
    return u[:, :k], s[:k], vh[:k, :]


def _check_ratio(rank_ratio: float) -> None:
    if not 0.0 < rank_ratio <= 1.0:
        raise ParameterError("rank_ratio", "must lie in (0, 1]", rank_ratio)


def interference(tau: Any, delta: Any, rank_ratio: float = 0.5) -> float:
    """``mean|R|`` with ``R = (U^T U - I) S (V^T V - I)`` over the top ``rank_ratio`` share of
    singular triplets of each 2-D delta (the TSV-Merge interference measure)."""
    import torch

    _check_ratio(rank_ratio)
    u1, s1, v1 = _top(tau.float(), rank_ratio)
    u2, s2, v2 = _top(delta.float(), rank_ratio)
    u = torch.cat([u1, u2], dim=1)
    s = torch.diag(torch.cat([s1, s2]))
    vh = torch.cat([v1, v2], dim=0)
    eye = torch.eye(u.shape[1], dtype=u.dtype)
    r = (u.T @ u - eye) @ s @ (vh @ vh.T - eye)
    return float(r.abs().mean())


def interference_weight(
    tau: Any, delta: Any, rank_ratio: float = 0.5, temperature: float = 200.0
) -> float:
    """EnchTable's per-matrix weight ``exp(-temperature * mean|R|)``."""
    if temperature < 0:
        raise ParameterError("temperature", "must be >= 0", temperature)
    return math.exp(-temperature * interference(tau, delta, rank_ratio))


def enchtable_tensor(
    base: Any,
    task: Any,
    safe: Any,
    harmful: Any,
    *,
    alpha: float,
    rank_ratio: float = 0.5,
    temperature: float = 200.0,
) -> Any:
    """``task + w * alpha * (safe - harmful)`` (see the module docstring)."""
    delta = (safe.float() - harmful.float()) * alpha
    out = task.float()
    if not bool(delta.any()):
        return out.clone()
    if delta.ndim == 2:
        w = interference_weight(out - base.float(), delta, rank_ratio, temperature)
        return out + w * delta
    return out + delta


def _polar(x: Any) -> Any:
    import torch

    p, _, qh = torch.linalg.svd(x, full_matrices=False)
    return p @ qh


def tsv_tensor(base: Any, deltas: list[Any], *, rank_ratio: float = 0.5, scale: float = 1.0) -> Any:
    """TSV-Merge of the deltas onto ``base``: low-rank per delta, orthogonalised, re-summed.
    1-D tensors (and an all-zero group) take the plain sum of the deltas."""
    import torch

    _check_ratio(rank_ratio)
    out = base.float()
    ds = [d.float() for d in deltas if bool(d.any())]
    if not ds:
        return out.clone()
    if out.ndim != 2 or len(ds) == 1:
        # 1-D tensors, and matrices where a single vector is non-zero (no interference to
        # remove, e.g. the embeddings when only attention was distilled), keep the plain sum
        return out + scale * sum(ds)
    us, ss, vs = [], [], []
    for d in ds:
        u, s, vh = _top(d, rank_ratio)
        us.append(u)
        ss.append(s)
        vs.append(vh)
    u = torch.cat(us, dim=1)
    s = torch.cat(ss)
    vh = torch.cat(vs, dim=0)
    # the polar factor is the nearest matrix with orthonormal columns (rows for V^T); it only
    # exists as such when the concatenated rank fits the matrix
    if u.shape[1] <= u.shape[0]:
        u = _polar(u)
    if vh.shape[0] <= vh.shape[1]:
        vh = _polar(vh.T).T
    return out + scale * (u @ torch.diag(s) @ vh)


def dare(x: Any, density: float, seed: int, name: str = "") -> Any:
    """Drop each entry with probability ``1 - density`` and rescale the rest by ``1/density``
    (seeded by ``seed`` and the tensor name, so a merge is reproducible)."""
    import torch

    if not 0.0 < density <= 1.0:
        raise ParameterError("density", "must lie in (0, 1]", density)
    if density == 1.0:
        return x
    g = torch.Generator().manual_seed((int(seed) * 1_000_003 + zlib.crc32(name.encode())) % 2**63)
    keep = torch.rand(x.shape, generator=g) < density
    return torch.where(keep, x / density, torch.zeros_like(x))


def resta_tensor(
    base: Any,
    task: Any,
    safe: Any,
    harmful: Any,
    *,
    scale: float = 1.0,
    density: float = 1.0,
    seed: int = 0,
    name: str = "",
) -> Any:
    """RESTA: ``base + dare(tau) + scale * delta``."""
    tau = dare(task.float() - base.float(), density, seed, name)
    return base.float() + tau + scale * (safe.float() - harmful.float())


def safelora_tensor(
    base: Any,
    task: Any,
    safe: Any,
    harmful: Any,
    *,
    threshold: float = 0.5,
    max_dim: int = 16384,
) -> tuple[Any, bool]:
    """SafeLoRA on one matrix; returns (merged, projected). 1-D tensors, a zero alignment
    matrix and matrices with more than ``max_dim`` rows (embeddings, LM heads) are left as
    the task model's."""
    import torch

    out = task.float()
    v = safe.float() - harmful.float()
    if out.ndim != 2 or out.shape[0] > max_dim or not bool(v.any()):
        return out.clone(), False
    dw = out - base.float()
    if not bool(dw.any()):
        return out.clone(), False
    c = (v @ v.T) / torch.linalg.norm(v)
    proj = c @ dw
    cos = torch.nn.functional.cosine_similarity(proj.flatten(), dw.flatten(), dim=0)
    if float(cos) <= threshold:
        return base.float() + proj, True
    return out.clone(), False
