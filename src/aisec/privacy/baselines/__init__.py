"""Baselines the privacy systems are measured against, in the same harness and transport."""
