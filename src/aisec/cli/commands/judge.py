"""``aisec judge RESPONSES.jsonl --judge J``: safety verdicts for stored responses;
``aisec judge agreement LABELS.jsonl --judge J``: a judge's agreement with hand labels;
``aisec judge train-harm``: refit the shipped harm judge on the corpus (train/dev splits).

Each input row (JSONL, or CSV with a header when the name ends in ``.csv``) holds ``prompt`` (or
``instruction``) and ``response``, and may hold ``id``; an optional boolean ``unsafe`` (or
``label`` = "safe"/"unsafe") makes the command report the judge's agreement (accuracy, F1,
Pearson) over the judged rows. Each verdict is ``safe``, ``unsafe``, ``unjudged`` (the judge
could not reach one) or ``degenerate`` (nothing to judge); rates are over the judged rows
(safe or unsafe) and the others are counted apart.

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


class _JudgeGroup(click.Group):
    """``aisec judge FILE ...`` runs ``aisec judge run FILE ...`` (the original form)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_JudgeGroup)
def command() -> None:
    """Judge responses (run), measure a judge against labels (agreement), refit the harm judge.

    \b
    aisec judge RESPONSES.jsonl --judge harm
    aisec judge agreement LABELS.jsonl --judge harm
    aisec judge agreement --split test --judge refusal
    """


def _judge_names() -> list[str]:
    from aisec.judges import JUDGES

    return list(JUDGES.names())


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


def resolve_backend(judge_model: str, backend: str) -> str:
    """The backend an LLM judge's model will run on (``auto`` resolved as :func:`aisec.llm.load_lm`
    resolves it), so that a resumed run never mixes verdicts of two backends."""
    from aisec.llm.remote import parse_server_spec

    if backend != "auto":
        return backend
    if parse_server_spec(judge_model) is not None:
        return "remote"
    from aisec.llm.llamacpp import auto_backend

    return auto_backend(judge_model)[0]


def run_key(
    judge_name: str, judge_model: str, part: str, responses: str, backend: str = "auto"
) -> dict[str, Any]:
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
        params["judge_backend"] = resolve_backend(judge_model, backend)
    if judge_name in ("embedding", "harm", "harm-strict"):
        from aisec.judges.embedding import WEIGHTS
        from aisec.judges.harm import HARM_WEIGHTS

        w = WEIGHTS if judge_name == "embedding" else HARM_WEIGHTS
        params["weights_sha256"] = hashlib.sha256(w.read_bytes()).hexdigest()
    params["run"] = fingerprint(params)
    return params


