"""Run a mergekit YAML (any mergekit method, or ours) into a checkpoint directory.

``run_merge_yaml(config, out)`` registers our methods, checks the inputs (same tensor names
and shapes, same tokenizer, every shard present), computes EnchTable's global scale from
``beta`` when the YAML gives ``beta`` instead of ``alpha`` (the norms are streamed tensor by
tensor from the safetensors files), runs mergekit into a temporary directory beside ``out``
and renames it into place: a failed merge leaves no half-written model.
"""

from __future__ import annotations

import hashlib
import json
import math
import resource
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aisec.errors import ConfigError, DependencyError, InputFileError, ParameterError

__all__ = [
    "MergeRun",
    "run_merge_yaml",
    "merge_config",
    "global_norms",
    "check_inputs",
    "model_dir",
    "safety_model_config",
    "MERGE_RECORD",
    "read_merge_record",
]


@dataclass(frozen=True)
class MergeRun:
    """What a merge produced."""

    out_dir: Path
    method: str
    parameters: dict[str, Any]
    merge_seconds: float
    peak_rss_gb: float


def model_dir(name_or_path: str) -> Path:
    """The checkpoint directory of an embedded name or a local path."""
    from aisec.assets import resolve_model
    from aisec.assets.models import embedded_models

    local = Path(name_or_path).expanduser()
    if name_or_path not in embedded_models() and not local.exists():
        raise InputFileError(
            local,
            "does not exist (a merge input must be an embedded model "
            "or a local checkpoint directory)",
        )
    ref = resolve_model(name_or_path)
    p = Path(ref.location)
    if not (p / "config.json").exists():
        raise InputFileError(p, "is not an HF checkpoint directory (no config.json)")
    return p


class _Tensors:
    """Lazy access to the tensors of a checkpoint directory (single or sharded safetensors)."""

    def __init__(self, path: Path) -> None:
        from safetensors import safe_open

        self.path = path
        index = path / "model.safetensors.index.json"
        files: dict[str, Path] = {}
        if index.exists():
            try:
                wmap = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            except (OSError, ValueError, KeyError) as exc:
                raise InputFileError(index, f"unreadable weight map ({exc})") from None
            for name, fname in wmap.items():
                f = path / fname
                if not f.exists():
                    raise InputFileError(f, f"missing shard (named for {name} in the index)")
                files[name] = f
        else:
            shards = sorted(path.glob("*.safetensors"))
            if not shards:
                raise InputFileError(path, "holds no .safetensors file")
            for f in shards:
                with safe_open(str(f), framework="pt") as h:
                    for name in h.keys():
                        files[name] = f
        self.files = files
        self._open: dict[Path, Any] = {}
        self._safe_open = safe_open

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._handle(name).get_slice(name).get_shape())

    def _handle(self, name: str) -> Any:
        f = self.files[name]
        if f not in self._open:
            self._open[f] = self._safe_open(str(f), framework="pt")
        return self._open[f]

    def get(self, name: str) -> Any:
        return self._handle(name).get_tensor(name)


def _tokenizer_digest(path: Path) -> str | None:
    for fname in ("tokenizer.json", "tokenizer.model", "vocab.json"):
        f = path / fname
        if f.exists():
            return hashlib.sha256(f.read_bytes()).hexdigest()
    return None


def check_inputs(paths: dict[str, Path]) -> dict[str, _Tensors]:
    """Open every input and check that tensor names, shapes and tokenizers agree.

    Raises:
        InputFileError: a missing shard or an unreadable index.
        ParameterError: different tensor names or shapes, or different tokenizers.
    """
    opened = {k: _Tensors(p) for k, p in paths.items()}
    ref_key = next(iter(opened))
    ref = opened[ref_key]
    tok_ref = _tokenizer_digest(paths[ref_key])
    for key, t in opened.items():
        if key == ref_key:
            continue
        if set(t.files) != set(ref.files):
            diff = sorted(set(t.files) ^ set(ref.files))
            raise ParameterError(
                f"model {key}",
                f"must have the same tensors as {ref_key} (differs in {diff[0]!r}"
                f" and {len(diff) - 1} more)",
                str(paths[key]),
            )
        for name in ref.files:
            if t.shape(name) != ref.shape(name):
                raise ParameterError(
                    f"model {key}",
                    f"must have the shapes of {ref_key}: {name} is "
                    f"{list(t.shape(name))}, not {list(ref.shape(name))}",
                    str(paths[key]),
                )
        tok = _tokenizer_digest(paths[key])
        if tok_ref is not None and tok is not None and tok != tok_ref:
            raise ParameterError(
                f"model {key}",
                f"must use the tokenizer of {ref_key} (tokenizer files differ)",
                str(paths[key]),
            )
    return opened


