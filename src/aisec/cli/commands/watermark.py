"""``aisec watermark``: GaussMarker, Tree-Ring and Gaussian Shading for diffusion images.

keygen, generate, detect, train-gnr, train-ddpm, robustness. Keys are written 0600 and never
printed. Heavy libraries are imported inside the commands.
"""

from __future__ import annotations

import click

from aisec.cli.common import emit, format_option, set_option

METHOD_CHOICES = ["gaussmarker", "tree_ring", "gaussian_shading"]


def _log(msg: str) -> None:
    click.echo(msg, err=True)


@click.group("watermark")
def command() -> None:
    """Generation-time image watermarks: GaussMarker (ICML 2025), Tree-Ring, Gaussian Shading."""


backbone_option = click.option(
    "--backbone",
    default="ddpm-fmnist",
    show_default=True,
    help="Diffusion backbone: ddpm-fmnist (embedded), gmm-digits, stable-diffusion.",
)
model_option = click.option(
    "--model",
    default=None,
    help="Weights path (ddpm-fmnist) or hub id / local path (stable-diffusion).",
)


def _backbone(name: str, model: str | None):  # noqa: ANN202
    from aisec.provenance.pipeline import load_backbone

    if model is None:
        return load_backbone(name)
    return load_backbone(
        name, **({"weights": model} if name == "ddpm-fmnist" else {"model": model})
    )


@command.command("keygen")
@click.option(
    "--method", type=click.Choice(METHOD_CHOICES), default="gaussmarker", show_default=True
)
@click.option(
    "--out", "out", type=click.Path(dir_okay=False), required=True, help="Key file (0600)."
)
@click.option(
    "--demo",
    is_flag=True,
    help="Write the PUBLIC, INSECURE GaussMarker demo key (the benchmark key, seed 0), which the "
    "shipped GNR and fusers belong to: for trying the tool only, anyone can detect or forge it.",
)
@click.option("--force", is_flag=True, help="Overwrite an existing key file.")
@backbone_option
@model_option
@set_option
@format_option
def keygen(
    method: str,
    out: str,
    demo: bool,
    force: bool,
    backbone: str,
    model: str | None,
    overrides: tuple[str, ...],
    fmt: str,
) -> None:
    """Create a secret watermark key from the OS random source (or the public demo key)."""
    from pathlib import Path

    from aisec.config import apply_overrides, parse_overrides
    from aisec.errors import ConfigError
    from aisec.provenance.base import get_method
    from aisec.provenance.keys import DEMO_METHOD, demo_key, save_key
    from aisec.rng import SecureRandom

    if Path(out).exists() and not force:
        raise ConfigError(
            f"{out} exists; overwriting a key makes every image marked with it undetectable "
            "(pass --force to overwrite)"
        )
    params = apply_overrides({}, parse_overrides(overrides))
    if demo and (method != DEMO_METHOD or params):
        raise ConfigError(f"--demo writes the {DEMO_METHOD} demo key, with default parameters")
    m = get_method(method, **params)
    shape = _backbone(backbone, model).latent_shape
    key = demo_key(shape) if demo else m.keygen(shape, SecureRandom())
    path = save_key(key, out)
    info = {"key": str(path), "method": method, "latent_shape": list(shape), "mode": "0600"}
    if m.multibit:
        info["bits"] = m.n_bits(shape)
    if demo:
        info["insecure_demo"] = True
        _log(
            "warning: this is the PUBLIC demo key (seed published): anyone can detect and forge "
            "its mark; use it only to try the tool, never to mark images you publish"
        )
    emit(
        info,
        fmt,
        lambda d: click.echo(
            f"wrote {'PUBLIC DEMO ' if demo else ''}{d['method']} key to {d['key']} (mode 0600)"
        ),
    )


