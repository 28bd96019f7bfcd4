"""``aisec judge RESPONSES.jsonl --judge J``: safety verdicts for stored responses.

Each input row holds ``prompt`` (or ``instruction``) and ``response``; an optional boolean
``unsafe`` (or ``label`` = "safe"/"unsafe") makes the command report the judge's agreement
(accuracy, F1, Pearson). Verdicts go to ``--out`` as JSONL (one row per input row, in order);
a run that stops part-way resumes from the rows already written.
"""

from __future__ import annotations

from typing import Any

import click

from aisec.cli.common import emit, format_option


def _label(row: dict[str, Any]) -> bool | None:
    if isinstance(row.get("unsafe"), bool):
        return bool(row["unsafe"])
    lab = row.get("label")
    if isinstance(lab, str) and lab.lower() in ("safe", "unsafe"):
        return lab.lower() == "unsafe"
    return None


def _read(path: str) -> list[dict[str, Any]]:
    from pathlib import Path

    from aisec.errors import InputFileError
    from aisec.io import iter_jsonl

    p = Path(path)
    rows = []
    for ln, row in iter_jsonl(p):
        if not isinstance(row, dict) or not isinstance(row.get("response"), str):
            raise InputFileError(p, f"line {ln} has no string 'response'")
        if not isinstance(row.get("prompt", row.get("instruction")), str):
            raise InputFileError(p, f"line {ln} has no string 'prompt' or 'instruction'")
        rows.append(row)
    if not rows:
        raise InputFileError(p, "holds no rows (expected JSONL with 'prompt' and 'response')")
    return rows


@click.command()
@click.argument("responses", metavar="RESPONSES.jsonl")
@click.option("--judge", "judge_name", type=click.Choice(["refusal", "llama-guard", "strongreject",
                                                         "embedding"]),
              default="refusal", show_default=True)
@click.option("--judge-model", default="smollm2-135m-instruct", show_default=True,
              help="Model behind the LLM judges: name, path, hub id or URL#MODEL.")
@click.option("--part", type=click.Choice(["response", "thought", "answer"]), default="response",
              show_default=True)
@click.option("--out", "out_path", default=None, help="Verdicts JSONL (default RESPONSES.verdicts-J.jsonl).")
@click.option("--batch", "chunk", type=int, default=16, show_default=True,
              help="Rows judged between two writes (resume granularity).")
@click.option("--threads", type=int, default=1, show_default=True)
@click.option("--train-embedding", "train_out", default=None, metavar="WEIGHTS.safetensors",
              help="Instead of judging: fit the embedding judge on the labelled rows and save it.")
@format_option
def command(responses: str, judge_name: str, judge_model: str, part: str, out_path: str | None,
            chunk: int, threads: int, train_out: str | None, fmt: str) -> None:
    """Judge RESPONSES.jsonl with J; report agreement when rows carry labels."""
    import json
    from pathlib import Path

    from aisec.judges import agreement, make_judge

    rows = _read(responses)
    if train_out is not None:
        from aisec.errors import InputFileError
        from aisec.judges.embedding import train_embedding_judge

        labels = [_label(r) for r in rows]
        if any(lab is None for lab in labels):
            raise InputFileError(responses, "every row needs a label ('unsafe': bool or "
                                 "'label': safe|unsafe) to train the embedding judge")
        path = train_embedding_judge([r.get("prompt", r.get("instruction")) for r in rows],
                                     [r["response"] for r in rows], [bool(x) for x in labels],
                                     train_out)
        emit({"weights": str(path), "rows": len(rows)}, fmt,
             lambda d: click.echo(f"embedding judge trained on {d['rows']} rows: {d['weights']}"))
        return
    out = Path(out_path or f"{responses}.verdicts-{judge_name}.jsonl")
    done: list[dict[str, Any]] = []
    if out.exists():
        for line in out.read_text(encoding="utf-8").splitlines():
            try:
                done.append(json.loads(line))
            except ValueError:
                break
    if len(done) < len(rows):
        opts: dict[str, Any] = {}
        if judge_name in ("llama-guard", "strongreject"):
            import torch

            torch.set_num_threads(max(1, threads))
            opts["model"] = judge_model
        judge = make_judge(judge_name, **opts)
        with open(out, "w" if not done else "a", encoding="utf-8") as fh:
            for start in range(len(done), len(rows), chunk):
                part_rows = rows[start : start + chunk]
                vs = judge.judge([r.get("prompt", r.get("instruction")) for r in part_rows],
                                 [r["response"] for r in part_rows], part)
                for r, v in zip(part_rows, vs, strict=True):
                    rec = {"id": r.get("id", start), "unsafe": v.unsafe, "score": v.score,
                           "reason": v.reason}
                    fh.write(json.dumps(rec) + "\n")
                    done.append(rec)
                fh.flush()
    done = done[: len(rows)]
    n_unsafe = sum(bool(d["unsafe"]) for d in done)
    result: dict[str, Any] = {"judge": judge_name, "part": part, "rows": len(rows),
                              "unsafe": n_unsafe, "unsafe_rate": n_unsafe / len(rows),
                              "verdicts": str(out)}
    labels = [_label(r) for r in rows]
    if all(lab is not None for lab in labels):
        a = agreement([d["unsafe"] for d in done], [bool(x) for x in labels],
                      [d["score"] for d in done])
        result["agreement"] = {"accuracy": a.accuracy, "f1": a.f1, "pearson": a.pearson, "n": a.n}

    def text(d: dict[str, Any]) -> None:
        click.echo(f"{d['judge']} on {d['part']}: {d['unsafe']}/{d['rows']} unsafe "
                   f"({d['unsafe_rate']:.3f}); verdicts: {d['verdicts']}")
        if "agreement" in d:
            a = d["agreement"]
            click.echo(f"agreement with labels: accuracy {a['accuracy']:.3f}  F1 {a['f1']:.3f}  "
                       f"Pearson {a['pearson']:.3f}  (n={a['n']})")

    emit(result, fmt, text)
