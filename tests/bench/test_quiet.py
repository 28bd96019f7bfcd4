from __future__ import annotations

import os
import subprocess
import sys

from aisec.bench import Result, runner
from aisec.bench.scenario import Scenario

_NOISY = r"""
import logging, os, sys, warnings
from aisec.bench.quiet import third_party_to_log
with third_party_to_log(sys.argv[1]) as console:
    os.write(1, b"native stdout line\n")
    os.write(2, b"[HEU] thread pool started\n")
    print("a library print")
    warnings.warn("this will change", FutureWarning)
    logging.getLogger("transformers.modeling_utils").warning("Writing model shards")
    from tqdm import tqdm
    for _ in tqdm(range(3), desc="Loading weights", disable=False):
        pass
    console.write("our progress\n")
    assert os.environ["TRANSFORMERS_VERBOSITY"] == "error"
    from huggingface_hub.utils import are_progress_bars_disabled
    assert are_progress_bars_disabled()
print("after", "TRANSFORMERS_VERBOSITY" in os.environ, are_progress_bars_disabled())
"""


def test_third_party_output_goes_to_the_log_and_ours_to_the_console(tmp_path):
    log = tmp_path / "third_party.log"
    env = {k: v for k, v in os.environ.items() if k != "TRANSFORMERS_VERBOSITY"}
    out = subprocess.run(
        [sys.executable, "-c", _NOISY, str(log)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    # stdout untouched after the block; environment and the hub's progress bars restored
    assert out.stdout == "after False False\n"
    assert out.stderr == "our progress\n"
    text = log.read_text()
    for noise in (
        "native stdout line",
        "[HEU] thread pool started",
        "a library print",
        "FutureWarning: this will change",
        "Writing model shards",
        "Loading weights",
    ):
        assert noise in text, noise


def _noisy(params, ctx):
    print("Loading weights 100%")
    os.write(2, b"native noise\n")
    return Result(metrics={"ok": 1})


def test_runner_keeps_scenario_noise_off_the_console(tmp_path, capfd):
    s = Scenario("t.noisy", _noisy, "testsys", {}, {}, ("quick",), (0,), (0,), "")
    _, rows = runner.run([s], suite="quick", out_dir=tmp_path, show_progress=False)
    assert rows[0]["status"] == "ok"
    out, err = capfd.readouterr()
    assert "Loading weights" not in out + err and "native noise" not in out + err
    log = (tmp_path / runner.LOG_FILE).read_text()
    assert "Loading weights 100%" in log and "native noise" in log
    # after the run, descriptors 1 and 2 are the console again
    print("visible")
    assert "visible" in capfd.readouterr().out
