"""SeSoRec: secure social recommendation between a rating platform and a social platform.

Modules:
    data: ratings, trust edges, the shared user id list, FilmTrust / MovieLens-100K (planted
        trust graph) / synthetic data sets.
    model: SoReg and MF in plaintext (the baselines) and the shared update rule.
    protocol: the two-party training (:func:`train_party`) in modes ``paper`` and ``hardened``;
        the threat model and what each mode reveals are in its docstring.
    attack: recover the trust graph from the rating platform's view of a run.
    run: recipes and end-to-end runs (both parties in one process, or one party over TCP+TLS).

Reference: Chen, Li, Wu, Hong, Wang, Zhou, "Secure Social Recommendation based on Secret
Sharing", ECAI 2020 (arXiv 2002.02088).
"""
