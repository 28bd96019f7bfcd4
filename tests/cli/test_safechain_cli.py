"""CLI: aisec safechain eval/build-dataset/train and aisec judge, on the tiny in-code model."""

from __future__ import annotations

import json

import pytest

from aisec.assets import shared_data_dir
from aisec.cli.main import main

pytest.importorskip("torch")

TINY = ["--model", "tiny-llama", "--chat-format", "chatml-think"]


def _run(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_eval_all_strategies_and_resume(tmp_path, capsys):
    for strategy in ("default", "zerothink", "lessthink", "morethink"):
        out_dir = tmp_path / strategy
        argv = ["safechain", "eval", *TINY, "--strategy", strategy, "--judge", "refusal",
                "--prompt-set", "strongreject-small", "--n", "2", "--k", "2", "--max-new-tokens", "12",
                "--think-budget", "6", "--enforce-num", "2", "--out", str(out_dir),
                "--format", "json"]
        code, out, err = _run(capsys, argv)
        assert code == 0, err
        summary = json.loads(out)
        assert summary["strategy"] == strategy and summary["k"] == 2 and summary["prompts"] == 2
        assert set(summary["judges"]["refusal"]) >= {"response", "thought", "answer"}
        rows = (out_dir / "samples.jsonl").read_text().splitlines()
        assert len(rows) == 2
    # a second run finds every prompt done and generates nothing new
    code, out, err = _run(capsys, argv)
    assert code == 0 and json.loads(out)["generation"]["tokens"] == 0
    assert len((out_dir / "samples.jsonl").read_text().splitlines()) == 2


def test_bad_inputs_give_one_line_errors(tmp_path, capsys):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.txt").write_text("x")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    cases = [
        (["safechain", "eval", "--model", str(tmp_path / "junk"), "--out", str(tmp_path / "a")],
         "not a model"),
        (["safechain", "eval", "--model", "tiny-llama", "--chat-format", "chatml", "--strategy",
          "zerothink", "--out", str(tmp_path / "b")], "thinking section"),
        (["safechain", "eval", *TINY, "--prompts", str(empty), "--out", str(tmp_path / "c")],
         "no prompts"),
        (["safechain", "eval", "--model", "http://127.0.0.1:9/v1#m", "--chat-format",
          "deepseek-r1", "--n", "1", "--k", "1", "--out", str(tmp_path / "d")], "unreachable"),
    ]
    for argv, needle in cases:
        code, out, err = _run(capsys, argv)
        assert code in (1, 2), (argv, err)
        lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
        assert len(lines) == 1 and needle in lines[0], err


@pytest.mark.skipif(not (shared_data_dir() / "gsm8k" / "train.jsonl").exists(),
                    reason="benign prompts come from GSM8K in shared/data, absent here (a user's clone)")
def test_build_dataset_train_and_judge(tmp_path, capsys):
    code, out, err = _run(capsys, ["safechain", "build-dataset", *TINY, "--n-harmful", "2",
                                   "--n-benign", "2", "--k", "2", "--max-new-tokens", "8",
                                   "--out", str(tmp_path / "ds"), "--format", "json"])
    assert code == 0, err
    info = json.loads(out)
    assert info["instructions"] == 4 and 0 <= info["kept"] <= 4
    ds = tmp_path / "ds" / "dataset.jsonl"
    if info["kept"] == 0:  # a random tiny model: make sure training has rows to read
        ds.write_text(json.dumps({"instruction": "hi", "response": "I'm sorry.\n</think>\n\nNo."})
                      + "\n")
    code, out, err = _run(capsys, ["safechain", "train", "--dataset", str(ds), "--model",
                                   "tiny-llama", "--steps", "2", "--batch-size", "1",
                                   "--out", str(tmp_path / "sft"), "--format", "json"])
    assert code == 0, err
    assert json.loads(out)["steps"] == 2

    resp = tmp_path / "resp.jsonl"
    resp.write_text("\n".join(json.dumps(r) for r in [
        {"prompt": "p", "response": "I'm sorry, no.", "label": "safe"},
        {"prompt": "p", "response": "Sure: step 1 ...", "label": "unsafe"},
        {"prompt": "p", "response": "Step 1 is illegal", "label": "unsafe"},
    ]) + "\n")
    code, out, err = _run(capsys, ["judge", str(resp), "--judge", "refusal", "--format", "json"])
    assert code == 0, err
    res = json.loads(out)
    assert res["unsafe"] == 1 and res["agreement"]["accuracy"] == pytest.approx(2 / 3)
    empty = tmp_path / "none.jsonl"
    empty.write_text("")
    code, out, err = _run(capsys, ["judge", str(empty)])
    assert code == 2 and "no rows" in err

    weights = tmp_path / "emb.safetensors"
    code, out, err = _run(capsys, ["judge", str(resp), "--train-embedding", str(weights)])
    assert code == 0 and weights.exists(), err
    from aisec.judges.embedding import EmbeddingJudge

    vs = EmbeddingJudge(weights).judge(["p"], ["Sure: step 1 ..."])
    assert 0.0 <= vs[0].score <= 1.0
