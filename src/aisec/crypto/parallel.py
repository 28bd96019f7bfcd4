"""Spread Paillier work (encryption, decryption, sparse HE products, HE-to-SS masking) over workers.

``HEWorkers(n)`` runs chunks of a vector operation on ``n`` local processes, or on a Ray cluster
when given its address; ``n = 1`` runs inline. Every operation splits its input into contiguous
chunks and concatenates the results, so the output is the same for any number of workers.

Keys reach a worker as bytes; each worker process keeps the key objects it has seen (with their
fixed-base tables) in a small per-process memo so the tables are built once per worker. The
workers belong to the party that owns the key: a secret key never leaves that party's machines.
Keys of the HEU backend (OU) run inline whatever ``n``: their vectors are C++ arrays that HEU
processes in one call, and they do not travel to workers.

Reference: Chen et al., KDD 2021, section 5 (distributed CAESAR: workers do the HE work).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from aisec.errors import DependencyError, ParameterError

try:
    from gmpy2 import mpz
except ImportError:
    raise DependencyError("gmpy2", "crypto") from None

from aisec.crypto import h2s, sparse_he  # noqa: E402 (after the gmpy2 check)
from aisec.crypto.paillier import PaillierPublicKey, PaillierSecretKey  # noqa: E402

__all__ = ["HEWorkers"]

_MEMO: dict[bytes, Any] = {}  # per worker process: key bytes -> key object with its tables


def _key(buf: bytes) -> Any:
    key = _MEMO.get(buf)
    if key is None:
        key = (
            PaillierSecretKey.from_bytes(buf)
            if buf.startswith(b"AISEC-PAILLIER-SEC")
            else PaillierPublicKey.from_bytes(buf)
        )
        if len(_MEMO) > 8:
            _MEMO.clear()
        _MEMO[buf] = key
    return key


def _job_encrypt(kb: bytes, ms: list[int]) -> list[mpz]:
    return _key(kb).encrypt(ms)


def _job_decrypt(kb: bytes, cts: list[mpz], trunc: int) -> list[int]:
    return h2s.unmask(_key(kb), cts, trunc)


def _job_matvec(kb: bytes, x: sp.csr_matrix, cts: list[mpz]) -> list[mpz]:
    return sparse_he.matvec(_key(kb), x, cts)


def _job_mask(
    kb: bytes, cts: list[mpz], value_bits: int, trunc: int
) -> tuple[list[mpz], list[int]]:
    return h2s.mask(_key(kb), cts, value_bits, trunc)


def _job_mask_packed(kb: bytes, cts: list[mpz], value_bits: int, trunc: int) -> tuple[Any, ...]:
    return h2s.mask_packed(_key(kb), cts, value_bits, trunc)


def _job_unmask_packed(kb: bytes, cts: list[mpz], slot: int, count: int, trunc: int) -> list[int]:
    return h2s.unmask_packed(_key(kb), cts, slot, count, trunc)


def _chunks(n: int, k: int) -> list[tuple[int, int]]:
    k = max(1, min(k, n))
    step, extra = divmod(n, k)
    out, start = [], 0
    for i in range(k):
        end = start + step + (1 if i < extra else 0)
        out.append((start, end))
        start = end
    return [c for c in out if c[1] > c[0]] or [(0, 0)]


class HEWorkers:
    """A pool for one party's HE work.

    Args:
        workers: number of worker processes (1 runs inline, in this process).
        ray_address: a Ray cluster address (``"auto"`` or ``"ray://host:10001"``); when given,
            chunks run as Ray tasks on that cluster instead of local processes.
        min_chunk: smallest chunk worth sending to a worker.
    """

    def __init__(
        self, workers: int = 1, ray_address: str | None = None, min_chunk: int = 16
    ) -> None:
        if workers < 1:
            raise ParameterError("workers", "must be >= 1", workers)
        self.workers = workers
        self.ray_address = ray_address
        self.min_chunk = min_chunk
        self._pool: Any = None
        self._ray: Any = None
        self._ray_fns: dict[str, Any] = {}

    def __enter__(self) -> HEWorkers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    @property
    def backend(self) -> str:
        return (
            "inline"
            if self.workers == 1 and not self.ray_address
            else ("ray" if self.ray_address else "processes")
        )

    def _submit_all(self, fn: Callable[..., Any], calls: list[tuple[Any, ...]]) -> list[Any]:
        if self.ray_address:
            if self._ray is None:
                try:
                    import ray
                except ImportError:
                    raise DependencyError("ray", "distributed") from None
                if not ray.is_initialized():
                    ray.init(address=self.ray_address, log_to_driver=False)
                self._ray = ray
            ray = self._ray
            remote = self._ray_fns.get(fn.__name__)
            if remote is None:
                remote = self._ray_fns[fn.__name__] = ray.remote(fn)
            return ray.get([remote.remote(*args) for args in calls])
        if self._pool is None:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            ctx = mp.get_context("forkserver" if os.name == "posix" else "spawn")
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx)
        futures = [self._pool.submit(fn, *args) for args in calls]
        return [f.result() for f in futures]

    def _inline(self, key: Any) -> bool:
        # HEU keys (OU) run in this process: their arrays are C++ objects, not worker payloads
        return self.backend == "inline" or not isinstance(
            key, PaillierPublicKey | PaillierSecretKey
        )

    def _parts(self, n: int) -> list[tuple[int, int]]:
        return _chunks(n, self.workers if n >= self.min_chunk * 2 else 1)

    def _map(
        self, fn: Callable[..., Any], key: bytes, items: Sequence[Any], *extra: Any
    ) -> list[Any]:
        calls = [(key, list(items[a:b]), *extra) for a, b in self._parts(len(items))]
        out: list[Any] = []
        for r in self._submit_all(fn, calls):
            out.extend(r)
        return out

    # -- operations ------------------------------------------------------------------------
    def encrypt(self, key: PaillierPublicKey | PaillierSecretKey, ms: Sequence[int]) -> list[mpz]:
        """Encrypt with a public key, or as the owner with the secret key (faster)."""
        if self._inline(key):
            return key.encrypt(ms)
        return self._map(_job_encrypt, key.to_bytes(), ms)

    def decrypt(self, sk: PaillierSecretKey, cts: Sequence[mpz], trunc_bits: int = 0) -> list[int]:
        """Decrypt to signed integers, each shifted right by ``trunc_bits``."""
        if self._inline(sk):
            return h2s.unmask(sk, cts, trunc_bits)
        return self._map(_job_decrypt, sk.to_bytes(), cts, trunc_bits)

    def matvec(self, pk: PaillierPublicKey, x: sp.csr_matrix, cts: Sequence[mpz]) -> list[mpz]:
        """``[[X w]]`` (rows split across workers)."""
        if self._inline(pk):
            return sparse_he.matvec(pk, x, cts)
        kb = pk.to_bytes()
        calls = []
        for a, b in self._parts(x.shape[0]):
            # ship only the ciphertexts this chunk of rows touches, not all d of them
            chunk = sp.csr_matrix(x[a:b])
            cols = np.unique(chunk.indices)
            calls.append((kb, sp.csr_matrix(chunk[:, cols]), [cts[j] for j in cols.tolist()]))
        out: list[mpz] = []
        for r in self._submit_all(_job_matvec, calls):
            out.extend(r)
        return out

    def rmatvec(self, pk: PaillierPublicKey, x: sp.csr_matrix, cts: Sequence[mpz]) -> list[mpz]:
        """``[[X^T e]]`` (output columns split across workers)."""
        return self.matvec(pk, sp.csr_matrix(x.T), cts)

    def mask(
        self, pk: PaillierPublicKey, cts: Sequence[mpz], value_bits: int, trunc_bits: int = 0
    ) -> tuple[list[mpz], list[int]]:
        """HE-to-SS masking (see :func:`aisec.crypto.h2s.mask`), spread over workers."""
        if self._inline(pk):
            return h2s.mask(pk, cts, value_bits, trunc_bits)
        kb = pk.to_bytes()
        calls = [(kb, list(cts[a:b]), value_bits, trunc_bits) for a, b in self._parts(len(cts))]
        sent: list[mpz] = []
        mine: list[int] = []
        for s, m in self._submit_all(_job_mask, calls):
            sent.extend(s)
            mine.extend(m)
        return sent, mine

    def mask_packed(
        self, pk: PaillierPublicKey, cts: Sequence[mpz], value_bits: int, trunc_bits: int = 0
    ) -> tuple[list[mpz], list[int], dict[str, int]]:
        """Packed HE-to-SS masking (see :func:`aisec.crypto.h2s.mask_packed`) over workers."""
        slot, k = h2s.pack_layout(pk, value_bits)
        groups = -(-pk.count(cts) // k)
        if self._inline(pk) or groups < 2 * self.workers:
            return h2s.mask_packed(pk, cts, value_bits, trunc_bits)
        kb = pk.to_bytes()
        calls = [
            (kb, list(cts[a * k : b * k]), value_bits, trunc_bits)
            for a, b in _chunks(groups, self.workers)
        ]
        sent: list[mpz] = []
        mine: list[int] = []
        for s, m, _ in self._submit_all(_job_mask_packed, calls):
            sent.extend(s)
            mine.extend(m)
        return sent, mine, {"slot": slot, "count": len(cts)}

    def unmask_packed(
        self, sk: PaillierSecretKey, cts: Sequence[mpz], slot: int, count: int, trunc_bits: int = 0
    ) -> list[int]:
        """The key owner's half of packed HE-to-SS, over workers."""
        k = max(1, (sk.public.plaintext_bits - 1) // slot)
        if self._inline(sk) or len(cts) < 2 * self.workers:
            return h2s.unmask_packed(sk, cts, slot, count, trunc_bits)
        if len(cts) != -(-count // k):
            raise ParameterError("packed ciphertexts", f"must number ceil({count}/{k})", len(cts))
        kb = sk.to_bytes()
        calls = [
            (kb, list(cts[a:b]), slot, min(count, b * k) - a * k, trunc_bits)
            for a, b in self._parts(len(cts))
        ]
        out: list[int] = []
        for r in self._submit_all(_job_unmask_packed, calls):
            out.extend(r)
        return out
