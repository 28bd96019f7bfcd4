"""Score fuser: a small classifier over per-branch detection statistics (GaussMarker's fusion).

The reference detector stacks [bit accuracy of the (GNR-restored) spatial mark, -Tree-Ring L1
distance x 0.01] for watermarked and clean images and feeds them to a pre-trained
``Pipeline(StandardScaler, MLPClassifier(hidden_layer_sizes=(100,)))`` (``sd21_cls2.pkl``). Here
the same pipeline is fitted with scikit-learn and exported to safetensors (no pickle); inference
is plain numpy. ``kind="logistic"`` replaces the MLP by logistic regression, which is monotone in
every statistic (a larger bit accuracy or ring score never lowers the fused score).

``kind="minimax"`` / ``"max"`` (:func:`fit_minimax_fuser`, our addition) target the operating
point rather than the log-loss. Each statistic is standardised on clean images (z_i); the
candidates are non-negative combinations w . z (a grid on the simplex, single branches included)
and maxima max_i (z_i - c_i) over subsets of branches with offsets c_i on a grid (an alarm when
any branch is far enough in its clean tail). The fit picks the candidate that maximises, on
held-out fitting data under every distortion separately, the worst-case margin of the fused TPR
at the target FPR over the better single branch (averaged over bootstrap resamples of the
fitting images); ties go to the larger mean TPR, then to the larger mean TPR at 5x the FPR. No fixed combination can be better than every branch under every
distortion in general (two branches that each win under one distortion and carry noise under the
other cost a linear combination TPR in both); the fit never sees the evaluation images, and
whether the margin holds on them is measured, not guaranteed.

Reference: Li et al., "GaussMarker", ICML 2025 (``gaussmarker_det.py: eval_ensemble``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import expit

from aisec.errors import DataError, InputFileError, ParameterError

__all__ = ["Fuser", "fit_fuser", "fit_minimax_fuser", "MIN_EXCEEDANCES"]

# A threshold recalibrated from stored clean scores needs this many of them above it.
MIN_EXCEEDANCES = 10


@dataclass(frozen=True)
class Fuser:
    """Fitted fuser: standardise features, then an MLP (or logistic) -> P(watermarked).

    Attributes:
        features: names of the input statistics, in order.
        mean, scale: (F,) standardisation.
        weights, biases: layer parameters; hidden layers use ReLU, the last a logistic output.
        kind: "mlp", "logistic", "minimax" (one linear layer without bias) or "max" (weights
            (F, 1) in {0, 1} select branches, biases (F,) are their offsets).
        key_fingerprint: the key whose statistics it was fitted on (the ring score's scale depends
            on the key's ring values, so a fuser is valid for that key only).
        threshold: deployed decision threshold on the logit (0 = probability 0.5; set to the
            1 % FPR point of calibration clean images by the robustness run).
        fpr: the false-positive rate ``threshold`` was calibrated at (None: not calibrated, or
            a file written before this field).
        cal_scores: the fused logits of the clean calibration images (None: not stored, as in
            the shipped fusers), from which :meth:`threshold_for` recalibrates at another FPR.
    """

    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    kind: str = "mlp"
    threshold: float = 0.0
    key_fingerprint: str = ""
    fpr: float | None = None
    cal_scores: np.ndarray | None = None

    def threshold_for(self, fpr: float) -> float:
        """The deployed threshold at ``fpr``: the calibrated one at its own FPR; at another FPR
        the empirical point of the stored calibration scores, if at least
        :data:`MIN_EXCEEDANCES` of them lie above it (``fpr * n >= 10``). Anything else is
        refused with a one-line :class:`ConfigError` saying what the calibration supports."""
        from aisec.errors import ConfigError
        from aisec.metrics.detection import threshold_at_fpr

        cal = self.fpr
        if cal is None or abs(cal - fpr) <= 1e-12 * max(cal, fpr):
            return float(self.threshold)
        refit = f"refit with `aisec watermark robustness --key KEY --set fpr={fpr:g}`"
        if self.cal_scores is None:
            raise ConfigError(
                f"the fuser's threshold is calibrated at FPR {cal:g}, not {fpr:g}, and the file "
                f"holds no calibration scores to recalibrate from; use --fpr {cal:g}, or {refit}"
            )
        n = int(self.cal_scores.size)
        if fpr * n < MIN_EXCEEDANCES:
            raise ConfigError(
                f"--fpr {fpr:g} is below what the fuser's {n} calibration images support "
                f"(at least {MIN_EXCEEDANCES} above the threshold: FPR >= "
                f"{MIN_EXCEEDANCES / n:g}); {refit} --set n_cal={int(np.ceil(MIN_EXCEEDANCES / fpr))}"
            )
        return threshold_at_fpr(self.cal_scores, fpr)

    def logit(self, feats: dict[str, np.ndarray]) -> np.ndarray:
        """Fused log-odds (B,) from named (B,) statistics."""
        missing = [f for f in self.features if f not in feats]
        if missing:
            raise DataError(f"fuser needs statistics {missing}; got {sorted(feats)}")
        x = np.stack([np.asarray(feats[f], dtype=np.float64) for f in self.features], axis=1)
        h = (x - self.mean) / self.scale
        if self.kind == "max":  # max over the branches with weight > 0 of z_i - offset_i
            use = self.weights[0][:, 0] > 0
            return np.max(h[:, use] - self.biases[0][use], axis=1)
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = h @ w + b
            if i < len(self.weights) - 1:
                h = np.maximum(h, 0.0)
        return h[:, 0]

    def prob(self, feats: dict[str, np.ndarray]) -> np.ndarray:
        """Fused probability of being watermarked (B,) in [0, 1]."""
        return expit(self.logit(feats))

    def save(self, path: str | Path) -> Path:
        from aisec.io import save_safetensors

        tensors = {"mean": self.mean, "scale": self.scale}
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            tensors[f"w{i}"] = np.ascontiguousarray(w)
            tensors[f"b{i}"] = np.ascontiguousarray(b)
        meta = {
            "features": json.dumps(list(self.features)),
            "kind": self.kind,
            "layers": str(len(self.weights)),
            "threshold": repr(float(self.threshold)),
            "key_fingerprint": self.key_fingerprint,
        }
        if self.fpr is not None:
            meta["fpr"] = repr(float(self.fpr))
        if self.cal_scores is not None:
            tensors["cal_scores"] = np.sort(np.asarray(self.cal_scores, np.float64))
        return save_safetensors(path, tensors, meta)

    @classmethod
    def load(cls, path: str | Path) -> Fuser:
        from safetensors import safe_open

        from aisec.io import load_safetensors

        p = Path(path)
        t = load_safetensors(p, framework="np")
        try:
            with safe_open(str(p), framework="np") as f:
                meta = f.metadata() or {}
            n = int(meta["layers"])
            return cls(
                tuple(json.loads(meta["features"])),
                t["mean"],
                t["scale"],
                tuple(t[f"w{i}"] for i in range(n)),
                tuple(t[f"b{i}"] for i in range(n)),
                meta.get("kind", "mlp"),
                float(meta.get("threshold", "0.0")),
                meta.get("key_fingerprint", ""),
                float(meta["fpr"]) if "fpr" in meta else None,
                t.get("cal_scores"),
            )
        except (KeyError, ValueError) as exc:
            raise InputFileError(p, f"not an aisec fuser file ({type(exc).__name__})") from None


def fit_fuser(
    pos: dict[str, np.ndarray],
    neg: dict[str, np.ndarray],
    features: tuple[str, ...],
    kind: str = "mlp",
    hidden: int = 100,
    seed: int = 0,
) -> Fuser:
    """Fit a fuser on statistics of watermarked (``pos``) and clean (``neg``) images."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    if kind not in ("mlp", "logistic"):
        raise ParameterError("kind", "must be 'mlp' or 'logistic'", kind)
    xp = np.stack([np.asarray(pos[f], dtype=np.float64) for f in features], axis=1)
    xn = np.stack([np.asarray(neg[f], dtype=np.float64) for f in features], axis=1)
    if len(xp) < 2 or len(xn) < 2:
        raise DataError("fuser needs at least 2 watermarked and 2 clean examples")
    x = np.concatenate([xp, xn])
    y = np.concatenate([np.ones(len(xp)), np.zeros(len(xn))])
    mean, scale = x.mean(0), x.std(0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    xs = (x - mean) / scale
    if kind == "mlp":
        clf = MLPClassifier(hidden_layer_sizes=(hidden,), max_iter=2000, random_state=seed)
        clf.fit(xs, y)
        ws, bs = tuple(clf.coefs_), tuple(clf.intercepts_)
    else:
        clf = LogisticRegression(C=10.0, max_iter=2000)
        clf.fit(xs, y)
        ws, bs = (clf.coef_.T.copy(),), (clf.intercept_.copy(),)
    return Fuser(tuple(features), mean, scale, ws, bs, kind)


def _tpr_at(pos: np.ndarray, neg: np.ndarray, fpr: float) -> float:
    from aisec.metrics.watermark import empirical_tpr_at_fpr

    return empirical_tpr_at_fpr(pos, neg, fpr)[0]


def _simplex(n: int, step: float) -> np.ndarray:
    """All weight vectors on the n-simplex with coordinates in multiples of ``step``."""
    k = int(round(1.0 / step))
    pts: list[list[int]] = [[]]
    for _ in range(n - 1):
        pts = [p + [i] for p in pts for i in range(k + 1 - sum(p))]
    return np.array([p + [k - sum(p)] for p in pts], dtype=np.float64) / k


def fit_minimax_fuser(
    pos: dict[str, dict[str, np.ndarray]],
    neg: dict[str, dict[str, np.ndarray]],
    features: tuple[str, ...],
    fpr: float = 0.01,
    step: float = 0.05,
    boot: int = 50,
    seed: int = 0,
) -> tuple[Fuser, dict[str, float]]:
    """Fit the ``minimax`` fuser on per-condition statistics (see the module docstring).

    Args:
        pos, neg: condition name -> statistic name -> (N,) values on watermarked / clean
            fitting images under that condition (the same conditions in both).
        features: statistics to combine, in order.
        fpr: operating point.
        step: grid step of the weights on the simplex.
        boot: bootstrap resamples for the objective (0: the fitting data as they are).
        seed: seed of the resampling.

    Returns:
        The fuser (threshold 0; calibrate it on clean images) and, per condition, the fitted
        margin (fused TPR minus the better branch's TPR) on the fitting data.
    """
    conds = sorted(pos)
    if not conds or sorted(neg) != conds:
        raise DataError("minimax fuser needs the same non-empty set of conditions in pos and neg")

    def mat(d: dict[str, np.ndarray]) -> np.ndarray:
        missing = [f for f in features if f not in d]
        if missing:
            raise DataError(f"fuser needs statistics {missing}; got {sorted(d)}")
        return np.stack([np.asarray(d[f], dtype=np.float64) for f in features], axis=1)

    xp = {c: mat(pos[c]) for c in conds}
    xn = {c: mat(neg[c]) for c in conds}
    if any(len(xp[c]) < 2 or len(xn[c]) < 2 for c in conds):
        raise DataError("fuser needs at least 2 watermarked and 2 clean examples per condition")
    clean = np.concatenate([xn[c] for c in conds])
    mean, scale = clean.mean(0), clean.std(0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    best_branch = {
        c: max(_tpr_at(xp[c][:, i], xn[c][:, i], fpr) for i in range(len(features))) for c in conds
    }
    nf = len(features)
    candidates: list[Fuser] = [
        Fuser(tuple(features), mean, scale, (w[:, None].copy(),), (np.zeros(1),), "minimax")
        for w in _simplex(nf, step)
    ]
    offsets = np.arange(-2.0, 2.01, 0.5)
    for mask in range(3, 2**nf):  # subsets of at least two branches
        sel = np.array([(mask >> i) & 1 for i in range(nf)], dtype=np.float64)
        if sel.sum() < 2:
            continue
        free = [i for i in range(nf) if sel[i]][1:]  # the first selected branch has offset 0
        for combo in np.array(np.meshgrid(*[offsets] * len(free))).reshape(len(free), -1).T:
            c = np.zeros(nf)
            c[free] = combo
            candidates.append(
                Fuser(tuple(features), mean, scale, (sel[:, None].copy(),), (c,), "max")
            )
    # Bootstrap resamples of each condition's fitting images: the objective is the mean over
    # resamples of the worst-case margin, so a candidate whose margin rests on one tail image
    # (the 1 % point of a few dozen clean images is their maximum) is not preferred.
    rng = np.random.default_rng(seed)
    ip = {c: rng.integers(0, len(xp[c]), (boot, len(xp[c]))) for c in conds}
    ineg = {c: rng.integers(0, len(xn[c]), (boot, len(xn[c]))) for c in conds}
    if boot == 0:
        ip = {c: np.arange(len(xp[c]))[None] for c in conds}
        ineg = {c: np.arange(len(xn[c]))[None] for c in conds}

    def boot_tpr(sp: np.ndarray, sn: np.ndarray, c: str) -> np.ndarray:
        negs = np.sort(sn[ineg[c]], axis=1)
        k = int(np.floor(fpr * negs.shape[1]))
        thr = negs[:, negs.shape[1] - k - 1]
        return (sp[ip[c]] > thr[:, None]).mean(1)

    branch_boot = {
        c: np.max([boot_tpr(xp[c][:, i], xn[c][:, i], c) for i in range(nf)], axis=0) for c in conds
    }
    best: tuple[tuple[float, float, float], Fuser, dict[str, float]] | None = None
    for cand in candidates:
        sp = {c: cand.logit(pos[c]) for c in conds}
        sn = {c: cand.logit(neg[c]) for c in conds}
        tprs = {c: _tpr_at(sp[c], sn[c], fpr) for c in conds}
        margin = {c: tprs[c] - best_branch[c] for c in conds}
        worst = np.min([boot_tpr(sp[c], sn[c], c) - branch_boot[c] for c in conds], axis=0)
        wide = float(np.mean([_tpr_at(sp[c], sn[c], min(5 * fpr, 0.5)) for c in conds]))
        obj = (float(worst.mean()), float(np.mean(list(tprs.values()))), wide)
        if best is None or obj > best[0]:
            best = (obj, cand, margin)
    assert best is not None
    return best[1], best[2]