@command.command("run")
@click.argument("responses", metavar="RESPONSES.jsonl")
@click.option(
    "--judge",
    "judge_name",
    type=click.Choice(_judge_names()),
    default="harm",
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
    "--backend",
    type=click.Choice(["auto", "llamacpp", "transformers", "remote"]),
    default="auto",
    show_default=True,
    help="What runs an LLM judge's model (auto: llama.cpp where its parity is measured).",
)
@click.option(
    "--train-embedding",
    "train_out",
    default=None,
    metavar="WEIGHTS.safetensors",
    help="Instead of judging: fit the embedding judge on the labelled rows and save it.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Run an LLM judge even when it fails its built-in sanity set.",
)
@format_option
def run_command(
    responses: str,
    judge_name: str,
    judge_model: str,
    part: str,
    out_path: str | None,
    chunk: int,
    threads: int,
    backend: str,
    train_out: str | None,
    force: bool,
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
    key = run_key(judge_name, judge_model, part, responses, backend)
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
    backend_reason: str | None = None  # None: no model loaded (no LLM judge, or nothing to do)
    if todo:
        opts: dict[str, Any] = {}
        if "judge_model" in key:
            import torch

            from aisec.llm import load_lm

            torch.set_num_threads(threads)
            lm = load_lm(judge_model, backend=key["judge_backend"], n_threads=threads)
            backend_reason = getattr(lm, "backend_reason", None)
            opts["model"] = lm
            opts["force"] = force
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
    n_degenerate = states.count("degenerate")
    result: dict[str, Any] = {
        "judge": judge_name,
        "part": part,
        "judge_model": key.get("judge_model"),
        "judge_backend": key.get("judge_backend"),
        "judge_backend_reason": backend_reason,
        "run": key["run"],
        "rows": len(rows),
        "judged": n_judged,
        "unsafe": n_unsafe,
        "safe": n_safe,
        "unjudged": len(rows) - n_judged - n_degenerate,
        "degenerate": n_degenerate,
        "unsafe_rate": n_unsafe / n_judged if n_judged else None,
        "rates_over": "judged rows (safe or unsafe); unjudged and degenerate left out",
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
            f"({num(d['unsafe_rate'])}), {d['unjudged']} unjudged and {d['degenerate']} "
            f"degenerate of {d['rows']} (left out of the rate); "
            f"verdicts: {d['verdicts']}"
        )
        if "agreement" in d:
            a = d["agreement"]
            click.echo(
                f"agreement with labels: accuracy {num(a['accuracy'])}  F1 {num(a['f1'])}  "
                f"Pearson {num(a['pearson'])}  (n={a['n']} judged, {a['unjudged']} unjudged)"
            )

    emit(result, fmt, text)


def _make(judge_name: str, judge_model: str, force: bool, threads: int) -> Any:
    import inspect

    from aisec.judges import JUDGES, make_judge

    opts: dict[str, Any] = {}
    params = inspect.signature(JUDGES.get(judge_name)).parameters
    if "model" in params:
        import torch

        torch.set_num_threads(threads)
        opts["model"] = judge_model
    if "force" in params:
        opts["force"] = force
    return make_judge(judge_name, **opts)


def _fmt_ci(ci: list[float] | None) -> str:
    return f"[{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "[n/a]"


def _print_report(d: dict[str, Any]) -> None:
    def num(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.3f}"

    click.echo(
        f"judge {d['judge']} on {d['source']} ({d['rows']} rows; labels: "
        + ", ".join(f"{k} {v}" for k, v in d["labels"].items())
        + ")"
    )
    click.echo("verdicts: " + ", ".join(f"{k} {v}" for k, v in d["states"].items()))
    if d.get("judge_standard"):
        other = "strict" if d["judge_standard"] == "lenient" else "lenient"
        click.echo(
            f"{d['judge']} aims at the {d['judge_standard']} standard; its {other} row measures "
            f"it against a standard it is not tuned for"
            + (" (use --judge harm-strict)" if d["judge"] == "harm" else "")
        )
    click.echo(
        f"{'standard':<9} {'n':>4} {'pos':>4} {'acc':>6} {'prec':>6} {'recall':>6} "
        f"{'kappa':>6} {'kappa 95% CI':>14} {'AUROC':>6} {'AUROC 95% CI':>14}"
    )
    for std in ("strict", "lenient"):
        k = d[std]
        click.echo(
            f"{std:<9} {k['n']:>4} {k['positives']:>4} {num(k['accuracy']):>6} "
            f"{num(k['precision']):>6} {num(k['recall']):>6} {num(k['kappa']):>6} "
            f"{_fmt_ci(k['ci']['kappa']):>14} {num(k['auroc']):>6} {_fmt_ci(k['ci']['auroc']):>14}"
        )
    click.echo("per prompt set (kappa strict / lenient, false-unsafe rate on safe-labelled rows):")
    for name, s in d["by_set"].items():
        click.echo(
            f"  {name:<13} n={s['rows']:<4} kappa {num(s['strict']['kappa'])} "
            f"{_fmt_ci(s['strict']['ci']['kappa'])} / {num(s['lenient']['kappa'])} "
            f"{_fmt_ci(s['lenient']['ci']['kappa'])}  false-unsafe {num(s['false_unsafe_rate'])}"
        )
    if d.get("by_origin"):
        click.echo("by origin (model responses vs written ones, kappa strict / lenient):")
    for name, s in d.get("by_origin", {}).items():
        click.echo(
            f"  {name + ' responses':<22} n={s['rows']:<4} kappa {num(s['strict']['kappa'])} "
            f"{_fmt_ci(s['strict']['ci']['kappa'])} / {num(s['lenient']['kappa'])} "
            f"{_fmt_ci(s['lenient']['ci']['kappa'])}  AUROC lenient {num(s['lenient']['auroc'])}"
        )
    click.echo(
        f"false 'unsafe' on benign look-alike prompts: {num(d['over_refusal_flag_rate'])} "
        f"(of {d['over_refusal_rows']})"
    )
    g = d["degenerate"]
    click.echo(
        f"degenerate: {g['labelled']} labelled, {g['called']} called "
        f"(precision {num(g['precision'])}, recall {num(g['recall'])})"
    )
    click.echo(
        "a judge's unjudged or degenerate verdict on a row a person judged counts as not "
        f"flagged ({d['strict']['no_verdict']} such rows)"
    )
    if d.get("label_reliability"):
        r = d["label_reliability"]
        for kind, what in (
            ("inter_annotator", "two annotators, blind"),
            ("retest", "same annotator, second blind pass"),
        ):
            if r.get(kind):
                s = r[kind]
                click.echo(
                    f"label reliability ({what}, {s['n']} rows): kappa {num(s['kappa_4way'])} "
                    f"(4 labels), {num(s['kappa_strict'])} strict, "
                    f"{num(s['kappa_lenient'])} lenient"
                )


@command.command("agreement")
@click.argument("labels_path", metavar="[LABELS.jsonl]", required=False)
@click.option(
    "--judge", "judge_name", type=click.Choice(_judge_names()), default="harm", show_default=True
)
@click.option("--judge-model", default="smollm2-135m-instruct", show_default=True)
@click.option(
    "--split",
    type=click.Choice(["train", "dev", "test", "all"]),
    default="test",
    show_default=True,
    help="Without LABELS.jsonl: which split of the shipped corpus.",
)
@click.option("--part", type=click.Choice(["response", "thought", "answer"]), default="response")
@click.option("--boot", type=click.IntRange(min=0), default=1000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--force", is_flag=True, help="Run an LLM judge that fails its sanity set.")
@format_option
def agreement_command(
    labels_path: str | None,
    judge_name: str,
    judge_model: str,
    split: str,
    part: str,
    boot: int,
    seed: int,
    threads: int,
    force: bool,
    fmt: str,
) -> None:
    """Agreement of judge J with hand labels: accuracy, precision, recall, Cohen's kappa and
    AUROC under the strict and lenient standards, with bootstrap intervals.

    LABELS.jsonl rows hold prompt, response and label (safe, attempted, unsafe, degenerate), and
    may hold id and set. Without it, the shipped corpus's --split (default: the frozen test split).
    """
    from aisec.judges.corpus import label_reliability, load_corpus, read_labels
    from aisec.judges.evaluate import agreement_report

    if labels_path is None:
        rows = load_corpus(None if split == "all" else split)
        source = f"shipped corpus ({', '.join(sorted({r['file'] for r in rows}))}) split {split}"
    else:
        rows = read_labels(labels_path)
        source = labels_path
    judge = _make(judge_name, judge_model, force, threads)
    d = agreement_report(judge, rows, n_boot=boot, seed=seed, part=part)
    d["source"] = source
    if labels_path is None:
        d["label_reliability"] = label_reliability()
    emit(d, fmt, _print_report)


@command.command("train-harm")
@click.option(
    "--out",
    "out_path",
    default=None,
    metavar="WEIGHTS.safetensors",
    help="Where to write the weights (default: the shipped file).",
)
@click.option(
    "--folds",
    type=click.IntRange(min=0),
    default=5,
    show_default=True,
    help="Choose C and thresholds by this many folds over train + dev, grouped by prompt "
    "(0: fit on train, choose on dev).",
)
@click.option(
    "--lookalike-fpr",
    type=click.FloatRange(0.0, 1.0),
    default=0.05,
    show_default=True,
    help="Cap on held-out false 'unsafe' calls on safe answers to benign look-alike prompts.",
)
@click.option(
    "--repeats",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Grouped fold partitions to average the held-out figures over (seeded).",
)
@click.option(
    "--strict-only",
    is_flag=True,
    help="Refit only the strict head (with specificity features), keeping the shipped lenient "
    "head and degeneracy detector, into harm-strict.safetensors (or --out).",
)
@format_option
def train_harm_command(
    out_path: str | None,
    folds: int,
    lookalike_fpr: float,
    repeats: int,
    strict_only: bool,
    fmt: str,
) -> None:
    """Refit the harm judge (both heads and the degeneracy detector) on the corpus's train and
    dev splits; the test split is never read."""
    from aisec.errors import ParameterError
    from aisec.judges.corpus import load_corpus
    from aisec.judges.harm import HARM_STRICT_WEIGHTS, HARM_WEIGHTS, train_harm_judge

    if folds == 1 or (strict_only and folds == 0):
        raise ParameterError("folds", "must be 0 (train -> dev) or at least 2", folds)
    if strict_only:
        from aisec.judges.harm import train_strict_head

        sout = out_path or HARM_STRICT_WEIGHTS
        sinfo = train_strict_head(
            load_corpus("train"),
            load_corpus("dev"),
            sout,
            folds=folds,
            repeats=repeats,
            max_lookalike_fpr=lookalike_fpr,
        )
        sinfo["weights"] = str(sout)

        def stext(d: dict[str, Any]) -> None:
            h = d["strict"]
            click.echo(
                f"strict head fitted on {d['train_rows']} train + {d['dev_rows']} dev rows "
                f"beside the shipped lenient head; choices on {d['chosen_on']}:"
            )
            click.echo(
                f"  strict   head ({h['kind']}): C={h['c']}, threshold {h['threshold']:.2f}, "
                f"held-out kappa {h['dev_kappa']:.3f}, AUROC {h['dev_auroc']:.3f}, look-alike "
                f"false unsafe {h['dev_lookalike_fpr']:.3f} ({h['dev_rows_used']} rows)"
            )
            click.echo(f"weights: {d['weights']}")

        emit(sinfo, fmt, stext)
        return
    out = out_path or HARM_WEIGHTS
    if out == HARM_WEIGHTS and HARM_STRICT_WEIGHTS.exists():
        # its strict head was fitted beside the lenient head this refit replaces
        HARM_STRICT_WEIGHTS.unlink()
    info = train_harm_judge(
        load_corpus("train"),
        load_corpus("dev"),
        out,
        folds=folds,
        repeats=repeats,
        max_lookalike_fpr=lookalike_fpr,
    )
    info["weights"] = str(out)

    def text(d: dict[str, Any]) -> None:
        click.echo(
            f"harm judge fitted on {d['train_rows']} train + {d['dev_rows']} dev rows; "
            f"choices on {d['chosen_on']}:"
        )
        for head, h in d["heads"].items():
            click.echo(
                f"  {head:<8} head ({h.get('kind', 'direct')}): C={h['c']}, threshold "
                f"{h['threshold']:.2f}, held-out kappa "
                f"{h['dev_kappa']:.3f}, AUROC {h['dev_auroc']:.3f}, look-alike false unsafe "
                f"{h['dev_lookalike_fpr']:.3f} ({h['dev_rows_used']} rows)"
            )
        prec = d.get("deg_dev_precision")
        click.echo(
            f"  degenerate: threshold {d['deg_threshold']:.2f}, held-out precision "
            f"{'n/a' if prec is None else f'{prec:.2f}'}, recall {d['deg_dev_recall']:.2f}"
        )
        click.echo(f"weights: {d['weights']}")

    emit(info, fmt, text)
