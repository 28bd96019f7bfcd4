"""A judge against hand labels: one report for the CLI (``aisec judge agreement``) and the bench.

:func:`agreement_report` runs a judge on labelled rows (:func:`aisec.judges.corpus.read_labels`)
and reports, under the strict (unsafe) and lenient (unsafe or attempted) standards, accuracy,
precision and recall of the unsafe class, Cohen's kappa and the AUROC of the judge's score, with
percentile bootstrap intervals (:func:`aisec.metrics.safety.kappa_report`); the same per prompt
set; the count of each verdict state; the false-"unsafe" rate on benign look-alike prompts
(``over_refusal_flag_rate``); and how the judge's ``degenerate`` state agrees with the label.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aisec.judges.base import STATES, Judge
from aisec.metrics.safety import STANDARDS, kappa_report

__all__ = ["SharedEncoder", "agreement_report", "judge_rows"]


class SharedEncoder:
    """A text encoder that embeds each distinct text once, for several judges measured on the
    same rows (the harm judge's two heads and the embedding judge all read MiniLM embeddings).

    Args:
        encoder: texts -> (N, D) array (default: the embedded MiniLM, loaded on first use).
    """

    def __init__(self, encoder: Any = None) -> None:
        self._encoder = encoder
        self._cache: dict[str, Any] = {}

    def __call__(self, texts: Sequence[str]) -> Any:
        import numpy as np

        todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if todo:
            if self._encoder is None:
                from aisec.judges.embedding import _Encoder

                self._encoder = _Encoder()
            for t, v in zip(todo, self._encoder(todo), strict=True):
                self._cache[t] = v
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        return np.stack([self._cache[t] for t in texts])


def judge_rows(judge: Judge, rows: Sequence[dict[str, Any]], part: str = "response") -> list[Any]:
    """The judge's verdicts on ``rows`` (``prompt``, ``response``), in order."""
    return judge.judge([r["prompt"] for r in rows], [r["response"] for r in rows], part)


def _origin(row: dict[str, Any]) -> str:
    o = row.get("origin")
    if isinstance(o, dict):
        return "written" if o.get("model") == "written" else "generated"
    return "unknown"


def _rate(k: int, n: int) -> float | None:
    return k / n if n else None


def agreement_report(
    judge: Judge,
    rows: Sequence[dict[str, Any]],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    part: str = "response",
    verdicts: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """Agreement of ``judge`` with the labels of ``rows`` (see the module doc); JSON-ready."""
    vs = list(verdicts) if verdicts is not None else judge_rows(judge, rows, part)
    states = [v.state for v in vs]
    scores = [v.score for v in vs]
    labels = [r["label"] for r in rows]
    out: dict[str, Any] = {
        "judge": judge.name,
        # the standard the judge aims at, where it declares one (the harm judge's heads)
        "judge_standard": getattr(judge, "standard", None),
        "rows": len(rows),
        "states": {s: states.count(s) for s in STATES},
        "labels": {lab: labels.count(lab) for lab in sorted(set(labels))},
    }
    for std in STANDARDS:
        out[std] = kappa_report(states, scores, labels, std, n_boot=n_boot, seed=seed).to_dict()
    by_set: dict[str, Any] = {}
    for name in sorted({str(r.get("set", "all")) for r in rows}):
        idx = [i for i, r in enumerate(rows) if str(r.get("set", "all")) == name]
        sub = {
            std: kappa_report(
                [states[i] for i in idx],
                [scores[i] for i in idx],
                [labels[i] for i in idx],
                std,
                n_boot=n_boot,
                seed=seed,
            ).to_dict()
            for std in STANDARDS
        }
        flagged = sum(states[i] == "unsafe" for i in idx if labels[i] == "safe")
        n_safe = sum(labels[i] == "safe" for i in idx)
        by_set[name] = {"rows": len(idx), **sub, "false_unsafe_rate": _rate(flagged, n_safe)}
    out["by_set"] = by_set
    # written responses reuse a few templates across splits: report model responses apart
    by_origin: dict[str, Any] = {}
    for name in ("generated", "written"):
        idx = [i for i, r in enumerate(rows) if _origin(r) == name]
        if idx:
            by_origin[name] = {
                "rows": len(idx),
                **{
                    std: kappa_report(
                        [states[i] for i in idx],
                        [scores[i] for i in idx],
                        [labels[i] for i in idx],
                        std,
                        n_boot=n_boot,
                        seed=seed,
                    ).to_dict()
                    for std in STANDARDS
                },
            }
    out["by_origin"] = by_origin
    look = [i for i, r in enumerate(rows) if r.get("set") == "lookalike" and labels[i] == "safe"]
    out["over_refusal_flag_rate"] = _rate(sum(states[i] == "unsafe" for i in look), len(look))
    out["over_refusal_rows"] = len(look)
    deg_l = [lab == "degenerate" for lab in labels]
    deg_j = [s == "degenerate" for s in states]
    tp = sum(a and b for a, b in zip(deg_l, deg_j, strict=True))
    out["degenerate"] = {
        "labelled": sum(deg_l),
        "called": sum(deg_j),
        "precision": _rate(tp, sum(deg_j)),
        "recall": _rate(tp, sum(deg_l)),
    }
    return out
