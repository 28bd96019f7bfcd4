"""``aisec fingerprint``: OML 1.0 model fingerprints (secret key -> response pairs).

generate, insert, verify, claim, check-claim, attack. Fingerprint files and the owner key are
written 0600 and never printed; outputs show counts, rates and p-values only. A model is an
embedded name (``smollm2-135m-instruct``), a local path or adapter directory, a hub id, or a
server ``http://HOST:PORT/v1#MODEL`` (verify and check-claim).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from aisec.cli.common import emit, format_option

DEFAULT_MODEL = "smollm2-135m-instruct"
STRATEGY_CHOICES = [
    "perinucleus",
    "english",
    "random_word",
    "english_random_response",
    "random_tokens",
]


def _log(msg: str) -> None:
    click.echo(msg, err=True)


def _threads(n: int) -> None:
    import torch

    torch.set_num_threads(max(1, n))


def _load(spec: str, chat_format: str | None = None, backend: str | None = None) -> Any:
    """A suspect model. A local one runs on transformers unless ``--backend llamacpp``: token
    matching there is exact and needs no GGUF export (llm/'s own ``auto`` would pick llama.cpp,
    which can only be checked by text)."""
    from aisec.llm.remote import load_lm

    if backend in (None, "auto") and not spec.startswith(("http://", "https://")):
        backend = "transformers"
    return load_lm(spec, chat_format_name=chat_format, backend=backend)


@click.group("fingerprint")
def command() -> None:
    """OML 1.0: fingerprint a language model with secret key -> response pairs and prove it."""


threads_option = click.option(
    "--threads", type=int, default=1, show_default=True, help="Torch CPU threads."
)


@command.command("generate")
@click.option(
    "--model",
    default=DEFAULT_MODEL,
    show_default=True,
    help="The model the fingerprints are made for (its tokenizer and distribution).",
)
@click.option(
    "--strategy", type=click.Choice(STRATEGY_CHOICES), default="perinucleus", show_default=True
)
@click.option("--n", "n", type=int, default=16, show_default=True, help="How many fingerprints.")
@click.option("--key-length", type=int, default=16, show_default=True, help="Key tokens.")
@click.option(
    "--response-length",
    type=int,
    default=1,
    show_default=True,
    help="Response tokens (perinucleus: 1).",
)
@click.option(
    "--seed",
    type=int,
    default=None,
    help="Seed (default: fresh randomness; a fixed seed makes the keys guessable).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    required=True,
    help="Secret fingerprint file (written 0600).",
)
@threads_option
@format_option
def generate_cmd(
    model: str,
    strategy: str,
    n: int,
    key_length: int,
    response_length: int,
    seed: int | None,
    out: str,
    threads: int,
    fmt: str,
) -> None:
    """Generate secret fingerprints for MODEL and write them owner-only."""
    import secrets

    from aisec.llm import load_causal_lm
    from aisec.provenance.fingerprint import GenerateConfig, generate_fingerprints

    _threads(threads)
    cfg = GenerateConfig(
        strategy=strategy,
        n=n,
        key_length=key_length,
        response_length=response_length,
        seed=secrets.randbits(63) if seed is None else seed,
    )
    lm = load_causal_lm(model)
    fps = generate_fingerprints(lm, cfg, model)
    fps.save(out)
    mean_p = sum(f.base_prob for f in fps.fingerprints) / len(fps)
    emit(
        {"out": out, "n": len(fps), "strategy": strategy, "model": model, "mean_base_prob": mean_p},
        fmt,
        lambda o: click.echo(
            f"wrote {o['n']} {strategy} fingerprints to {out} (0600); mean "
            f"response probability under {model}: {mean_p:.4f}"
        ),
    )


def _benign_examples(lm: Any, path: str) -> list[Any]:
    from aisec.errors import InputFileError
    from aisec.io import iter_records
    from aisec.llm.finetune import SFTExample

    eot = lm.chat.end_of_turn or ""
    out = []
    for line, rec in iter_records(path):
        if "prompt" in rec and "completion" in rec:
            out.append(SFTExample(lm.chat.user(str(rec["prompt"])), str(rec["completion"]) + eot))
        elif "question" in rec and "answer" in rec:
            out.append(SFTExample(lm.chat.user(str(rec["question"])), str(rec["answer"]) + eot))
        else:
            raise InputFileError(path, f"line {line} needs prompt/completion or question/answer")
    return out


#: insertion options that ``insert`` and ``attack`` share
_method_option = click.option(
    "--method", type=click.Choice(["lora", "full"]), default="lora", show_default=True
)
_lr_option = click.option(
    "--lr",
    "learning_rate",
    type=float,
    default=None,
    help="Learning rate [default: 1e-3 for LoRA, 1e-4 for full fine-tuning].",
)


@command.command("insert")
@click.option("--model", default=DEFAULT_MODEL, show_default=True)
@click.option(
    "--fingerprints", "fp_path", type=click.Path(exists=True, dir_okay=False), required=True
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    required=True,
    help="Output directory: adapter/ or model/, commitment.json, insert.json.",
)
@click.option(
    "--owner-key",
    type=click.Path(dir_okay=False),
    required=True,
    help="Ed25519 owner key (PEM, 0600); created if missing.",
)
@_method_option
@click.option("--epochs", type=int, default=10, show_default=True)
@click.option("--batch-size", type=int, default=8, show_default=True)
@_lr_option
@click.option(
    "--averaging",
    type=float,
    default=0.1,
    show_default=True,
    help="Model averaging toward the base after each epoch (lambda; 0: off; OML: 0.75; 0.1 "
    "kept SmolLM2's held-out perplexity lower at 64 and 256 keys at the same accuracy).",
)
@click.option(
    "--benign",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="JSONL of benign pairs (prompt/completion or question/answer) to mix in.",
)
@click.option("--benign-fraction", type=float, default=0.0, show_default=True)
@click.option(
    "--augment",
    type=int,
    default=0,
    show_default=True,
    help="Extra copies of each key under training system prompts.",
)
@click.option("--lora-r", type=int, default=16, show_default=True, help="LoRA rank.")
@click.option("--lora-alpha", type=int, default=32, show_default=True, help="LoRA alpha.")
@click.option(
    "--top-layers",
    type=int,
    default=8,
    show_default=True,
    help="LoRA in the top N decoder layers only (0: all layers).",
)
@click.option(
    "--end-of-turn/--no-end-of-turn",
    default=False,
    show_default=True,
    help="Also train the end-of-turn token after each response (OML appends EOS).",
)
@click.option(
    "--anchor-weight",
    type=float,
    default=1.0,
    show_default=True,
    help="Weight of the anchor regulariser (cross-entropy from the base model on ordinary "
    "chat texts: AlpacaEval from the shared data folder).",
)
@click.option(
    "--anchor-texts",
    type=int,
    default=32,  # insert.DEFAULT_ANCHOR_TEXTS (tested equal)
    show_default=True,
    help="Anchor texts.",
)
@click.option(
    "--checkpoint-every",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="Save the training state every N steps (and at the end), for --resume.",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the run whose checkpoint is in --out (same fingerprints and recipe).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@threads_option
@format_option
def insert_cmd(
    model: str,
    fp_path: str,
    out: str,
    owner_key: str,
    method: str,
    epochs: int,
    batch_size: int,
    learning_rate: float | None,
    averaging: float,
    benign: str | None,
    benign_fraction: float,
    augment: int,
    lora_r: int,
    lora_alpha: int,
    top_layers: int,
    end_of_turn: bool,
    anchor_weight: float,
    anchor_texts: int,
    checkpoint_every: int,
    resume: bool,
    seed: int,
    threads: int,
    fmt: str,
) -> None:
    """Fine-tune the fingerprints into MODEL and publish a signed commitment to them.

    Long insertions checkpoint every --checkpoint-every steps; after a crash, the same command
    with --resume continues from the last checkpoint and ends with the same weights.
    """
    from aisec.errors import ConfigError
    from aisec.io import atomic_write_json
    from aisec.llm import load_causal_lm
    from aisec.provenance.fingerprint import (
        FingerprintSet,
        InsertConfig,
        generate_owner_key,
        insert_fingerprints,
        load_owner_key,
        make_commitment,
    )

    _threads(threads)
    ckpt = Path(out) / "checkpoint" / "trainer.json"
    if ckpt.exists() and not resume:
        raise ConfigError(
            f"--out {out} holds the checkpoint of an earlier insertion: pass --resume to continue "
            "it, or choose a new --out"
        )
    if resume and not ckpt.exists():
        raise ConfigError(f"--resume needs a checkpoint in --out {out}; none was found")
    fps = FingerprintSet.load(fp_path)
    cfg = InsertConfig(
        method=method,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=_learning_rate(method, learning_rate),
        averaging=averaging,
        benign_fraction=benign_fraction,
        augment=augment,
        lora_r=lora_r,
        lora_alpha=lora_alpha,
        top_layers=top_layers,
        end_of_turn=end_of_turn,
        anchor_weight=anchor_weight,
        seed=seed,
    )
    if benign_fraction > 0 and benign is None:
        raise ConfigError("--benign-fraction > 0 needs --benign FILE.jsonl")
    if not Path(owner_key).exists():
        generate_owner_key(owner_key)
        _log(f"created owner key {owner_key} (0600)")
    key = load_owner_key(owner_key)
    lm = load_causal_lm(model)
    pairs = _benign_examples(lm, benign) if benign else []
    anchor_loss = None
    if anchor_weight > 0:
        from aisec.provenance.fingerprint.insert import anchor_texts as load_anchor_texts
        from aisec.provenance.fingerprint.insert import make_anchor_loss

        # built from the model as just loaded: the base weights, also when resuming
        anchor_loss = make_anchor_loss(lm, load_anchor_texts(lm, anchor_texts, seed=seed), cfg)
    base_state = None
    if cfg.method == "full" and cfg.averaging > 0:
        # the target of the averaging pulls: the weights as just loaded, also when resuming
        base_state = {n: p.detach().clone() for n, p in lm.model.named_parameters()}
    res = insert_fingerprints(
        lm,
        fps,
        cfg,
        out,
        base_state=base_state,
        benign=pairs,
        anchor_loss=anchor_loss,
        base_name=model,
        progress=True,
        resume=resume,
        checkpoint_every=checkpoint_every,
    )
    commitment = make_commitment(fps, key, str(res.weights_dir))
    atomic_write_json(Path(out) / "commitment.json", commitment)
    lm.model.eval()
    from aisec.provenance.fingerprint import verify

    check = verify(lm, fps)
    summary = {
        "weights": str(res.weights_dir),
        "commitment": str(Path(out) / "commitment.json"),
        "root": commitment["body"]["root"],
        "steps": res.steps,
        "resumed_from": res.resumed_from,
        "examples": res.n_examples,
        "benign": res.n_benign,
        "averaged_epochs": res.averaged,
        "seconds": res.seconds,
        "final_loss": res.losses[-1],
        "fp_accuracy": check.accuracy,
        "config": cfg.model_dump(mode="json"),
    }
    atomic_write_json(Path(out) / "insert.json", summary)
    emit(
        summary,
        fmt,
        lambda s: click.echo(
            f"inserted {len(fps)} fingerprints in {s['steps']} steps ({s['seconds']:.0f} s): "
            f"{s['weights']}\nfingerprint accuracy {s['fp_accuracy']:.3f}; commitment "
            f"{s['commitment']} (root {s['root'][:16]}...)"
        ),
    )


def _learning_rate(method: str, given: float | None) -> float:
    from aisec.provenance.fingerprint.insert import DEFAULT_LEARNING_RATE

    return DEFAULT_LEARNING_RATE[method] if given is None else given


def _verify_text(r: dict[str, Any]) -> None:
    click.echo(
        f"{r['matched']}/{r['n_keys']} keys answered with their response "
        f"(accuracy {r['fp_accuracy']:.3f} over {r['conditions']} condition(s), "
        f"{r['mode']} match); ownership log10 p = {r['ownership_log10_p']:.2f} -> "
        f"{'OWNED' if r['owned'] else 'not shown'} at log10 alpha {r['log10_alpha']}"
    )


@command.command("verify")
@click.option("--model", required=True, help="The suspect: name, path, adapter dir or URL#MODEL.")
@click.option(
    "--fingerprints", "fp_path", type=click.Path(exists=True, dir_okay=False), required=True
)
@click.option(
    "--mode", type=click.Choice(["auto", "token", "text"]), default="auto", show_default=True
)
@click.option(
    "--system-prompts",
    type=int,
    default=0,
    show_default=True,
    help="Also query under this many unseen system prompts (0-10).",
)
@click.option("--temperature", type=float, default=0.0, show_default=True)
@click.option("--chat-format", default=None, help="Built-in chat format for a server model.")
@click.option(
    "--backend",
    type=click.Choice(["auto", "llamacpp", "transformers", "remote"]),
    default="auto",
    show_default=True,
    help="auto: a local model runs on transformers (exact token matching when it has the "
    "fingerprints' tokenizer), a URL#MODEL on the server; llamacpp checks by text.",
)
@click.option("--log10-alpha", type=float, default=-6.0, show_default=True)
@threads_option
@format_option
def verify_cmd(
    model: str,
    fp_path: str,
    mode: str,
    system_prompts: int,
    temperature: float,
    chat_format: str | None,
    backend: str | None,
    log10_alpha: float,
    threads: int,
    fmt: str,
) -> None:
    """Query a suspect model with every key and run the ownership test."""
    from aisec.errors import ParameterError
    from aisec.provenance.fingerprint import TEST_SYSTEM_PROMPTS, FingerprintSet, verify

    if not 0 <= system_prompts <= len(TEST_SYSTEM_PROMPTS):
        raise ParameterError(
            "--system-prompts", f"must be in [0, {len(TEST_SYSTEM_PROMPTS)}]", system_prompts
        )
    _threads(threads)
    fps = FingerprintSet.load(fp_path)
    lm = _load(model, chat_format, backend)
    conds: list[str | None] = [None, *TEST_SYSTEM_PROMPTS[:system_prompts]]
    r = verify(lm, fps, system_prompts=conds, mode=mode, temperature=temperature)  # type: ignore[arg-type]
    s = r.summary() | {"model": model, "log10_alpha": log10_alpha, "owned": r.log10_p < log10_alpha}
    emit(s, fmt, _verify_text)


@command.command("claim")
@click.option(
    "--fingerprints", "fp_path", type=click.Path(exists=True, dir_okay=False), required=True
)
@click.option("--owner-key", type=click.Path(exists=True, dir_okay=False), required=True)
@click.option("--commitment", type=click.Path(exists=True, dir_okay=False), required=True)
@click.option(
    "--suspect", required=True, help="The model the claim is about (name, path, URL#MODEL)."
)
@click.option(
    "--reveal",
    type=int,
    default=16,
    show_default=True,
    help="How many unspent fingerprints the claim reveals (and spends).",
)
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="Claim file (public).")
@format_option
def claim_cmd(
    fp_path: str, owner_key: str, commitment: str, suspect: str, reveal: int, out: str, fmt: str
) -> None:
    """Write a signed claim revealing unspent fingerprints; mark them spent."""
    import secrets

    from aisec.errors import ParameterError
    from aisec.io import atomic_write_json
    from aisec.provenance.fingerprint import FingerprintSet, load_owner_key, make_claim
    from aisec.provenance.fingerprint.commit import read_json

    fps = FingerprintSet.load(fp_path)
    unspent = [i for i in range(len(fps)) if i not in set(fps.spent)]
    if not 1 <= reveal <= len(unspent):
        raise ParameterError(
            "--reveal", f"must be in [1, {len(unspent)}] (unspent fingerprints)", reveal
        )
    rng = secrets.SystemRandom()
    indices = sorted(rng.sample(unspent, reveal))
    c = make_claim(
        fps, load_owner_key(owner_key), read_json(commitment, "commitment"), indices, suspect
    )
    atomic_write_json(out, c)
    fps.with_spent(indices).save(fp_path)
    emit(
        {"out": out, "revealed": reveal, "unspent_left": len(unspent) - reveal},
        fmt,
        lambda o: click.echo(
            f"wrote claim {out} revealing {reveal} fingerprints; {o['unspent_left']} unspent left"
        ),
    )


@command.command("check-claim")
@click.option("--claim", "claim_path", type=click.Path(exists=True, dir_okay=False), required=True)
@click.option(
    "--commitment",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="The commitment as published at insertion (checked against the claim's).",
)
@click.option(
    "--model",
    default=None,
    help="Query this model instead of the claim's suspect (name, path, URL#MODEL).",
)
@click.option("--no-query", is_flag=True, help="Check signatures and proofs only.")
@click.option("--chat-format", default=None)
@click.option("--log10-alpha", type=float, default=-6.0, show_default=True)
@threads_option
@format_option
def check_claim_cmd(
    claim_path: str,
    commitment: str | None,
    model: str | None,
    no_query: bool,
    chat_format: str | None,
    log10_alpha: float,
    threads: int,
    fmt: str,
) -> None:
    """Check a claim as a third party: signatures, Merkle proofs, then the model's responses.

    Exit 0: the claim holds; 1: it verifies but the model's answers do not show ownership;
    2: the claim or commitment is forged or malformed (the reason is printed)."""
    from aisec.provenance.fingerprint import check_claim, verify
    from aisec.provenance.fingerprint.commit import read_json

    published = read_json(commitment, "commitment") if commitment else None
    ok = check_claim(read_json(claim_path, "claim"), published, claim_path)
    out: dict[str, Any] = {
        "signatures": "ok",
        "proofs": "ok",
        "revealed": len(ok.indices),
        "committed": ok.commitment["body"]["n"],
        "suspect": ok.suspect,
        "root": ok.commitment["body"]["root"],
    }
    if not no_query:
        _threads(threads)
        target = model or ok.suspect
        lm = _load(target, chat_format)
        r = verify(lm, ok.fingerprints, mode="auto")
        out |= {
            "model": target,
            "matched": int(sum(r.matches[0])),
            "fp_accuracy": r.accuracy,
            "ownership_log10_p": r.log10_p,
            "log10_alpha": log10_alpha,
            "holds": r.log10_p < log10_alpha,
            "mode": r.mode,
        }

    def text(o: dict[str, Any]) -> None:
        click.echo(
            f"signatures ok; {o['revealed']} Merkle proofs ok against root "
            f"{o['root'][:16]}... ({o['committed']} committed)"
        )
        if "holds" in o:
            click.echo(
                f"{o['model']}: {o['matched']}/{o['revealed']} revealed keys answered; "
                f"log10 p = {o['ownership_log10_p']:.2f} -> claim "
                f"{'HOLDS' if o['holds'] else 'NOT SUPPORTED'}"
            )

    emit(out, fmt, text)
    if "holds" in out and not out["holds"]:  # exit 1: the claim is genuine but not supported
        from aisec.errors import AisecError

        raise AisecError(
            f"the claim is not supported by {out['model']}: log10 p = "
            f"{out['ownership_log10_p']:.2f} is not below {log10_alpha}"
        )


@command.command("attack")
@click.option("--model", default=DEFAULT_MODEL, show_default=True, help="The base model.")
@click.option(
    "--strategy", type=click.Choice(STRATEGY_CHOICES), default="perinucleus", show_default=True
)
@click.option("--n", "n", type=int, default=16, show_default=True)
@_method_option
@click.option("--epochs", type=int, default=10, show_default=True)
@click.option("--batch-size", type=int, default=8, show_default=True)
@_lr_option
@click.option("--averaging", type=float, default=0.1, show_default=True, help="0: off.")
@click.option("--top-layers", type=int, default=8, show_default=True, help="0: all layers.")
@click.option("--end-of-turn/--no-end-of-turn", default=False, show_default=True)
@click.option("--anchor-weight", type=float, default=1.0, show_default=True)
@click.option(
    "--suspects",
    default="",
    help="Comma list of unfingerprinted models to query for false claims "
    "(gemma-3-270m, qwen2.5-coder-0.5b-instruct).",
)
@click.option(
    "--timing/--no-timing",
    default=False,
    show_default=True,
    help="Also time plain SFT of the same tokens (insert_seconds_ratio).",
)
@click.option(
    "--attacks",
    default="sft,int8,system-prompts,sample",
    show_default=True,
    help="Comma list of sft, int8, merge, system-prompts, sample.",
)
@click.option(
    "--utility/--no-utility",
    default=False,
    show_default=True,
    help="Also measure held-out perplexity, an MMLU and a GSM8K slice before and after.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    required=True,
    help="Work directory (weights) and result.json.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@threads_option
@format_option
def attack_cmd(
    model: str,
    strategy: str,
    n: int,
    method: str,
    epochs: int,
    batch_size: int,
    learning_rate: float | None,
    averaging: float,
    top_layers: int,
    end_of_turn: bool,
    anchor_weight: float,
    suspects: str,
    timing: bool,
    attacks: str,
    utility: bool,
    out: str,
    seed: int,
    threads: int,
    fmt: str,
) -> None:
    """Fingerprint MODEL, then measure what survives each attack (one end-to-end run)."""
    from aisec.errors import ParameterError
    from aisec.io import atomic_write_json
    from aisec.provenance.fingerprint.experiment import ExperimentConfig, run_experiment

    names = {a.strip() for a in attacks.split(",") if a.strip()}
    known = {"sft", "int8", "merge", "system-prompts", "sample"}
    if names - known:
        raise ParameterError(
            "--attacks",
            f"must be among {', '.join(sorted(known))}",
            ",".join(sorted(names - known)),
        )
    _threads(threads)
    cfg = ExperimentConfig(
        model=model,
        strategy=strategy,
        n=n,
        method=method,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=_learning_rate(method, learning_rate),
        averaging=averaging,
        top_layers=top_layers,
        end_of_turn=end_of_turn,
        anchor_weight=anchor_weight,
        suspects=tuple(x.strip() for x in suspects.split(",") if x.strip()),
        time_baseline=timing,
        sft="sft" in names,
        int8="int8" in names,
        merge="merge" in names,
        system_prompts=10 if "system-prompts" in names else 0,
        sample="sample" in names,
        ppl_texts=16 if utility else 0,
        mmlu=100 if utility else 0,
        gsm8k=8 if utility else 0,
        seed=seed,
    )
    res = run_experiment(cfg, out, report=lambda f, m: _log(f"[{f:.0%}] {m}"))
    atomic_write_json(Path(out) / "result.json", res | {"config": cfg.model_dump(mode="json")})
    emit(
        res,
        fmt,
        lambda r: click.echo(
            json.dumps(
                {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}, indent=1
            )
        ),
    )
