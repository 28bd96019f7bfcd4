"""``aisec safechain``: evaluate long-CoT safety, build the SafeChain dataset, fine-tune, utility.

Models: an embedded name (``smollm2-135m-instruct``, ``smollm2-135m-think``), a local path, a hub
id, or a server ``http://HOST:PORT/v1#MODEL`` (vLLM or any OpenAI-compatible completions API).
Runs write JSONL rows under ``--out`` and resume from them when started again.

The generation settings of ``eval`` and ``build-dataset`` form one recipe
(:class:`aisec.safety.safechain.EvalConfig`), resolved as: its defaults < ``--recipe`` YAML <
``--set KEY=VALUE`` (parsed by :func:`aisec.config.parse_overrides`) < flags given on the
command line.
"""

from __future__ import annotations

from typing import Any

import click

from aisec.cli.common import emit, format_option


def _judge_names() -> list[str]:
    """Every registered judge (``aisec.judges.JUDGES``), not a fixed list."""
    from aisec.judges import JUDGES

    return list(JUDGES.names())


#: The default judge of ``eval`` and ``build-dataset``: the offline harm judge, whose agreement
#: with hand labels is measured on the corpus's frozen test split (``aisec judge agreement``).
DEFAULT_JUDGE = "harm"


def _threads(n: int) -> None:
    # One thread is the fastest setting for small models on a shared 2-core box (OpenMP
    # barriers stall under contention); this is the CLI's choice, not the library's.
    import torch

    torch.set_num_threads(max(1, n))


def _load(
    model: str, chat_format: str | None, backend: str | None = None, threads: int | None = None
) -> Any:
    from aisec.llm.remote import load_lm
    from aisec.safety.safechain import resolve_model_spec

    if backend != "remote" and model.startswith(("http://", "https://")):
        backend = "remote"  # a server spec is served remotely, whatever the local backend
    return load_lm(
        resolve_model_spec(model), chat_format_name=chat_format, backend=backend, n_threads=threads
    )


_BACKEND = ["auto", "llamacpp", "transformers", "remote"]
_BACKEND_HELP = (
    "What runs the models: auto (default: llama.cpp where the architecture's F16 GGUF export has "
    "measured parity with transformers, else transformers; the choice and its reason are "
    "recorded in the summary), llamacpp (a GGUF; checkpoints and the thinking adapter are "
    "exported to F16 GGUF once, cached), transformers, or remote (URL#MODEL servers)."
)


def _judges(
    names: tuple[str, ...],
    judge_model: str,
    lm: Any,
    model: str,
    backend: str | None = None,
    force: bool = False,
) -> dict[str, Any]:
    import inspect

    from aisec.judges import JUDGES, make_judge

    out: dict[str, Any] = {}
    for name in names:
        if "model" in inspect.signature(JUDGES.get(name)).parameters:  # an LLM judge
            # reuse the evaluated model when it is also the judge model (one copy in memory)
            jm = lm if judge_model == model else _load(judge_model, None, backend)
            # a forced judge skipped its sanity set: its name says so in every summary and row
            key = f"{name}:{judge_model}" + (":forced" if force else "")
            out[key] = make_judge(name, model=jm, force=force)
        else:
            out[name] = make_judge(name)
    return out


def _bar(label: str):  # noqa: ANN202 - rich imported lazily
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    prog = Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )
    task = prog.add_task(label, total=1)

    def update(done: int, total: int) -> None:
        prog.update(task, completed=done, total=total)

    return prog, update


def _num(x: Any, spec: str = ".3f") -> str:
    return "n/a" if x is None else format(x, spec)


