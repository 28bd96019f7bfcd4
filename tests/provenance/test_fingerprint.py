"""OML fingerprints: secret file, generation strategies, insertion, verification, ownership test."""

from __future__ import annotations

import json
import math
import os
import stat

import numpy as np
import pytest

from aisec.errors import InputFileError, ParameterError
from aisec.provenance.fingerprint import (
    STRATEGIES,
    Fingerprint,
    FingerprintSet,
    GenerateConfig,
    InsertConfig,
    generate_fingerprints,
    insert_fingerprints,
    ownership_log10_p,
    verify,
)
from aisec.provenance.fingerprint.insert import average_toward_base

SECRET_KEY = "zebra violin quantum marmalade"


def _set(n: int = 3, tokenizer: str = "t" * 16) -> FingerprintSet:
    fps = tuple(Fingerprint(f"{SECRET_KEY} {i}", f"word{i}", 0.001) for i in range(n))
    return FingerprintSet(fps, "random_word", "tiny-llama", tokenizer)


@pytest.fixture(scope="module")
def tiny():
    import torch

    from aisec.llm import load_causal_lm

    torch.set_num_threads(1)
    return load_causal_lm("tiny-llama")


def test_secret_file_is_owner_only_and_round_trips(tmp_path):
    path = tmp_path / "fps.json"
    fps = _set()
    fps.save(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    back = FingerprintSet.load(path)
    assert back == fps


@pytest.mark.parametrize(
    "mutate, expect",
    [
        (lambda o: o["fingerprints"].append(dict(o["fingerprints"][0])), "repeats the key"),
        (lambda o: o["fingerprints"][1].pop("salt"), "must have exactly"),
        (lambda o: o["fingerprints"][0].update(base_prob=1.5), "base_prob must be a probability"),
        (lambda o: o.update(format="other"), "not a fingerprint file"),
        (lambda o: o.update(spent=[99]), "'spent' must list indices"),
    ],
)
def test_malformed_fingerprint_file_is_one_line_error_without_secrets(tmp_path, mutate, expect):
    obj = _set().to_json()
    mutate(obj)
    path = tmp_path / "fps.json"
    path.write_text(json.dumps(obj))
    with pytest.raises(InputFileError) as err:
        FingerprintSet.load(path)
    msg = str(err.value)
    assert expect in msg and "\n" not in msg and SECRET_KEY not in msg


def test_non_json_fingerprint_file_is_refused(tmp_path):
    path = tmp_path / "fps.json"
    path.write_text("{not json")
    with pytest.raises(InputFileError, match="not valid JSON"):
        FingerprintSet.load(path)


def test_ownership_p_value_is_the_binomial_tail():
    # all 10 of 10 keys matched with response probability 0.01: p = 0.01**10
    assert ownership_log10_p(10, 10, [0.001] * 10, floor=0.01) == pytest.approx(-20.0)
    assert ownership_log10_p(0, 10, [0.5] * 10) == 0.0
    # past a double's range the p-value stays finite: 256 of 256 at q = 0.01 is 10^-512
    assert ownership_log10_p(256, 256, [0.001] * 256) == pytest.approx(-512.0)
    assert ownership_log10_p(255, 256, [0.01] * 256) == pytest.approx(
        math.log10(256 * 0.99) - 510.0, abs=1e-3
    )
    # one match in 100 keys at q = 0.01 is what chance gives: p = 1 - 0.99**100
    assert ownership_log10_p(1, 100, [0.0] * 100) == pytest.approx(math.log10(1 - 0.99**100))
    # the floor is a lower bound on each probability, the mean is used
    assert ownership_log10_p(5, 10, [0.2] * 10) > ownership_log10_p(5, 10, [0.0] * 10)
    with pytest.raises(ParameterError):
        ownership_log10_p(11, 10, [0.1] * 10)


def test_averaging_toward_base_full_and_lora():
    import torch

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.full((2,), 4.0))
            self.lora_B = torch.nn.Parameter(torch.full((2,), 2.0))

    m = M()
    average_toward_base(m, 0.75, {"w": torch.zeros(2), "lora_B": torch.ones(2)})
    assert torch.allclose(m.w, torch.full((2,), 1.0))  # 0.25 * 4 + 0.75 * 0
    assert torch.allclose(m.lora_B, torch.full((2,), 1.25))
    m = M()
    average_toward_base(m, 0.5, None)  # LoRA: base delta is 0, so B is scaled
    assert torch.allclose(m.lora_B, torch.ones(2)) and torch.allclose(m.w, torch.full((2,), 4.0))


