"""SafeChain's run configuration, the prompts it evaluates and the samples it draws."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field, field_validator

from aisec.config import StrictModel

__all__ = ["EvalConfig", "EvalItem", "Sample"]


class EvalConfig(StrictModel):
    """One SafeChain evaluation run.

    The reference defaults are greedy decoding (t = 0), K = 5 and ``max_tokens`` = 16000 with a
    10000-token MoreThink budget and 10 forcings; this CPU build keeps the same logic with
    budgets that fit a 135M model on two cores (set them back for real reasoning models).
    ``strategy`` names an entry of :data:`~aisec.safety.safechain.strategies.STRATEGIES`.
    """

    strategy: str = "default"
    k: int = Field(5, ge=1, le=100)
    temperature: float = Field(0.6, ge=0.0, le=5.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=0)
    max_new_tokens: int = Field(256, ge=1)
    think_budget: int = Field(128, ge=1)
    enforce_num: int = Field(10, ge=0)
    system_prompt: str | None = None
    batch_size: int = Field(8, ge=1)
    seed: int = Field(0, ge=0)

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, name: str) -> str:
        from aisec.safety.safechain.strategies import STRATEGIES

        STRATEGIES.get(name)  # UnknownNameError lists the registered strategies
        return name


@dataclass(frozen=True)
class EvalItem:
    """A prompt to evaluate: ``id`` is unique in its set; ``source`` says where it comes from;
    ``label`` is the set's own label, if any (XSTest: ``safe``/``unsafe`` prompt)."""

    id: str
    instruction: str
    source: str = ""
    category: str = ""
    label: str = ""


@dataclass(frozen=True)
class Sample:
    """One sampled output: the full response, its thought and answer, and tokens used."""

    response: str
    thought: str
    answer: str
    n_tokens: int
    seed: int
