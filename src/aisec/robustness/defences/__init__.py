"""Defences against availability attacks (registered under "certifier defence")."""

from aisec.robustness.defences.activation_clustering import ActivationClustering, cluster_outliers
from aisec.robustness.defences.base import DEFENCES, Defence, Defended, make_defence
from aisec.robustness.defences.more_noise import MoreNoise
from aisec.robustness.defences.spectral_signatures import SpectralSignatures, spectral_scores

__all__ = ["DEFENCES", "Defence", "Defended", "make_defence", "MoreNoise", "SpectralSignatures",
           "spectral_scores", "ActivationClustering", "cluster_outliers"]