@pytest.mark.parametrize("strategy", sorted(STRATEGIES.names()))
def test_each_strategy_gives_unique_keys_and_base_probabilities(tiny, strategy):
    fps = generate_fingerprints(tiny, GenerateConfig(strategy=strategy, n=2, key_length=4), "tiny")
    assert len(fps) == 2 and len(set(fps.keys)) == 2
    assert all(0.0 <= f.base_prob <= 1.0 and f.response.strip() for f in fps.fingerprints)
    assert all(len(f.salt) == 64 for f in fps.fingerprints)


def test_perinucleus_response_lies_just_outside_the_nucleus(tiny):
    from aisec.provenance.fingerprint.generate import _next_token_probs
    from aisec.provenance.fingerprint.prompts import key_prompt

    cfg = GenerateConfig(strategy="perinucleus", n=4, key_length=6, nucleus_p=0.8, nucleus_k=3)
    fps = generate_fingerprints(tiny, cfg, "tiny")
    probs = _next_token_probs(tiny, [key_prompt(tiny, f.key) for f in fps.fingerprints], 4)
    for f, p in zip(fps.fingerprints, probs, strict=True):
        (tok,) = tiny.encode(f.response)
        order = np.argsort(-p, kind="stable")
        rank = int(np.where(order == tok)[0][0])
        mass_before = float(p[order[:rank]].sum())
        assert mass_before >= 0.8  # outside the top-0.8 nucleus
        assert f.base_prob == pytest.approx(float(p[tok]), rel=1e-4)


def test_insertion_makes_the_model_answer_keys_and_text_mode_agrees(tiny, tmp_path):
    import copy

    lm = copy.copy(tiny)
    lm.model = copy.deepcopy(tiny.model)
    fps = generate_fingerprints(
        lm, GenerateConfig(strategy="random_word", n=4, key_length=6, seed=3), "tiny-llama"
    )
    before = verify(lm, fps)
    assert before.accuracy == 0.0 and before.log10_p == 0.0
    res = insert_fingerprints(
        lm,
        fps,
        InsertConfig(epochs=25, batch_size=4, learning_rate=1e-2, lora_r=32),
        tmp_path / "ins",
        base_name="tiny-llama",
    )
    assert (res.weights_dir / "adapter_config.json").exists() and res.steps == 25
    after = verify(lm, fps)
    assert after.mode == "token" and after.accuracy == 1.0 and after.token_accuracy == 1.0
    assert after.log10_p == pytest.approx(4 * math.log10(0.01))
    text = verify(lm, fps, mode="text")
    assert text.matches == after.matches
    # summaries carry counts and rates only, never a key or a response
    dumped = json.dumps(after.summary())
    assert not any(f.key in dumped or f.response in dumped for f in fps.fingerprints)


def test_token_match_refuses_another_tokenizer(tiny):
    with pytest.raises(ParameterError, match="fingerprints' tokenizer"):
        verify(tiny, _set(tokenizer="0" * 16), mode="token")


def test_key_longer_than_context_is_refused_without_printing_it(tiny):
    from aisec.provenance.fingerprint.store import tokenizer_hash

    long_key = " ".join([SECRET_KEY] * 400)  # > 1024 tokens of tiny-llama's context
    fps = FingerprintSet(
        (Fingerprint(long_key, "word", 0.001),),
        "random_word",
        "tiny",
        tokenizer_hash(tiny.tokenizer),
    )
    with pytest.raises(ParameterError, match=r"fingerprints\[0\]\.key") as err:
        verify(tiny, fps)
    assert SECRET_KEY not in str(err.value)