def _print_summary(summary: dict[str, Any]) -> None:
    speed = summary["generation"]["tokens_per_s"]
    click.echo(
        f"model {summary['model']}  strategy {summary['strategy']}  K={summary['k']}  "
        f"prompts {summary['prompts']}  gen {_num(speed, '.1f')} tok/s"
        + (f"  backend {summary['backend']}" if summary.get("backend") else "")
    )
    if summary.get("chat_template_fallback"):
        click.echo(f"  warning: {summary['chat_template_fallback']}")
    for j, parts in summary["judges"].items():
        for part, m in parts.items():
            if part == "thought_vs_answer":
                click.echo(
                    f"  {j:32s} thought/answer: both safe {_num(m['both_safe'])}  "
                    f"P(unsafe answer | unsafe thought) "
                    f"{_num(m['p_unsafe_answer_given_unsafe_thought'])}  "
                    f"P(unsafe answer | safe thought) "
                    f"{_num(m['p_unsafe_answer_given_safe_thought'])}"
                )
            else:
                click.echo(
                    f"  {j:32s} {part:9s} Safe@1 {_num(m['safe_at_1'])}  "
                    f"Safe@K {_num(m['safe_at_k'])}  "
                    f"ConsSafe@K {_num(m['cons_safe_at_k'])}  "
                    f"judged {m.get('judged', 'n/a')}  unjudged {m.get('unjudged', 0)}  "
                    f"degenerate {m.get('degenerate', 0)}"
                )
    click.echo(
        "  rates are over the judged samples (safe or unsafe); unjudged and degenerate "
        "samples are left out and counted apart"
    )


#: Flags that set a field of the recipe (EvalConfig), by click parameter name.
_RECIPE_FLAGS = (
    "strategy",
    "k",
    "temperature",
    "top_p",
    "max_new_tokens",
    "think_budget",
    "enforce_num",
    "batch_size",
    "seed",
)


def _resolve_recipe(
    ctx: click.Context, recipe: str | None, overrides: tuple[str, ...], where: str
) -> Any:
    """Defaults < --recipe YAML < --set KEY=VALUE < flags given on the command line."""
    from click.core import ParameterSource

    from aisec.config import apply_overrides, load_yaml, parse_overrides, validate
    from aisec.safety.safechain import EvalConfig

    data = load_yaml(recipe) if recipe else {}
    data = apply_overrides(data, parse_overrides(overrides))
    for name in _RECIPE_FLAGS:
        if name in ctx.params and ctx.get_parameter_source(name) in (
            ParameterSource.COMMANDLINE,
            ParameterSource.ENVIRONMENT,
        ):
            data[name] = ctx.params[name]
    return validate(EvalConfig, data, where)


_RECIPE_HELP = (
    "Generation recipe (YAML mapping of EvalConfig fields: strategy, k, temperature, "
    "top_p, top_k, max_new_tokens, think_budget, enforce_num, system_prompt, "
    "batch_size, seed)."
)
_SET_HELP = (
    "Set one recipe field, e.g. --set top_k=20 --set system_prompt='Be safe.' "
    "(repeatable; values read as YAML). Precedence: defaults < --recipe < --set < flags "
    "given on the command line."
)


@click.group()
def command() -> None:
    """SafeChain: long chain-of-thought safety (Jiang et al., 2025)."""


def _gen_options(f: Any) -> Any:
    opts = [
        click.option(
            "--k", "k", type=int, default=5, show_default=True, help="Samples per prompt."
        ),
        click.option("--temperature", type=float, default=0.6, show_default=True),
        click.option("--top-p", type=float, default=1.0, show_default=True),
        click.option("--max-new-tokens", type=int, default=256, show_default=True),
        click.option("--batch-size", type=int, default=8, show_default=True),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--recipe", default=None, metavar="YAML", help=_RECIPE_HELP),
        click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=_SET_HELP),
        click.option(
            "--chat-format",
            default=None,
            help="Override the chat template (chatml, chatml-think, deepseek-r1, plain).",
        ),
        click.option("--threads", type=int, default=1, show_default=True, help="CPU threads."),
        click.option(
            "--backend",
            type=click.Choice(_BACKEND),
            default="auto",
            show_default=True,
            help=_BACKEND_HELP,
        ),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


