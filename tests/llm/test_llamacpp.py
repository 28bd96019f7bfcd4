"""The llama.cpp backend on the embedded SmolLM2 GGUF; header checks and backend choice."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest

from aisec.errors import ConfigError, InputFileError, ParameterError
from aisec.llm import GenerationConfig


@pytest.fixture(scope="module")
def embedded_gguf():
    from aisec.llm.llamacpp import _embedded_gguf

    return _embedded_gguf("smollm2-135m-instruct")


@pytest.fixture(scope="module")
def lcp():
    pytest.importorskip("llama_cpp")
    from aisec.llm.llamacpp import load_llamacpp

    return load_llamacpp("smollm2-135m-instruct", n_threads=1)


def _prompt(lm, text="Name a colour."):
    return lm.chat.user(text)


# -- header checks (no llama_cpp needed) ------------------------------------------------------


def test_truncated_gguf_is_one_line_error_naming_the_file(embedded_gguf, tmp_path):
    from aisec.llm.llamacpp import check_gguf

    data = embedded_gguf.read_bytes()
    for cut in (len(data) // 2, 2000, 10):
        bad = tmp_path / f"cut{cut}.gguf"
        bad.write_bytes(data[:cut])
        with pytest.raises(InputFileError) as info:
            check_gguf(bad)
        msg = str(info.value)
        assert "\n" not in msg and str(bad) in msg
        assert "truncated" in msg or "not a GGUF" in msg


def test_truncated_gguf_is_refused_by_the_backend_before_llama_cpp_loads_it(
    embedded_gguf, tmp_path
):
    from aisec.llm.llamacpp import LlamaCppLM

    bad = tmp_path / "half.gguf"
    bad.write_bytes(embedded_gguf.read_bytes()[:40_000_000])
    with pytest.raises(InputFileError, match="truncated"):
        LlamaCppLM(bad)


def test_unsupported_architecture_is_refused(tmp_path):
    gguf = pytest.importorskip("gguf")
    from aisec.llm.llamacpp import check_gguf

    path = tmp_path / "bert.gguf"
    w = gguf.GGUFWriter(str(path), "bert")
    w.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(ConfigError, match="architecture 'bert' is not supported"):
        check_gguf(path)


def test_not_a_gguf(tmp_path):
    from aisec.llm.llamacpp import check_gguf

    f = tmp_path / "x.gguf"
    f.write_bytes(b"PK\x03\x04" + b"0" * 100)
    with pytest.raises(InputFileError, match="not a GGUF"):
        check_gguf(f)


def test_embedded_header_reads(embedded_gguf):
    from aisec.llm.llamacpp import check_gguf

    info = check_gguf(embedded_gguf)
    assert info["architecture"] == "llama" and info["n_tensors"] == 272
    assert "<|im_start|>" in info["chat_template"]


def test_backend_choice_is_checked():
    from aisec.llm.remote import load_lm

    with pytest.raises(ConfigError, match="needs a server spec"):
        load_lm("smollm2-135m-instruct", backend="remote")
    with pytest.raises(ConfigError, match="is a server"):
        load_lm("http://localhost:9/v1#m", backend="llamacpp")
    with pytest.raises(ParameterError, match="backend"):
        load_lm("smollm2-135m-instruct", backend="vllm")


# -- generation (llama_cpp needed) ------------------------------------------------------------


def test_load_lm_llamacpp_backend_gives_the_gguf_chat_format(lcp):
    from aisec.llm.llamacpp import LlamaCppLM

    assert isinstance(lcp, LlamaCppLM)
    assert lcp.chat.end_of_turn == "<|im_end|>"
    assert lcp.chat.user("hi").endswith("<|im_start|>assistant\n")
    assert lcp.context_length == 8192


def test_greedy_generation_is_deterministic(lcp):
    cfg = GenerationConfig(max_new_tokens=16)
    ps = [_prompt(lcp), _prompt(lcp, "How do I bake bread?")]
    a = lcp.generate(ps, cfg)
    b = lcp.generate(list(reversed(ps)), cfg)
    assert [g.text for g in a] == [g.text for g in reversed(b)]
    assert all(g.text and 1 <= g.n_tokens <= 16 for g in a)
    assert all(g.finish_reason in ("stop", "length") for g in a)


def test_stop_string_cuts_text(lcp):
    p = _prompt(lcp, "How do I bake bread?")
    free = lcp.generate([p], GenerationConfig(max_new_tokens=20, stop_at_eos=False))[0].text
    assert len(free) > 12
    stop = free[6:10]
    cut = lcp.generate([p], GenerationConfig(max_new_tokens=20, stop=(stop,)))[0]
    assert cut.finish_reason == "stop" and cut.stop == stop
    assert stop not in cut.text and free.startswith(cut.text)


def test_prefill_continues_the_model_own_tokens(lcp):
    ids = lcp.encode(_prompt(lcp, "Why do we need sleep?"))
    cfg = GenerationConfig(max_new_tokens=12, stop_at_eos=False)
    full = lcp.generate_ids(ids, cfg)
    lcp.reset()
    rest = lcp.generate_ids(ids + full[:4], cfg.model_copy(update={"max_new_tokens": 8}))
    assert rest == full[4:]


def test_prefill_text_continues_from_its_end(lcp):
    prompt = _prompt(lcp, "How do I bake bread?") + "Okay, the user asks about bread. Wait"
    top = lcp.top_logprobs(prompt, 1)[0]
    cont = lcp.generate([prompt], GenerationConfig(max_new_tokens=1, stop_at_eos=False))[0]
    assert cont.n_tokens == 1 and cont.text == lcp.decode([top[0]])


def test_seeds_reproducible_and_independent_of_batch_mates_one_at_a_time(lcp):
    cfg = GenerationConfig(max_new_tokens=10, temperature=1.0, top_k=50, top_p=0.9)
    ps = [_prompt(lcp), _prompt(lcp, "Tell me a story."), _prompt(lcp, "Say hello.")]
    together = lcp.generate(ps, cfg, seeds=[5, 6, 7], batch_size=1)
    alone = lcp.generate([ps[1]], cfg, seeds=[6])[0]
    assert together[1].text == alone.text
    again = lcp.generate(ps, cfg, seeds=[5, 6, 7], batch_size=1)
    assert [g.text for g in again] == [g.text for g in together]
    other = lcp.generate([ps[1]] * 4, cfg, seeds=[1, 2, 3, 4], batch_size=1)
    assert len({g.text for g in other}) > 1


def test_logprobs_finite_and_agree_with_the_greedy_token(lcp):
    p = _prompt(lcp, "Name a colour.")
    first = lcp.generate_ids(lcp.encode(p), GenerationConfig(max_new_tokens=1, stop_at_eos=False))
    top = lcp.top_logprobs(p, 3)
    assert top[0][0] == first[0]
    assert top[0][2] >= top[1][2] >= top[2][2]
    assert 0 < sum(math.exp(t[2]) for t in top) <= 1 + 1e-9
    lp = lcp.next_token_logprobs([p, p + "Blue"], [top[0][1], "zebra"])
    assert lp.shape == (2, 2) and np.isfinite(lp).all() and (lp <= 0).all()
    assert lp[0, 0] == pytest.approx(top[0][2], abs=1e-6)
    assert lp[0, 0] > lp[0, 1]


def test_context_overflow_names_the_prompt_before_generating(embedded_gguf):
    pytest.importorskip("llama_cpp")
    from aisec.llm.llamacpp import LlamaCppLM

    lm = LlamaCppLM(embedded_gguf, context_length=64, n_threads=1)
    calls: list[tuple[int, int]] = []
    long = lm.chat.user("word " * 80)
    with pytest.raises(ParameterError, match=r"prompts\[1\]") as info:
        lm.generate(
            [lm.chat.user("hi"), long],
            GenerationConfig(max_new_tokens=4),
            batch_size=1,
            progress=lambda d, t: calls.append((d, t)),
        )
    assert calls == [] and "\n" not in str(info.value)


def test_training_and_torch_model_are_refused_in_one_line(lcp, tmp_path):
    from aisec.llm.finetune import FinetuneConfig, SFTExample, finetune

    with pytest.raises(ConfigError, match="backend='transformers'") as info:
        _ = lcp.model
    assert "\n" not in str(info.value)
    ex = [SFTExample("a", "b")]
    with pytest.raises(ConfigError, match="llama.cpp backend"):
        finetune(lcp, ex, FinetuneConfig(batch_size=1, steps=1), tmp_path / "ft")


def test_copy_of_gguf_loads_from_a_directory(embedded_gguf, tmp_path):
    pytest.importorskip("llama_cpp")
    from aisec.llm.llamacpp import load_llamacpp

    d = tmp_path / "m"
    d.mkdir()
    shutil.copy(embedded_gguf, d / "model.gguf")
    lm = load_llamacpp(str(d), n_threads=1, context_length=256)
    assert lm.name == "m" and lm.context_length == 256


def test_load_lm_llamacpp_exports_a_checkpoint_and_keeps_its_chat_format(tiny_lm):
    pytest.importorskip("llama_cpp")
    from aisec.llm.llamacpp import LlamaCppLM
    from aisec.llm.remote import load_lm

    lm = load_lm("tiny-llama", backend="llamacpp", chat_format_name="chatml-think", n_threads=1)
    assert isinstance(lm, LlamaCppLM) and lm.path.suffix == ".gguf"
    assert lm.chat.name == "chatml-think" and lm.chat.thinking
    p = lm.chat.user("Name a colour.")
    assert lm.encode(p) == tiny_lm.encode(p)
    cfg = GenerationConfig(max_new_tokens=8, stop_at_eos=False)
    assert lm.generate([p], cfg)[0].text == tiny_lm.generate([p], cfg)[0].text


# -- batched decoding (several sequences in one llama.cpp context) ----------------------------


_FIVE = (
    "Name a colour.",
    "Why do we need sleep?",
    "Say hello.",
    "How do bees make honey?",
    "What is a database index?",
)


def test_batched_greedy_equals_one_at_a_time_but_for_near_ties(lcp):
    # llama.cpp's batched matrix products round differently from one token at a time (logits
    # move by about 0.02 here), so a greedy choice may flip where two tokens are (nearly) tied,
    # and nowhere else
    greedy = GenerationConfig(max_new_tokens=16, stop_at_eos=False)
    ids = [lcp.encode(_prompt(lcp, t)) for t in _FIVE]
    single = [lcp.generate_ids(x, greedy) for x in ids]
    # five prompts through two slots: three sequences start in a slot another one freed
    together = lcp.generate_ids_batch(ids, greedy, batch_size=2)
    assert lcp._bctx_shape[0] >= 2  # the batched context ran
    same = 0
    for x, a, b in zip(ids, single, together, strict=True):
        assert len(b) == 16
        k = next((i for i, (u, v) in enumerate(zip(a, b, strict=True)) if u != v), None)
        if k is None:
            same += 1
            continue
        top = lcp.top_logprobs(_text(lcp, x + a[:k]), 2)
        assert {a[k], b[k]} == {top[0][0], top[1][0]} and top[0][2] - top[1][2] < 0.1
    assert same >= 4


def _text(lm, ids):
    return lm._llm.detokenize(ids, special=True).decode("utf-8")


def test_batched_text_equals_one_at_a_time_and_reports_progress(lcp):
    ps = [_prompt(lcp, t) for t in _FIVE]
    greedy = GenerationConfig(max_new_tokens=12, stop_at_eos=False)
    seq = lcp.generate(ps, greedy, batch_size=1)
    calls: list[tuple[int, int]] = []
    par = lcp.generate(ps, greedy, batch_size=2, progress=lambda d, t: calls.append((d, t)))
    assert sum(a.text == b.text for a, b in zip(par, seq, strict=True)) >= 4
    assert [g.n_tokens for g in par] == [12] * 5
    assert calls[-1] == (5, 5) and [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_batched_stop_strings_end_each_sequence_on_its_own(lcp):
    ps = [_prompt(lcp, t) for t in _FIVE[:3]]
    free = lcp.generate(ps, GenerationConfig(max_new_tokens=16, stop_at_eos=False), batch_size=1)
    stop = free[0].text[5:9]
    assert len(stop) == 4 and any(stop not in g.text for g in free[1:])
    cfg = GenerationConfig(max_new_tokens=16, stop_at_eos=False, stop=(stop,))
    cut = lcp.generate(ps, cfg, batch_size=3)
    assert cut[0].finish_reason == "stop" and cut[0].stop == stop
    for f, c in zip(free, cut, strict=True):
        if stop in f.text:
            assert c.stop == stop and stop not in c.text and f.text.startswith(c.text)
        else:  # its batch-mate stopped; this one went on to the end
            assert (c.text, c.finish_reason, c.n_tokens) == (f.text, "length", 16)


def test_batched_sampling_is_reproducible_per_seed(lcp):
    ps = [_prompt(lcp, t) for t in _FIVE[:3]]
    cfg = GenerationConfig(max_new_tokens=10, temperature=1.0, top_p=0.95)
    a = lcp.generate(ps, cfg, seeds=[11, 12, 13], batch_size=3)
    b = lcp.generate(ps, cfg, seeds=[11, 12, 13], batch_size=3)
    assert [g.text for g in a] == [g.text for g in b]
    d = lcp.generate([ps[0]] * 4, cfg, seeds=[1, 2, 3, 4], batch_size=4)
    assert len({g.text for g in d}) > 1
    e = lcp.generate([ps[0]] * 4, cfg, seeds=[1, 2, 3, 4], batch_size=4)
    assert [g.text for g in e] == [g.text for g in d]


def test_parallel_off_decodes_one_prompt_after_another(lcp):
    ps = [_prompt(lcp, t) for t in _FIVE[:2]]
    greedy = GenerationConfig(max_new_tokens=6, stop_at_eos=False)
    lcp._free_batch_context()
    lcp.parallel = False
    try:
        one = lcp.generate(ps, greedy, batch_size=2)
    finally:
        lcp.parallel = True
    assert lcp._bctx_shape == (0, 0)  # no batched context was made
    assert [g.text for g in one] == [g.text for g in lcp.generate(ps, greedy, batch_size=2)]


def test_k_samples_of_one_prompt_share_its_evaluated_prompt(lcp):
    # six copies of two prompts through three slots: copies admitted together take the first
    # one's cache after it is evaluated, later ones copy it from a slot still decoding
    ps = [_prompt(lcp, t) for t in _FIVE[:2]]
    greedy = GenerationConfig(max_new_tokens=10, stop_at_eos=False)
    alone = [lcp.generate([p], greedy)[0].text for p in ps]
    rep = [ps[0]] * 4 + [ps[1]] * 2
    out = [g.text for g in lcp.generate(rep, greedy, batch_size=3)]
    assert out[:4] == [out[0]] * 4 and out[4:] == [out[4]] * 2
    assert [out[0], out[4]] == alone
    cfg = GenerationConfig(max_new_tokens=10, temperature=0.7)
    a = lcp.generate(rep, cfg, seeds=list(range(6)), batch_size=3)
    b = lcp.generate(rep, cfg, seeds=list(range(6)), batch_size=1)
    # the same seeds draw the same samples but where rounding moves a draw across a boundary
    assert sum(x.text == y.text for x, y in zip(a, b, strict=True)) >= 4
    assert len({g.text for g in a[:4]}) > 1
