"""SafeDecoding (Xu et al., ACL 2024): safety-aware contrastive decoding between the deployed
(task) model and a safety expert over the first ``m`` tokens of each response.

Reference: arXiv 2402.08983; rule as in the authors' ``utils/safe_decoding.py``.

At each of the first ``first_m`` steps, with ``p`` the task model's and ``p_e`` the expert's
next-token distributions:

1. sample space: the smallest ``k`` such that the top-``k`` tokens of both models share at least
   ``num_common`` tokens; the space is that intersection (ties in rank can make it larger);
2. on that space the probability is ``p + alpha * (p_e - p)``, floored at 1e-8 and normalised;
3. greedy decoding picks its argmax.

After ``first_m`` tokens the task model alone continues (greedy). The paper's defaults are
``alpha = 3``, ``first_m = 2``, ``num_common = 5``. The expert must share the task model's
tokenizer: the paper uses a LoRA safety expert of the same model; here it is usually the aligned
model the task model was fine-tuned from (or that model with a safety adapter).

Held-out task loss (:meth:`SafeDecoding.answer_scores`): answer tokens from position ``first_m``
on are scored by the task model; the first ``first_m`` by the contrastive mixture
``p + alpha (p_e - p)`` over the whole vocabulary (floored at 1e-8, normalised). The top-k
restriction is a decoding-time rule that gives probability 0 to reference tokens outside the
sample space, so it is not applied to the loss; how many reference tokens fell outside it is
counted (:attr:`SafeDecoding.outside_sample_space`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import Field

from aisec.config import StrictModel
from aisec.errors import ParameterError

__all__ = ["SafeDecodingConfig", "SafeDecoding", "sample_space", "steer"]

_FLOOR = 1e-8


class SafeDecodingConfig(StrictModel):
    """SafeDecoding's hyperparameters (the paper's defaults)."""

    alpha: float = Field(3.0, ge=0.0)
    first_m: int = Field(2, ge=1)
    num_common: int = Field(5, ge=1)


def sample_space(logp: Any, logp_expert: Any, num_common: int) -> Any:
    """Boolean mask (rows independently) of the tokens in both models' top-``k`` for the
    smallest ``k`` that gives at least ``num_common`` shared tokens. ``logp``: (B, V)."""
    import torch

    v = logp.shape[-1]
    if num_common > v:
        raise ParameterError("num_common", f"must be at most the vocabulary size {v}", num_common)
    ar = torch.arange(v, device=logp.device).expand_as(logp)
    rank = torch.empty_like(ar).scatter_(-1, torch.argsort(logp, -1, descending=True), ar)
    rank_e = torch.empty_like(ar).scatter_(-1, torch.argsort(logp_expert, -1, descending=True), ar)
    worst = torch.maximum(rank, rank_e)  # a token is in both top-k lists iff worst < k
    kth = torch.kthvalue(worst, num_common, dim=-1, keepdim=True).values
    return worst <= kth


def steer(logp: Any, logp_expert: Any, alpha: float, mask: Any | None = None) -> Any:
    """Log of ``p + alpha (p_e - p)`` floored at 1e-8 and normalised over ``mask`` (all tokens
    when None); tokens outside the mask get -inf. (B, V) in, (B, V) out."""
    import torch

    p, pe = logp.exp(), logp_expert.exp()
    q = (p + alpha * (pe - p)).clamp(min=_FLOOR)
    if mask is not None:
        q = q.masked_fill(~mask, 0.0)
    q = q / q.sum(-1, keepdim=True)
    return torch.log(q)


class SafeDecoding:
    """A task model decoding with a safety expert (see the module docstring).

    Attributes:
        lm: the task model (:class:`aisec.llm.LocalLM`); it renders the prompts.
        expert: the safety expert (:class:`aisec.llm.LocalLM` with the same tokenizer).
        config: the hyperparameters.
        outside_sample_space: reference answer tokens (among the first ``first_m`` of each
            answer scored so far) that lay outside SafeDecoding's sample space.
        scored_positions: answer tokens scored by the contrastive mixture so far.
    """

    method = "safedecoding"
    kind = "inference"

    def __init__(self, lm: Any, expert: Any, config: SafeDecodingConfig | None = None) -> None:
        self.lm = lm
        self.expert = expert
        self.config = config or SafeDecodingConfig()
        self.outside_sample_space = 0
        self.scored_positions = 0
        va = int(lm.model.get_output_embeddings().weight.shape[0])
        vb = int(expert.model.get_output_embeddings().weight.shape[0])
        if va != vb or lm.tokenizer.get_vocab() != expert.tokenizer.get_vocab():
            raise ParameterError(
                "expert",
                f"must share the task model's tokenizer (vocabulary {vb} vs {va} or tokens differ)",
                getattr(expert, "name", "expert"),
            )

    def render(self, query: str) -> str:
        return str(self.lm.chat.render([{"role": "user", "content": query}]))

    def _eos(self) -> set[int]:
        return set(getattr(self.lm, "_eos", set())) or {int(self.lm.tokenizer.eos_token_id)}

    def generate_ids(
        self, prompt_ids: Sequence[Sequence[int]], max_new_tokens: int
    ) -> list[list[int]]:
        """Greedy SafeDecoding of a batch of token-id prompts; the generated ids of each row
        (up to, not including, an end-of-sequence token)."""
        import torch
        from transformers import DynamicCache

        cfg = self.config
        n = len(prompt_ids)
        width = max(len(r) for r in prompt_ids)
        pad = int(self.lm.tokenizer.pad_token_id or 0)
        ids = torch.full((n, width), pad, dtype=torch.long)
        mask = torch.zeros((n, width), dtype=torch.long)
        for i, r in enumerate(prompt_ids):
            ids[i, width - len(r) :] = torch.tensor(list(r), dtype=torch.long)
            mask[i, width - len(r) :] = 1
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        device = self.lm.device
        ids, mask, pos = ids.to(device), mask.to(device), pos.to(device)
        eos = self._eos()
        out: list[list[int]] = [[] for _ in range(n)]
        done = [False] * n
        caches = {"lm": DynamicCache(), "expert": DynamicCache()}
        models = {"lm": self.lm.model, "expert": self.expert.model}
        with torch.inference_mode():
            logits = {
                k: m(
                    input_ids=ids,
                    attention_mask=mask,
                    position_ids=pos,
                    past_key_values=caches[k],
                    use_cache=True,
                    logits_to_keep=1,
                )
                .logits[:, -1]
                .float()
                for k, m in models.items()
            }
            last = pos[:, -1:]
            for step in range(max_new_tokens):
                lp = torch.log_softmax(logits["lm"], -1)
                if step < cfg.first_m:
                    lpe = torch.log_softmax(logits["expert"], -1)
                    space = sample_space(lp, lpe, cfg.num_common)
                    nxt = steer(lp, lpe, cfg.alpha, space).argmax(-1)
                else:
                    nxt = lp.argmax(-1)
                for i in range(n):
                    if done[i]:
                        continue
                    t = int(nxt[i])
                    if t in eos:
                        done[i] = True
                    else:
                        out[i].append(t)
                if all(done) or step == max_new_tokens - 1:
                    break
                mask = torch.cat([mask, torch.ones((n, 1), dtype=mask.dtype, device=device)], 1)
                last = last + 1
                active = ("lm", "expert") if step + 1 < cfg.first_m else ("lm",)
                for k in active:
                    logits[k] = (
                        models[k](
                            input_ids=nxt.view(-1, 1),
                            attention_mask=mask,
                            position_ids=last,
                            past_key_values=caches[k],
                            use_cache=True,
                        )
                        .logits[:, -1]
                        .float()
                    )
        return out

    def respond(
        self, prompts: Sequence[str], *, max_new_tokens: int = 64, batch_size: int = 8
    ) -> list[str]:
        """SafeDecoding responses to the chat-rendered ``prompts``."""
        if batch_size < 1:
            raise ParameterError("batch_size", "must be >= 1", batch_size)
        texts: list[str] = []
        for start in range(0, len(prompts), batch_size):
            chunk = [self.lm.encode(self.render(p)) for p in prompts[start : start + batch_size]]
            for row in self.generate_ids(chunk, max_new_tokens):
                texts.append(self.lm.tokenizer.decode(row, skip_special_tokens=True))
        return texts

    def answer_scores(self, pairs: Sequence[tuple[str, str]], batch_size: int = 8) -> list[Any]:
        """Per-token log-probabilities of reference answers under SafeDecoding (the first
        ``first_m`` by the contrastive mixture, the rest by the task model)."""
        import torch

        from aisec.llm.scoring import CompletionScore

        cfg = self.config
        tok = self.lm.tokenizer
        pad = int(tok.pad_token_id or 0)
        enc = [(self.lm.encode(self.render(q)), self.lm.encode(a)) for q, a in pairs]
        for i, (_, c) in enumerate(enc):
            if not c:
                raise ParameterError(f"pairs[{i}]", "answer must encode to at least one token", "")
        out: list[Any] = []
        for start in range(0, len(enc), batch_size):
            chunk = enc[start : start + batch_size]
            width = max(len(p) + len(c) for p, c in chunk)
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for r, (p, c) in enumerate(chunk):
                ids[r, : len(p) + len(c)] = torch.tensor(p + c)
                mask[r, : len(p) + len(c)] = 1
            ids, mask = ids.to(self.lm.device), mask.to(self.lm.device)
            with torch.inference_mode():
                lp = torch.log_softmax(
                    self.lm.model(input_ids=ids, attention_mask=mask).logits.float(), -1
                ).cpu()
                lpe = torch.log_softmax(
                    self.expert.model(input_ids=ids, attention_mask=mask).logits.float(), -1
                ).cpu()
            for r, (p, c) in enumerate(chunk):
                at = torch.arange(len(p) - 1, len(p) + len(c) - 1)
                target = torch.tensor(c)
                rows = lp[r, at].clone()
                m = min(cfg.first_m, len(c))
                head, head_e = lp[r, at[:m]], lpe[r, at[:m]]
                rows[:m] = steer(head, head_e, cfg.alpha)
                space = sample_space(head, head_e, cfg.num_common)
                self.outside_sample_space += int((~space[torch.arange(m), target[:m]]).sum())
                self.scored_positions += m
                picked = rows[torch.arange(len(c)), target]
                hits = rows.argmax(-1) == target
                out.append(
                    CompletionScore(
                        tuple(c), tuple(float(x) for x in picked), bool(hits.all()), int(hits.sum())
                    )
                )
        return out
