"""CAESAR against SecureML-style dense secret-shared LR: time and bytes per batch over a sweep.

:func:`compare_with_secureml` runs, for each (d, density) of a Zipf sparse data set, a few CAESAR
training batches per HE scheme (:func:`aisec.privacy.caesar.measure.measure_batches`), dealer-aided
SecureML over two epochs (the first opens the masked rows ``E = X - U``, the second reuses
them) and, at chosen d, SecureML whose triples the parties make with HE (no dealer). SecureML is
dense: where ``m x d`` does not fit ``secureml_max_elements`` it runs on fewer rows and its
per-batch figures are scaled linearly to the batch size, and the row says "extrapolated".
:func:`bytes_sweep` measures CAESAR's bytes per batch against batch size, d and non-zeros.

Reference: Chen et al., KDD 2021 (section 5: CAESAR vs SecureML); Mohassel and Zhang, S&P 2017.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from aisec.config import StrictModel
from aisec.privacy.caesar.data import split_columns, zipf_sparse
from aisec.privacy.caesar.measure import BatchCost, measure_batches
from aisec.privacy.caesar.protocol import CaesarParams
from aisec.transport import Link

__all__ = ["SecureMLComparison", "Comparison", "compare_with_secureml", "bytes_sweep"]

# SecureML runs with CAESAR's minimax sigmoid, step and L2, so the two differ only in protocol
_SML_COEFFS = (0.5, 0.125)
_SML_LR, _SML_L2 = 0.5, 1e-4


class SecureMLComparison(StrictModel):
    """The sweep: data shapes, batch, keys, link and how much SecureML may measure."""

    dims: list[int] = Field([100, 10000, 100000], min_length=1)
    densities: list[float] = Field([0.01, 0.001], min_length=1)
    batch_size: int = Field(128, ge=1)
    batches: int = Field(2, ge=1)
    key_bits: int = 1024
    secureml_max_elements: int = Field(2_000_000, ge=1)
    secureml_he_dims: list[int] = [100]
    secureml_he_max_products: int = Field(2000, ge=1)
    epoch_rows: int = Field(100000, ge=1)
    training_epochs: int = Field(3, ge=1)
    workers: int = Field(1, ge=1)
    two_processes: bool = False
    schemes: list[str] = Field(["gmpy2-paillier", "heu-ou"], min_length=1)
    bandwidth_mbps: float = Field(100.0, gt=0)
    latency_ms: float = Field(20.0, ge=0)

    def link(self) -> Link:
        return Link(self.bandwidth_mbps * 1e6, self.latency_ms / 1e3)


@dataclass
class Comparison:
    """Rows ``{"labels": {...}, "metrics": {...}}``, one per (d, density, scheme), and caveats.

    Attributes:
        rows: the measurements.
        schemes: the HE schemes CAESAR ran with.
        skipped: schemes asked for but not run, with the reason.
        secureml_he_scheme: the scheme of the HE-made SecureML triples.
        notes: how the figures were made.
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    schemes: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    secureml_he_scheme: str = ""
    notes: list[str] = field(default_factory=list)


def _caesar_params(spec: SecureMLComparison, scheme: str, batch: int) -> CaesarParams:
    return CaesarParams(
        key_bits=spec.key_bits,
        he_scheme=scheme,  # type: ignore[arg-type]
        sigmoid="minimax",
        batch_size=batch,
        epochs=1,
        max_batches=spec.batches,
        workers=spec.workers,
    )


def _secureml(
    x_a: sp.spmatrix,
    x_b: sp.spmatrix,
    y: np.ndarray,
    rows: int,
    batches: int,
    link: Link,
    epochs: int = 1,
    **extra: Any,
) -> Any:
    """SecureML on ``batches`` batches of ``rows`` rows per epoch."""
    from aisec.privacy.baselines.secureml import train_secureml

    sub = np.arange(rows * batches)
    return train_secureml(
        x_a[sub],
        x_b[sub],
        y[sub],
        coefficients=_SML_COEFFS,
        learning_rate=_SML_LR,
        l2=_SML_L2,
        batch_size=rows,
        epochs=epochs,
        max_batches=batches,
        link=link,
        **extra,
    )


