"""End to end on the exact-score mixture backbone: generate -> 8-bit -> distort -> invert -> detect."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest
import torch

from aisec.diffusion.schedule import ddim_invert, ddim_sample, linear_alphas_cumprod
from aisec.errors import ConfigError, InputFileError
from aisec.provenance.base import get_method
from aisec.provenance.keys import load_key, save_key
from aisec.provenance.pipeline import detect, generate


def test_ddim_inversion_is_exact_for_a_linear_model() -> None:
    # eps(x, t) = c_t x makes every DDIM step linear; refined inversion must undo sampling.
    abar = linear_alphas_cumprod()

    def eps(x: torch.Tensor, t: int) -> torch.Tensor:
        return 0.3 * x * float(abar[t]) ** 0.5

    z = torch.randn(4, 4, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x0 = ddim_sample(eps, z, abar, 10)
    approx = ddim_invert(eps, x0, abar, 10, refine=0)
    exact = ddim_invert(eps, x0, abar, 10, refine=20)
    assert float((exact - z).abs().max()) < 1e-6
    assert float((exact - z).abs().max()) < float((approx - z).abs().max())


@pytest.mark.parametrize("name", ["tree_ring", "gaussian_shading", "gaussmarker_nognr"])
def test_clean_detection_on_gmm(gmm, crypto, seed: int, name: str) -> None:
    m = get_method(name)
    key = m.keygen(gmm.latent_shape, crypto)
    g = torch.Generator().manual_seed(seed)
    wm = generate(gmm, m, key, 12, g, num_steps=20)
    cl = generate(gmm, None, None, 12, g, num_steps=20)
    assert wm.images.shape == (12, 1, 32, 32)
    assert np.allclose(wm.images * 255, np.round(wm.images * 255), atol=1e-3)  # 8-bit grid
    pos = detect(gmm, m, key, wm.images, num_steps=20)
    neg = detect(gmm, m, key, cl.images, num_steps=20)
    assert pos.score.min() > neg.score.max()
    if m.multibit:
        assert pos.bit_acc.mean() >= 0.9
        assert abs(float(neg.bit_acc.mean()) - 0.5) < 0.1


def test_key_file_roundtrip_permissions_and_errors(tmp_path, crypto) -> None:
    gm = get_method("gaussmarker")
    key = gm.keygen((4, 16, 16), crypto)
    p = save_key(key, tmp_path / "gm.key")
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o600
    back = load_key(p, "gaussmarker")
    for k, v in key.material.items():
        np.testing.assert_array_equal(back.material[k], v)
    with pytest.raises(ConfigError, match="is for method 'gaussmarker', not 'tree_ring'"):
        load_key(p, "tree_ring")
    trunc = tmp_path / "trunc.key"
    trunc.write_bytes(p.read_bytes()[:50])
    with pytest.raises(InputFileError, match="not a watermark key"):
        load_key(trunc)
    other = tmp_path / "other.key"
    other.write_text(json.dumps({"hello": 1}))
    with pytest.raises(InputFileError, match="format"):
        load_key(other)
    with pytest.raises(InputFileError, match="no such key file"):
        load_key(tmp_path / "missing.key")


def test_wrong_image_size_is_a_clear_error(gmm, crypto) -> None:
    m = get_method("tree_ring")
    key = m.keygen(gmm.latent_shape, crypto)
    from aisec.errors import ParameterError

    with pytest.raises(ParameterError, match="32x32"):
        detect(gmm, m, key, np.zeros((1, 1, 28, 28), np.float32))


def test_backbone_without_inversion_is_refused_by_name(gmm, crypto) -> None:
    from aisec.provenance.pipeline import invert

    class GenerateOnly:
        name = "generate-only"
        capabilities = frozenset({"generate"})

        def __getattr__(self, attr):
            return getattr(gmm, attr)

    bb = GenerateOnly()
    x = generate(bb, None, None, 2, torch.Generator().manual_seed(0), num_steps=4).images
    with pytest.raises(ConfigError, match="generate-only.*invert"):
        invert(bb, x, 4)
