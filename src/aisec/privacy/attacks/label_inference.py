"""Label inference by a curious passive party in split VFL.

* gradient scoring (Li et al., "Label Leakage and Protection in Two-party Split Learning",
  ICLR 2022): the party sees d loss / d (what it sent) for each of its training rows.
  ``norm`` (binary tasks): rows of one class get larger gradients; the party orients and
  thresholds the norm with a few rows whose labels it knows. ``direction``: gradients of a class
  point the same way; each row takes the class whose known rows' mean gradient is closest in
  cosine.
* model completion (Fu et al., "Label Inference Attacks Against Vertical Federated Learning",
  USENIX Security 2022): the party puts a small head on its own trained bottom model and trains
  it on a few labelled rows, then labels any row from its own features alone.

Both report attack accuracy on rows whose labels the attacker did not know, beside the
majority-class rate (a data-independent guess).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from aisec.errors import DataError, ParameterError
from aisec.privacy.vfl.models import Bottom

__all__ = ["gradient_label_attack", "model_completion_attack", "known_rows"]


def known_rows(y: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``per_class`` rows of each class (the attacker's few labelled rows)."""
    out = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        out.append(rng.choice(idx, size=min(per_class, len(idx)), replace=False))
    return np.sort(np.concatenate(out))


def gradient_label_attack(
    grads: np.ndarray,
    y: np.ndarray,
    *,
    method: str,
    per_class: int,
    rng: np.random.Generator,
) -> dict[str, float]:
    """Label accuracy from received gradients ``grads`` (n, bits) for rows with labels ``y``.

    Returns ``{"acc": ..., "majority_rate": ..., "known": k}`` over the rows not known.
    """
    if grads.shape[0] != y.shape[0]:
        raise DataError(f"{grads.shape[0]} gradients for {y.shape[0]} labels")
    live = np.abs(grads).sum(axis=1) > 0  # rows that were in a batch of the recorded epoch
    grads, y = grads[live], y[live]
    known = known_rows(y, per_class, rng)
    rest = np.setdiff1d(np.arange(len(y)), known)
    classes = np.unique(y)
    if method == "norm":
        if len(classes) != 2:
            raise ParameterError("method", "norm scoring needs a binary task", len(classes))
        s = np.linalg.norm(grads, axis=1)
        # threshold and orientation chosen on the known rows only
        best, best_acc = (0.0, 1), -1.0
        for t in np.unique(s[known]):
            for sign in (1, -1):
                pred = np.where(sign * (s[known] - t) > 0, classes[1], classes[0])
                acc = float(np.mean(pred == y[known]))
                if acc > best_acc:
                    best, best_acc = (t, sign), acc
        t, sign = best
        pred = np.where(sign * (s[rest] - t) > 0, classes[1], classes[0])
    elif method == "direction":
        unit = grads / np.maximum(np.linalg.norm(grads, axis=1, keepdims=True), 1e-12)
        means = np.stack([unit[known][y[known] == c].mean(axis=0) for c in classes])
        means /= np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
        pred = classes[np.argmax(unit[rest] @ means.T, axis=1)]
    else:
        raise ParameterError("method", "must be 'norm' or 'direction'", method)
    return {
        "acc": float(np.mean(pred == y[rest])),
        "majority_rate": float(np.bincount(y[rest]).max() / len(rest)),
        "known": int(len(known)),
    }


def model_completion_attack(
    bottom: Bottom,
    x_known: np.ndarray,
    y_known: np.ndarray,
    x_target: np.ndarray,
    y_target: np.ndarray,
    n_classes: int,
    *,
    rng: np.random.Generator,
    epochs: int = 200,
    hidden: int = 64,
) -> dict[str, float]:
    """Train a head on the frozen bottom's outputs (codes or embeddings) with the known rows;
    accuracy on the target rows."""
    bottom.eval()
    with torch.no_grad():
        hk = bottom(torch.from_numpy(np.asarray(x_known, np.float32)))
        ht = bottom(torch.from_numpy(np.asarray(x_target, np.float32)))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(rng.integers(2**62)))
        head = nn.Sequential(
            nn.Linear(hk.shape[1], hidden), nn.ReLU(), nn.Linear(hidden, n_classes)
        )
    opt = torch.optim.Adam(head.parameters(), lr=1e-2, weight_decay=1e-4)
    yk = torch.from_numpy(np.asarray(y_known, np.int64))
    for _ in range(epochs):
        loss = nn.functional.cross_entropy(head(hk), yk)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        pred = head(ht).argmax(1).numpy()
    return {
        "acc": float(np.mean(pred == y_target)),
        "majority_rate": float(np.bincount(y_target, minlength=n_classes).max() / len(y_target)),
        "known": int(len(y_known)),
    }
