"""The scorecard: one line per benchmark row with its headline value, target and verdict.

Everything comes from the rows: each row carries its scenario's declared headlines, evaluated
when it ran (``row["headline"]``: metric, label, unit, target, value, reference, met). A row
written before headlines existed shows its first numeric metric with no target (``n/a``).
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from typing import Any

__all__ = [
    "COLUMNS",
    "WIDTHS",
    "format_value",
    "format_target",
    "row_headlines",
    "verdict",
    "scorecard_rows",
    "scorecard_lines",
    "system_summary",
]

COLUMNS = ("scenario", "headline", "value", "target", "verdict", "status")
# 79 columns with the single spaces between them: a scorecard line never wraps at 80.
WIDTHS = (23, 16, 9, 10, 10, 6)


def format_value(value: Any, unit: str = "") -> str:
    """A headline number, short: 4 significant digits, thousands separated above 10,000."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float):
        v = float(value)
        text = f"{v:,.0f}" if abs(v) >= 10_000 else f"{v:.4g}"
        return text + unit
    return str(value)


def format_target(h: dict[str, Any]) -> str:
    """``">= 10x"``, or ``"> 0.7262"`` where the reference is another metric of the row."""
    target = str(h.get("target") or "")
    if not target:
        return ""
    op, _, ref = target.partition(" ")
    try:
        float(ref)
        return f"{op} {format_value(float(ref), h.get('unit', ''))}"
    except ValueError:
        return f"{op} {format_value(h.get('reference'), h.get('unit', ''))}"


def row_headlines(row: dict[str, Any]) -> list[dict[str, Any]]:
    """The row's evaluated headlines; for a row without any, its first numeric metric."""
    declared = row.get("headline")
    if declared:
        return list(declared)
    for name, v in (row.get("metrics") or {}).items():
        value = v.get("value") if isinstance(v, dict) else v
        if isinstance(value, int | float) and not isinstance(value, bool):
            return [
                {
                    "metric": name,
                    "label": name,
                    "unit": "",
                    "target": "",
                    "value": value,
                    "reference": None,
                    "met": None,
                    "why": "",
                }
            ]
    return []


def verdict(row: dict[str, Any]) -> str:
    """``met`` when every target is met, ``missed`` when any is missed, else ``n/a``.

    Rows with several targets add how many were met: ``met 3/3``, ``missed 2/3``. A failed row,
    a row without targets or with a target it could not evaluate is ``n/a``.
    """
    if row.get("status") != "ok":
        return "n/a"
    targets = [h for h in row_headlines(row) if h.get("target")]
    if not targets:
        return "n/a"
    met = sum(h.get("met") is True for h in targets)
    word = (
        "missed"
        if any(h.get("met") is False for h in targets)
        else "met"
        if met == len(targets)
        else "n/a"
    )
    return word if len(targets) == 1 else f"{word} {met}/{len(targets)}"


def _shown(row: dict[str, Any]) -> dict[str, Any] | None:
    """The headline on the row's line: the first missed target, else the first headline."""
    hs = row_headlines(row)
    missed = [h for h in hs if h.get("target") and h.get("met") is False]
    return (missed or hs or [None])[0]


def _name(row: dict[str, Any]) -> str:
    seed = row.get("seed")
    return f"{row.get('scenario')}" + (f"#{seed}" if seed not in (0, None) else "")


def scorecard_rows(rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    """One dict per row, the cells of its scorecard line (unclipped)."""
    out = []
    for r in rows:
        h = _shown(r)
        ok = r.get("status") == "ok"
        if ok:
            headline = str(h.get("label") or h.get("metric")) if h else ""
            value = format_value(h.get("value"), h.get("unit", "")) if h else ""
            target = format_target(h) if h else ""
        else:
            headline, value, target = str(r.get("error") or "failed"), "", ""
        out.append(
            {
                "scenario": _name(r),
                "seed": str(r.get("seed")),
                "headline": headline,
                "value": value,
                "target": target,
                "verdict": verdict(r),
                "status": str(r.get("status")),
                "seconds": f"{float((r.get('timings') or {}).get('seconds') or 0.0):.1f}",
            }
        )
    return out


def _fit(text: str, width: int) -> str:
    """``text`` in ``width`` characters: first without its parenthesised asides, then cut."""
    text = " ".join(str(text).split())
    if len(text) > width:
        text = " ".join(re.sub(r"\s*\([^()]*\)", "", text).split()) or text
    return text if len(text) <= width else text[: width - 1] + "…"


def _fit_name(name: str, width: int) -> str:
    """A scenario name in ``width`` characters, shortening its system part first
    (``gaussm….nonce_diversity``): the part after the dot tells the rows apart."""
    system, dot, rest = name.partition(".")
    keep = width - len(rest) - 2
    if len(name) > width and dot and keep >= 3:
        return f"{system[:keep]}….{rest}"
    return _fit(name, width)


def scorecard_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The terminal scorecard: a header and one line per row, each at most 79 characters.

    A failed row's error takes the headline, value and target cells.
    """
    w = dict(zip(COLUMNS, WIDTHS, strict=True))
    span = w["headline"] + w["value"] + w["target"] + 2

    def line(c: dict[str, str], failed: bool = False) -> str:
        head = f"{_fit_name(c['scenario'], w['scenario']):<{w['scenario']}} "
        if failed:
            mid = f"{_fit(c['headline'], span):<{span}} "
        else:
            mid = (
                f"{_fit(c['headline'], w['headline']):<{w['headline']}} "
                f"{_fit(c['value'], w['value']):>{w['value']}} "
                f"{_fit(c['target'], w['target']):<{w['target']}} "
            )
        tail = (
            f"{_fit(c['verdict'], w['verdict']):<{w['verdict']}} {_fit(c['status'], w['status'])}"
        )
        return (head + mid + tail).rstrip()

    out = [line(dict(zip(COLUMNS, COLUMNS, strict=True)))]
    for r, c in zip(rows, scorecard_rows(rows), strict=True):
        out.append(line(c, failed=r.get("status") != "ok"))
    return out


def system_summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per system: rows, ok, failed, targets met / missed / n/a, wall seconds."""
    acc: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"rows": 0, "ok": 0, "failed": 0, "met": 0, "missed": 0, "n/a": 0, "seconds": 0.0}
    )
    for r in rows:
        s = acc[str(r.get("system", "?"))]
        s["rows"] += 1
        ok = r.get("status") == "ok"
        s["ok" if ok else "failed"] += 1
        s["seconds"] += float((r.get("timings") or {}).get("seconds") or 0.0)
        for h in row_headlines(r):
            if not h.get("target"):
                continue
            m = h.get("met") if ok else None
            s["met" if m is True else "missed" if m is False else "n/a"] += 1
    return [{"system": k, **v} for k, v in sorted(acc.items())]
