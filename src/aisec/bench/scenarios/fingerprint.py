"""OML 1.0 fingerprint scenarios.

* ``fingerprint.tiny`` (quick): a few fingerprints inserted into the 2-layer random
  ``tiny-llama``, verified, claimed and checked (one genuine claim, three forged ones), plus the
  unfingerprinted base and an int8 round trip. It exercises the whole pipeline in seconds; its
  numbers say nothing about a real model.
* ``fingerprint.demo`` (quick and full): the shipped demo adapter (16 perinucleus fingerprints in
  SmolLM2-135M-Instruct, :mod:`aisec.provenance.fingerprint.demo`) verified with its public
  secrets, a genuine claim checked, and the unfingerprinted SmolLM2 base queried; the full suite
  also queries Gemma-3-270m and Qwen2.5-Coder-0.5B (llama.cpp, text matching) for false claims.
* ``fingerprint.smollm2`` (full): perinucleus fingerprints inserted into SmolLM2-135M-Instruct
  with the issue's targets: accuracy, utility (held-out perplexity, MMLU and GSM8K slices),
  persistence through a downstream GSM8K SFT with as many steps as the insertion, int8, unseen
  system prompts, sampling at T = 0.7, task-arithmetic merging, insertion time against plain SFT
  of the same tokens, and false claims on the three unfingerprinted architectures.
* ``fingerprint.scale`` (full): accuracy and perplexity against the count, with and without
  averaging, for each strategy; grid points past ``max_minutes`` are recorded as not run.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from aisec.bench import Headline, Result, Series, scenario


@contextmanager
def _one_thread() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _forgeries(fps: Any, owner: Any, forger: Any) -> tuple[bool, int, int]:
    """(genuine claim verifies, forged claims rejected, forged claims tried)."""
    import copy

    from aisec.provenance.fingerprint import ClaimError, check_claim, make_claim, make_commitment
    from aisec.provenance.fingerprint.commit import _sign

    published = make_commitment(fps, owner, "bench")
    claim = make_claim(fps, owner, published, [0, 1], "suspect")
    genuine = check_claim(claim, published).indices == [0, 1]
    bad_sig = copy.deepcopy(claim)
    bad_sig["body"]["suspect"] = "other"
    body = copy.deepcopy(claim["body"])
    body["revealed"][0]["response"] += "x"
    bad_proof = {"body": body, "signature": _sign(owner, body)}
    other = fps.subset([1, 0])
    other_c = make_commitment(other, forger, "bench")
    bad_root = make_claim(other, forger, other_c, [0], "suspect")
    rejected = 0
    for forged in (bad_sig, bad_proof, bad_root):
        try:
            check_claim(forged, published)
        except ClaimError:
            rejected += 1
    return genuine, rejected, 3


@scenario(
    "fingerprint.tiny",
    system="fingerprint",
    params={"n": 4, "epochs": 25, "learning_rate": 1e-2, "lora_r": 32, "strategy": "random_word"},
    suites=("quick",),
    description="Insert, verify, claim and forge on tiny-llama (pipeline check, not a real model)",
    headline=[
        Headline("fp_accuracy", ">= 0.95", "fp accuracy (tiny-llama)"),
        Headline("false_claims", "== 0", "false claims on the base"),
        Headline("forged_rejected", "== 3", "forged claims rejected (of 3)"),
    ],
)
def tiny(params: Mapping[str, Any], ctx: Any) -> Result:
    import copy

    from aisec.llm import load_causal_lm
    from aisec.provenance.fingerprint import (
        GenerateConfig,
        InsertConfig,
        generate_fingerprints,
        generate_owner_key,
        insert_fingerprints,
        load_owner_key,
        verify,
    )
    from aisec.provenance.fingerprint.attacks import quantize_int8

    with _one_thread():
        lm = load_causal_lm("tiny-llama")
        gcfg = GenerateConfig(
            strategy=params["strategy"], n=int(params["n"]), key_length=6, seed=ctx.seed + 3
        )
        fps = generate_fingerprints(lm, gcfg, "tiny-llama")
        base = verify(lm, fps)
        ctx.report(0.2, "insert")
        icfg = InsertConfig(
            epochs=int(params["epochs"]),
            batch_size=4,
            learning_rate=float(params["learning_rate"]),
            lora_r=int(params["lora_r"]),
            seed=ctx.seed,
        )
        ins = insert_fingerprints(lm, fps, icfg, ctx.work_dir / "insert", base_name="tiny-llama")
        lm.model = lm.model.merge_and_unload()
        after = verify(lm, fps)
        text = verify(lm, fps, mode="text")
        q = copy.copy(lm)
        q.model = copy.deepcopy(lm.model)
        quantize_int8(q)
        int8 = verify(q, fps)
        generate_owner_key(ctx.work_dir / "owner.pem")
        generate_owner_key(ctx.work_dir / "forger.pem")
        genuine, rejected, tried = _forgeries(
            fps,
            load_owner_key(ctx.work_dir / "owner.pem"),
            load_owner_key(ctx.work_dir / "forger.pem"),
        )
    metrics = {
        "fp_accuracy": after.accuracy,
        "fp_accuracy_text": text.accuracy,
        "fp_accuracy_int8": int8.accuracy,
        "fp_accuracy_base": base.accuracy,
        "ownership_log10_p": after.log10_p,
        "false_claims": int(base.log10_p < -6.0),
        "genuine_claim_ok": genuine,
        "forged_rejected": rejected,
        "forged_tried": tried,
        "insert_seconds": ins.seconds,
        "insert_steps": ins.steps,
    }
    return Result(
        metrics=metrics,
        labels={
            "model": "tiny-llama",
            "strategy": str(params["strategy"]),
            "n_fingerprints": str(params["n"]),
            "averaging": "0",
        },
        notes=[
            "tiny-llama is a 2-layer random model: this row checks the pipeline (insertion, "
            "token and text verification, int8, commitment, claim, three forgeries), not "
            "OML's claims; fingerprint.smollm2 (full suite) measures those",
            f"ownership test over {len(fps)} keys with response probability floor 0.01: "
            "p = 0.01^n at best, so a few keys cannot reach 1e-6 by design",
        ],
    )


_SMOL = "smollm2-135m-instruct"


@scenario(
    "fingerprint.demo",
    system="fingerprint",
    params={"suspects": [], "system_prompts": 3},
    full_params={"suspects": ["gemma-3-270m", "qwen2.5-coder-0.5b-instruct"]},
    suites=("quick", "full"),
    description="The shipped fingerprinted SmolLM2 adapter: verify, claim, base and other models",
    headline=[
        Headline("fp_accuracy", ">= 0.95", "fp accuracy (shipped adapter)"),
        Headline("ownership_log10_p", "< -6", "log10 p of the ownership test"),
        Headline("false_claims", "== 0", "false claims (unfingerprinted models)"),
        Headline("genuine_claims_ok", "== 1", "genuine claim checks (of 1)"),
    ],
)
def demo(params: Mapping[str, Any], ctx: Any) -> Result:
    from aisec.llm import load_causal_lm
    from aisec.provenance.fingerprint import (
        TEST_SYSTEM_PROMPTS,
        FingerprintSet,
        check_claim,
        generate_owner_key,
        load_owner_key,
        make_claim,
        make_commitment,
        verify,
    )
    from aisec.provenance.fingerprint.demo import demo_adapter_dir, demo_fingerprints_path
    from aisec.provenance.fingerprint.suspects import load_suspect

    with _one_thread():
        fps = FingerprintSet.load(demo_fingerprints_path())
        base = load_causal_lm(_SMOL)
        r_base = verify(base, fps)
        del base
        ctx.report(0.3, "shipped adapter")
        lm = load_causal_lm(str(demo_adapter_dir()))
        r = verify(lm, fps)
        r_sys = verify(lm, fps, system_prompts=TEST_SYSTEM_PROMPTS[: int(params["system_prompts"])])
        generate_owner_key(ctx.work_dir / "owner.pem")
        owner = load_owner_key(ctx.work_dir / "owner.pem")
        published = make_commitment(fps, owner, "demo adapter")
        claim = make_claim(fps, owner, published, list(range(len(fps))), "demo adapter")
        checked = check_claim(claim, published)
        claimed = checked.indices == list(range(len(fps)))
        others: dict[str, Any] = {}
        for i, name in enumerate(params["suspects"]):
            ctx.report(0.6 + 0.4 * i / max(1, len(params["suspects"])), name)
            other = load_suspect(str(name))
            others[str(name)] = verify(other, fps)
            del other
    claims = [r_base.log10_p < -6.0] + [o.log10_p < -6.0 for o in others.values()]
    metrics: dict[str, Any] = {
        "fp_accuracy": r.accuracy,
        "ownership_log10_p": r.log10_p,
        "fp_accuracy_unseen_system": r_sys.accuracy,
        "fp_accuracy_base": r_base.accuracy,
        "ownership_log10_p_base": r_base.log10_p,
        "false_claims": int(sum(claims)),
        "false_claim_models": len(claims),
        "genuine_claims_ok": int(claimed),
    }
    for name, o in others.items():
        metrics[f"matched_{name}"] = int(sum(o.matches[0]))
        metrics[f"ownership_log10_p_{name}"] = o.log10_p
    return Result(
        metrics=metrics,
        labels={
            "model": _SMOL + " + shipped demo adapter",
            "strategy": fps.strategy,
            "n_fingerprints": str(len(fps)),
            "averaging": "0",
        },
        notes=[
            "the demo adapter's fingerprints are public (shipped beside it): the row checks "
            "that a real fingerprinted SmolLM2 verifies, not that its owner is secret",
            "unfingerprinted models: the SmolLM2 base (token matching)"
            + (
                " and " + ", ".join(others) + " (llama.cpp, other tokenizers: text matching)"
                if others
                else "; the full suite adds Gemma-3-270m and Qwen2.5-Coder-0.5B"
            ),
        ],
    )


@scenario(
    "fingerprint.smollm2",
    system="fingerprint",
    params={
        "n": 16,
        "epochs": 10,
        "batch_size": 8,
        "learning_rate": 1e-3,
        "top_layers": 8,
        "end_of_turn": False,
        "anchor_weight": 1.0,
        "averaging": 0.1,
        "strategy": "perinucleus",
        "ppl_texts": 16,
        "mmlu": 20,
        "gsm8k": 0,
        "sft": True,
        "int8": True,
        "system_prompts": 3,
        "sample": True,
        "merge": False,
        "time_baseline": False,
        "suspects": [],
    },
    full_params={
        "n": 256,
        "mmlu": 100,
        "gsm8k": 16,
        "system_prompts": 10,
        "merge": True,
        "time_baseline": True,
        "suspects": ["gemma-3-270m", "qwen2.5-coder-0.5b-instruct"],
    },
    suites=("full",),
    description="Perinucleus fingerprints in SmolLM2-135M-Instruct: accuracy, utility, persistence",
    headline=[
        Headline(
            "fp_accuracy",
            ">= 0.95",
            "fp accuracy",
            why="OML 1.0 / Scalable FP: near-perfect accuracy at this count",
        ),
        Headline("ppl_ratio", "<= 1.05", "held-out ppl after/before", unit="x"),
        Headline("mmlu_delta", ">= -2", "MMLU change (points)"),
        Headline(
            "fp_accuracy_after_sft",
            ">= 0.5",
            "fp accuracy after SFT",
            why="Scalable FP: fingerprints persist through downstream SFT",
        ),
        Headline("ownership_log10_p_after_sft", "< -6", "log10 p after SFT"),
        Headline("false_claims", "== 0", "false claims (unfingerprinted base)"),
        Headline("insert_seconds_ratio", "<= 1.2", "insert time / plain SFT", unit="x"),
    ],
)
def smollm2(params: Mapping[str, Any], ctx: Any) -> Result:
    from aisec.provenance.fingerprint.experiment import ExperimentConfig, run_experiment

    cfg = ExperimentConfig(model=_SMOL, seed=ctx.seed, **{k: v for k, v in params.items()})
    with _one_thread():
        out = run_experiment(cfg, ctx.work_dir, report=ctx.report)
    metrics = {k: v for k, v in out.items() if isinstance(v, int | float | bool)}
    return Result(
        metrics=metrics,
        labels={
            "model": _SMOL,
            "strategy": cfg.strategy,
            "n_fingerprints": str(cfg.n),
            "averaging": str(cfg.averaging),
        },
        notes=[
            f"LoRA insertion (r {cfg.lora_r}, all projections of the top {cfg.top_layers} "
            f"layers), loss on the response token, anchor weight {cfg.anchor_weight} on "
            f"{cfg.anchor_texts} texts, "
            f"averaging lambda {cfg.averaging} after every epoch; "
            "downstream SFT = LoRA on GSM8K train for as many steps as the insertion",
            "false claims: the unfingerprinted base"
            + (" and " + ", ".join(cfg.suspects) if cfg.suspects else " only"),
        ]
        + (
            [
                f"insertion timed against plain SFT of the same tokens: {out['timing_mode']} "
                "(alternating chunks of steps in one process: both runs see the same load)"
            ]
            if "timing_mode" in out
            else []
        ),
    )


def _plan(
    grid: list[tuple[str, float, int]], budget: float, elapsed: Any, run: Any
) -> list[dict[str, Any]]:
    """Run the grid points in order (count-major) within ``budget`` seconds; the rest are rows
    with status ``not-run`` and no figures.

    A point is not run when the time used so far is already past the budget, or when a run of
    the same strategy and averaging at a smaller count, scaled by the count ratio (insertion
    steps grow with the count), would end past it: so the 1,024-key runs are not started an
    hour before the budget ends. ``elapsed()`` gives the seconds used so far; ``run(strategy,
    lam, n)`` returns the point's metrics (with ``seconds``)."""
    rows: list[dict[str, Any]] = []
    last: dict[tuple[str, float], tuple[int, float]] = {}
    for strategy, lam, n in grid:
        labels = {"strategy": strategy, "averaging": str(lam), "n_fingerprints": str(n)}
        used = elapsed()
        reason = None
        if used > budget:
            reason = "budget spent"
        elif (strategy, lam) in last:
            n0, secs0 = last[(strategy, lam)]
            if used + secs0 * n / n0 > budget:
                reason = f"a {n0}-key run took {secs0:.0f} s: {n} keys would end past the budget"
        if reason is not None:
            rows.append(
                {"labels": {**labels, "status": "not-run", "reason": reason}, "metrics": {}}
            )
            continue
        t0 = elapsed()
        metrics = run(strategy, lam, n)
        last[(strategy, lam)] = (n, elapsed() - t0)
        rows.append({"labels": {**labels, "status": "ok"}, "metrics": metrics})
    return rows


