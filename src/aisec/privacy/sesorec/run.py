"""Run SeSoRec end to end: both platforms in one process (every mode and both baselines in one
harness), or one platform against a remote peer over TCP with mutual TLS.

A :class:`SeSoRecRecipe` names the data, the protocol parameters, the modes to run and an
optional link shape. :func:`run_local` trains plaintext SoReg (both data sets joined: the upper
bound) and plain MF (no S: the lower bound) with the same schedule, then each secure mode as
two threads over an in-process channel, and measures RMSE/MAE, seconds, bytes and rounds per
batch, and the attack on the rating platform's view. :func:`run_party` is one platform over
TCP + mutual TLS (two processes or two hosts).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from aisec.config import StrictModel
from aisec.crypto.beaver import Dealer
from aisec.errors import InputFileError, ParameterError, PeerError
from aisec.io import atomic_write_json, save_safetensors
from aisec.privacy.sesorec.data import (
    Ratings,
    SocialRecData,
    load_filmtrust,
    movielens_planted,
    read_edges,
    read_ids,
    read_ratings,
    synthetic,
)
from aisec.privacy.sesorec.model import Factors, predict, rmse_mae, train_plaintext, user_batches
from aisec.privacy.sesorec.protocol import (
    PROTOCOL,
    RatingInput,
    SeSoRecParams,
    SocialInput,
    TrainReport,
    View,
    analytic_bytes_per_batch,
    social_matrix,
    train_party,
)
from aisec.transport import Channel, Link, LinkSpec, inprocess_pair

__all__ = [
    "DataSpec",
    "LinkSpec",
    "SeSoRecRecipe",
    "RECIPES",
    "load_data",
    "load_recipe_named",
    "run_local",
    "run_party",
    "run_attack",
    "mode_params",
]

RECIPES_DIR = Path(__file__).with_name("recipes")
RECIPES = {p.stem: p for p in sorted(RECIPES_DIR.glob("*.yaml"))}
_RANGES = {"filmtrust": (0.5, 4.0), "movielens-planted": (1.0, 5.0), "synthetic": (1.0, 5.0)}


class DataSpec(StrictModel):
    """Which data: FilmTrust from ``path``, MovieLens-100K with a planted trust graph, or the
    synthetic generator (users, items, average out-degree, rating density)."""

    dataset: Literal["filmtrust", "movielens-planted", "synthetic"] = "filmtrust"
    path: str = Field("../shared/data/filmtrust", description="FilmTrust directory")
    test_frac: float = Field(0.2, gt=0, lt=1)
    avg_degree: float = Field(5.0, gt=0)
    blocks: int = Field(20, ge=1)
    homophily: float = Field(0.8, ge=0, le=1)
    users: int = Field(1000, ge=2)
    items: int = Field(500, ge=1)
    density: float = Field(0.02, gt=0, le=1)

    def rating_range(self) -> tuple[float, float]:
        return _RANGES[self.dataset]


class SeSoRecRecipe(StrictModel):
    data: DataSpec = DataSpec()
    protocol: SeSoRecParams = SeSoRecParams()
    modes: tuple[Literal["paper", "hardened"], ...] = ("paper", "hardened")
    hardened_matmul: Literal["beaver-dealer", "beaver-he"] = Field(
        "beaver-dealer", description="the product hardened mode uses when protocol.matmul is ssmm"
    )
    baselines: bool = True
    attack_epochs: int = Field(2, ge=0, description="epochs of the rating platform's view kept")
    link: LinkSpec = LinkSpec()
    seed: int = Field(0, ge=0, description="held-out split and planted/synthetic graph seed")


def load_data(spec: DataSpec, seed: int) -> SocialRecData:
    if spec.dataset == "filmtrust":
        return load_filmtrust(spec.path, spec.test_frac, seed)
    if spec.dataset == "movielens-planted":
        return movielens_planted(spec.avg_degree, spec.blocks, spec.homophily, spec.test_frac, seed)
    return synthetic(
        spec.users,
        spec.items,
        spec.avg_degree,
        spec.density,
        blocks=spec.blocks,
        homophily=spec.homophily,
        test_frac=spec.test_frac,
        seed=seed,
    )


def mode_params(recipe: SeSoRecRecipe, mode: str) -> tuple[SeSoRecParams, str | None]:
    """The protocol parameters of ``mode``; hardened mode swaps SSMM for ``hardened_matmul``
    (returned as a note, so it is never silent)."""
    p = recipe.protocol
    update: dict[str, Any] = {"mode": mode}
    note = None
    if mode == "hardened" and p.matmul == "ssmm":
        update["matmul"] = recipe.hardened_matmul
        note = f"hardened uses {recipe.hardened_matmul}: SSMM would reveal S's row differences"
    return p.model_copy(update=update), note


def _two_threads(fa: Callable[[], Any], fb: Callable[[], Any]) -> tuple[Any, Any]:
    import threading

    out: dict[str, Any] = {}

    def wrap(key: str, fn: Callable[[], Any]) -> None:
        try:
            out[key] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            out[key + "!"] = exc

    ts = [threading.Thread(target=wrap, args=(k, f)) for k, f in (("a", fa), ("b", fb))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    errs = [out[k] for k in ("a!", "b!") if k in out]
    if errs:  # the root cause first, not the peer's "aborted" echo
        raise next((e for e in errs if not isinstance(e, PeerError)), errs[0])
    return out["a"], out["b"]


def _analytic(p: SeSoRecParams, n_users: int, n_items: int) -> float:
    sizes = [len(b) for b in user_batches(n_users, p.batch_size, 0, p.seed)]
    if p.max_batches is not None:
        sizes = sizes[: p.max_batches]
    k = p.factors
    return float(
        np.mean([analytic_bytes_per_batch(p.mode, p.matmul, k, n_users, n_items, s) for s in sizes])
    )


_VIEW_BUDGET = 2e9


def _view_bytes(p: SeSoRecParams, n_users: int, epochs: int) -> float:
    """Bytes of the rating platform's recorded view for ``epochs`` epochs."""
    nb = p.batch_size
    batches = -(-n_users // nb)
    if p.max_batches is not None:
        batches = min(batches, p.max_batches)
    per = p.factors * n_users * 4 + (n_users // 2 + 1) * nb * 8 + p.factors * nb * 8
    return float(min(epochs, p.epochs) * batches * per)


def run_mode(
    data: SocialRecData,
    params: SeSoRecParams,
    link: Link | None = None,
    out_dir: str | Path | None = None,
    record_epochs: int = 0,
    progress: Callable[[int, int, str], None] | None = None,
) -> tuple[Factors, TrainReport, View | None]:
    """One secure mode, both platforms as threads over an in-process channel."""
    p = params.model_copy(update={"record_view_epochs": record_epochs})
    ca, cb = inprocess_pair("rating", "social", link, p.timeout_s)
    dealer = Dealer() if p.matmul == "beaver-dealer" else None
    view = View(p.mode, p.matmul, data.n_users) if record_epochs else None
    view_b = View(p.mode, p.matmul, data.n_users) if record_epochs else None
    out = Path(out_dir) if out_dir is not None else None
    ck = (lambda r: out / "checkpoints" / r) if out is not None else (lambda r: None)
    a_in = RatingInput(data.users, data.train, data.rating_range)
    b_in = SocialInput(data.users, data.edges)
    (fa, ra), (_, _rb) = _two_threads(
        lambda: train_party("rating", ca, a_in, p, ck("rating"), dealer=dealer, view=view),
        lambda: train_party(
            "social", cb, b_in, p, ck("social"), dealer=dealer, view=view_b, progress=progress
        ),
    )
    if view is not None and view_b is not None:
        view.social_u_pair_sums = view_b.social_u_pair_sums
    if dealer is not None:  # what the dealer sends both platforms
        ra.offline_bytes = dealer.offline_bytes(0) + dealer.offline_bytes(1)
    if out is not None:
        save_safetensors(
            out / "model-rating.safetensors", {"U": fa.U, "V": fa.V, "mu": np.array([fa.mu])}
        )
        if view is not None:
            view.save(out / "view-rating.safetensors")
    return fa, ra, view


def _social_leak(p: SeSoRecParams, data: SocialRecData, sums: np.ndarray) -> dict[str, Any]:
    """How well the social platform's view gives the sums of adjacent columns of the rating
    platform's U at the first batch (U is still the seeded initial U there)."""
    from aisec.privacy.sesorec.model import init_factors

    u, _ = init_factors(p.factors, data.n_users, data.n_items, p.init_scale, p.seed)
    if u.shape[1] % 2:
        u = np.concatenate([u, np.zeros((u.shape[0], 1))], axis=1)
    truth = u[:, 0::2] + u[:, 1::2]
    err = float(np.max(np.abs(sums.astype(np.float64) / (1 << p.frac_bits) - truth)))
    return {
        "social_u_pair_sum_error": err,
        "social_learns_u_pair_sums": bool(err < 2.0 ** (1 - p.frac_bits)),
    }


def run_local(
    recipe: SeSoRecRecipe,
    out_dir: str | Path | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> dict[str, Any]:
    """Baselines and every mode of ``recipe`` in this process; returns (and writes to
    ``out_dir/metrics.json``) the metrics."""
    from aisec.privacy.sesorec.attack import evaluate_attack

    data = load_data(recipe.data, recipe.seed)
    for m in recipe.modes:  # every mode's parameters are valid before anything runs
        mode_params(recipe, m)[0].check()
    lo, hi = data.rating_range
    p = recipe.protocol
    out = Path(out_dir) if out_dir is not None else None
    metrics: dict[str, Any] = {
        "dataset": data.name,
        "graph": data.labels.get("graph", ""),
        "n_users": data.n_users,
        "n_items": data.n_items,
        "n_train": int(len(data.train.rating)),
        "n_test": int(len(data.test.rating)),
        "n_edges": int(len(data.edges.src)),
    }
    hp = dict(
        factors=p.factors,
        epochs=p.epochs,
        batch_size=p.batch_size,
        lr=p.learning_rate,
        l2=p.l2,
        init_scale=p.init_scale,
        seed=p.seed,
    )
    if recipe.baselines:
        t0 = time.perf_counter()
        soreg = train_plaintext(data.train, social_matrix(data.edges), social=p.social, **hp)
        t_soreg = time.perf_counter() - t0
        mf = train_plaintext(data.train, None, social=0.0, **hp)
        r_s, m_s = rmse_mae(predict(soreg, data.test, lo, hi), data.test.rating)
        r_m, m_m = rmse_mae(predict(mf, data.test, lo, hi), data.test.rating)
        metrics.update(
            {
                "rmse_plaintext_soreg": r_s,
                "mae_plaintext_soreg": m_s,
                "rmse_mf": r_m,
                "mae_mf": m_m,
                "soreg_beats_mf": bool(r_s < r_m),
                "seconds_per_epoch_plaintext": t_soreg / p.epochs,
            }
        )
    modes: dict[str, Any] = {}
    for mode in recipe.modes:
        mp, note = mode_params(recipe, mode)
        mdir = out / mode if out is not None else None
        t0 = time.perf_counter()
        record = recipe.attack_epochs
        need = _view_bytes(mp, data.n_users, record)
        if need > _VIEW_BUDGET:  # recorded, never silent: the row says why there is no attack
            modes_note = f"attack skipped: the view would take {need / 1e9:.1f} GB"
            record = 0
        else:
            modes_note = ""
        f, rep, view = run_mode(data, mp, recipe.link.link(), mdir, record, progress)
        seconds = time.perf_counter() - t0
        r, mae = rmse_mae(predict(f, data.test, lo, hi), data.test.rating)
        epochs_run = max(rep.epochs_run, 1)
        row: dict[str, Any] = {
            "matmul": mp.matmul,
            "rmse": r,
            "mae": mae,
            "seconds": seconds,
            "seconds_per_epoch": sum(rep.seconds_per_batch) / epochs_run,
            "seconds_per_batch": float(np.mean(rep.seconds_per_batch))
            if rep.seconds_per_batch
            else 0.0,
            "bytes": int(sum(s["bytes_sent"] + s["bytes_received"] for s in rep.comm.values())),
            "bytes_per_batch": rep.bytes_per_batch,
            "analytic_bytes_per_batch": _analytic(mp, data.n_users, data.n_items),
            "rounds_per_batch": rep.rounds_per_batch,
            "offline_bytes": rep.offline_bytes,
            "batches": rep.batches,
            "resumed_from_epoch": rep.resumed_from_epoch,
        }
        if note or modes_note:
            row["note"] = "; ".join(x for x in (note, modes_note) if x)
        if "rmse_plaintext_soreg" in metrics:
            row["rmse_gap_vs_plaintext"] = abs(r - metrics["rmse_plaintext_soreg"])
            if metrics.get("seconds_per_epoch_plaintext"):
                row["overhead_vs_plaintext"] = (
                    row["seconds_per_epoch"] / metrics["seconds_per_epoch_plaintext"]
                )
        if view is not None and view.batches:
            row.update(evaluate_attack(view, data.edges))
        if view is not None and view.social_u_pair_sums is not None:
            row.update(_social_leak(mp, data, view.social_u_pair_sums))
        modes[mode] = row
    metrics["modes"] = modes
    if out is not None:
        atomic_write_json(out / "metrics.json", metrics)
        atomic_write_json(out / "recipe.json", recipe.model_dump(mode="json"))
    return metrics


def run_attack(run_dir: str | Path) -> dict[str, Any]:
    """The attack on every recorded view under ``run_dir`` (a ``run --out`` directory), scored
    against the recipe's true graph; writes ``<mode>/recovered-edges.txt`` and ``attack.json``."""
    from aisec.io import atomic_write_text
    from aisec.privacy.sesorec.attack import evaluate_attack, recover_edges, true_pairs

    root = Path(run_dir)
    rj = root / "recipe.json"
    if not rj.is_file():
        raise InputFileError(rj, "missing: RUN_DIR must come from `aisec sesorec run --out`")
    recipe = SeSoRecRecipe.model_validate(json.loads(rj.read_text()))
    views = sorted(root.glob("*/view-rating.safetensors"))
    if not views:
        raise InputFileError(root, "has no recorded view (run with attack_epochs >= 1)")
    data = load_data(recipe.data, recipe.seed)
    out: dict[str, Any] = {}
    for vp in views:
        view = View.load(vp)
        res = recover_edges(view)
        m = len(true_pairs(data.edges))
        top = res.ranking()[:m]
        atomic_write_text(
            vp.parent / "recovered-edges.txt",
            "".join(f"{data.users.ids[i]} {data.users.ids[j]}\n" for i, j in top),
        )
        out[vp.parent.name] = {"matmul": view.matmul, **evaluate_attack(view, data.edges, res)}
    atomic_write_json(root / "attack.json", out)
    return out


# -- one platform over TCP ---------------------------------------------------------------------


def load_rating_party(
    train_path: str | Path,
    users_path: str | Path,
    rating_range: tuple[float, float],
    test_path: str | Path | None = None,
) -> tuple[RatingInput, Ratings | None]:
    """The rating platform's files: training ratings, the shared id list, optional test file
    (items are the union of both files' item ids)."""
    users = read_ids(users_path)
    _, items_tr = read_ratings(train_path, users, rating_range=rating_range)
    items = items_tr
    if test_path is not None:
        _, items_te = read_ratings(test_path, users, rating_range=rating_range)
        items = tuple(
            sorted(
                set(items_tr) | set(items_te),
                key=lambda x: (0, int(x)) if x.lstrip("-").isdigit() else (1, x),
            )
        )
    train, _ = read_ratings(train_path, users, items, rating_range)
    test = read_ratings(test_path, users, items, rating_range)[0] if test_path else None
    return RatingInput(users, train, rating_range), test


def _open(
    role: str,
    certs_dir: str | Path,
    listen: str | None,
    peer: str | None,
    link: Link | None,
    p: SeSoRecParams,
) -> Channel:
    from aisec.transport.tcp import open_party

    other = "social" if role == "rating" else "rating"
    return open_party(
        role,
        other,
        certs_dir,
        listen,
        peer,
        protocol=PROTOCOL,
        link=link,
        timeout_s=p.timeout_s,
        accept_timeout_s=p.accept_timeout_s,
        handshake_timeout_s=p.handshake_timeout_s,
    )


def run_party(
    role: Literal["rating", "social"],
    data_path: str | Path,
    users_path: str | Path,
    certs_dir: str | Path,
    recipe: SeSoRecRecipe,
    out_dir: str | Path,
    *,
    test_path: str | Path | None = None,
    listen: str | None = None,
    peer: str | None = None,
    link: Link | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> dict[str, Any]:
    """One platform over TCP with mutual TLS (mode and product from ``recipe.protocol``).

    All inputs are read and checked before the connection opens; nothing is written before
    the protocol has run."""
    p = recipe.protocol
    p.check()
    if p.matmul == "beaver-dealer":
        raise ParameterError(
            "protocol.matmul",
            "beaver-dealer needs a dealer, which only in-process runs have "
            "(use ssmm or beaver-he between two hosts)",
            p.matmul,
        )
    rng_ = recipe.data.rating_range()
    if role == "rating":
        data: RatingInput | SocialInput
        data, test = load_rating_party(data_path, users_path, rng_, test_path)
    elif role == "social":
        users = read_ids(users_path)
        data, test = SocialInput(users, read_edges(data_path, users)), None
    else:
        raise ParameterError("--role", "must be rating or social", role)
    data.validate()
    ch = _open(role, certs_dir, listen, peer, link, p)
    out = Path(out_dir)
    try:
        f, rep = train_party(role, ch, data, p, out / "checkpoints", progress=progress)
    finally:
        ch.close()
    result: dict[str, Any] = {
        "role": role,
        "mode": p.mode,
        "matmul": p.matmul,
        "epochs_run": rep.epochs_run,
        "resumed_from_epoch": rep.resumed_from_epoch,
        "batches": rep.batches,
        "seconds": rep.seconds,
        "bytes_per_batch": rep.bytes_per_batch,
        "rounds_per_batch": rep.rounds_per_batch,
    }
    if f is not None:
        save_safetensors(
            out / "model-rating.safetensors", {"U": f.U, "V": f.V, "mu": np.array([f.mu])}
        )
        if test is not None:
            r, m = rmse_mae(predict(f, test, *rng_), test.rating)
            result.update({"rmse": r, "mae": m})
    atomic_write_json(out / f"report-{role}.json", {**result, "comm": rep.comm})
    return result


def load_recipe_named(name_or_path: str, overrides: tuple[str, ...] = ()) -> SeSoRecRecipe:
    """A recipe from a YAML path or a built-in name (see ``RECIPES``)."""
    from aisec.config import load_recipe
    from aisec.errors import UnknownNameError

    path = RECIPES.get(name_or_path)
    if path is None:
        if not Path(name_or_path).is_file():
            raise UnknownNameError(
                "sesorec recipe (built-in name or YAML file)", name_or_path, sorted(RECIPES)
            )
        path = Path(name_or_path)
    return load_recipe(SeSoRecRecipe, path, overrides)
