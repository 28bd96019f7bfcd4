"""The VideoMarkBench pictures: FNR/FPR heatmaps and the frame strip."""

from __future__ import annotations

import numpy as np
import pytest

from aisec.errors import ParameterError


def _rows() -> list[dict]:
    out = []
    for m, v in (("a", 0.0), ("b", 0.5)):
        for p, s in (("none", 0.0), ("jpeg", 50.0), ("jpeg", 10.0)):
            for rule in ("ba_mean", "logit_mean"):
                out.append(
                    {
                        "method": m,
                        "aggregation": rule,
                        "perturbation": p,
                        "strength": s,
                        "fnr": v + (0.25 if p == "jpeg" and s == 50 else 0.0),
                        "fpr": 0.0,
                    }
                )
    return out


def test_heatmap_table_puts_clean_first_and_each_value_in_its_cell():
    from aisec.provenance.video.figures import heatmap_table

    methods, cols, val = heatmap_table(_rows(), "fnr", "ba_mean")
    assert methods == ["a", "b"]
    assert cols == ["clean", "jpeg 10", "jpeg 50"]
    np.testing.assert_allclose(val, [[0.0, 0.0, 0.25], [0.5, 0.5, 0.75]])
    with pytest.raises(ParameterError, match="measure"):
        heatmap_table(_rows(), "tpr", "ba_mean")


def test_heatmaps_and_frame_strip_write_png_files(tmp_path):
    pytest.importorskip("matplotlib")
    from aisec.provenance.video.figures import frame_strip, heatmaps

    p = heatmaps(_rows(), "fnr", tmp_path / "h.png", title="t")
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    clip = np.random.default_rng(0).random((3, 3, 16, 16)).astype(np.float32)
    q = frame_strip({"clean": clip, "marked": clip}, tmp_path / "s.png", frames=2)
    assert q.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ParameterError, match="no rows"):
        heatmaps([], "fpr", tmp_path / "x.png")