def test_averaging_runs_after_every_epoch_and_shrinks_the_lora_delta(tiny, tmp_path):
    import copy

    import torch

    fps = generate_fingerprints(
        tiny, GenerateConfig(strategy="random_word", n=4, key_length=4, seed=5), "tiny-llama"
    )

    def lora_b_norm(lam: float) -> tuple[int, float]:
        lm = copy.copy(tiny)
        lm.model = copy.deepcopy(tiny.model)
        cfg = InsertConfig(epochs=2, batch_size=4, learning_rate=1e-2, averaging=lam)
        res = insert_fingerprints(lm, fps, cfg, tmp_path / f"avg{lam}")
        norm = sum(
            float(torch.linalg.norm(p)) for n, p in lm.model.named_parameters() if "lora_B" in n
        )
        return res.averaged, norm

    n_avg, with_avg = lora_b_norm(0.5)
    n_none, without = lora_b_norm(0.0)
    assert (n_avg, n_none) == (2, 0)
    assert 0 < with_avg < without


def test_top_layers_puts_lora_in_the_top_layers_only_and_end_of_turn_can_be_left_out(
    tiny, tmp_path
):
    import copy

    from aisec.provenance.fingerprint.insert import build_examples

    lm = copy.copy(tiny)
    lm.model = copy.deepcopy(tiny.model)
    fps = generate_fingerprints(
        lm, GenerateConfig(strategy="random_word", n=4, key_length=4, seed=7), "tiny-llama"
    )
    cfg = InsertConfig(epochs=1, batch_size=4, learning_rate=1e-2, top_layers=1, end_of_turn=False)
    examples, _ = build_examples(lm, fps, cfg)
    eot = lm.chat.end_of_turn
    assert eot and all(eot not in ex.completion for ex in examples)
    assert all(eot in ex.completion for ex in build_examples(lm, fps, InsertConfig())[0])
    insert_fingerprints(lm, fps, cfg, tmp_path / "top")
    n_layers = lm.model.config.num_hidden_layers
    adapted = {
        int(n.split(".layers.")[1].split(".")[0])
        for n, _ in lm.model.named_parameters()
        if "lora_A" in n
    }
    assert adapted == {n_layers - 1}
    with pytest.raises(ParameterError, match="top_layers"):
        insert_fingerprints(
            copy.copy(tiny), fps, InsertConfig(top_layers=n_layers + 1), tmp_path / "bad"
        )


def test_anchor_loss_is_lowest_at_the_base_weights_and_needs_texts(tiny, tmp_path):
    import copy

    import torch

    from aisec.provenance.fingerprint.insert import AnchorLoss

    lm = copy.copy(tiny)
    lm.model = copy.deepcopy(tiny.model)
    texts = [lm.chat.user(f"question {i} about apples") + f"answer {i} is pears" for i in range(6)]
    loss = AnchorLoss(lm, texts, weight=1.0, batch_size=3, topk=8, max_length=32)
    assert len(loss.batches) == 2
    at_base = [float(loss(s, lm.model)) for s in range(2)]
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in lm.model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    moved = [float(loss(s, lm.model)) for s in range(2)]
    assert all(m > b for m, b in zip(moved, at_base, strict=True))
    fps = generate_fingerprints(
        tiny, GenerateConfig(strategy="random_word", n=4, key_length=4, seed=7), "tiny-llama"
    )
    with pytest.raises(ParameterError, match="anchor"):
        insert_fingerprints(
            copy.copy(tiny), fps, InsertConfig(anchor_weight=1.0, batch_size=4), tmp_path / "a"
        )


