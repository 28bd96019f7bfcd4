"""Recover the social platform's trust graph from the rating platform's view of a SeSoRec run.

Two decoders, run on the :class:`~aisec.privacy.sesorec.protocol.View` the rating platform A
recorded (what it holds and receives, nothing else):

* ``ssmm_leak``: SSMM lets A compute ``D = M_e - M_o`` for B's operand ``M[:, b]`` (the social
  Laplacian's batch columns, off-diagonal entries ``-(s_rc + s_cr)``). For a sparse graph, a
  non-zero ``D[k, c]`` almost always means exactly one of users ``2k``, ``2k+1`` is linked to
  ``c``, and its sign says which: every edge of the batch's users, from one message.
* ``products``: in ``paper`` mode A receives ``Z = U M[:, b]`` and knows its own ``U``:
  ``z_c = sum_r y_r (u_c - u_r)`` with ``y_r = s_rc + s_cr >= 0``. Stacking the batches in which
  user ``c`` appears, non-negative least squares gives a sparse ``y`` (K equations per epoch).

The combined ranking (``edge_recovery``) takes the ``ssmm_leak`` candidates first (when the
run used SSMM; the product is a public parameter) and orders the rest by ``products``; the top ``m`` pairs (m = the true number of linked pairs) are the recovered edges.
Precision at ``m`` is reported beside chance, ``m / (I (I - 1) / 2)``. On a ``hardened`` run the
same decoders see uniform ring elements (Beaver openings and shares) and must do no better than
chance. ``final_u`` (pairs with the most similar final user factors) measures what the trained
model itself tells A, which every mode reveals by design.

Edges are undirected pairs: ``M`` is symmetric, so no decoder can tell who trusts whom.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aisec.privacy.sesorec.data import Edges
from aisec.privacy.sesorec.protocol import View

__all__ = ["AttackResult", "true_pairs", "recover_edges", "evaluate_attack"]


@dataclass(frozen=True)
class AttackResult:
    """Scores per decoder (dicts from an undirected pair ``(i, j)``, ``i < j``, to a score)."""

    ssmm_leak: dict[tuple[int, int], float]
    products: dict[tuple[int, int], float]
    n_users: int
    uses_ssmm: bool = True

    def ranking(self, decoder: str = "combined") -> list[tuple[int, int]]:
        if decoder == "ssmm_leak":
            return _rank(self.ssmm_leak)
        if decoder == "products":
            return _rank(self.products)
        if not self.uses_ssmm:  # the product is public: no SSMM message to decode
            return _rank(self.products)
        first = _rank(self.ssmm_leak)
        seen = set(first)
        return first + [p for p in _rank(self.products) if p not in seen]


def _rank(scores: dict[tuple[int, int], float]) -> list[tuple[int, int]]:
    return [p for p, s in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0])) if s > 0]


def true_pairs(edges: Edges) -> set[tuple[int, int]]:
    """The undirected linked pairs of a trust graph (self-loops dropped)."""
    out = set()
    for s, d in zip(edges.src.tolist(), edges.dst.tolist(), strict=True):
        if s != d:
            out.add((min(s, d), max(s, d)))
    return out


def _ssmm_scores(view: View) -> dict[tuple[int, int], float]:
    n = view.n_users
    scores: dict[tuple[int, int], float] = {}
    for b, d in zip(view.batches, view.d, strict=True):
        ks, js = np.nonzero(d)
        vals = d[ks, js].astype(np.float64)
        rows = np.where(vals < 0, 2 * ks, 2 * ks + 1)
        cols = b[js]
        partner = np.where(vals < 0, 2 * ks + 1, 2 * ks)
        ok = (rows < n) & (rows != cols) & (partner != cols)
        for r, c, v in zip(
            rows[ok].tolist(), cols[ok].tolist(), np.abs(vals[ok]).tolist(), strict=True
        ):
            key = (min(r, c), max(r, c))
            scores[key] = max(scores.get(key, 0.0), v)
    return scores


def _product_scores(view: View, max_equations: int = 400) -> dict[tuple[int, int], float]:
    from scipy.optimize import nnls

    n = view.n_users
    seen: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    for b, u, z in zip(view.batches, view.u, view.z, strict=True):
        for j, c in enumerate(b.tolist()):
            seen.setdefault(c, []).append((u, z[:, j]))
    scores: dict[tuple[int, int], float] = {}
    for c, eqs in seen.items():
        a = np.concatenate([u[:, [c]] - u for u, _ in eqs], axis=0)[:max_equations]
        y = np.concatenate([z for _, z in eqs])[:max_equations]
        a[:, c] = 0.0
        if not np.all(np.isfinite(a)) or not np.all(np.isfinite(y)):
            continue
        scale = float(np.abs(a).max()) or 1.0
        try:
            x, _ = nnls(a / scale, y / scale, maxiter=5 * a.shape[0] + 20)
        except RuntimeError:  # no convergence: this column yields nothing
            continue
        x = x / max(float(np.abs(x).max()), 1e-12) if x.any() else x
        for r in np.flatnonzero(x > 1e-6).tolist():
            if r != c and r < n:
                key = (min(r, c), max(r, c))
                scores[key] = max(scores.get(key, 0.0), float(x[r]))
    return scores


def recover_edges(view: View) -> AttackResult:
    """Run both decoders on a view."""
    return AttackResult(
        _ssmm_scores(view), _product_scores(view), view.n_users, view.matmul == "ssmm"
    )


def _precision(ranked: list[tuple[int, int]], truth: set[tuple[int, int]], m: int) -> float:
    top = ranked[:m]
    return len([p for p in top if p in truth]) / m if m else 0.0


def final_u_ranking(u: np.ndarray, m: int) -> list[tuple[int, int]]:
    """The ``m`` pairs whose final factor vectors have the highest cosine similarity."""
    x = u / np.maximum(np.linalg.norm(u, axis=0, keepdims=True), 1e-12)
    sim = x.T @ x
    n = sim.shape[0]
    iu = np.triu_indices(n, 1)
    flat = sim[iu]
    top = np.argpartition(-flat, min(m, flat.size - 1))[:m]
    top = top[np.argsort(-flat[top])]
    return list(zip(iu[0][top].tolist(), iu[1][top].tolist(), strict=True))


def evaluate_attack(
    view: View, edges: Edges, result: AttackResult | None = None
) -> dict[str, float]:
    """Precision at the true pair count for each decoder, and chance."""
    truth = true_pairs(edges)
    m, n = len(truth), view.n_users
    res = result or recover_edges(view)
    out = {
        "edge_recovery": _precision(res.ranking("combined"), truth, m),
        "edge_recovery_ssmm_leak": _precision(res.ranking("ssmm_leak"), truth, m),
        "edge_recovery_products": _precision(res.ranking("products"), truth, m),
        "edge_recovery_chance": m / (n * (n - 1) / 2),
        "true_pairs": float(m),
        "recorded_batches": float(len(view.batches)),
    }
    if view.final_u is not None and n <= 20000:
        out["edge_recovery_final_u"] = _precision(final_u_ranking(view.final_u, m), truth, m)
    return out
