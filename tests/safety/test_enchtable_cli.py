"""``aisec merge`` and ``aisec enchtable merge``: a mergekit YAML with our method runs from the
command line; bad input exits 2 with one line and writes no model."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, perturbed_tiny_llama) -> dict[str, Path]:
    # every test here merges real checkpoints: each skips alone without the merge extra
    pytest.importorskip("mergekit")
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from aisec.assets import materialise

    base = materialise("tiny-llama")
    root = tmp_path_factory.mktemp("cli")
    out = {"base": Path(base)}
    for name, seed in (("task", 3), ("harmful", 4)):
        perturbed_tiny_llama(root / name, seed)
        out[name] = root / name
    return out


def test_aisec_merge_runs_a_mergekit_yaml_with_enchtable(models, tmp_path, capsys) -> None:
    import json

    from aisec.cli.main import main

    cfg = tmp_path / "m.yaml"
    cfg.write_text(
        "merge_method: enchtable\n"
        f"base_model: {models['base']}\n"
        "models:\n"
        f"  - model: {models['task']}\n    parameters: {{role: task}}\n"
        f"  - model: {models['harmful']}\n    parameters: {{role: harmful}}\n"
        "parameters: {beta: 0.1, temperature: 200}\n"
        "dtype: float32\n",
        encoding="utf-8",
    )
    assert main(["merge", str(cfg), "--out", str(tmp_path / "out"), "--format", "json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["method"] == "enchtable" and res["parameters"]["alpha"] > 0
    assert (tmp_path / "out" / "config.json").exists()


def test_enchtable_merge_bad_input_is_one_line_and_writes_nothing(models, tmp_path, capsys) -> None:
    from aisec.cli.main import main

    rc = main(
        [
            "enchtable",
            "merge",
            "--method",
            "resta",
            "--base",
            str(models["base"]),
            "--task",
            str(tmp_path / "nope"),
            "--harmful",
            str(models["harmful"]),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "nope" in err
    assert not (tmp_path / "out").exists()


def test_enchtable_evaluate_runs_behind_each_inference_defence(models, capsys) -> None:
    import json

    from aisec.cli.main import main

    common = ["enchtable", "evaluate", "--model", str(models["task"]), "--n-harmful", "2"]
    common += [
        "--n-lookalike",
        "0",
        "--n-utility",
        "2",
        "--max-new-tokens",
        "4",
        "--format",
        "json",
    ]
    losses = {}
    for extra in (
        [],
        ["--defence", "self_reminder"],
        ["--defence", "safedecoding", "--expert", str(models["base"]), "--defence-set", "alpha=3"],
    ):
        assert main(common + extra) == 0
        (row,) = json.loads(capsys.readouterr().out)
        assert row["unsafe"]["n_total"] == 2 and row["unsafe"]["judge"] == "harm"
        losses[row["defence"]] = row["task_loss"]
    # the wrapping and the steering change what the task model is scored on
    assert len(set(losses.values())) == 3


def test_enchtable_evaluate_safedecoding_without_expert_is_a_usage_error(models, capsys) -> None:
    from aisec.cli.main import main

    rc = main(
        ["enchtable", "evaluate", "--model", str(models["task"]), "--defence", "safedecoding"]
    )
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "--expert" in err and len(err.splitlines()) == 1


def test_enchtable_study_bad_input_is_one_line_exit_2(tmp_path, capsys) -> None:
    from aisec.cli.main import main

    rc = main(["enchtable", "study", "--run", str(tmp_path), "--model", "task"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "not an `aisec enchtable run`" in err
    (tmp_path / "pipeline_config.json").write_text('{"aligned": "tiny-llama"}')
    rc = main(["enchtable", "study", "--run", str(tmp_path), "--model", "enchtable@beta"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "enchtable@beta" in err


@pytest.mark.slow
def test_enchtable_study_sweeps_beta_and_chooses_on_validation(models, tmp_path, capsys) -> None:
    import json
    import shutil

    from aisec.cli.main import main

    run = tmp_path / "run"
    shutil.copytree(models["task"], run / "task" / "model")
    shutil.copytree(models["harmful"], run / "surrogate")
    cfg = {"aligned": "tiny-llama", "safety_sft_steps": 0, "task": "math", "task_examples": 8}
    cfg |= {"n_harmful": 2, "n_utility": 2, "max_new_tokens": 4, "judge": "refusal", "seed": 0}
    (run / "pipeline_config.json").write_text(json.dumps(cfg))
    args = ["enchtable", "study", "--run", str(run), "--model", "task"]
    args += ["--model", "enchtable@beta=0.5", "--model", "enchtable@beta=1.0"]
    args += ["--eval", "validation", "--eval", "utility_validation", "--choose", "0.02"]
    assert main([*args, "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    names = [r["model"] for r in out["rows"]]
    assert names == ["task", "enchtable@beta=0.5", "enchtable@beta=1.0"]
    assert out["chosen"]["model"] in names[1:]
    assert isinstance(out["chosen"]["within_utility"], bool)
    assert (run / "variants" / "enchtable@beta=1.0" / "aisec_merge.json").exists()
    assert json.loads((run / "study.json").read_text())["chosen"] == out["chosen"]
