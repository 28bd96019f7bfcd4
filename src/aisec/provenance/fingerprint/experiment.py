"""One measured fingerprinting run, end to end: generate -> insert -> verify -> attack -> utility.

Used by the bench scenarios (``fingerprint.*``) and by ``aisec fingerprint attack``. Every number
it returns is measured in this run on the model it names; nothing is copied from a paper.
"""

from __future__ import annotations

import copy
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import Field

from aisec.config import StrictModel
from aisec.errors import ParameterError
from aisec.provenance.fingerprint.insert import DEFAULT_ANCHOR_TEXTS
from aisec.provenance.fingerprint.verify import DEFAULT_FLOOR, DEFAULT_LOG10_ALPHA

__all__ = ["ExperimentConfig", "run_experiment"]


class ExperimentConfig(StrictModel):
    model: str = "smollm2-135m-instruct"
    strategy: str = "perinucleus"
    n: int = Field(16, ge=1)
    key_length: int = Field(16, ge=1)
    method: str = "lora"
    lora_r: int = Field(16, ge=1)
    top_layers: int = Field(0, ge=0)
    end_of_turn: bool = True
    anchor_weight: float = Field(0.0, ge=0)
    anchor_texts: int = Field(DEFAULT_ANCHOR_TEXTS, ge=1)
    suspects: tuple[str, ...] = ()
    fingerprints: str | None = None
    epochs: int = Field(8, ge=1)
    batch_size: int = Field(8, ge=1)
    learning_rate: float = Field(1e-3, gt=0)
    averaging: float = Field(0.0, ge=0, lt=1)
    benign_fraction: float = Field(0.0, ge=0, lt=1)
    augment: int = Field(0, ge=0)
    system_prompts: int = Field(0, ge=0, le=10)
    sample: bool = False
    int8: bool = False
    sft: bool = False
    sft_learning_rate: float = Field(2e-4, gt=0)
    sft_method: str = "lora"
    merge: bool = False
    time_baseline: bool = False
    ppl_texts: int = Field(0, ge=0)
    mmlu: int = Field(0, ge=0)
    gsm8k: int = Field(0, ge=0)
    floor: float = DEFAULT_FLOOR
    log10_alpha: float = DEFAULT_LOG10_ALPHA
    seed: int = 0


def _top_layers(lm: Any, top: int) -> tuple[int, ...] | None:
    if not top:
        return None
    n_layers = int(lm.model.config.num_hidden_layers)
    return tuple(range(n_layers - top, n_layers))


class _PlainAnchorSFT:
    """The timing baseline's counterpart of the anchor regulariser: plain next-token SFT on the
    same anchor texts, the same batches, with no base-model pass (``plain SFT of the same
    tokens``)."""

    def __init__(self, lm: Any, texts: list[str], batch_size: int, max_length: int = 96) -> None:
        from aisec.llm.finetune import SFTExample, build_batch

        self.lm = lm
        self.batches = [
            build_batch(
                lm.tokenizer, [SFTExample("", t) for t in texts[s : s + batch_size]], max_length
            )
            for s in range(0, len(texts), batch_size)
        ]

    def __call__(self, step: int, model: Any) -> Any:
        b = {k: v.to(self.lm.device) for k, v in self.batches[step % len(self.batches)].items()}
        return model(**b).loss


class _StepClock:
    """Wraps a step's extra loss (called once per training step) and records when each step
    reached it, so that per-step seconds can be read off (the gap between two calls is one
    step: its backward pass and optimizer step, the next fingerprint batch's forward pass and
    the extra loss itself). :meth:`new_chunk` marks a resumed chunk: a gap across two chunks
    holds a checkpoint and the other run's chunk, so it is not a step's time."""

    def __init__(self, inner: Callable[[int, Any], Any]) -> None:
        self.inner = inner
        self.chunk = 0
        self.times: dict[int, tuple[int, float]] = {}

    def new_chunk(self) -> None:
        self.chunk += 1

    def __call__(self, step: int, model: Any) -> Any:
        self.times[step] = (self.chunk, time.perf_counter())
        return self.inner(step, model)

    def step_seconds(self, steps: int) -> list[float | None]:
        """Seconds of each step ``0 .. steps-2`` (None where the next step is in another chunk
        or was not recorded)."""
        out: list[float | None] = []
        for s in range(steps - 1):
            a, b = self.times.get(s), self.times.get(s + 1)
            out.append(None if a is None or b is None or a[0] != b[0] else b[1] - a[1])
        return out


