from __future__ import annotations

import os
import socket
import stat

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import Field, ValidationError

from aisec import config, io, rng
from aisec.errors import ConfigError, InputFileError, ParameterError, UnknownNameError
from aisec.registry import Registry


def test_parameter_error_is_one_line_and_names_everything():
    e = ParameterError("height", "must be divisible by 8", 30)
    assert str(e) == "`height` must be divisible by 8; got 30"
    assert e.exit_code == 2 and isinstance(e, ValueError)


def test_registry_rejects_duplicates_and_lists_names_on_miss():
    reg: Registry[object] = Registry("test widget")
    reg.register("b", scale=2)(object)
    reg.register("a")(int)
    with pytest.raises(ConfigError, match="already registered"):
        reg.register("a")(str)
    with pytest.raises(UnknownNameError, match="valid: a, b"):
        reg.get("c")
    assert reg.entry("b").defaults["scale"] == 2
    with pytest.raises(TypeError):
        reg.entry("b").defaults["scale"] = 3  # type: ignore[index]


class Inner(config.StrictModel):
    lr: float = Field(0.1, gt=0)


class Recipe(config.StrictModel):
    name: str = "x"
    inner: Inner = Inner()


def test_recipe_yaml_then_overrides(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("name: y\ninner:\n  lr: 0.5\n")
    r = config.load_recipe(Recipe, p, ["inner.lr=0.25"])
    assert r.name == "y" and r.inner.lr == 0.25
    with pytest.raises(ValidationError):
        r.name = "z"  # frozen


def test_recipe_typo_is_one_line_config_error(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("inner:\n  lrr: 0.5\n")
    with pytest.raises(ConfigError) as ei:
        config.load_recipe(Recipe, p)
    msg = str(ei.value)
    assert "inner.lrr" in msg and "not a known key" in msg and "\n" not in msg


def test_recipe_missing_and_bad_files(tmp_path):
    with pytest.raises(InputFileError, match="no such file"):
        config.load_recipe(Recipe, tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1,\n")
    with pytest.raises(InputFileError, match="not valid YAML"):
        config.load_yaml(bad)
    with pytest.raises(ParameterError, match="key.path=value"):
        config.parse_overrides(["novalue"])


def test_recipe_directory_bom_and_non_utf8(tmp_path):
    with pytest.raises(InputFileError, match="is a directory"):
        config.load_yaml(tmp_path)
    bom = tmp_path / "bom.yaml"
    bom.write_bytes(b"\xef\xbb\xbfname: y\n")
    assert config.load_yaml(bom) == {"name": "y"}
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"name: y\nnote: caf\xe9\n")
    with pytest.raises(
        InputFileError, match=r"line 2 is not UTF-8 text \(byte 0xe9 at column 10\)"
    ):
        config.load_yaml(latin)


def test_save_resolved_writes_recipe_and_options(tmp_path):
    path = config.save_resolved(tmp_path, Recipe(), config.RunOptions(seed=3))
    text = path.read_text()
    assert "seed: 3" in text and "lr: 0.1" in text


def test_make_rng_is_explicit_and_validated():
    a, b = rng.make_rng(5), rng.make_rng(5)
    assert a.integers(1 << 30) == b.integers(1 << 30)
    g = np.random.default_rng(1)
    assert rng.make_rng(g) is g
    with pytest.raises(ParameterError):
        rng.make_rng(-1)


def test_secure_and_insecure_sources():
    s = rng.SecureRandom()
    assert s.secure and 0 <= s.randbelow(10) < 10 and len(s.bytes(16)) == 16
    with pytest.warns(rng.InsecureRandomWarning):
        i1 = rng.InsecureRandom(3)
    with pytest.warns(rng.InsecureRandomWarning):
        i2 = rng.InsecureRandom(3)
    assert not i1.secure and "INSECURE" in repr(i1)
    assert i1.uint64(4).tolist() == i2.uint64(4).tolist()


@settings(deadline=None)
@given(st.integers(min_value=1, max_value=2**80))
def test_randbelow_in_range(n):
    assert 0 <= rng.SecureRandom().randbelow(n) < n


def test_atomic_write_leaves_no_temp_on_failure(tmp_path):
    target = tmp_path / "f.txt"
    io.atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_private_files_are_owner_only(tmp_path):
    p = io.write_private(tmp_path / "key", b"secret")
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o600


def test_safetensors_roundtrip_and_corrupt_file(tmp_path):
    p = io.save_safetensors(tmp_path / "w.safetensors", {"a": np.arange(3, dtype=np.float32)})
    assert io.load_safetensors(p, "np")["a"].tolist() == [0, 1, 2]
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(InputFileError, match="not a valid safetensors"):
        io.load_safetensors(bad)


def test_network_is_blocked_but_loopback_allowed():
    with pytest.raises(OSError, match="network disabled"):
        socket.create_connection(("93.184.216.34", 80), timeout=1)
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    c = socket.create_connection(srv.getsockname(), timeout=1)
    c.close()
    srv.close()


def test_ordinary_outputs_follow_umask(tmp_path):
    p = io.atomic_write_text(tmp_path / "out.txt", "x")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o666 & ~umask
