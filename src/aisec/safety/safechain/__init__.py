"""SafeChain: safety of long chain-of-thought models, judged per thought and per answer.

Reference: F. Jiang, Z. Xu, Y. Li, L. Niu, Z. Xiang, B. Li, B. Y. Lin, R. Poovendran,
"SafeChain: Safety of Language Models with Long Chain-of-Thought Reasoning Capabilities",
arXiv 2502.12025 (2025); official code ``uw-nsl/SafeChain`` (``resp_gen.py``, ``utils_model.py``,
``resp_eval.py``).

What is here:

- K samples per prompt, judged on the response, the thought and the answer; Safe@1, Safe@K and
  ConsSafe@K (:mod:`aisec.metrics.safety`), and the thought/answer cross-table.
- The decoding strategies with the reference strings: ZeroThink and LessThink prefill the
  thought (``<think>\\n`` is added when the template lacks it, then ``\\n</think>\\n\\n`` or the
  LessThink sentence, typo "ask" included); MoreThink stops at ``</think>``, appends "Wait" or
  "Let me think again" (random choice per sample) and continues, up to ``enforce_num`` times or
  until ``think_budget`` thinking tokens are spent, then closes the thought and answers with the
  reference's answer budget ``max_tokens - (think_budget - min(0, remaining))``. The thinking
  strategies need a chat template with a thinking section and refuse others with one line.
- Evaluation sets composed offline from the embedded prompt sets, including a
  WildJailbreak-*style* adversarial set (harmful prompts inside jailbreak templates; not the
  WildJailbreak data, which no registry ships).
- The dataset recipe: K samples per instruction, keep instructions whose K samples are all
  judged safe, one of them at random -> JSONL with provenance; SFT on it through
  :mod:`aisec.llm.finetune`; utility on GSM8K, MATH-500 and sandboxed HumanEval.
- A thinking model: SmolLM2-135M-Instruct with a LoRA adapter trained on GSM8K traces
  (``smollm2-135m-think``), since no small reasoning model ships offline.

Long runs append one JSONL row per prompt (its K samples) and resume from the rows already
written under the same key (the run settings, the prompt's id and its text); verdicts are cached
per judge and part the same way. Every prompt's length is checked against the model's context
before anything is generated.

Modules: :mod:`~aisec.safety.safechain.core` (config, items, samples),
:mod:`~aisec.safety.safechain.strategies` (the decoding strategies, one class each, in the
``STRATEGIES`` registry), :mod:`~aisec.safety.safechain.prompts` (evaluation sets and prompt
files), :mod:`~aisec.safety.safechain.runs` (resumable generation, judging, summaries, the
dataset), :mod:`~aisec.safety.safechain.thinker` (the thinking model),
:mod:`~aisec.safety.safechain.utility` (GSM8K, MATH-500, HumanEval).

Threat model of the evaluation: the adversary controls the user prompt (plain harmful requests
and jailbreak templates); the model's weights and decoding strategy belong to the defender.
"""

from __future__ import annotations

from aisec.safety.safechain.core import EvalConfig, EvalItem, Sample
from aisec.safety.safechain.prompts import (
    dataset_instructions,
    eval_set,
    load_prompt_file,
)
from aisec.safety.safechain.runs import (
    build_dataset,
    dataset_sft_examples,
    evaluate,
    judge_rows,
    run_generation,
    run_settings,
    sample_key,
    summarize,
)
from aisec.safety.safechain.strategies import (
    LESSTHINK_PREFILL,
    RETHINK_STRINGS,
    STRATEGIES,
    ZEROTHINK_PREFILL,
    Default,
    LessThink,
    MoreThink,
    Strategy,
    ZeroThink,
    build_prompt,
    check_prompt_lengths,
    generate_samples,
    get_strategy,
)
from aisec.safety.safechain.thinker import (
    THINKER_DIR,
    THINKER_NAME,
    gsm8k_think_examples,
    resolve_model_spec,
)
from aisec.safety.safechain.utility import utility

__all__ = [
    "THINKER_NAME",
    "THINKER_DIR",
    "ZEROTHINK_PREFILL",
    "LESSTHINK_PREFILL",
    "RETHINK_STRINGS",
    "STRATEGIES",
    "Strategy",
    "Default",
    "ZeroThink",
    "LessThink",
    "MoreThink",
    "get_strategy",
    "EvalConfig",
    "Sample",
    "EvalItem",
    "build_prompt",
    "check_prompt_lengths",
    "generate_samples",
    "eval_set",
    "load_prompt_file",
    "dataset_instructions",
    "run_settings",
    "sample_key",
    "run_generation",
    "judge_rows",
    "evaluate",
    "summarize",
    "build_dataset",
    "dataset_sft_examples",
    "gsm8k_think_examples",
    "utility",
    "resolve_model_spec",
]
