"""``aisec videomark shield``: the VideoShield-style in-generation watermark (a subgroup of
``aisec videomark``; the leading underscore keeps it off the top-level command list).

generate (a watermarked, or with ``--no-watermark`` an unwatermarked, clip from the embedded
DDPM), detect (DDIM inversion per frame, the seven aggregation rules), bench (the no-box grid on
generated clips; the white-box attack is in the ``videomark.videoshield`` bench row). There is no post-hoc embed: the
mark is written while the clip is generated. The key file holds the secret message (0600).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from aisec.cli.common import emit, executor_options, format_option


def _method(steps: int, gen_steps: int, templates: str, threads: int) -> Any:
    from aisec.provenance.video.videoshield import VideoShield

    return VideoShield(steps=steps, gen_steps=gen_steps, templates=templates, threads=threads)


def _load_key(path: str) -> Any:
    from aisec.errors import InputFileError
    from aisec.io import read_user_text
    from aisec.provenance.video import VideoKey

    try:
        data = json.loads(read_user_text(path))
    except ValueError:
        raise InputFileError(path, "is not JSON (expected a video watermark key)") from None
    return VideoKey.from_dict(data, where=str(path))


@click.group("shield")
def shield() -> None:
    """VideoShield-style in-generation watermark: generate marked clips, detect by inversion."""


steps_option = click.option(
    "--steps", type=int, default=10, show_default=True, help="DDIM inversion steps (detector)."
)
gen_steps_option = click.option(
    "--gen-steps", type=int, default=10, show_default=True, help="DDIM sampling steps."
)
templates_option = click.option(
    "--templates",
    type=click.Choice(["clip", "frame"]),
    default="clip",
    show_default=True,
    help="One template per clip, or VideoShield's per-frame templates (detect with the mode "
    "that generated the clip).",
)
threads_option = click.option("--threads", type=int, default=1, show_default=True)


@shield.command("generate")
@click.argument("out", type=click.Path())
@click.option(
    "--key",
    "key_path",
    required=True,
    type=click.Path(),
    help="Key file; created (0600, random message) when it does not exist.",
)
@click.option("--frames", type=int, default=8, show_default=True)
@click.option("--seed", type=int, default=None, help="Noise seed (default: fresh).")
@click.option("--no-watermark", is_flag=True, help="Generate an unwatermarked clip (same model).")
@steps_option
@gen_steps_option
@templates_option
@threads_option
@format_option
def generate_cmd(
    out: str,
    key_path: str,
    frames: int,
    seed: int | None,
    no_watermark: bool,
    steps: int,
    gen_steps: int,
    templates: str,
    threads: int,
    fmt: str,
) -> None:
    """Generate a clip into OUT (.mkv: lossless FFV1; .mp4: H.264 CRF 18; 32 x 32 frames)."""
    import numpy as np

    from aisec.io import dumps_json, write_private
    from aisec.provenance.video.clips import write_video
    from aisec.rng import SecureRandom

    m = _method(steps, gen_steps, templates, threads)
    created = False
    if Path(key_path).exists():
        key = _load_key(key_path)
        m.check_key(key)
    else:
        key = m.keygen(np.random.default_rng(SecureRandom().randbits(64)))
        write_private(key_path, dumps_json(key.to_dict()).encode())
        created = True
    s = SecureRandom().randbits(63) if seed is None else seed
    video = m.generate(None if no_watermark else key, frames, np.random.default_rng(s))
    write_video(out, video, lossless=Path(out).suffix.lower() != ".mp4")
    res = {
        "output": out,
        "frames": frames,
        "watermarked": not no_watermark,
        "key": key_path,
        "key_created": created,
        "seed": s,
        "templates": templates,
        "bits": m.bits,
    }
    emit(
        res,
        fmt,
        lambda r: click.echo(
            f"{r['output']}: {r['frames']} frames, "
            f"{'watermarked' if r['watermarked'] else 'NOT watermarked'} "
            f"({r['bits']} bits{', new key ' + r['key'] if r['key_created'] else ''})"
        ),
    )


@shield.command("detect")
@click.argument("videos", nargs=-1, required=True, type=click.Path())
@click.option("--key", "key_path", required=True, type=click.Path(exists=True))
@click.option(
    "--rule",
    default="detection_threshold",
    show_default=True,
    help="Aggregation rule for the verdict (all seven are reported).",
)
@click.option("--frames", type=int, default=None, help="Read at most this many frames.")
@steps_option
@templates_option
@threads_option
@format_option
def detect_cmd(
    videos: tuple[str, ...],
    key_path: str,
    rule: str,
    frames: int | None,
    steps: int,
    templates: str,
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
    m = _method(steps, 10, templates, threads)
    key = _load_key(key_path)
    m.bind(key)
    results, failed = [], []
    for v in videos:
        try:
            x = read_video(v, max_frames=frames)
            logits = m.detect(x)
        except AisecError as e:
            failed.append({"input": v, "error": str(e)})
            continue
        agg = aggregate_all(logits, key.message)
        ba = frame_bit_accuracy(logits, key.message)
        results.append(
            {
                "input": v,
                "frames": len(x),
                "watermarked": agg[rule]["flag"],
                "rule": rule,
                "bit_accuracy": float(ba.mean()),
                "frame_bit_accuracy": [float(b) for b in ba],
                "rules": {r: a["flag"] for r, a in agg.items()},
            }
        )
    from aisec.cli.commands.videomark import emit_detections

    emit_detections({"method": "videoshield", "results": results, "failed": failed}, fmt)


@shield.command("bench")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(),
    help="Folder for cells.jsonl (resumable: finished cells are skipped).",
)
@click.option("--clips", type=int, default=4, show_default=True, help="Clips per set.")
@click.option("--frames", type=int, default=8, show_default=True, help="Frames per clip.")
@click.option(
    "--perturbation",
    "perturbations",
    multiple=True,
    help="Only these perturbations (default: all eight, at the full row's two strengths).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@executor_options()
@steps_option
@gen_steps_option
@templates_option
@threads_option
@format_option
def bench_cmd(
    out_dir: str,
    clips: int,
    frames: int,
    perturbations: tuple[str, ...],
    seed: int,
    ray: str | None,
    workers: int,
    steps: int,
    gen_steps: int,
    templates: str,
    threads: int,
    fmt: str,
) -> None:
    """The no-box removal/forgery grid on generated clips (FNR and FPR per rule)."""
    import numpy as np

    from aisec.bench.cells import Executor
    from aisec.bench.scenarios.videoshield import FULL_GRID, shield_grid
    from aisec.errors import ParameterError
    from aisec.provenance.video.benchmark import flatten

    for p in perturbations:
        if p not in FULL_GRID:
            raise ParameterError("--perturbation", f"must be one of {', '.join(FULL_GRID)}", p)
    grid = {p: FULL_GRID[p] for p in perturbations} if perturbations else FULL_GRID
    m = _method(steps, gen_steps, templates, threads)
    key = m.keygen(np.random.default_rng([seed, 18]))
    rows = shield_grid(
        m,
        key,
        clips,
        frames,
        grid,
        str(Path(out_dir) / "cells.jsonl"),
        seed=seed,
        progress=lambda f, c: click.echo(f"[{f:4.0%}] {c}", err=True),
        executor=Executor(workers=workers, ray=ray),
    )
    flat = flatten(rows)

    def text(recs: list[dict[str, Any]]) -> None:
        click.echo(
            f"{'perturbation':<15}{'strength':>9}{'rule':>21}{'FNR':>7}{'FPR':>7}"
            f"{'PSNR':>7}{'BA':>7}"
        )
        for r in recs:
            click.echo(
                f"{r['perturbation']:<15}{r['strength']:>9g}{r['aggregation']:>21}"
                f"{r['fnr']:>7.2f}{r['fpr']:>7.2f}{r['psnr']:>7.1f}{r['bit_acc_wm']:>7.3f}"
            )

    emit(flat, fmt, text)
