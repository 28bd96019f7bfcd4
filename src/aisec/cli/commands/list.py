"""``aisec list REGISTRY``: the entries of any registry (methods, attacks, scenarios, assets)."""

from __future__ import annotations

import click

from aisec.cli.common import emit, format_option

# Modules whose import fills the registries; systems add theirs as they land.
_REGISTRY_MODULES = (
    "aisec.assets",
    "aisec.bench.runner",
    "aisec.perturb",
    "aisec.crypto",
    "aisec.crypto.he",
    "aisec.transport",
    "aisec.diffusion",
    "aisec.llm",
    "aisec.judges",
    "aisec.privacy",
    "aisec.privacy.caesar",
    "aisec.privacy.ssmm",
    "aisec.privacy.sesorec",
    "aisec.privacy.attacks",
    "aisec.privacy.vfl",
    "aisec.provenance",
    "aisec.provenance.fingerprint",
    "aisec.provenance.video",
    "aisec.safety",
    "aisec.safety.safechain",
    "aisec.robustness",
)


def load_all_registries() -> dict[str, str]:
    """Import every registry-owning module; returns {module: error} for those that failed."""
    import importlib
    import importlib.util

    from aisec.bench.runner import discover

    failed = {}
    for mod in _REGISTRY_MODULES:
        if importlib.util.find_spec(mod) is None:
            continue
        try:
            importlib.import_module(mod)
        except Exception as exc:
            failed[mod] = f"{type(exc).__name__}: {exc}"
    failed.update(discover())
    return failed


@click.command("list")
@click.argument("registry", required=False)
@format_option
def command(registry: str | None, fmt: str) -> None:
    """List the entries of REGISTRY (without it: the registries and their sizes)."""
    from aisec.errors import UnknownNameError
    from aisec.registry import registries

    load_all_registries()
    regs = registries()
    if registry is None:
        data = [{"registry": k, "entries": len(v)} for k, v in sorted(regs.items())]
        emit(data, fmt, lambda d: [click.echo(f"{r['registry']:<28} {r['entries']}") for r in d])
        return
    if registry not in regs:
        raise UnknownNameError("registry", registry, sorted(regs))
    data = [
        {"name": e.name, "summary": e.summary, "defaults": dict(e.defaults)}
        for e in regs[registry].entries()
    ]
    emit(data, fmt, lambda d: [click.echo(f"{r['name']:<32} {r['summary']}") for r in d])
