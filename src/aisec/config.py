"""Strict, frozen configuration models; YAML recipes with ``--set a.b=c`` overrides.

A *recipe* says what to run (YAML, validated by a method's pydantic model). *Run options* say how
(seed, device, output directory, workers) and live apart from the recipe. Precedence:
model defaults < YAML < ``--set`` overrides < explicit flags. The resolved config is written
beside the results.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aisec.errors import ConfigError, InputFileError, ParameterError
from aisec.io import atomic_write_text, read_user_text

__all__ = [
    "StrictModel",
    "RunOptions",
    "parse_overrides",
    "apply_overrides",
    "load_yaml",
    "load_recipe",
    "validate",
    "save_resolved",
]

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for every parameter model: unknown keys are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class RunOptions(StrictModel):
    """How to run, apart from what to run."""

    seed: int = Field(0, ge=0)
    device: str = "cpu"
    out_dir: str | None = None
    workers: int = Field(1, ge=1)


def _scalar(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """Parse ``["a.b=1", "c=x"]`` into a nested dict; values are read as YAML scalars."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ParameterError("--set", "must look like key.path=value", item)
        key, _, raw = item.partition("=")
        parts = [p for p in key.strip().split(".")]
        if not all(parts):
            raise ParameterError("--set", "must look like key.path=value", item)
        node = out
        for p in parts[:-1]:
            nxt = node.setdefault(p, {})
            if not isinstance(nxt, dict):
                raise ParameterError("--set", f"sets both {p!r} and a key below it", item)
            node = nxt
        node[parts[-1]] = _scalar(raw.strip())
    return out


def apply_overrides(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``overrides`` into a copy of ``base``."""
    out = dict(base)
    for k, v in overrides.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = apply_overrides(out[k], v)
        else:
            out[k] = v
    return out


def load_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    p = Path(path)
    text = read_user_text(p)  # missing, a directory, not UTF-8: one-line InputFileError
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise InputFileError(p, f"not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputFileError(p, f"a recipe must be a YAML mapping; got {type(data).__name__}")
    return data


def _explain(exc: ValidationError, where: str) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(x) for x in err["loc"]) or "(root)"
    kind = err["type"]
    if kind == "extra_forbidden":
        rule = "is not a known key"
    elif kind == "missing":
        rule = "is required"
    else:
        rule = err["msg"].lower()
    value = err.get("input")
    more = f" (+{len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    shown = "" if kind == "missing" else f"; got {value!r}"[:100]
    return f"{where}: `{loc}` {rule}{shown}{more}"


def validate(model: type[M], data: Mapping[str, Any], where: str = "config") -> M:
    """Validate ``data`` against ``model``; errors become one-line :class:`ConfigError`."""
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(_explain(exc, where)) from None


def load_recipe(
    model: type[M], path: str | os.PathLike[str] | None = None, overrides: Iterable[str] = ()
) -> M:
    """Defaults < YAML file < ``--set`` overrides, validated strictly."""
    data = load_yaml(path) if path is not None else {}
    data = apply_overrides(data, parse_overrides(overrides))
    return validate(model, data, where=str(path) if path else model.__name__)


def save_resolved(
    out_dir: str | os.PathLike[str],
    recipe: BaseModel | Mapping[str, Any],
    options: BaseModel | None = None,
    name: str = "resolved.yaml",
) -> Path:
    """Write the resolved recipe (and run options) beside the results."""
    doc: dict[str, Any] = {
        "recipe": recipe.model_dump(mode="json") if isinstance(recipe, BaseModel) else dict(recipe)
    }
    if options is not None:
        doc["options"] = options.model_dump(mode="json")
    return atomic_write_text(Path(out_dir) / name, yaml.safe_dump(doc, sort_keys=True))
