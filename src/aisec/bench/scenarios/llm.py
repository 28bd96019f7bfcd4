"""llm/ scenarios: generation speed of each backend on the embedded SmolLM2-135M-Instruct.

``llm.throughput`` runs the same prompts, the same number of new tokens (fixed length: EOS is
ignored) and the same thread count through transformers one prompt at a time, transformers
batched, and llama.cpp (one sequence at a time) in one process, and reports tokens/s and the
ratios the llama.cpp backend is held to.
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
    params={"n_prompts": 4, "max_new_tokens": 64, "batch_size": 4, "threads": 1},
    full_params={"n_prompts": 16, "max_new_tokens": 128, "batch_size": 16},
    description="Tokens/s of llama.cpp vs transformers (one at a time and batched), same prompts",
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
    cfg = GenerationConfig(max_new_tokens=int(params["max_new_tokens"]), stop_at_eos=False)
    warm = GenerationConfig(max_new_tokens=2)
    with _torch_threads(threads):
        tf = load_causal_lm(MODEL)
        prompts = [tf.chat.user(p) for p in PROMPTS[:n]]
        tf.generate(prompts[:1], warm)
        t0 = time.perf_counter()
        single = [tf.generate([p], cfg, batch_size=1)[0] for p in prompts]
        t_single = time.perf_counter() - t0
        ctx.report(0.3, "transformers, one at a time")
        t0 = time.perf_counter()
        batched = tf.generate(prompts, cfg, batch_size=int(params["batch_size"]))
        t_batched = time.perf_counter() - t0
        ctx.report(0.5, "transformers, batched")
        t0 = time.perf_counter()
        tf.generate(
            prompts, GenerationConfig(max_new_tokens=1), batch_size=int(params["batch_size"])
        )
        t_tf_prompt = time.perf_counter() - t0
        n_prompt_tokens = sum(tf.count_tokens(p) for p in prompts)
        del tf
    lc = load_llamacpp(MODEL, n_threads=threads)
    lc.generate(prompts[:1], warm)
    lcp: list[Any] = []
    t0 = time.perf_counter()
    for p in prompts:
        lc.reset()  # every prompt pays its own prompt processing, as with transformers
        lcp.append(lc.generate([p], cfg)[0])
    t_lc = time.perf_counter() - t0
    lc.parallel = True  # several sequences in one llama.cpp context
    t0 = time.perf_counter()
    par = lc.generate(prompts, cfg, batch_size=int(params["batch_size"]))
    t_par = time.perf_counter() - t0
    lc.parallel = False
    t0 = time.perf_counter()
    for p in prompts:
        lc.reset()
        lc.generate([p], GenerationConfig(max_new_tokens=1))
    t_lc_prompt = time.perf_counter() - t0
    n_prompt_tokens_lc = sum(lc.count_tokens(p) for p in prompts)
    ctx.report(0.9, "llama.cpp")
    tps_single = sum(g.n_tokens for g in single) / t_single
    tps_batched = sum(g.n_tokens for g in batched) / t_batched
    tps_lc = sum(g.n_tokens for g in lcp) / t_lc
    tps_par = sum(g.n_tokens for g in par) / t_par
    agree = sum(a.text == b.text for a, b in zip(single, lcp, strict=True)) / n
    return Result(
        metrics={
            "tokens_per_s_llamacpp": tps_lc,
            "tokens_per_s_single": tps_single,
            "tokens_per_s_batched": tps_batched,
            "tokens_per_s_llamacpp_parallel": tps_par,
            "llamacpp_over_single": tps_lc / tps_single,
            "llamacpp_over_batched": tps_lc / tps_batched,
            "prompt_tokens_per_s_llamacpp": n_prompt_tokens_lc / t_lc_prompt,
            "prompt_tokens_per_s_transformers": n_prompt_tokens / t_tf_prompt,
            "greedy_text_agreement": agree,
            "prompts": n,
            "max_new_tokens": int(params["max_new_tokens"]),
            "threads": threads,
        },
        labels={
            "model": MODEL,
            "llamacpp_weights": "shipped Q4_1 GGUF",
            "transformers_weights": "the same GGUF de-quantised to fp32",
        },
        notes=[
            f"{threads} thread(s) for both backends; fixed length (EOS ignored); llama.cpp "
            "decodes one sequence at a time and its prompt cache is reset before each prompt",
            "prompt tokens/s: generation of one token per prompt (transformers batched)",
            "tokens_per_s_llamacpp_parallel: batch_size sequences decoded together in one "
            "llama.cpp context (LlamaCppLM parallel=True); the headline uses the default, "
            "one sequence at a time",
            "greedy_text_agreement: share of prompts whose greedy text is identical across "
            "backends (Q4_1 with 8-bit activations in llama.cpp vs fp32 in transformers)",
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
