"""Privacy-preserving training across parties: CAESAR, SeSoRec, HashVFL and their baselines.

Systems here never import each other; they share :mod:`aisec.crypto` and :mod:`aisec.transport`.
Import the system packages directly (e.g. ``aisec.privacy.caesar``).
"""
