"""The language-model interface over an OpenAI-compatible completions server (e.g. vLLM).

Full-size models run where a GPU is: start ``vllm serve MODEL`` there and point
``RemoteLM("http://host:8000/v1", "MODEL")`` (or ``--model http://host:8000/v1#MODEL``) at it.
Prompts are rendered locally (with the model's tokenizer when it can be loaded, else a named
built-in chat format, and that fallback is recorded on the model) and sent to ``/completions`` as raw text, so prefills and continuation
work exactly as with a local model. Only the standard library is used (``urllib``).

Security: the API key is read from ``$AISEC_LLM_API_KEY`` (or passed in) and never logged.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aisec.errors import ConfigError, DependencyError, ParameterError, PeerError
from aisec.llm.base import Generation, GenerationConfig, LanguageModel, Progress
from aisec.llm.chat import ChatFormat, chat_format

__all__ = ["RemoteLM", "load_lm", "parse_server_spec", "BACKENDS"]

#: what runs a model: see :func:`load_lm`
BACKENDS = ("auto", "transformers", "llamacpp", "remote")

_log = logging.getLogger("aisec.llm")


class RemoteLM(LanguageModel):
    """A model behind an OpenAI-compatible ``/v1/completions`` endpoint.

    Args:
        base_url: e.g. ``http://localhost:8000/v1``.
        model: the model name the server serves.
        chat: the chat format to render prompts with.
        api_key: bearer token (default ``$AISEC_LLM_API_KEY``; vLLM accepts any).
        timeout: seconds per request.
        workers: concurrent requests (the server batches them).
        tokenizer: optional local tokenizer, for exact token counts.
        context_length: the served model's context in tokens; by default vLLM's
            ``max_model_len`` from ``/models`` (asked on first use), so callers can check prompt
            lengths before generating.
        chat_template_fallback: why ``chat`` is a built-in format rather than the model's own
            template (None when it is the model's own or one the user chose).
    """

    backend = "remote"

    def __init__(
        self,
        base_url: str,
        model: str,
        chat: ChatFormat,
        *,
        api_key: str | None = None,
        timeout: float = 600.0,
        workers: int = 8,
        tokenizer: Any = None,
        context_length: int | None = None,
        chat_template_fallback: str | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ParameterError("base_url", "must start with http:// or https://", base_url)
        if not model:
            raise ParameterError("model", "must name the served model", model)
        self.base_url = base_url.rstrip("/")
        self.name = model
        self.chat = chat
        self._key = api_key if api_key is not None else os.environ.get("AISEC_LLM_API_KEY", "EMPTY")
        self.timeout = float(timeout)
        self.workers = max(1, int(workers))
        self.tokenizer = tokenizer
        if context_length is not None and context_length < 1:
            raise ParameterError("context_length", "must be >= 1 tokens", context_length)
        self._context_length = context_length
        self._asked_context = context_length is not None
        self.chat_template_fallback = chat_template_fallback

    @property
    def context_length(self) -> int | None:  # type: ignore[override]
        """The served model's context (given, else vLLM's ``max_model_len`` from ``/models``,
        asked once); None when the server does not say, and then no length is checked here."""
        if not self._asked_context:
            self._asked_context = True
            try:
                data = self._get("/models")
                for m in data.get("data", []):
                    if m.get("id") == self.name and isinstance(m.get("max_model_len"), int):
                        self._context_length = int(m["max_model_len"])
            except (PeerError, AttributeError, TypeError):
                self._context_length = None  # unknown: the server's own check applies
        return self._context_length

    @context_length.setter
    def context_length(self, value: int | None) -> None:
        self._context_length, self._asked_context = value, True

    def __repr__(self) -> str:  # never show the key
        return f"RemoteLM({self.base_url!r}, {self.name!r})"

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        req = urllib.request.Request(
            self.base_url + path,
            data=json.dumps(body).encode("utf-8"),
            method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self._key}"},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:200]
            raise PeerError(
                self.base_url, path, f"HTTP {exc.code}: {' '.join(detail.split())}"
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise PeerError(self.base_url, path, f"server unreachable ({reason})") from None
        except ValueError:
            raise PeerError(self.base_url, path, "the reply is not JSON") from None

    def _one(self, prompt: str, cfg: GenerationConfig, seed: int) -> Generation:
        body: dict[str, Any] = {
            "model": self.name,
            "prompt": prompt,
            "max_tokens": cfg.max_new_tokens,
            "temperature": cfg.temperature,
            "top_p": cfg.top_p,
            "seed": seed,
        }
        if cfg.top_k:
            body["top_k"] = cfg.top_k
        if cfg.stop:
            body["stop"] = list(cfg.stop)
        if not cfg.stop_at_eos:
            body["ignore_eos"] = True
        reply = self._post("/completions", body)
        try:
            choice = reply["choices"][0]
            text = str(choice["text"])
            n = int((reply.get("usage") or {}).get("completion_tokens", 0)) or self.count_tokens(
                text
            )
            reason = str(choice.get("finish_reason") or "stop")
        except (KeyError, IndexError, TypeError):
            raise PeerError(
                self.base_url, "/completions", "the reply has no choices[0].text"
            ) from None
        stop = choice.get("stop_reason") if isinstance(choice.get("stop_reason"), str) else None
        return Generation(text, n, "length" if reason == "length" else "stop", stop)

    def generate(
        self,
        prompts: Sequence[str],
        config: GenerationConfig | None = None,
        *,
        seeds: Sequence[int] | None = None,
        batch_size: int = 8,
        progress: Progress | None = None,
    ) -> list[Generation]:
        cfg = config or GenerationConfig()
        seed_list = self._check(prompts, seeds, batch_size)
        out: list[Generation] = []
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            for start in range(0, len(prompts), batch_size):
                chunk = range(start, min(len(prompts), start + batch_size))
                out.extend(pool.map(lambda i: self._one(prompts[i], cfg, seed_list[i]), chunk))
                if progress is not None:
                    progress(len(out), len(prompts))
        return out

    def count_tokens(self, text: str) -> int:
        if self.tokenizer is not None:
            return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        return max(1, len(text) // 4)  # rough: about four characters per token

    def _get(self, path: str) -> dict[str, Any]:
        req = urllib.request.Request(
            self.base_url + path, headers={"Authorization": f"Bearer {self._key}"}
        )
        try:
            with urllib.request.urlopen(req, timeout=min(self.timeout, 30.0)) as resp:
                data = json.loads(resp.read().decode("utf-8"))
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise PeerError(
                self.base_url, path, f"server unreachable ({getattr(exc, 'reason', exc)})"
            ) from None
        if not isinstance(data, dict):
            raise PeerError(self.base_url, path, "the reply is not a JSON object")
        return data

    def check(self) -> list[str]:
        """The models the server lists (``GET /models``); a one-line error if it is unreachable."""
        return [str(m.get("id")) for m in self._get("/models").get("data", [])]


def parse_server_spec(spec: str) -> tuple[str, str] | None:
    """``http://host:port/v1#MODEL`` -> (base_url, model); ``None`` if ``spec`` is not a URL."""
    if not spec.startswith(("http://", "https://")):
        return None
    url, sep, model = spec.partition("#")
    if not sep or not model:
        raise ParameterError(
            "model",
            "a server must be given as URL#MODEL (e.g. "
            "http://localhost:8000/v1#deepseek-ai/DeepSeek-R1-Distill-Qwen-7B)",
            spec,
        )
    return url, model