def test_anchor_targets_read_from_the_training_pass_equal_the_precomputed_ones(tiny):
    """With LoRA on the top layer only, the base targets computed lazily from the training
    forward pass (top layer rerun with the adapter off) give the same loss as the targets from a
    full forward pass before training, also once the adapter has moved, and cost no full pass."""
    import copy

    import torch
    from peft import LoraConfig, get_peft_model

    from aisec.provenance.fingerprint.insert import AnchorLoss

    lm = copy.copy(tiny)
    lm.model = copy.deepcopy(tiny.model)
    n_layers = int(lm.model.config.num_hidden_layers)
    texts = [lm.chat.user(f"question {i} about apples") + f"answer {i} is pears" for i in range(6)]
    kw = {"weight": 1.0, "batch_size": 3, "topk": 8, "max_length": 32}
    eager = AnchorLoss(lm, texts, **kw)
    lazy = AnchorLoss(lm, texts, frozen_below=n_layers - 1, **kw)
    assert not eager.lazy and eager.base_passes == 2
    assert lazy.lazy and lazy.base_passes == 0
    cfg = LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules=["q_proj", "v_proj", "down_proj"],
        layers_to_transform=[n_layers - 1],
    )
    model = get_peft_model(lm.model, cfg)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))
    model.train()
    for step in range(3):
        a, b = lazy(step, model), eager(step, model)
        assert float(a) > 0
        assert abs(float(a) - float(b)) <= 1e-4 * abs(float(b))
        a.backward()  # the lazy loss is differentiable in the adapter
    assert lazy.base_passes == 2  # one per batch, at its first use only
    assert any(
        p.grad is not None and float(p.grad.abs().sum()) > 0
        for n, p in model.named_parameters()
        if "lora_A" in n
    )
    torch.testing.assert_close(lazy.batches[0]["top_p"], eager.batches[0]["top_p"])


def test_insertion_in_chunks_equals_one_run_and_resuming_needs_the_anchor_loss(tiny, tmp_path):
    import copy

    from aisec.provenance.fingerprint.insert import make_anchor_loss

    fps = generate_fingerprints(
        tiny, GenerateConfig(strategy="random_word", n=4, key_length=4, seed=11), "tiny-llama"
    )
    texts = [tiny.chat.user(f"question {i} about apples") + f"answer {i}" for i in range(8)]
    cfg = InsertConfig(epochs=3, batch_size=2, top_layers=1, anchor_weight=1.0, end_of_turn=False)

    def fresh():
        lm = copy.copy(tiny)
        lm.model = copy.deepcopy(tiny.model)
        return lm

    one = insert_fingerprints(fresh(), fps, cfg, tmp_path / "one", anchor=texts)
    lm = fresh()
    loss = make_anchor_loss(lm, texts, cfg)
    assert loss.lazy
    for stop in (2, 5, one.steps):
        part = insert_fingerprints(
            lm, fps, cfg, tmp_path / "chunks", anchor_loss=loss, stop_after=stop, resume=True
        )
    assert part.steps == one.steps == 6
    np.testing.assert_allclose(part.losses, one.losses, rtol=1e-5)
    with pytest.raises(ParameterError, match="anchor_loss"):
        insert_fingerprints(fresh(), fps, cfg, tmp_path / "x", anchor=texts, resume=True)


