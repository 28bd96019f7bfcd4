"""Safety systems: SafeChain (long-CoT safety evaluation and safety SFT of reasoning models) and
EnchTable (:mod:`aisec.safety.enchtable`, NTK-distilled safety-vector merging, imported on its
own)."""

from aisec.safety import safechain as safechain  # registers the SafeChain decoding strategies
