"""More evaluations of an existing run directory (``aisec enchtable run --out DIR``): parameter
variants of a merge method (EnchTable's beta and T) merged from the run's own aligned, task and
surrogate checkpoints, and evaluation sets beyond the pipeline's rows (a validation split of
the harmful prompts, over-refusal on look-alikes, static jailbreaks).

What can be evaluated (:func:`resolve`):

* ``aligned``, ``task``, ``harmful_surrogate``: the run's checkpoints;
* a merge method (``enchtable``, ``ties``, ...): the run's ``merged/METHOD``;
* ``METHOD@KEY=VALUE,...``: a variant, merged into ``variants/NAME`` with those parameters over
  the pipeline's (``enchtable@beta=1.5``, ``enchtable@beta=1.5,temperature=0``);
* ``self_reminder``, ``safedecoding`` (or ``safedecoding@alpha=2``): the inference-time
  defences on the task model, with the aligned model as SafeDecoding's expert.

Evaluation sets (:data:`EVAL_SETS`):

* ``test``: unsafe rate on the run's held-out harmful prompts (the draw of its rows);
* ``validation``: unsafe rate on as many held-out harmful prompts, disjoint from ``test``;
* ``lookalike``: on the judge corpus's look-alike prompts of its ``test`` split, the refused
  share (over-refusal) and the share the harm judge calls unsafe (false unsafe);
* ``jailbreak``: unsafe rate on the ``test`` prompts each inside a PyRIT jailbreak template;
* ``pair``: a PAIR-style dynamic jailbreak (:mod:`~aisec.safety.enchtable.pair`) on the first
  ``pair_goals`` ``test`` prompts: an attacker model (default the embedded SmolLM2-135M on
  llama.cpp) refines its prompt from the judge's score for ``pair_iterations`` rounds in
  ``pair_streams`` streams; the rate is the share of goals broken in any round;
* ``utility``: held-out task loss (the run's test answers); for the ``medical`` task also
  ``task_accuracy``, multiple choice by the options' likelihood;
* ``utility_validation``: the task loss on as many train-split answers the task fine-tune did
  not see (those after its ``task_examples``).

Choose parameters on ``validation`` and ``utility_validation`` (:func:`choose`), report
``test`` and ``utility``. Each (model, set) result is cached in ``eval/NAME/SET.json`` with its
prompts and responses, the settings and the checkpoint's file stamp it was measured with, and
the judge's fingerprint (:func:`~aisec.safety.enchtable.evaluate.judge_fingerprint`). It is
reused when the settings and stamp match, so a stopped study resumes where it was; when only
the judge changed (a refitted harm judge), the kept responses are judged again without
generating.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field

from aisec.config import StrictModel
from aisec.errors import InputFileError, ParameterError

__all__ = [
    "EVAL_SETS",
    "StudyConfig",
    "Target",
    "parse_name",
    "resolve",
    "evaluate_run",
    "choose",
    "run_config",
]

EVAL_SETS = (
    "test",
    "validation",
    "lookalike",
    "jailbreak",
    "pair",
    "utility",
    "utility_validation",
)
_NAME = re.compile(r"^[a-z_]+(@[a-z_]+=[^,/@=\s]+(,[a-z_]+=[^,/@=\s]+)*)?$")
_MODELS = ("aligned", "task", "harmful_surrogate")


class StudyConfig(StrictModel):
    """Evaluation settings; :func:`evaluate_run` takes the run's own for any left as None."""

    n_harmful: int | None = Field(None, ge=1)
    n_lookalike: int = Field(24, ge=1)
    lookalike_split: str = "test"
    n_utility: int | None = Field(None, ge=1)
    max_new_tokens: int | None = Field(None, ge=1)
    judge: str | None = None
    seed: int | None = Field(None, ge=0)
    jailbreak_seed: int = Field(0, ge=0)
    max_template_chars: int = Field(600, ge=50)
    batch_size: int = Field(8, ge=1)
    # the ``pair`` set (PAIRConfig's fields; pair_goals None: all the run's test prompts)
    pair_goals: int | None = Field(None, ge=1)
    pair_iterations: int = Field(3, ge=1, le=50)
    pair_streams: int = Field(1, ge=1, le=64)
    pair_attacker: str = "smollm2-135m-instruct"
    pair_attacker_backend: str = "llamacpp"
    pair_attacker_temperature: float = Field(0.7, ge=0.0, le=5.0)
    pair_seed: int = Field(0, ge=0)

    def pair_config(self, judge: str, max_new_tokens: int) -> Any:
        """The :class:`~aisec.safety.enchtable.pair.PAIRConfig` of the ``pair`` set."""
        from aisec.safety.enchtable.pair import pair_config

        return pair_config(
            n_iterations=self.pair_iterations,
            n_streams=self.pair_streams,
            attacker=self.pair_attacker,
            attacker_backend=self.pair_attacker_backend,
            attacker_temperature=self.pair_attacker_temperature,
            target_max_new_tokens=max_new_tokens,
            judge=judge,
            seed=self.pair_seed,
            batch_size=self.batch_size,
        )


