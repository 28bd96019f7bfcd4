"""Split (vertical) learning for N parties over Channels, with HashVFL or another defence.

Party P0 (active) holds the labels, its own bottom model and the top model; P1..P{N-1} (passive)
each hold a feature slice and a bottom model, and one Channel to P0. Rows are aligned by sample
id; the batch order comes from a public seed. Steps:

1. ``setup``: each passive party sends the agreed parameters, its row count, a digest of its
   sample ids, its slice shape and the epochs it holds checkpoints for; P0 refuses a mismatch
   (one line naming the party) and answers the epoch every party resumes from.
2. per batch, ``emb``: each passive party sends what its defence makes of its bottom output
   (HashVFL: the codes, 1 bit per dimension); P0 runs the top model on the concatenation, the
   loss (cross-entropy, plus with HashVFL the mean over parties of ``1 - cos(h_i, o_y)``), and
   ``grad``: returns each party the gradient of the loss with respect to what it sent.
3. after each epoch every party checkpoints its own model and optimiser (atomic files).
4. ``eval``: passive parties send their outputs for held-out rows; P0 predicts.

Threat model (the paper's): honest-but-curious parties that follow the protocol. What crosses
the link: the sample ids' digest, shapes, codes or embeddings of every training row once per
epoch (and of evaluation rows), and the gradients with respect to them. A passive party learns
its gradients; P0 learns every party's codes or embeddings. The attacks in
:mod:`aisec.privacy.attacks` measure what these reveal. A dead or silent party raises
:class:`aisec.errors.PeerError` naming the party, the epoch, the batch and the step.

Reference: Qiu et al., IEEE TIFS 19 (2024), arXiv 2212.00325 (HashVFL); Vepakomma et al. 2018
(split learning).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import Field

from aisec.config import StrictModel
from aisec.errors import ConfigError, DataError, InputFileError, PeerError
from aisec.io import load_safetensors, save_safetensors
from aisec.privacy.vfl.data import PartyData, check_party, ids_digest
from aisec.privacy.vfl.defences import DefenceSpec, decode, encode, perturb_grad
from aisec.privacy.vfl.hashing import class_codes, consistency_loss
from aisec.privacy.vfl.models import BOTTOMS, Bottom, TopModel
from aisec.transport import Channel

__all__ = [
    "PROTOCOL",
    "VFLParams",
    "PartyReport",
    "train_passive",
    "train_active",
    "eval_passive",
    "eval_active",
    "save_bottom",
    "load_bottom",
    "save_top",
    "load_top",
    "make_bottom",
]

PROTOCOL = "hashvfl-1"
_log = logging.getLogger(__name__)
_LOCAL = {"timeout_s", "accept_timeout_s", "handshake_timeout_s", "noise_seed"}


class VFLParams(StrictModel):
    """Training parameters; all parties must agree on every value except the local ones."""

    defence: DefenceSpec = DefenceSpec()
    bottom: str = Field("cnn", description="bottom architecture (see BOTTOMS)")
    hidden: int = Field(128, ge=4)
    top_hidden: int = Field(64, ge=4)
    epochs: int = Field(5, ge=1)
    batch_size: int = Field(128, ge=2)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(5e-4, ge=0)
    cos_weight: float = Field(1.0, ge=0, description="weight of HashVFL's consistency loss")
    batch_seed: int = Field(0, ge=0, description="public seed of the batch order")
    init_seed: int = Field(0, ge=0, description="seed of the model initialisation")
    codes_seed: int = Field(0, ge=0, description="public seed of the class codes")
    max_batches: int | None = Field(None, ge=1, description="stop each epoch after this many")
    noise_seed: int = Field(0, ge=0, description="local seed of a party's defence noise")
    timeout_s: float = Field(120.0, gt=0, description="how long a party waits for a message")
    accept_timeout_s: float = Field(120.0, gt=0)
    handshake_timeout_s: float = Field(10.0, gt=0)

    def agreed(self) -> dict[str, Any]:
        return self.model_dump(exclude=_LOCAL)

    def check(self) -> None:
        self.defence.check()
        BOTTOMS.entry(self.bottom)


@dataclass
class PartyReport:
    """What one party measured while training."""

    party: str
    epochs_run: int = 0
    resumed_from_epoch: int = 0
    seconds_per_epoch: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    emb_bytes: int = 0
    emb_rows: int = 0
    comm: dict[str, dict[str, float | int]] = field(default_factory=dict)

    @property
    def bytes_per_sample(self) -> float:
        return self.emb_bytes / self.emb_rows if self.emb_rows else 0.0


def _party_index(party: str) -> int:
    return int(party[1:]) if party.startswith("P") and party[1:].isdigit() else 0


def _seeded(*key: int) -> int:
    return int(np.random.default_rng(list(key)).integers(2**62))


def _generator(*key: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(_seeded(*key))
    return g


def make_bottom(params: VFLParams, party: str, shape: tuple[int, ...]) -> Bottom:
    """A freshly initialised bottom model for ``party`` (init seeded without global state)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_seeded(params.init_seed, _party_index(party), 1))
        return Bottom(
            params.bottom, shape, params.defence.code_bits, params.hidden, params.defence.hashed
        )


