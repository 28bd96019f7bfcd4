"""``aisec videomark``: VideoMarkBench, video watermarks under removal and forgery.

embed, detect, attack, bench, train (the learned ``hidden`` and ``segmark`` methods). Videos are mp4/webm/mkv/avi files or folders of frame images,
read through PyAV. The key file holds the secret message; it is written 0600 and never printed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from aisec.cli.common import emit, executor_options, format_option, set_option


def _log(msg: str) -> None:
    click.echo(msg, err=True)


def _method(name: str, threads: int, weights: str | None = None) -> Any:
    from aisec.errors import ParameterError
    from aisec.provenance.video import get_video_method
    from aisec.provenance.video.learned import LearnedVideoWatermark

    m = get_video_method(name, threads=threads)
    if weights is not None:
        if not isinstance(m, LearnedVideoWatermark):
            raise ParameterError("--weights", "applies only to the learned methods", name)
        m = get_video_method(name, threads=threads, weights=weights)
    return m


def _load_key(path: str) -> Any:
    from aisec.io import read_user_text
    from aisec.provenance.video import VideoKey

    text = read_user_text(path)
    try:
        data = json.loads(text)
    except ValueError:
        from aisec.errors import InputFileError

        raise InputFileError(path, "is not JSON (expected a video watermark key)") from None
    return VideoKey.from_dict(data, where=str(path))


@click.group("videomark")
def command() -> None:
    """VideoMarkBench: embed and detect per-frame video watermarks; attack and benchmark them."""


method_option = click.option(
    "--method", default="rivagan", show_default=True, help="Registered video watermark."
)
threads_option = click.option(
    "--threads", type=int, default=1, show_default=True, help="onnxruntime / torch CPU threads."
)
weights_option = click.option(
    "--weights",
    type=click.Path(),
    default=None,
    help="Weights of a learned method (hidden, segmark); default: the shipped ones.",
)
frames_option = click.option(
    "--frames", type=int, default=None, help="Read at most this many frames (default: all)."
)
size_option = click.option(
    "--size", type=int, default=None, help="Resize frames to SIZE x SIZE while reading."
)


def emit_detections(res: dict[str, Any], fmt: str) -> None:
    """Print a detection batch (one line a video, failed files last); exit 1 when any failed."""

    def text(r: dict[str, Any]) -> None:
        for d in r["results"]:
            verdict = "WATERMARKED" if d["watermarked"] else "not watermarked"
            click.echo(
                f"{d['input']}: {verdict} ({d['rule']}; {d['frames']} frames, "
                f"mean bit accuracy {d['bit_accuracy']:.3f})"
            )
        for f in r["failed"]:
            click.echo(f"{f['input']}: FAILED ({f['error']})")

    emit(res, fmt, text)
    if res["failed"]:
        raise SystemExit(1)


@command.command("embed")
@click.argument("video", type=click.Path())
@click.argument("out", type=click.Path())
@click.option(
    "--key",
    "key_path",
    required=True,
    type=click.Path(),
    help="Key file; created (0600, random message) when it does not exist.",
)
@method_option
@weights_option
@frames_option
@size_option
@threads_option
@format_option
def embed_cmd(
    video: str,
    out: str,
    key_path: str,
    method: str,
    weights: str | None,
    frames: int | None,
    size: int | None,
    threads: int,
    fmt: str,
) -> None:
    """Watermark VIDEO into OUT (.mkv: lossless FFV1; .mp4: H.264 CRF 18)."""
    import numpy as np

    from aisec.io import dumps_json, write_private
    from aisec.perturb.video import video_quality
    from aisec.provenance.video.clips import read_video, write_video

    m = _method(method, threads, weights)
    if Path(key_path).exists():
        key = _load_key(key_path)
        m.check_key(key)
        created = False
    else:
        from aisec.rng import SecureRandom

        key = m.keygen(np.random.default_rng(SecureRandom().randbits(64)))
        write_private(key_path, dumps_json(key.to_dict()).encode())
        created = True
    x = read_video(video, max_frames=frames, size=size)
    y = m.embed(x, key)
    write_video(out, y, lossless=Path(out).suffix.lower() != ".mp4")
    q = video_quality(x, y, np.arange(len(x)))
    res = {
        "input": video,
        "output": out,
        "method": method,
        "frames": len(x),
        "key_created": created,
        "psnr": q["psnr"],
        "ssim": q["ssim"],
    }
    emit(
        res,
        fmt,
        lambda r: click.echo(
            f"{r['output']}: {r['frames']} frames watermarked with {r['method']} "
            f"(PSNR {r['psnr']:.1f} dB, SSIM {r['ssim']:.3f})"
            + ("; new key written to " + key_path if created else "")
        ),
    )


@command.command("detect")
@click.argument("videos", nargs=-1, required=True, type=click.Path())
@click.option("--key", "key_path", required=True, type=click.Path(exists=True))
@click.option(
    "--rule",
    default="detection_threshold",
    show_default=True,
    help="Aggregation rule for the verdict (all seven are reported).",
)
@method_option
@weights_option
@frames_option
@size_option
@threads_option
@format_option
def detect_cmd(
    videos: tuple[str, ...],
    key_path: str,
    rule: str,
    method: str,
    weights: str | None,
    frames: int | None,
    size: int | None,
    threads: int,
    fmt: str,
) -> None:
    """Detect the watermark in each of VIDEOS; a file that fails is reported, the rest go on."""
    from aisec.errors import AisecError, ParameterError
    from aisec.provenance.video import RULES, aggregate_all
    from aisec.provenance.video.aggregation import frame_bit_accuracy
    from aisec.provenance.video.clips import read_video

    if rule not in RULES:
        raise ParameterError("--rule", f"must be one of {', '.join(RULES)}", rule)
    m = _method(method, threads, weights)
    key = _load_key(key_path)
    msg = m.check_key(key)
    results, failed = [], []
    for v in videos:
        try:
            x = read_video(v, max_frames=frames, size=size)
            logits = m.detect(x)
        except AisecError as e:
            failed.append({"input": v, "error": str(e)})
            continue
        agg = aggregate_all(logits, msg)
        results.append(
            {
                "input": v,
                "frames": len(x),
                "watermarked": agg[rule]["flag"],
                "rule": rule,
                "bit_accuracy": float(frame_bit_accuracy(logits, msg).mean()),
                "rules": {r: a["flag"] for r, a in agg.items()},
            }
        )
    emit_detections({"method": method, "results": results, "failed": failed}, fmt)


@command.command("attack")
@click.argument("video", type=click.Path())
@click.argument("out", type=click.Path())
@click.option("--perturbation", required=True, help="A registered video perturbation.")
@click.option("--strength", type=float, required=True)
@click.option("--seed", type=int, default=0, show_default=True)
@frames_option
@size_option
@format_option
def attack_cmd(
    video: str,
    out: str,
    perturbation: str,
    strength: float,
    seed: int,
    frames: int | None,
    size: int | None,
    fmt: str,
) -> None:
    """Apply one no-box perturbation to VIDEO and write OUT (lossless unless .mp4)."""
    import numpy as np

    from aisec.perturb.video import perturb_video, video_quality
    from aisec.provenance.video.clips import read_video, write_video

    x = read_video(video, max_frames=frames, size=size)
    y, kept = perturb_video(x, perturbation, strength, np.random.default_rng(seed))
    write_video(out, y, lossless=Path(out).suffix.lower() != ".mp4")
    q = video_quality(x, y, kept)
    res = {
        "input": video,
        "output": out,
        "perturbation": perturbation,
        "strength": strength,
        "frames_in": len(x),
        "frames_out": len(y),
        **q,
    }
    emit(
        res,
        fmt,
        lambda r: click.echo(
            f"{r['output']}: {r['perturbation']} {r['strength']:g} -> {r['frames_out']} frames "
            f"(PSNR {r['psnr']:.1f} dB, SSIM {r['ssim']:.3f})"
        ),
    )


@command.command("bench")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(),
    help="Folder for cells.jsonl (resumable: finished cells are skipped).",
)
@method_option
@click.option("--clips-per-video", type=int, default=2, show_default=True)
@click.option("--frames", type=int, default=8, show_default=True, help="Frames per clip.")
@click.option("--size", type=int, default=128, show_default=True)
@click.option(
    "--skip",
    type=int,
    default=24,
    show_default=True,
    help="Leading frames of each source video to skip.",
)
@click.option(
    "--pan-zoom",
    type=int,
    default=0,
    show_default=True,
    help="Also this many synthetic pan-and-zoom clips over real photos.",
)
@click.option(
    "--perturbation",
    "perturbations",
    multiple=True,
    help="Only these perturbations (default: all eight).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@executor_options()
@threads_option
@format_option
def bench_cmd(
    out_dir: str,
    method: str,
    clips_per_video: int,
    frames: int,
    size: int,
    skip: int,
    pan_zoom: int,
    perturbations: tuple[str, ...],
    seed: int,
    ray: str | None,
    workers: int,
    threads: int,
    fmt: str,
) -> None:
    """The no-box removal/forgery grid on the embedded clips (FNR and FPR per rule)."""
    import numpy as np

    from aisec.bench.cells import Executor
    from aisec.bench.scenarios.videomark import run_grid
    from aisec.errors import ParameterError
    from aisec.provenance.video.benchmark import NOBOX_GRID, flatten
    from aisec.provenance.video.clips import pan_zoom_clips, real_clips

    for p in perturbations:
        if p not in NOBOX_GRID:
            raise ParameterError("--perturbation", f"must be one of {', '.join(NOBOX_GRID)}", p)
    grid = {p: NOBOX_GRID[p] for p in perturbations} if perturbations else NOBOX_GRID
    m = _method(method, threads)
    key = m.keygen(np.random.default_rng([seed, 17]))
    clips = real_clips(clips_per_video, frames, size, skip=skip)
    if pan_zoom:
        clips += pan_zoom_clips(pan_zoom, frames, size, seed=seed)
    rows = run_grid(
        m,
        key,
        clips,
        grid,
        Path(out_dir) / "cells.jsonl",
        seed=seed,
        progress=lambda f, c: _log(f"[{f:4.0%}] {c}"),
        executor=Executor(workers=workers, ray=ray),
    )
    flat = flatten(rows)

    def text(recs: list[dict[str, Any]]) -> None:
        click.echo(
            f"{'perturbation':<15}{'strength':>9}{'rule':>21}{'FNR':>7}{'FPR':>7}"
            f"{'PSNR':>7}{'SSIM':>7}"
        )
        for r in recs:
            click.echo(
                f"{r['perturbation']:<15}{r['strength']:>9g}{r['aggregation']:>21}"
                f"{r['fnr']:>7.2f}{r['fpr']:>7.2f}{r['psnr']:>7.1f}{r['ssim']:>7.3f}"
            )

    emit(flat, fmt, text)


@command.command("train")
@click.option(
    "--method",
    type=click.Choice(["hidden", "segmark"]),
    required=True,
    help="hidden: per frame (StegaStamp/HiDDeN style); segmark: segments of frames (3D convs).",
)
@click.option("--out", "out_path", required=True, type=click.Path(), help="Weights (.safetensors).")
@click.option("--steps", type=int, default=None, help="Training steps (default: the recipe's).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--max-minutes", type=float, default=None, help="Stop after this long (the weights are kept)."
)
@set_option
@format_option
def train_cmd(
    method: str,
    out_path: str,
    steps: int | None,
    seed: int,
    max_minutes: float | None,
    overrides: tuple[str, ...],
    fmt: str,
) -> None:
    """Train a learned video watermark on the embedded clips and photos (CPU) into OUT.

    The shipped weights were made by this command; the file records its recipe and command.
    """
    import shlex
    import sys

    from aisec.cli.common import layered
    from aisec.config import validate
    from aisec.provenance.video.learned import DEFAULT_RECIPES, LearnedConfig, train_learned

    data = layered(DEFAULT_RECIPES[method], overrides, {"steps": steps})
    cfg = validate(LearnedConfig, data, where=f"videomark train --method {method}")
    cmd = "aisec videomark " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    _, summary = train_learned(
        method, cfg, seed=seed, out=out_path, log=_log, max_minutes=max_minutes, command=cmd
    )
    res = {"method": method, "out": out_path, "seed": seed, **summary}
    emit(
        res,
        fmt,
        lambda r: click.echo(
            f"{r['out']}: {r['method']} trained {r['steps']:.0f} steps in {r['seconds']:.0f} s "
            f"(bit accuracy after the noise layer {r['train_bit_acc']:.3f}, "
            f"PSNR {r['train_psnr']:.1f} dB at the working size)"
        ),
    )


from aisec.cli.commands._videoshield import shield as _shield  # noqa: E402 - in-generation method

command.add_command(_shield)