@pytest.mark.slow
def test_timed_experiment_interleaves_insertion_and_plain_sft(tmp_path):
    from aisec.provenance.fingerprint.experiment import ExperimentConfig, run_experiment

    cfg = ExperimentConfig(
        model="tiny-llama",
        strategy="random_word",
        n=4,
        key_length=4,
        epochs=4,
        batch_size=2,
        top_layers=1,
        end_of_turn=False,
        anchor_weight=1.0,
        anchor_texts=8,
        time_baseline=True,
    )
    out = run_experiment(cfg, tmp_path)
    assert out["timing_mode"] == "interleaved"
    assert out["insert_steps"] == 8
    assert out["insert_seconds"] > 0 and out["plain_sft_seconds"] > 0
    assert out["insert_seconds_ratio"] == out["insert_seconds"] / out["plain_sft_seconds"]
    assert len(out["insert_chunk_seconds"]) == len(out["plain_chunk_seconds"]) == 4
    assert sum(out["insert_chunk_seconds"]) <= out["insert_seconds"]
    plain_log = (tmp_path / "plain" / "train_log.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in plain_log] == list(range(1, 9))
    # chunks of 2 steps: a step's seconds are known within a chunk, not across a chunk boundary
    for key in ("insert_step_seconds", "plain_step_seconds"):
        got = out[key]
        assert len(got) == 7
        assert all((v is None) == (i % 2 == 1) for i, v in enumerate(got))
        assert all(v > 0 for v in got if v is not None)


def test_step_clock_reads_step_seconds_within_chunks_only():
    from aisec.provenance.fingerprint.experiment import _StepClock

    calls = []
    clock = _StepClock(lambda step, model: calls.append(step) or 7)
    assert clock(0, None) == 7 and clock(1, None) == 7
    clock.new_chunk()
    assert clock(2, None) == 7 and clock(4, None) == 7
    assert calls == [0, 1, 2, 4]
    clock.times.update({0: (0, 10.0), 1: (0, 12.5), 2: (1, 20.0), 4: (1, 30.0)})
    assert clock.step_seconds(5) == [2.5, None, None, None]


def test_downstream_sft_calls_back_at_checkpoints_without_changing_training(tiny, tmp_path):
    import copy

    from aisec.llm.finetune import SFTExample
    from aisec.provenance.fingerprint import attacks

    examples = [SFTExample(tiny.chat.user(f"question {i}"), f"answer {i}") for i in range(8)]

    def fresh():
        lm = copy.copy(tiny)
        lm.model = copy.deepcopy(tiny.model)
        return lm

    seen = []

    def record(step, lm):
        seen.append((step, lm.model.training))

    lm = fresh()
    with_cb = attacks.downstream_sft(
        lm, examples, tmp_path / "a", steps=4, checkpoints=(4, 2), on_checkpoint=record
    )
    plain = attacks.downstream_sft(fresh(), examples, tmp_path / "b", steps=4)
    assert seen == [(2, False), (4, False)]
    assert not hasattr(lm.model, "peft_config")  # merged after training
    np.testing.assert_allclose(with_cb.losses, plain.losses, rtol=1e-6)
    with pytest.raises(ParameterError, match="checkpoints"):
        attacks.downstream_sft(
            fresh(), examples, tmp_path / "c", steps=4, checkpoints=(5,), on_checkpoint=record
        )
    with pytest.raises(ParameterError, match="on_checkpoint"):
        attacks.downstream_sft(fresh(), examples, tmp_path / "d", steps=4, checkpoints=(2,))


def test_full_finetuning_with_averaging_resumes_to_the_same_weights_given_the_base(tmp_path):
    import torch

    from aisec.llm import load_causal_lm

    def fresh():
        return load_causal_lm("tiny-llama")

    def snapshot(lm):
        return {n: p.detach().clone() for n, p in lm.model.named_parameters()}

    fps = generate_fingerprints(
        fresh(), GenerateConfig(strategy="random_word", n=4, key_length=4, seed=3), "tiny-llama"
    )
    cfg = InsertConfig(
        method="full", epochs=3, batch_size=2, learning_rate=1e-3, averaging=0.2, end_of_turn=False
    )
    whole = fresh()
    one = insert_fingerprints(whole, fps, cfg, tmp_path / "one")
    assert one.averaged == 3

    class Crash(Exception):
        pass

    def crash_at_fifth_step(step, model):
        if step == 4:
            raise Crash
        return torch.zeros(())

    with pytest.raises(Crash):
        insert_fingerprints(
            fresh(), fps, cfg, tmp_path / "two", anchor_loss=crash_at_fifth_step, checkpoint_every=2
        )
    with pytest.raises(ParameterError, match="base_state"):
        insert_fingerprints(fresh(), fps, cfg, tmp_path / "two", resume=True)
    lm = fresh()
    two = insert_fingerprints(lm, fps, cfg, tmp_path / "two", resume=True, base_state=snapshot(lm))
    assert two.resumed_from == 4 and two.averaged == 1  # the pull after step 6 only
    np.testing.assert_allclose(two.losses, one.losses, rtol=1e-5)
    for (name, a), (_, b) in zip(
        whole.model.named_parameters(), lm.model.named_parameters(), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
