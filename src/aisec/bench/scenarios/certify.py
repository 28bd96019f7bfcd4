"""Certifier availability-attack scenarios: clean accuracy, certified accuracy against radius and
abstention on clean and triggered inputs, for each attack x certifier x data set and poison rate;
the defences; smoothing throughput against a plain batched forward pass; and ``certify.rebuild``,
the spread over seeds of what retraining the 1 % poisoned checkpoint gives (the headline as a mean
and standard deviation, not one lucky seed).

The quick suite certifies the checkpoints shipped in ``aisec/robustness/weights`` (1 % poison,
rebuilt by ``aisec certify train --shipped``) on a few test inputs with n = 100 noise samples; the
full suite retrains every model for every poison rate and certifies 300 test inputs with n = 1,000.
Rates carry Clopper-Pearson 95 % intervals.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from aisec.bench import BenchContext, Headline, Result, Series, scenario

_RADII = {
    "smoothing": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.75, 1.0],
    "ibp": [0.0, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1],
}


def _certifier_params(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    if name == "smoothing":
        return {"n": params["n"], "n0": params["n0"], "alpha": params["alpha"]}
    return {}


def _attack_rows(certifier: str, params: Mapping[str, Any], ctx: BenchContext) -> Result:
    from aisec.robustness.experiment import Experiment
    from aisec.robustness.models import load_checkpoint
    from aisec.robustness.pipeline import run_experiment, torch_threads
    from aisec.robustness.shipped import ATTACK_PARAMS, shipped_path

    breakdown: list[dict[str, Any]] = []
    series: dict[str, list[Series]] = {}
    runs = [
        (d, a, r)
        for d in params["datasets"]
        for a, rates in [(None, [0.0])] + [(a, params["rates"]) for a in params["attacks"]]
        for r in rates
    ]
    headline: dict[str, Any] = {}
    radii = _RADII[certifier]
    base: dict[str, Any] = {}
    with torch_threads(1):
        for i, (dataset, attack, r) in enumerate(runs):
            # the unpoisoned model is the first attack at rate 0: same trigger, no poison
            atk = attack or params["attacks"][0]
            exp = Experiment(
                dataset=dataset,
                certifier=certifier,
                test_limit=params["test_inputs"],
                certifier_params=_certifier_params(certifier, params),
                attack=atk,
                attack_params={**ATTACK_PARAMS.get(atk, {}), "rate": r},
            )
            model, shipped_info = None, {}
            if params["shipped"]:
                ck = load_checkpoint(shipped_path(dataset, certifier, attack))
                model, shipped_info = ck.model, ck.info
            _, ev, record = run_experiment(exp, ctx.seed, model=model)
            if shipped_info:
                record["n_poison"] = shipped_info.get("n_poison")
            ctx.report((i + 1) / len(runs), f"{dataset} {attack or 'unpoisoned'} {r:g}")
            m: dict[str, Any] = dict(ev.metrics())
            if attack is None:
                base[dataset] = ev
            else:
                b = base[dataset]
                m["clean_acc_drop"] = b.clean_acc.value - ev.clean_acc.value
                m["certified_acc_triggered_drop"] = (
                    b.metrics()["certified_acc_triggered"].value
                    - m["certified_acc_triggered"].value
                )
            m["n_poison"] = record["n_poison"]
            breakdown.append(
                {
                    "labels": {
                        "dataset": dataset,
                        "certifier": certifier,
                        "attack": attack or "none",
                        "poison_rate": f"{r:g}",
                    },
                    "metrics": m,
                }
            )
            tag = f"{attack or 'unpoisoned'}@{r:g}"
            fig = series.setdefault(f"certified_acc_vs_radius_{dataset}", [])
            xlabel = f"radius ({ev.clean.norm})"
            fig.append(
                Series(
                    x=radii,
                    y=ev.curve(radii),
                    xlabel=xlabel,
                    ylabel="certified accuracy",
                    label=f"{tag} clean inputs",
                )
            )
            fig.append(
                Series(
                    x=radii,
                    y=ev.curve(radii, triggered=True),
                    xlabel=xlabel,
                    ylabel="certified accuracy",
                    label=f"{tag} triggered inputs",
                )
            )
            if (
                attack is not None
                and r == params["headline_rate"]
                and m["abstain_triggered"].value > headline.get("abstain_triggered", -1.0)
            ):
                headline = {
                    **m,
                    "abstain_triggered": m["abstain_triggered"].value,
                    "_m": m,
                    "_label": (dataset, attack),
                }
    notes = ["The unpoisoned model is evaluated with the same (gray patch) trigger as the attacks."]
    metrics: dict[str, Any] = {}
    if headline:
        metrics = {k: v for k, v in headline["_m"].items()}
        d, a = headline["_label"]
        notes.insert(
            0,
            f"Headline: the attack with the highest triggered abstention at "
            f"{params['headline_rate']:g} poison rate ({a} on {d}); all combinations "
            f"are in the breakdown.",
        )
    notes.append(
        "quick suite: shipped 1% checkpoints, few test inputs; full suite retrains every "
        "model for every poison rate."
        if params["shipped"]
        else "Every model retrained for its poison rate (seeded)."
    )
    return Result(
        metrics=metrics,
        labels={"certifier": certifier},
        breakdown=breakdown,
        series=series,
        notes=notes,
    )


_QUICK = {
    "datasets": ["digits", "mnist-5k"],
    "attacks": ["random-label", "cert-aware"],
    "rates": [0.01],
    "headline_rate": 0.01,
    "shipped": True,
}
_FULL = {
    "datasets": ["digits", "mnist-5k", "fashion-mnist"],
    "rates": [0.001, 0.005, 0.01, 0.02, 0.05],
    "shipped": False,
    "test_inputs": 300,
}


_ATTACK_HEADLINES = [
    Headline(
        "abstain_triggered",
        ">= 0.5",
        "trig. abstain",
        why="project goal (research/safety.md 6): 1% poison gives triggered-input "
        "abstention >= 50%",
    ),
    Headline(
        "abstain_clean",
        "<= 0.05",
        "clean abstain",
        why="project goal: clean abstention stays <= 5%",
    ),
    Headline(
        "clean_acc_drop",
        "<= 0.01",
        "clean acc drop",
        why="project goal: clean accuracy drops <= 1 point against the unpoisoned model",
    ),
]


@scenario(
    "certify.smoothing",
    system="certify",
    params={**_QUICK, "test_inputs": 100, "n": 100, "n0": 50, "alpha": 0.001},
    full_params={**_FULL, "n": 1000, "n0": 100},
    description="Availability attacks on randomized smoothing: accuracy, abstention, certified "
    "accuracy vs radius, per attack x data set x poison rate",
    headline=_ATTACK_HEADLINES,
)
def smoothing_attacks(params: Mapping[str, Any], ctx: BenchContext) -> Result:
    return _attack_rows("smoothing", params, ctx)


@scenario(
    "certify.ibp",
    system="certify",
    params={**_QUICK, "test_inputs": 300},
    full_params=_FULL,
    description="Availability attacks on interval bound propagation: accuracy, abstention, "
    "certified accuracy vs radius, per attack x data set x poison rate",
    headline=_ATTACK_HEADLINES,
)
def ibp_attacks(params: Mapping[str, Any], ctx: BenchContext) -> Result:
    return _attack_rows("ibp", params, ctx)


def _spread(values: list[float]) -> dict[str, float]:
    import numpy as np

    v = np.asarray(values, dtype=float)
    return {
        "mean": float(v.mean()),
        "sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
        "min": float(v.min()),
        "max": float(v.max()),
    }


@scenario(
    "certify.rebuild",
    system="certify",
    params={
        "dataset": "digits",
        "certifier": "smoothing",
        "attack": "cert-aware",
        "rate": 0.01,
        "seeds": 2,
        "epochs": 40,
        "baseline": True,
        "test_inputs": 50,
        "n": 100,
        "n0": 50,
        "alpha": 0.001,
    },
    full_params={
        "dataset": "mnist-5k",
        "seeds": 10,
        "epochs": None,
        "test_inputs": 300,
        "n": 1000,
        "n0": 100,
    },
    description="Rebuild spread: retrain the unpoisoned and the 1% poisoned model for several "
    "seeds (deterministic training) and report the abstention and accuracy as mean, "
    "standard deviation, min and max over seeds",
    headline=[
        Headline(
            "abstain_triggered_mean",
            ">= 0.5",
            "trig. abstain (mean over seeds)",
            why="project goal (research/safety.md 6), as a rebuild gives it on average",
        ),
        Headline("abstain_triggered_min", label="trig. abstain (worst seed)"),
        Headline(
            "abstain_clean_mean",
            "<= 0.05",
            "clean abstain (mean)",
            why="project goal: clean abstention stays <= 5%",
        ),
        Headline(
            "clean_acc_drop_mean",
            "<= 0.01",
            "clean acc drop (mean)",
            why="project goal: clean accuracy drops <= 1 point against the unpoisoned model",
        ),
    ],
)
def rebuild(params: Mapping[str, Any], ctx: BenchContext) -> Result:
    from aisec.robustness.experiment import Experiment
    from aisec.robustness.pipeline import run_experiment
    from aisec.robustness.shipped import ATTACK_PARAMS

    seeds = [ctx.seed + i for i in range(int(params["seeds"]))]
    breakdown: list[dict[str, Any]] = []
    per: dict[str, list[float]] = {}
    models = [("poisoned", params["rate"])]
    if params["baseline"]:
        models.insert(0, ("unpoisoned", 0.0))
    train = {"epochs": params["epochs"]} if params["epochs"] else {}
    done = 0
    for seed in seeds:
        evs = {}
        for tag, r in models:
            exp = Experiment(
                dataset=params["dataset"],
                certifier=params["certifier"],
                test_limit=params["test_inputs"],
                certifier_params=_certifier_params(params["certifier"], params),
                attack=params["attack"],
                attack_params={**ATTACK_PARAMS.get(params["attack"], {}), "rate": r},
                train=train,
            )
            _, evs[tag], _ = run_experiment(exp, seed)  # training fixes its own threads
            done += 1
            ctx.report(done / (len(models) * len(seeds)), f"seed {seed} {tag}")
        m: dict[str, Any] = dict(evs["poisoned"].metrics())
        if "unpoisoned" in evs:
            m["clean_acc_drop"] = evs["unpoisoned"].clean_acc.value - m["clean_acc"].value
            m["abstain_triggered_unpoisoned"] = evs["unpoisoned"].metrics()["abstain_triggered"]
        breakdown.append(
            {
                "labels": {
                    "seed": str(seed),
                    "dataset": params["dataset"],
                    "attack": params["attack"],
                },
                "metrics": m,
            }
        )
        for k, v in m.items():
            per.setdefault(k, []).append(float(getattr(v, "value", v)))
    metrics: dict[str, Any] = {"n_seeds": len(seeds)}
    for k in (
        "abstain_triggered",
        "abstain_clean",
        "clean_acc",
        "clean_acc_drop",
        "certified_acc",
        "certified_acc_triggered",
        "abstain_triggered_unpoisoned",
    ):
        if k not in per:  # no baseline models trained
            continue
        for stat, v in _spread(per[k]).items():
            metrics[f"{k}_{stat}"] = v
    return Result(
        metrics=metrics,
        labels={
            "dataset": params["dataset"],
            "certifier": params["certifier"],
            "attack": params["attack"],
            "rate": f"{params['rate']:g}",
            "seeds": f"{seeds[0]}-{seeds[-1]}",
        },
        breakdown=breakdown,
        notes=[
            f"Seeds {seeds[0]}..{seeds[-1]}: each retrains the unpoisoned and the poisoned "
            f"model from scratch ("
            + (
                f"{params['epochs']} epochs, a reduced recipe"
                if params["epochs"]
                else "the per-data-set recipe of the shipped checkpoints"
            )
            + ", one training thread, deterministic "
            "algorithms); sd is the sample standard deviation over seeds."
        ],
    )


@scenario(
    "certify.throughput",
    system="certify",
    params={"dataset": "mnist-5k", "inputs": 10, "n": 1000, "batch_size": 1000},
    full_params={"inputs": 50},
    description="Randomized-smoothing CERTIFY throughput (inputs/s at n noise samples) against a "
    "plain batched forward pass over the same number of noisy inputs",
    headline=[
        Headline("ratio_vs_forward", label="time vs forward", unit="x"),
        Headline("inputs_per_s", label="inputs/s"),
    ],
)
def throughput(params: Mapping[str, Any], ctx: BenchContext) -> Result:
    import numpy as np
    import torch

    from aisec.robustness.certifiers import make_certifier
    from aisec.robustness.data import load_split
    from aisec.robustness.models import load_checkpoint
    from aisec.robustness.pipeline import torch_threads
    from aisec.robustness.shipped import shipped_path

    model = load_checkpoint(shipped_path(params["dataset"], "smoothing", None)).model
    x = load_split(params["dataset"], "test", params["inputs"]).x
    n, bs = params["n"], params["batch_size"]
    cert = make_certifier("smoothing", n=n, n0=100, batch_size=bs)
    total = len(x) * (n + 100)  # noisy inputs CERTIFY classifies (n0 = 100 selection draws)
    with torch_threads(1):
        gen = torch.Generator().manual_seed(ctx.seed)
        noisy = torch.from_numpy(x[:1]).repeat(bs, 1, 1, 1) + 0.25 * torch.randn(
            (bs, *x.shape[1:]), generator=gen
        )
        with torch.inference_mode():
            model(noisy)  # warm-up
            t0 = time.perf_counter()
            done = 0
            while done < total:
                model(noisy[: min(bs, total - done)]).argmax(1)
                done += bs
            forward_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        c = cert.certify(model, x, np.random.default_rng(ctx.seed))
        certify_s = time.perf_counter() - t0
    return Result(
        metrics={
            "inputs_per_s": len(x) / certify_s,
            "certify_s": certify_s,
            "forward_only_s": forward_s,
            "ratio_vs_forward": certify_s / forward_s,
            "noisy_inputs": total,
            "abstain_rate": c.abstain_rate(),
        },
        labels={"dataset": params["dataset"], "n": str(n)},
        notes=[
            "ratio_vs_forward = CERTIFY time / time of a plain batched forward pass (argmax "
            "only) over the same number of pre-drawn noisy inputs, one thread, same process."
        ],
    )


@scenario(
    "certify.defend",
    system="certify",
    params={
        "datasets": ["digits"],
        "attack": "cert-aware",
        "rate": 0.01,
        "defences": ["spectral-signatures", "activation-clustering", "more-noise"],
        "certifiers": ["smoothing", "ibp"],
        "test_inputs": 100,
        "n": 100,
        "n0": 50,
        "alpha": 0.001,
    },
    full_params={"datasets": ["digits", "mnist-5k"], "test_inputs": 300, "n": 1000, "n0": 100},
    suites=("full",),
    description="Defences (spectral-signature and activation-clustering filtering, more training "
    "noise) against the availability attacks, evaluated like the attacks",
    headline=[Headline("abstain_triggered", label="max trig. abst.")],
)
def defend(params: Mapping[str, Any], ctx: BenchContext) -> Result:
    from aisec.robustness.experiment import Experiment
    from aisec.robustness.pipeline import run_defence, torch_threads
    from aisec.robustness.shipped import ATTACK_PARAMS

    breakdown = []
    combos = [
        (d, c, f)
        for d in params["datasets"]
        for c in params["certifiers"]
        for f in params["defences"]
    ]
    with torch_threads(1):
        for i, (dataset, cert, defence) in enumerate(combos):
            exp = Experiment(
                dataset=dataset,
                certifier=cert,
                test_limit=params["test_inputs"],
                certifier_params=_certifier_params(cert, params),
                attack=params["attack"],
                attack_params={**ATTACK_PARAMS.get(params["attack"], {}), "rate": params["rate"]},
            )
            out = run_defence(exp, defence, ctx.seed)
            before, after = out["evaluations"]
            for tag, ev in (("undefended", before), ("defended", after)):
                breakdown.append(
                    {
                        "labels": {
                            "dataset": dataset,
                            "certifier": cert,
                            "defence": defence,
                            "model": tag,
                        },
                        "metrics": {
                            **ev.metrics(),
                            **{k: v for k, v in out["info"].items() if isinstance(v, int | float)},
                        },
                    }
                )
            ctx.report((i + 1) / len(combos), f"{dataset} {cert} {defence}")
    worst = max(
        (b for b in breakdown if b["labels"]["model"] == "defended"),
        key=lambda b: b["metrics"]["abstain_triggered"].value,
    )
    return Result(
        metrics={k: v for k, v in worst["metrics"].items()},
        labels={"attack": params["attack"]},
        breakdown=breakdown,
        notes=["Headline: the defended model with the highest triggered abstention."],
    )