@command.command("generate")
@click.option(
    "--method",
    type=click.Choice(METHOD_CHOICES + ["none"]),
    default="gaussmarker",
    show_default=True,
    help="'none' generates clean images.",
)
@click.option("--key", "key_path", type=click.Path(dir_okay=False), default=None)
@click.option("--n", type=click.IntRange(1, 100000), default=8, show_default=True)
@click.option("--out", "out", type=click.Path(file_okay=False), required=True)
@click.option("--steps", type=click.IntRange(1, 1000), default=10, show_default=True)
@click.option("--seed", type=click.IntRange(0), default=None, help="Seed for |z| (default: fresh).")
@backbone_option
@model_option
@format_option
def generate_cmd(
    method: str,
    key_path: str | None,
    n: int,
    out: str,
    steps: int,
    seed: int | None,
    backbone: str,
    model: str | None,
    fmt: str,
) -> None:
    """Generate N (watermarked) images as PNG files."""
    import secrets
    from pathlib import Path

    from aisec.errors import ConfigError
    from aisec.provenance.base import get_method
    from aisec.provenance.imageio import write_png
    from aisec.provenance.keys import load_key
    from aisec.provenance.pipeline import generate
    from aisec.rng import torch_generator

    m = key = None
    if method != "none":
        if key_path is None:
            raise ConfigError("--key is required to generate watermarked images")
        key = load_key(key_path, method)
        m = get_method(method, **key.params)
    bb = _backbone(backbone, model)
    g = torch_generator(seed if seed is not None else secrets.randbits(62))
    res = generate(bb, m, key, n, g, steps)
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    files = [str(write_png(d / f"{method}_{i:05d}.png", im)) for i, im in enumerate(res.images)]
    emit(
        {"files": files, "method": method, "steps": steps},
        fmt,
        lambda r: click.echo(f"wrote {len(r['files'])} images to {out}"),
    )


@command.command("detect")
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--key", "key_path", type=click.Path(dir_okay=False), required=True)
@click.option(
    "--gnr",
    type=click.Path(dir_okay=False),
    default=None,
    help="GNR weights for this key (gaussmarker; a secret like the key), or 'shipped' for the one "
    "shipped for the key (the public demo key has one); default: none.",
)
@click.option(
    "--allow-readable-gnr",
    is_flag=True,
    help="Use a --gnr file that other users can read (refused by default: it reveals the key).",
)
@click.option(
    "--fuser",
    type=click.Path(dir_okay=False),
    default=None,
    help="Fuser for gaussmarker (default: the one shipped for the embedded backbone).",
)
@click.option("--fpr", type=click.FloatRange(1e-12, 0.5), default=0.01, show_default=True)
@click.option("--steps", type=click.IntRange(1, 1000), default=10, show_default=True)
@backbone_option
@model_option
@format_option
def detect_cmd(
    images: tuple[str, ...],
    key_path: str,
    gnr: str | None,
    allow_readable_gnr: bool,
    fuser: str | None,
    fpr: float,
    steps: int,
    backbone: str,
    model: str | None,
    fmt: str,
) -> None:
    """Detect the watermark in PNG/JPEG IMAGES: decision and score per image, and the decoded
    bits for images judged watermarked. An unreadable image is reported on its own line (a
    row with "error" in JSON) and the others are still judged; the exit status is then 1."""
    from aisec.provenance.detector import detect_files

    rows = detect_files(
        list(images),
        key_path,
        backbone=backbone,
        model=model,
        gnr=gnr,
        fuser=fuser,
        fpr=fpr,
        steps=steps,
        allow_readable_gnr=allow_readable_gnr,
    )
    if any(r.get("demo_key") for r in rows):
        _log("warning: the PUBLIC demo key: anyone can detect and forge its mark")

    def text(rs: list[dict]) -> None:
        for r in rs:
            if "error" in r:
                click.echo(f"{r['image']}: error: {r['error']}")
                continue
            bits = f" bits {r['bits']} bit_acc {r['bit_acc']:.3f}" if "bits" in r else ""
            click.echo(
                f"{r['image']}: {'WATERMARKED' if r['watermarked'] else 'not watermarked'}"
                f" score {r['score']:.4f} (threshold {r['threshold']:.4f}){bits}"
            )

    emit(rows, fmt, text)
    failed = sum("error" in r for r in rows)
    if failed:  # exit 1 (not 2: the command ran, and judged every readable image)
        from aisec.errors import AisecError

        raise AisecError(f"{failed} of {len(rows)} images could not be read (each listed above)")


