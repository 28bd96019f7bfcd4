"""Run CAESAR end to end: both parties in one process, or one party against a remote peer.

A :class:`CaesarRecipe` names the data (an embedded data set or the Zipf generator, split by
columns), the protocol parameters and an optional link shape. :func:`run_local` trains both
parties as threads over an in-process channel, evaluates the joined model on held-out rows and
compares it with plaintext logistic regression on the joined data. :func:`run_party` is one
party over TCP with mutual TLS (two processes or two hosts).

Reference: Chen et al., KDD 2021.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from aisec.config import StrictModel
from aisec.errors import ParameterError, PeerError
from aisec.io import atomic_write_json
from aisec.privacy.caesar.data import (
    PartyData,
    load_joined,
    save_party,
    split_columns,
    train_test_split_rows,
)
from aisec.privacy.caesar.protocol import (
    PROTOCOL,
    CaesarModel,
    CaesarParams,
    TrainReport,
    predict_party,
    sigmoid_coefficients,
    train_party,
)
from aisec.transport import Channel, Link, LinkSpec, inprocess_pair

__all__ = [
    "DataSpec",
    "LinkSpec",
    "CaesarRecipe",
    "run_local",
    "run_party",
    "predict_remote",
    "write_split",
    "he_scheme_here",
    "run_two_threads",
    "auc_score",
    "RECIPES",
]

RECIPES_DIR = Path(__file__).with_name("recipes")
RECIPES = {p.stem: p for p in sorted(RECIPES_DIR.glob("*.yaml"))}


class DataSpec(StrictModel):
    """Which rows and how they are split."""

    dataset: Literal["adult-a9a", "reviews-bow", "zipf"] = "adult-a9a"
    rows: int | None = Field(None, ge=10, description="subsample this many rows (None: all)")
    test_frac: float = Field(0.3, gt=0, lt=1)
    frac_a: float = Field(0.5, gt=0, lt=1, description="share of the columns held by A")
    zipf_n: int = Field(10000, ge=10, le=2**20)
    zipf_d: int = Field(10000, ge=2, le=2**20)
    zipf_nnz_per_row: float = Field(20.0, gt=0)
    zipf_binary: bool = True


class CaesarRecipe(StrictModel):
    data: DataSpec = DataSpec()
    protocol: CaesarParams = CaesarParams()
    link: LinkSpec = LinkSpec()
    seed: int = Field(0, ge=0, description="seed of the row subsample and train/test split")
    plaintext_c: float = Field(
        1.0, gt=0, description="inverse L2 strength of the exact plaintext LR"
    )


def auc_score(y: np.ndarray, s: np.ndarray) -> float:
    from aisec.metrics import auc

    return float(auc(s[y == 1], s[y == 0]))


def _prepare(recipe: CaesarRecipe) -> tuple[PartyData, PartyData, PartyData, PartyData]:
    rng = np.random.default_rng(recipe.seed)
    d = recipe.data
    x, y, names = load_joined(
        d.dataset, rng, n=d.zipf_n, d=d.zipf_d, nnz_per_row=d.zipf_nnz_per_row, binary=d.zipf_binary
    )
    if d.rows is not None and d.rows < x.shape[0]:
        keep = np.sort(rng.choice(x.shape[0], size=d.rows, replace=False))
        x, y = x[keep], y[keep]
    tr, te = train_test_split_rows(x.shape[0], d.test_frac, rng)
    a_tr, b_tr = split_columns(x[tr], y[tr], d.frac_a, names, ids=tr)
    a_te, b_te = split_columns(x[te], y[te], d.frac_a, names, ids=te)
    return a_tr, b_tr, a_te, b_te


def he_scheme_here(requested: str) -> tuple[str, str | None]:
    """The HE scheme to run here for ``requested``, and why it differs (None if it does not).

    ``heu-ou`` needs sf-heu; where that is missing the Paillier scheme on gmpy2 runs instead
    (same protocol, slower), and the reason is returned so the caller can record it.
    """
    from aisec.crypto.heu import heu_available as ou_available

    if requested == "heu-ou" and not ou_available():
        return "gmpy2-paillier", "heu-ou -> gmpy2-paillier: sf-heu is not installed"
    return requested, None


def write_split(recipe: CaesarRecipe, out_dir: str | Path) -> dict[str, str]:
    """Write the four party files (A/B x train/test) of a recipe's data for two-host runs."""
    a_tr, b_tr, a_te, b_te = _prepare(recipe)
    out = Path(out_dir)
    files = {"A-train": a_tr, "B-train": b_tr, "A-test": a_te, "B-test": b_te}
    return {k: str(save_party(out / f"{k}.safetensors", v)) for k, v in files.items()}


