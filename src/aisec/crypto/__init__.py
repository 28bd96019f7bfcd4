"""Cryptographic building blocks shared by the privacy systems.

Fixed-point encoding (:mod:`.fixedpoint`), additive secret sharing in Z_2^64 and over the integers
(:mod:`.sharing`), Paillier with DJN/CRT/fixed-base fast paths on gmpy2 (:mod:`.paillier`),
HE-to-SS conversion (:mod:`.h2s`), sparse HE products (:mod:`.sparse_he`), HE work spread over
workers or a Ray cluster (:mod:`.parallel`), and one interface to every additively homomorphic
backend with its registry (:mod:`.he`: gmpy2 Paillier, python-paillier, HEU OU and Paillier).
Import submodules directly; this package imports nothing heavy.
"""

from aisec.crypto import he as he  # registers the HE backends (imports nothing heavy)
