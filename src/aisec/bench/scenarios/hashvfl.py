"""HashVFL scenarios: main-task accuracy against plain VFL, reconstruction and label attacks
against every defence, the accuracy/attack-quality trade-off of the noise and DP sweeps, and
abnormal-input detection.

Quick-suite rows use digits, a 3,000-row Adult sample and a 2,000-row MNIST sample with MLP
bottoms and few epochs; the full suite uses every data set (CNN bottoms for MNIST and
Fashion-MNIST), more epochs and code lengths 8-64. Every party runs as a thread of this process
over in-process channels (the same code path as TCP + TLS), with one torch thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aisec.bench import BenchContext, Headline, Result, Series, scenario

_HASH_WHY = "HashVFL (Qiu et al., TIFS 2024): 16-bit codes keep main-task accuracy"


def _train(
    ctx: BenchContext,
    p: Mapping[str, Any],
    dataset: str,
    defence: dict[str, Any],
    split: Any = None,
    tag: str = "",
) -> tuple[dict[str, Any], Path, Any]:
    from aisec.privacy.vfl.data import load_split
    from aisec.privacy.vfl.run import VFLRecipe, default_bottom, run_local

    bottom = p.get("bottom") or default_bottom(dataset)
    if dataset in ("digits", "adult", "reviews"):
        bottom = "mlp"
    recipe = VFLRecipe.model_validate(
        {
            "data": {
                "dataset": dataset,
                "parties": p.get("parties", 2),
                "rows": (p.get("rows") or {}).get(dataset),
                "aux_frac": p.get("aux_frac", 0.1),
                "seed": ctx.seed,
            },
            "train": {
                "bottom": bottom,
                "epochs": p["epochs"],
                "batch_size": p.get("batch_size", 128),
                # the paper's Adam 1e-3 for CNNs; small MLPs learn faster at 3e-3
                "lr": p.get("lr") or (1e-3 if bottom == "cnn" else 3e-3),
                "init_seed": ctx.seed,
                "batch_seed": ctx.seed,
                "defence": {"code_bits": p.get("bits", 16), **defence},
            },
        }
    )
    split = split or load_split(recipe.data)
    name = tag or "-".join(f"{v}" for v in defence.values())
    out = ctx.work_dir / f"{dataset}-{name}"
    return run_local(recipe, out, split=split), out, split


def _labels(dataset: str, defence: str, bits: int) -> dict[str, str]:
    return {"dataset": dataset, "defence": defence, "code_bits": str(bits)}


def _accuracy(params: Mapping[str, Any], ctx: BenchContext, dataset: str) -> Result:
    from aisec.privacy.attacks.harness import run_attack
    from aisec.privacy.vfl.run import torch_threads

    bits = params["bits"]
    with torch_threads(1):
        plain, plain_dir, split = _train(ctx, params, dataset, {"name": "none"})
        ctx.report(0.3, "plain VFL trained")
        hashed, hash_dir, _ = _train(ctx, params, dataset, {"name": "hash"}, split)
        ctx.report(0.6, "HashVFL trained")
        lab_h = run_attack(hash_dir, "grad-direction", split=split, seed=ctx.seed)
        lab_p = run_attack(plain_dir, "grad-direction", split=split, seed=ctx.seed)
        breakdown = []
        for b in params["extra_bits"]:
            m, _, _ = _train(ctx, {**params, "bits": b}, dataset, {"name": "hash"}, split, f"h{b}")
            breakdown.append({"labels": _labels(dataset, "hash", b), "metrics": {"acc": m["acc"]}})
    metrics = {
        "acc": hashed["acc"],
        "acc_plain": plain["acc"],
        "acc_gap": plain["acc"] - hashed["acc"],
        "acc_floor": plain["acc"] - 0.02,
        "majority_rate": plain["majority_rate"],
        "bytes_per_sample": hashed["bytes_per_sample"],
        "bytes_per_sample_plain": plain["bytes_per_sample"],
        "bytes_ratio": hashed["bytes_per_sample"] / plain["bytes_per_sample"],
        "eval_bytes_ratio": hashed["eval_bytes_per_sample"] / plain["eval_bytes_per_sample"],
        "seconds_per_epoch": hashed["seconds_per_epoch"],
        "seconds_per_epoch_plain": plain["seconds_per_epoch"],
        # fastest epoch of each: the mean moves with other jobs on a shared machine
        "time_ratio": hashed["seconds_per_epoch_min"] / max(plain["seconds_per_epoch_min"], 1e-9),
        "label_attack_acc": lab_h["label_attack_acc"],
        "label_attack_acc_plain": lab_p["label_attack_acc"],
        "label_majority_rate": lab_h["majority_rate"],
        "n_train": hashed["n_train"],
        "epochs": params["epochs"],
    }
    return Result(
        metrics=metrics,
        labels=_labels(dataset, "hash", bits),
        breakdown=breakdown,
        notes=[
            "bytes_ratio counts whole frames (a ~130-byte header per batch message); the payload "
            f"alone is {bits / 8:g} B against {4 * bits} B per row (1/32).",
            "label_attack_acc: a passive party's gradient-direction scoring with 10 known "
            "labels per class, on the last epoch's gradients.",
        ],
    )


_ACC_HEADLINES = [
    Headline("acc", ">= acc_floor", "HashVFL acc", why=_HASH_WHY + " (within 2 points)"),
    Headline("acc_plain", label="plain VFL acc"),
    Headline("bytes_ratio", "<= 0.0333", "bytes vs float", "x", why="issue 17: <= 1/30"),
    Headline("time_ratio", "<= 1.5", "epoch time ratio", "x", why="issue 17: <= 1.5x"),
]

_QUICK_ACC = {"digits", "adult"}
for _ds in ("digits", "adult", "mnist", "fashion", "reviews"):

    def _make(ds: str) -> Any:
        def fn(params: Mapping[str, Any], ctx: BenchContext) -> Result:
            return _accuracy(params, ctx, ds)

        fn.__name__ = fn.__qualname__ = f"accuracy_{ds}"
        fn.__doc__ = f"HashVFL (16 bits) vs plain VFL on {ds}: accuracy, traffic, epoch time"
        return fn

    scenario(
        f"hashvfl.acc_{_ds}",
        system="hashvfl",
        params={"epochs": 8, "bits": 16, "extra_bits": [], "rows": {"adult": 3000}},
        full_params={"epochs": 10, "extra_bits": [8, 32, 64], "rows": {}},
        suites=("quick", "full") if _ds in _QUICK_ACC else ("full",),
        headline=_ACC_HEADLINES,
    )(_make(_ds))


@scenario(
    "hashvfl.recon",
    system="hashvfl",
    params={
        "dataset": "mnist",
        "epochs": 3,
        "bits": 16,
        "decoder_epochs": 30,
        "inversion_steps": 100,
        "targets": 100,
        "bottom": "mlp",
    },
    full_params={
        "epochs": 10,
        "decoder_epochs": 60,
        "inversion_steps": 300,
        "targets": 300,
        "bottom": "cnn",
    },
    headline=[
        Headline(
            "recon_ssim",
            "<= recon_ssim_bound",
            "hash SSIM",
            why="issue 17: on HashVFL codes the decoder scores at most the class mean + 0.05",
        ),
        Headline(
            "recon_ssim_plain",
            "> recon_ssim_class_mean",
            "plain SSIM",
            why="the attack works on plain VFL embeddings",
        ),
        Headline("recon_ssim_class_mean", label="class-mean SSIM"),
    ],
)
def reconstruction(params: Mapping[str, Any], ctx: BenchContext) -> Result:
    """Decoder and inversion reconstruction of P1's image half: plain VFL vs HashVFL"""
    from aisec.privacy.attacks.harness import run_attack
    from aisec.privacy.vfl.run import torch_threads

    ds = params["dataset"]
    out: dict[str, dict[str, Any]] = {}
    with torch_threads(1):
        split = None
        for d in ("none", "hash"):
            _, run_dir, split = _train(ctx, params, ds, {"name": d}, split)
            dec = run_attack(
                run_dir,
                "decoder",
                split=split,
                seed=ctx.seed,
                targets=params["targets"],
                epochs=params["decoder_epochs"],
            )
            inv = run_attack(
                run_dir,
                "inversion",
                split=split,
                seed=ctx.seed,
                targets=min(params["targets"], 100),
                steps=params["inversion_steps"],
            )
            out[d] = {"decoder": dec, "inversion": inv, "dir": run_dir}
            ctx.report(0.5 if d == "none" else 1.0, f"{d} attacked")
    h, pl = out["hash"]["decoder"], out["none"]["decoder"]
    image = "recon_ssim" in h
    key = "recon_ssim" if image else "recon_error"
    metrics: dict[str, Any] = {
        "recon_ssim": h.get("recon_ssim"),
        "recon_ssim_plain": pl.get("recon_ssim"),
        "recon_ssim_class_mean": h.get("recon_ssim_class_mean"),
        "recon_ssim_bound": (h["recon_ssim_class_mean"] + 0.05) if image else None,
        "recon_ssim_inversion": out["hash"]["inversion"].get("recon_ssim"),
        "recon_ssim_inversion_plain": out["none"]["inversion"].get("recon_ssim"),
        "recon_mse": h["recon_mse"],
        "recon_mse_plain": pl["recon_mse"],
        "recon_mse_class_mean": h["recon_mse_class_mean"],
        "recon_error": h["recon_error"],
        "recon_error_plain": pl["recon_error"],
        "recon_error_class_mean": h["recon_error_class_mean"],
    }
    if image:
        metrics["plain_margin_over_class_mean"] = pl["recon_ssim"] - pl["recon_ssim_class_mean"]
    else:  # tabular: the decoder's per-feature error should be no lower than the class mean's
        metrics["recon_error_floor"] = h["recon_error_class_mean"]
        metrics["plain_margin_over_class_mean"] = pl["recon_error_class_mean"] - pl["recon_error"]
    breakdown = [
        {
            "labels": {**_labels(ds, d, params["bits"]), "attack": a},
            "metrics": {k: v for k, v in out[d][a].items() if k.startswith("recon_")},
        }
        for d in ("none", "hash")
        for a in ("decoder", "inversion")
    ]
    notes = []
    images = {}
    if image:
        from aisec.privacy.attacks.harness import recon_figure

        fig = recon_figure(
            {
                "plain VFL": out["none"]["decoder"]["examples"],
                "HashVFL": out["hash"]["decoder"]["examples"],
            },
            ctx.work_dir / "reconstructions.png",
        )
        images["reconstructions: original, plain VFL, HashVFL, class mean"] = fig
    return Result(
        metrics=metrics,
        labels=_labels(ds, "hash", params["bits"]),
        breakdown=breakdown,
        notes=notes
        + [
            f"reconstruction of party P1's slice; {key} against the class-mean baseline "
            "(the mean auxiliary row of the target's true class)"
        ],
        images=images,
    )


