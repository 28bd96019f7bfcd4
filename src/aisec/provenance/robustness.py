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

Methods: any registered image watermark (registry ``image watermark``), by default
``tree_ring``, ``gaussian_shading``, ``gaussmarker_nognr`` (fuser over GS bit accuracy and the ring
score) and ``gaussmarker`` (plus the GNR's margin; it needs a GNR for its key, and the run refuses
to start without one). Methods of one key family (the two GaussMarker variants) share the key,
the images and their inversions. Steps: prepare (backbone, methods, keys, GNR), generate, fit
the fusers, calibrate the deployed thresholds, then per condition distort, invert, score and
summarise into rows.
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
    import torch

    from aisec.provenance.base import Detection, LatentWatermark, WatermarkKey
    from aisec.provenance.fuser import Fuser
    from aisec.rng import CryptoRandom

__all__ = ["RobustnessRecipe", "RobustnessReport", "run_robustness", "EVAL_STRENGTHS", "METHODS"]

METHODS = ("tree_ring", "gaussian_shading", "gaussmarker_nognr", "gaussmarker")
SUPPORTED_ATTACKS = ("diffusion_regen", "compression_regen", "adversarial")
#: Key families are drawn from the key source in this order (then any other, sorted).
KEY_ORDER = ("gaussmarker", "tree_ring", "gaussian_shading")

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
    # how Tree-Ring keys are drawn ("rings": the reference's, and the benchmark key's until the
    # shipped fusers were fitted; "random": one value per frequency, the keygen default)
    tr_pattern: Literal["random", "rings"] = "random"
    # cross-key FPR: images marked under this many other keys (one image each, through the
    # model), scored with the run's key at its deployed threshold; 0 skips it
    n_cross: int = Field(0, ge=0)
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


@dataclass
class _Setup:
    """What every step of a run shares: the backbone, the methods and their keys."""

    recipe: RobustnessRecipe
    seed: int
    backbone: Any
    methods: dict[str, LatentWatermark]  # registered name -> instance (GNR attached if used)
    family: dict[str, str]  # registered name -> key family (methods of a family share a key)
    keys: dict[str, WatermarkKey]  # key family -> key
    gnr: Any
    attacks: dict[str, _AttackAdapter]  # the regeneration attacks of the recipe, built up front
    gen: torch.Generator
    log: Callable[[str], None]
    progress: Callable[[float, str], None]

    def families(self) -> list[str]:
        """The key families of the recipe's methods (one image set each), sorted."""
        return sorted(set(self.family.values()))

    def members(self, fam: str) -> list[str]:
        return [m for m in self.methods if self.family[m] == fam]

    def invert(self, images: np.ndarray) -> torch.Tensor:
        from aisec.provenance.pipeline import invert

        r = self.recipe
        return invert(self.backbone, images, r.steps, r.refine, r.batch)

    def generate(self, fam: str | None, n: int) -> np.ndarray:
        from aisec.provenance.pipeline import generate

        m = self.methods[self.members(fam)[0]] if fam else None
        k = self.keys[fam] if fam else None
        return generate(
            self.backbone, m, k, n, self.gen, self.recipe.steps, batch=self.recipe.batch
        ).images

    def detect(self, names: list[str], z: torch.Tensor) -> dict[str, Detection]:
        return {m: self.methods[m].detect(self.keys[self.family[m]], z) for m in names}


def run_robustness(
    recipe: RobustnessRecipe,
    seed: int = 0,
    crypto: CryptoRandom | None = None,
    progress: Callable[[float, str], None] | None = None,
    log: Callable[[str], None] | None = None,
    key: WatermarkKey | None = None,
) -> RobustnessReport:
    """Run the experiment (see module docstring).

    Args:
        recipe: what to run.
        seed: seed of the images, distortions, attacks and fits.
        crypto: source of the keys; defaults to a test source seeded with ``seed``.
        progress, log: callbacks.
        key: a user's key for one method family (a GaussMarker key file, say), used instead of a
            drawn key, so that the fitted fusers and calibrated thresholds belong to it.
    """
    import torch

    _check_recipe(recipe)
    threads = torch.get_num_threads()
    torch.set_num_threads(recipe.threads)  # restored below: the caller's setting is not ours
    try:
        return _run(recipe, seed, crypto, progress, log, key)
    finally:
        torch.set_num_threads(threads)


