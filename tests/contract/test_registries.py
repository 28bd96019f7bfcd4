"""Contract tests over every registry entry: a new method is checked the day it registers."""

from __future__ import annotations

import functools
import json

import pytest

from aisec.cli.commands.list import load_all_registries
from aisec.registry import registries

FAILED = load_all_registries()
ENTRIES = [
    (kind, name)
    for kind, reg in sorted(registries().items())
    if not kind.startswith("test")
    for name in reg.names()
]


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


@pytest.mark.parametrize("name", SCENARIOS.names())
def test_scenario_declares_headlines_the_scorecard_can_show(name):
    from aisec.report.scorecard import scorecard_lines

    s = SCENARIOS.get(name)
    assert s.headline, f"{name} declares no headline metric (scenario(..., headline=[...]))"
    # each target decides met/missed on numbers, and n/a when its metric is missing
    metrics = {h.metric: 1.0 for h in s.headline}
    metrics.update({h.target.split(" ", 1)[1]: 0.5 for h in s.headline if h.target})
    for h in s.headline:
        got = h.evaluate(metrics)
        assert got["value"] == metrics[h.metric] and (got["met"] is None) == (not h.target)
        assert h.evaluate({})["met"] is None
    row = {
        "scenario": name,
        "seed": 0,
        "system": s.system,
        "status": "ok",
        "metrics": metrics,
        "headline": [h.evaluate(metrics) for h in s.headline],
    }
    assert all(len(line) < 80 for line in scorecard_lines([row]))


ASSETS = registries()["asset"]


@pytest.mark.parametrize("name", ASSETS.names())
def test_asset_contract(name):
    from aisec.assets import asset_status

    spec = ASSETS.get(name)
    assert spec.kind in ("dataset", "model") and spec.licence and spec.source
    assert spec.redistribute in (True, False)
    if spec.embedded:  # the resolver finds it offline (loading it is `aisec assets check`)
        available, detail = asset_status(spec)
        if spec.source == "shared/data" and not available:
            pytest.skip(f"{name}: the shared data folder is absent here ({detail})")
        assert available, f"{name}: {detail}"


# Registries that no test runs entry by entry yet; each shows as an expected failure (never a
# pass) until a test iterates the registry (tests/contract/test_<family>_contract.py is the place).
PENDING = {
}
# Checked by behaviour in this file.
HERE = {"asset": "test_asset_contract", "scenario": "test_scenario_declares_headlines"}


@functools.cache
def _iterated_registries() -> frozenset[str]:
    """Kinds of the registries some test runs entry by entry: it imports the registry
    (``from aisec.M import NAME``) and calls ``NAME.names()`` or ``NAME.entries()``, or it
    iterates ``registries()["kind"]``."""
    import ast
    import importlib
    import re
    from pathlib import Path

    by_id = {id(reg): kind for kind, reg in registries().items()}
    found: set[str] = set()
    for path in sorted(Path(__file__).parents[1].rglob("test_*.py")):
        if path.resolve() == Path(__file__).resolve():
            continue
        text = path.read_text(encoding="utf-8")
        found |= {
            k for k in registries() if re.search(rf'registries\(\)\["{re.escape(k)}"\]', text)
        }
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if not (isinstance(node, ast.ImportFrom) and (node.module or "").startswith("aisec")):
                continue
            try:
                module = importlib.import_module(node.module)
            except Exception:  # a test module for an optional extra; it is not ours to judge
                continue
            for alias in node.names:
                kind = by_id.get(id(getattr(module, alias.name, None)))
                name = re.escape(alias.asname or alias.name)
                if kind is not None and re.search(rf"\b{name}\.(names|entries)\(\)", text):
                    found.add(kind)
    return frozenset(found)


@pytest.mark.parametrize("kind", sorted(registries()))
def test_every_registry_has_a_behavioural_contract(kind):
    from pathlib import Path

    if kind.startswith("test"):
        pytest.skip("a registry made by a test")
    if kind in HERE:
        assert HERE[kind] in Path(__file__).read_text()
        return
    if kind in _iterated_registries():
        return
    if kind in PENDING:
        pytest.xfail(PENDING[kind])
    pytest.fail(
        f"registry {kind!r}: no test runs every entry; add a behavioural contract "
        "(tests/contract/test_<family>_contract.py) that iterates it"
    )
