"""aisec: a toolkit that secures AI systems across their life."""

__version__ = "0.1.0"
