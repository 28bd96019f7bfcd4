"""SafeChain's evaluation sets (composed offline), prompt files (JSONL or CSV) and the
WildJailbreak-style instruction pool of the dataset recipe."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from aisec.errors import DataError, InputFileError, ParameterError
from aisec.io import iter_records
from aisec.safety.safechain.core import EvalItem

__all__ = ["eval_set", "load_prompt_file", "dataset_instructions"]

_SETS = ("strongreject-small", "strongreject", "harmbench", "advbench", "wildjailbreak-style")


def eval_set(
    name: str, n: int | None = None, seed: int = 0, max_template_chars: int = 1200
) -> list[EvalItem]:
    """An evaluation set composed offline.

    Args:
        name: ``strongreject-small`` (60), ``strongreject`` (313), ``harmbench`` (test split),
            ``advbench`` (520), ``wildjailbreak-style`` (adversarial: StrongREJECT, HarmBench and
            AdvBench prompts of at most 400 characters inserted into PyRIT jailbreak templates
            of at most ``max_template_chars`` characters, one seeded random template per prompt; built
            like WildJailbreak's adversarial-harmful split but from different sources), or
            ``file:PATH`` (JSONL or CSV, see :func:`load_prompt_file`).
        n: keep a seeded random subset of this size (all when None).
        seed: subset and template choice.
    """
    from aisec.assets import load_dataset

    if name.startswith("file:"):
        items = load_prompt_file(name[5:])
    elif name in ("strongreject-small", "strongreject", "harmbench", "advbench"):
        ps = load_dataset(name)
        items = [EvalItem(p.id, p.text, p.source or name, p.category) for p in ps.prompts]
    elif name == "wildjailbreak-style":
        rng = np.random.default_rng(seed)
        base = []
        for src in ("strongreject", "harmbench", "advbench"):
            base.extend(p for p in load_dataset(src).prompts if len(p.text) <= 400)
        templates = [
            t for t in load_dataset("jailbreak-templates") if len(t.text) <= max_template_chars
        ]
        if not templates:
            raise DataError(f"no jailbreak template is at most {max_template_chars} characters")
        items = []
        for p in base:
            t = templates[int(rng.integers(len(templates)))]
            items.append(
                EvalItem(
                    f"wjs-{p.id}-{t.id}",
                    t.text.replace("{prompt}", p.text),
                    f"{p.source}+template:{t.id}",
                    p.category,
                )
            )
    else:
        raise ParameterError("eval set", f"must be one of {', '.join(_SETS)} or file:PATH", name)
    if n is not None:
        if n < 1:
            raise ParameterError("n", "must be >= 1", n)
        if n < len(items):
            pick = np.sort(np.random.default_rng([seed, 1]).choice(len(items), n, replace=False))
            items = [items[int(i)] for i in pick]
    return items


def _row_id(p: Path, ln: int, row: dict[str, Any]) -> str:
    raw = row.get("id")
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return f"line-{ln}"
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise InputFileError(p, f"line {ln}: 'id' must be a string or a number; got {raw!r}"[:160])
    return str(raw).strip()


def load_prompt_file(path: str | os.PathLike[str]) -> list[EvalItem]:
    """Prompts from a JSONL or CSV file (CSV when the name ends in ``.csv``).

    Each row needs a non-empty ``prompt`` (or ``instruction``); optional ``id``, ``source``,
    ``category`` (or ``type``, as in XSTest) and ``label`` (e.g. XSTest's ``safe``/``unsafe``).
    A row whose ``id`` is missing, null or empty gets ``line-N`` (N = its line in the file);
    ids must be unique. Errors are one-line :class:`InputFileError` naming the file and line.
    """
    p = Path(path)
    items = []
    first_line: dict[str, int] = {}
    for ln, row in iter_records(p):
        text = row.get("prompt", row.get("instruction"))
        if not isinstance(text, str) or not text.strip():
            raise InputFileError(p, f"line {ln} has no non-empty 'prompt' or 'instruction'")
        rid = _row_id(p, ln, row)
        if rid in first_line:
            raise InputFileError(p, f"line {ln} repeats id {rid!r} of line {first_line[rid]}")
        first_line[rid] = ln
        category = row.get("category") or row.get("type") or ""
        items.append(
            EvalItem(
                rid,
                text,
                str(row.get("source") or p.name),
                str(category),
                str(row.get("label") or ""),
            )
        )
    if not items:
        raise InputFileError(
            p, "holds no prompts (expected JSONL rows or CSV lines with a 'prompt' field)"
        )
    return items


def dataset_instructions(n_harmful: int, n_benign: int, seed: int = 0) -> list[EvalItem]:
    """A WildJailbreak-style instruction pool built offline: harmful vanilla (AdvBench),
    harmful adversarial (HarmBench in jailbreak templates), benign vanilla (GSM8K train
    questions) and benign adversarial (GSM8K questions in the same templates), in equal shares
    of each half. Sources are recorded on every item."""
    from aisec.assets import load_dataset

    rng = np.random.default_rng([seed, 2])
    templates = [t for t in load_dataset("jailbreak-templates") if len(t.text) <= 1200]
    harm_v = list(load_dataset("advbench").prompts)
    # short behaviours only: HarmBench's contextual ones carry pages of context
    harm_a = [p for p in load_dataset("harmbench").prompts if len(p.text) <= 400]
    ben = load_dataset("gsm8k", split="train")
    out: list[EvalItem] = []
    hv, ha = n_harmful - n_harmful // 2, n_harmful // 2
    bv, ba = n_benign - n_benign // 2, n_benign // 2
    for p in (harm_v[int(i)] for i in rng.choice(len(harm_v), hv, replace=False)):
        out.append(EvalItem(f"hv-{p.id}", p.text, "advbench", "harmful-vanilla"))
    for p in (harm_a[int(i)] for i in rng.choice(len(harm_a), ha, replace=False)):
        t = templates[int(rng.integers(len(templates)))]
        out.append(
            EvalItem(
                f"ha-{p.id}-{t.id}",
                t.text.replace("{prompt}", p.text),
                f"harmbench+template:{t.id}",
                "harmful-adversarial",
            )
        )
    idx = rng.choice(len(ben), bv + ba, replace=False)
    for j, i in enumerate(idx):
        q = str(ben[int(i)]["question"])
        if j < bv:
            out.append(EvalItem(f"bv-gsm8k-{int(i)}", q, "gsm8k-train", "benign-vanilla"))
        else:
            t = templates[int(rng.integers(len(templates)))]
            out.append(
                EvalItem(
                    f"ba-gsm8k-{int(i)}-{t.id}",
                    t.text.replace("{prompt}", q),
                    f"gsm8k-train+template:{t.id}",
                    "benign-adversarial",
                )
            )
    return out
