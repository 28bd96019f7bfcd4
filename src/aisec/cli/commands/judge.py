"""``aisec judge RESPONSES.jsonl --judge J``: safety verdicts for stored responses.

Each input row (JSONL, or CSV with a header when the name ends in ``.csv``) holds ``prompt`` (or
``instruction``) and ``response``, and may hold ``id``; an optional boolean ``unsafe`` (or
``label`` = "safe"/"unsafe") makes the command report the judge's agreement (accuracy, F1,
Pearson) over the judged rows. Each verdict is ``safe``, ``unsafe`` or ``unjudged`` (the judge
could not reach one); rates leave unjudged rows out and report how many there were.

Verdicts go to ``--out`` as JSONL, one row per input row: its position ``row``, its own ``id``
(null when it has none), ``state``, ``unsafe`` (null when unjudged), ``score``, ``reason`` and
``run``, a fingerprint of everything that changes a verdict (judge, judge model for the LLM
judges, the embedding judge's weights, part, the input file's bytes, the verdict format). The
default file name carries that fingerprint, so a run with another part or judge model never
reads another run's verdicts; an ``--out`` holding another run's verdicts is refused. A run that
stops part-way resumes from the rows already written (:class:`aisec.io.JsonlStore`).
"""

from __future__ import annotations

from typing import Any

import click

from aisec.cli.common import emit, format_option

#: Bump when the verdict rows change meaning, so older files are not resumed.
VERDICT_FORMAT = 2


def _label(row: dict[str, Any]) -> bool | None:
    if isinstance(row.get("unsafe"), bool):
        return bool(row["unsafe"])
    lab = row.get("label")
    if isinstance(lab, str) and lab.strip().lower() in ("safe", "unsafe"):
        return lab.strip().lower() == "unsafe"
    return None


def _read(path: str) -> list[tuple[int, dict[str, Any]]]:
    """(line, row) for each input row; one-line errors name the file and the line."""
    from aisec.errors import InputFileError
    from aisec.io import iter_records

    rows = []
    for ln, row in iter_records(path):
        if not isinstance(row.get("response"), str):
            raise InputFileError(path, f"line {ln} has no string 'response'")
        if not isinstance(row.get("prompt", row.get("instruction")), str):
            raise InputFileError(path, f"line {ln} has no string 'prompt' or 'instruction'")
        rows.append((ln, row))
    if not rows:
        raise InputFileError(path, "holds no rows (expected JSONL with 'prompt' and 'response')")
    return rows


def _row_id(row: dict[str, Any]) -> Any:
    """The row's own id, or None when it has none (the position ``row`` always identifies it)."""
    rid = row.get("id")
    return None if rid is None or rid == "" else rid


def run_key(judge_name: str, judge_model: str, part: str, responses: str) -> dict[str, Any]:
    """Everything that changes a verdict of this run, and its fingerprint under ``"run"``."""
    import hashlib
    import inspect
    from pathlib import Path

    from aisec.io import fingerprint
    from aisec.judges import JUDGES

    params: dict[str, Any] = {
        "judge": judge_name,
        "part": part,
        "format": VERDICT_FORMAT,
        "input_sha256": hashlib.sha256(Path(responses).read_bytes()).hexdigest(),
    }
    if "model" in inspect.signature(JUDGES.get(judge_name)).parameters:
        params["judge_model"] = judge_model
    if judge_name == "embedding":
        from aisec.judges.embedding import WEIGHTS

        params["weights_sha256"] = hashlib.sha256(WEIGHTS.read_bytes()).hexdigest()
    params["run"] = fingerprint(params)
    return params