def _make_top(params: VFLParams, parties: int, n_classes: int) -> TopModel:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_seeded(params.init_seed, 999, 2))
        return TopModel(parties * params.defence.code_bits, n_classes, params.top_hidden)


def _optimizer(params: VFLParams, modules: list[torch.nn.Module]) -> torch.optim.Optimizer:
    ps = [p for m in modules for p in m.parameters()]
    return torch.optim.Adam(ps, lr=params.lr, weight_decay=params.weight_decay)


def _batches(n: int, params: VFLParams, epoch: int) -> list[np.ndarray]:
    order = np.random.default_rng([params.batch_seed, epoch]).permutation(n)
    out = [np.sort(order[i : i + params.batch_size]) for i in range(0, n, params.batch_size)]
    out = [b for b in out if len(b) >= 2]  # BatchNorm needs two rows
    return out[: params.max_batches] if params.max_batches else out


# -- checkpoints ---------------------------------------------------------------------------------


class Checkpoints:
    """``<root>/epoch-<k>.safetensors`` per party: model(s), optimiser state, agreed params."""

    def __init__(self, root: str | Path | None, party: str) -> None:
        self.root, self.party = (Path(root) if root is not None else None), party

    def epochs(self) -> list[int]:
        if self.root is None or not self.root.is_dir():
            return []
        out = []
        for p in self.root.glob("epoch-*.safetensors"):
            tail = p.stem.split("-", 1)[1]
            if tail.isdigit():
                out.append(int(tail))
        return sorted(out)

    def readable(self) -> list[int]:
        ok = []
        for e in self.epochs():
            try:
                self.load(e)
            except (InputFileError, OSError, ValueError, KeyError) as exc:
                _log.warning(
                    "%s: checkpoint of epoch %d unreadable, passed over: %s", self.party, e, exc
                )
            else:
                ok.append(e)
        return ok

    def save(
        self,
        epoch: int,
        modules: Mapping[str, torch.nn.Module],
        opt: torch.optim.Optimizer,
        agreed: dict[str, Any],
        extra: dict[str, Any],
    ) -> None:
        if self.root is None:
            return
        tensors: dict[str, torch.Tensor] = {}
        for name, m in modules.items():
            for k, v in m.state_dict().items():
                tensors[f"{name}.{k}"] = v.detach().clone()
        sd = opt.state_dict()
        for idx, st in sd["state"].items():
            for k, v in st.items():
                tensors[f"opt.{idx}.{k}"] = torch.as_tensor(v).detach().clone()
        meta = {
            "format": "aisec-vfl-checkpoint-1",
            "party": self.party,
            "epoch": str(epoch),
            "agreed": json.dumps(agreed, sort_keys=True),
            "param_groups": json.dumps(sd["param_groups"]),
            "extra": json.dumps(extra),
        }
        self.root.mkdir(parents=True, exist_ok=True)
        save_safetensors(self.root / f"epoch-{epoch}.safetensors", tensors, metadata=meta)
        for old in self.epochs():
            if old < epoch - 1:
                (self.root / f"epoch-{old}.safetensors").unlink(missing_ok=True)

    def load(self, epoch: int) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        from safetensors import safe_open

        assert self.root is not None
        path = self.root / f"epoch-{epoch}.safetensors"
        t = load_safetensors(path)
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
        if meta.get("format") != "aisec-vfl-checkpoint-1" or meta.get("party") != self.party:
            raise InputFileError(path, f"not a VFL checkpoint of party {self.party}")
        return t, meta

    def restore(
        self,
        epoch: int,
        modules: Mapping[str, torch.nn.Module],
        opt: torch.optim.Optimizer,
        agreed: dict[str, Any],
    ) -> dict[str, Any]:
        t, meta = self.load(epoch)
        path = self.root / f"epoch-{epoch}.safetensors"  # type: ignore[operator]
        if json.loads(meta["agreed"]) != json.loads(json.dumps(agreed, sort_keys=True)):
            raise ConfigError(
                f"{path}: checkpoint was trained with other parameters; use a fresh directory"
            )
        for name, m in modules.items():
            want = m.state_dict()
            got = {k[len(name) + 1 :]: v for k, v in t.items() if k.startswith(name + ".")}
            for k, v in want.items():
                if k not in got or tuple(got[k].shape) != tuple(v.shape):
                    raise DataError(
                        f"party {self.party}: checkpoint {path.name} does not fit the model "
                        f"({name}.{k}: {list(got[k].shape) if k in got else 'missing'} vs "
                        f"{list(v.shape)}); is the feature slice of another width?"
                    )
            m.load_state_dict(got)
        groups = json.loads(meta["param_groups"])
        state: dict[int, dict[str, torch.Tensor]] = {}
        for k, v in t.items():
            if k.startswith("opt."):
                _, idx, key = k.split(".", 2)
                state.setdefault(int(idx), {})[key] = v
        opt.load_state_dict({"state": state, "param_groups": groups})
        return json.loads(meta.get("extra", "{}"))


