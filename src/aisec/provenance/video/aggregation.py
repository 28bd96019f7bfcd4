"""VideoMarkBench's seven rules that turn per-frame logits into one video-level decision.

Given per-frame logits D (F, n) of an n-bit watermark and the key's message m (n,), a frame's
bit accuracy (BA) is the fraction of bits whose sign agrees with m. The frame threshold tau is
the smallest k/n with P[Bin(n, 1/2) >= k] <= ``FRAME_FPR`` = P[Bin(96, 1/2) >= 67] = 6.61e-5 (the
constant of the reference ``aggregation.py``): 67/96 for 96 bits, 27/32 for 32 bits, so the paper's thresholds
scale to each method's bit count with the same per-frame false-positive rate.

======================  ====================================================================
rule                    flag the video when
======================  ====================================================================
``logit_mean``          BA(sign(mean_f D_f)) >= tau
``logit_median``        BA(sign(geometric median of the D_f)) >= tau
``bit_median``          BA(per-bit majority vote of the frames' hard bits) >= tau
``ba_mean``             mean_f BA_f >= tau
``ba_median``           median_f BA_f >= tau
``detection_threshold`` #{f : BA_f >= tau} >= k_F, the smallest k with
                        P[Bin(F, p) >= k] <= 1e-3 (p = the per-frame FPR at tau)
``detection_median``    #{f : BA_f >= tau} > F / 2
======================  ====================================================================

Deliberate choices: the geometric median is found by Weiszfeld iterations (the reference calls
scipy's Powell on the same convex objective); a bit-majority tie (even F) is broken by the sign
of the mean logit; the reference's ``10e-4`` is 1e-3 and is kept as such.

Reference: Jiang et al., "VideoMarkBench", arXiv 2505.21620, code ``aggregation.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from aisec.errors import DataError, ParameterError

__all__ = [
    "RULES",
    "FRAME_FPR",
    "VIDEO_FPR",
    "Thresholds",
    "thresholds",
    "frame_bit_accuracy",
    "aggregate",
    "aggregate_all",
    "geometric_median",
]


def _paper_frame_fpr() -> float:
    from scipy.stats import binom

    return float(binom.sf(66, 96, 0.5))  # P[Bin(96, 1/2) >= 67] = 6.61e-5 (the paper's p)


FRAME_FPR = _paper_frame_fpr()
VIDEO_FPR = 1e-3

RULES = (
    "logit_mean",
    "logit_median",
    "bit_median",
    "ba_mean",
    "ba_median",
    "detection_threshold",
    "detection_median",
)


@dataclass(frozen=True)
class Thresholds:
    """Frame threshold ``tau`` (= k_bits / n), its exact per-frame FPR, and k_F per frame count."""

    n_bits: int
    k_bits: int
    frame_fpr: float

    @property
    def tau(self) -> float:
        return self.k_bits / self.n_bits

    def frames_needed(self, n_frames: int) -> int:
        """k_F of ``detection_threshold``: smallest k with P[Bin(F, p) >= k] <= 1e-3."""
        return _frames_needed(n_frames, self.frame_fpr)


def _binom_sf(k: int, n: int, p: float) -> float:
    """P[Bin(n, p) >= k]."""
    from scipy.stats import binom

    return float(binom.sf(k - 1, n, p))


@lru_cache(maxsize=256)
def thresholds(n_bits: int, frame_fpr: float = FRAME_FPR) -> Thresholds:
    """The frame threshold of an ``n_bits`` watermark at per-frame FPR ``frame_fpr``."""
    if n_bits < 1:
        raise ParameterError("n_bits", "must be >= 1", n_bits)
    for k in range(n_bits + 1):
        if _binom_sf(k, n_bits, 0.5) <= frame_fpr * (1 + 1e-9):
            return Thresholds(n_bits, k, _binom_sf(k, n_bits, 0.5))
    raise ParameterError(
        "frame_fpr", f"is unreachable with {n_bits} bits (minimum {0.5**n_bits:.3g})", frame_fpr
    )


@lru_cache(maxsize=1024)
def _frames_needed(n_frames: int, p: float) -> int:
    for k in range(n_frames + 1):
        if _binom_sf(k, n_frames, p) <= VIDEO_FPR:
            return max(k, 1)
    return n_frames + 1


def frame_bit_accuracy(logits: np.ndarray, message: np.ndarray) -> np.ndarray:
    """Per-frame bit accuracy (F,) of logits (F, n) against message (n,)."""
    return ((logits > 0) == (np.asarray(message) > 0)).mean(axis=-1)


def geometric_median(points: np.ndarray, iters: int = 200, tol: float = 1e-9) -> np.ndarray:
    """The point minimising the sum of Euclidean distances to ``points`` (F, n) (Weiszfeld)."""
    y = points.mean(axis=0)
    for _ in range(iters):
        d = np.linalg.norm(points - y, axis=1)
        if np.any(d < tol):  # on a data point: keep it if it is the minimiser's neighbourhood
            d = np.maximum(d, tol)
        w = 1.0 / d
        y_new = (w[:, None] * points).sum(axis=0) / w.sum()
        if np.linalg.norm(y_new - y) <= tol * (1.0 + np.linalg.norm(y)):
            return y_new
        y = y_new
    return y


def _ba(bits_logit: np.ndarray, message: np.ndarray) -> float:
    return float(frame_bit_accuracy(bits_logit[None], message)[0])


def _scores(
    logits: np.ndarray, message: np.ndarray, th: Thresholds
) -> dict[str, tuple[float, float]]:
    """rule -> (score, threshold); flagged iff score >= threshold."""
    f = len(logits)
    ba = frame_bit_accuracy(logits, message)
    hard = (logits > 0).astype(np.float64)
    votes = hard.mean(axis=0)
    tie = np.isclose(votes, 0.5)
    majority = np.where(tie, logits.mean(axis=0), votes - 0.5)
    detected = float((ba >= th.tau - 1e-12).sum())
    return {
        "logit_mean": (_ba(logits.mean(axis=0), message), th.tau),
        "logit_median": (_ba(geometric_median(logits), message), th.tau),
        "bit_median": (_ba(majority, message), th.tau),
        "ba_mean": (float(ba.mean()), th.tau),
        "ba_median": (float(np.median(ba)), th.tau),
        "detection_threshold": (detected, float(th.frames_needed(f))),
        "detection_median": (detected, float(f // 2 + 1)),
    }


def _check(logits: np.ndarray, message: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = np.asarray(logits, dtype=np.float64)
    m = np.asarray(message)
    if d.ndim != 2 or d.shape[0] < 1 or d.shape[1] != m.shape[-1] or m.ndim != 1:
        raise DataError(
            f"logits must be (F >= 1, n) with n = len(message) = {m.shape}; got {d.shape}"
        )
    if not np.isfinite(d).all():
        raise DataError("logits must be finite")
    return d, m


def aggregate_all(
    logits: np.ndarray, message: np.ndarray, frame_fpr: float = FRAME_FPR
) -> dict[str, dict[str, float | bool]]:
    """Every rule's ``{"flag", "score", "threshold"}`` for one video's logits (F, n)."""
    d, m = _check(logits, message)
    th = thresholds(d.shape[1], frame_fpr)
    out: dict[str, dict[str, float | bool]] = {}
    for rule, (score, thr) in _scores(d, m, th).items():
        out[rule] = {"flag": bool(score >= thr - 1e-12), "score": score, "threshold": thr}
    return out


def aggregate(logits: np.ndarray, message: np.ndarray, rule: str) -> bool:
    """Whether ``rule`` flags the video as watermarked."""
    if rule not in RULES:
        raise ParameterError("rule", f"must be one of {', '.join(RULES)}", rule)
    return bool(aggregate_all(logits, message)[rule]["flag"])
