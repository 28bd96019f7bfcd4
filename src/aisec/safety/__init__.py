"""Safety systems: SafeChain (long-CoT safety evaluation and safety SFT of reasoning models).

Not built yet: EnchTable (NTK-distilled safety-vector merging)."""

from aisec.safety import safechain as safechain  # registers the SafeChain decoding strategies
