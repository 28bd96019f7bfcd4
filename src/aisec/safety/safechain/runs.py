"""SafeChain runs: resumable generation into JSONL, judging every part, summaries, the dataset.

A run directory holds ``run.json`` (the settings that change a sample), ``samples.jsonl`` (one
row per prompt: its K samples, keyed by the settings, the prompt's id and its text),
``verdicts-<judge>-<part>.jsonl`` (keyed like the samples) and ``summary.json``. Logs go through
:class:`aisec.io.JsonlStore`: a run stopped part-way resumes from the rows it finished.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from aisec.errors import ConfigError, DataError, InputFileError
from aisec.io import JsonlStore, atomic_write_json, fingerprint, json_safe
from aisec.metrics.safety import cross_table, safety_at_k
from aisec.safety.safechain.core import EvalConfig, EvalItem
from aisec.safety.safechain.strategies import check_prompt_lengths, generate_samples

__all__ = [
    "run_settings",
    "sample_key",
    "run_generation",
    "judge_rows",
    "summarize",
    "evaluate",
    "build_dataset",
    "dataset_sft_examples",
]

#: Settings of EvalConfig that cannot change a sample (the batch only groups independent samples).
_NOT_SAMPLE_SETTINGS = frozenset({"batch_size"})


def _read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSONL log; a torn last line (a crash mid-write) is skipped and reported."""
    return JsonlStore(path).rows()


def run_settings(lm: Any, cfg: EvalConfig, model_name: str) -> dict[str, Any]:
    """Every setting that changes a sample: the model, its chat template (and any fallback to a
    built-in one), the backend that runs it, the strategy and every decoding parameter, K and
    the seed."""
    chat = lm.chat
    return {
        "format": 2,
        "model": model_name,
        "chat_format": chat.name,
        "chat_template": fingerprint(chat.template),
        "chat_template_fallback": getattr(lm, "chat_template_fallback", None),
        # llama.cpp and transformers draw different samples: a run never mixes the two
        "backend": getattr(lm, "backend", None),
        "config": {
            k: v for k, v in cfg.model_dump(mode="json").items() if k not in _NOT_SAMPLE_SETTINGS
        },
    }


def sample_key(settings_key: str, item: EvalItem) -> str:
    """The resume key of an item's K samples: the run settings, the prompt's id and its text."""
    return fingerprint({"run": settings_key, "id": item.id, "instruction": item.instruction})


