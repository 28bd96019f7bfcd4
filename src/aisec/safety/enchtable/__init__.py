"""EnchTable (Wu et al., IEEE S&P 2026): restore safety to a fine-tuned LLM by merging an
NTK-distilled safety vector into it, and the safety-merge baselines, as mergekit methods.

* :mod:`~aisec.safety.enchtable.ntk`: fine-tune an aligned model on harmful data with chosen
  modules linearised around the aligned weights (``torch.func.jvp`` + ``functional_call``);
  the harmful surrogate it gives defines the safety vector ``aligned - surrogate``.
* :mod:`~aisec.safety.enchtable.rules`: the per-tensor merge rules (EnchTable's
  interference-aware weighting, TSV-Merge, RESTA, SafeLoRA).
* :mod:`~aisec.safety.enchtable.mergekit_methods`: those rules registered as mergekit methods
  (``enchtable``, ``tsv_merge``, ``resta``, ``safelora``), runnable from a mergekit YAML.
* :mod:`~aisec.safety.enchtable.merge`: run any mergekit YAML (ours or mergekit's methods)
  with input checks and an atomic output directory.
* :mod:`~aisec.safety.enchtable.evaluate`: unsafe rate (judges registry) and utility.
* :mod:`~aisec.safety.enchtable.pipeline`: the whole comparison end to end.

Heavy libraries (torch, transformers, mergekit) are imported only when used.
"""

from __future__ import annotations

__all__ = ["rules", "merge", "ntk", "mergekit_methods", "evaluate", "pipeline"]
