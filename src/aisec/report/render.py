"""Render ``RUN_DIR/rows.jsonl`` into ``report.html`` (tables, embedded plots) and ``report.md``.

Everything comes from the rows: a report can be rebuilt on any machine from the JSONL file.
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aisec.bench.runner import latest_rows, read_rows
from aisec.errors import InputFileError
from aisec.io import atomic_write_text
from aisec.report.scorecard import format_target, format_value, scorecard_rows
from aisec.report.scorecard import system_summary as summarize

__all__ = ["render_report", "format_metric"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1200px;
color:#1d2733;padding:0 1rem}
h1{font-size:1.6rem}h2{border-bottom:2px solid #d8dee6;padding-bottom:.2rem;margin-top:2.2rem}
h3{font-size:1.05rem;margin-top:1.4rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.86rem}
th,td{border:1px solid #d8dee6;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f1f4f8}.ok{color:#137333;font-weight:600}.error{color:#b3261e;font-weight:600}
.note{color:#5f6b7a;font-size:.85rem}.fig{display:inline-block;margin:.4rem}
img{max-width:560px;border:1px solid #e3e8ee}code{background:#f1f4f8;padding:0 .2rem}
"""

# Marks the page as rendered and counts script errors; the browser test reads both.
_JS = """
window.__aisecErrors=0;window.addEventListener('error',function(){window.__aisecErrors++;});
document.addEventListener('DOMContentLoaded',function(){var b=document.body;
b.setAttribute('data-rendered','1');b.setAttribute('data-errors',String(window.__aisecErrors));
b.setAttribute('data-images',String(document.images.length));});
"""


def format_metric(value: Any) -> str:
    """A metric for a table: rates as ``value [low, high]``, floats with 4 significant digits."""
    if isinstance(value, dict) and "value" in value:
        v, lo, hi = value.get("value"), value.get("ci_low"), value.get("ci_high")
        if v is None:
            return "n/a"
        if lo is None or hi is None:
            return f"{v:.4g}"
        return f"{v:.4g} [{lo:.3g}, {hi:.3g}]"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None:
        return "n/a"
    return str(value)


def _metric_names(rows: list[dict[str, Any]], key: str = "metrics") -> list[str]:
    names: list[str] = []
    for r in rows:
        for k in r.get(key) or {}:
            if k not in names:
                names.append(k)
    return names


