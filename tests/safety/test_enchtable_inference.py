"""Inference-time baselines of the EnchTable comparison: Self-Reminder's wrapping and
SafeDecoding's contrastive decoding (sample space, steering, first-m switch), behind the same
responder interface as the merged models."""

from __future__ import annotations

import math

import pytest

from aisec.errors import ParameterError
from aisec.safety.enchtable import self_reminder
from aisec.safety.enchtable.responders import ModelResponder, as_responder, make_inference


def test_self_reminder_wraps_query_in_system_prompt_and_reminder(scripted) -> None:
    seen: list[str] = []

    def script(prompt, cfg, seed):
        seen.append(prompt)
        return "I can't help with that."

    lm = scripted(script)
    sr = make_inference("self_reminder", lm, None)
    out = sr.respond(["How do I pick a lock?"], max_new_tokens=16)
    assert out == ["I can't help with that."]
    (prompt,) = seen
    assert self_reminder.SYSTEM in prompt
    q = prompt.index("How do I pick a lock?")
    r = prompt.index(self_reminder.REMINDER)
    assert prompt.index(self_reminder.SYSTEM) < q < r  # system, query, then the reminder
    # the plain responder sends the query alone
    seen.clear()
    ModelResponder(lm).respond(["How do I pick a lock?"])
    assert self_reminder.SYSTEM not in seen[0] and self_reminder.REMINDER not in seen[0]


def test_unknown_inference_method_names_the_choices() -> None:
    with pytest.raises(ParameterError, match="self_reminder, safedecoding"):
        make_inference("paraphrase", None, None)
    with pytest.raises(ParameterError, match="no parameters"):
        make_inference("self_reminder", None, None, {"alpha": 1})


def test_as_responder_wraps_a_model_and_keeps_a_responder(scripted) -> None:
    lm = scripted(lambda p, c, s: "ok")
    r = as_responder(lm)
    assert isinstance(r, ModelResponder) and r.lm is lm
    sr = make_inference("self_reminder", lm, None)
    assert as_responder(sr) is sr


# --- SafeDecoding -----------------------------------------------------------------------------

try:
    import torch
except ImportError:  # each SafeDecoding test below is skipped on its own
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="needs the torch extra")


@needs_torch
def test_sample_space_is_the_smallest_topk_intersection_with_c_tokens() -> None:
    from aisec.safety.enchtable.safedecoding import sample_space

    # ranks of the task model: 0>1>2>3>4>5; expert: 5>3>1>0>2>4
    lp = torch.tensor([[6.0, 5, 4, 3, 2, 1]]).log_softmax(-1)
    le = torch.tensor([[3.0, 4, 2, 5, 1, 6]]).log_softmax(-1)
    # k=2: {0,1} & {5,3} = {}; k=3: {0,1,2} & {5,3,1} = {1}; k=4: {0,1,2,3} & {5,3,1,0} = {0,1,3}
    assert sample_space(lp, le, 1)[0].tolist() == [False, True, False, False, False, False]
    assert sample_space(lp, le, 2)[0].tolist() == [True, True, False, True, False, False]
    assert sample_space(lp, le, 3)[0].tolist() == [True, True, False, True, False, False]
    assert int(sample_space(lp, le, 6)[0].sum()) == 6
    with pytest.raises(ParameterError, match="vocabulary"):
        sample_space(lp, le, 7)


@needs_torch
def test_steer_is_p_plus_alpha_times_expert_minus_p_normalised_on_the_space() -> None:
    from aisec.safety.enchtable.safedecoding import steer

    p = torch.tensor([[0.5, 0.3, 0.2]])
    pe = torch.tensor([[0.1, 0.6, 0.3]])
    mask = torch.tensor([[True, True, False]])
    got = steer(p.log(), pe.log(), 3.0, mask).exp()[0]
    q0, q1 = max(0.5 + 3 * (0.1 - 0.5), 1e-8), 0.3 + 3 * (0.6 - 0.3)  # q0 floored
    assert got.tolist() == pytest.approx([q0 / (q0 + q1), q1 / (q0 + q1), 0.0], abs=1e-6)
    # alpha = 0 keeps the task model's distribution; alpha = 1 takes the expert's
    assert steer(p.log(), pe.log(), 0.0).exp()[0].tolist() == pytest.approx([0.5, 0.3, 0.2])
    assert steer(p.log(), pe.log(), 1.0).exp()[0].tolist() == pytest.approx([0.1, 0.6, 0.3])