def global_norms(
    base: Path, task: Path, harmful: Path, safe: Path | None = None
) -> tuple[float, float]:
    """(||task - base||, ||safe - harmful||) over all tensors, streamed one tensor at a time."""
    paths = {"base": base, "task": task, "harmful": harmful}
    if safe is not None:
        paths["safe"] = safe
    t = check_inputs(paths)
    tau2 = delta2 = 0.0
    for name in t["base"].files:
        b = t["base"].get(name).float()
        tau2 += float((t["task"].get(name).float() - b).pow(2).sum())
        s = t["safe"].get(name).float() if safe is not None else b
        delta2 += float((s - t["harmful"].get(name).float()).pow(2).sum())
    return math.sqrt(tau2), math.sqrt(delta2)


def merge_config(
    method: str,
    *,
    base: str,
    task: str,
    harmful: str | None = None,
    safe: str | None = None,
    parameters: dict[str, Any] | None = None,
    dtype: str = "float32",
) -> dict[str, Any]:
    """A mergekit YAML (as a dict) for one of our safety merges or a mergekit baseline.

    Ours (``enchtable``, ``tsv_merge``, ``resta``, ``safelora``) take the roles; mergekit's
    ``task_arithmetic``, ``ties`` (and the other task-vector methods) merge the task model and
    the safety model ``base + (base - harmful)`` is not needed: they are given the task model
    and the harmful surrogate with weight -1 (safety-vector negation, Ilharco et al.)."""
    from aisec.safety.enchtable.mergekit_methods import METHOD_NAMES

    params = dict(parameters or {})
    if method in METHOD_NAMES:
        if harmful is None:
            raise ParameterError("harmful", f"is required by {method}", None)
        models = [
            {"model": task, "parameters": {"role": "task"}},
            {"model": harmful, "parameters": {"role": "harmful"}},
        ]
        if safe is not None and safe != base:
            models.append({"model": safe, "parameters": {"role": "safe"}})
        return {
            "merge_method": method,
            "base_model": base,
            "models": models,
            "parameters": params,
            "dtype": dtype,
        }
    if method == "model_stock":
        # Model Stock averages fine-tuned models around the base: the task model and the
        # safety model base + delta (see safety_model_config), given here as ``safe``
        if safe is None or safe == base:
            raise ParameterError(
                "safe", "model_stock needs the safety model (base + safety vector)", safe
            )
        return {
            "merge_method": method,
            "base_model": base,
            "models": [{"model": task}, {"model": safe}],
            "parameters": params,
            "dtype": dtype,
        }
    weight = float(params.pop("safety_weight", 1.0))
    per_model = {k: params.pop(k) for k in ("density", "gamma") if k in params}
    models = [{"model": task, "parameters": {"weight": 1.0}}]
    if harmful is not None and weight != 0:
        # task vector of the harmful surrogate is -delta: a negative weight adds the safety vector
        models.append({"model": harmful, "parameters": {"weight": -weight}})
    for m in models:
        m["parameters"].update({k: float(v) for k, v in per_model.items()})
    params.setdefault("normalize", False)
    return {
        "merge_method": method,
        "base_model": base,
        "models": models,
        "parameters": params,
        "dtype": dtype,
    }