# -- saved models ----------------------------------------------------------------------------------


def save_bottom(path: str | Path, bottom: Bottom, party: str) -> Path:
    meta = {
        "format": "aisec-vfl-bottom-1",
        "party": party,
        "arch": bottom.arch,
        "shape": json.dumps(list(bottom.shape)),
        "dim": str(bottom.dim),
        "hidden": str(bottom.net[-1].in_features if hasattr(bottom.net[-1], "in_features") else 0),
        "hashed": json.dumps(bottom.hashed),
    }
    return save_safetensors(path, dict(bottom.state_dict()), metadata=meta)


def load_bottom(path: str | Path) -> tuple[str, Bottom]:
    """``(party, bottom)`` from :func:`save_bottom`'s file, in eval mode."""
    from safetensors import safe_open

    t = load_safetensors(path)
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata() or {}
    if meta.get("format") != "aisec-vfl-bottom-1":
        raise InputFileError(path, "not an aisec VFL bottom model")
    b = Bottom(
        meta["arch"],
        tuple(json.loads(meta["shape"])),
        int(meta["dim"]),
        int(meta["hidden"]),
        bool(json.loads(meta["hashed"])),
    )
    b.load_state_dict(t)
    b.eval()
    return meta["party"], b


def save_top(path: str | Path, top: TopModel, codes: torch.Tensor) -> Path:
    l1, l2 = top.net[0], top.net[2]
    meta = {
        "format": "aisec-vfl-top-1",
        "in_dim": str(l1.in_features),
        "hidden": str(l1.out_features),
        "classes": str(l2.out_features),
    }
    tensors = dict(top.state_dict())
    tensors["class_codes"] = codes
    return save_safetensors(path, tensors, metadata=meta)


def load_top(path: str | Path) -> tuple[TopModel, torch.Tensor]:
    from safetensors import safe_open

    t = load_safetensors(path)
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata() or {}
    if meta.get("format") != "aisec-vfl-top-1":
        raise InputFileError(path, "not an aisec VFL top model")
    top = TopModel(int(meta["in_dim"]), int(meta["classes"]), int(meta["hidden"]))
    codes = t.pop("class_codes")
    top.load_state_dict(t)
    top.eval()
    return top, codes


# -- training --------------------------------------------------------------------------------------


def _where(exc: PeerError, epoch: int, batch: int | None) -> PeerError:
    at = f"epoch {epoch + 1}" + (f" batch {batch + 1}" if batch is not None else "")
    problem = str(exc).split(": ", 1)[1] if ": " in str(exc) else str(exc)
    return PeerError(exc.party, f"{at} {exc.step}", problem)


