"""Contract tests over every registry entry: a new method is checked the day it registers."""

from __future__ import annotations

import json

import pytest

from aisec.cli.commands.list import load_all_registries
from aisec.registry import registries

FAILED = load_all_registries()
ENTRIES = [(kind, name) for kind, reg in sorted(registries().items())
           if not kind.startswith("test") for name in reg.names()]


def test_all_registry_modules_import():
    assert FAILED == {}


@pytest.mark.parametrize(("kind", "name"), ENTRIES, ids=[f"{k}:{n}" for k, n in ENTRIES])
def test_entry_is_named_and_documented(kind, name):
    entry = registries()[kind].entry(name)
    assert entry.name == name and name.strip() == name and " " not in name
    assert entry.summary, f"{kind} {name!r} has no summary (first docstring line)"
    json.dumps(dict(entry.defaults), default=str)


SCENARIOS = registries()["scenario"]


@pytest.mark.parametrize("name", SCENARIOS.names())
def test_scenario_contract(name):
    s = SCENARIOS.get(name)
    assert name.split(".")[0] == s.system or name.startswith(s.system)
    assert s.suites and set(s.suites) <= {"quick", "full"} and s.seeds
    for suite in ("quick", "full"):
        params = s.resolve(suite)
        json.dumps(params)  # rows must be able to store them
    assert s.fn.__module__.startswith("aisec.bench.scenarios.")


ASSETS = registries()["asset"]


@pytest.mark.parametrize("name", ASSETS.names())
def test_asset_contract(name):
    spec = ASSETS.get(name)
    assert spec.kind in ("dataset", "model") and spec.licence and spec.source
    assert spec.redistribute in (True, False)
