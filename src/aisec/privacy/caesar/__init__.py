"""CAESAR: two-party sparse logistic regression on vertically split data (Paillier HE + SS).

Modules:
    protocol: the two-party protocol (:func:`train_party`, :func:`predict_party`), its
        parameters, model and checkpoints; the threat model is in its docstring.
    data: party files, column splits and the Zipf sparse generator.
    run: recipes and end-to-end runs (both parties in one process, or one party over TCP+TLS).
    recipes/: the built-in recipes (YAML).

Reference: Chen, Zhou, Wang et al., KDD 2021 (arXiv 2008.08753).
"""

from __future__ import annotations

from aisec.privacy.caesar.data import (
    PartyData,
    load_joined,
    load_party,
    save_party,
    split_columns,
    train_test_split_rows,
    zipf_sparse,
)
from aisec.privacy.caesar.protocol import (
    PROTOCOL,
    SIGMOIDS,
    CaesarModel,
    CaesarParams,
    TrainReport,
    predict_party,
    sigmoid_coefficients,
    train_party,
)
from aisec.privacy.caesar.run import (
    RECIPES,
    CaesarRecipe,
    DataSpec,
    LinkSpec,
    load_recipe_named,
    predict_local,
    predict_remote,
    run_local,
    run_party,
    write_split,
)

__all__ = [
    "PROTOCOL",
    "SIGMOIDS",
    "CaesarParams",
    "CaesarModel",
    "TrainReport",
    "train_party",
    "predict_party",
    "sigmoid_coefficients",
    "PartyData",
    "load_party",
    "save_party",
    "split_columns",
    "zipf_sparse",
    "load_joined",
    "train_test_split_rows",
    "RECIPES",
    "CaesarRecipe",
    "DataSpec",
    "LinkSpec",
    "load_recipe_named",
    "run_local",
    "run_party",
    "predict_local",
    "predict_remote",
    "write_split",
]
