"""Tree-Ring, Gaussian Shading and GaussMarker on noise directly (no diffusion model)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aisec.errors import ConfigError, UnknownNameError
from aisec.provenance.base import IMAGE_WATERMARKS, get_method
from aisec.provenance.gaussian_shading import chacha_stream

SHAPE = (4, 16, 16)


def test_registry_lists_the_three_methods() -> None:
    get_method("tree_ring")
    assert {"tree_ring", "gaussian_shading", "gaussmarker"} <= set(IMAGE_WATERMARKS.names())
    with pytest.raises(UnknownNameError, match="gaussmarker"):
        get_method("gauss_marker")
    with pytest.raises(ConfigError, match="gaussian_shading"):
        get_method("gaussian_shading", hw_copies=4)


def test_gaussmarker_variants_share_one_class_and_its_keys(crypto) -> None:
    gm, raw = get_method("gaussmarker"), get_method("gaussmarker_nognr")
    assert type(gm) is type(raw)
    assert gm.uses_gnr and not raw.uses_gnr
    assert "gnr_margin" in gm.fusion_features and "gnr_margin" not in raw.fusion_features
    key = gm.keygen(SHAPE, crypto)
    assert "restorer" not in key.params  # a detection setting, not part of the mark
    z = torch.zeros(2, *SHAPE)
    raw.detect(key, z)  # the same key serves both variants
    # The GNR variant never falls back to the raw signs silently.
    with pytest.raises(ConfigError, match="detects with a GNR"):
        gm.detect(key, z)
    with pytest.raises(ConfigError, match="fuser calibrated for this key"):
        gm.threshold(key, 0.01)
    with pytest.raises(ConfigError, match="without a GNR"):
        raw.with_detector(gnr=object())
    from aisec.provenance.gnr import GNRConfig, train_gnr

    other = gm.keygen(SHAPE, crypto)
    tiny = train_gnr(gm.encrypted_map(other), GNRConfig(steps=1, nf=4, depth=1, batch_size=4))
    gm.with_detector(gnr=tiny)
    gm.detect(other, z)
    with pytest.raises(ConfigError, match="trained for another key"):
        gm.detect(key, z)
    assert raw.threshold(key, 0.01) == get_method("gaussian_shading").threshold(
        gm.split(key)[0], 0.01
    )
    with pytest.raises(ConfigError, match="takes no GNR"):
        get_method("tree_ring").with_detector(gnr=object())


@pytest.mark.parametrize("name", ["tree_ring", "gaussian_shading", "gaussmarker_nognr"])
def test_embedded_noise_is_standard_normal_and_detected(name: str, crypto, seed: int) -> None:
    m = get_method(name)
    key = m.keygen(SHAPE, crypto)
    g = torch.Generator().manual_seed(seed)
    z = m.embed(key, 64, g)
    assert z.shape == (64, *SHAPE) and z.dtype == torch.float32
    assert abs(float(z.mean())) < 0.1 and abs(float(z.std()) - 1.0) < 0.1
    clean = torch.randn((64, *SHAPE), generator=g)
    pos, neg = m.detect(key, z), m.detect(key, clean)
    assert pos.score.min() > neg.score.max()
    if m.multibit:
        assert pos.bit_acc.min() >= 0.95  # the ring flips a few GS signs in GaussMarker
        assert abs(float(neg.bit_acc.mean()) - 0.5) < 0.05
        assert pos.bits.shape == (64, m.n_bits(SHAPE))


def test_gaussian_shading_message_roundtrip_and_nonces(crypto, seed: int) -> None:
    gs = get_method("gaussian_shading", hw_copy=4)
    key = gs.keygen(SHAPE, crypto)
    g = torch.Generator().manual_seed(seed)
    z = gs.embed(key, 4, g)
    # The reference design: every image has the same sign pattern.
    assert bool(((z > 0) == (z[:1] > 0)).all())
    nonces = [bytes([i]) * 12 for i in range(4)]
    zn = gs.embed(key, 4, g, nonces)
    assert float(((zn[0] > 0) == (zn[1] > 0)).float().mean()) < 0.7
    d = gs.detect(key, zn, nonces)
    np.testing.assert_array_equal(d.bits, np.broadcast_to(key.material["message"], d.bits.shape))
    wrong = gs.detect(key, zn)  # without the nonces the message is gone
    assert wrong.bit_acc.mean() < 0.75


def test_chacha_matches_rfc8439_vector() -> None:
    # RFC 8439 section 2.4.2: key 00..1f, nonce 00 00 00 00 00 00 00 4a 00 00 00 00, counter 1.
    # Our stream starts at counter 0, so its second block is the RFC's first key-stream block.
    key = bytes(range(32))
    nonce = bytes.fromhex("000000000000004a00000000")
    bits = chacha_stream(key, nonce, 1024)
    block1 = np.packbits(bits[512:]).tobytes()
    assert block1[:16].hex() == "224f51f3401bd9e12fde276fb8631ded"


def test_key_of_another_method_and_shape_rejected(crypto) -> None:
    tr, gs = get_method("tree_ring"), get_method("gaussian_shading")
    key = tr.keygen(SHAPE, crypto)
    with pytest.raises(ConfigError, match="for method 'tree_ring', not 'gaussian_shading'"):
        gs.detect(key, torch.zeros(1, *SHAPE))
    with pytest.raises(ConfigError, match="shape"):
        tr.detect(key, torch.zeros(1, 4, 8, 8))
    assert "secret" in repr(key) and "pattern" not in repr(key)


def test_tree_ring_survives_circular_rotation_of_noise(crypto, seed: int) -> None:
    tr = get_method("tree_ring")
    key = tr.keygen(SHAPE, crypto)
    g = torch.Generator().manual_seed(seed)
    z = tr.embed(key, 16, g)
    clean = torch.randn((16, *SHAPE), generator=g)
    rot = torch.rot90(z, 1, dims=(-2, -1))  # the ring pattern is rotation invariant
    assert tr.detect(key, rot).score.min() > tr.detect(key, clean).score.max()


def test_balanced_keys_have_small_sign_imbalance(crypto) -> None:
    gs = get_method("gaussian_shading")
    for _ in range(5):
        m = gs.encrypted_map(gs.keygen(SHAPE, crypto)).astype(int)
        assert abs((2 * m - 1).sum()) <= 16  # sqrt(1024) / 2
    ref = get_method("gaussian_shading", balanced=False)
    assert ref.keygen(SHAPE, crypto).params["balanced"] is False


def test_gaussmarker_threshold_comes_from_a_fuser_calibrated_for_key_and_fpr(
    crypto, tmp_path
) -> None:
    import dataclasses

    from aisec.provenance.fuser import Fuser, fit_fuser

    raw = get_method("gaussmarker_nognr")
    key = raw.keygen(SHAPE, crypto)
    rng = np.random.default_rng(0)
    feats = ("gs_bit_acc", "tr_score")
    fuser = fit_fuser(
        {f: rng.normal(1, 1, 20) for f in feats},
        {f: rng.normal(0, 1, 20) for f in feats},
        feats,
        "logistic",
    )
    raw.with_detector(fuser=fuser)  # fitted, never calibrated
    with pytest.raises(ConfigError, match="not calibrated for this key"):
        raw.threshold(key, 0.01)
    cal = dataclasses.replace(
        fuser, threshold=1.5, key_fingerprint=raw.key_fingerprint(key), fpr=0.01
    )
    back = Fuser.load(cal.save(tmp_path / "f.safetensors"))
    assert back.fpr == 0.01 and back.threshold == 1.5
    raw.with_detector(fuser=back)
    assert raw.threshold(key, 0.01) == 1.5
    with pytest.raises(ConfigError, match="calibrated at FPR 0.01, not 0.001"):
        raw.threshold(key, 0.001)


def test_fuser_recalibrates_for_another_fpr_from_its_calibration_scores(crypto, tmp_path) -> None:
    import dataclasses

    from aisec.metrics.detection import threshold_at_fpr
    from aisec.provenance.fuser import Fuser, fit_fuser

    raw = get_method("gaussmarker_nognr")
    key = raw.keygen(SHAPE, crypto)
    rng = np.random.default_rng(0)
    feats = ("gs_bit_acc", "tr_score")
    fuser = fit_fuser(
        {f: rng.normal(1, 1, 20) for f in feats},
        {f: rng.normal(0, 1, 20) for f in feats},
        feats,
        "logistic",
    )
    scores = rng.normal(0, 1, 1000)
    cal = dataclasses.replace(
        fuser,
        threshold=threshold_at_fpr(scores, 0.01),
        key_fingerprint=raw.key_fingerprint(key),
        fpr=0.01,
        cal_scores=scores,
    )
    raw.with_detector(fuser=Fuser.load(cal.save(tmp_path / "f.safetensors")))
    thr = {f: raw.threshold(key, f) for f in (0.5, 0.1, 0.01)}
    assert thr[0.5] < thr[0.1] < thr[0.01]  # --fpr is not ignored
    for f, t in thr.items():
        assert np.mean(scores > t) <= f and np.mean(scores >= t) > f - 0.002
    # 1e-9 (or anything with fewer than 10 of 1,000 calibration scores above it) is refused.
    for f in (1e-9, 0.009):
        with pytest.raises(ConfigError, match="below what the fuser's 1000 calibration"):
            raw.threshold(key, f)


@pytest.mark.parametrize("pattern, cross_ok, n_b", [("random", True, 5), ("rings", False, 1)])
def test_tree_ring_keys_of_two_owners_do_not_collide(
    pattern: str, cross_ok: bool, n_b: int
) -> None:
    """Over 5 x 1,000 random key pairs, key B flags noise marked under key A at about B's
    nominal FPR (1 %, its threshold from 4,000 clean latents); the reference ring keys (three
    complex values on this latent) do not (measured 0.29-0.51 per key B)."""
    import warnings

    import torch

    from aisec.rng import InsecureRandom

    torch.set_num_threads(1)  # as the session fixtures: two threads spin on a shared 2-core box
    shape = (4, 16, 16)
    tr = get_method("tree_ring", pattern=pattern)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rng = InsecureRandom(5)
    g = torch.Generator().manual_seed(0)
    flagged = 0
    for _ in range(n_b):
        kb = tr.keygen(shape, rng)
        thr = np.quantile(tr.detect(kb, torch.randn((4000, *shape), generator=g)).score, 0.99)
        za = torch.cat([tr.embed(tr.keygen(shape, rng), 1, g) for _ in range(1000)])
        flagged += int((tr.detect(kb, za).score > thr).sum())
        assert (tr.detect(kb, tr.embed(kb, 50, g)).score > thr).all()  # its own mark: found
    rate = flagged / (1000 * n_b)
    bound = 0.01 + 3 * (0.01 * 0.99 / (1000 * n_b)) ** 0.5 + 0.0025  # + the threshold's error
    assert (rate <= bound) == cross_ok, rate
