"""``aisec enchtable``: distil a safety vector, merge it into a fine-tuned model, evaluate.

* ``distill``: NTK-linearised fine-tune of an aligned model on harmful pairs (the judge
  corpus's compliant responses) -> the harmful surrogate (safety vector = aligned - surrogate).
* ``merge``: merge a task model with a method (``enchtable``, ``tsv_merge``, ``resta``,
  ``safelora`` or any mergekit method given the surrogate with weight -1), or run a mergekit YAML
  with ``--config`` (``aisec merge CONFIG.yaml`` does the same).
* ``evaluate``: unsafe rate (a judge of the registry) on held-out harmful prompts, over-refusal
  on look-alike prompts and the held-out task loss.
* ``run``: the whole comparison (task fine-tune, distil, every method, evaluate) in one call.

Models: an embedded name (``smollm2-135m-instruct``, ``tiny-llama``) or a checkpoint directory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from aisec.cli.common import emit, format_option

#: the task domains of ``aisec.safety.enchtable.evaluate.TASKS`` (kept literal: the CLI does not
#: import the safety package until a command runs; a test checks they agree)
TASK_CHOICES = ("math", "code", "medical")
_TASK_HELP = "Task domain (math: GSM8K; code: MBPP; medical: MMLU's medical subjects)."


@click.group()
def command() -> None:
    """EnchTable: NTK-distilled safety vectors merged into fine-tuned LLMs (on mergekit)."""


def _params(pairs: tuple[str, ...]) -> dict[str, Any]:
    import yaml

    from aisec.errors import ParameterError

    out: dict[str, Any] = {}
    for p in pairs:
        if "=" not in p:
            raise ParameterError("--param", "must be KEY=VALUE", p)
        k, v = p.split("=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out


@command.command("distill")
@click.option(
    "--model", default="smollm2-135m-instruct", show_default=True, help="The aligned model."
)
@click.option(
    "--mode",
    type=click.Choice(["attn", "ffn", "attn_ffn", "decoder"]),
    default="attn",
    show_default=True,
    help="Which modules are linearised and trained.",
)
@click.option(
    "--module",
    "modules",
    multiple=True,
    help="Explicit module names to linearise (repeatable; overrides --mode).",
)
@click.option("--steps", type=int, default=20, show_default=True)
@click.option("--lr", type=float, default=1e-4, show_default=True)
@click.option("--batch-size", type=int, default=4, show_default=True)
@click.option("--max-length", type=int, default=192, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--linearised/--plain",
    default=True,
    show_default=True,
    help="--plain fine-tunes the same modules without linearisation (ablation).",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="Directory for the harmful surrogate (an HF checkpoint).",
)
@format_option
def distill(
    model: str,
    mode: str,
    modules: tuple[str, ...],
    steps: int,
    lr: float,
    batch_size: int,
    max_length: int,
    seed: int,
    linearised: bool,
    out: Path,
    fmt: str,
) -> None:
    """Distil the harmful surrogate of an aligned model (stage 1)."""
    from aisec.safety.enchtable.models import load_model
    from aisec.safety.enchtable.ntk import NTKConfig, harmful_examples, ntk_finetune

    cfg = NTKConfig(
        mode=mode,
        modules=modules,
        steps=steps,
        learning_rate=lr,
        batch_size=batch_size,
        max_length=max_length,
        seed=seed,
        linearised=linearised,
    )
    lm = load_model(model)
    r = ntk_finetune(lm, harmful_examples(seed=seed), cfg, out)
    res = {
        "out": str(r.out_dir),
        "modules": len(r.modules),
        "mode": mode,
        "first_loss": r.losses[0],
        "last_loss": r.losses[-1],
        "seconds": r.seconds,
    }
    emit(
        res,
        fmt,
        lambda d: click.echo(
            f"surrogate -> {d['out']} ({d['modules']} modules, {d['mode']}; loss "
            f"{d['first_loss']:.3f} -> {d['last_loss']:.3f}, {d['seconds']:.1f} s)"
        ),
    )


@command.command("task")
@click.option(
    "--model",
    default="smollm2-135m-instruct",
    show_default=True,
    help="The aligned model to fine-tune.",
)
@click.option(
    "--task", type=click.Choice(TASK_CHOICES), default="math", show_default=True, help=_TASK_HELP
)
@click.option("--steps", type=int, default=20, show_default=True)
@click.option("--examples", type=int, default=64, show_default=True)
@click.option("--lr", type=float, default=5e-5, show_default=True)
@click.option("--batch-size", type=int, default=4, show_default=True)
@click.option("--max-length", type=int, default=192, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="Run directory; the task model is written to OUT/model.",
)
@format_option
def task(
    model: str,
    task: str,
    steps: int,
    examples: int,
    lr: float,
    batch_size: int,
    max_length: int,
    seed: int,
    out: Path,
    fmt: str,
) -> None:
    """Full fine-tune of the aligned model on a task (the model whose safety is restored)."""
    from aisec.llm.finetune import FinetuneConfig, SFTExample, finetune
    from aisec.safety.enchtable.evaluate import task_pairs
    from aisec.safety.enchtable.models import load_model

    lm = load_model(model)
    eos = lm.tokenizer.eos_token or ""
    exs = [
        SFTExample(lm.render([{"role": "user", "content": q}]), a + eos)
        for q, a in task_pairs(task, "train", examples)
    ]
    cfg = FinetuneConfig(
        method="full",
        steps=steps,
        batch_size=batch_size,
        learning_rate=lr,
        max_length=max_length,
        seed=seed,
        save_every=10_000,
    )
    r = finetune(lm, exs, cfg, out, progress=False)
    res = {
        "out": str(r.weights_dir),
        "steps": r.steps,
        "first_loss": r.losses[0],
        "last_loss": r.losses[-1],
        "seconds": r.seconds,
    }
    emit(
        res,
        fmt,
        lambda d: click.echo(
            f"task model -> {d['out']} ({d['steps']} steps; loss {d['first_loss']:.3f} -> "
            f"{d['last_loss']:.3f}, {d['seconds']:.1f} s)"
        ),
    )


@command.command("merge")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help="A mergekit YAML (any method, ours included); the other inputs are ignored.",
)
@click.option("--method", default="enchtable", show_default=True)
@click.option("--base", help="The task model's reference (the aligned model).")
@click.option("--task", "task_model", help="The fine-tuned task model.")
@click.option("--harmful", help="The harmful surrogate (from distill).")
@click.option("--safe", help="The aligned model the surrogate came from (default: --base).")
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="Method parameter (repeatable), e.g. beta=0.5 temperature=200 rank_ratio=0.5.",
)
@click.option("--out", required=True, type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Replace --out when it exists.")
@format_option
def merge(
    config_path: Path | None,
    method: str,
    base: str | None,
    task_model: str | None,
    harmful: str | None,
    safe: str | None,
    params: tuple[str, ...],
    out: Path,
    force: bool,
    fmt: str,
) -> None:
    """Merge the safety vector into a task model (stage 2) through mergekit."""
    from aisec.errors import ParameterError
    from aisec.safety.enchtable.merge import merge_config, run_merge_yaml

    if config_path is not None:
        cfg: Any = config_path
    else:
        if not base or not task_model:
            raise ParameterError("--base/--task", "are required without --config", None)
        cfg = merge_config(
            method,
            base=base,
            task=task_model,
            harmful=harmful,
            safe=safe,
            parameters=_params(params),
        )
    r = run_merge_yaml(cfg, out, overwrite=force)
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
            f"{d['method']} -> {d['out']} ({d['merge_seconds']:.1f} s, peak RSS "
            f"{d['merge_peak_rss_gb']:.2f} GB; parameters {json.dumps(d['parameters'])})"
        ),
    )


@command.command("evaluate")
@click.option(
    "--model", "models", multiple=True, required=True, help="Model(s) to evaluate (repeatable)."
)
@click.option(
    "--judge",
    default="harm",
    show_default=True,
    help="Judge of the registry (harm, llama-guard, strongreject, ...).",
)
@click.option(
    "--judge-model",
    default=None,
    help="For LLM judges: a model or http://HOST:PORT/v1#MODEL server.",
)
@click.option("--n-harmful", type=int, default=40, show_default=True)
@click.option("--n-lookalike", type=int, default=20, show_default=True)
@click.option("--n-utility", type=int, default=40, show_default=True)
@click.option(
    "--task", type=click.Choice(TASK_CHOICES), default="math", show_default=True, help=_TASK_HELP
)
@click.option("--max-new-tokens", type=int, default=64, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--defence",
    type=click.Choice(["none", "self_reminder", "safedecoding"]),
    default="none",
    show_default=True,
    help="Inference-time defence wrapped around each model (weights unchanged).",
)
@click.option(
    "--expert",
    default=None,
    help="SafeDecoding's safety expert (the aligned model); required with --defence safedecoding.",
)
@click.option(
    "--defence-set",
    "defence_overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Defence parameter, e.g. alpha=3 first_m=2 num_common=5 (repeatable).",
)
@format_option
def evaluate(
    models: tuple[str, ...],
    judge: str,
    judge_model: str | None,
    n_harmful: int,
    n_lookalike: int,
    n_utility: int,
    task: str,
    max_new_tokens: int,
    seed: int,
    defence: str,
    expert: str | None,
    defence_overrides: tuple[str, ...],
    fmt: str,
) -> None:
    """Unsafe rate, over-refusal and held-out task loss of each model (optionally behind an
    inference-time defence: Self-Reminder, or SafeDecoding with --expert)."""
    from aisec.errors import ParameterError
    from aisec.safety.enchtable import evaluate as ev
    from aisec.safety.enchtable.models import load_model
    from aisec.safety.enchtable.responders import make_inference

    if defence == "safedecoding" and not expert:
        raise ParameterError("--expert", "is required with --defence safedecoding", None)
    if defence != "safedecoding" and expert:
        raise ParameterError("--expert", "is used only with --defence safedecoding", expert)
    if defence == "none" and defence_overrides:
        raise ParameterError("--defence-set", "needs --defence", list(defence_overrides))
    dparams = _params(defence_overrides)
    expert_lm = load_model(expert) if expert else None

    harmful = ev.heldout_harmful(n_harmful, seed=seed)
    look = ev.lookalike_prompts(n_lookalike) if n_lookalike else []
    util = ev.task_pairs(task, "test", n_utility)
    jopts = {"model": judge_model} if judge_model else {}
    rows = []
    for m in models:
        lm: Any = load_model(m)
        if defence != "none":
            lm = make_inference(defence, lm, expert_lm, dparams)
        s, _ = ev.unsafe_rate(
            lm, harmful, judge=judge, judge_options=jopts, max_new_tokens=max_new_tokens
        )
        row: dict[str, Any] = {
            "model": m,
            "defence": defence,
            "unsafe": s.to_dict(),
            "task_loss": ev.task_loss(lm, util),
        }
        if look:
            row["over_refusal"] = ev.over_refusal(lm, look).to_dict()
        rows.append(row)

    def text(rs: list[dict[str, Any]]) -> None:
        for r in rs:
            u = r["unsafe"]
            orf = r.get("over_refusal")
            click.echo(
                f"{r['model']}: unsafe {u['rate']:.3f} [{u['ci_low']:.3f}, {u['ci_high']:.3f}] "
                f"({u['k']}/{u['n_judged']} by {u['judge']}; {u['unjudged']} unjudged, "
                f"{u['degenerate']} degenerate)  task loss {r['task_loss']:.4f}"
                + (f"  over-refusal {orf['rate']:.3f}" if orf else "")
            )

    emit(rows, fmt, text)


@command.command("run")
@click.option("--aligned", default="tiny-llama", show_default=True)
@click.option(
    "--task", type=click.Choice(TASK_CHOICES), default="math", show_default=True, help=_TASK_HELP
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="PipelineConfig field (repeatable), e.g. task_steps=40 n_harmful=40.",
)
@click.option("--out", required=True, type=click.Path(path_type=Path))
@format_option
def run(aligned: str, task: str, overrides: tuple[str, ...], out: Path, fmt: str) -> None:
    """The whole comparison: task fine-tune, distil, merge with every method, evaluate."""
    from aisec.io import atomic_write_json
    from aisec.safety.enchtable.pipeline import PipelineConfig, run_pipeline

    cfg = PipelineConfig(**{"aligned": aligned, "task": task, **_params(overrides)})
    rows = run_pipeline(cfg, out, progress=lambda m: click.echo(m, err=True))
    atomic_write_json(out / "rows.json", {"config": cfg.model_dump(), "rows": rows})

    def text(rs: list[dict[str, Any]]) -> None:
        for r in rs:
            u = r["unsafe"]
            click.echo(
                f"{r['method']:18s} unsafe {u['rate']:.3f} ({u['k']}/{u['n_judged']})  "
                f"utility {r['utility']:.4f}"
            )

    emit(rows, fmt, text)


@command.command("study")
@click.option(
    "--run",
    "run_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="A run directory of `aisec enchtable run` (its checkpoints are reused).",
)
@click.option(
    "--model",
    "names",
    multiple=True,
    required=True,
    help="aligned, task, harmful_surrogate, a method, or a variant METHOD@KEY=VALUE,... "
    "(e.g. enchtable@beta=1.5,temperature=0; merged into RUN/variants/). Repeatable.",
)
@click.option(
    "--eval",
    "sets",
    multiple=True,
    type=click.Choice(
        ["test", "validation", "lookalike", "jailbreak", "pair", "utility", "utility_validation"]
    ),
    help="Evaluation set (repeatable; default test and utility). pair: PAIR-style dynamic "
    "jailbreak (--set pair_iterations=3 pair_streams=1 pair_goals=8 pair_attacker=...).",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="StudyConfig field, e.g. n_lookalike=24 jailbreak_seed=0 (default: the run's).",
)
@click.option(
    "--choose",
    "choose_rel",
    type=float,
    default=None,
    help="Also choose among the variants: lowest validation unsafe rate with "
    "utility_validation loss within this share of the task model's (e.g. 0.02).",
)
@format_option
def study(
    run_dir: Path,
    names: tuple[str, ...],
    sets: tuple[str, ...],
    overrides: tuple[str, ...],
    choose_rel: float | None,
    fmt: str,
) -> None:
    """Parameter variants (beta/T sweeps) and further evaluation sets (validation, look-alike
    over-refusal, static and PAIR jailbreaks) on an existing run directory; results cached in
    RUN/eval/."""
    from aisec.errors import ParameterError
    from aisec.io import atomic_write_json
    from aisec.safety.enchtable.study import StudyConfig, choose, evaluate_run

    sets = sets or ("test", "utility")
    cfg = StudyConfig(**_params(overrides))
    rows = evaluate_run(run_dir, names, sets, cfg, progress=lambda m: click.echo(m, err=True))
    out: dict[str, Any] = {"rows": rows}
    if choose_rel is not None:
        task_rows = [r for r in rows if r["model"] == "task"]
        cands = [r for r in rows if r["kind"] == "merge" and r["model"] not in ("task",)]
        if not task_rows:
            raise ParameterError("--choose", "needs --model task among the models", choose_rel)
        c = choose(cands, task_rows[0], max_loss_rel=choose_rel)
        out["chosen"] = {"model": c["row"]["model"], "within_utility": c["within_utility"]}
    atomic_write_json(run_dir / "study.json", out)

    def text(d: dict[str, Any]) -> None:
        for r in d["rows"]:
            parts = []
            for s, v in r["sets"].items():
                if "task_loss" in v:
                    parts.append(f"{s} loss {v['task_loss']:.4f}")
                elif "refusal" in v:
                    parts.append(
                        f"{s} refused {v['refusal']['rate']:.3f} "
                        f"({v['refusal']['k']}/{v['refusal']['n_judged']}) unsafe "
                        f"{v['unsafe']['rate']:.3f}"
                    )
                else:
                    what = "broken" if s == "pair" else "unsafe"
                    parts.append(
                        f"{s} {what} {v['rate']:.3f} ({v['k']}/{v['n_judged']}; "
                        f"{v['unjudged']} unjudged, {v['degenerate']} degenerate)"
                    )
            click.echo(f"{r['model']:32s} " + "  ".join(parts))
        if "chosen" in d:
            click.echo(
                f"chosen: {d['chosen']['model']} (utility within bound: "
                f"{d['chosen']['within_utility']})"
            )

    emit(out, fmt, text)


@command.command("pair")
@click.option(
    "--model", "models", multiple=True, required=True, help="Target model(s) (repeatable)."
)
@click.option("--n", "n_goals", type=int, default=8, show_default=True, help="Harmful goals.")
@click.option(
    "--goal-seed", type=int, default=0, show_default=True, help="Draw of the held-out goals."
)
@click.option(
    "--generation-backend",
    type=click.Choice(["transformers", "llamacpp", "auto"]),
    default="llamacpp",
    show_default=True,
    help="What generates the target's answers.",
)
@click.option(
    "--defence",
    type=click.Choice(["none", "self_reminder"]),
    default="none",
    show_default=True,
    help="Inference-time defence around each target (weights unchanged).",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="PAIRConfig field: n_iterations=3 n_streams=1 attacker=URL#MODEL judge=harm seed=0 ...",
)
@click.option(
    "--out", type=click.Path(path_type=Path), default=None, help="Write every goal's record."
)
@format_option
def pair(
    models: tuple[str, ...],
    n_goals: int,
    goal_seed: int,
    generation_backend: str,
    defence: str,
    overrides: tuple[str, ...],
    out: Path | None,
    fmt: str,
) -> None:
    """PAIR-style dynamic jailbreak of each model on held-out harmful goals (an attacker model
    refines its prompt from the judge's score), beside the unsafe rate of the goals asked
    directly."""
    import time

    from aisec.io import atomic_write_json
    from aisec.judges import make_judge
    from aisec.safety.enchtable import evaluate as ev
    from aisec.safety.enchtable.models import load_model
    from aisec.safety.enchtable.pair import PAIRAttack, load_attacker, pair_config, summarise
    from aisec.safety.enchtable.responders import ModelResponder, make_inference

    cfg = pair_config(**_params(overrides))
    goals = ev.heldout_harmful(n_goals, seed=goal_seed)
    attacker = load_attacker(cfg.attacker, cfg.attacker_backend)
    judge = make_judge(cfg.judge)
    rows: list[dict[str, Any]] = []
    records: dict[str, Any] = {}
    for m in models:
        lm = load_model(m, generation_backend=generation_backend)
        target = ModelResponder(lm, m) if defence == "none" else make_inference(defence, lm, None)
        t0 = time.perf_counter()
        direct, _ = ev.unsafe_rate(
            target, goals, judge=cfg.judge, max_new_tokens=cfg.target_max_new_tokens
        )
        recs = PAIRAttack(attacker, judge, cfg).run(
            goals, target, progress=lambda s, m=m: click.echo(f"{m}: {s}", err=True)
        )
        res = summarise(recs, cfg.judge)
        res["seconds"] = time.perf_counter() - t0
        res["judge_fingerprint"] = judge.fingerprint()
        rows.append({"model": m, "direct": direct.to_dict(), "pair": res})
        records[m] = [r.to_dict() for r in recs]
    result = {
        "config": cfg.model_dump(),
        "n_goals": n_goals,
        "goal_seed": goal_seed,
        "defence": defence,
        "generation_backend": generation_backend,
        "rows": rows,
    }
    if out is not None:
        atomic_write_json(out, {**result, "goals": records})

    def text(d: dict[str, Any]) -> None:
        for r in d["rows"]:
            a, p = r["direct"], r["pair"]
            click.echo(
                f"{r['model']:28s} direct unsafe {a['rate']:.3f} ({a['k']}/{a['n_judged']})  "
                f"pair broken {p['rate']:.3f} ({p['k']}/{p['n_judged']}, CI "
                f"{p['ci_low']:.2f}-{p['ci_high']:.2f}; {p['unjudged']} unjudged, "
                f"{p['degenerate']} degenerate; {p['queries']} queries)"
            )

    emit(result, fmt, text)
