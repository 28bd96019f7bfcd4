"""Robustness experiment: Tree-Ring vs Gaussian Shading vs GaussMarker (with / without GNR).

For one diffusion backbone: generate N clean and N watermarked images per method (8-bit), apply
each distortion, DDIM-invert, score, and report per (method, distortion) AUC, TPR at 1 % FPR
(empirical threshold on the clean scores of the same condition, as the paper; and a fixed,
deployed threshold calibrated once on ``n_cal`` undistorted clean images that are not evaluation
images), bit accuracy on watermarked and on clean images, and detection seconds per image.
GaussMarker's fuser is fitted on a separate fitting set (``n_fit`` watermarked and ``n_fit`` clean
images, each under no distortion, under every distortion of the recipe and, for the fuser with
the GNR branch, under the extra conditions of ``fit_sweep``, by default rotation by 15 and 45
degrees), never on the evaluation images. With ``n_heldout`` > 0 the deployed thresholds' FPR is measured on that many
further clean images (and, for comparison, the user-free thresholds of the CLI: binomial for the
bit accuracy, simulated N(0, I) noise for Tree-Ring).

Methods: ``tree_ring``, ``gaussian_shading``, ``gaussmarker_nognr`` (fuser over GS bit accuracy
and the ring score) and ``gaussmarker`` (plus the GNR-restored bit accuracy).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field

from aisec.config import StrictModel
from aisec.errors import ConfigError

if TYPE_CHECKING:
    from aisec.provenance.base import WatermarkKey
    from aisec.rng import CryptoRandom

__all__ = ["RobustnessRecipe", "RobustnessReport", "run_robustness", "EVAL_STRENGTHS", "METHODS"]

METHODS = ("tree_ring", "gaussian_shading", "gaussmarker_nognr", "gaussmarker")
SUPPORTED_ATTACKS = ("diffusion_regen", "compression_regen", "adversarial")

#: Strengths used for the 32x32 embedded model: the reference values, except blur, whose pixel
#: sigma (4 px at 512 px) is rescaled to the image size (0.25 px would be a no-op, so 1 px).
EVAL_STRENGTHS: dict[str, float] = {
    "rotation": 75.0,
    "jpeg": 75.0,
    "crop_scale": 0.4,
    "random_drop": 0.2,
    "blur": 1.0,
    "salt_pepper": 0.05,
    "gaussian_noise": 0.05,
    "brightness": 6.0,
}


class RobustnessRecipe(StrictModel):
    """What to run (YAML recipe for ``aisec watermark robustness``)."""

    backbone: str = "ddpm-fmnist"
    backbone_args: dict[str, Any] = Field(default_factory=dict)
    methods: tuple[str, ...] = METHODS
    distortions: dict[str, float] = Field(default_factory=lambda: dict(EVAL_STRENGTHS))
    sweep: dict[str, list[float]] = Field(default_factory=dict)
    # extra (distortion, strength) conditions the fuser is fitted on, beside "none" and the
    # eight main distortions; small rotations, where the GNR branch alone is strongest
    fit_sweep: dict[str, list[float]] = Field(default_factory=lambda: {"rotation": [15.0, 45.0]})
    # Advanced attacks (aisec.perturb.attacks): diffusion regeneration with the same public
    # backbone, and compression through a PCA autoencoder fitted on Fashion-MNIST test images.
    attacks: dict[str, float] = Field(
        default_factory=lambda: {"diffusion_regen": 0.2, "compression_regen": 0.9}
    )
    n: int = Field(100, ge=2)
    pgd_iters: int = Field(10, ge=1)
    n_fit: int = Field(100, ge=4)
    n_cal: int = Field(1000, ge=2)
    n_heldout: int = Field(1000, ge=0)
    steps: int = Field(10, ge=1)
    refine: int = Field(0, ge=0)
    fpr: float = Field(0.01, gt=0, lt=1)
    fuser: Literal["minimax", "logistic", "mlp"] = "minimax"
    gnr: str | None = "shipped"
    gs_hw_copy: int = Field(4, ge=1)
    tr_radius: int = Field(3, ge=1)
    tr_channel: int = Field(3, ge=-1)
    batch: int = Field(50, ge=1)
    threads: int = Field(1, ge=1)  # torch intra-op threads; 1 avoids spin contention on shared CPUs


@dataclass
class RobustnessReport:
    """Results: one dict per (method, distortion, strength) plus ROC points and notes."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    roc: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    fusers: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)

    def get(self, method: str, distortion: str) -> dict[str, Any]:
        for r in self.rows:
            if r["method"] == method and r["distortion"] == distortion and r.get("main", True):
                return r
        raise KeyError((method, distortion))