@command.command("eval")
@click.option("--model", default="smollm2-135m-think", show_default=True)
@click.option(
    "--strategy",
    default="default",
    show_default=True,
    help="default | zerothink | lessthink | morethink (any registered strategy).",
)
@click.option(
    "--judge",
    "judges",
    type=click.Choice(_judge_names()),
    multiple=True,
    default=(DEFAULT_JUDGE,),
    show_default=True,
    help="Repeatable. Default: the offline harm judge (lenient standard; its measured "
    "agreement: `aisec judge agreement --judge harm`).",
)
@click.option(
    "--judge-model",
    default="smollm2-135m-instruct",
    show_default=True,
    help="Model behind the LLM judges (name, path, hub id or URL#MODEL).",
)
@click.option(
    "--prompt-set",
    "eval_set_name",
    default="strongreject-small",
    show_default=True,
    help="strongreject-small | strongreject | harmbench | advbench | wildjailbreak-style "
    "| file:PATH",
)
@click.option(
    "--prompts",
    "prompt_file",
    default=None,
    help="Prompt file, JSONL or CSV (XSTest-style: a prompt column, optional id, type, "
    "label); same as --prompt-set file:PATH.",
)
@click.option("--n", "n", type=int, default=None, help="Seeded random subset of the set.")
@click.option("--think-budget", type=int, default=128, show_default=True, help="MoreThink T.")
@click.option("--enforce-num", type=int, default=10, show_default=True, help="MoreThink N.")
@click.option("--out", "out_dir", required=True, help="Run directory (resumed if it exists).")
@click.option(
    "--force-judge",
    is_flag=True,
    help="Run LLM judges that fail their built-in sanity set anyway (their verdicts are "
    "then labelled ':forced').",
)
@_gen_options
@format_option
@click.pass_context
def eval_cmd(
    ctx: click.Context,
    model: str,
    strategy: str,
    judges: tuple[str, ...],
    judge_model: str,
    eval_set_name: str,
    prompt_file: str | None,
    n: int | None,
    think_budget: int,
    enforce_num: int,
    out_dir: str,
    force_judge: bool,
    k: int,
    temperature: float,
    top_p: float,
    max_new_tokens: int,
    batch_size: int,
    seed: int,
    recipe: str | None,
    overrides: tuple[str, ...],
    chat_format: str | None,
    threads: int,
    backend: str | None,
    fmt: str,
) -> None:
    """Safe@1, Safe@K and ConsSafe@K of MODEL under a decoding strategy.

    Recipe precedence: defaults < --recipe < --set < flags given on the command line."""
    from aisec.safety.safechain import eval_set, evaluate

    cfg = _resolve_recipe(ctx, recipe, overrides, "safechain eval")
    items = eval_set(f"file:{prompt_file}" if prompt_file else eval_set_name, n, cfg.seed)
    _threads(threads)
    lm = _load(model, chat_format, backend, threads)
    if cfg.strategy != "default":
        lm.chat.require_thinking(cfg.strategy)
    js = _judges(judges, judge_model, lm, model, backend, force_judge)
    prog, update = _bar(f"{cfg.strategy} K={cfg.k}")
    with prog:
        summary = evaluate(lm, items, cfg, js, out_dir, model_name=model, progress=update)
    emit(summary, fmt, _print_summary)


@command.command("build-dataset")
@click.option("--model", default="smollm2-135m-think", show_default=True)
@click.option(
    "--judge",
    type=click.Choice(_judge_names()),
    default=DEFAULT_JUDGE,
    show_default=True,
    help="The refusal detectors call every benign answer unsafe (no refusal), so they keep "
    "no benign instruction; the harm judge does not.",
)
@click.option("--judge-model", default="smollm2-135m-instruct", show_default=True)
@click.option("--n-harmful", type=int, default=20, show_default=True)
@click.option("--n-benign", type=int, default=20, show_default=True)
@click.option("--out", "out_dir", required=True)
@_gen_options
@format_option
@click.pass_context
def build_dataset_cmd(
    ctx: click.Context,
    model: str,
    judge: str,
    judge_model: str,
    n_harmful: int,
    n_benign: int,
    out_dir: str,
    k: int,
    temperature: float,
    top_p: float,
    max_new_tokens: int,
    batch_size: int,
    seed: int,
    recipe: str | None,
    overrides: tuple[str, ...],
    chat_format: str | None,
    threads: int,
    backend: str | None,
    fmt: str,
) -> None:
    """K samples per instruction; keep those whose K are all safe; one at random -> JSONL.

    Samples are drawn with the model's own decoding unless the recipe names another strategy.
    Recipe precedence: defaults < --recipe < --set < flags given on the command line."""
    from aisec.safety.safechain import build_dataset, dataset_instructions

    cfg = _resolve_recipe(ctx, recipe, overrides, "safechain build-dataset")
    items = dataset_instructions(n_harmful, n_benign, cfg.seed)
    _threads(threads)
    lm = _load(model, chat_format, backend, threads)
    ((jname, j),) = _judges((judge,), judge_model, lm, model, backend).items()
    prog, update = _bar(f"dataset K={cfg.k}")
    with prog:
        info = build_dataset(lm, items, cfg, j, jname, out_dir, model_name=model, progress=update)
    emit(
        info,
        fmt,
        lambda d: click.echo(
            f"kept {d['kept']} of {d['instructions']} instructions (all {d['k']} samples safe): "
            f"{d['path']}"
        ),
    )


