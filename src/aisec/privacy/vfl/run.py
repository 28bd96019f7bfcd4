"""Run VFL end to end: every party as a thread of this process over in-process channels, or one
party per process over TCP with mutual TLS. Both use the same party functions of
:mod:`aisec.privacy.vfl.protocol`; a run directory holds what the attacks need.

Run directory layout: ``recipe.json`` (the resolved recipe), ``metrics.json``,
``models/bottom-P<i>.safetensors``, ``models/top.safetensors`` (with the class codes),
``views/grads-P<i>.safetensors`` (the gradients passive party i received in the last epoch: its
own view), ``checkpoints/P<i>/epoch-<k>.safetensors``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from aisec.config import StrictModel
from aisec.errors import InputFileError, ParameterError, PeerError
from aisec.io import atomic_write_json, save_safetensors
from aisec.privacy.vfl.data import DataSpec, VFLSplit, load_split
from aisec.privacy.vfl.defences import epsilon_spent
from aisec.privacy.vfl.protocol import (
    PROTOCOL,
    PartyReport,
    VFLParams,
    eval_active,
    eval_passive,
    load_bottom,
    load_top,
    save_bottom,
    save_top,
    train_active,
    train_passive,
)
from aisec.transport import Channel, inprocess_pair

__all__ = [
    "VFLRecipe",
    "run_local",
    "run_party",
    "run_threads",
    "load_run",
    "write_split",
    "default_bottom",
    "torch_threads",
]


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Torch's intra-op threads set to ``n`` inside the block and restored after (None: left
    alone). Parties already run in parallel as threads; on a small shared machine extra
    intra-op threads of tiny models mostly spin against each other."""
    import torch

    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


class VFLRecipe(StrictModel):
    """What to run: the data and its split, and the training parameters."""

    data: DataSpec = DataSpec()
    train: VFLParams = VFLParams()
    seed: int = Field(0, ge=0, description="run seed (reserved for sweeps)")


def default_bottom(dataset: str) -> str:
    return "cnn" if dataset in ("mnist", "fashion") else "mlp"