def _run(
    recipe: RobustnessRecipe,
    seed: int,
    crypto: CryptoRandom | None,
    progress: Callable[[float, str], None] | None,
    log: Callable[[str], None] | None,
    key: WatermarkKey | None,
) -> RobustnessReport:
    report = RobustnessReport()
    t0 = time.time()
    s = _prepare(recipe, seed, crypto, key, log, progress)
    s.progress(0.02, "generating")
    images = {"clean": s.generate(None, recipe.n)}
    for fam in s.families():
        images[fam] = s.generate(fam, recipe.n)
    report.timings["generate_s_per_image"] = (time.time() - t0) / (
        recipe.n * (1 + len(s.families()))
    )
    s.progress(0.1, "fitting the fusers")
    fusers, z_fit_clean = _fit_fusers(s, report)
    s.progress(0.14, "calibrating deployed thresholds")
    cal_thr = _calibrate(s, fusers, z_fit_clean, report)
    if recipe.n_heldout:
        s.progress(0.16, "measuring deployed FPR on held-out clean images")
        _heldout_fpr(s, cal_thr, report)
    if recipe.n_cross:
        s.progress(0.17, "measuring cross-key FPR")
        _cross_key_fpr(s, cal_thr, report)
    conditions = _conditions(recipe)
    det_time, det_count = 0.0, 0
    for ci, (dname, strength, main) in enumerate(conditions):
        s.progress(0.15 + 0.85 * ci / len(conditions), f"{dname} {strength:g}")
        ts = time.time()
        pos, neg, n_sets = _score_condition(s, images, ci, dname, strength)
        det_time += time.time() - ts
        det_count += recipe.n * n_sets
        for meth in s.methods:
            report.rows.append(
                _summarise(s, meth, (dname, strength, main), pos[meth], neg[meth], cal_thr, ci)
            )
            if main:
                from aisec.metrics import roc_curve

                fpr_c, tpr_c, _ = roc_curve(pos[meth].score, neg[meth].score)
                report.roc[f"{meth}/{dname}"] = (fpr_c.tolist(), tpr_c.tolist())
        s.log(
            f"{dname} {strength:g}: "
            + ", ".join(
                f"{r['method']} tpr {r['tpr_at_1fpr']:.2f}" for r in report.rows[-len(s.methods) :]
            )
        )
    report.timings["detect_s_per_image"] = det_time / max(det_count, 1)
    report.timings["total_s"] = time.time() - t0
    s.progress(1.0, "done")
    return report


# -- step 0: check the recipe before any work ---------------------------------------------------
def _check_recipe(recipe: RobustnessRecipe) -> None:
    import aisec.provenance  # noqa: F401  (registers every image watermark)
    from aisec.perturb.distortions import DISTORTIONS
    from aisec.provenance.base import IMAGE_WATERMARKS

    unknown = [m for m in recipe.methods if m not in IMAGE_WATERMARKS]
    if unknown:
        raise ConfigError(f"unknown methods {unknown}; valid: {IMAGE_WATERMARKS.names()}")
    for d in list(recipe.distortions) + list(recipe.sweep) + list(recipe.fit_sweep):
        DISTORTIONS.entry(d)  # one-line error listing valid names
    for a in recipe.attacks:
        if a not in SUPPORTED_ATTACKS:
            raise ConfigError(
                f"attack {a!r} is not supported by the robustness run {SUPPORTED_ATTACKS}"
            )


# -- step 1: backbone, methods, keys, GNR ------------------------------------------------------
def _method_params(family: str, recipe: RobustnessRecipe) -> dict[str, Any]:
    """The recipe's mark parameters for a key family (a parameter table, not behaviour)."""
    gs = {"hw_copy": recipe.gs_hw_copy}
    tr = {"radius": recipe.tr_radius, "channel": recipe.tr_channel, "pattern": recipe.tr_pattern}
    return {"gaussian_shading": gs, "tree_ring": tr, "gaussmarker": {"gs": gs, "tr": tr}}.get(
        family, {}
    )


