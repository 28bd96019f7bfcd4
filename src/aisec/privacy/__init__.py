"""Privacy-preserving training across parties: CAESAR (two-party sparse logistic regression) and
the baselines it is measured against (:mod:`aisec.privacy.baselines`: SecureML-style secret
sharing). Not built yet: SeSoRec (secure social recommendation) and HashVFL.

Systems here never import each other; they share :mod:`aisec.crypto` and :mod:`aisec.transport`.
Import the system packages directly (e.g. ``aisec.privacy.caesar``).
"""