def run_threads(fns: Sequence[Callable[[], Any]]) -> list[Any]:
    """Run each callable in its own thread; returns their results or raises the root cause (a
    non-peer error first, not another party's "aborted" echo)."""
    out: list[Any] = [None] * len(fns)
    errs: list[BaseException | None] = [None] * len(fns)

    def wrap(i: int) -> None:
        try:
            out[i] = fns[i]()
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errs[i] = exc

    threads = [threading.Thread(target=wrap, args=(i,), name=f"vfl-{i}") for i in range(len(fns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bad = [e for e in errs if e is not None]
    if bad:
        raise next((e for e in bad if not isinstance(e, PeerError)), bad[0])
    return out


def _summary(
    recipe: VFLRecipe,
    split: VFLSplit,
    logits: np.ndarray,
    reports: list[PartyReport],
    eval_bytes: list[int],
    seconds: float,
) -> dict[str, Any]:
    y = split.labels["test"]
    active = reports[0]
    passive = reports[1:]
    d = recipe.train.defence
    n_test = int(y.shape[0])
    emb_bytes = sum(r.emb_bytes for r in passive)
    emb_rows = sum(r.emb_rows for r in passive)
    m: dict[str, Any] = {
        "acc": float(np.mean(logits.argmax(1) == y)),
        "majority_rate": float(np.bincount(y).max() / max(len(y), 1)),
        "bytes_per_sample": emb_bytes / emb_rows if emb_rows else 0.0,
        "eval_bytes_per_sample": float(np.mean(eval_bytes)) / n_test if eval_bytes else 0.0,
        "float_bytes_per_sample": 4.0 * d.code_bits,
        "seconds_per_epoch": float(np.mean(active.seconds_per_epoch))
        if active.seconds_per_epoch
        else 0.0,
        "seconds_per_epoch_min": float(min(active.seconds_per_epoch))
        if active.seconds_per_epoch
        else 0.0,
        "seconds": seconds,
        "epochs_run": active.epochs_run,
        "resumed_from_epoch": active.resumed_from_epoch,
        "train_loss": active.train_loss,
        "n_train": int(split.labels["train"].shape[0]),
        "n_test": n_test,
        "parties": recipe.data.parties,
    }
    eps = epsilon_spent(d, recipe.train.epochs)
    if eps is not None:
        m["epsilon"] = eps
        m["delta"] = d.delta
    return m


def run_local(
    recipe: VFLRecipe,
    out_dir: str | Path | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    split: VFLSplit | None = None,
) -> dict[str, Any]:
    """Train every party as a thread over in-process channels, evaluate on the test rows;
    writes the run directory when ``out_dir`` is given (rerunning it resumes)."""
    recipe.train.check()
    split = split or load_split(recipe.data)
    p = recipe.train
    n = recipe.data.parties
    pairs = {f"P{i}": inprocess_pair("P0", f"P{i}", timeout_s=p.timeout_s) for i in range(1, n)}
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        atomic_write_json(out / "recipe.json", recipe.model_dump(mode="json"))

    def ck(party: str) -> Path | None:
        return out / "checkpoints" / party if out is not None else None

    train, test = split.parties["train"], split.parties["test"]
    t0 = time.perf_counter()
    fns: list[Callable[[], Any]] = [
        lambda: train_active({k: v[0] for k, v in pairs.items()}, train[0], p, ck("P0"), progress)
    ]
    for i in range(1, n):
        fns.append(lambda i=i: train_passive(f"P{i}", pairs[f"P{i}"][1], train[i], p, ck(f"P{i}")))
    results = run_threads(fns)
    seconds = time.perf_counter() - t0
    bottom0, top, codes, rep0 = results[0]
    passive = results[1:]
    evals: list[Callable[[], Any]] = [
        lambda: eval_active({k: v[0] for k, v in pairs.items()}, bottom0, top, test[0], p)
    ]
    for i in range(1, n):
        evals.append(
            lambda i=i: eval_passive(f"P{i}", pairs[f"P{i}"][1], passive[i - 1][0], test[i], p)
        )
    ev = run_threads(evals)
    logits = ev[0][0]
    for a, b in pairs.values():
        a.close(), b.close()
    reports = [rep0, *(r[1] for r in passive)]
    m = _summary(recipe, split, logits, reports, ev[1:], seconds)
    if out is not None:
        save_bottom(out / "models" / "bottom-P0.safetensors", bottom0, "P0")
        save_top(out / "models" / "top.safetensors", top, codes)
        for i, (b, _r, view) in enumerate(passive, start=1):
            save_bottom(out / "models" / f"bottom-P{i}.safetensors", b, f"P{i}")
            if view:
                save_safetensors(out / "views" / f"grads-P{i}.safetensors", view)
        atomic_write_json(out / "metrics.json", {"metrics": m})
    return m


def load_run(run_dir: str | Path) -> tuple[VFLRecipe, dict[str, Any], dict[str, Any]]:
    """``(recipe, bottoms {party: Bottom}, {"top": TopModel, "codes": tensor})`` of a run."""
    d = Path(run_dir)
    f = d / "recipe.json"
    if not f.is_file():
        raise InputFileError(d, "not a VFL run directory (no recipe.json); run `aisec vfl train`")
    import json

    recipe = VFLRecipe.model_validate(json.loads(f.read_text(encoding="utf-8")))
    bottoms = {}
    for i in range(recipe.data.parties):
        path = d / "models" / f"bottom-P{i}.safetensors"
        if not path.is_file():
            raise InputFileError(path, "missing; the run did not finish training")
        party, b = load_bottom(path)
        bottoms[party] = b
    top, codes = load_top(d / "models" / "top.safetensors")
    return recipe, bottoms, {"top": top, "codes": codes}


def write_split(recipe: VFLRecipe, out_dir: str | Path) -> dict[str, str]:
    """Write each party's train and test rows (``P<i>-train.safetensors`` ...) for runs with one
    process or host per party."""
    from aisec.privacy.vfl.data import save_party

    split = load_split(recipe.data)
    out = Path(out_dir)
    files = {}
    for name in ("train", "test"):
        for pd in split.parties[name]:
            files[f"{pd.party}-{name}"] = str(
                save_party(out / f"{pd.party}-{name}.safetensors", pd)
            )
    atomic_write_json(out / "recipe.json", recipe.model_dump(mode="json"))
    return files


def _channel(
    party: str, peer: str, certs_dir: str | Path, addr: str, listening: bool, p: VFLParams
) -> Channel:
    from aisec.transport.tcp import connect, listen, parse_hostport

    host, port = parse_hostport(addr, "--listen" if listening else "--peer")
    if listening:
        return listen(
            party,
            peer,
            host,
            port,
            certs_dir,
            protocol=PROTOCOL,
            timeout_s=p.timeout_s,
            accept_timeout_s=p.accept_timeout_s,
            handshake_timeout_s=p.handshake_timeout_s,
        )
    return connect(
        party,
        peer,
        host,
        port,
        certs_dir,
        protocol=PROTOCOL,
        timeout_s=p.timeout_s,
        retry_s=p.accept_timeout_s,
        handshake_timeout_s=p.handshake_timeout_s,
    )


def run_party(
    party: str,
    recipe: VFLRecipe,
    train_path: str | Path,
    certs_dir: str | Path,
    out_dir: str | Path,
    *,
    test_path: str | Path | None = None,
    listen: str | None = None,
    peer: str | None = None,
) -> dict[str, Any]:
    """One party over TCP with mutual TLS. P0 listens on ``HOST:PORT`` (passive party i on
    PORT + i - 1); passive party i connects to its port with ``peer``. Trains, then (with a
    test file) evaluates; P0 returns the accuracy, passive parties their traffic."""
    from aisec.privacy.vfl.data import load_party

    p = recipe.train
    p.check()
    n = recipe.data.parties
    data = load_party(train_path)
    if data.party != party:
        raise ParameterError(
            "--data", f"holds party {data.party}'s rows, not {party}'s", str(train_path)
        )
    test = load_party(test_path) if test_path is not None else None
    out = Path(out_dir)
    if party == "P0":
        if listen is None:
            raise ParameterError("--listen", "P0 must listen (HOST:PORT)", listen)
        host, _, port = listen.rpartition(":")
        if not port.isdigit():
            raise ParameterError("--listen", "must look like HOST:PORT", listen)
        addrs = {f"P{i}": f"{host}:{int(port) + i - 1}" for i in range(1, n)}
        chans_list = run_threads(
            [lambda q=q, a=a: _channel("P0", q, certs_dir, a, True, p) for q, a in addrs.items()]
        )
        chans = dict(zip(addrs, chans_list, strict=True))
        try:
            bottom, top, codes, rep = train_active(chans, data, p, out / "checkpoints" / "P0")
            save_bottom(out / "models" / "bottom-P0.safetensors", bottom, "P0")
            save_top(out / "models" / "top.safetensors", top, codes)
            result: dict[str, Any] = {
                "party": "P0",
                "epochs_run": rep.epochs_run,
                "resumed_from_epoch": rep.resumed_from_epoch,
                "seconds_per_epoch": rep.seconds_per_epoch,
            }
            if test is not None:
                logits, _ = eval_active(chans, bottom, top, test, p)
                result["acc"] = float(np.mean(logits.argmax(1) == test.y))
        finally:
            for c in chans.values():
                c.close()
    else:
        if peer is None:
            raise ParameterError("--peer", f"{party} must connect to P0 (HOST:PORT)", peer)
        ch = _channel(party, "P0", certs_dir, peer, False, p)
        try:
            bottom, rep, view = train_passive(party, ch, data, p, out / "checkpoints" / party)
            save_bottom(out / "models" / f"bottom-{party}.safetensors", bottom, party)
            if view:
                save_safetensors(out / "views" / f"grads-{party}.safetensors", view)
            result = {
                "party": party,
                "epochs_run": rep.epochs_run,
                "resumed_from_epoch": rep.resumed_from_epoch,
                "bytes_per_sample": rep.bytes_per_sample,
            }
            if test is not None:
                result["eval_bytes"] = eval_passive(party, ch, bottom, test, p)
        finally:
            ch.close()
    atomic_write_json(out / f"result-{party}.json", result)
    return result
