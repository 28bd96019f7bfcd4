"""Score fuser: a small classifier over per-branch detection statistics (GaussMarker's fusion).

The reference detector stacks [bit accuracy of the (GNR-restored) spatial mark, -Tree-Ring L1
distance x 0.01] for watermarked and clean images and feeds them to a pre-trained
``Pipeline(StandardScaler, MLPClassifier(hidden_layer_sizes=(100,)))`` (``sd21_cls2.pkl``). Here
the same pipeline is fitted with scikit-learn and exported to safetensors (no pickle); inference
is plain numpy. ``kind="logistic"`` replaces the MLP by logistic regression, which is monotone in
every statistic (a larger bit accuracy or ring score never lowers the fused score).

Reference: Li et al., "GaussMarker", ICML 2025 (``gaussmarker_det.py: eval_ensemble``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aisec.errors import DataError, InputFileError, ParameterError

__all__ = ["Fuser", "fit_fuser"]


@dataclass(frozen=True)
class Fuser:
    """Fitted fuser: standardise features, then an MLP (or logistic) -> P(watermarked).

    Attributes:
        features: names of the input statistics, in order.
        mean, scale: (F,) standardisation.
        weights, biases: layer parameters; hidden layers use ReLU, the last a logistic output.
        kind: "mlp" or "logistic".
        key_fingerprint: the key whose statistics it was fitted on (the ring score's scale depends
            on the key's ring values, so a fuser is valid for that key only).
        threshold: deployed decision threshold on the logit (0 = probability 0.5; set to the
            1 % FPR point of calibration clean images by the robustness run).
    """

    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    kind: str = "mlp"
    threshold: float = 0.0
    key_fingerprint: str = ""

    def logit(self, feats: dict[str, np.ndarray]) -> np.ndarray:
        """Fused log-odds (B,) from named (B,) statistics."""
        missing = [f for f in self.features if f not in feats]
        if missing:
            raise DataError(f"fuser needs statistics {missing}; got {sorted(feats)}")
        x = np.stack([np.asarray(feats[f], dtype=np.float64) for f in self.features], axis=1)
        h = (x - self.mean) / self.scale
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = h @ w + b
            if i < len(self.weights) - 1:
                h = np.maximum(h, 0.0)
        return h[:, 0]

    def prob(self, feats: dict[str, np.ndarray]) -> np.ndarray:
        """Fused probability of being watermarked (B,) in [0, 1]."""
        return 1.0 / (1.0 + np.exp(-np.clip(self.logit(feats), -50, 50)))

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
