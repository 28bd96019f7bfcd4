"""``aisec merge CONFIG.yaml --out DIR``: run a mergekit YAML with any method, mergekit's own
(task_arithmetic, ties, dare_ties, breadcrumbs, model_stock, ...) or ours (enchtable,
tsv_merge, resta, safelora). Inputs are checked first (names, shapes, tokenizer, shards) and
the output directory appears only when the merge succeeded."""

from __future__ import annotations

import json
from pathlib import Path

import click

from aisec.cli.common import emit, format_option


@click.command()
@click.argument("config", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Replace --out when it exists.")
@format_option
def command(config: Path, out: Path, force: bool, fmt: str) -> None:
    """Run a mergekit YAML (mergekit's methods and EnchTable's)."""
    from aisec.safety.enchtable.merge import run_merge_yaml

    r = run_merge_yaml(config, out, overwrite=force)
    res = {
        "out": str(r.out_dir),
        "method": r.method,
        "parameters": r.parameters,
        "merge_seconds": r.merge_seconds,
        "merge_peak_rss_gb": r.peak_rss_gb,
    }
    emit(
        res,
        fmt,
        lambda d: click.echo(
            f"{d['method']} -> {d['out']} ({d['merge_seconds']:.1f} s; parameters "
            f"{json.dumps(d['parameters'])})"
        ),
    )