def safety_model_config(base: str, harmful: str, dtype: str = "float32") -> dict[str, Any]:
    """mergekit task arithmetic writing the safety model ``base + (base - harmful)``: the
    aligned model moved one safety vector further from its harmful surrogate (an input of
    Model Stock, which merges whole models rather than vectors)."""
    return {
        "merge_method": "task_arithmetic",
        "base_model": base,
        "models": [{"model": harmful, "parameters": {"weight": -1.0}}],
        "parameters": {"normalize": False},
        "dtype": dtype,
    }


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024**2)


#: the file beside a merged model that records how it was merged (``record`` of run_merge_yaml)
MERGE_RECORD = "aisec_merge.json"


def read_merge_record(out_dir: str | Path) -> dict[str, Any] | None:
    """The record :func:`run_merge_yaml` wrote into a merged model, or None (none written)."""
    p = Path(out_dir) / MERGE_RECORD
    if not p.exists():
        return None
    return dict(json.loads(p.read_text(encoding="utf-8")))


def run_merge_yaml(
    config: dict[str, Any] | str | Path,
    out_dir: str | Path,
    *,
    overwrite: bool = False,
    record: dict[str, Any] | None = None,
) -> MergeRun:
    """Run a mergekit configuration (a dict or a YAML file) into ``out_dir``.

    ``record`` (JSON-able) is written as ``MERGE_RECORD`` into the model before it is renamed
    into place, so a resumed run can tell with which parameters a checkpoint was merged.

    Raises:
        ConfigError: the YAML is not a mergekit configuration.
        InputFileError / ParameterError: incompatible or incomplete inputs (one line each).
    """
    import yaml

    try:
        from mergekit.config import MergeConfiguration
        from mergekit.merge import run_merge
        from mergekit.options import MergeOptions
    except ImportError:
        raise DependencyError("mergekit", "merge") from None
    from aisec.safety.enchtable.mergekit_methods import register

    register()
    if not isinstance(config, dict):
        p = Path(config)
        try:
            config = yaml.safe_load(p.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise InputFileError(
                p, f"not a readable YAML file ({' '.join(str(exc).split())[:160]})"
            ) from None
        if not isinstance(config, dict):
            raise InputFileError(p, "must hold a mapping (a mergekit configuration)")
    cfg = json.loads(json.dumps(config))  # a private copy
    method = cfg.get("merge_method")
    # resolve embedded names to directories, and check the inputs before writing anything
    roles: dict[str, Path] = {}
    if cfg.get("base_model"):
        cfg["base_model"] = str(model_dir(str(cfg["base_model"])))
        roles["base"] = Path(cfg["base_model"])
    for i, m in enumerate(cfg.get("models") or []):
        m["model"] = str(model_dir(str(m["model"])))
        role = (m.get("parameters") or {}).get("role", f"model{i}")
        roles[str(role)] = Path(m["model"])
    check_inputs(roles)
    params = cfg.setdefault("parameters", {}) or {}
    cfg["parameters"] = params
    if method == "enchtable" and "beta" in params:
        if "alpha" in params:
            raise ParameterError("parameters", "give beta or alpha, not both", "beta+alpha")
        from aisec.safety.enchtable.rules import global_scale

        tau_n, delta_n = global_norms(
            roles["base"], roles["task"], roles["harmful"], roles.get("safe")
        )
        params["alpha"] = global_scale(float(params.pop("beta")), tau_n, delta_n)
    try:
        merge_cfg = MergeConfiguration.model_validate(cfg)
    except Exception as exc:  # pydantic ValidationError or mergekit's RuntimeError
        raise ConfigError(
            f"not a valid mergekit configuration: {' '.join(str(exc).split())[:200]}"
        ) from None
    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise ParameterError("out", "already exists (pass overwrite=True / --force)", str(out))
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    t0 = time.perf_counter()
    try:
        run_merge(merge_cfg, str(tmp), MergeOptions(copy_tokenizer=True, lazy_unpickle=True))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    seconds = time.perf_counter() - t0
    if record is not None:
        from aisec.io import atomic_write_json

        atomic_write_json(tmp / MERGE_RECORD, record)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return MergeRun(out, str(method), dict(params), seconds, _peak_rss_gb())
