from __future__ import annotations

import importlib.util
import json

import pytest

from aisec.errors import InputFileError, ParameterError
from aisec.io import load_safetensors
from aisec.llm import load_causal_lm
from aisec.llm.finetune import FinetuneConfig, SFTExample, build_batch, finetune

# each test fine-tunes a torch model: it skips alone where the torch extra is missing
needs_torch = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="needs the torch extra (aisec[llm])"
)


def _examples(lm):
    return [SFTExample(lm.chat.user(f"Say the word number {i}."), f"word{i % 3}<|im_end|>")
            for i in range(8)]


def torch_testing():  # noqa: ANN201
    import torch.testing

    return torch.testing


class Stop(Exception):
    pass


@needs_torch
def test_build_batch_masks_prompt(tiny_lm):
    b = build_batch(tiny_lm.tokenizer, _examples(tiny_lm)[:2], 128)
    assert b["input_ids"].shape == b["labels"].shape
    n_prompt = len(tiny_lm.encode(_examples(tiny_lm)[0].prompt))
    assert (b["labels"][0, :n_prompt] == -100).all() and (b["labels"][0, n_prompt] != -100)


@needs_torch
def test_lora_trains_checkpoints_and_resumes_exactly(tmp_path):
    cfg = FinetuneConfig(method="lora", lora_r=4, learning_rate=5e-3, steps=4, batch_size=2,
                         max_length=64, save_every=2)
    a = load_causal_lm("tiny-llama", chat_format="chatml-think")
    ra = finetune(a, _examples(a), cfg, tmp_path / "a", base_name="tiny-llama", progress=False)
    assert ra.steps == 4 and len(ra.losses) == 4
    assert (ra.weights_dir / "adapter_config.json").exists()
    assert json.loads((ra.weights_dir / "adapter_config.json").read_text())[
        "base_model_name_or_path"] == "tiny-llama"

    b = load_causal_lm("tiny-llama", chat_format="chatml-think")

    def interrupt(step, total, loss):
        if step == 3:
            raise Stop

    with pytest.raises(Stop):
        finetune(b, _examples(b), cfg, tmp_path / "b", base_name="tiny-llama", progress=interrupt)
    c = load_causal_lm("tiny-llama", chat_format="chatml-think")
    rc = finetune(c, _examples(c), cfg, tmp_path / "b", base_name="tiny-llama", progress=False)
    assert rc.resumed_from == 2
    wa = load_safetensors(tmp_path / "a" / "checkpoint" / "weights.safetensors")
    wc = load_safetensors(tmp_path / "b" / "checkpoint" / "weights.safetensors")
    assert set(wa) == set(wc)
    for k in wa:
        torch_testing().assert_close(wa[k], wc[k], rtol=1e-5, atol=1e-6)
    assert rc.losses[:2] == ra.losses[:2]

    # the adapter directory loads as a model on its own, with its base resolved by name
    lm = load_causal_lm(str(ra.weights_dir))
    assert lm.generate([lm.chat.user("hi")])[0].n_tokens >= 1


@needs_torch
def test_full_finetune_lowers_loss(tmp_path):
    lm = load_causal_lm("tiny-llama", chat_format="chatml-think")
    cfg = FinetuneConfig(method="full", learning_rate=3e-3, steps=6, batch_size=4, max_length=64,
                         save_every=6)
    res = finetune(lm, _examples(lm), cfg, tmp_path / "full", progress=False)
    assert res.losses[-1] < res.losses[0]
    assert (res.weights_dir / "config.json").exists()


@needs_torch
def test_too_few_examples(tmp_path, tiny_lm):
    with pytest.raises(ParameterError):
        finetune(tiny_lm, _examples(tiny_lm)[:1], FinetuneConfig(batch_size=2), tmp_path)


@needs_torch
def test_resume_accepts_another_checkpoint_interval_but_not_another_recipe(tmp_path):
    cfg = FinetuneConfig(method="lora", lora_r=4, learning_rate=5e-3, steps=4, batch_size=2,
                         max_length=64, save_every=4)
    a = load_causal_lm("tiny-llama", chat_format="chatml-think")
    finetune(a, _examples(a), cfg, tmp_path, progress=False, stop_after=2)
    b = load_causal_lm("tiny-llama", chat_format="chatml-think")
    with pytest.raises(InputFileError, match="different fine-tuning config"):
        finetune(b, _examples(b), cfg.model_copy(update={"learning_rate": 1e-3}), tmp_path,
                 progress=False)
    c = load_causal_lm("tiny-llama", chat_format="chatml-think")
    res = finetune(c, _examples(c), cfg.model_copy(update={"save_every": 1}), tmp_path,
                   progress=False)
    assert res.resumed_from == 2 and res.steps == 4
    steps = [json.loads(x)["step"] for x in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