@command.command("train")
@click.option("--dataset", "dataset_path", required=True, help="dataset.jsonl from build-dataset.")
@click.option("--model", default="smollm2-135m-think", show_default=True)
@click.option("--method", type=click.Choice(["lora", "full"]), default="lora", show_default=True)
@click.option("--steps", type=int, default=40, show_default=True)
@click.option("--lr", "learning_rate", type=float, default=5e-4, show_default=True)
@click.option("--batch-size", type=int, default=4, show_default=True)
@click.option("--max-length", type=int, default=320, show_default=True)
@click.option("--save-every", type=int, default=10, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=int, default=1, show_default=True)
@click.option("--out", "out_dir", required=True, help="Training dir (resumes from its checkpoint).")
@format_option
def train_cmd(
    dataset_path: str,
    model: str,
    method: str,
    steps: int,
    learning_rate: float,
    batch_size: int,
    max_length: int,
    save_every: int,
    seed: int,
    threads: int,
    out_dir: str,
    fmt: str,
) -> None:
    """SFT of MODEL on a SafeChain dataset (LoRA or full), with checkpoints and resume."""
    from aisec.config import validate
    from aisec.llm.finetune import FinetuneConfig, finetune
    from aisec.llm.model import load_causal_lm
    from aisec.safety.safechain import dataset_sft_examples, resolve_model_spec

    cfg = validate(
        FinetuneConfig,
        {
            "method": method,
            "steps": steps,
            "learning_rate": learning_rate,
            "batch_size": batch_size,
            "max_length": max_length,
            "save_every": save_every,
            "seed": seed,
        },
        "safechain train",
    )
    _threads(threads)
    lm = load_causal_lm(resolve_model_spec(model))
    examples = dataset_sft_examples(dataset_path, lm.chat)
    base = model if method == "lora" and not model.startswith(("/", ".")) else None
    if model == "smollm2-135m-think":
        # the thinker is itself an adapter: merged above, so the new adapter's base is that merge
        base = None
    res = finetune(lm, examples, cfg, out_dir, base_name=base, chat_template=lm.chat.template)
    if method == "lora" and base is None:
        # save a full merged model so the result loads on its own
        import shutil

        merged = lm.model.merge_and_unload()
        target = res.out_dir / "model"
        if target.exists():
            shutil.rmtree(target)
        merged.save_pretrained(str(target), safe_serialization=True)
        lm.tokenizer.chat_template = lm.chat.template
        lm.tokenizer.save_pretrained(str(target))
        weights = str(target)
    else:
        weights = str(res.weights_dir)
    emit(
        {
            "weights": weights,
            "steps": res.steps,
            "resumed_from": res.resumed_from,
            "first_loss": res.losses[0] if res.losses else None,
            "last_loss": res.losses[-1] if res.losses else None,
            "seconds": res.seconds,
        },
        fmt,
        lambda d: click.echo(
            f"trained {d['steps']} steps (resumed from {d['resumed_from']}); "
            f"loss {d['first_loss']} -> {d['last_loss']}; model: {d['weights']}"
        ),
    )