def train_passive(
    party: str,
    ch: Channel,
    data: PartyData,
    params: VFLParams,
    ckpt_dir: str | Path | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    record_grads: bool = True,
) -> tuple[Bottom, PartyReport, dict[str, np.ndarray]]:
    """Train a passive party's bottom model against P0 over ``ch``.

    Returns the bottom model, the report, and this party's own view of the last epoch:
    ``{"ids": (n,), "grads": (n, bits)}`` the gradients it received (what a curious passive
    party can mine for labels; empty when ``record_grads`` is False).
    """
    params.check()
    check_party(data)
    rep = PartyReport(party)
    bottom = make_bottom(params, party, data.shape)
    opt = _optimizer(params, [bottom])
    ck = Checkpoints(ckpt_dir, party)
    step = "setup"
    try:
        ch.send(
            "setup",
            {
                "party": party,
                "params": params.agreed(),
                "n": data.n,
                "ids": ids_digest(data.ids),
                "shape": list(data.shape),
                "epochs": ck.readable(),
            },
        )
        start = int(ch.recv("setup")["resume"])
        if start:
            ck.restore(start, {"bottom": bottom}, opt, params.agreed())
            rep.resumed_from_epoch = start
        x_all = torch.from_numpy(data.x)
        grads = np.zeros((data.n, params.defence.code_bits), np.float32)
        for epoch in range(start, params.epochs):
            t0, gen = time.perf_counter(), _generator(params.noise_seed, _party_index(party), epoch)
            bottom.train()
            batches = _batches(data.n, params, epoch)
            for b, idx in enumerate(batches):
                try:
                    out = bottom(x_all[idx])
                    sent, fields = encode(params.defence, out, gen)
                    step = "emb"
                    ch.send("emb", fields)
                    step = "grad"
                    g = np.asarray(ch.recv("grad")["g"], dtype=np.float32)
                except PeerError as exc:
                    raise _where(exc, epoch, b) from None
                if g.shape != tuple(sent.shape) or not np.isfinite(g).all():
                    raise DataError(f"{party}: gradient of shape {g.shape} or not finite from P0")
                if record_grads and epoch == params.epochs - 1:
                    grads[idx] = g
                opt.zero_grad()
                sent.backward(torch.from_numpy(g))
                opt.step()
                if progress is not None:
                    progress(epoch, b, party)
            rep.seconds_per_epoch.append(time.perf_counter() - t0)
            rep.epochs_run += 1
            step = "checkpoint"
            ck.save(epoch + 1, {"bottom": bottom}, opt, params.agreed(), {})
    except PeerError:
        ch.close()
        raise
    except Exception as exc:
        ch.abort(exc, step)
        raise
    st = ch.stats.steps.get("emb")
    rep.emb_bytes = int(st.bytes_sent) if st else 0
    rep.emb_rows = sum(
        len(b) for e in range(start, params.epochs) for b in _batches(data.n, params, e)
    )
    rep.comm = ch.stats.as_dict()
    bottom.eval()
    view = {"ids": data.ids, "grads": grads} if record_grads else {}
    return bottom, rep, view


