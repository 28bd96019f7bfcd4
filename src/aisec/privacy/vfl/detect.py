"""Abnormal-input detection with HashVFL codes (Qiu et al., §VII): a party's code for a normal
input lies near the predefined code of the predicted class; an abnormal input (out of
distribution, noise, or adversarially perturbed) lands farther away. The score of a row is the
Hamming distance between the victim party's code and the predicted class's code; the ROC AUC
compares abnormal rows (positive) with normal test rows.

Abnormal kinds: ``ood`` (the same slice of another image data set: Fashion-MNIST into an MNIST
model and back), ``noise`` (uniform noise in the feature box), ``pgd`` (L-infinity PGD on the
victim party's slice against the whole model, gradients through tanh in place of sign).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from aisec.errors import ConfigError, ParameterError
from aisec.privacy.vfl.data import DataSpec, VFLSplit, load_split
from aisec.privacy.vfl.hashing import hamming
from aisec.privacy.vfl.run import load_run

__all__ = ["KINDS", "detect_abnormal"]

KINDS = ("ood", "noise", "pgd")


def _forward(
    bottoms: dict[str, Any], top: Any, xs: list[torch.Tensor]
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    hs = [bottoms[f"P{i}"](x) for i, x in enumerate(xs)]
    return top(torch.cat(hs, dim=1)), hs


def _pgd(
    bottoms: dict[str, Any],
    top: Any,
    xs: list[torch.Tensor],
    y: torch.Tensor,
    i: int,
    eps: float,
    steps: int,
    lo: float,
    hi: float,
) -> torch.Tensor:
    """L-infinity PGD on party i's slice (untargeted), sign relaxed to tanh for gradients."""
    x0 = xs[i]
    x = x0.clone()
    alpha = 2.5 * eps / steps
    for _ in range(steps):
        x.requires_grad_(True)
        hs = []
        for j, xj in enumerate(xs):
            b = bottoms[f"P{j}"]
            inp = x if j == i else xj
            hs.append(torch.tanh(b.pre_hash(inp)) if b.hashed else b(inp))
        loss = torch.nn.functional.cross_entropy(top(torch.cat(hs, dim=1)), y)
        (g,) = torch.autograd.grad(loss, x)
        with torch.no_grad():
            x = torch.clamp(torch.min(torch.max(x + alpha * g.sign(), x0 - eps), x0 + eps), lo, hi)
    return x.detach()


def detect_abnormal(
    run_dir: str | Path,
    *,
    party: str = "P1",
    kinds: tuple[str, ...] = KINDS,
    rows: int = 300,
    eps: float = 0.3,
    steps: int = 20,
    seed: int = 0,
    split: VFLSplit | None = None,
) -> dict[str, Any]:
    """ROC AUC of the Hamming-distance score for each abnormal kind (``detect_auc_<kind>``),
    plus the mean distances and, for ``pgd``, the attack's success rate."""
    from aisec.metrics import auc

    recipe, bottoms, tm = load_run(run_dir)
    if not recipe.train.defence.hashed:
        raise ConfigError(
            f"detection needs HashVFL codes; the run in {run_dir} used defence "
            f"{recipe.train.defence.name!r}"
        )
    for k in kinds:
        if k not in KINDS:
            raise ParameterError("kinds", f"must be among {KINDS}", k)
    split = split or load_split(recipe.data)
    i = int(party[1:])
    if f"P{i}" not in bottoms:
        raise ParameterError("party", f"must be one of {sorted(bottoms)}", party)
    top, codes = tm["top"], tm["codes"]
    rng = np.random.default_rng([seed, i])
    n = min(rows, len(split.labels["test"]))
    # a random subset: rows are stored in id order, which some data sets sort by class
    pick = np.sort(rng.choice(len(split.labels["test"]), size=n, replace=False))
    xs = [torch.from_numpy(p.x[pick]) for p in split.parties["test"]]
    y = torch.from_numpy(split.labels["test"][pick])
    lo = float(min(p.x.min() for p in split.parties["train"]))
    hi = float(max(p.x.max() for p in split.parties["train"]))

    def score(parts: list[torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            logits, hs = _forward(bottoms, top, parts)
            pred = logits.argmax(1)
            return hamming(hs[i], codes[pred]).numpy(), pred.numpy()

    normal, pred_normal = score(xs)
    out: dict[str, Any] = {
        "party": party,
        "rows": n,
        "hamming_normal": float(normal.mean()),
        "acc_normal": float(np.mean(pred_normal == y.numpy())),
    }
    for kind in kinds:
        if kind == "ood":
            other = {"mnist": "fashion", "fashion": "mnist"}.get(recipe.data.dataset)
            if other is None:
                out["detect_auc_ood"] = None
                out["ood_note"] = f"no out-of-distribution set for {recipe.data.dataset}"
                continue
            o = load_split(
                DataSpec(
                    dataset=other,
                    parties=recipe.data.parties,
                    rows=max(5 * n + 100, 1000),
                    seed=seed,
                )
            )
            other_pick = rng.choice(
                len(o.labels["test"]), size=n, replace=len(o.labels["test"]) < n
            )
            bad = torch.from_numpy(o.parties["test"][i].x[np.sort(other_pick)])
        elif kind == "noise":
            shape = xs[i].shape
            if split.kind == "image":
                bad = torch.from_numpy(rng.uniform(lo, hi, size=shape).astype(np.float32))
            else:  # binary features: keep each column's rate, break the rows' structure
                rate = split.parties["train"][i].x.mean(axis=0)
                bad = torch.from_numpy((rng.random(shape) < rate).astype(np.float32))
        else:
            for b in bottoms.values():
                for p in b.parameters():
                    p.requires_grad_(False)
            bad = _pgd(bottoms, top, xs, y, i, eps, steps, lo, hi)
        parts = list(xs)
        parts[i] = bad
        s, pred = score(parts)
        out[f"detect_auc_{kind}"] = float(auc(s, normal))
        out[f"hamming_{kind}"] = float(s.mean())
        if kind == "pgd":
            out["pgd_success"] = float(np.mean(pred != y.numpy()))
    return out