def _prepare(
    recipe: RobustnessRecipe,
    seed: int,
    crypto: CryptoRandom | None,
    key: WatermarkKey | None,
    log: Callable[[str], None] | None,
    progress: Callable[[float, str], None] | None,
) -> _Setup:
    import torch

    from aisec.diffusion.backbone import require
    from aisec.perturb.attacks import ATTACKS
    from aisec.provenance.base import IMAGE_WATERMARKS, get_method
    from aisec.provenance.pipeline import load_backbone
    from aisec.rng import InsecureRandom

    log = log or (lambda s: None)
    family = {m: IMAGE_WATERMARKS.get(m).name for m in recipe.methods}
    if key is not None and key.method not in family.values():
        raise ConfigError(
            f"the key is for {key.method!r}, which no method of the recipe uses "
            f"({list(recipe.methods)})"
        )
    methods = {m: get_method(m, **_method_params(family[m], recipe)) for m in recipe.methods}
    if key is not None:
        for m in [m for m in methods if family[m] == key.method]:
            mark = {k: v for k, v in methods[m].params.model_dump().items() if k in key.params}
            if mark != key.params:
                raise ConfigError(
                    f"the key's parameters {key.params} differ from the recipe's {mark}; "
                    "set gs_hw_copy / tr_radius / tr_channel / tr_pattern to the key's"
                )
    users = [m for m in methods if methods[m].uses_gnr]
    if users and recipe.gnr is None:
        raise ConfigError(
            f"methods {users} detect with a GNR and the recipe sets gnr: null; give one with "
            "--set gnr=PATH (`aisec watermark train-gnr`) or run gaussmarker_nognr instead"
        )
    backbone = load_backbone(recipe.backbone, **recipe.backbone_args)
    needs = {"generate", "invert"}
    for a in recipe.attacks:
        needs |= set(ATTACKS.get(a).needs)
    if "adversarial" in recipe.attacks:
        needs.add("invert_differentiable")  # PGD differentiates through the inversion
    require(backbone, needs, "the robustness recipe")
    shape = backbone.latent_shape
    attacks = {
        a: _attack(a, v, backbone, seed) for a, v in recipe.attacks.items() if a != "adversarial"
    }
    if crypto is None:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            crypto = InsecureRandom(seed)
    # Keys are drawn in a fixed order (GaussMarker's first, so that seed 0 gives the key of the
    # shipped GNR), also for families the recipe leaves out, so a key does not depend on them.
    keys: dict[str, WatermarkKey] = {}
    for fam in [*KEY_ORDER, *sorted(set(family.values()) - set(KEY_ORDER))]:
        if key is not None and fam == key.method:
            methods_of = [m for m in methods if family[m] == fam]
            methods[methods_of[0]].check_key(key, shape)
            keys[fam] = key
            continue
        keys[fam] = get_method(fam, **_method_params(fam, recipe)).keygen(shape, crypto)
    gnr_fams = sorted({family[m] for m, obj in methods.items() if obj.uses_gnr})
    if len(gnr_fams) > 1:
        raise ConfigError(f"a run takes one GNR; methods of {gnr_fams} each need one")
    gnr = None
    if gnr_fams:
        kmap = methods[users[0]].encrypted_map(keys[gnr_fams[0]])
        gnr = _gnr_for(kmap, recipe.gnr, log)
        if gnr is None:
            raise ConfigError(
                f"methods {users} detect with a GNR and none is shipped for this key "
                f"(fingerprint {methods[users[0]].key_fingerprint(keys[gnr_fams[0]])}); give "
                "one with --set gnr=PATH (`aisec watermark train-gnr`) or run "
                "gaussmarker_nognr instead"
            )
        for m in users:
            methods[m].with_detector(gnr=gnr)
    return _Setup(
        recipe,
        seed,
        backbone,
        methods,
        family,
        keys,
        gnr,
        attacks,
        torch.Generator().manual_seed(seed),
        log,
        progress or (lambda f, m="": None),
    )


def _gnr_for(key_map: np.ndarray, spec: str | None, log: Callable[[str], None]) -> Any:
    """The GNR for an encrypted map: a path, the shipped one (None if none matches) or none."""
    from aisec.provenance.gnr import GNR, key_fingerprint

    if spec is None:
        return None
    fp = key_fingerprint(key_map)
    if spec == "shipped":
        path = Path(__file__).resolve().parent / "weights" / f"gnr_{fp}.safetensors"
        if not path.is_file():
            return None
    else:
        path = Path(spec)
    gnr = GNR.load(path)
    if gnr.fingerprint != fp:
        raise ConfigError(
            f"GNR {path} was trained for another key (fingerprint {gnr.fingerprint}, key {fp})"
        )
    return gnr


