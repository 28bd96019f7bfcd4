"""HashVFL: split (vertical) federated learning for N parties whose hashing layer cuts the path
from what parties send back to their raw features; plain VFL and noise/DP defences in the same
harness. The attacks against it live in :mod:`aisec.privacy.attacks`.

Modules:
    hashing: BatchNorm -> sign (straight-through), class codes, consistency loss, bit packing.
    models: bottom models (registry) and the top model.
    defences: none | hash | noise | dp | gradperturb, and the DP accounting.
    data: embedded data sets cut into per-party slices (train / aux / test rows).
    protocol: the N-party training and evaluation over Channels, checkpoints.
    run: end-to-end runs (threads in one process, or one party per process over TCP+TLS).
    detect: abnormal-input detection by Hamming distance.

Reference: Qiu et al., IEEE TIFS 19 (2024), arXiv 2212.00325.
"""

from __future__ import annotations

from aisec.privacy.vfl.data import DataSpec, PartyData, VFLSplit, load_split
from aisec.privacy.vfl.defences import DEFENCES, DefenceSpec, epsilon_spent
from aisec.privacy.vfl.protocol import PROTOCOL, VFLParams
from aisec.privacy.vfl.run import VFLRecipe, load_run, run_local, run_party, write_split

__all__ = [
    "DEFENCES",
    "DataSpec",
    "DefenceSpec",
    "PROTOCOL",
    "PartyData",
    "VFLParams",
    "VFLRecipe",
    "VFLSplit",
    "epsilon_spent",
    "load_run",
    "load_split",
    "run_local",
    "run_party",
    "write_split",
]