def _secureml_he(
    x_a: sp.spmatrix, x_b: sp.spmatrix, y: np.ndarray, d: int, spec: SecureMLComparison, scheme: str
) -> dict[str, float]:
    """SecureML with HE-made triples on a few rows of one batch, scaled to the batch size."""
    m = spec.batch_size
    rows = min(m, max(1, spec.secureml_he_max_products // (d + 1)))
    r = _secureml(
        x_a, x_b, y, rows, 1, spec.link(), triples="he", he_scheme=scheme, key_bits=spec.key_bits
    )
    scale = m / rows
    return {
        "seconds": float(np.mean(r.seconds_per_batch)) * scale,
        "offline": float(np.mean(r.offline_seconds_per_batch)) * scale,
        "bytes": r.bytes_per_batch * scale,
        "rows": rows,
    }


def _row_metrics(
    spec: SecureMLComparison,
    c: BatchCost,
    nnz_per_batch: int,
    sml: dict[str, Any],
    he: dict[str, float] | None,
) -> dict[str, Any]:
    m = spec.batch_size
    sec = c.seconds_per_batch
    out: dict[str, Any] = {
        "nnz_per_batch": nnz_per_batch,
        "caesar_seconds": sec,
        "caesar_bytes": c.bytes_per_batch,
        "secureml_seconds": sml["seconds"],
        "secureml_bytes": sml["bytes"],
        "secureml_rows_measured": sml["rows"],
        "speedup_vs_secureml": sml["seconds"] / sec,
        "bytes_ratio_vs_secureml": sml["bytes"] / c.bytes_per_batch,
        "caesar_epoch_seconds": sec * spec.epoch_rows / m,
        "secureml_epoch_seconds": sml["seconds"] * spec.epoch_rows / m,
    }
    if "later_seconds" in sml:
        later = sml["later_seconds"]
        out["secureml_later_epochs_seconds"] = later
        out["secureml_later_epochs_bytes"] = sml["later_bytes"]
        out["speedup_vs_secureml_later_epochs"] = later / sec
        # a whole training run of E epochs: one epoch that opens the masked rows, E - 1 that
        # reuse them; CAESAR costs the same every epoch
        e = spec.training_epochs
        out["speedup_vs_secureml_training"] = (sml["seconds"] + (e - 1) * later) / (e * sec)
    if he:
        out.update(
            {
                "secureml_he_seconds": he["seconds"],
                "secureml_he_offline_seconds": he["offline"],
                "secureml_he_bytes": he["bytes"],
                "secureml_he_rows_measured": he["rows"],
                "speedup_vs_secureml_he": he["seconds"] / sec,
            }
        )
    return out


def compare_with_secureml(
    spec: SecureMLComparison,
    rng: np.random.Generator,
    *,
    processes_dir: str | Path | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> Comparison:
    """Measure CAESAR and SecureML per batch over ``spec.dims`` x ``spec.densities``.

    Args:
        spec: the sweep.
        rng: the data generator.
        processes_dir: scratch directory for certificates when ``spec.two_processes``.
        progress: called with (fraction done, message).
    Returns:
        one row per (d, density, scheme); schemes whose library is missing are skipped and
        named in ``skipped`` (never silently replaced by another scheme).
    """
    from aisec.crypto.heu import heu_available as ou_available

    link = spec.link()
    m, k = spec.batch_size, spec.batches
    out = Comparison()
    for s in spec.schemes:
        if s == "heu-ou" and not ou_available():
            out.skipped[s] = "sf-heu is not installed"
        else:
            out.schemes.append(s)
    if not out.schemes:
        from aisec.errors import DependencyError

        raise DependencyError("heu (pip install sf-heu)", "crypto")
    out.secureml_he_scheme = "heu-ou" if "heu-ou" in out.schemes else "gmpy2-paillier"
    where = "two processes over TCP + mutual TLS on loopback (shaped)"
    out.notes += [
        f"link {link.describe()} on every edge (A-B, dealer-A, dealer-B); batch {m}; "
        f"{spec.key_bits}-bit keys (Paillier and OU); minimax sigmoid in both systems",
        "seconds are per training batch; one-time costs (key generation, tables, the final "
        "reveal of d weights) are not in the per-batch figures",
        f"epoch seconds are per-batch seconds x {spec.epoch_rows} rows / batch size",
        "CAESAR parties: "
        + (where if spec.two_processes else "two threads of one process")
        + "; SecureML parties and dealer: threads (their cost is the shaped link)",
        "dealer SecureML: the row masks U are dealt once before training (not timed); seconds "
        "are online time from when the batch's triple is in hand; first epoch (each row's "
        "E = X - U is opened, m x d per batch) and later epochs (E reused: O(m + d) per batch) "
        "are reported apart; secureml_seconds and speedup_vs_secureml are the first epoch's; "
        f"speedup_vs_secureml_training is over {spec.training_epochs} epochs (CAESAR's "
        "default), one that opens the rows and the rest that reuse them",
        "secureml_he: SecureML whose triples the two parties make themselves with "
        f"{out.secureml_he_scheme} (its LHE offline phase; no dealer, CAESAR's trust model); "
        f"measured on batches of max(1, {spec.secureml_he_max_products} // d) rows and scaled "
        f"linearly to the batch size (extrapolated), at d in {spec.secureml_he_dims}",
    ]
    out.notes += [f"{s} skipped: {why}" for s, why in out.skipped.items()]
    if spec.two_processes and processes_dir is None:
        from aisec.errors import ParameterError

        raise ParameterError("processes_dir", "is needed with two_processes", None)
    combos = [(d, rho) for d in spec.dims for rho in spec.densities]
    he_cache: dict[int, dict[str, float]] = {}
    for i, (d, rho) in enumerate(combos):
        if progress:
            progress(i / len(combos), f"d={d} density={rho}")
        n = m * k
        x, y = zipf_sparse(n, d, max(rho * d, 0.05), rng, n_informative=min(64, d))
        a, b = split_columns(x, y, 0.5)
        per_scheme = {
            s: measure_batches(
                a.X,
                b.X,
                y,
                _caesar_params(spec, s, m),
                link=link,
                processes_dir=processes_dir if spec.two_processes else None,
            )
            for s in out.schemes
        }
        # dealer-aided SecureML over two epochs, at full batch if m x d fits, else on fewer rows
        m_sml = min(m, max(1, spec.secureml_max_elements // (d + 1)))
        extrapolated = m_sml < m
        r = _secureml(a.X, b.X, y, m_sml, k, link, epochs=2)
        online = r.epoch_means(r.online_seconds_per_batch)
        sent = r.epoch_means(r.party_bytes_per_batch)
        scale = m / m_sml
        sml: dict[str, Any] = {"seconds": online[0] * scale, "bytes": sent[0] * scale}
        sml["rows"] = m_sml
        if not extrapolated:
            sml["later_seconds"], sml["later_bytes"] = online[1], sent[1]
        he = he_cache.get(d)
        if he is None and d in spec.secureml_he_dims:
            he = he_cache[d] = _secureml_he(a.X, b.X, y, d, spec, out.secureml_he_scheme)
        for s, c in per_scheme.items():
            out.rows.append(
                {
                    "labels": {
                        "d": str(d),
                        "density": str(rho),
                        "scheme": s,
                        "secureml": "extrapolated" if extrapolated else "measured",
                    },
                    "metrics": _row_metrics(spec, c, int(x.nnz * m / n), sml, he),
                }
            )
        if extrapolated:
            out.notes.append(
                f"d={d}, density={rho}: SecureML measured on batches of {m_sml} rows and "
                f"scaled x{scale:.1f} to {m} rows (extrapolated)"
            )
    return out


def bytes_sweep(
    key_bits: int,
    batch_size: int,
    d: int,
    nnz: list[int],
    batches: int,
    rng: np.random.Generator,
    progress: Callable[[float, str], None] | None = None,
) -> list[dict[str, Any]]:
    """CAESAR's bytes per batch at each non-zeros per row, then at 10 x d and 2 x batch size
    (with the first non-zeros); rows ``{"labels": ..., "metrics": ...}`` in that order."""
    grid = [(batch_size, d, z) for z in nnz] + [
        (batch_size, d * 10, nnz[0]),
        (2 * batch_size, d, nnz[0]),
    ]
    rows = []
    for i, (mb, dd, z) in enumerate(grid):
        if progress:
            progress(i / len(grid), f"m={mb} d={dd} nnz/row={z}")
        x, y = zipf_sparse(mb * batches, dd, z, rng)
        a, b = split_columns(x, y, 0.5)
        p = CaesarParams(
            key_bits=key_bits, sigmoid="minimax", batch_size=mb, epochs=1, max_batches=batches
        )
        c = measure_batches(a.X, b.X, y, p)
        rows.append(
            {
                "labels": {"batch": str(mb), "d": str(dd), "nnz_per_row": str(z)},
                "metrics": {
                    "bytes_per_batch": c.bytes_per_batch,
                    "bytes_per_row": c.bytes_per_batch / mb,
                    "seconds_per_batch": c.seconds_per_batch,
                },
            }
        )
    return rows