def _gnr_for(key_map: np.ndarray, spec: str | None, log: Callable[[str], None]) -> Any:
    """The GNR for an encrypted map: a path, the shipped one (if it matches) or none."""
    from aisec.provenance.gnr import GNR, key_fingerprint

    if spec is None:
        return None
    fp = key_fingerprint(key_map)
    if spec == "shipped":
        path = Path(__file__).resolve().parent / "weights" / f"gnr_{fp}.safetensors"
        if not path.is_file():
            log(f"no shipped GNR for this key (fingerprint {fp}); GaussMarker runs without GNR")
            return None
    else:
        path = Path(spec)
    gnr = GNR.load(path)
    if gnr.fingerprint != fp:
        raise ConfigError(
            f"GNR {path} was trained for another key (fingerprint {gnr.fingerprint}, key {fp})"
        )
    return gnr


def run_robustness(
    recipe: RobustnessRecipe,
    seed: int = 0,
    crypto: CryptoRandom | None = None,
    progress: Callable[[float, str], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> RobustnessReport:
    """Run the experiment (see module docstring). ``crypto`` defaults to a seeded test source."""
    import torch

    from aisec.metrics import auc, roc_curve
    from aisec.metrics.detection import threshold_at_fpr
    from aisec.metrics.watermark import empirical_tpr_at_fpr, tpr_fpr_at_threshold
    from aisec.perturb.distortions import DISTORTIONS, make_distortion
    from aisec.provenance.base import get_method
    from aisec.provenance.fuser import fit_fuser, fit_minimax_fuser
    from aisec.provenance.pipeline import generate, invert, load_backbone
    from aisec.rng import InsecureRandom

    torch.set_num_threads(recipe.threads)
    log = log or (lambda s: None)
    progress = progress or (lambda f, m="": None)
    unknown = [m for m in recipe.methods if m not in METHODS]
    if unknown:
        raise ConfigError(f"unknown methods {unknown}; valid: {list(METHODS)}")
    for d in list(recipe.distortions) + list(recipe.sweep) + list(recipe.fit_sweep):
        DISTORTIONS.entry(d)  # one-line error listing valid names
    for a in recipe.attacks:
        if a not in SUPPORTED_ATTACKS:
            raise ConfigError(
                f"attack {a!r} is not supported by the robustness run {SUPPORTED_ATTACKS}"
            )
    report = RobustnessReport()
    t0 = time.time()
    backbone = load_backbone(recipe.backbone, **recipe.backbone_args)
    shape = backbone.latent_shape
    if crypto is None:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            crypto = InsecureRandom(seed)
    gs_p = {"hw_copy": recipe.gs_hw_copy}
    tr_p = {"radius": recipe.tr_radius, "channel": recipe.tr_channel}
    tr = get_method("tree_ring", **tr_p)
    gs = get_method("gaussian_shading", **gs_p)
    gm = get_method("gaussmarker", gs=gs_p, tr=tr_p)
    # GaussMarker's key comes first from the stream so a shipped GNR matches seed 0.
    keys: dict[str, WatermarkKey] = {"gaussmarker": gm.keygen(shape, crypto)}
    keys["tree_ring"] = tr.keygen(shape, crypto)
    keys["gaussian_shading"] = gs.keygen(shape, crypto)
    gnr = _gnr_for(gm.encrypted_map(keys["gaussmarker"]), recipe.gnr, log)
    if "gaussmarker" in recipe.methods and gnr is None:
        report.notes.append("gaussmarker ran without a GNR (none available for this key)")
    gen = torch.Generator().manual_seed(seed)
    n, steps, b = recipe.n, recipe.steps, recipe.batch
    sets_needed = {
        "tree_ring": "tree_ring",
        "gaussian_shading": "gaussian_shading",
        "gaussmarker_nognr": "gaussmarker",
        "gaussmarker": "gaussmarker",
    }
    base_methods = sorted({sets_needed[m] for m in recipe.methods})
    objs = {"tree_ring": tr, "gaussian_shading": gs, "gaussmarker": gm}

    progress(0.02, "generating")
    images = {"clean": generate(backbone, None, None, n, gen, steps, batch=b).images}
    for m in base_methods:
        images[m] = generate(backbone, objs[m], keys[m], n, gen, steps, batch=b).images
    report.timings["generate_s_per_image"] = (time.time() - t0) / (n * (1 + len(base_methods)))

    def gm_features(z: torch.Tensor) -> dict[str, np.ndarray]:
        gm.with_detector(gnr=gnr, fuser=None)
        return gm.detect(keys["gaussmarker"], z).features or {}

    # --- fuser fitting on separate images under every distortion -------------------------
    fusers: dict[str, Any] = {}
    progress(0.1, "fitting the fuser")
    fit_wm = generate(backbone, gm, keys["gaussmarker"], recipe.n_fit, gen, steps, batch=b).images
    fit_cl = generate(backbone, None, None, recipe.n_fit, gen, steps, batch=b).images
    fit_pos: dict[str, dict[str, np.ndarray]] = {}
    fit_neg: dict[str, dict[str, np.ndarray]] = {}
    z_fit_cl0 = None
    fit_conds = [("none", "none", 0.0)] + [(d, d, v) for d, v in recipe.distortions.items()]
    fit_conds += [(f"{d}@{v:g}", d, v) for d, vs in recipe.fit_sweep.items() for v in vs]
    for fi, (cond, d, strength) in enumerate(fit_conds):
        dist = make_distortion(d, strength) if d != "none" else None
        frng = np.random.default_rng([seed, 10_000 + fi])
        xw = dist.apply(fit_wm, frng) if dist else fit_wm
        xc = dist.apply(fit_cl, frng) if dist else fit_cl
        fit_pos[cond] = gm_features(invert(backbone, xw, steps, recipe.refine, b))
        zc = invert(backbone, xc, steps, recipe.refine, b)
        fit_neg[cond] = gm_features(zc)
        if d == "none":
            z_fit_cl0 = zc
    feats_all = (
        ("gs_bit_acc", "gnr_margin", "tr_score") if gnr is not None else ("gs_bit_acc", "tr_score")
    )
    main_conds = {"none", *recipe.distortions}
    for name, feats in (
        ("gaussmarker_nognr", ("gs_bit_acc", "tr_score")),
        ("gaussmarker", feats_all),
    ):
        # the fit_sweep conditions (small rotations) carry signal only through the GNR branch;
        # without it every branch is at chance there, and they would only add noise
        conds = [c for c in fit_pos if "gnr_margin" in feats or c in main_conds]
        pos = {c: fit_pos[c] for c in conds}
        neg = {c: fit_neg[c] for c in conds}
        if recipe.fuser == "minimax":
            fusers[name], margin = fit_minimax_fuser(pos, neg, feats, recipe.fpr, seed=seed)
            report.calibration[f"{name}.fit_margin"] = margin
        else:
            pooled_p = {f: np.concatenate([pos[c][f] for c in pos]) for f in feats}
            pooled_n = {f: np.concatenate([neg[c][f] for c in neg]) for f in feats}
            fusers[name] = fit_fuser(pooled_p, pooled_n, feats, kind=recipe.fuser, seed=seed)
    # Deployed thresholds: 1 % FPR on n_cal undistorted clean images (the clean fitting images
    # and fresh ones), none of them evaluation images.
    progress(0.14, "calibrating deployed thresholds")
    extra = recipe.n_cal - recipe.n_fit
    z_cal = z_fit_cl0
    if extra > 0:
        more = generate(backbone, None, None, extra, gen, steps, batch=b).images
        z_cal = torch.cat([z_cal, invert(backbone, more, steps, recipe.refine, b)])
    cl0 = _scores(z_cal, keys, tr, gs, gm, gnr, fusers, recipe.methods)
    cal_thr = {m: threshold_at_fpr(cl0[m][0], recipe.fpr) for m in recipe.methods}
    report.calibration["n_cal"] = int(len(z_cal))
    report.calibration["thresholds"] = dict(cal_thr)
    import dataclasses

    from aisec.provenance.gnr import key_fingerprint

    kfp = key_fingerprint(gm.encrypted_map(keys["gaussmarker"]))
    for m, f in fusers.items():
        if m in cal_thr:
            fusers[m] = dataclasses.replace(f, threshold=cal_thr[m], key_fingerprint=kfp)
    report.fusers = dict(fusers)
    if recipe.n_heldout:
        progress(0.16, "measuring deployed FPR on held-out clean images")
        held = generate(backbone, None, None, recipe.n_heldout, gen, steps, batch=b).images
        z_h = invert(backbone, held, steps, recipe.refine, b)
        hs = _scores(z_h, keys, tr, gs, gm, gnr, fusers, recipe.methods)
        fpr_h = {m: float(np.mean(hs[m][0] > cal_thr[m])) for m in recipe.methods}
        report.calibration["n_heldout"] = recipe.n_heldout
        report.calibration["heldout_fpr"] = fpr_h
        from aisec.metrics.watermark import binomial_threshold
        from aisec.provenance.thresholds import tree_ring_threshold

        user_free: dict[str, float] = {}
        if "tree_ring" in recipe.methods:
            thr = tree_ring_threshold(tr, keys["tree_ring"], recipe.fpr)
            user_free["tree_ring"] = float(np.mean(hs["tree_ring"][0] > thr))
        kbits = gs.n_bits(shape)
        for m in ("gaussian_shading", "gaussmarker_nognr", "gaussmarker"):
            if m in recipe.methods and hs[m][1] is not None:
                thr = binomial_threshold(kbits, recipe.fpr)
                user_free[f"{m}.bit_acc_binomial"] = float(np.mean(hs[m][1] > thr))
        report.calibration["heldout_fpr_user_free"] = user_free
        log(
            f"deployed FPR on {recipe.n_heldout} held-out clean images: {fpr_h}; "
            f"user-free thresholds: {user_free}"
        )

    conditions: list[tuple[str, float, bool]] = [("none", 0.0, True)]
    conditions += [(d, s, True) for d, s in recipe.distortions.items()]
    conditions += [(a, s, True) for a, s in recipe.attacks.items()]
    for d, strengths in recipe.sweep.items():
        conditions += [
            (d, float(s), False)
            for s in strengths
            if not (d in recipe.distortions and float(s) == recipe.distortions[d])
        ]
    det_time, det_count = 0.0, 0
    for ci, (dname, strength, main) in enumerate(conditions):
        progress(0.15 + 0.85 * ci / len(conditions), f"{dname} {strength:g}")
        drng = np.random.default_rng([seed, ci])
        per_method: dict[str, Any] = {}
        if dname == "adversarial":
            # White-box removal: PGD on each method's watermarked images against a
            # differentiable surrogate of that method's detector; clean images are untouched.
            dist = None
            for m in base_methods:
                per_method[m] = _pgd(
                    strength, recipe.pgd_iters, backbone, m, objs, keys, steps, gnr
                )
        elif dname in recipe.attacks:
            dist = _attack(dname, strength, backbone, seed, ci)
        else:
            dist = make_distortion(dname, strength) if dname != "none" else None
        scores: dict[str, dict[str, tuple[np.ndarray, np.ndarray | None]]] = {}
        ts = time.time()
        z_clean = invert(
            backbone,
            dist.apply(images["clean"], drng) if dist else images["clean"],
            steps,
            recipe.refine,
            b,
        )
        neg = _scores(z_clean, keys, tr, gs, gm, gnr, fusers, recipe.methods)
        for m in base_methods:
            mdist = per_method.get(m, dist)
            x = mdist.apply(images[m], drng) if mdist else images[m]
            z = invert(backbone, x, steps, recipe.refine, b)
            pos = _scores(z, keys, tr, gs, gm, gnr, fusers, recipe.methods)
            for meth in recipe.methods:
                if sets_needed[meth] == m:
                    scores[meth] = {"pos": pos[meth], "neg": neg[meth]}
        det_time += time.time() - ts
        det_count += n * (1 + len(base_methods))
        for meth in recipe.methods:
            (sp, bp, fp), (sn, bn, fn) = scores[meth]["pos"], scores[meth]["neg"]
            tpr, real_fpr, _ = empirical_tpr_at_fpr(sp, sn, recipe.fpr)
            row: dict[str, Any] = {
                "method": meth,
                "distortion": dname,
                "strength": strength,
                "main": main,
                "auc": auc(sp, sn),
                "tpr_at_1fpr": tpr,
                "realized_fpr": real_fpr,
                "n_pos": len(sp),
                "n_neg": len(sn),
            }
            if meth in cal_thr:
                row["tpr_fixed"], row["fpr_fixed"] = tpr_fpr_at_threshold(sp, sn, cal_thr[meth])
            if bp is not None:
                row["bit_acc"] = float(np.mean(bp))
                row["bit_acc_clean"] = float(np.mean(bn))
            # Each branch of the fused detector alone, on the same images (fusion check).
            for feat in ("gs_bit_acc", "gnr_bit_acc", "gnr_margin", "tr_score"):
                if meth.startswith("gaussmarker") and fp and feat in fp:
                    if feat.startswith("gnr_") and meth != "gaussmarker":
                        continue
                    row[f"tpr_{feat}"] = empirical_tpr_at_fpr(fp[feat], fn[feat], recipe.fpr)[0]
                    row[f"auc_{feat}"] = auc(fp[feat], fn[feat])
            if meth in fusers and fp:
                used = {f: (fp[f], fn[f]) for f in fusers[meth].features}
                row["fused_margin"], row["fused_margin_ci95"] = _fused_margin(
                    (sp, sn), used, recipe.fpr, np.random.default_rng([seed, ci, 7])
                )
            report.rows.append(row)
            if main:
                fpr_c, tpr_c, _ = roc_curve(sp, sn)
                report.roc[f"{meth}/{dname}"] = (fpr_c.tolist(), tpr_c.tolist())
        log(
            f"{dname} {strength:g}: "
            + ", ".join(
                f"{r['method']} tpr {r['tpr_at_1fpr']:.2f}"
                for r in report.rows[-len(recipe.methods) :]
            )
        )
    report.timings["detect_s_per_image"] = det_time / max(det_count, 1)
    report.timings["total_s"] = time.time() - t0
    progress(1.0, "done")
    return report


class _AttackAdapter:
    """Gives an attack of :mod:`aisec.perturb.attacks` the ``apply(images, rng)`` of a distortion."""

    def __init__(self, attack: Any, seed: int) -> None:
        self.attack = attack
        self.seed = seed

    def apply(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        import torch

        g = torch.Generator().manual_seed(int(rng.integers(2**62)))
        return self.attack.apply(images, g)


def _pgd(
    strength: float,
    iters: int,
    backbone: Any,
    method: str,
    objs: dict[str, Any],
    keys: dict[str, WatermarkKey],
    steps: int,
    gnr: Any = None,
) -> _AttackAdapter:
    """PGD (``aisec.perturb.attacks.Adversarial``) against a differentiable detector surrogate.

    The surrogate runs the same DDIM inversion with gradients, then scores the recovered noise z:
    Gaussian Shading, the mean of tanh(3 z) (2m - 1) (a soft sign agreement with the key's sign
    map m); Tree-Ring, minus the ring distance divided by the mean key magnitude on the ring;
    GaussMarker, the sum of both, plus, with a GNR, the GNR's margin towards m on the soft signs
    tanh(3 z) divided by its clip (the attacker lowers every statistic the fuser reads).
    """
    import torch

    from aisec.perturb.attacks import make_attack
    from aisec.provenance.tree_ring import _fft

    if not hasattr(backbone, "invert_differentiable"):
        raise ConfigError(f"backbone {backbone.name!r} has no differentiable inversion for PGD")
    parts: list[Callable[[torch.Tensor], torch.Tensor]] = []
    obj, key = objs[method], keys[method]
    if method in ("gaussian_shading", "gaussmarker"):
        gs, sub = (obj.gs, obj.split(key)[0]) if method == "gaussmarker" else (obj, key)
        sign = torch.from_numpy(gs.encrypted_map(sub).astype(np.float32) * 2 - 1)
        parts.append(lambda z: (torch.tanh(3 * z) * sign).flatten(1).mean(1))
    if method in ("tree_ring", "gaussmarker"):
        tr, sub = (obj.tr, obj.split(key)[1]) if method == "gaussmarker" else (obj, key)
        pat, mask = tr.pattern(sub)
        m = torch.from_numpy(mask)
        target = torch.from_numpy(pat[mask])
        norm = float(np.abs(pat[mask]).mean())
        parts.append(lambda z: -(_fft(z)[:, m] - target[None]).abs().mean(1) / norm)
    if method == "gaussmarker" and gnr is not None:
        from aisec.provenance.gnr import MARGIN_CLIP

        def gnr_margin(z: torch.Tensor) -> torch.Tensor:
            logits = gnr.net(torch.tanh(3 * z)).clamp(-MARGIN_CLIP, MARGIN_CLIP)
            return (logits * sign).flatten(1).mean(1) / MARGIN_CLIP

        parts.append(gnr_margin)

    def score(images: torch.Tensor) -> torch.Tensor:
        z = backbone.invert_differentiable(images, steps)
        return torch.stack([p(z) for p in parts]).sum(0)

    return _AttackAdapter(make_attack("adversarial", score, strength, iters=iters), 0)


def _attack(name: str, strength: float, backbone: Any, seed: int, ci: int) -> _AttackAdapter:
    from aisec.perturb.attacks import LinearAutoencoder, make_attack

    if name == "diffusion_regen":
        return _AttackAdapter(make_attack(name, backbone, strength), seed)
    if name == "compression_regen":
        from aisec.assets import load_dataset

        side = backbone.image_shape[0] if hasattr(backbone, "image_shape") else 32
        x = load_dataset("fashion-mnist", split="test").x[:2000].astype(np.float32) / 255.0
        pad = (side - x.shape[1]) // 2
        canvas = np.zeros((len(x), 1, side, side), np.float32)
        canvas[:, 0, pad : pad + x.shape[1], pad : pad + x.shape[2]] = x
        codec = LinearAutoencoder.fit(canvas, max_components=256)
        return _AttackAdapter(make_attack(name, codec, strength), seed)
    raise ConfigError(
        f"attack {name!r} is not supported by the robustness run "
        "(diffusion_regen, compression_regen)"
    )


def _fused_margin(
    fused: tuple[np.ndarray, np.ndarray],
    branches: dict[str, tuple[np.ndarray, np.ndarray]],
    fpr: float,
    rng: np.random.Generator,
    boot: int = 500,
) -> tuple[float, list[float]]:
    """Fused TPR minus the best branch TPR (empirical threshold), and its 95 % bootstrap interval.

    Watermarked and clean images are resampled separately, the same indices for the fused score
    and every branch (each image's scores stay together), so the interval says whether a
    difference of a few images is more than resampling noise.
    """
    from aisec.metrics.watermark import empirical_tpr_at_fpr

    def margin(ip: np.ndarray, ineg: np.ndarray) -> float:
        best = max(empirical_tpr_at_fpr(p[ip], n[ineg], fpr)[0] for p, n in branches.values())
        return empirical_tpr_at_fpr(fused[0][ip], fused[1][ineg], fpr)[0] - best

    n_pos, n_neg = len(fused[0]), len(fused[1])
    point = margin(np.arange(n_pos), np.arange(n_neg))
    draws = [
        margin(rng.integers(0, n_pos, n_pos), rng.integers(0, n_neg, n_neg)) for _ in range(boot)
    ]
    lo, hi = np.quantile(draws, [0.025, 0.975])
    return float(point), [float(lo), float(hi)]


def _scores(
    z: Any,
    keys: dict[str, WatermarkKey],
    tr: Any,
    gs: Any,
    gm: Any,
    gnr: Any,
    fusers: dict[str, Any],
    methods: tuple[str, ...],
) -> dict[str, tuple[np.ndarray, np.ndarray | None, dict[str, np.ndarray]]]:
    """(score, bit accuracy or None, branch statistics) per method for recovered noise z."""
    out: dict[str, tuple[np.ndarray, np.ndarray | None, dict[str, np.ndarray]]] = {}
    if "tree_ring" in methods:
        out["tree_ring"] = (tr.detect(keys["tree_ring"], z).score, None, {})
    if "gaussian_shading" in methods:
        d = gs.detect(keys["gaussian_shading"], z)
        out["gaussian_shading"] = (d.score, d.bit_acc, {})
    if "gaussmarker_nognr" in methods:
        gm.with_detector(gnr=None, fuser=fusers.get("gaussmarker_nognr"))
        d = gm.detect(keys["gaussmarker"], z)
        out["gaussmarker_nognr"] = (d.score, d.bit_acc, d.features or {})
    if "gaussmarker" in methods:
        gm.with_detector(gnr=gnr, fuser=fusers.get("gaussmarker"))
        d = gm.detect(keys["gaussmarker"], z)
        out["gaussmarker"] = (d.score, d.bit_acc, d.features or {})
    return out
