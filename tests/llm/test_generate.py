from __future__ import annotations

import pytest

from aisec.errors import ParameterError
from aisec.llm import GenerationConfig

PROMPTS = ["How do I bake bread?", "Name a colour.", "Write one word about the sea, please now."]


def _prompts(lm):
    return [lm.chat.user(p) for p in PROMPTS]


def test_batched_greedy_equals_one_at_a_time(tiny_lm):
    cfg = GenerationConfig(max_new_tokens=12)
    ps = _prompts(tiny_lm)
    batched = tiny_lm.generate(ps, cfg, batch_size=3)
    single = [tiny_lm.generate([p], cfg, batch_size=1)[0] for p in ps]
    assert [g.text for g in batched] == [g.text for g in single]
    assert all(g.n_tokens <= 12 for g in batched)
    assert all(g.finish_reason in ("stop", "length") for g in batched)


def test_sampling_seed_per_sample_is_independent_of_batch(tiny_lm):
    cfg = GenerationConfig(max_new_tokens=10, temperature=1.0, top_k=50, top_p=0.9)
    ps = _prompts(tiny_lm)
    together = tiny_lm.generate(ps, cfg, seeds=[5, 6, 7], batch_size=3)
    alone = tiny_lm.generate([ps[1]], cfg, seeds=[6], batch_size=1)[0]
    assert together[1].text == alone.text
    again = tiny_lm.generate(ps, cfg, seeds=[5, 6, 7], batch_size=2)
    assert [g.text for g in again] == [g.text for g in together]
    other = tiny_lm.generate([ps[1]] * 4, cfg, seeds=[1, 2, 3, 4])
    assert len({g.text for g in other}) > 1


def test_stop_string_cuts_text(tiny_lm):
    p = _prompts(tiny_lm)[0]
    free = tiny_lm.generate([p], GenerationConfig(max_new_tokens=16))[0].text
    assert len(free) > 6
    stop = free[3:6]
    cut = tiny_lm.generate([p], GenerationConfig(max_new_tokens=16, stop=(stop,)))[0]
    assert cut.finish_reason == "stop" and cut.stop == stop
    assert stop not in cut.text and free.startswith(cut.text)


def test_prefill_continuation_is_greedy_decoding_of_the_prefilled_text(tiny_lm):
    torch = pytest.importorskip("torch")
    prompt = _prompts(tiny_lm)[0] + "Okay, the user asks about bread. Wait"
    cont = tiny_lm.generate([prompt], GenerationConfig(max_new_tokens=6, stop_at_eos=False))[0]
    # the same continuation by hand: argmax over full forward passes of prompt + generated ids
    ids = tiny_lm.encode(prompt)
    n_prompt = len(ids)
    with torch.no_grad():
        for _ in range(6):
            logits = tiny_lm.model(torch.tensor([ids])).logits[0, -1]
            ids.append(int(logits.argmax()))
    expected = tiny_lm.tokenizer.decode(ids[n_prompt:], skip_special_tokens=True)
    assert cont.n_tokens == 6 and cont.finish_reason == "length"
    assert cont.text == expected


def test_greedy_is_a_prefix_of_a_longer_greedy_run(tiny_lm):
    p = _prompts(tiny_lm)[0]
    first = tiny_lm.generate([p], GenerationConfig(max_new_tokens=8, stop_at_eos=False))[0].text
    full = tiny_lm.generate([p], GenerationConfig(max_new_tokens=12, stop_at_eos=False))[0].text
    assert full.startswith(first) and len(full) >= len(first)


def test_bad_arguments(tiny_lm):
    with pytest.raises(ParameterError):
        tiny_lm.generate(["x", ""])
    with pytest.raises(ParameterError):
        tiny_lm.generate(["x"], seeds=[1, 2])
    with pytest.raises(ParameterError):
        tiny_lm.generate("x")


def test_next_token_logprobs_shape(tiny_lm):
    lp = tiny_lm.next_token_logprobs(_prompts(tiny_lm), ["safe", "unsafe"])
    assert lp.shape == (3, 2) and (lp <= 0).all()