# -- step 2: fit the fusers on separate images under every distortion --------------------------
def _fit_fusers(s: _Setup, report: RobustnessReport) -> tuple[dict[str, Fuser], torch.Tensor]:
    """Fit a fuser for each method that fuses branch statistics; returns them and the inverted
    undistorted clean fitting images (the first part of the calibration set)."""
    from aisec.perturb.distortions import make_distortion
    from aisec.provenance.fuser import fit_fuser, fit_minimax_fuser

    r = s.recipe
    fused = [m for m in s.methods if s.methods[m].fusion_features]
    fams = sorted({s.family[m] for m in fused})
    fit_wm = {fam: s.generate(fam, r.n_fit) for fam in fams}
    fit_cl = s.generate(None, r.n_fit)
    conds = [("none", "none", 0.0)] + [(d, d, v) for d, v in r.distortions.items()]
    sweep = [(f"{d}@{v:g}", d, v) for d, vs in r.fit_sweep.items() for v in vs]
    pos: dict[str, dict[str, dict[str, np.ndarray]]] = {m: {} for m in fused}
    neg: dict[str, dict[str, dict[str, np.ndarray]]] = {m: {} for m in fused}
    z_clean0 = None
    for fi, (cond, d, strength) in enumerate(conds + sweep):
        # the fit_sweep conditions (small rotations) carry signal only through the GNR branch;
        # without it every branch is at chance there, and they would only add noise
        users = [m for m in fused if fi < len(conds) or s.methods[m].uses_gnr]
        if not users and fi >= len(conds):
            continue
        dist = make_distortion(d, strength) if d != "none" else None
        frng = np.random.default_rng([s.seed, 10_000 + fi])
        xw = {fam: dist.apply(fit_wm[fam], frng) if dist else fit_wm[fam] for fam in fams}
        zc = s.invert(dist.apply(fit_cl, frng) if dist else fit_cl)
        if d == "none":
            z_clean0 = zc
        for fam in sorted({s.family[m] for m in users}):
            names = [m for m in users if s.family[m] == fam]
            zw = s.invert(xw[fam])
            for m, det in s.detect(names, zw).items():
                pos[m][cond] = det.features or {}
            for m, det in s.detect(names, zc).items():
                neg[m][cond] = det.features or {}
    fusers: dict[str, Fuser] = {}
    for m in fused:
        feats = s.methods[m].fusion_features
        if r.fuser == "minimax":
            fusers[m], margin = fit_minimax_fuser(pos[m], neg[m], feats, r.fpr, seed=s.seed)
            report.calibration[f"{m}.fit_margin"] = margin
        else:
            pooled_p = {f: np.concatenate([pos[m][c][f] for c in pos[m]]) for f in feats}
            pooled_n = {f: np.concatenate([neg[m][c][f] for c in neg[m]]) for f in feats}
            fusers[m] = fit_fuser(pooled_p, pooled_n, feats, kind=r.fuser, seed=s.seed)
        s.methods[m].with_detector(gnr=s.gnr if s.methods[m].uses_gnr else None, fuser=fusers[m])
    assert z_clean0 is not None  # "none" is always the first condition
    return fusers, z_clean0


# -- step 3: deployed thresholds on clean images that are not evaluation images -----------------
def _calibrate(
    s: _Setup, fusers: dict[str, Fuser], z_fit_clean: torch.Tensor, report: RobustnessReport
) -> dict[str, float]:
    """Thresholds at the recipe's FPR on ``n_cal`` undistorted clean images (the clean fitting
    images and fresh ones); the fusers get them, with their key's fingerprint."""
    import dataclasses

    import torch

    from aisec.metrics.detection import threshold_at_fpr

    r = s.recipe
    z_cal = z_fit_clean
    extra = r.n_cal - r.n_fit
    if extra > 0:
        z_cal = torch.cat([z_cal, s.invert(s.generate(None, extra))])
    clean = s.detect(list(s.methods), z_cal)
    cal_thr = {m: threshold_at_fpr(clean[m].score, r.fpr) for m in s.methods}
    report.calibration["n_cal"] = int(len(z_cal))
    report.calibration["thresholds"] = dict(cal_thr)
    for m, f in fusers.items():
        obj = s.methods[m]
        fp = obj.key_fingerprint(s.keys[s.family[m]])
        fusers[m] = dataclasses.replace(
            f,
            threshold=cal_thr[m],
            key_fingerprint=fp,
            fpr=r.fpr,
            cal_scores=np.sort(np.asarray(clean[m].score, np.float64)),
        )
        obj.with_detector(gnr=s.gnr if obj.uses_gnr else None, fuser=fusers[m])
    report.fusers = dict(fusers)
    return cal_thr


