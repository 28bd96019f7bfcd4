"""CLI: safechain eval runs on llama.cpp by default (auto) and on transformers with one flag; the
backend and its reason are in the summary, and a run directory never mixes the two."""

from __future__ import annotations

import json

import pytest

from aisec.cli.main import main

ARGS = [
    "safechain", "eval", "--model", "tiny-llama", "--chat-format", "chatml-think",
    "--judge", "refusal", "--n", "1", "--k", "2", "--max-new-tokens", "6", "--format", "json",
]  # fmt: skip


def _run(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow  # about 25 s under load: two model loads and two runs
def test_eval_default_is_auto_llamacpp_and_transformers_is_one_flag(tmp_path, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("llama_cpp")
    code, out, err = _run(capsys, [*ARGS, "--out", str(tmp_path / "auto")])
    assert code == 0, err
    s = json.loads(out)
    assert s["backend"] == "llamacpp" and s["backend_reason"].startswith("auto:")
    run = json.loads((tmp_path / "auto" / "run.json").read_text())
    assert run["backend"] == "llamacpp"
    code, out, err = _run(
        capsys, [*ARGS, "--backend", "transformers", "--out", str(tmp_path / "tf")]
    )
    assert code == 0, err
    s = json.loads(out)
    assert (
        s["backend"] == "transformers" and s["backend_reason"] == "chosen: backend='transformers'"
    )
    # resuming the llama.cpp run on transformers is refused, naming the setting
    code, out, err = _run(
        capsys, [*ARGS, "--backend", "transformers", "--out", str(tmp_path / "auto")]
    )
    assert code != 0 and "backend" in err and "different settings" in err
