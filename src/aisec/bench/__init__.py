"""Benchmark harness: declarative scenarios, suites, a resumable runner writing JSONL rows.

Systems register scenarios in ``aisec/bench/scenarios/<system>.py`` (discovered automatically)::

    from aisec.bench import Headline, Result, scenario

    @scenario("caesar.auc", system="caesar", params={"n": 2000}, full_params={"n": 48842},
              headline=[Headline("auc_gap", target="<= 0.005", label="AUC gap")])
    def auc_vs_plaintext(params, ctx):
        ...
        return Result(metrics={"auc": 0.9, "auc_plaintext": 0.9, "auc_gap": 0.0})
"""

from aisec.bench.scenario import (
    SCENARIOS,
    SUITES,
    BenchContext,
    Headline,
    Result,
    Scenario,
    Series,
    scenario,
)

__all__ = [
    "SCENARIOS",
    "SUITES",
    "BenchContext",
    "Headline",
    "Result",
    "Scenario",
    "Series",
    "scenario",
]
