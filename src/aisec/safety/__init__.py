"""Safety systems: EnchTable (safety-vector merging) and SafeChain (long-CoT safety evaluation)."""

from aisec.safety import safechain as safechain  # registers the SafeChain decoding strategies