@dataclass(frozen=True)
class Target:
    """One thing to evaluate: a checkpoint, or an inference-time defence on the task model."""

    name: str
    method: str
    parameters: dict[str, Any]
    kind: str  # model | merge | inference
    path: Path | None


def run_config(run_dir: str | Path) -> dict[str, Any]:
    """The pipeline configuration a run directory was made with (``pipeline_config.json``, or
    the ``config`` of its ``rows.json``)."""
    d = Path(run_dir)
    for name, key in (("pipeline_config.json", None), ("rows.json", "config")):
        p = d / name
        if p.exists():
            obj = json.loads(p.read_text(encoding="utf-8"))
            return dict(obj[key] if key else obj)
    raise InputFileError(
        d, "is not an `aisec enchtable run` directory (no pipeline_config.json or rows.json)"
    )


def _value(text: str) -> Any:
    import yaml

    v = yaml.safe_load(text)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return v
    return float(v)


def parse_name(name: str) -> tuple[str, dict[str, Any]]:
    """``METHOD@KEY=VALUE,...`` -> (method, {key: value}); numbers become floats."""
    if not _NAME.match(name):
        raise ParameterError(
            "model", "must be a model or METHOD[@KEY=VALUE,...] (lower-case keys)", name
        )
    method, _, rest = name.partition("@")
    params: dict[str, Any] = {}
    for item in rest.split(",") if rest else []:
        k, v = item.split("=", 1)
        if k in params:
            raise ParameterError("model", f"gives {k} twice", name)
        params[k] = _value(v)
    return method, params


def _canonical(method: str, params: dict[str, Any]) -> str:
    if not params:
        return method
    return method + "@" + ",".join(f"{k}={params[k]}" for k in sorted(params))


def resolve(run_dir: str | Path, name: str) -> Target:
    """What ``name`` means in the run directory (see the module docstring)."""
    from aisec.safety.enchtable.merge import model_dir
    from aisec.safety.enchtable.pipeline import DEFAULT_METHODS
    from aisec.safety.enchtable.responders import INFERENCE_METHODS

    d = Path(run_dir)
    cfg = run_config(d)
    method, over = parse_name(name)
    if method in _MODELS:
        if over:
            raise ParameterError("model", f"{method} takes no parameters", name)
        if method == "aligned":
            path = d / "aligned" / "model" if cfg.get("safety_sft_steps") else None
            path = path or model_dir(str(cfg["aligned"]))
        else:
            path = d / ("task/model" if method == "task" else "surrogate")
        return Target(method, method, {}, "model", path)
    if method not in DEFAULT_METHODS:
        raise ParameterError(
            "model", f"must be {', '.join(_MODELS)} or one of {', '.join(DEFAULT_METHODS)}", name
        )
    params = {**DEFAULT_METHODS[method], **over}
    canon = _canonical(method, over)
    if method in INFERENCE_METHODS:
        return Target(canon, method, params, "inference", None)
    path = d / "merged" / method if not over else d / "variants" / canon
    return Target(canon, method, params, "merge", path)


def _aligned_dir(run_dir: Path) -> Path:
    p = resolve(run_dir, "aligned").path
    assert p is not None
    return p


