"""Black-box attacks on a video watermark detector through its API, from IBM ART.

The detector (a method, the key's message and one aggregation rule) is wrapped as a two-class
ART ``BlackBoxClassifier`` whose input is the whole clip viewed as one image with T * 3 channels
(so every query is one clip). Class 1 is "watermarked"; the class scores are
``(-(s - thr), s - thr)`` where ``s`` is the rule's aggregated score and ``thr`` its threshold
(:func:`aisec.provenance.video.aggregation.aggregate_all`), as VideoMarkBench builds a margin from
the aggregated score.

* ``square``: Square Attack (Andriushchenko et al., ECCV 2020), score-based, L-inf ball ``eps``;
* ``hopskipjump``: HopSkipJump (Chen et al., S&P 2020), label-only, L-inf; VideoMarkBench uses
  Triangle Attack, which ART does not ship. Its search starts from a point of the target class
  (removal: uniform noise, which the detector never flags; forgery: another watermarked clip)
  and walks towards the source clip.

Both goals are the untargeted attack of the binary classifier: removal starts from a flagged clip
(label 1), forgery from a real one (label 0). Every query is recorded; success at query q means
some query up to q was on the goal's side of the decision and within ``eps`` (L-inf) of the
source clip, rounded to 8 bits. ART draws from numpy's global generator: it is seeded from the
caller's seed inside :func:`_forked_numpy` and the caller's global state is restored afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from aisec.errors import DependencyError, ParameterError
from aisec.provenance.video.aggregation import RULES, aggregate_all
from aisec.provenance.video.methods import VideoKey, VideoWatermark

__all__ = ["ATTACKS", "blackbox_attack"]

ATTACKS = ("square", "hopskipjump")


@contextmanager
def _forked_numpy(seed: int) -> Iterator[None]:
    state = np.random.get_state()
    np.random.seed(seed % 2**32)
    try:
        yield
    finally:
        np.random.set_state(state)


class _Budget(Exception):
    """Raised inside the predict function when the query budget is spent."""


def blackbox_attack(
    method: VideoWatermark,
    key: VideoKey,
    video: np.ndarray,
    goal: str,
    attack: str = "square",
    rule: str = "ba_mean",
    eps: float = 8 / 255,
    max_queries: int = 1000,
    seed: int = 0,
    init: np.ndarray | None = None,
) -> dict[str, Any]:
    """Attack one clip; returns ``first_success`` (query index or None), ``queries`` and more."""
    try:
        from art.attacks.evasion import HopSkipJump, SquareAttack
        from art.estimators.classification import BlackBoxClassifierNeuralNetwork
    except ImportError:
        raise DependencyError("adversarial-robustness-toolbox", "video") from None
    if goal not in ("removal", "forgery"):
        raise ParameterError("goal", "must be 'removal' or 'forgery'", goal)
    if attack not in ATTACKS:
        raise ParameterError("attack", f"must be one of {', '.join(ATTACKS)}", attack)
    if rule not in RULES:
        raise ParameterError("rule", f"must be one of {', '.join(RULES)}", rule)
    if max_queries < 1:
        raise ParameterError("max_queries", "must be >= 1", max_queries)
    x0 = np.asarray(video, dtype=np.float32)
    t, c, h, w = x0.shape
    want = 0 if goal == "removal" else 1
    log: dict[str, Any] = {"queries": 0, "first_success": None, "best_linf": None}

    def predict(batch: np.ndarray) -> np.ndarray:
        out = np.empty((len(batch), 2), dtype=np.float32)
        for i, flat in enumerate(batch):
            if log["queries"] >= max_queries:
                raise _Budget
            v = np.round(np.clip(flat.reshape(t, c, h, w), 0, 1) * 255.0) / 255.0
            a = aggregate_all(method.detect(v), key.message)[rule]
            margin = float(a["score"] - a["threshold"]) + (1e-6 if a["flag"] else -1e-6)
            out[i] = (-margin, margin)
            log["queries"] += 1
            linf = float(np.abs(v - x0).max())
            if int(a["flag"]) == want and linf <= eps + 1e-6:
                if log["first_success"] is None:
                    log["first_success"] = log["queries"]
                log["best_linf"] = min(linf, log["best_linf"] or linf)
        return out

    clf = BlackBoxClassifierNeuralNetwork(
        predict, (t * c, h, w), 2, channels_first=True, clip_values=(0.0, 1.0)
    )
    y = np.array([[1.0, 0.0]] if want == 1 else [[0.0, 1.0]], dtype=np.float32)
    x = x0.reshape(1, t * c, h, w)
    with _forked_numpy(seed):
        try:
            if attack == "square":
                atk = SquareAttack(
                    clf,
                    norm=np.inf,
                    eps=eps,
                    max_iter=max_queries,
                    p_init=0.05,
                    nb_restarts=1,
                    batch_size=1,
                    verbose=False,
                )
                atk.generate(x, y=y)
            else:
                if init is None:
                    if goal == "forgery":
                        raise ParameterError(
                            "init", "forgery needs a watermarked starting clip", None
                        )
                    init = np.random.uniform(0, 1, x0.shape).astype(np.float32)
                atk = HopSkipJump(
                    clf,
                    targeted=True,
                    norm=np.inf,
                    max_iter=50,
                    max_eval=100,
                    init_eval=10,
                    init_size=10,
                    batch_size=1,
                    verbose=False,
                )
                atk.generate(x, y=1 - y, x_adv_init=np.asarray(init).reshape(1, t * c, h, w))
        except _Budget:
            pass
    log.update(
        {"attack": attack, "goal": goal, "rule": rule, "eps": eps, "max_queries": max_queries}
    )
    return log
