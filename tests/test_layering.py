"""Dependencies point down: no system imports another; shared layers import no system."""

from __future__ import annotations

import ast
from pathlib import Path

import aisec

ROOT = Path(aisec.__file__).parent
SYSTEMS = {"privacy", "provenance", "safety", "robustness"}
TOP = {"cli", "bench", "report"}
SHARED = {"crypto", "transport", "perturb", "llm", "judges", "metrics", "assets", "diffusion"}
KERNEL = {"errors", "registry", "config", "rng", "io"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return {m.split(".")[1] for m in found if m.startswith("aisec.") and m.count(".") >= 1}


def _layer(path: Path) -> str:
    rel = path.relative_to(ROOT).parts
    return rel[0].removesuffix(".py")


def test_layering():
    problems = []
    for path in ROOT.rglob("*.py"):
        layer = _layer(path)
        deps = _imports(path)
        if layer in SYSTEMS:
            bad = deps & ((SYSTEMS - {layer}) | TOP)
        elif layer in SHARED:
            bad = deps & (SYSTEMS | TOP)
        elif layer in KERNEL:
            bad = deps & (SYSTEMS | TOP | SHARED - {"metrics"})
        else:
            bad = set()
        if bad:
            problems.append(f"{path.relative_to(ROOT)} ({layer}) imports {sorted(bad)}")
    assert not problems, "\n".join(problems)


def test_every_package_is_known():
    layers = {p.name.removesuffix(".py") for p in ROOT.iterdir()
              if not p.name.startswith("_") and (p.is_dir() or p.suffix == ".py")}
    layers.discard("py.typed")
    unknown = layers - SYSTEMS - TOP - SHARED - KERNEL
    assert not unknown, f"classify these layers in test_layering.py: {sorted(unknown)}"