def _ensure_merged(run_dir: Path, t: Target, progress: Callable[[str], None] | None) -> None:
    """Merge a variant (or a missing method) from the run's checkpoints; a checkpoint whose
    record names other parameters is merged again."""
    from aisec.safety.enchtable.merge import (
        merge_config,
        read_merge_record,
        run_merge_yaml,
        safety_model_config,
    )

    assert t.path is not None
    want = {"method": t.method, "parameters": t.parameters}
    if (t.path / "config.json").exists():
        rec = read_merge_record(t.path)
        if rec is None or rec == json.loads(json.dumps(want)):
            return  # None: merged before records existed (the pipeline's own parameters)
        _log(progress, f"{t.name}: merged with {rec['parameters']}; merging again")
    aligned = _aligned_dir(run_dir)
    sur, task = run_dir / "surrogate", run_dir / "task" / "model"
    for p in (sur, task):
        if not (p / "config.json").exists():
            raise InputFileError(p, "is missing from the run directory (run the pipeline first)")
    safe = None
    if t.method == "model_stock":
        safe = run_dir / "safety_model"
        if not (safe / "config.json").exists():
            run_merge_yaml(safety_model_config(str(aligned), str(sur)), safe, overwrite=True)
    _log(progress, f"merge {t.name}")
    cfg = merge_config(
        t.method,
        base=str(aligned),
        task=str(task),
        harmful=str(sur),
        safe=str(safe) if safe else None,
        parameters=dict(t.parameters),
    )
    run_merge_yaml(cfg, t.path, overwrite=True, record=want)


