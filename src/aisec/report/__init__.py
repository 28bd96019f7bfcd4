"""Reports rendered from benchmark rows alone: a self-contained HTML page, a Markdown summary and
the terminal scorecard (one line per row: headline value, target, met or missed)."""

from aisec.report.render import format_metric, render_report
from aisec.report.scorecard import scorecard_lines, scorecard_rows, system_summary

__all__ = ["render_report", "format_metric", "scorecard_lines", "scorecard_rows", "system_summary"]
