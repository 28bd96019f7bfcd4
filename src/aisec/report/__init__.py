"""Reports rendered from benchmark rows alone: a self-contained HTML page and a Markdown summary."""

from aisec.report.render import format_metric, render_report, scorecard_rows

__all__ = ["render_report", "format_metric", "scorecard_rows"]