def _heldout_fpr(s: _Setup, cal_thr: dict[str, float], report: RobustnessReport) -> None:
    """FPR of the deployed thresholds, and of the user-free ones, on further clean images."""
    from aisec.metrics.watermark import binomial_threshold

    r = s.recipe
    hs = s.detect(list(s.methods), s.invert(s.generate(None, r.n_heldout)))
    fpr_h = {m: float(np.mean(hs[m].score > cal_thr[m])) for m in s.methods}
    report.calibration["n_heldout"] = r.n_heldout
    report.calibration["heldout_fpr"] = fpr_h
    user_free: dict[str, float] = {}
    for m, obj in s.methods.items():
        key = s.keys[s.family[m]]
        if obj.multibit and hs[m].bit_acc is not None:
            # the binomial test on the bits the method decodes (GNR-restored for a GNR method:
            # there it is not a valid test, and this measures by how much)
            thr = binomial_threshold(obj.n_bits(key.latent_shape), r.fpr)
            user_free[f"{m}.bit_acc_binomial"] = float(np.mean(hs[m].bit_acc > thr))
        elif not obj.fusion_features:
            user_free[m] = float(np.mean(hs[m].score > obj.threshold(key, r.fpr)))
    report.calibration["heldout_fpr_user_free"] = user_free
    s.log(
        f"deployed FPR on {r.n_heldout} held-out clean images: {fpr_h}; "
        f"user-free thresholds: {user_free}"
    )


def _cross_key_fpr(s: _Setup, cal_thr: dict[str, float], report: RobustnessReport) -> None:
    """Rate at which the run's key, at its deployed threshold, flags images marked under
    ``n_cross`` other keys of its family (one image each, generated and inverted like every
    other image): a key must not detect another owner's mark more often than clean images."""
    import warnings

    import torch

    from aisec.provenance.pipeline import quantize
    from aisec.rng import InsecureRandom

    r = s.recipe
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        others = InsecureRandom(1_000_003 * (s.seed + 1))  # apart from the run's own key stream
    gen = torch.Generator().manual_seed(1_000_003 * (s.seed + 1))  # leaves s.gen's stream as is
    rates: dict[str, float] = {}
    for fam in s.families():
        maker = s.methods[s.members(fam)[0]]
        shape = s.keys[fam].latent_shape
        z = torch.cat([maker.embed(maker.keygen(shape, others), 1, gen) for _ in range(r.n_cross)])
        images = quantize(
            np.concatenate(
                [
                    s.backbone.generate(z[i : i + r.batch], r.steps)
                    for i in range(0, len(z), r.batch)
                ]
            )
        )
        det = s.detect(s.members(fam), s.invert(images))
        for m, d in det.items():
            rates[m] = float(np.mean(d.score > cal_thr[m]))
    report.calibration["n_cross"] = r.n_cross
    report.calibration["cross_key_fpr"] = rates
    s.log(f"cross-key FPR over {r.n_cross} other keys at FPR {r.fpr:g}: {rates}")


# -- step 4: distort, invert and score under each condition ------------------------------------
def _conditions(recipe: RobustnessRecipe) -> list[tuple[str, float, bool]]:
    """(distortion or attack, strength, main) in run order; sweep points are not main."""
    conditions: list[tuple[str, float, bool]] = [("none", 0.0, True)]
    conditions += [(d, s, True) for d, s in recipe.distortions.items()]
    conditions += [(a, s, True) for a, s in recipe.attacks.items()]
    for d, strengths in recipe.sweep.items():
        conditions += [
            (d, float(s), False)
            for s in strengths
            if not (d in recipe.distortions and float(s) == recipe.distortions[d])
        ]
    return conditions


def _score_condition(
    s: _Setup, images: dict[str, np.ndarray], ci: int, dname: str, strength: float
) -> tuple[dict[str, Detection], dict[str, Detection], int]:
    """Detections on the watermarked (per method) and clean images under one condition, and
    the number of image sets inverted."""
    from aisec.perturb.distortions import make_distortion

    r = s.recipe
    drng = np.random.default_rng([s.seed, ci])
    if dname == "adversarial":
        dist = None  # white-box: each method's own images against its own detector (below)
    elif dname in r.attacks:
        dist = s.attacks[dname]
    else:
        dist = make_distortion(dname, strength) if dname != "none" else None
    x = dist.apply(images["clean"], drng) if dist else images["clean"]
    neg = s.detect(list(s.methods), s.invert(x))
    pos: dict[str, Detection] = {}
    n_sets = 1
    for fam in s.families():
        members = s.members(fam)
        if dname == "adversarial":
            # PGD on the watermarked images only; clean images are untouched
            groups = [
                ([m], _pgd(strength, r.pgd_iters, s.backbone, s.methods[m], s.keys[fam], r.steps))
                for m in members
            ]
        else:
            groups = [(members, dist)]
        for names, d in groups:
            z = s.invert(d.apply(images[fam], drng) if d else images[fam])
            pos.update(s.detect(names, z))
            n_sets += 1
    return pos, neg, n_sets