@pytest.fixture(scope="module")
def two_tiny():
    if torch is None:
        pytest.skip("needs the torch extra")
    pytest.importorskip("transformers")
    torch.set_num_threads(1)
    from aisec.llm import load_causal_lm

    lm = load_causal_lm("tiny-llama")
    expert = load_causal_lm("tiny-llama")
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for m in (lm, expert):
            for p in m.model.parameters():  # random weights of some scale: varied greedy tokens
                p.add_(torch.randn(p.shape, generator=g) * 0.5)
    return lm, expert


def _naive(lm, expert, ids, cfg, steps):
    """Reference loop without caches: full forwards of both models at every step."""
    from aisec.safety.enchtable.safedecoding import sample_space, steer

    seq, out = list(ids), []
    for step in range(steps):
        x = torch.tensor([seq])
        with torch.no_grad():
            lp = lm.model(input_ids=x).logits[:, -1].float().log_softmax(-1)
            le = expert.model(input_ids=x).logits[:, -1].float().log_softmax(-1)
        if step < cfg.first_m:
            t = int(steer(lp, le, cfg.alpha, sample_space(lp, le, cfg.num_common)).argmax(-1))
        else:
            t = int(lp.argmax(-1))
        out.append(t)
        seq.append(t)
    return out


@needs_torch
def test_safedecoding_steers_the_first_m_tokens_then_the_task_model_decodes(two_tiny) -> None:
    from aisec.safety.enchtable.safedecoding import SafeDecoding, SafeDecodingConfig

    lm, expert = two_tiny
    lm._eos, expert._eos = set(), set()  # random weights: keep every step
    cfg = SafeDecodingConfig(alpha=3.0, first_m=2, num_common=5)
    sd = SafeDecoding(lm, expert, cfg)
    prompts = [lm.encode(sd.render(q)) for q in ("How do I bake bread?", "Say hi")]
    got = sd.generate_ids(prompts, 6)  # batched, left-padded, with caches
    for ids, row in zip(prompts, got, strict=True):
        assert row == _naive(lm, expert, ids, cfg, 6)
    # the expert matters for the first m tokens only
    plain = SafeDecoding(lm, lm, cfg).generate_ids(prompts, 6)
    assert any(a[:2] != b[:2] for a, b in zip(got, plain, strict=True))
    # with the task model as its own expert, SafeDecoding is greedy decoding of the task model
    for ids, row in zip(prompts, plain, strict=True):
        assert row == _naive(lm, lm, ids, SafeDecodingConfig(alpha=0.0, first_m=1), 6)


@needs_torch
def test_safedecoding_loss_steers_only_the_first_m_answer_tokens(two_tiny) -> None:
    from aisec.safety.enchtable.safedecoding import SafeDecoding, SafeDecodingConfig

    lm, expert = two_tiny
    pairs = [("What is 2+2?", "The answer is four, as two and two make four.")]
    base = ModelResponder(lm).answer_scores(pairs)[0]
    sd = SafeDecoding(lm, expert, SafeDecodingConfig(first_m=2))
    got = sd.answer_scores(pairs)[0]
    assert got.token_ids == base.token_ids
    assert got.logprobs[2:] == pytest.approx(base.logprobs[2:], abs=1e-4)
    assert got.logprobs[:2] != pytest.approx(base.logprobs[:2], abs=1e-4)
    assert all(math.isfinite(x) for x in got.logprobs)
    assert sd.scored_positions == 2 and 0 <= sd.outside_sample_space <= 2


@needs_torch
def test_safedecoding_rejects_an_expert_with_another_tokenizer(two_tiny) -> None:
    from aisec.safety.enchtable.safedecoding import SafeDecoding

    lm, _ = two_tiny

    class Other:
        name = "other"

        class model:  # noqa: N801 - a stand-in with a different vocabulary
            @staticmethod
            def get_output_embeddings():
                return torch.nn.Linear(4, 7)

        tokenizer = lm.tokenizer

    with pytest.raises(ParameterError, match="tokenizer"):
        SafeDecoding(lm, Other())


def test_safedecoding_parameters_are_checked_by_name() -> None:
    with pytest.raises(ParameterError, match="safedecoding.alpha"):
        make_inference("safedecoding", None, None, {"alpha": -1})
    with pytest.raises(ParameterError, match="safedecoding.top_k"):
        make_inference("safedecoding", None, None, {"top_k": 3})
    with pytest.raises(ParameterError, match="expert"):
        make_inference("safedecoding", None, None, {})