def _changed(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    out: list[str] = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _changed(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(prefix + k)
    return out


def _check_run(out: Path, meta: dict[str, Any]) -> None:
    f = out / "run.json"
    if f.exists():
        try:
            old = json.loads(f.read_text(encoding="utf-8"))
        except ValueError:
            raise InputFileError(f, "is not JSON; use another --out") from None
        if not isinstance(old, dict) or old.get("format") != meta["format"]:
            raise ConfigError(
                f"{out} holds a run written by an older aisec (its resume key did "
                "not cover the prompts' text); use another --out"
            )
        if old != meta:
            raise ConfigError(
                f"{out} holds a run with different settings "
                f"({', '.join(_changed(old, meta))}); use another --out or the "
                "same settings to resume"
            )
    else:
        atomic_write_json(f, meta)


def run_generation(
    lm: Any,
    items: Sequence[EvalItem],
    cfg: EvalConfig,
    out_dir: str | Path,
    *,
    model_name: str,
    progress: Callable[[int, int], None] | None = None,
    prompts_per_chunk: int | None = None,
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Generate K samples per item into ``out_dir/samples.jsonl``, resuming finished prompts.

    A prompt is finished when a row holds its K samples under the same key: a hash of the run
    settings (:func:`run_settings`), the prompt's id and its text. A prompt whose text changed
    under the same id is generated again; ``run.json`` refuses a directory holding a run with
    other settings. Every prompt still to generate is checked against the model's context before
    the first one is generated (:func:`check_prompt_lengths`).

    Returns:
        (rows in item order, timing with ``tokens``, ``seconds``, ``tokens_per_s``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    settings = run_settings(lm, cfg, model_name)
    _check_run(out, settings)
    skey = fingerprint(settings)
    keys = {it.id: sample_key(skey, it) for it in items}
    store = JsonlStore(out / "samples.jsonl", key="key")
    done = {k: r for k, r in store.latest().items() if len(r.get("samples", [])) == cfg.k}
    todo = [it for it in items if keys[it.id] not in done]
    check_prompt_lengths(lm, todo, cfg)  # every prompt, before any row is generated
    chunk = prompts_per_chunk or max(1, cfg.batch_size // max(1, min(cfg.k, cfg.batch_size)))
    tokens, seconds = 0, 0.0
    if progress is not None:
        progress(len(items) - len(todo), len(items))
    for start in range(0, len(todo), chunk):
        part = todo[start : start + chunk]
        t0 = time.perf_counter()
        samples = generate_samples(lm, part, cfg)
        seconds += time.perf_counter() - t0
        rows = []
        for it, ss in zip(part, samples, strict=True):
            tokens += sum(s.n_tokens for s in ss)
            rows.append(
                {
                    "id": it.id,
                    "key": keys[it.id],
                    "instruction": it.instruction,
                    "source": it.source,
                    "category": it.category,
                    "label": it.label,
                    "strategy": cfg.strategy,
                    "chat_format": lm.chat.name,
                    "chat_template_fallback": getattr(lm, "chat_template_fallback", None),
                    "samples": [s.__dict__ for s in ss],
                }
            )
        store.append(rows)
        for r in rows:
            done[r["key"]] = r
        if progress is not None:
            progress(len(items) - len(todo) + start + len(part), len(items))
    timing = {
        "tokens": float(tokens),
        "seconds": seconds,
        "tokens_per_s": tokens / seconds if seconds > 0 else float("nan"),
    }
    return [done[keys[it.id]] for it in items], timing


def judge_rows(
    rows: Sequence[dict[str, Any]], judge: Any, part: str, out_dir: str | Path, judge_name: str
) -> np.ndarray:
    """Verdicts of ``judge`` on ``part`` of every sample, cached in ``verdicts-<judge>-<part>.jsonl``.

    Each cached row carries the judge's fingerprint (:meth:`aisec.judges.Judge.fingerprint`: its
    weights, threshold or grader model); a row cached by another fit of the judge (or by a
    version that did not record one) is judged again, never reused.

    Returns:
        (P, K) object matrix: True = safe, False = unsafe, None = unjudged (no verdict reached).
    """
    path = Path(out_dir) / f"verdicts-{re.sub(r'[^A-Za-z0-9_.-]+', '_', judge_name)}-{part}.jsonl"
    store = JsonlStore(path, key="key")
    judge_fp = judge.fingerprint() if hasattr(judge, "fingerprint") else None
    cached = {k: v for k, v in store.latest().items() if v.get("judge") == judge_fp}
    field = {"response": "response", "thought": "thought", "answer": "answer"}[part]
    todo = [r for r in rows if r["key"] not in cached]
    if todo:
        by_key = {r["key"]: r for r in todo}
        prompts, texts, owners = [], [], []
        for r in todo:
            for s in r["samples"]:
                prompts.append(r["instruction"])
                texts.append(s[field])
                owners.append(r["key"])
        # the judge gets the part itself ("response" part of an already split text = as is)
        verdicts = judge.judge(prompts, texts, "response")
        new: dict[str, dict[str, Any]] = {}
        for o, v in zip(owners, verdicts, strict=True):
            new.setdefault(
                o,
                {
                    "id": by_key[o]["id"],
                    "key": o,
                    "judge": judge_fp,
                    "safe": [],
                    "score": [],
                    "reason": [],
                },
            )
            new[o]["safe"].append(v.safe_entry)  # None: no verdict; "degenerate": nothing to judge
            new[o]["score"].append(v.score)
            new[o]["reason"].append(v.reason)
        store.append(new.values())
        cached.update(new)
    return np.array([cached[r["key"]]["safe"] for r in rows], dtype=object)


def summarize(safe: dict[str, np.ndarray]) -> dict[str, Any]:
    """Safe@1 / Safe@K / ConsSafe@K per part, and the thought-vs-answer cross-table.

    Unjudged samples (None) are never counted safe or unsafe: each part reports how many there
    were (``unjudged``, ``prompts_with_unjudged``, ``prompts_unjudged``, ``undecided_*``) and the
    rates leave them out (:mod:`aisec.metrics.safety`). Undefined values are None, never NaN.

    Args:
        safe: part name -> (P, K) matrix of True (safe) / False (unsafe) / None (unjudged).
    """
    out: dict[str, Any] = {}
    for part, m in safe.items():
        out[part] = safety_at_k(m).to_dict()
    if "thought" in safe and "answer" in safe:
        out["thought_vs_answer"] = cross_table(safe["thought"], safe["answer"])
    return json_safe(out)


def evaluate(
    lm: Any,
    items: Sequence[EvalItem],
    cfg: EvalConfig,
    judges: dict[str, Any],
    out_dir: str | Path,
    *,
    model_name: str,
    parts: Sequence[str] = ("response", "thought", "answer"),
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Generate (resumably), judge every part with every judge, write ``summary.json``.

    Returns:
        the summary (JSON: undefined values are None, never NaN): per judge, per part metrics
        with their unjudged counts; generation timing; run settings, the chat format and any
        fallback to a built-in chat template.
    """
    if not items:
        raise DataError("the evaluation set is empty")
    rows, timing = run_generation(lm, items, cfg, out_dir, model_name=model_name, progress=progress)
    results: dict[str, Any] = {}
    for jname, judge in judges.items():
        safe = {part: judge_rows(rows, judge, part, out_dir, jname) for part in parts}
        results[jname] = summarize(safe)
    summary = json_safe(
        {
            "model": model_name,
            "strategy": cfg.strategy,
            "k": cfg.k,
            "prompts": len(items),
            "chat_format": lm.chat.name,
            "chat_template_fallback": getattr(lm, "chat_template_fallback", None),
            "backend": getattr(lm, "backend", None),
            "backend_reason": getattr(lm, "backend_reason", None),
            "judge_backends": {
                j: {"backend": jm.backend, "backend_reason": jm.backend_reason}
                for j, jm in ((j, getattr(v, "lm", None)) for j, v in judges.items())
                if jm is not None
            },
            "judge_fingerprints": {
                j: v.fingerprint() for j, v in judges.items() if hasattr(v, "fingerprint")
            },
            "config": cfg.model_dump(mode="json"),
            "generation": timing,
            "judges": results,
        }
    )
    atomic_write_json(Path(out_dir) / "summary.json", summary)
    return summary


# --- the SafeChain dataset ---------------------------------------------------------------------


def build_dataset(
    lm: Any,
    items: Sequence[EvalItem],
    cfg: EvalConfig,
    judge: Any,
    judge_name: str,
    out_dir: str | Path,
    *,
    model_name: str,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """The SafeChain recipe: K samples per instruction, keep instructions whose K samples are
    all judged safe (on the full response), pick one of the K at random -> ``dataset.jsonl``.
    An instruction with an unjudged sample is not kept (``instructions_with_unjudged``).

    Returns:
        counts (instructions, kept) and the dataset path.
    """
    if not items:
        raise DataError("the instruction pool is empty")
    rows, timing = run_generation(lm, items, cfg, out_dir, model_name=model_name, progress=progress)
    safe = judge_rows(rows, judge, "response", out_dir, judge_name)
    rng = np.random.default_rng([cfg.seed, 3])
    kept = []
    all_safe = [all(x is True for x in s) for s in safe]
    unjudged = [any(x is None for x in s) for s in safe]
    for r, ok in zip(rows, all_safe, strict=True):
        pick = int(rng.integers(cfg.k))
        if ok:
            smp = r["samples"][pick]
            kept.append(
                {
                    "id": r["id"],
                    "instruction": r["instruction"],
                    "response": smp["response"],
                    "provenance": {
                        "model": model_name,
                        "judge": judge_name,
                        "k": cfg.k,
                        "sample": pick,
                        "seed": smp["seed"],
                        "source": r["source"],
                        "category": r["category"],
                        "strategy": cfg.strategy,
                        "temperature": cfg.temperature,
                    },
                }
            )
    path = Path(out_dir) / "dataset.jsonl"
    from aisec.io import atomic_write_text

    atomic_write_text(path, "".join(json.dumps(k, ensure_ascii=False) + "\n" for k in kept))
    by_cat: dict[str, list[int]] = {}
    for r, ok in zip(rows, all_safe, strict=True):
        by_cat.setdefault(r["category"] or "-", [0, 0])
        by_cat[r["category"] or "-"][0] += 1
        by_cat[r["category"] or "-"][1] += int(ok)
    info = {
        "instructions": len(rows),
        "kept": len(kept),
        "path": str(path),
        "k": cfg.k,
        "instructions_with_unjudged": int(sum(unjudged)),
        "by_category": {c: {"instructions": a, "kept": b} for c, (a, b) in by_cat.items()},
        "generation": timing,
    }
    info = json_safe(info)
    atomic_write_json(Path(out_dir) / "dataset_info.json", info)
    return info


def dataset_sft_examples(path: str | Path, chat: Any) -> list[Any]:
    """SFT pairs from a SafeChain dataset: prompt = the chat-rendered instruction (opening the
    thought for thinking templates), completion = the kept response + end of turn."""
    from aisec.llm.finetune import SFTExample

    p = Path(path)
    rows = _read_rows(p)
    if not rows:
        raise InputFileError(
            p, "holds no dataset rows (build one with `aisec safechain build-dataset`)"
        )
    out = []
    for r in rows:
        prompt = chat.user(r["instruction"])
        resp = r["response"]
        if chat.tags and resp.startswith(chat.tags.open):
            resp = resp[len(chat.tags.open) :].lstrip("\n")
        out.append(SFTExample(prompt, resp + chat.end_of_turn))
    return out