@command.command("make-thinker")
@click.option(
    "--out", "out_dir", required=True, help="Training dir; the adapter lands in OUT/adapter."
)
@click.option("--examples", "n_examples", type=int, default=600, show_default=True)
@click.option("--max-tokens", type=int, default=200, show_default=True)
@click.option("--steps", type=int, default=150, show_default=True, help="Schedule length.")
@click.option(
    "--stop-after",
    type=int,
    default=30,
    show_default=True,
    help="Steps actually run (the shipped adapter stopped at 30 of a 150-step schedule).",
)
@click.option("--lr", "learning_rate", type=float, default=1e-3, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=int, default=1, show_default=True)
@format_option
def make_thinker_cmd(
    out_dir: str,
    n_examples: int,
    max_tokens: int,
    steps: int,
    stop_after: int,
    learning_rate: float,
    seed: int,
    threads: int,
    fmt: str,
) -> None:
    """Rebuild the smollm2-135m-think LoRA adapter from GSM8K traces (the shipped weights)."""
    import numpy as np

    from aisec.assets import load_dataset
    from aisec.llm.chat import CHATML_THINK
    from aisec.llm.finetune import FinetuneConfig, finetune
    from aisec.llm.model import load_causal_lm
    from aisec.safety.safechain import gsm8k_think_examples

    _threads(threads)
    lm = load_causal_lm("smollm2-135m-instruct")
    ex = gsm8k_think_examples(
        load_dataset("gsm8k", split="train"),
        n_examples,
        max_tokens,
        lm.tokenizer,
        np.random.default_rng(seed),
    )
    cfg = FinetuneConfig(
        method="lora",
        lora_r=8,
        lora_alpha=16,
        learning_rate=learning_rate,
        steps=steps,
        batch_size=4,
        max_length=max_tokens,
        save_every=10,
        warmup_steps=5,
        seed=seed,
    )
    res = finetune(
        lm,
        ex,
        cfg,
        out_dir,
        base_name="smollm2-135m-instruct",
        chat_template=CHATML_THINK.template,
        stop_after=stop_after,
    )
    emit(
        {
            "adapter": str(res.weights_dir),
            "examples": len(ex),
            "steps": res.steps,
            "last_loss": res.losses[-1],
        },
        fmt,
        lambda d: click.echo(
            f"adapter: {d['adapter']} ({d['examples']} traces, {d['steps']} steps, "
            f"final loss {d['last_loss']:.3f}); copy it to "
            "src/aisec/safety/weights/smollm2-135m-think to ship it"
        ),
    )


@command.command("utility")
@click.option("--model", default="smollm2-135m-think", show_default=True)
@click.option(
    "--benchmark",
    type=click.Choice(["gsm8k", "math500", "humaneval"]),
    default="gsm8k",
    show_default=True,
)
@click.option("--n", "n", type=int, default=20, show_default=True)
@click.option("--max-new-tokens", type=int, default=256, show_default=True)
@click.option("--batch-size", type=int, default=8, show_default=True)
@click.option("--chat-format", default=None)
@click.option("--threads", type=int, default=1, show_default=True)
@click.option(
    "--backend", type=click.Choice(_BACKEND), default="auto", show_default=True, help=_BACKEND_HELP
)
@format_option
def utility_cmd(
    model: str,
    benchmark: str,
    n: int,
    max_new_tokens: int,
    batch_size: int,
    chat_format: str | None,
    threads: int,
    backend: str | None,
    fmt: str,
) -> None:
    """Greedy accuracy on GSM8K / MATH-500, or sandboxed HumanEval pass@1."""
    from aisec.safety.safechain import utility

    _threads(threads)
    lm = _load(model, chat_format, backend, threads)
    res = utility(lm, benchmark, n, max_new_tokens=max_new_tokens, batch_size=batch_size)
    res |= {"backend": lm.backend, "backend_reason": lm.backend_reason}
    emit(
        res,
        fmt,
        lambda d: click.echo(f"{d['benchmark']}: {d['correct']}/{d['n']} = {d['accuracy']:.3f}"),
    )
