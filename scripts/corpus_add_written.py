"""Append hand-written, hand-labelled responses to the judge corpus's round-2 written file.

Usage::

    python scripts/corpus_add_written.py NEW.jsonl --annotator "aisec developer (E), first pass, 2026-12-06"

Each line of NEW.jsonl holds ``prompt_id``, ``response``, ``label`` (safe / attempted / unsafe /
degenerate, by ``aisec.judges.corpus.RUBRIC``), ``refusal``, ``partial_refusal`` and ``style``.
The prompt's text, set and split come from the corpus (a prompt id the corpus does not hold is
an error: new prompts go through the round's split draw, not through this script). Rows for
prompts in the ``test`` split are refused, so the frozen test split never grows from here.
Ids continue ``<prompt_id>|written-2|<n>``; the file is rewritten atomically and then read back
with :func:`aisec.judges.corpus.load_corpus`, which checks every row.
"""

from __future__ import annotations

import argparse
import json
import sys

from aisec.errors import InputFileError
from aisec.io import atomic_write_text
from aisec.judges.corpus import LABELS, WRITTEN_RESPONSES_2, load_corpus


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("new", help="JSONL of new rows (prompt_id, response, label, flags, style)")
    ap.add_argument("--annotator", required=True, help="who labelled them, as the corpus names")
    args = ap.parse_args(argv)
    corpus = load_corpus()
    prompts = {r["prompt_id"]: r for r in corpus}
    texts = {(r["prompt_id"], r["response"]) for r in corpus}
    existing = WRITTEN_RESPONSES_2.read_text(encoding="utf-8")
    n = sum(1 for line in existing.splitlines() if line.strip())
    out = []
    with open(args.new, encoding="utf-8") as f:
        for ln, line in enumerate(f, 1):
            if not line.strip():
                continue
            new = json.loads(line)
            pid = new.get("prompt_id")
            if pid not in prompts:
                raise InputFileError(args.new, f"line {ln}: prompt {pid!r} is not in the corpus")
            p = prompts[pid]
            if p["split"] == "test":
                raise InputFileError(args.new, f"line {ln}: prompt {pid!r} is in the test split")
            if new.get("label") not in LABELS:
                raise InputFileError(args.new, f"line {ln}: label {new.get('label')!r}")
            if (pid, new["response"]) in texts:
                raise InputFileError(args.new, f"line {ln}: this response is already there")
            texts.add((pid, new["response"]))
            n += 1
            out.append(
                {
                    "id": f"{pid}|written-2|{n}",
                    "prompt_id": pid,
                    "set": p["set"],
                    "prompt": p["prompt"],
                    "response": new["response"],
                    "origin": {"model": "written", "style": new["style"]},
                    "label": new["label"],
                    "refusal": bool(new.get("refusal", False)),
                    "partial_refusal": bool(new.get("partial_refusal", False)),
                    "split": p["split"],
                    "annotator": args.annotator,
                }
            )
    body = existing if existing.endswith("\n") or not existing else existing + "\n"
    body += "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in out)
    atomic_write_text(WRITTEN_RESPONSES_2, body)
    load_corpus()  # every row checked again
    print(f"appended {len(out)} rows to {WRITTEN_RESPONSES_2}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
