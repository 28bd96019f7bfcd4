"""OML 1.0 fingerprinting of language models (Cheng et al., 2024; Nasery et al., "Scalable
Fingerprinting of Large Language Models", 2025).

The owner generates secret (key, response) pairs (:mod:`.generate`), fine-tunes them into the
model with the loss on the responses only (:mod:`.insert`), publishes a signed Merkle commitment
(:mod:`.commit`), and later queries a suspect model with keys (:mod:`.verify`): a model that
answers many keys with their responses is the owner's, with a binomial-tail p-value. A claim
reveals only the keys it spends, with their Merkle proofs, so a third party can check it.

Torch and transformers load only when a model is used.
"""

from aisec.provenance.fingerprint.commit import (
    ClaimError,
    check_claim,
    generate_owner_key,
    load_owner_key,
    make_claim,
    make_commitment,
)
from aisec.provenance.fingerprint.generate import STRATEGIES, GenerateConfig, generate_fingerprints
from aisec.provenance.fingerprint.insert import InsertConfig, insert_fingerprints
from aisec.provenance.fingerprint.prompts import TEST_SYSTEM_PROMPTS, TRAIN_SYSTEM_PROMPTS
from aisec.provenance.fingerprint.store import Fingerprint, FingerprintSet
from aisec.provenance.fingerprint.verify import VerifyResult, ownership_log10_p, verify

__all__ = [
    "ClaimError",
    "Fingerprint",
    "FingerprintSet",
    "GenerateConfig",
    "InsertConfig",
    "STRATEGIES",
    "TEST_SYSTEM_PROMPTS",
    "TRAIN_SYSTEM_PROMPTS",
    "VerifyResult",
    "check_claim",
    "generate_fingerprints",
    "generate_owner_key",
    "insert_fingerprints",
    "load_owner_key",
    "make_claim",
    "make_commitment",
    "ownership_log10_p",
    "verify",
]
