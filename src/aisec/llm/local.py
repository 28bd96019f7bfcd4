"""Batched generation with a transformers causal LM in process.

The decoding loop is written out (rather than ``model.generate``) for three reasons: every sample
draws from its own ``torch.Generator`` (a sample does not depend on which prompts share its
batch), stop strings end a sample exactly like the OpenAI API (the text stops before the stop
string), and finished rows leave the batch (their KV cache rows are dropped), so one long sample
does not make the others pay for its length.

Prompts are left-padded; position ids count real tokens only, so a padded row computes exactly
what it would alone (up to float rounding).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aisec.errors import ParameterError
from aisec.llm.base import Generation, GenerationConfig, LanguageModel, Progress
from aisec.llm.chat import ChatFormat

__all__ = ["LocalLM"]


def _filter_logits(logits: Any, top_k: int, top_p: float) -> Any:
    """Mask logits outside the top-k and the top-p nucleus (rows independently). (B, V)."""
    import torch

    if top_k > 0 and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, idx = torch.sort(logits, descending=True, dim=-1)
        cum = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        drop = cum - torch.softmax(sorted_logits, dim=-1) > top_p  # keep the token crossing top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, idx, sorted_logits)
    return logits


@dataclass
class LocalLM(LanguageModel):
    """A transformers model and tokenizer with a chat format.

    Attributes:
        model: a ``transformers`` causal LM (eval mode).
        tokenizer: its tokenizer (a pad token is set).
        chat: the chat format used by :meth:`render`.
        name: a display name.
    """

    backend = "transformers"

    model: Any
    tokenizer: Any
    chat: ChatFormat
    name: str = "model"
    _eos: set[int] = field(default_factory=set, repr=False)

    def __post_init__(self) -> None:
        ids: set[int] = set()
        tok = self.tokenizer
        if tok.eos_token_id is not None:
            ids.add(int(tok.eos_token_id))
        gen_eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        for e in gen_eos if isinstance(gen_eos, list) else [gen_eos]:
            if e is not None:
                ids.add(int(e))
        if self.chat.end_of_turn:
            eot = tok.convert_tokens_to_ids(self.chat.end_of_turn)
            if isinstance(eot, int) and eot != tok.unk_token_id:
                ids.add(eot)
        self._eos = ids

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    def render(self, messages: Sequence[dict[str, str]], add_generation_prompt: bool = True) -> str:
        return self.chat.render(messages, add_generation_prompt)

    @property
    def context_length(self) -> int | None:  # type: ignore[override]
        n = getattr(self.model.config, "max_position_embeddings", None)
        return int(n) if n else None

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

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
        encoded = [self.encode(p) for p in prompts]
        limit = self.context_length or (1 << 30)
        for i, ids in enumerate(encoded):
            if len(ids) + cfg.max_new_tokens > limit:
                raise ParameterError(
                    f"prompts[{i}]",
                    f"plus max_new_tokens must fit the context of {limit} tokens",
                    len(ids) + cfg.max_new_tokens,
                )
        # Longest first: batch-mates have similar lengths, so little padding is computed.
        order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))
        out: list[Generation | None] = [None] * len(prompts)
        done = 0
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            gens = self._generate_batch([encoded[i] for i in idx], cfg, [seed_list[i] for i in idx])
            for i, g in zip(idx, gens, strict=True):
                out[i] = g
            done += len(idx)
            if progress is not None:
                progress(done, len(prompts))
        return [g for g in out if g is not None]

    def _finish(self, ids: list[int], cfg: GenerationConfig, eos_hit: bool) -> Generation:
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        if cfg.stop:
            hits = [(text.find(s), s) for s in cfg.stop if s in text]
            if hits:
                pos, s = min(hits)
                return Generation(text[:pos], len(ids), "stop", s)
        return Generation(text, len(ids), "stop" if eos_hit else "length")

    def _generate_batch(
        self, rows: list[list[int]], cfg: GenerationConfig, seeds: list[int]
    ) -> list[Generation]:
        import torch
        from transformers import DynamicCache

        device = self.device
        n = len(rows)
        width = max(len(r) for r in rows)
        pad = int(self.tokenizer.pad_token_id)
        input_ids = torch.full((n, width), pad, dtype=torch.long)
        mask = torch.zeros((n, width), dtype=torch.long)
        for i, r in enumerate(rows):
            input_ids[i, width - len(r) :] = torch.tensor(r, dtype=torch.long)
            mask[i, width - len(r) :] = 1
        input_ids, mask = input_ids.to(device), mask.to(device)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        gens = [torch.Generator(device="cpu").manual_seed(int(s)) for s in seeds]
        generated: list[list[int]] = [[] for _ in range(n)]
        results: list[Generation | None] = [None] * n
        active = list(range(n))  # original row index of each live cache row
        cache = DynamicCache()
        max_stop = max((len(s) for s in cfg.stop), default=0)
        with torch.inference_mode():
            out = self.model(
                input_ids=input_ids,
                attention_mask=mask,
                position_ids=pos,
                past_key_values=cache,
                use_cache=True,
                logits_to_keep=1,
            )
            last_pos = pos[:, -1:]
            for step in range(cfg.max_new_tokens):
                logits = out.logits[:, -1, :].float()
                if cfg.greedy:
                    nxt = logits.argmax(-1).cpu()
                else:
                    probs = torch.softmax(
                        _filter_logits(logits / cfg.temperature, cfg.top_k, cfg.top_p), -1
                    ).cpu()
                    nxt = torch.stack(
                        [
                            torch.multinomial(probs[j], 1, generator=gens[r])[0]
                            for j, r in enumerate(active)
                        ]
                    )
                keep: list[int] = []
                for j, r in enumerate(active):
                    t = int(nxt[j])
                    if cfg.stop_at_eos and t in self._eos:
                        results[r] = self._finish(generated[r], cfg, True)
                        continue
                    generated[r].append(t)
                    if cfg.stop:
                        # decode a tail long enough to contain any stop string
                        tail = self.tokenizer.decode(
                            generated[r][-(max_stop + 8) :], skip_special_tokens=True
                        )
                        if any(s in tail for s in cfg.stop):
                            results[r] = self._finish(generated[r], cfg, False)
                            continue
                    keep.append(j)
                if not keep or step == cfg.max_new_tokens - 1:
                    break
                if len(keep) < len(active):
                    sel = torch.tensor(keep, dtype=torch.long, device=device)
                    cache.batch_select_indices(sel)
                    mask = mask.index_select(0, sel)
                    last_pos = last_pos.index_select(0, sel)
                    nxt = nxt.index_select(0, sel.cpu())
                    active = [active[j] for j in keep]
                mask = torch.cat(
                    [mask, torch.ones((len(active), 1), dtype=mask.dtype, device=device)], 1
                )
                last_pos = last_pos + 1
                out = self.model(
                    input_ids=nxt.view(-1, 1).to(device),
                    attention_mask=mask,
                    position_ids=last_pos,
                    past_key_values=cache,
                    use_cache=True,
                )
        for r in range(n):
            if results[r] is None:
                results[r] = self._finish(generated[r], cfg, False)
        return [g for g in results if g is not None]

    def next_token_logprobs(
        self, prompts: Sequence[str], candidates: Sequence[str], batch_size: int = 8
    ) -> np.ndarray:
        """Log-probability of the first token of each candidate after each prompt.

        Returns:
            (N, C) float64 log-probabilities.
        """
        import torch

        self._check(prompts, None, batch_size)
        cand = []
        for c in candidates:
            ids = self.encode(c)
            if not ids:
                raise ParameterError("candidates", "must be non-empty strings", c)
            cand.append(ids[0])
        out = np.zeros((len(prompts), len(cand)))
        pad = int(self.tokenizer.pad_token_id)
        for start in range(0, len(prompts), batch_size):
            rows = [self.encode(p) for p in prompts[start : start + batch_size]]
            width = max(len(r) for r in rows)
            ids = torch.full((len(rows), width), pad, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for i, r in enumerate(rows):
                ids[i, width - len(r) :] = torch.tensor(r)
                mask[i, width - len(r) :] = 1
            pos = (mask.cumsum(-1) - 1).clamp(min=0)
            with torch.inference_mode():
                logits = self.model(
                    input_ids=ids.to(self.device),
                    attention_mask=mask.to(self.device),
                    position_ids=pos.to(self.device),
                    logits_to_keep=1,
                ).logits[:, -1]
            lp = torch.log_softmax(logits.float(), -1)[:, cand].cpu().numpy()
            out[start : start + len(rows)] = lp
        return out