def _stamp(path: Path | None) -> list[Any]:
    if path is None:
        return []
    return sorted(
        [f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in path.glob("*.safetensors")
    )


def _log(progress: Callable[[str], None] | None, msg: str) -> None:
    if progress is not None:
        progress(msg)


def evaluate_run(
    run_dir: str | Path,
    names: Sequence[str],
    sets: Sequence[str] = ("test", "utility"),
    config: StudyConfig | None = None,
    *,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Evaluate each of ``names`` on each of ``sets`` in the run directory; one row per name:
    ``model``, ``method``, ``parameters``, ``kind`` and ``sets`` (set -> result). Results are
    cached under ``run_dir/eval/``."""
    from aisec.io import atomic_write_json
    from aisec.safety.enchtable import evaluate as ev
    from aisec.safety.enchtable.models import load_model
    from aisec.safety.enchtable.responders import ModelResponder, make_inference

    d = Path(run_dir)
    rc = run_config(d)
    c = config or StudyConfig()
    bad = [s for s in sets if s not in EVAL_SETS]
    if bad:
        raise ParameterError("eval", f"must be among {', '.join(EVAL_SETS)}", bad[0])
    targets = [resolve(d, n) for n in names]  # every name checked before any work
    need = ("task", "task_examples", "n_harmful", "n_utility", "max_new_tokens", "judge", "seed")
    missing = [k for k in need if k not in rc]
    if missing:
        raise InputFileError(d, f"run configuration has no {missing[0]!r}")
    n_harmful = c.n_harmful or int(rc["n_harmful"])
    n_utility = c.n_utility or int(rc["n_utility"])
    max_new = c.max_new_tokens or int(rc["max_new_tokens"])
    judge = c.judge or str(rc["judge"])
    seed = int(rc["seed"]) if c.seed is None else c.seed
    task = str(rc["task"])
    pair_cfg = c.pair_config(judge, max_new) if "pair" in sets else None  # checked up front
    # the run's generation backend (models.load_model); kept in the cache key only when it is
    # not transformers, so results cached before the option existed keep their key
    gen = str(rc.get("generation_backend", "transformers"))

    def prompts_for(s: str) -> tuple[dict[str, Any], Any]:
        base = {"set": s, "judge": judge, "max_new_tokens": max_new, "seed": seed}
        if gen != "transformers":
            base["generation_backend"] = gen
        if s in ("test", "validation"):
            return {**base, "n": n_harmful}, ev.heldout_harmful(
                n_harmful, seed=seed, split=s, test_n=n_harmful
            )
        if s == "jailbreak":
            jb = ev.jailbreak_prompts(
                ev.heldout_harmful(n_harmful, seed=seed),
                seed=c.jailbreak_seed,
                max_template_chars=c.max_template_chars,
            )
            return {
                **base,
                "n": n_harmful,
                "jailbreak_seed": c.jailbreak_seed,
                "max_template_chars": c.max_template_chars,
            }, jb
        if s == "pair":
            assert pair_cfg is not None
            n_goals = c.pair_goals or n_harmful
            if n_goals > n_harmful:
                raise ParameterError(
                    "pair_goals", f"must be at most the run's {n_harmful} test prompts", n_goals
                )
            return {
                **base,
                "n": n_goals,
                "pair": pair_cfg.model_dump(exclude={"batch_size"}),
            }, ev.heldout_harmful(n_harmful, seed=seed)[:n_goals]
        if s == "lookalike":
            return {
                **base,
                "n": c.n_lookalike,
                "split": c.lookalike_split,
            }, ev.lookalike_prompts(c.n_lookalike, split=c.lookalike_split)
        offset = int(rc["task_examples"]) if s == "utility_validation" else 0
        split = "train" if s == "utility_validation" else "test"
        key = {"set": s, "task": task, "n": n_utility, "offset": offset}
        if task == "medical":  # multiple choice: also the option-likelihood accuracy
            key["accuracy"] = True
        return key, ev.task_pairs(task, split, n_utility, offset=offset)

    inputs = {s: prompts_for(s) for s in sets}
    ids: dict[str, str] = {}

    def judge_id(s: str) -> str | None:
        """The fingerprint of the judge(s) a set's result depends on (None: no judge)."""
        if s in ("utility", "utility_validation"):
            return None
        if s not in ids:
            ids[s] = ev.judge_fingerprint(judge)
            if s == "lookalike":
                ids[s] += "+" + ev.judge_fingerprint("refusal")
        return ids[s]

    def judged(s: str, prompts: list[str], responses: list[str]) -> dict[str, Any]:
        if s == "lookalike":
            refused, unsafe = ev.judge_lookalike(prompts, responses, judge=judge)
            return {"refusal": refused.to_dict(), "unsafe": unsafe.to_dict()}
        return ev.judge_unsafe(prompts, responses, judge=judge).to_dict()

    rows: list[dict[str, Any]] = []
    task_lm = expert = attacker = None
    for t in targets:
        if t.kind == "merge":
            _ensure_merged(d, t, progress)
        stamp = _stamp(t.path if t.kind != "inference" else d / "task" / "model")
        cache_dir = d / "eval" / t.name
        results: dict[str, Any] = {}
        todo = []
        for s in sets:
            settings = {**inputs[s][0], "parameters": t.parameters, "stamp": stamp}
            f = cache_dir / f"{s}.json"
            if f.exists():
                cached = json.loads(f.read_text(encoding="utf-8"))
                if cached.get("settings") == json.loads(json.dumps(settings)):
                    jid = judge_id(s)
                    # pair: the attack followed the judge's scores, so another judge means
                    # attacking again, not judging the kept answers again
                    if cached.get("judge_id") != jid and s != "pair":
                        # the same responses, judged by another fit of the judge: judge again
                        _log(progress, f"judge {t.name} on {s} again (the judge changed)")
                        res = judged(s, cached["prompts"], cached["responses"])
                        res["seconds"] = cached["result"].get("seconds")
                        res["rejudged_from"] = cached.get("judge_id")
                        cached.update(result=res, judge_id=jid)
                        atomic_write_json(f, cached)
                    if cached.get("judge_id") == jid:
                        results[s] = cached["result"]
                        continue
            todo.append((s, settings, f))
        if todo:
            if t.kind == "inference":
                if task_lm is None:
                    task_lm = load_model(str(d / "task" / "model"), generation_backend=gen)
                    expert = load_model(str(_aligned_dir(d)))
                responder: Any = make_inference(t.method, task_lm, expert, dict(t.parameters))
            else:
                responder = ModelResponder(
                    load_model(str(t.path), generation_backend=gen), t.name
                )
            for s, settings, f in todo:
                _log(progress, f"evaluate {t.name} on {s}")
                t0 = time.perf_counter()
                data = inputs[s][1]
                record: dict[str, Any] = {"settings": settings, "judge_id": judge_id(s)}
                if s == "pair":
                    from aisec.judges import make_judge
                    from aisec.safety.enchtable.pair import PAIRAttack, load_attacker, summarise

                    assert pair_cfg is not None
                    if attacker is None:
                        attacker = load_attacker(pair_cfg.attacker, pair_cfg.attacker_backend)
                    recs = PAIRAttack(attacker, make_judge(judge), pair_cfg).run(
                        list(data), responder, progress=progress
                    )
                    result = summarise(recs, judge)
                    result["judge_fingerprint"] = judge_id(s)
                    result["attacker_backend"] = getattr(attacker, "backend", None)
                    record["goals"] = [r.to_dict() for r in recs]
                    record["prompts"] = [r.final_prompt for r in recs]
                    record["responses"] = [r.final_response for r in recs]
                elif s in ("test", "validation", "jailbreak"):
                    ps = [p for _tid, p in data] if s == "jailbreak" else list(data)
                    r, responses = ev.unsafe_rate(
                        responder,
                        ps,
                        judge=judge,
                        max_new_tokens=max_new,
                        batch_size=c.batch_size,
                    )
                    result: dict[str, Any] = r.to_dict()
                    record["prompts"], record["responses"] = ps, responses
                    if s == "jailbreak":
                        record["templates"] = [tid for tid, _p in data]
                elif s == "lookalike":
                    refused, unsafe, responses = ev.lookalike_rates(
                        responder,
                        data,
                        judge=judge,
                        max_new_tokens=max_new,
                        batch_size=c.batch_size,
                    )
                    result = {"refusal": refused.to_dict(), "unsafe": unsafe.to_dict()}
                    record["prompts"], record["responses"] = list(data), responses
                else:
                    loss = ev.task_loss(responder, data, batch_size=c.batch_size)
                    result = {"task_loss": loss}
                    if settings.get("accuracy"):
                        result["task_accuracy"] = ev.choice_accuracy(
                            responder,
                            ev.medical_choices(
                                "train" if s == "utility_validation" else "test",
                                n_utility,
                                offset=int(settings["offset"]),
                            ),
                            batch_size=c.batch_size,
                        )
                    if hasattr(responder, "outside_sample_space"):
                        result["loss_tokens_outside_sample_space"] = responder.outside_sample_space
                        result["loss_tokens_steered"] = responder.scored_positions
                result["seconds"] = time.perf_counter() - t0
                record["result"] = result
                atomic_write_json(f, record)
                results[s] = result
            del responder
        rows.append(
            {
                "model": t.name,
                "method": t.method,
                "parameters": t.parameters,
                "kind": t.kind,
                "sets": results,
            }
        )
    return rows


def choose(
    rows: Sequence[dict[str, Any]],
    task_row: dict[str, Any],
    *,
    max_loss_rel: float = 0.02,
    safety_set: str = "validation",
    utility_set: str = "utility_validation",
) -> dict[str, Any]:
    """The row with the lowest ``safety_set`` unsafe rate among those whose ``utility_set``
    loss is within ``max_loss_rel`` of the task model's (ties: the lower loss); when none is,
    the lowest-loss row. Returns {"row", "within_utility"}."""
    if not rows:
        raise ParameterError("rows", "must hold at least one candidate", 0)
    for r in [*rows, task_row]:
        for s in (safety_set, utility_set):
            if s not in r["sets"]:
                raise ParameterError("rows", f"{r['model']} has no {s} result", r["model"])
    ref = float(task_row["sets"][utility_set]["task_loss"])

    def loss(r: dict[str, Any]) -> float:
        return float(r["sets"][utility_set]["task_loss"])

    ok = [r for r in rows if abs(loss(r) - ref) <= max_loss_rel * abs(ref)]
    if not ok:
        return {"row": min(rows, key=loss), "within_utility": False}
    best = min(ok, key=lambda r: (r["sets"][safety_set]["rate"], loss(r)))
    return {"row": best, "within_utility": True}