@scenario(
    "hashvfl.tradeoff",
    system="hashvfl",
    params={
        "dataset": "digits",
        "epochs": 5,
        "bits": 16,
        "noise_scales": [0.5, 2.0],
        "dp_epsilons": [1.0],
        "grad_noises": [1.0],
        "hash_bits": [8, 16],
        "decoder_epochs": 20,
        "targets": 100,
    },
    full_params={
        "dataset": "mnist",
        "epochs": 10,
        "noise_scales": [0.05, 0.1, 0.3, 1.0, 3.0],
        "dp_epsilons": [0.25, 1.0, 4.0, 16.0],
        "hash_bits": [8, 16, 32, 64],
        "grad_noises": [0.5, 2.0],
        "decoder_epochs": 60,
        "targets": 300,
    },
    headline=[
        Headline(
            "acc",
            ">= noise_acc_at_hash_quality",
            "HashVFL acc",
            why="issue 17: at equal attack quality HashVFL keeps at least the noise defences' "
            "accuracy",
        ),
        Headline("noise_acc_at_hash_quality", label="noise/DP acc"),
        Headline("recon_ssim", label="hash SSIM"),
    ],
)
def tradeoff(params: Mapping[str, Any], ctx: BenchContext) -> Result:
    """Accuracy against decoder SSIM for the Gaussian-noise and Laplace-DP sweeps and HashVFL"""
    from aisec.privacy.attacks.harness import run_attack
    from aisec.privacy.vfl.run import torch_threads

    ds = params["dataset"]
    points: list[tuple[str, float, dict[str, Any]]] = []
    runs: list[tuple[str, float, dict[str, Any]]] = [("none", 0.0, {"name": "none"})]
    runs += [("noise", s, {"name": "noise", "noise_scale": s}) for s in params["noise_scales"]]
    runs += [("dp", e, {"name": "dp", "epsilon": e}) for e in params["dp_epsilons"]]
    runs += [("hash", b, {"name": "hash", "code_bits": b}) for b in params["hash_bits"]]
    runs += [
        ("gradperturb", s, {"name": "gradperturb", "grad_noise": s}) for s in params["grad_noises"]
    ]
    split = None
    breakdown = []
    with torch_threads(1):
        for k, (kind, strength, d) in enumerate(runs):
            m, run_dir, split = _train(
                ctx,
                {**params, "bits": int(strength) if kind == "hash" else params["bits"]},
                ds,
                d,
                split,
                f"{kind}{strength:g}",
            )
            a = run_attack(
                run_dir,
                "decoder",
                split=split,
                seed=ctx.seed,
                targets=params["targets"],
                epochs=params["decoder_epochs"],
            )
            lab = run_attack(run_dir, "grad-direction", split=split, seed=ctx.seed)
            row = {
                "acc": m["acc"],
                "recon_ssim": a.get("recon_ssim"),
                "recon_ssim_class_mean": a.get("recon_ssim_class_mean"),
                "recon_error": a["recon_error"],
                "label_attack_acc": lab["label_attack_acc"],
                "label_majority_rate": lab["majority_rate"],
            }
            if "epsilon" in m:
                row["epsilon"] = m["epsilon"]
            points.append((kind, strength, row))
            bits = int(strength) if kind == "hash" else params["bits"]
            breakdown.append(
                {"labels": {**_labels(ds, kind, bits), "strength": f"{strength:g}"}, "metrics": row}
            )
            ctx.report((k + 1) / len(runs), f"{kind} {strength:g}")
    q = "recon_ssim" if points[0][2].get("recon_ssim") is not None else "recon_error"
    sign = 1.0 if q == "recon_ssim" else -1.0  # higher SSIM / lower error = better attack
    hash16 = next(
        (r for k, s, r in points if k == "hash" and int(s) == params["bits"]),
        next(r for k, _, r in points if k == "hash"),
    )
    # noise points whose attack is no better than the one on HashVFL's codes
    peers = [
        r["acc"]
        for k, _, r in points
        if k in ("noise", "dp") and sign * r[q] <= sign * hash16[q] + 0.01
    ]
    metrics: dict[str, Any] = {
        "acc": hash16["acc"],
        "recon_ssim": hash16.get("recon_ssim"),
        "recon_error": hash16["recon_error"],
        "noise_acc_at_hash_quality": max(peers) if peers else None,
        "noise_points_at_hash_quality": len(peers),
        "acc_plain": points[0][2]["acc"],
    }
    series = {
        f"accuracy vs decoder {q} ({ds})": [
            Series(
                x=[r[q] for k, _, r in points if k == kind],
                y=[r["acc"] for k, _, r in points if k == kind],
                xlabel=f"decoder {q} (attack quality)",
                ylabel="test accuracy",
                label=kind,
                kind="scatter",
            )
            for kind in ("none", "noise", "dp", "hash")
        ],
        f"label attack accuracy vs test accuracy ({ds})": [
            Series(
                x=[r["label_attack_acc"] for k, _, r in points if k == kind],
                y=[r["acc"] for k, _, r in points if k == kind],
                xlabel="label attack accuracy (gradient direction)",
                ylabel="test accuracy",
                label=kind,
                kind="scatter",
            )
            for kind in ("none", "noise", "dp", "hash", "gradperturb")
        ],
    }
    notes = (
        []
        if peers
        else [
            "no noise/DP point reached HashVFL's attack quality; noise_acc_at_hash_quality is n/a"
        ]
    )
    return Result(
        metrics=metrics,
        labels=_labels(ds, "hash", params["bits"]),
        breakdown=breakdown,
        series=series,
        notes=notes,
    )


