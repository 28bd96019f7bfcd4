"""``aisec report RUN_DIR``: render the rows of a run into HTML and Markdown."""

from __future__ import annotations

import click

from aisec.cli.common import emit, format_option


@click.command("report")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--title", default=None, help="Page title.")
@format_option
def command(run_dir: str, title: str | None, fmt: str) -> None:
    """Render RUN_DIR/rows.jsonl into RUN_DIR/report.html (self-contained) and report.md."""
    from aisec.report import render_report

    html_path, md_path = render_report(run_dir, title=title)
    emit({"html": str(html_path), "markdown": str(md_path)}, fmt,
         lambda p: click.echo(f"report: {p['html']}\nsummary: {p['markdown']}"))