def train_active(
    chans: Mapping[str, Channel],
    data: PartyData,
    params: VFLParams,
    ckpt_dir: str | Path | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> tuple[Bottom, TopModel, torch.Tensor, PartyReport]:
    """Train P0's bottom and the top model against the passive parties in ``chans``.

    Returns P0's bottom, the top model, the class codes (C, bits) and P0's report.
    """
    params.check()
    check_party(data)
    if data.y is None:
        raise DataError("party P0 (active) needs the labels")
    parties = ["P0", *sorted(chans, key=_party_index)]
    rep = PartyReport("P0")
    bottom = make_bottom(params, "P0", data.shape)
    top = _make_top(params, len(parties), data.n_classes)
    codes = class_codes(data.n_classes, params.defence.code_bits, params.codes_seed)
    opt = _optimizer(params, [bottom, top])
    ck = Checkpoints(ckpt_dir, "P0")
    step, current = "setup", ""
    try:
        common = set(ck.readable())
        for p in parties[1:]:
            current = p
            hello = chans[p].recv("setup")
            if hello.get("party") != p:
                raise DataError(f"channel to {p} reached {hello.get('party')!r}")
            if hello.get("params") != json.loads(json.dumps(params.agreed())):
                diff = sorted(
                    k
                    for k, v in params.agreed().items()
                    if json.loads(json.dumps(v)) != (hello.get("params") or {}).get(k)
                )
                raise ConfigError(f"party {p} runs other parameters ({', '.join(diff)})")
            if int(hello["n"]) != data.n:
                raise DataError(f"party {p} holds {hello['n']} rows, P0 holds {data.n}")
            if hello["ids"] != ids_digest(data.ids):
                raise DataError(f"party {p}'s sample ids differ from P0's (not aligned)")
            common &= set(hello.get("epochs") or [])
        start = max(common) if common else 0
        for p in parties[1:]:
            current = p
            chans[p].send("setup", {"resume": start})
        if start:
            ck.restore(start, {"bottom": bottom, "top": top}, opt, params.agreed())
            rep.resumed_from_epoch = start
        x_all = torch.from_numpy(data.x)
        y_all = torch.from_numpy(data.y)
        ce = torch.nn.CrossEntropyLoss()
        for epoch in range(start, params.epochs):
            t0 = time.perf_counter()
            gen = _generator(params.noise_seed, 0, epoch)
            bottom.train(), top.train()
            losses = []
            for b, idx in enumerate(_batches(data.n, params, epoch)):
                hs: list[torch.Tensor] = [bottom(x_all[idx])]
                try:
                    step = "emb"
                    for p in parties[1:]:
                        current = p
                        h = decode(params.defence, chans[p].recv("emb"), len(idx))
                        hs.append(h.requires_grad_(True))
                except PeerError as exc:
                    raise _where(exc, epoch, b) from None
                yb = y_all[idx]
                loss = ce(top(torch.cat(hs, dim=1)), yb)
                if params.defence.hashed and params.cos_weight > 0:
                    cons = torch.stack([consistency_loss(h, yb, codes) for h in hs]).mean()
                    loss = loss + params.cos_weight * cons
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
                try:
                    step = "grad"
                    for p, h in zip(parties[1:], hs[1:], strict=True):
                        current = p
                        g = perturb_grad(params.defence, h.grad, gen)
                        chans[p].send("grad", {"g": g.numpy().astype(np.float32)})
                except PeerError as exc:
                    raise _where(exc, epoch, b) from None
                if progress is not None:
                    progress(epoch, b, "P0")
            rep.seconds_per_epoch.append(time.perf_counter() - t0)
            rep.train_loss.append(float(np.mean(losses)) if losses else float("nan"))
            rep.epochs_run += 1
            step = "checkpoint"
            ck.save(epoch + 1, {"bottom": bottom, "top": top}, opt, params.agreed(), {})
    except PeerError:
        for c in chans.values():
            c.close()
        raise
    except Exception as exc:
        for c in chans.values():
            c.abort(exc, step)
        if type(exc) in (DataError, ConfigError) and current and current not in str(exc):
            raise type(exc)(f"{current}: {exc}") from None
        raise
    rep.comm = {p: c.stats.as_dict() for p, c in chans.items()}  # type: ignore[dict-item]
    bottom.eval(), top.eval()
    return bottom, top, codes, rep


def eval_passive(
    party: str, ch: Channel, bottom: Bottom, data: PartyData, params: VFLParams
) -> int:
    """Send this party's (defended) outputs for ``data``'s rows; returns the bytes sent."""
    check_party(data, bottom.shape)
    gen = _generator(params.noise_seed, _party_index(party), 10_000)
    before = ch.stats.steps["eval"].bytes_sent
    with torch.no_grad():
        out = bottom(torch.from_numpy(data.x))
        _, fields = encode(params.defence, out, gen)
    ch.send("eval", {"party": party, "n": data.n, "ids": ids_digest(data.ids), **fields})
    return int(ch.stats.steps["eval"].bytes_sent - before)


def eval_active(
    chans: Mapping[str, Channel],
    bottom: Bottom,
    top: TopModel,
    data: PartyData,
    params: VFLParams,
) -> tuple[np.ndarray, dict[str, torch.Tensor]]:
    """Logits (n, C) for ``data``'s rows and what each party contributed, {party: (n, bits)}."""
    check_party(data, bottom.shape)
    parties = ["P0", *sorted(chans, key=_party_index)]
    with torch.no_grad():
        hs = {"P0": bottom(torch.from_numpy(data.x))}
        for p in parties[1:]:
            msg = chans[p].recv("eval")
            if int(msg.get("n", -1)) != data.n or msg.get("ids") != ids_digest(data.ids):
                raise DataError(f"party {p} evaluated other rows than P0 ({msg.get('n')} rows)")
            hs[p] = decode(params.defence, msg, data.n)
        logits = top(torch.cat([hs[p] for p in parties], dim=1))
    return logits.numpy(), hs