@command.command("train-gnr")
@click.option("--key", "key_path", type=click.Path(dir_okay=False), required=True)
@click.option("--out", "out", type=click.Path(dir_okay=False), required=True)
@click.option("--steps", type=click.IntRange(1), default=4000, show_default=True)
@click.option("--nf", type=click.IntRange(4), default=16, show_default=True)
@click.option("--max-minutes", type=click.FloatRange(0.01), default=30.0, show_default=True)
@click.option(
    "--unshuffle",
    type=click.IntRange(0),
    default=2,
    show_default=True,
    help="Pixel-unshuffle factor of the backbone's latent (2: ddpm-fmnist; 0: SD VAE).",
)
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True)
@click.option(
    "--init",
    "init_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Continue training from this GNR (same key, nf and depth; fresh optimiser).",
)
@click.option(
    "--inverted",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    help="Also train on the inverted sign maps of this many watermarked samples of --backbone "
    "(3 edits each; 0: synthetic maps only, model-independent).",
)
@click.option(
    "--inverted-clean",
    type=click.IntRange(1),
    default=None,
    help="Clean samples for --inverted (default: twice --inverted).",
)
@click.option(
    "--data-seed",
    type=click.IntRange(0),
    default=9001,
    show_default=True,
    help="Generator seed of the --inverted samples; keep it apart from evaluation seeds.",
)
@click.option("--inversion-steps", type=click.IntRange(1), default=10, show_default=True)
@backbone_option
@model_option
@set_option
@format_option
def train_gnr_cmd(
    key_path: str,
    out: str,
    steps: int,
    nf: int,
    max_minutes: float,
    unshuffle: int,
    seed: int,
    init_path: str | None,
    inverted: int,
    inverted_clean: int | None,
    data_seed: int,
    inversion_steps: int,
    backbone: str,
    model: str | None,
    overrides: tuple[str, ...],
    fmt: str,
) -> None:
    """Train the Gaussian Noise Restorer for a GaussMarker / Gaussian Shading key (synthetic data)."""
    from aisec.cli.common import layered, split_flags
    from aisec.config import validate
    from aisec.errors import ConfigError
    from aisec.provenance.base import get_method
    from aisec.provenance.gnr import GNR, GNRConfig, train_gnr
    from aisec.provenance.keys import load_key

    key = load_key(key_path)
    if key.method not in ("gaussmarker", "gaussian_shading"):
        raise ConfigError(f"a GNR needs a gaussmarker or gaussian_shading key; got {key.method!r}")
    m = get_method(key.method, **key.params)
    # flag defaults < --set < flags given by the user
    given, defaults = split_flags(
        {"steps": steps, "nf": nf, "max_minutes": max_minutes, "unshuffle": unshuffle}
    )
    cfg = validate(GNRConfig, layered({}, overrides, given, defaults), "train-gnr")
    init = GNR.load(init_path) if init_path else None
    real = None
    if inverted:
        import numpy as np
        import torch

        from aisec.provenance.gnr import inverted_maps

        n_clean = inverted_clean or 2 * inverted
        _log(f"inverting {inverted} watermarked and {n_clean} clean samples (3 edits each)")
        threads = torch.get_num_threads()
        torch.set_num_threads(cfg.threads)
        try:
            real = inverted_maps(
                _backbone(backbone, model),
                m,
                key,
                inverted,
                n_clean,
                torch.Generator().manual_seed(data_seed),
                np.random.default_rng(data_seed),
                num_steps=inversion_steps,
            )
        finally:
            torch.set_num_threads(threads)
    gnr = train_gnr(m.encrypted_map(key), cfg, seed=seed, log=_log, init=init, real=real)
    path = gnr.save(out)
    emit(
        {"gnr": str(path), "fingerprint": gnr.fingerprint},
        fmt,
        lambda d: click.echo(
            f"wrote GNR to {d['gnr']} (mode 0600: a secret like the key; fingerprint "
            f"{d['fingerprint']})"
        ),
    )


