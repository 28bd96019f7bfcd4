"""llm/ scenarios: generation speed of each backend on the embedded SmolLM2-135M-Instruct.

``llm.throughput`` runs the same prompts, the same number of new tokens (fixed length: EOS is
ignored) and the same thread count through transformers one prompt at a time, transformers
batched, and llama.cpp batched (the default path) and one at a time, in one process, and reports
tokens/s, prompt tokens/s and the ratios the llama.cpp backend is held to. ``llm.e2e`` (full
suite) times a small SafeChain strategies run and an LLM-judge run on each backend.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from aisec.bench import Headline, Result, scenario

MODEL = "smollm2-135m-instruct"

# Benign, varied chat requests (no digits, so both backends' tokenizers agree on them).
PROMPTS = (
    "Explain why the sky looks blue during the day.",
    "Write a short poem about autumn leaves.",
    "What are good habits for writing clean code?",
    "Describe how a bicycle gear system works.",
    "Give me advice for a first job interview.",
    "Summarise the water cycle for a child.",
    "What is the difference between weather and climate?",
    "Suggest a simple recipe for vegetable soup.",
    "How do bees make honey?",
    "Why do we need sleep?",
    "Tell me a story about a lost dog finding its way home.",
    "What should I pack for a weekend hiking trip?",
    "Explain what a database index is.",
    "How can I improve my handwriting?",
    "What makes a good team leader?",
    "Describe the taste of a lemon to someone who never had one.",
)


@contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@scenario(
    "llm.throughput",
    system="llm",
    # threads 2: both backends get the whole 2-core machine the issue measured on (transformers
    # gains nothing from the second core at this size, llama.cpp does); set threads=1 to compare
    # one core each (quiet machine: 4.5-5.0x single, 2.0-2.1x batched)
    params={"n_prompts": 4, "max_new_tokens": 64, "batch_size": 4, "threads": 2},
    full_params={"n_prompts": 16, "max_new_tokens": 128, "batch_size": 16},
    description="Tokens/s of llama.cpp (batched and one at a time) vs transformers (one at a "
    "time and batched), same prompts, lengths and threads",
    headline=[
        Headline(
            "llamacpp_over_single",
            ">= 5",
            "llama.cpp / transformers single",
            "x",
            why="issue 13: llama.cpp speed on CPU, at least 5x our single stream",
        ),
        Headline(
            "llamacpp_over_batched",
            ">= 2",
            "llama.cpp / transformers batched",
            "x",
            why="issue 13: at least 2x our best batched figure",
        ),
        Headline("tokens_per_s_llamacpp", label="llama.cpp tokens/s", unit="/s"),
    ],
)
def throughput(params: Mapping[str, Any], ctx: Any) -> Result:
    from aisec.llm import GenerationConfig, load_causal_lm
    from aisec.llm.llamacpp import load_llamacpp

    n = int(params["n_prompts"])
    if not 1 <= n <= len(PROMPTS):
        from aisec.errors import ParameterError

        raise ParameterError("llm.throughput.n_prompts", f"must be in 1..{len(PROMPTS)}", n)
    threads = int(params["threads"])
    bs = int(params["batch_size"])
    cfg = GenerationConfig(max_new_tokens=int(params["max_new_tokens"]), stop_at_eos=False)
    warm = GenerationConfig(max_new_tokens=2)
    one = GenerationConfig(max_new_tokens=1)
    with _torch_threads(threads):
        tf = load_causal_lm(MODEL)
        prompts = [tf.chat.user(p) for p in PROMPTS[:n]]
        tf.generate(prompts[:1], warm)
        t0 = time.perf_counter()
        single = [tf.generate([p], cfg, batch_size=1)[0] for p in prompts]
        t_single = time.perf_counter() - t0
        ctx.report(0.3, "transformers, one at a time")
        t0 = time.perf_counter()
        batched = tf.generate(prompts, cfg, batch_size=bs)
        t_batched = time.perf_counter() - t0
        ctx.report(0.5, "transformers, batched")
        t0 = time.perf_counter()
        tf.generate(prompts, one, batch_size=bs)
        t_tf_prompt = time.perf_counter() - t0
        n_prompt_tokens = sum(tf.count_tokens(p) for p in prompts)
        del tf

    def llamacpp_speeds(lc: Any) -> dict[str, Any]:
        lc.generate(prompts[:2], warm, batch_size=2)  # both contexts made before timing
        t0 = time.perf_counter()
        together = lc.generate(prompts, cfg, batch_size=bs)  # the default: decoded together
        t_together = time.perf_counter() - t0
        alone = []
        t0 = time.perf_counter()
        for p in prompts:
            lc.reset()  # every prompt pays its own prompt processing, as with transformers
            alone.append(lc.generate([p], cfg)[0])
        t_alone = time.perf_counter() - t0
        t0 = time.perf_counter()
        for p in prompts:
            lc.reset()
            lc.generate([p], one)
        t_prompt = time.perf_counter() - t0
        return {
            "batched": sum(g.n_tokens for g in together) / t_together,
            "single": sum(g.n_tokens for g in alone) / t_alone,
            "prompt": sum(lc.count_tokens(p) for p in prompts) / t_prompt,
            "texts": [g.text for g in together],
            "texts_single": [g.text for g in alone],
        }

    lc = load_llamacpp(MODEL, n_threads=threads)  # the default: the F16 export of the model
    f16 = llamacpp_speeds(lc)
    ids = [lc.encode(p) for p in prompts]
    tok_single = [lc.generate_ids(x, cfg) for x in ids]
    tok_batched = lc.generate_ids_batch(ids, cfg, batch_size=bs)
    del lc
    ctx.report(0.8, "llama.cpp F16")
    q41 = llamacpp_speeds(load_llamacpp(MODEL, quant="shipped", n_threads=threads))
    ctx.report(0.95, "llama.cpp shipped Q4_1")
    tps_single = sum(g.n_tokens for g in single) / t_single
    tps_batched = sum(g.n_tokens for g in batched) / t_batched
    ref = [g.text for g in single]
    same_tokens = sum(a == b for a, b in zip(tok_single, tok_batched, strict=True))
    same_pos = sum(
        sum(u == v for u, v in zip(a, b, strict=False))
        for a, b in zip(tok_single, tok_batched, strict=True)
    )
    return Result(
        metrics={
            "tokens_per_s_llamacpp": f16["batched"],
            "tokens_per_s_llamacpp_single": f16["single"],
            "tokens_per_s_single": tps_single,
            "tokens_per_s_batched": tps_batched,
            "llamacpp_over_single": f16["batched"] / tps_single,
            "llamacpp_over_batched": f16["batched"] / tps_batched,
            "llamacpp_single_over_single": f16["single"] / tps_single,
            "llamacpp_batched_over_llamacpp_single": f16["batched"] / f16["single"],
            "prompt_tokens_per_s_llamacpp": f16["prompt"],
            "prompt_tokens_per_s_transformers": n_prompt_tokens / t_tf_prompt,
            "tokens_per_s_llamacpp_q4_1": q41["batched"],
            "tokens_per_s_llamacpp_q4_1_single": q41["single"],
            "batched_greedy_equal_single_llamacpp": same_tokens / n,
            "batched_greedy_token_agreement_llamacpp": same_pos / max(1, sum(map(len, tok_single))),
            "greedy_text_agreement": sum(
                a == b for a, b in zip(ref, f16["texts_single"], strict=True)
            )
            / n,
            "greedy_text_agreement_batched": sum(
                a == b for a, b in zip(ref, f16["texts"], strict=True)
            )
            / n,
            "greedy_text_agreement_q4_1": sum(
                a == b for a, b in zip(ref, q41["texts_single"], strict=True)
            )
            / n,
            "prompts": n,
            "max_new_tokens": int(params["max_new_tokens"]),
            "batch_size": bs,
            "threads": threads,
        },
        labels={
            "model": MODEL,
            "llamacpp_weights": "F16 export of the model (load_llamacpp default); q4_1: the shipped GGUF",
            "transformers_weights": "the shipped GGUF de-quantised to fp32",
        },
        notes=[
            f"{threads} thread(s) for both backends; same prompts; fixed length (EOS ignored); "
            f"batched: batch_size {bs} for both backends",
            "tokens_per_s_llamacpp: the default generate path, up to batch_size sequences decoded "
            "together in one llama.cpp context; _single: one prompt at a time, prompt cache reset "
            "before each prompt",
            "prompt tokens/s: one generated token per prompt (transformers batched, llama.cpp one "
            "prompt at a time)",
            "batched_greedy_*: llama.cpp batched vs one at a time, token ids (batched matrix "
            "products round differently and can flip near-tied greedy choices)",
            "greedy_text_agreement*: share of prompts whose greedy text equals transformers' "
            "one-at-a-time text",
        ],
    )


@scenario(
    "llm.e2e",
    system="llm",
    params={
        "n": 2,
        "k": 2,
        "max_new_tokens": 24,
        "think_budget": 12,
        "enforce_num": 1,
        "judge_rows": 16,
        "threads": 1,
    },
    full_params={"n": 6, "k": 4, "max_new_tokens": 96, "think_budget": 48, "judge_rows": 60},
    suites=("full",),
    description="End-to-end speed-up of a SafeChain strategies run and an LLM-judge run on the "
    "default backend (auto: llama.cpp) over transformers, same settings",
    headline=[
        Headline(
            "safechain_speedup",
            "> 1",
            "SafeChain strategies speed-up",
            "x",
            why="issue 13: llama.cpp as the default backend speeds up SafeChain end to end",
        ),
        Headline(
            "judges_speedup",
            "> 1",
            "LLM-judge speed-up",
            "x",
            why="issue 13: ... and the judges",
        ),
    ],
)
def e2e(params: Mapping[str, Any], ctx: Any) -> Result:
    from aisec.judges import make_judge
    from aisec.judges.labelled import labelled_set
    from aisec.llm import load_lm
    from aisec.safety.safechain import THINKER_DIR, THINKER_NAME, EvalConfig, eval_set, evaluate

    threads = int(params["threads"])
    items = eval_set("strongreject-small", int(params["n"]), ctx.seed)
    rows = labelled_set()[: int(params["judge_rows"])]
    strategies = ("default", "zerothink", "lessthink", "morethink")
    metrics: dict[str, Any] = {}
    labels: dict[str, str] = {}
    breakdown = []
    for b, backend in enumerate(("transformers", "auto")):
        with _torch_threads(threads):
            lm = load_lm(str(THINKER_DIR), backend=backend, n_threads=threads)
            key = lm.backend if backend == "auto" else backend
            labels[f"backend_{backend}"] = f"{lm.backend}: {lm.backend_reason}"
            tokens, gen_s = 0.0, 0.0
            t0 = time.perf_counter()
            for strat in strategies:
                cfg = EvalConfig(
                    strategy=strat,
                    k=int(params["k"]),
                    max_new_tokens=int(params["max_new_tokens"]),
                    think_budget=int(params["think_budget"]),
                    enforce_num=int(params["enforce_num"]),
                    seed=ctx.seed,
                )
                s = evaluate(
                    lm,
                    items,
                    cfg,
                    {"refusal": make_judge("refusal")},
                    ctx.work_dir / backend / strat,
                    model_name=THINKER_NAME,
                )
                tokens += s["generation"]["tokens"]
                gen_s += s["generation"]["seconds"]
            t_safechain = time.perf_counter() - t0
            del lm
            ctx.report(0.25 + 0.5 * b, f"safechain on {key}")
            jlm = load_lm(MODEL, backend=backend, n_threads=threads)
            judge = make_judge("llama-guard", model=jlm, force=True)
            t0 = time.perf_counter()
            verdicts = judge.judge([r["prompt"] for r in rows], [r["response"] for r in rows])
            t_judges = time.perf_counter() - t0
            labels[f"judge_backend_{backend}"] = f"{jlm.backend}: {jlm.backend_reason}"
            del jlm, judge
        m = {
            "safechain_seconds": t_safechain,
            "safechain_tokens": tokens,
            "safechain_tokens_per_s": tokens / gen_s if gen_s else float("nan"),
            "judges_seconds": t_judges,
            "judges_unsafe": sum(v.state == "unsafe" for v in verdicts),
        }
        for k, v in m.items():
            metrics[f"{k}_{key}"] = v
        breakdown.append({"labels": {"backend": key}, "metrics": m})
        ctx.report(0.5 + 0.5 * b, f"judges on {key}")
    other = [k for k in ("llamacpp", "transformers") if f"safechain_seconds_{k}" in metrics]
    if other == ["transformers"]:  # auto chose transformers: no speed-up to measure, say so
        metrics["safechain_speedup"] = metrics["judges_speedup"] = None
    else:
        metrics["safechain_speedup"] = (
            metrics["safechain_seconds_transformers"] / metrics["safechain_seconds_llamacpp"]
        )
        metrics["judges_speedup"] = (
            metrics["judges_seconds_transformers"] / metrics["judges_seconds_llamacpp"]
        )
    metrics.update({"prompts": len(items), "k": int(params["k"]), "judge_rows": len(rows)})
    return Result(
        metrics=metrics,
        labels=labels,
        breakdown=breakdown,
        notes=[
            "safechain: evaluate() of the thinking model under the four strategies with the "
            "refusal judge, wall time (generation and judging); the backends draw different "
            "samples (numpy vs torch generators), so token counts differ",
            "judges: the Llama Guard 3 prompt read by SmolLM2-135M-Instruct (forced past its "
            "sanity set) on the first judge_rows rows of the labelled corpus, wall time",
            f"{threads} thread(s) for both backends; speed-up = transformers seconds / "
            "llama.cpp seconds",
        ],
    )


@scenario(
    "llm.parity",
    system="llm",
    params={"n_prompts": 100, "max_new_tokens": 32, "quants": ["f16", "q8_0", "q4_0", "q4_k_m"]},
    suites=("full",),
    description="Greedy agreement of the GGUF export (F16, Q8_0, Q4_0, Q4_K_M) with transformers",
    headline=[
        Headline(
            "parity_greedy_f16",
            ">= 0.95",
            "F16 greedy parity",
            why="issue 13: the exported F16 model decodes like transformers on the first "
            "32 tokens of at least 95% of 100 prompts",
        ),
        Headline("parity_greedy_q8_0", label="Q8_0 greedy parity"),
        Headline("parity_greedy_q4_0", label="Q4_0 greedy parity"),
        Headline("parity_greedy_q4_k_m", label="Q4_K_M greedy parity"),
    ],
)
def parity(params: Mapping[str, Any], ctx: Any) -> Result:
    from aisec.assets import load_dataset
    from aisec.llm import GenerationConfig, load_causal_lm
    from aisec.llm.gguf_export import export_cached
    from aisec.llm.llamacpp import LlamaCppLM

    n = int(params["n_prompts"])
    texts = (list(PROMPTS) + load_dataset("advbench").texts())[:n]
    cfg = GenerationConfig(max_new_tokens=int(params["max_new_tokens"]), stop_at_eos=False)
    with _torch_threads(1):
        tf = load_causal_lm(MODEL)
        prompts = [tf.chat.user(t) for t in texts]
        ids = [tf.encode(p) for p in prompts]
        ref = [g.text for g in tf.generate(prompts, cfg, batch_size=16)]
    ctx.report(0.3, "transformers")
    metrics: dict[str, Any] = {"prompts": n, "max_new_tokens": cfg.max_new_tokens}
    breakdown = []
    quants = list(params["quants"])
    for i, q in enumerate(quants):
        lc = LlamaCppLM(export_cached(MODEL, quant=q).path, n_threads=1)
        got = [lc.decode(lc.generate_ids(x, cfg)) for x in ids]
        same = [a == b for a, b in zip(ref, got, strict=True)]
        prefix = [len(_common_prefix(a, b)) / max(1, len(a)) for a, b in zip(ref, got, strict=True)]
        tok_same = sum(lc.encode(p) == x for p, x in zip(prompts, ids, strict=True)) / n
        metrics[f"parity_greedy_{q}"] = sum(same) / n
        metrics[f"mean_shared_prefix_{q}"] = sum(prefix) / n
        metrics[f"tokenizer_agreement_{q}"] = tok_same
        breakdown.append(
            {
                "labels": {"quant": q},
                "metrics": {
                    "parity_greedy": sum(same) / n,
                    "mean_shared_prefix": sum(prefix) / n,
                    "tokenizer_agreement": tok_same,
                },
            }
        )
        ctx.report(0.3 + 0.7 * (i + 1) / len(quants), q)
    return Result(
        metrics=metrics,
        labels={"model": MODEL},
        breakdown=breakdown,
        notes=[
            "reference: transformers fp32 on the de-quantised embedded GGUF, greedy, EOS ignored; "
            "llama.cpp decodes the same prompt token ids from the exported GGUF",
            "parity: the 32-token greedy texts are identical; mean_shared_prefix: share of "
            "the reference text both agree on from the start",
            "prompts: the 16 throughput prompts, then AdvBench requests",
        ],
    )


def _common_prefix(a: str, b: str) -> str:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return a[:n]


@scenario(
    "llm.quantisation",
    system="llm",
    params={
        "safe_n": 6,
        "k": 2,
        "max_new_tokens": 64,
        "gsm8k_n": 10,
        "gsm8k_tokens": 160,
        "parity_tokens": 32,
        "quants": ["f16", "q8_0", "q4_0", "q4_k_m"],
    },
    full_params={"safe_n": 20, "k": 5, "max_new_tokens": 128, "gsm8k_n": 40, "gsm8k_tokens": 256},
    suites=("full",),
    description="Greedy parity, Safe@1 (harm judge) and a GSM8K slice of the thinking model: "
    "transformers vs its llama.cpp exports (F16, Q8_0, Q4_0, Q4_K_M), side by side",
    headline=[
        Headline("safe_at_1_f16", label="Safe@1 F16 (harm judge)"),
        Headline(
            "gsm8k_f16",
            ">= gsm8k_transformers",
            "GSM8K F16",
            why="issue 13: the F16 export keeps the utility the transformers model has",
        ),
        Headline("parity_greedy_q4_k_m", label="Q4_K_M greedy parity"),
    ],
)
def quantisation(params: Mapping[str, Any], ctx: Any) -> Result:
    from aisec.judges import make_judge
    from aisec.llm import GenerationConfig, load_causal_lm
    from aisec.llm.gguf_export import export_cached
    from aisec.llm.llamacpp import LlamaCppLM
    from aisec.safety.safechain import THINKER_DIR, EvalConfig, eval_set, evaluate, utility

    items = eval_set("strongreject-small", int(params["safe_n"]), ctx.seed)
    cfg = EvalConfig(
        k=int(params["k"]), max_new_tokens=int(params["max_new_tokens"]), seed=ctx.seed
    )
    greedy = GenerationConfig(max_new_tokens=int(params["parity_tokens"]), stop_at_eos=False)
    judges = {"harm": make_judge("harm"), "refusal": make_judge("refusal")}
    backends = ["transformers", *list(params["quants"])]
    metrics: dict[str, Any] = {}
    breakdown = []
    ref: list[str] = []
    ids: list[list[int]] = []
    for i, b in enumerate(backends):
        with _torch_threads(1):
            if b == "transformers":
                lm: Any = load_causal_lm(str(THINKER_DIR))
                prompts = [lm.chat.user(it.instruction) for it in items]
                ids = [lm.encode(p) for p in prompts]
                ref = [g.text for g in lm.generate(prompts, greedy, batch_size=1)]
                parity = 1.0
            else:
                lm = LlamaCppLM(export_cached(str(THINKER_DIR), quant=b).path, n_threads=1)
                got = [lm.decode(lm.generate_ids(x, greedy)) for x in ids]
                parity = sum(a == g for a, g in zip(ref, got, strict=True)) / len(ref)
            s = evaluate(lm, items, cfg, judges, ctx.work_dir / b, model_name=f"think-{b}")
            u = utility(
                lm, "gsm8k", int(params["gsm8k_n"]), max_new_tokens=int(params["gsm8k_tokens"])
            )
        m = {
            "parity_greedy": parity,
            "safe_at_1": s["judges"]["harm"]["response"]["safe_at_1"],
            "safe_at_1_refusal": s["judges"]["refusal"]["response"]["safe_at_1"],
            "gsm8k": u["accuracy"],
            "tokens_per_s": s["generation"]["tokens_per_s"],
        }
        for k, v in m.items():
            metrics[f"{k}_{b}"] = v
        breakdown.append({"labels": {"backend": b}, "metrics": m})
        ctx.report((i + 1) / len(backends), b)
    metrics.update(prompts=len(items), gsm8k_n=int(params["gsm8k_n"]))
    return Result(
        metrics=metrics,
        labels={"model": "smollm2-135m-think", "judge": "harm (refusal also reported)"},
        breakdown=breakdown,
        notes=[
            "llama.cpp runs the adapter merged and exported at each weight type (f16, q8_0, "
            "q4_0 written by aisec; q4_k_m by llama.cpp's quantiser from the F16 export); "
            "sampled Safe@1 draws differ by backend (numpy vs torch generators), GSM8K is greedy",
            "parity_greedy: share of the Safe@1 prompts whose first parity_tokens greedy tokens "
            "(EOS ignored) match transformers one prompt at a time, from the same prompt ids",
            "safe_at_1: the offline harm judge (aisec.judges.harm); safe_at_1_refusal: the "
            "refusal detector; one thread per backend",
        ],
    )