def run_two_threads(fn_a: Any, fn_b: Any) -> tuple[Any, Any]:
    """Run party A's and party B's callables as two threads; returns both results, or raises
    the root cause (a non-peer error first, not the other party's "aborted" echo)."""
    out: dict[str, Any] = {}

    def wrap(key: str, fn: Any) -> None:
        try:
            out[key] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            out[key + "_err"] = exc

    ta = threading.Thread(target=wrap, args=("A", fn_a))
    tb = threading.Thread(target=wrap, args=("B", fn_b))
    ta.start(), tb.start()
    ta.join(), tb.join()
    errs = [out[k] for k in ("A_err", "B_err") if k in out]
    if errs:  # the root cause, not the peer's "aborted" echo
        raise next((e for e in errs if not isinstance(e, PeerError)), errs[0])
    return out["A"], out["B"]


def run_local(
    recipe: CaesarRecipe,
    out_dir: str | Path | None = None,
    compare_plaintext: bool = True,
    progress: Callable[[int, int, str], None] | None = None,
) -> dict[str, Any]:
    """Train both parties in this process and evaluate; returns the metrics (also written to
    ``out_dir/metrics.json`` with both models and the checkpoints when ``out_dir`` is given)."""
    a_tr, b_tr, a_te, b_te = _prepare(recipe)
    p = recipe.protocol
    ca, cb = inprocess_pair("A", "B", recipe.link.link(), p.timeout_s)
    out = Path(out_dir) if out_dir is not None else None
    ck = (lambda r: out / "checkpoints" / r) if out is not None else (lambda r: None)
    t0 = time.perf_counter()
    (ma, ra), (mb, rb) = run_two_threads(
        lambda: train_party("A", ca, a_tr, p, ck("A")),
        lambda: train_party("B", cb, b_tr, p, ck("B"), progress),
    )
    seconds = time.perf_counter() - t0
    scores = ma.scores(a_te.X) + mb.scores(b_te.X)
    y_te = np.asarray(b_te.y)
    metrics: dict[str, Any] = {
        "auc": auc_score(y_te, scores),
        "accuracy": float(np.mean((scores > 0) == (y_te == 1))),
        "seconds": seconds,
        "bytes": int(ca.stats.total().bytes_sent + cb.stats.total().bytes_sent),
        "bytes_per_batch": rb.bytes_per_batch,
        "seconds_per_batch": float(np.mean(rb.seconds_per_batch)) if rb.seconds_per_batch else 0.0,
        "batches": rb.batches,
        "resumed_from_epoch": rb.resumed_from_epoch,
        "n_train": a_tr.n,
        "n_test": a_te.n,
        "d_a": a_tr.d,
        "d_b": b_tr.d,
        "nnz_train": int(a_tr.X.nnz + b_tr.X.nnz),
    }
    fallback = [f"A: {m}" for m in ra.checkpoint_fallback] + [
        f"B: {m}" for m in rb.checkpoint_fallback
    ]
    if fallback:
        metrics["checkpoint_fallback"] = fallback
    if compare_plaintext:
        import scipy.sparse as sp

        from aisec.privacy.baselines.plaintext_lr import (
            fit_exact,
            fit_surrogate,
            scores_with_intercept,
        )

        x_tr = sp.hstack([a_tr.X, b_tr.X], format="csr")
        x_te = sp.hstack([a_te.X, b_te.X], format="csr")
        w_exact = fit_exact(x_tr, b_tr.y, c=recipe.plaintext_c)
        s_exact = scores_with_intercept(x_te, w_exact)
        w_sur = fit_surrogate(
            x_tr,
            b_tr.y,
            sigmoid_coefficients(p.sigmoid, p.cubic_range),
            p.learning_rate,
            p.l2,
            p.batch_size,
            p.epochs,
            p.batch_seed,
            p.max_batches,
        )
        metrics.update(
            {
                "auc_plaintext": auc_score(y_te, s_exact),
                "accuracy_plaintext": float(np.mean((s_exact > 0) == (y_te == 1))),
                "auc_plaintext_same_sgd": auc_score(y_te, scores_with_intercept(x_te, w_sur)),
                "max_weight_error_vs_same_sgd": float(
                    np.max(np.abs(np.concatenate([ma.weights, mb.weights]) - w_sur))
                ),
            }
        )
        metrics["auc_gap"] = metrics["auc_plaintext"] - metrics["auc"]
    if out is not None:
        ma.save(out / "model-A.safetensors")
        mb.save(out / "model-B.safetensors")
        atomic_write_json(out / "metrics.json", {"metrics": metrics, "comm_B": rb.comm})
    return metrics


