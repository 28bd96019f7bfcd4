"""The no-box removal/forgery grid: one cell of every perturbation, resumable (video.benchmark)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from aisec.bench.scenarios.videomark import run_grid
from aisec.perturb.video import VIDEO_PERTURBATIONS
from aisec.provenance.video import RULES, get_video_method
from aisec.provenance.video.benchmark import flatten


@pytest.fixture(scope="module")
def setup():
    pytest.importorskip("av")
    pytest.importorskip("onnxruntime")
    if importlib.util.find_spec("imwatermark") is None:
        pytest.skip("needs the invisible-watermark package (extra video)")
    from aisec.provenance.video.clips import real_clips

    clips = real_clips(1, 2, 128, skip=24)[1:2]  # bikes: one 2-frame clip
    m = get_video_method("rivagan")
    return m, m.keygen(np.random.default_rng(5)), clips


def test_one_cell_of_each_perturbation_gives_counts_for_every_rule(setup, tmp_path):
    m, key, clips = setup
    grid = {
        "jpeg": [50.0],
        "gaussian_noise": [0.05],
        "blur": [1.0],
        "crop": [0.3],
        "h264": [28.0],
        "frame_average": [2.0],
        "frame_swap": [1.0],
        "frame_removal": [0.5],
    }
    assert set(grid) == set(VIDEO_PERTURBATIONS.names())
    rows = run_grid(m, key, clips, grid, tmp_path / "cells.jsonl", seed=1)
    assert [r["perturbation"] for r in rows] == ["none", *grid]
    clean = rows[0]
    assert all(clean["rules"][r] == {"fn": 0, "fp": 0} for r in RULES)
    assert clean["bit_acc_wm"] > 0.9 > 0.75 > clean["bit_acc_real"]
    for r in rows[1:]:
        assert set(r["rules"]) == set(RULES)
        assert r["psnr"] < 100 or r["perturbation"] in ("frame_removal", "frame_swap")
    flat = flatten(rows)
    assert len(flat) == len(rows) * len(RULES)
    assert {f["aggregation"] for f in flat} == set(RULES)


def test_grid_resumes_from_its_store_without_recomputing(setup, tmp_path, monkeypatch):
    m, key, clips = setup
    store = tmp_path / "cells.jsonl"
    first = run_grid(m, key, clips, {"blur": [1.0]}, store, seed=2)

    def boom(*a, **k):
        raise AssertionError("a finished cell was recomputed")

    monkeypatch.setattr(m, "detect", boom)
    again = run_grid(m, key, clips, {"blur": [1.0]}, store, seed=2)
    assert again == first


@pytest.mark.slow
def test_small_grid_on_a_local_ray_instance_matches_the_local_run(setup, tmp_path):
    pytest.importorskip("ray")
    m, key, clips = setup
    grid = {"blur": [1.0], "frame_swap": [1.0]}
    local = run_grid(m, key, clips, grid, seed=3)
    from aisec.bench.cells import Executor

    on_ray = run_grid(
        m, key, clips, grid, tmp_path / "cells.jsonl", seed=3, executor=Executor(ray="local")
    )
    assert on_ray == local
    assert len((tmp_path / "cells.jsonl").read_text().splitlines()) == 3