@command.command("train-ddpm")
@click.option("--out", "out", type=click.Path(dir_okay=False), required=True)
@click.option("--dataset", default="fashion-mnist", show_default=True)
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True)
@set_option
@format_option
def train_ddpm_cmd(out: str, dataset: str, seed: int, overrides: tuple[str, ...], fmt: str) -> None:
    """Retrain the embedded DDPM (the shipped weights: defaults, ``--set train.steps=...``)."""
    from aisec.assets import load_dataset
    from aisec.config import apply_overrides, parse_overrides, validate
    from aisec.diffusion.pixel_ddpm import DDPMConfig, DDPMTrainConfig, train_ddpm

    o = apply_overrides({}, parse_overrides(overrides))
    cfg = validate(DDPMConfig, o.get("model", {}), "train-ddpm model")
    tr = validate(DDPMTrainConfig, o.get("train", {}), "train-ddpm train")
    unknown = set(o) - {"model", "train"}
    if unknown:
        from aisec.errors import ConfigError

        raise ConfigError(
            f"train-ddpm: unknown --set sections {sorted(unknown)}; use model./train."
        )
    x = load_dataset(dataset).x
    path = train_ddpm(x, out, cfg, tr, seed=seed, log=_log)
    emit({"weights": str(path)}, fmt, lambda d: click.echo(f"wrote DDPM weights to {d['weights']}"))


@command.command("robustness")
@click.argument("recipe", required=False, type=click.Path(dir_okay=False))
@click.option("--out", "out", type=click.Path(file_okay=False), required=True)
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True)
@click.option(
    "--key",
    "key_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Use this key for its method (e.g. a GaussMarker key): the fusers written to --out are "
    "fitted and calibrated for it, for `detect --fuser`. Default: keys drawn from --seed.",
)
@set_option
@format_option
def robustness_cmd(
    recipe: str | None,
    out: str,
    seed: int,
    key_path: str | None,
    overrides: tuple[str, ...],
    fmt: str,
) -> None:
    """Robustness of the four detectors under distortions (YAML RECIPE, defaults if omitted)."""
    from pathlib import Path

    from aisec.config import load_recipe
    from aisec.io import atomic_write_json
    from aisec.provenance.keys import load_key
    from aisec.provenance.robustness import RobustnessRecipe, run_robustness

    key = load_key(key_path) if key_path else None
    tr = (key.params.get("tr") if key.method == "gaussmarker" else key.params) if key else None
    if isinstance(tr, dict) and "pattern" in tr:  # the key's Tree-Ring pattern, unless set
        overrides = (f"tr_pattern={tr['pattern']}", *overrides)
    r = load_recipe(RobustnessRecipe, recipe, overrides)
    rep = run_robustness(r, seed=seed, log=_log, key=key)
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    atomic_write_json(d / "recipe.json", r.model_dump(mode="json"))
    atomic_write_json(
        d / "results.json",
        {
            "rows": rep.rows,
            "timings": rep.timings,
            "notes": rep.notes,
            "calibration": rep.calibration,
        },
    )
    for fuser in rep.fusers.values():  # reusable with `aisec watermark detect --fuser`
        suffix = "_gnr" if any(f.startswith("gnr_") for f in fuser.features) else ""
        fuser.save(d / f"fuser_{r.backbone}{suffix}.safetensors")

    def text(_: object) -> None:
        click.echo(
            f"{'method':18} {'distortion':15} {'strength':>8} {'auc':>6} {'tpr@1%':>6} "
            f"{'bit_acc':>7}"
        )
        for row in rep.rows:
            ba = f"{row['bit_acc']:.3f}" if "bit_acc" in row else "-"
            click.echo(
                f"{row['method']:18} {row['distortion']:15} {row['strength']:8g} "
                f"{row['auc']:6.3f} {row['tpr_at_1fpr']:6.3f} {ba:>7}"
            )
        click.echo(f"results in {d / 'results.json'}")

    emit({"rows": rep.rows, "timings": rep.timings}, fmt, text)
