"""One meaning of ``--set`` in every command: defaults < YAML recipe < ``--set`` < explicit flags.

Each command test replaces the expensive library call with a recorder, so it checks only the
configuration the command resolves. (``aisec bench``: tests/cli/test_cli.py; ``aisec safechain``:
tests/cli/test_safechain_cli.py.)
"""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner

from aisec.cli.common import given, layered, split_flags
from aisec.cli.main import main


def test_layered_order_defaults_recipe_set_flags():
    got = layered(
        {"a": 2, "d": {"x": 2, "y": 2}},
        ["a=3", "b=3", "d.y=3"],
        {"b": 4, "e": None},
        defaults={"a": 1, "b": 1, "c": 1, "d": {"x": 1, "z": 1}},
    )
    assert got == {"a": 3, "b": 4, "c": 1, "d": {"x": 2, "y": 3, "z": 1}}


def test_given_tells_explicit_flags_from_defaults():
    seen = {}

    @click.command()
    @click.option("--steps", type=int, default=10)
    @click.option("--rate", type=float, default=0.1)
    def cmd(steps, rate):
        seen["given"] = (given("steps"), given("rate"), given("derived"), given(None))
        seen["split"] = split_flags({"steps": steps, "params": {"r": rate}}, {"params": "rate"})

    assert CliRunner().invoke(cmd, ["--steps", "10"]).exit_code == 0
    assert seen["given"] == (True, False, True, True)
    assert seen["split"] == ({"steps": 10}, {"params": {"r": 0.1}})


def test_caesar_run_precedence(tmp_path, capsys, monkeypatch):
    import aisec.privacy.caesar.run as caesar_run

    got = []
    monkeypatch.setattr(caesar_run, "run_local", lambda r, out, progress=None: got.append(r) or {})
    recipe = tmp_path / "r.yaml"
    recipe.write_text("protocol: {workers: 3, epochs: 2}\n")

    def workers(*args):
        assert main(["caesar", "run", *args, "--format", "json"]) == 0
        capsys.readouterr()
        return got[-1].protocol.workers, got[-1].protocol.epochs

    default = workers()[0]
    assert default != 3
    assert workers(str(recipe)) == (3, 2)  # the recipe beats the defaults
    assert workers(str(recipe), "--set", "protocol.workers=4") == (4, 2)  # --set beats it
    assert workers(str(recipe), "--set", "protocol.workers=4", "--workers", "5") == (5, 2)


def test_certify_attack_precedence(tmp_path, capsys, monkeypatch):
    import aisec.robustness.pipeline as pipeline

    seen = []

    class _Ev:
        def metrics(self):
            return {}

    def fake(exp, seed, progress=None, **kw):
        seen.append(exp)
        return None, _Ev(), {}

    monkeypatch.setattr(pipeline, "run_experiment", fake)
    recipe = tmp_path / "r.yaml"
    recipe.write_text("dataset: mnist-5k\nattack: cert-aware\nattack_params: {rate: 0.05}\n")

    def resolved(*args):
        seen.clear()
        assert main(["certify", "attack", "--recipe", str(recipe), *args, "--format", "json"]) == 0
        capsys.readouterr()
        clean, poisoned = seen
        assert clean.attack_params["rate"] == 0.0  # the unpoisoned model stays unpoisoned
        return poisoned.dataset, poisoned.attack, poisoned.attack_params["rate"]

    # the recipe beats the flags' defaults (--dataset digits, --attack random-label, 0.01)
    assert resolved() == ("mnist-5k", "cert-aware", 0.05)
    assert resolved("--set", "dataset=fashion-mnist", "--set", "attack_params.rate=0.02") == (
        "fashion-mnist",
        "cert-aware",
        0.02,
    )
    assert resolved(
        "--set", "dataset=fashion-mnist", "--dataset", "digits", "--poison-rate", "0.03"
    ) == ("digits", "cert-aware", 0.03)


def test_watermark_train_gnr_precedence(tmp_path, capsys, monkeypatch):
    import aisec.provenance.gnr as gnr_mod
    import aisec.provenance.keys as keys

    class _Key:
        method, params = "gaussmarker", {}

    class _Gnr:
        fingerprint = "f"

        def save(self, out):
            return out

    cfgs = []
    monkeypatch.setattr(keys, "load_key", lambda path: _Key())
    monkeypatch.setattr(gnr_mod, "train_gnr", lambda m_map, cfg, **kw: cfgs.append(cfg) or _Gnr())
    pytest.importorskip("torch")
    from aisec.provenance.base import get_method

    method = get_method("gaussmarker")
    monkeypatch.setattr(type(method), "encrypted_map", lambda self, key: None)

    def cfg(*args):
        out = str(tmp_path / "g.safetensors")
        assert (
            main(["watermark", "train-gnr", "--key", "k", "--out", out, *args, "--format", "json"])
            == 0
        )
        json.loads(capsys.readouterr().out)
        return cfgs[-1].steps, cfgs[-1].nf

    assert cfg() == (4000, 16)  # the flags' defaults
    assert cfg("--set", "steps=5", "--set", "nf=8") == (5, 8)  # --set beats a flag's default
    assert cfg("--set", "steps=5", "--steps", "7") == (7, 16)  # an explicit flag beats --set