def _timed_insertion(
    lm: Any,
    fps: Any,
    icfg: Any,
    cfg: ExperimentConfig,
    work: Path,
    benign: list[Any],
    anchors: list[str],
    out: dict[str, Any],
) -> Any:
    """The insertion, timed against plain SFT of the same tokens under the same load.

    The plain run (the same examples, steps and LoRA layers, no averaging; the anchors as
    ordinary next-token targets) starts from a copy of the base weights, and the two runs
    advance in alternating chunks of about a quarter of the steps (ABBA order) in this process,
    so that a change in outside load hits both alike. A full fine-tune with averaging cannot be
    chunked; it is timed back to back (``timing_mode`` says which). Fills ``insert_seconds``,
    ``plain_sft_seconds``, ``insert_seconds_ratio``, ``timing_mode``, ``averaged_epochs`` and
    the seconds of each chunk (``insert_chunk_seconds``, ``plain_chunk_seconds``; the insertion's
    one-off anchor setup is in ``insert_seconds`` only), so that a one-off cost can be told from a
    per-step one. With anchors, the seconds of each step are kept too (``insert_step_seconds``,
    ``plain_step_seconds``; see :class:`_StepClock`).

    Both runs train private copies of the weights: a model loaded from safetensors may hold its
    weights in a memory-mapped file, and a mapped copy against an ordinary one would time the
    page cache (and the machine's memory pressure), not the recipe.
    """
    import shutil

    from aisec.llm.finetune import FinetuneConfig, finetune
    from aisec.provenance.fingerprint.insert import (
        build_examples,
        insert_fingerprints,
        make_anchor_loss,
    )

    lm.model = copy.deepcopy(lm.model)  # private memory, like the plain run's copy
    plain_lm = copy.copy(lm)
    plain_lm.model = copy.deepcopy(lm.model)
    examples, _ = build_examples(lm, fps, icfg, benign)
    batch = min(cfg.batch_size, len(examples))
    steps = icfg.epochs * max(1, len(examples) // batch)
    ft = FinetuneConfig(
        method=cfg.method,
        lora_r=icfg.lora_r,
        lora_alpha=icfg.lora_alpha,
        layers_to_transform=_top_layers(lm, cfg.top_layers),
        target_modules=icfg.target_modules,
        learning_rate=cfg.learning_rate,
        weight_decay=1e-4,
        steps=steps,
        batch_size=batch,
        save_every=steps,
        seed=cfg.seed,
    )
    for d in ("insert", "plain"):
        if (work / d).exists():
            shutil.rmtree(work / d)
    chunked = not (icfg.averaging > 0 and icfg.method == "full")
    chunk = max(1, -(-steps // 4)) if chunked else steps
    secs = {"insert": 0.0, "plain": 0.0}
    per_chunk: dict[str, list[float]] = {"insert": [], "plain": []}
    t = time.perf_counter()
    anchor_loss = make_anchor_loss(lm, anchors, icfg) if icfg.anchor_weight > 0 else None
    ins_clock = _StepClock(anchor_loss) if anchor_loss is not None else None
    secs["insert"] += time.perf_counter() - t
    t = time.perf_counter()
    plain_extra = (
        _PlainAnchorSFT(plain_lm, anchors, icfg.anchor_batch, icfg.anchor_max_length)
        if anchors
        else None
    )
    plain_clock = _StepClock(plain_extra) if plain_extra is not None else None
    secs["plain"] += time.perf_counter() - t
    ins, averaged, done, turn = None, 0, 0, 0
    while done < steps:
        stop = min(steps, done + chunk)
        order = ("insert", "plain") if turn % 2 == 0 else ("plain", "insert")
        for which in order:
            clock = ins_clock if which == "insert" else plain_clock
            if clock is not None:
                clock.new_chunk()
            t = time.perf_counter()
            if which == "insert":
                ins = insert_fingerprints(
                    lm,
                    fps,
                    icfg,
                    work / "insert",
                    benign=benign,
                    anchor_loss=ins_clock,
                    base_name=cfg.model,
                    stop_after=stop if chunked else None,
                    resume=chunked,
                )
                averaged += ins.averaged
            else:
                finetune(
                    plain_lm,
                    examples,
                    ft,
                    work / "plain",
                    resume=chunked,
                    stop_after=stop if chunked else None,
                    progress=False,
                    extra_loss=plain_clock,
                )
            took = time.perf_counter() - t
            secs[which] += took
            per_chunk[which].append(took)
        done, turn = stop, turn + 1
    del plain_lm
    out.update(
        insert_seconds=secs["insert"],
        plain_sft_seconds=secs["plain"],
        insert_seconds_ratio=secs["insert"] / secs["plain"],
        timing_mode="interleaved" if chunked else "sequential",
        averaged_epochs=averaged,
        insert_chunk_seconds=per_chunk["insert"],
        plain_chunk_seconds=per_chunk["plain"],
    )
    if ins_clock is not None and plain_clock is not None:
        out.update(
            insert_step_seconds=ins_clock.step_seconds(steps),
            plain_step_seconds=plain_clock.step_seconds(steps),
        )
    return ins


def _benign(lm: Any, n: int) -> list[Any]:
    from aisec.assets.datasets import gsm8k
    from aisec.provenance.fingerprint.attacks import gsm8k_examples

    return gsm8k_examples(lm, gsm8k("train")[:n])


def _utility(lm: Any, cfg: ExperimentConfig, tag: str, out: dict[str, Any]) -> None:
    from aisec.provenance.fingerprint import utility

    if cfg.ppl_texts:
        out[f"ppl_{tag}"] = utility.perplexity_of(lm, cfg.ppl_texts)
    if cfg.mmlu:
        out[f"mmlu_{tag}"] = utility.mmlu_accuracy(lm, cfg.mmlu, seed=cfg.seed)
    if cfg.gsm8k:
        out[f"gsm8k_{tag}"] = utility.gsm8k_accuracy(lm, cfg.gsm8k)


def run_experiment(
    cfg: ExperimentConfig,
    work_dir: str | Path | None = None,
    report: Callable[[float, str], None] | None = None,
) -> dict[str, Any]:
    """Run ``cfg``; returns flat metrics (and counts); see the module docstring."""
    import torch

    from aisec.llm import load_causal_lm
    from aisec.provenance.fingerprint import attacks
    from aisec.provenance.fingerprint.generate import GenerateConfig, generate_fingerprints
    from aisec.provenance.fingerprint.insert import InsertConfig, insert_fingerprints
    from aisec.provenance.fingerprint.prompts import TEST_SYSTEM_PROMPTS
    from aisec.provenance.fingerprint.verify import verify

    say = report or (lambda frac, msg: None)
    work = Path(work_dir or tempfile.mkdtemp(prefix="aisec-fp-"))
    out: dict[str, Any] = {}
    lm = load_causal_lm(cfg.model)
    say(0.05, "generate")
    t0 = time.perf_counter()
    if cfg.fingerprints:
        from aisec.provenance.fingerprint.store import FingerprintSet

        fps = FingerprintSet.load(cfg.fingerprints)
        if len(fps) < cfg.n:
            raise ParameterError("n", f"must be at most the {len(fps)} fingerprints given", cfg.n)
        fps = fps.subset(list(range(cfg.n)))
    else:
        fps = generate_fingerprints(
            lm,
            GenerateConfig(
                strategy=cfg.strategy, n=cfg.n, key_length=cfg.key_length, seed=cfg.seed
            ),
            cfg.model,
        )
    out["generate_seconds"] = time.perf_counter() - t0
    out["mean_base_prob"] = float(sum(f.base_prob for f in fps.fingerprints) / len(fps))

    def check(tag: str, **kw: Any) -> Any:
        r = verify(lm, fps, floor=cfg.floor, **kw)
        out[f"fp_accuracy{tag}"] = r.accuracy
        out[f"ownership_log10_p{tag}"] = r.log10_p
        return r

    say(0.15, "base model")
    base = check("_base")
    out["false_claim_base"] = bool(base.log10_p < cfg.log10_alpha)
    claims = [out["false_claim_base"]]
    for name in cfg.suspects:
        if name == cfg.model:
            continue
        from aisec.provenance.fingerprint.suspects import load_suspect

        say(0.2, f"false claims: {name}")
        other = load_suspect(name)
        rs = verify(other, fps, floor=cfg.floor)
        out[f"matched_{name}"] = int(sum(rs.matches[0]))
        out[f"ownership_log10_p_{name}"] = rs.log10_p
        claims.append(bool(rs.log10_p < cfg.log10_alpha))
        del other
    out["false_claims"] = int(sum(claims))
    out["false_claim_models"] = len(claims)
    _utility(lm, cfg, "before", out)
    icfg = InsertConfig(
        method=cfg.method,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        averaging=cfg.averaging,
        benign_fraction=cfg.benign_fraction,
        augment=cfg.augment,
        lora_r=cfg.lora_r,
        lora_alpha=2 * cfg.lora_r,
        top_layers=cfg.top_layers,
        end_of_turn=cfg.end_of_turn,
        anchor_weight=cfg.anchor_weight,
        seed=cfg.seed,
    )
    anchors: list[str] = []
    if cfg.anchor_weight > 0:
        from aisec.provenance.fingerprint.insert import anchor_texts

        anchors = anchor_texts(lm, cfg.anchor_texts, seed=cfg.seed)
    benign: list[Any] = []
    if cfg.benign_fraction > 0:
        need = (
            int(len(fps) * (1 + cfg.augment) * cfg.benign_fraction / (1 - cfg.benign_fraction)) + 2
        )
        benign = _benign(lm, need)
    base_state = (
        {k: v.detach().clone() for k, v in lm.model.state_dict().items()} if cfg.merge else None
    )
    say(0.3, "insert")
    if cfg.time_baseline:
        ins = _timed_insertion(lm, fps, icfg, cfg, work, benign, anchors, out)
    else:
        ins = insert_fingerprints(
            lm, fps, icfg, work / "insert", benign=benign, anchor=anchors, base_name=cfg.model
        )
    if hasattr(lm.model, "merge_and_unload"):
        lm.model = lm.model.merge_and_unload()
    lm.model.eval()
    out.setdefault("insert_seconds", ins.seconds)
    out.setdefault("averaged_epochs", ins.averaged)
    out.update(
        insert_steps=ins.steps,
        insert_examples=ins.n_examples,
        final_loss=ins.losses[-1],
    )
    say(0.5, "verify")
    r = check("")
    out["token_accuracy"] = r.token_accuracy
    _utility(lm, cfg, "after", out)
    if cfg.ppl_texts:
        out["ppl_ratio"] = out["ppl_after"] / out["ppl_before"]
    if cfg.mmlu:
        out["mmlu_delta"] = 100.0 * (out["mmlu_after"] - out["mmlu_before"])
    if cfg.system_prompts:
        rs = verify(lm, fps, system_prompts=TEST_SYSTEM_PROMPTS[: cfg.system_prompts])
        out["fp_accuracy_unseen_system"] = rs.accuracy
    if cfg.sample:
        rt = verify(lm, fps, temperature=0.7, seed=cfg.seed)
        out["fp_accuracy_t07"] = rt.accuracy
    fp_state = (
        {k: v.detach().clone() for k, v in lm.model.state_dict().items()}
        if (cfg.int8 or cfg.sft or cfg.merge)
        else None
    )
    if cfg.int8 and fp_state is not None:
        say(0.6, "int8")
        attacks.quantize_int8(lm)
        check("_int8")
        lm.model.load_state_dict(fp_state)
    if cfg.sft and fp_state is not None:
        say(0.7, "downstream sft")
        from aisec.assets.datasets import gsm8k

        rows = gsm8k("train")[-max(64, 4 * ins.steps) :]
        t1 = time.perf_counter()
        attacks.downstream_sft(
            lm,
            attacks.gsm8k_examples(lm, rows),
            work / "sft",
            steps=ins.steps,
            method=cfg.sft_method,
            learning_rate=cfg.sft_learning_rate,
            seed=cfg.seed + 1,
        )
        out["sft_seconds"] = time.perf_counter() - t1
        out["sft_steps"] = ins.steps
        check("_after_sft")
        lm.model.load_state_dict(fp_state)
    if cfg.merge and fp_state is not None and base_state is not None:
        # task arithmetic with another fine-tune of the same base (GSM8K SFT from the base)
        say(0.85, "merge")
        from aisec.assets.datasets import gsm8k

        lm.model.load_state_dict(base_state)
        rows = gsm8k("train")[: max(64, 4 * ins.steps)]
        attacks.downstream_sft(
            lm,
            attacks.gsm8k_examples(lm, rows),
            work / "other",
            steps=ins.steps,
            method=cfg.sft_method,
            learning_rate=cfg.sft_learning_rate,
            seed=cfg.seed + 2,
        )
        other = copy.deepcopy(lm.model.state_dict())
        with torch.no_grad():
            merged = {k: fp_state[k] + (other[k] - base_state[k]) for k in fp_state}
        lm.model.load_state_dict(merged)
        check("_merge")
        lm.model.load_state_dict(fp_state)
    say(1.0, "done")
    return out