# -- step 5: one row per (method, condition) ---------------------------------------------------
def _summarise(
    s: _Setup,
    meth: str,
    cond: tuple[str, float, bool],
    pos: Detection,
    neg: Detection,
    cal_thr: dict[str, float],
    ci: int,
) -> dict[str, Any]:
    from aisec.metrics import auc
    from aisec.metrics.watermark import empirical_tpr_at_fpr, tpr_fpr_at_threshold

    fpr = s.recipe.fpr
    sp, sn = pos.score, neg.score
    tpr, real_fpr, _ = empirical_tpr_at_fpr(sp, sn, fpr)
    row: dict[str, Any] = {
        "method": meth,
        "distortion": cond[0],
        "strength": cond[1],
        "main": cond[2],
        "auc": auc(sp, sn),
        "tpr_at_1fpr": tpr,
        "realized_fpr": real_fpr,
        "n_pos": len(sp),
        "n_neg": len(sn),
    }
    row["tpr_fixed"], row["fpr_fixed"] = tpr_fpr_at_threshold(sp, sn, cal_thr[meth])
    if pos.bit_acc is not None and neg.bit_acc is not None:
        row["bit_acc"] = float(np.mean(pos.bit_acc))
        row["bit_acc_clean"] = float(np.mean(neg.bit_acc))
    obj = s.methods[meth]
    if obj.fusion_features and pos.features and neg.features:
        # each branch of the fused detector alone, on the same images (fusion check)
        for feat in pos.features:
            row[f"tpr_{feat}"] = empirical_tpr_at_fpr(pos.features[feat], neg.features[feat], fpr)[
                0
            ]
            row[f"auc_{feat}"] = auc(pos.features[feat], neg.features[feat])
        fuser = getattr(obj, "fuser", None)
        if fuser is not None:
            used = {f: (pos.features[f], neg.features[f]) for f in fuser.features}
            row["fused_margin"], row["fused_margin_ci95"] = _fused_margin(
                (sp, sn), used, fpr, np.random.default_rng([s.seed, ci, 7])
            )
    return row


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
    method: LatentWatermark,
    key: WatermarkKey,
    steps: int,
) -> _AttackAdapter:
    """PGD (``aisec.perturb.attacks.Adversarial``) against a differentiable detector surrogate.

    The surrogate runs the same DDIM inversion with gradients and scores the recovered noise with
    the method's ``soft_score`` (for GaussMarker with a GNR that includes the GNR's margin, so
    the attacker lowers every statistic the fuser reads).
    """
    from aisec.diffusion.backbone import require
    from aisec.perturb.attacks import make_attack

    require(backbone, {"invert_differentiable"}, "PGD through the inversion")

    def score(images: torch.Tensor) -> torch.Tensor:
        return method.soft_score(key, backbone.invert_differentiable(images, steps))

    return _AttackAdapter(make_attack("adversarial", score, strength, iters=iters), 0)


def _attack(name: str, strength: float, backbone: Any, seed: int) -> _AttackAdapter:
    """A regeneration attack, built before any image work (a codec that cannot be fitted for
    the backbone's image size fails here, with a one-line error)."""
    from aisec.perturb.attacks import LinearAutoencoder, make_attack

    if name == "diffusion_regen":
        return _AttackAdapter(make_attack(name, backbone, strength), seed)
    if name == "compression_regen":
        import torch
        import torch.nn.functional as F

        from aisec.assets import load_dataset

        side = backbone.image_shape[0] if hasattr(backbone, "image_shape") else 32
        x = load_dataset("fashion-mnist", split="test").x[:2000].astype(np.float32) / 255.0
        if side >= x.shape[1]:  # Fashion-MNIST centred on a black canvas of the image size
            pad = (side - x.shape[1]) // 2
            canvas = np.zeros((len(x), 1, side, side), np.float32)
            canvas[:, 0, pad : pad + x.shape[1], pad : pad + x.shape[2]] = x
        else:  # smaller images: Fashion-MNIST shrunk to them
            small = F.interpolate(torch.from_numpy(x)[:, None], size=(side, side), mode="area")
            canvas = small.numpy()
        # per channel plane: the codec applies to each channel of RGB images
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