def load_lm(
    spec: str,
    *,
    chat_format_name: str | None = None,
    adapter: str | None = None,
    tokenizer: str | None = None,
    allow_chat_fallback: bool = True,
    backend: str | None = "auto",
    n_threads: int | None = None,
) -> LanguageModel:
    """A local model (name, path, hub id) or a server (``URL#MODEL``) behind one interface.

    ``backend`` picks what runs it: ``transformers`` (:class:`aisec.llm.LocalLM`),
    ``llamacpp`` (:class:`aisec.llm.llamacpp.LlamaCppLM`: a GGUF, or a checkpoint / adapter
    exported to F16 GGUF once and cached), ``remote`` (a server spec) or ``auto`` (the default;
    ``None`` means the same): a server spec runs remote; a local model runs on llama.cpp when
    llama-cpp-python imports and its architecture's F16 export has measured parity with
    transformers (:func:`aisec.llm.llamacpp.auto_backend`), else on transformers. The model
    records what runs it and why in ``backend`` and ``backend_reason`` (callers write both beside
    their results). Under ``auto``, a model llama.cpp cannot take (an export the GGUF writer
    refuses) runs on transformers with that reason recorded and a warning logged; a backend named
    explicitly that cannot serve the spec is a one-line :class:`ConfigError`, never a fallback.
    Training and gradients need ``transformers``. ``n_threads``: llama.cpp's CPU threads
    (transformers follows ``torch.set_num_threads``).

    For a server the chat format is ``chat_format_name`` if given, else the template of the
    tokenizer named by ``tokenizer`` (or the served model id), loaded locally. When that tokenizer
    cannot be loaded (offline, unknown id), prompts would be rendered with built-in ChatML, which
    may not be the model's template: with ``allow_chat_fallback`` the model carries the reason in
    ``chat_template_fallback`` (SafeChain records it in its run settings, rows and summary) and a
    warning is logged; without it a one-line :class:`ConfigError` says to pass a chat format.
    """
    server = parse_server_spec(spec)
    chosen = backend or "auto"
    if chosen not in BACKENDS:
        raise ParameterError("backend", f"must be one of {', '.join(BACKENDS)}", backend)
    if chosen == "remote" and server is None:
        raise ConfigError(
            f"backend 'remote' needs a server spec URL#MODEL; {spec!r} is not one "
            "(use backend 'transformers' or 'llamacpp' for a local model)"
        )
    if server is not None and chosen not in ("auto", "remote"):
        raise ConfigError(f"{spec!r} is a server: it runs with backend 'remote', not {chosen!r}")
    reason = f"chosen: backend={chosen!r}"
    if server is None and chosen == "auto":
        from aisec.llm.llamacpp import auto_backend

        chosen, reason = auto_backend(spec, adapter)
        if chosen == "llamacpp":
            from aisec.llm.llamacpp import load_llamacpp

            try:
                try:
                    lm: LanguageModel = load_llamacpp(
                        spec, adapter=adapter, chat_format=chat_format_name, n_threads=n_threads
                    )
                except DependencyError as exc:
                    from aisec.llm.llamacpp import _EMBEDDED_GGUF

                    if adapter is not None or spec not in _EMBEDDED_GGUF:
                        raise
                    # no torch/transformers for the F16 export (nor for the transformers
                    # backend): the shipped GGUF is what can run, and the reason says so
                    lm = load_llamacpp(
                        spec,
                        chat_format=chat_format_name,
                        n_threads=n_threads,
                        quant="shipped",
                    )
                    reason = (
                        f"auto: the F16 export needs {exc.module} (not installed); runs the "
                        "shipped GGUF as is, whose greedy agreement with transformers is lower "
                        "than the F16 export's"
                    )
            except ConfigError as exc:
                chosen = "transformers"
                reason = f"auto: llama.cpp cannot take this model ({exc}); runs on transformers"
                _log.warning("%s", reason)
            else:
                lm.backend_reason = reason
                return lm
    if server is None and chosen == "llamacpp":
        from aisec.llm.llamacpp import load_llamacpp

        lm = load_llamacpp(spec, adapter=adapter, chat_format=chat_format_name, n_threads=n_threads)
        lm.backend_reason = reason
        return lm
    if server is None:
        from aisec.llm.model import load_causal_lm

        lm = load_causal_lm(spec, adapter=adapter, chat_format=chat_format_name)
        lm.backend_reason = reason
        return lm
    lm = _load_remote(server, chat_format_name, tokenizer, allow_chat_fallback)
    lm.backend_reason = (
        "a server spec URL#MODEL runs remote" if backend in (None, "auto") else reason
    )
    return lm


def _load_remote(
    server: tuple[str, str],
    chat_format_name: str | None,
    tokenizer: str | None,
    allow_chat_fallback: bool,
) -> RemoteLM:
    url, model = server
    if chat_format_name:
        return RemoteLM(url, model, chat_format(chat_format_name))
    from aisec.llm.chat import from_tokenizer
    from aisec.llm.model import load_tokenizer

    source = tokenizer or model
    try:
        tok = load_tokenizer(source)
    except Exception as exc:  # noqa: BLE001 - offline or unknown tokenizer: say so, never silently
        problem = " ".join(str(exc).split())[:160] or type(exc).__name__
        reason = (
            f"tokenizer {source!r} did not load ({type(exc).__name__}: {problem}); prompts "
            "are rendered with the built-in chatml format"
        )
        if not allow_chat_fallback:
            raise ConfigError(
                f"{reason.split(';')[0]}; pass a chat format (--chat-format chatml, "
                "chatml-think, deepseek-r1, plain) or a loadable tokenizer"
            ) from None
        _log.warning("%s; pass --chat-format to choose one", reason)
        return RemoteLM(url, model, chat_format("chatml"), chat_template_fallback=reason)
    return RemoteLM(url, model, from_tokenizer(tok, model), tokenizer=tok)
