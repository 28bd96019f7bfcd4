"""Privacy-preserving training across parties: CAESAR (:mod:`aisec.privacy.caesar`, two-party
sparse logistic regression), SeSoRec (:mod:`aisec.privacy.sesorec`, secure social
recommendation) and HashVFL (:mod:`aisec.privacy.vfl`, hashing in vertical federated learning),
with the baselines and attacks they are measured against.

Systems here never import each other; they share :mod:`aisec.crypto` and :mod:`aisec.transport`.
Import the system packages directly (e.g. ``aisec.privacy.caesar``).
"""
