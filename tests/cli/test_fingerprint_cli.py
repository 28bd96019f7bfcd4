"""``aisec fingerprint``: generate -> insert -> verify -> claim -> check-claim on tiny-llama, and
forged or malformed inputs refused with one line."""

from __future__ import annotations

import json
import os
import stat

import pytest

from aisec.cli.main import main


def _run(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def _insert(capsys, fps, out, owner_key, *flags: str) -> tuple[int, str, str]:
    """``aisec fingerprint insert`` of FPS into tiny-llama, writing OUT."""
    capsys.readouterr()  # drop what was printed before (e.g. loading a model)
    return _run(
        capsys,
        "fingerprint",
        "insert",
        "--model",
        "tiny-llama",
        "--fingerprints",
        str(fps),
        "--out",
        str(out),
        "--owner-key",
        str(owner_key),
        *flags,
    )


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_generate_insert_verify_claim_check_claim(tmp_path, capsys):
    fps = tmp_path / "fps.json"
    key = tmp_path / "owner.pem"
    out = tmp_path / "fp-model"
    rc, o, _ = _run(
        capsys,
        "fingerprint",
        "generate",
        "--model",
        "tiny-llama",
        "--strategy",
        "random_word",
        "--n",
        "4",
        "--key-length",
        "6",
        "--seed",
        "3",
        "--out",
        str(fps),
        "--format",
        "json",
    )
    assert rc == 0 and json.loads(o)["n"] == 4
    assert stat.S_IMODE(os.stat(fps).st_mode) == 0o600
    secrets = json.loads(fps.read_text())["fingerprints"]
    rc, o, _ = _insert(
        capsys,
        fps,
        out,
        key,
        "--epochs",
        "25",
        "--batch-size",
        "4",
        "--lr",
        "1e-2",
        "--lora-r",
        "32",
        "--top-layers",
        "0",
        "--anchor-weight",
        "0",
        "--format",
        "json",
    )
    assert rc == 0, o
    ins = json.loads(o)
    assert ins["fp_accuracy"] == 1.0 and stat.S_IMODE(os.stat(key).st_mode) == 0o600
    adapter = ins["weights"]
    rc, o, _ = _run(
        capsys,
        "fingerprint",
        "verify",
        "--model",
        adapter,
        "--fingerprints",
        str(fps),
        "--format",
        "json",
    )
    ver = json.loads(o)
    assert rc == 0 and ver["matched"] == 4 and ver["owned"] is True  # p = 0.01**4
    claim = tmp_path / "claim.json"
    rc, o, _ = _run(
        capsys,
        "fingerprint",
        "claim",
        "--fingerprints",
        str(fps),
        "--owner-key",
        str(key),
        "--commitment",
        ins["commitment"],
        "--suspect",
        adapter,
        "--reveal",
        "4",
        "--out",
        str(claim),
    )
    assert rc == 0
    assert json.loads(fps.read_text())["spent"] == [0, 1, 2, 3]
    rc, o, _ = _run(
        capsys,
        "fingerprint",
        "check-claim",
        "--claim",
        str(claim),
        "--commitment",
        ins["commitment"],
        "--log10-alpha",
        "-4",
        "--format",
        "json",
    )
    chk = json.loads(o)
    assert rc == 0 and chk["holds"] is True and chk["matched"] == 4
    # the base model does not answer the keys: the (valid) claim is not supported -> exit 1
    rc, o, _ = _run(
        capsys,
        "fingerprint",
        "check-claim",
        "--claim",
        str(claim),
        "--model",
        "tiny-llama",
        "--log10-alpha",
        "-4",
    )
    assert rc == 1 and "NOT SUPPORTED" in o, o
    # a forged claim is refused with the reason, exit 2
    forged = json.loads(claim.read_text())
    forged["body"]["revealed"][0]["response"] = "forged"
    bad = tmp_path / "forged.json"
    bad.write_text(json.dumps(forged))
    rc, o, err = _run(capsys, "fingerprint", "check-claim", "--claim", str(bad), "--no-query")
    assert (
        rc == 2 and "claim signature does not verify" in err and len(err.strip().splitlines()) == 1
    )
    # no command printed a key or a response
    printed = o + err + json.dumps([ins, ver, chk])
    assert not any(s["key"] in printed for s in secrets)
    # everything is spent now: another claim is refused
    rc, _, err = _run(
        capsys,
        "fingerprint",
        "claim",
        "--fingerprints",
        str(fps),
        "--owner-key",
        str(key),
        "--commitment",
        ins["commitment"],
        "--suspect",
        adapter,
        "--out",
        str(tmp_path / "c2.json"),
    )
    assert rc == 2 and "unspent" in err


def test_duplicate_keys_file_is_refused_in_one_line(tmp_path, capsys):
    fp = {"key": "same key", "response": "r", "base_prob": 0.01, "salt": "ab" * 32}
    doc = {
        "format": "aisec-oml-fingerprints-v1",
        "strategy": "x",
        "model": "tiny-llama",
        "tokenizer": "t",
        "fingerprints": [fp, dict(fp)],
    }
    path = tmp_path / "dup.json"
    path.write_text(json.dumps(doc))
    rc, _, err = _run(
        capsys, "fingerprint", "verify", "--model", "tiny-llama", "--fingerprints", str(path)
    )
    assert rc == 2 and "repeats the key" in err and "same key" not in err
    assert len(err.strip().splitlines()) == 1


def test_unknown_attack_is_refused(tmp_path, capsys):
    rc, _, err = _run(
        capsys, "fingerprint", "attack", "--attacks", "sft,prune", "--out", str(tmp_path)
    )
    assert rc == 2 and "prune" in err


def test_insert_crashed_between_checkpoints_resumes_to_the_uninterrupted_weights(tmp_path, capsys):
    import torch

    from aisec.io import load_safetensors
    from aisec.llm import load_causal_lm
    from aisec.provenance.fingerprint import (
        FingerprintSet,
        GenerateConfig,
        InsertConfig,
        generate_fingerprints,
        insert_fingerprints,
    )

    lm = load_causal_lm("tiny-llama")
    fps_path = tmp_path / "fps.json"
    generate_fingerprints(
        lm, GenerateConfig(strategy="random_word", n=4, key_length=4, seed=5), "tiny-llama"
    ).save(fps_path)
    key = tmp_path / "owner.pem"
    # CLI flags and the InsertConfig they build: 3 epochs of 2 steps, averaging after each
    flags = ["--epochs", "3", "--batch-size", "2", "--lr", "1e-2", "--top-layers", "1"]
    flags += ["--anchor-weight", "0", "--checkpoint-every", "2", "--format", "json"]
    cfg = InsertConfig(
        epochs=3, batch_size=2, learning_rate=1e-2, averaging=0.1, top_layers=1, end_of_turn=False
    )

    def insert_cli(out, *extra):
        return _insert(capsys, fps_path, out, key, *flags, *extra)

    rc, o, err = insert_cli(tmp_path / "whole")
    assert rc == 0, err
    whole = json.loads(o)
    assert whole["steps"] == 6 and whole["resumed_from"] == 0

    class Crash(Exception):
        pass

    def crash_at_fourth_step(step, model):
        if step == 3:
            raise Crash
        return torch.zeros(())

    with pytest.raises(Crash):
        insert_fingerprints(
            load_causal_lm("tiny-llama"),
            FingerprintSet.load(fps_path),
            cfg,
            tmp_path / "crashed",
            anchor_loss=crash_at_fourth_step,
            checkpoint_every=2,
        )
    rc, _, err = insert_cli(tmp_path / "crashed")
    assert rc == 2 and "--resume" in err and len(err.strip().splitlines()) == 1
    rc, o, err = insert_cli(tmp_path / "crashed", "--resume")
    assert rc == 0, err
    resumed = json.loads(o)
    assert resumed["resumed_from"] == 2 and resumed["steps"] == 6
    a = load_safetensors(tmp_path / "whole" / "checkpoint" / "weights.safetensors")
    b = load_safetensors(tmp_path / "crashed" / "checkpoint" / "weights.safetensors")
    assert set(a) == set(b)
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6)
    log = (tmp_path / "crashed" / "train_log.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in log] == [1, 2, 3, 4, 5, 6]
    assert resumed["fp_accuracy"] == whole["fp_accuracy"]


def test_insert_resume_without_a_checkpoint_is_refused(tmp_path, capsys):
    path = tmp_path / "fps.json"
    path.write_text("{}")
    rc, _, err = _insert(capsys, path, tmp_path / "empty", tmp_path / "k.pem", "--resume")
    assert rc == 2 and "--resume needs a checkpoint" in err


@pytest.mark.parametrize(
    "method, lr_flag, expect",
    [("full", [], 1e-4), ("lora", [], 1e-3), ("full", ["--lr", "5e-3"], 5e-3)],
)
def test_insert_learning_rate_defaults_by_method_unless_given(
    tmp_path, capsys, method, lr_flag, expect
):
    from aisec.llm import load_causal_lm
    from aisec.provenance.fingerprint import GenerateConfig, generate_fingerprints

    fps = tmp_path / "fps.json"
    generate_fingerprints(
        load_causal_lm("tiny-llama"),
        GenerateConfig(strategy="random_word", n=2, key_length=4, seed=2),
        "tiny-llama",
    ).save(fps)
    rc, o, err = _insert(
        capsys,
        fps,
        tmp_path / "m",
        tmp_path / "k.pem",
        "--method",
        method,
        "--epochs",
        "1",
        "--batch-size",
        "2",
        "--anchor-weight",
        "0",
        "--top-layers",
        "1",
        *lr_flag,
        "--format",
        "json",
    )
    assert rc == 0, err
    assert json.loads(o)["config"]["learning_rate"] == expect
    assert json.loads(o)["config"]["method"] == method