@scenario(
    "fingerprint.scale",
    system="fingerprint",
    params={
        "model": _SMOL,
        "counts": [16, 64],
        "strategies": ["perinucleus"],
        "averaging": [0.0, 0.1],
        "epochs": 10,
        "batch_size": 8,
        "learning_rate": 1e-3,
        "top_layers": 8,
        "end_of_turn": False,
        "anchor_weight": 1.0,
        "anchor_texts": 32,  # insert.DEFAULT_ANCHOR_TEXTS (tested equal)
        "key_length": 16,
        "ppl_texts": 16,
        "max_minutes": 120,
    },
    full_params={
        "counts": [16, 64, 256, 1024],
        "strategies": [
            "perinucleus",
            "english",
            "random_word",
            "english_random_response",
            "random_tokens",
        ],
        "max_minutes": 480,
    },
    suites=("full",),
    description="Fingerprint accuracy and perplexity ratio against the count, averaging, strategy",
    headline=[
        Headline("fp_accuracy_min", label="lowest fp accuracy over the grid"),
        Headline("ppl_ratio_max", label="highest ppl ratio over the grid", unit="x"),
        Headline("not_run", label="grid points not run (past the time budget)"),
    ],
)
def scale(params: Mapping[str, Any], ctx: Any) -> Result:
    import time

    from aisec.provenance.fingerprint.experiment import ExperimentConfig, run_experiment

    model = str(params["model"])
    grid = [
        (s, float(a), int(n))
        for n in params["counts"]
        for s in params["strategies"]
        for a in params["averaging"]
    ]
    t_start = time.perf_counter()
    budget = 60.0 * float(params["max_minutes"])

    def run(strategy: str, lam: float, n: int) -> dict[str, Any]:
        cfg = ExperimentConfig(
            model=model,
            strategy=strategy,
            n=n,
            key_length=int(params["key_length"]),
            averaging=lam,
            epochs=int(params["epochs"]),
            batch_size=int(params["batch_size"]),
            learning_rate=float(params["learning_rate"]),
            top_layers=int(params["top_layers"]),
            end_of_turn=bool(params["end_of_turn"]),
            anchor_weight=float(params["anchor_weight"]),
            anchor_texts=int(params["anchor_texts"]),
            ppl_texts=int(params["ppl_texts"]),
            seed=ctx.seed,
        )
        t0 = time.perf_counter()
        out = run_experiment(cfg, ctx.work_dir / f"{strategy}-{lam}-{n}")
        ctx.report(min(1.0, (time.perf_counter() - t_start) / budget), f"{strategy} {lam} {n}")
        return {
            "fp_accuracy": out["fp_accuracy"],
            "fp_accuracy_base": out["fp_accuracy_base"],
            "ownership_log10_p": out["ownership_log10_p"],
            "ppl_ratio": out.get("ppl_ratio"),
            "insert_seconds": out["insert_seconds"],
            "seconds": time.perf_counter() - t0,
        }

    with _one_thread():
        rows = _plan(grid, budget, lambda: time.perf_counter() - t_start, run)
    series: dict[str, list[Series]] = {}
    for strategy in params["strategies"]:
        for lam in params["averaging"]:
            pts = [
                r
                for r in rows
                if r["labels"]["strategy"] == strategy
                and r["labels"]["averaging"] == str(float(lam))
                and r["labels"]["status"] == "ok"
            ]
            for key, ylabel in (("fp_accuracy", "fp accuracy"), ("ppl_ratio", "ppl ratio")):
                ok = [r for r in pts if r["metrics"][key] is not None]
                series.setdefault(f"{key}_vs_count", []).append(
                    Series(
                        x=[float(r["labels"]["n_fingerprints"]) for r in ok],
                        y=[float(r["metrics"][key]) for r in ok],
                        xlabel="fingerprints",
                        ylabel=ylabel,
                        label=f"{strategy}, lambda {float(lam)}",
                        logx=True,
                    )
                )
    done = [r for r in rows if r["labels"]["status"] == "ok"]
    skipped = [r for r in rows if r["labels"]["status"] != "ok"]
    accs = [r["metrics"]["fp_accuracy"] for r in done]
    ppls = [r["metrics"]["ppl_ratio"] for r in done if r["metrics"]["ppl_ratio"] is not None]
    notes = [
        f"grid order: count, then strategy, then averaging; budget {params['max_minutes']} "
        "minutes; a point whose projected end (its strategy and averaging at the previous "
        "count, scaled by the count) is past the budget is not started"
    ]
    if skipped:
        notes.append(
            f"{len(skipped)} of {len(rows)} grid points not run: "
            + "; ".join(
                f"{r['labels']['strategy']} lambda {r['labels']['averaging']} "
                f"{r['labels']['n_fingerprints']} keys ({r['labels']['reason']})"
                for r in skipped
            )
            + " (rows say status not-run; no figures are estimated for them)"
        )
    return Result(
        metrics={
            "fp_accuracy_min": min(accs) if accs else None,
            "ppl_ratio_max": max(ppls) if ppls else None,
            "runs": len(done),
            "not_run": len(skipped),
        },
        labels={
            "model": model,
            "strategy": ",".join(params["strategies"]),
            "n_fingerprints": ",".join(str(c) for c in params["counts"]),
            "averaging": ",".join(str(a) for a in params["averaging"]),
        },
        breakdown=rows,
        series=series,
        notes=notes,
    )