def _figure(series: list[dict[str, Any]], title: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.6, 3.6), dpi=100)
    try:
        kinds = {s.get("kind", "line") for s in series}
        if kinds == {"bar"}:
            width = 0.8 / max(len(series), 1)
            for i, s in enumerate(series):
                xs = [j + i * width for j in range(len(s["x"]))]
                ax.bar(xs, s["y"], width=width, label=s.get("label") or None)
                ticks = s.get("xticklabels") or [f"{v:g}" for v in s["x"]]
                ax.set_xticks([j + width * (len(series) - 1) / 2 for j in range(len(s["x"]))])
                ax.set_xticklabels(ticks, fontsize=7, rotation=45, ha="right")
        else:
            for s in series:
                style = "o" if s.get("kind") == "scatter" else "-o"
                ax.plot(s["x"], s["y"], style, markersize=3, label=s.get("label") or None)
        first = series[0]
        ax.set_xlabel(first.get("xlabel", "x"))
        ax.set_ylabel(first.get("ylabel", "y"))
        if first.get("logx"):
            ax.set_xscale("log")
        if first.get("logy"):
            ax.set_yscale("log")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        if any(s.get("label") for s in series):
            ax.legend(fontsize=7)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
    finally:
        plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _overview(rows: list[dict[str, Any]]) -> str:
    """Horizontal bars: wall time per row, red where the row failed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [f"{r.get('scenario')} #{r.get('seed')}" for r in rows]
    secs = [float((r.get("timings") or {}).get("seconds") or 0.0) for r in rows]
    colours = ["#2e7d32" if r.get("status") == "ok" else "#c62828" for r in rows]
    fig, ax = plt.subplots(figsize=(6.4, 0.8 + 0.28 * len(rows)), dpi=100)
    try:
        ax.barh(range(len(rows)), secs, color=colours)
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels(names, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("wall seconds (red: failed)")
        ax.set_title(f"wall time per row, {sum(secs):.0f} s in all", fontsize=9)
        ax.grid(alpha=0.3, axis="x")
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
    finally:
        plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _target_text(h: dict[str, Any]) -> str:
    """The target in full: ``>= 10x`` or ``> gaussian_shading.avg_tpr_at_1fpr (0.7262)``."""
    target = str(h.get("target") or "")
    if not target:
        return ""
    op, _, ref = target.partition(" ")
    try:
        float(ref)
    except ValueError:
        return f"{op} {ref} ({format_target(h).partition(' ')[2]})"
    return format_target(h)


def _table_html(header: list[str], body: list[list[str]]) -> str:
    h = "".join(f"<th>{html.escape(c)}</th>" for c in header)
    rows = []
    for r in body:
        cells = []
        for c in r:
            cls = (
                ' class="ok"'
                if c == "ok" or c.startswith("met")
                else ' class="error"'
                if c == "error" or c.startswith("missed")
                else ""
            )
            cells.append(f"<td{cls}>{html.escape(c)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{h}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _table_md(header: list[str], body: list[list[str]]) -> str:
    def esc(c: str) -> str:
        return c.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(map(esc, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(esc, r)) + " |" for r in body]
    return "\n".join(lines)


def _breakdown_table(breakdown: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    labels = _metric_names(breakdown, "labels")
    metrics = _metric_names(breakdown, "metrics")
    body = []
    for b in breakdown:
        body.append(
            [str((b.get("labels") or {}).get(k, "")) for k in labels]
            + [format_metric((b.get("metrics") or {}).get(k)) for k in metrics]
        )
    return labels + metrics, body


def _picture_html(run: Path, name: str, path: str) -> str:
    """A picture a scenario drew, embedded; a missing file is said, not skipped."""
    file = Path(path) if Path(path).is_absolute() else run / path
    try:
        data = file.read_bytes()
    except OSError:
        return f"<p class='error'>picture {html.escape(name)!s} missing: {html.escape(path)}</p>"
    img = base64.b64encode(data).decode("ascii")
    return (
        f"<div class='fig'><p class='note'>{html.escape(name)}</p>"
        f"<img alt='{html.escape(name)}' src='data:image/png;base64,{img}'></div>"
    )


def render_report(run_dir: str | os.PathLike[str], title: str | None = None) -> tuple[Path, Path]:
    """Write ``report.html`` and ``report.md`` into ``run_dir``; returns both paths."""
    run = Path(run_dir)
    if not (run / "rows.jsonl").exists():
        raise InputFileError(run, "is not a run directory (no rows.jsonl)")
    rows = latest_rows(read_rows(run))
    if not rows:
        raise InputFileError(run / "rows.jsonl", "holds no rows")
    title = title or f"aisec benchmark report: {run.name}"
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    n_ok = sum(r.get("status") == "ok" for r in rows)

    by_system: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_system[str(r.get("system", "?"))].append(r)

    h: list[str] = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p class='note'>{len(rows)} rows, {n_ok} ok, "
        f"{len(rows) - n_ok} failed; rendered {now} from {html.escape(str(run))}/rows.jsonl</p>",
    ]
    md: list[str] = [
        f"# {title}",
        "",
        f"{len(rows)} rows, {n_ok} ok, {len(rows) - n_ok} failed; "
        f"rendered {now}. Plots: `report.html`.",
        "",
    ]

    # Scorecard: one line per row, its headline against its target.
    header = ["scenario", "headline", "value", "target", "verdict", "status", "seconds"]
    body = [[s[c] for c in header] for s in scorecard_rows(rows)]
    h += ["<h2>Scorecard</h2>", _table_html(header, body)]
    md += ["## Scorecard", "", _table_md(header, body), ""]

    header = ["system", "rows", "ok", "failed", "targets met", "missed", "n/a", "seconds"]
    body = [
        [
            str(s["system"]),
            str(s["rows"]),
            str(s["ok"]),
            str(s["failed"]),
            str(s["met"]),
            str(s["missed"]),
            str(s["n/a"]),
            f"{s['seconds']:.1f}",
        ]
        for s in summarize(rows)
    ]
    h += ["<h2>Per system</h2>", _table_html(header, body)]
    md += ["## Per system", "", _table_md(header, body), ""]

    img = _overview(rows)
    h.append(
        f"<div class='fig'><img alt='wall time per row' src='data:image/png;base64,{img}'></div>"
    )

    for system in sorted(by_system):
        srows = by_system[system]
        h.append(f"<h2>{html.escape(system)}</h2>")
        md += [f"## {system}", ""]
        for r in srows:
            name = f"{r.get('scenario')} (seed {r.get('seed')})"
            h.append(f"<h3>{html.escape(name)}</h3>")
            md += [f"### {name}", ""]
            if r.get("description"):
                h.append(f"<p>{html.escape(str(r['description']))}</p>")
            params = ", ".join(f"{k}={v}" for k, v in (r.get("params") or {}).items())
            h.append(
                f"<p class='note'>params: <code>{html.escape(params or '(none)')}</code>; "
                f"labels: {html.escape(str(r.get('labels') or {}))}</p>"
            )
            md.append(f"params: `{params or '(none)'}`")
            md.append("")
            if r.get("status") != "ok":
                h.append(f"<p class='error'>error: {html.escape(str(r.get('error')))}</p>")
                md += [f"**error**: {r.get('error')}", ""]
                continue
            heads = r.get("headline") or []
            if heads:
                hh = ["headline", "metric", "value", "target", "met", "target from"]
                hb = [
                    [
                        str(x.get("label") or x.get("metric")),
                        str(x.get("metric")),
                        format_value(x.get("value"), x.get("unit", "")),
                        _target_text(x),
                        {True: "met", False: "missed"}.get(x.get("met"), "n/a"),
                        str(x.get("why") or ""),
                    ]
                    for x in heads
                ]
                h.append(_table_html(hh, hb))
                md += [_table_md(hh, hb), ""]
            metrics = r.get("metrics") or {}
            if metrics:
                mh, mb = ["metric", "value"], [[k, format_metric(v)] for k, v in metrics.items()]
                h.append(_table_html(mh, mb))
                md += [_table_md(mh, mb), ""]
            if r.get("breakdown"):
                bh, bb = _breakdown_table(r["breakdown"])
                h.append(_table_html(bh, bb))
                md += [_table_md(bh, bb), ""]
            for note in r.get("notes") or []:
                h.append(f"<p class='note'>note: {html.escape(str(note))}</p>")
                md += [f"> note: {note}", ""]
            for iname, ipath in (r.get("images") or {}).items():
                h.append(_picture_html(run, str(iname), str(ipath)))
                md += [f"![{iname}]({ipath})", ""]
            for sname, series in (r.get("series") or {}).items():
                if not series or not any(s.get("x") for s in series):
                    continue
                img = _figure(series, f"{r.get('scenario')}: {sname}")
                h.append(
                    f"<div class='fig'><img alt='{html.escape(sname)}' "
                    f"src='data:image/png;base64,{img}'></div>"
                )

    page = (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style><script>{_JS}</script>"
        f"</head><body>{''.join(h)}</body></html>"
    )
    html_path = atomic_write_text(run / "report.html", page)
    md_path = atomic_write_text(run / "report.md", "\n".join(md) + "\n")
    return html_path, md_path