def run_party(
    role: Literal["A", "B"],
    data_path: str | Path,
    certs_dir: str | Path,
    params: CaesarParams,
    out_dir: str | Path,
    *,
    listen: str | None = None,
    peer: str | None = None,
    link: Link | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> tuple[CaesarModel, TrainReport]:
    """One party over TCP with mutual TLS; exactly one of ``listen`` / ``peer`` (HOST:PORT)."""
    from aisec.privacy.caesar.data import load_party

    data = load_party(data_path)
    ch = _open(
        role,
        certs_dir,
        listen,
        peer,
        link,
        params.timeout_s,
        PROTOCOL,
        accept_timeout_s=params.accept_timeout_s,
        handshake_timeout_s=params.handshake_timeout_s,
    )
    out = Path(out_dir)
    try:
        model, report = train_party(role, ch, data, params, out / "checkpoints", progress)
    finally:
        ch.close()
    model.save(out / f"model-{role}.safetensors")
    atomic_write_json(
        out / f"report-{role}.json",
        {
            "role": role,
            "epochs_run": report.epochs_run,
            "resumed_from_epoch": report.resumed_from_epoch,
            "checkpoint_fallback": report.checkpoint_fallback,
            "batches": report.batches,
            "seconds": report.seconds,
            "bytes_per_batch": report.bytes_per_batch,
            "comm": report.comm,
        },
    )
    return model, report


def _open(
    role: str,
    certs_dir: str | Path,
    listen: str | None,
    peer: str | None,
    link: Link | None,
    timeout_s: float,
    protocol: str,
    *,
    accept_timeout_s: float = 300.0,
    handshake_timeout_s: float = 10.0,
) -> Channel:
    from aisec.transport.tcp import open_party

    other = "B" if role == "A" else "A"
    return open_party(
        role,
        other,
        certs_dir,
        listen,
        peer,
        protocol=protocol,
        link=link,
        timeout_s=timeout_s,
        accept_timeout_s=accept_timeout_s,
        handshake_timeout_s=handshake_timeout_s,
    )


def predict_remote(
    role: Literal["A", "B"],
    model_path: str | Path,
    data_path: str | Path,
    certs_dir: str | Path,
    *,
    listen: str | None = None,
    peer: str | None = None,
    timeout_s: float = 300.0,
) -> dict[str, Any]:
    """Split prediction over TCP+TLS; B gets probabilities (and AUC when its file has labels)."""
    from aisec.privacy.caesar.data import load_party

    model = CaesarModel.load(model_path)
    if model.role != role:
        raise ParameterError(
            "--model", f"is party {model.role}'s model, not {role}'s", str(model_path)
        )
    data = load_party(data_path)
    ch = _open(role, certs_dir, listen, peer, None, timeout_s, PROTOCOL + "-predict")
    try:
        probs = predict_party(role, ch, model, data)
    finally:
        ch.close()
    return _summary(probs, data)


def predict_local(
    model_a: str | Path, model_b: str | Path, data_a: str | Path, data_b: str | Path
) -> dict[str, Any]:
    """Split prediction with both parties in this process (in-process channel)."""
    from aisec.privacy.caesar.data import load_party

    ma, mb = CaesarModel.load(model_a), CaesarModel.load(model_b)
    da, db = load_party(data_a), load_party(data_b)
    ca, cb = inprocess_pair()
    _, probs = run_two_threads(
        lambda: predict_party("A", ca, ma, da), lambda: predict_party("B", cb, mb, db)
    )
    return _summary(probs, db)


def _summary(probs: np.ndarray | None, data: PartyData) -> dict[str, Any]:
    if probs is None:
        return {"role": "A", "n": data.n, "sent_partial_scores": True}
    out: dict[str, Any] = {
        "role": "B",
        "n": data.n,
        "ids": data.ids.tolist(),
        "probabilities": probs.tolist(),
    }
    if data.y is not None and 0 < data.y.sum() < data.n:
        out["auc"] = auc_score(data.y, probs)
        out["accuracy"] = float(np.mean((probs > 0.5) == (data.y == 1)))
    return out


def load_recipe_named(name_or_path: str, overrides: tuple[str, ...] = ()) -> CaesarRecipe:
    """A recipe from a YAML path or a built-in name (see ``RECIPES``).

    Raises:
        UnknownNameError: a name that is neither built in nor an existing file (the message
            lists the built-in recipes).
    """
    from aisec.config import load_recipe
    from aisec.errors import UnknownNameError

    path = RECIPES.get(name_or_path)
    if path is None:
        if not Path(name_or_path).is_file():
            raise UnknownNameError(
                "caesar recipe (built-in name or YAML file)", name_or_path, sorted(RECIPES)
            )
        path = Path(name_or_path)
    return load_recipe(CaesarRecipe, path, overrides)


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=str)