@scenario(
    "hashvfl.detect",
    system="hashvfl",
    params={
        "dataset": "mnist",
        "epochs": 3,
        "bits": 16,
        "rows": {"mnist": 2000},
        "bottom": "mlp",
        "detect_rows": 200,
        "pgd_steps": 10,
    },
    full_params={"epochs": 10, "rows": {}, "bottom": "cnn", "detect_rows": 500, "pgd_steps": 20},
    headline=[
        Headline("detect_auc_ood", label="AUC OOD"),
        Headline("detect_auc_pgd", label="AUC PGD"),
        Headline("detect_auc_noise", label="AUC noise"),
    ],
)
def detection(params: Mapping[str, Any], ctx: BenchContext) -> Result:
    """Abnormal-input detection by Hamming distance: OOD, PGD on P1's slice, noise"""
    from aisec.privacy.vfl.detect import detect_abnormal
    from aisec.privacy.vfl.run import torch_threads

    ds = params["dataset"]
    with torch_threads(1):
        m, run_dir, split = _train(ctx, params, ds, {"name": "hash"})
        ctx.report(0.5, "trained")
        d = detect_abnormal(
            run_dir,
            rows=params["detect_rows"],
            steps=params["pgd_steps"],
            seed=ctx.seed,
            split=split,
        )
    metrics = {k: v for k, v in d.items() if isinstance(v, int | float) and k != "rows"}
    metrics["acc"] = m["acc"]
    return Result(
        metrics=metrics,
        labels=_labels(ds, "hash", params["bits"]),
        notes=[d["ood_note"]] if "ood_note" in d else [],
    )


scenario(
    "hashvfl.recon_adult",
    system="hashvfl",
    params={
        "dataset": "adult",
        "epochs": 10,
        "bits": 16,
        "decoder_epochs": 60,
        "inversion_steps": 300,
        "targets": 300,
        "bottom": "mlp",
    },
    suites=("full",),
    description="Decoder and inversion reconstruction of P1's Adult columns: plain vs HashVFL",
    headline=[
        Headline(
            "recon_error",
            ">= recon_error_floor",
            "hash error",
            why="issue 17, tabular: on HashVFL codes the decoder's per-feature error is no "
            "better than the class mean's",
        ),
        Headline("recon_error_plain", "< recon_error_class_mean", "plain error"),
        Headline("recon_error_class_mean", label="class-mean error"),
    ],
)(reconstruction)
