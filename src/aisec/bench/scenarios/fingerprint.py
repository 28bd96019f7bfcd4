"""OML 1.0 fingerprint scenarios.

* ``fingerprint.tiny`` (quick): a few fingerprints inserted into the 2-layer random
  ``tiny-llama``, verified, claimed and checked (one genuine claim, three forged ones), plus the
  unfingerprinted base and an int8 round trip. It exercises the whole pipeline in seconds; its
  numbers say nothing about a real model.
* ``fingerprint.smollm2`` (full): perinucleus fingerprints in SmolLM2-135M-Instruct with the
  issue's targets: accuracy, utility (held-out perplexity, MMLU slice), persistence through a
  downstream GSM8K SFT with as many steps as the insertion, int8, unseen system prompts,
  sampling at T = 0.7, task-arithmetic merging, and insertion time against plain SFT.
* ``fingerprint.scale`` (full): accuracy and perplexity against the count, with and without
  averaging, for each strategy.

False ownership claims are measured on the unfingerprinted base of each run (the model the
fingerprints were generated for); the other two architectures of the issue (Gemma-3-270m,
Qwen2.5-0.5B) are not loaded by these scenarios.
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
    "fingerprint.smollm2",
    system="fingerprint",
    params={
        "n": 16,
        "epochs": 10,
        "learning_rate": 2e-3,
        "averaging": 0.0,
        "strategy": "perinucleus",
        "ppl_texts": 8,
        "mmlu": 20,
        "sft": True,
        "int8": True,
        "system_prompts": 3,
        "sample": True,
        "merge": False,
        "time_baseline": False,
    },
    full_params={
        "n": 256,
        "ppl_texts": 32,
        "mmlu": 200,
        "system_prompts": 10,
        "merge": True,
        "time_baseline": True,
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
    metrics["false_claims"] = int(out["false_claim_base"])
    return Result(
        metrics=metrics,
        labels={
            "model": _SMOL,
            "strategy": cfg.strategy,
            "n_fingerprints": str(cfg.n),
            "averaging": str(cfg.averaging),
        },
        notes=[
            "LoRA insertion (r 16, all projections), loss on the response tokens; downstream "
            "SFT = LoRA on GSM8K train for as many steps as the insertion",
            "false claims: the unfingerprinted base only (Gemma-3-270m and Qwen2.5-0.5B are "
            "not loaded here)",
        ],
    )


@scenario(
    "fingerprint.scale",
    system="fingerprint",
    params={
        "counts": [16, 64],
        "strategies": ["perinucleus"],
        "averaging": [0.0, 0.75],
        "epochs": 10,
        "learning_rate": 2e-3,
        "ppl_texts": 8,
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
    },
    suites=("full",),
    description="Fingerprint accuracy and perplexity ratio against the count, averaging, strategy",
    headline=[
        Headline("fp_accuracy_min", label="lowest fp accuracy over the grid"),
        Headline("ppl_ratio_max", label="highest ppl ratio over the grid", unit="x"),
    ],
)
def scale(params: Mapping[str, Any], ctx: Any) -> Result:
    from aisec.provenance.fingerprint.experiment import ExperimentConfig, run_experiment

    rows, series = [], {}
    grid = [
        (s, a, n)
        for s in params["strategies"]
        for a in params["averaging"]
        for n in params["counts"]
    ]
    with _one_thread():
        for i, (strategy, lam, n) in enumerate(grid):
            cfg = ExperimentConfig(
                model=_SMOL,
                strategy=strategy,
                n=int(n),
                averaging=float(lam),
                epochs=int(params["epochs"]),
                learning_rate=float(params["learning_rate"]),
                ppl_texts=int(params["ppl_texts"]),
                seed=ctx.seed,
            )
            out = run_experiment(cfg, ctx.work_dir / f"{strategy}-{lam}-{n}")
            rows.append(
                {
                    "labels": {
                        "strategy": strategy,
                        "averaging": str(lam),
                        "n_fingerprints": str(n),
                    },
                    "metrics": {
                        "fp_accuracy": out["fp_accuracy"],
                        "ppl_ratio": out.get("ppl_ratio"),
                        "insert_seconds": out["insert_seconds"],
                    },
                }
            )
            ctx.report((i + 1) / len(grid), f"{strategy} {lam} {n}")
    for strategy in params["strategies"]:
        for lam in params["averaging"]:
            pts = [
                r
                for r in rows
                if r["labels"]["strategy"] == strategy and r["labels"]["averaging"] == str(lam)
            ]
            series.setdefault("fp_accuracy_vs_count", []).append(
                Series(
                    x=[float(r["labels"]["n_fingerprints"]) for r in pts],
                    y=[r["metrics"]["fp_accuracy"] for r in pts],
                    xlabel="fingerprints",
                    ylabel="fp accuracy",
                    label=f"{strategy}, lambda {lam}",
                    logx=True,
                )
            )
    accs = [r["metrics"]["fp_accuracy"] for r in rows]
    ppls = [r["metrics"]["ppl_ratio"] for r in rows if r["metrics"]["ppl_ratio"] is not None]
    return Result(
        metrics={
            "fp_accuracy_min": min(accs),
            "ppl_ratio_max": max(ppls) if ppls else None,
            "runs": len(rows),
        },
        labels={
            "model": _SMOL,
            "strategy": ",".join(params["strategies"]),
            "n_fingerprints": ",".join(str(c) for c in params["counts"]),
            "averaging": ",".join(str(a) for a in params["averaging"]),
        },
        breakdown=rows,
        series=series,
    )