@click.command()
@click.argument("responses", metavar="RESPONSES.jsonl")
@click.option(
    "--judge",
    "judge_name",
    type=click.Choice(["refusal", "llama-guard", "strongreject", "embedding"]),
    default="refusal",
    show_default=True,
)
@click.option(
    "--judge-model",
    default="smollm2-135m-instruct",
    show_default=True,
    help="Model behind the LLM judges: name, path, hub id or URL#MODEL.",
)
@click.option(
    "--part",
    type=click.Choice(["response", "thought", "answer"]),
    default="response",
    show_default=True,
)
@click.option(
    "--out",
    "out_path",
    default=None,
    help="Verdicts JSONL (default RESPONSES.verdicts-J-RUN.jsonl, RUN the fingerprint of "
    "judge, judge model, part and input).",
)
@click.option(
    "--batch",
    "chunk",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Rows judged between two writes (resume granularity).",
)
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True)
@click.option(
    "--train-embedding",
    "train_out",
    default=None,
    metavar="WEIGHTS.safetensors",
    help="Instead of judging: fit the embedding judge on the labelled rows and save it.",
)
@format_option
def command(
    responses: str,
    judge_name: str,
    judge_model: str,
    part: str,
    out_path: str | None,
    chunk: int,
    threads: int,
    train_out: str | None,
    fmt: str,
) -> None:
    """Judge RESPONSES.jsonl with J; report agreement when rows carry labels."""
    from pathlib import Path

    from aisec.errors import InputFileError
    from aisec.io import JsonlStore
    from aisec.judges import agreement, make_judge

    lines_rows = _read(responses)
    rows = [r for _, r in lines_rows]
    if train_out is not None:
        from aisec.judges.embedding import train_embedding_judge

        labels = [_label(r) for r in rows]
        if any(lab is None for lab in labels):
            raise InputFileError(
                responses,
                "every row needs a label ('unsafe': bool or "
                "'label': safe|unsafe) to train the embedding judge",
            )
        path = train_embedding_judge(
            [r.get("prompt", r.get("instruction")) for r in rows],
            [r["response"] for r in rows],
            [bool(x) for x in labels],
            train_out,
        )
        emit(
            {"weights": str(path), "rows": len(rows)},
            fmt,
            lambda d: click.echo(f"embedding judge trained on {d['rows']} rows: {d['weights']}"),
        )
        return
    key = run_key(judge_name, judge_model, part, responses)
    out = Path(out_path or f"{responses}.verdicts-{judge_name}-{key['run']}.jsonl")
    store = JsonlStore(out, key="row")
    done = store.latest()
    foreign = next(
        (d for d in done.values() if not isinstance(d, dict) or d.get("run") != key["run"]), None
    )
    if foreign is not None:
        raise InputFileError(
            out,
            f"holds verdicts of another run (run {foreign.get('run')!r}, "
            f"this one {key['run']!r}: another judge, model, part or input); "
            "pass another --out or remove the file",
        )
    todo = [i for i in range(len(rows)) if i not in done]
    if todo:
        opts: dict[str, Any] = {}
        if "judge_model" in key:
            import torch

            torch.set_num_threads(threads)
            opts["model"] = judge_model
        judge = make_judge(judge_name, **opts)
        for start in range(0, len(todo), chunk):
            idx = todo[start : start + chunk]
            vs = judge.judge(
                [rows[i].get("prompt", rows[i].get("instruction")) for i in idx],
                [rows[i]["response"] for i in idx],
                part,
            )
            recs = [
                {
                    "row": i,
                    "id": _row_id(rows[i]),
                    "line": lines_rows[i][0],
                    "run": key["run"],
                    **v.to_dict(),
                }
                for i, v in zip(idx, vs, strict=True)
            ]
            store.append(recs)
            done.update({r["row"]: r for r in recs})
    verdicts = [done[i] for i in range(len(rows))]
    states = [d["state"] for d in verdicts]
    n_unsafe, n_safe = states.count("unsafe"), states.count("safe")
    n_judged = n_unsafe + n_safe
    result: dict[str, Any] = {
        "judge": judge_name,
        "part": part,
        "judge_model": key.get("judge_model"),
        "run": key["run"],
        "rows": len(rows),
        "judged": n_judged,
        "unsafe": n_unsafe,
        "safe": n_safe,
        "unjudged": len(rows) - n_judged,
        "unsafe_rate": n_unsafe / n_judged if n_judged else None,
        "verdicts": str(out),
    }
    labels = [_label(r) for r in rows]
    if all(lab is not None for lab in labels):
        a = agreement(
            [d["unsafe"] for d in verdicts],
            [bool(x) for x in labels],
            [d["score"] for d in verdicts],
        )
        result["agreement"] = a.to_dict()

    def num(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.3f}"

    def text(d: dict[str, Any]) -> None:
        click.echo(
            f"{d['judge']} on {d['part']}: {d['unsafe']}/{d['judged']} judged rows unsafe "
            f"({num(d['unsafe_rate'])}), {d['unjudged']} of {d['rows']} unjudged; "
            f"verdicts: {d['verdicts']}"
        )
        if "agreement" in d:
            a = d["agreement"]
            click.echo(
                f"agreement with labels: accuracy {num(a['accuracy'])}  F1 {num(a['f1'])}  "
                f"Pearson {num(a['pearson'])}  (n={a['n']} judged, {a['unjudged']} unjudged)"
            )

    emit(result, fmt, text)
