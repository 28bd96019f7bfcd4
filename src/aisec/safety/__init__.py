"""Safety systems: EnchTable (safety-vector merging) and SafeChain (long-CoT safety evaluation)."""
