"""GNR training data, save/load; fuser fit, monotone logistic variant, save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aisec.errors import DataError, InputFileError
from aisec.provenance.fuser import Fuser, fit_fuser, fit_minimax_fuser
from aisec.provenance.gnr import (
    GNR,
    MARGIN_CLIP,
    GNRConfig,
    key_fingerprint,
    mark_margin,
    random_affine,
    synthetic_batch,
    train_gnr,
)


def test_random_affine_identity_and_fill() -> None:
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(3, 4, 16, 16, generator=g) < 0.5).float()
    assert torch.equal(random_affine(x, g, 0.0, 1.0, 1.0), x)
    y = random_affine(x, g, 45.0, 1.0, 1.0)
    assert set(torch.unique(y).tolist()) <= {0.0, 1.0}
    assert 0.3 < float((y == x).float().mean()) < 0.95


def test_synthetic_batch_targets() -> None:
    g = torch.Generator().manual_seed(0)
    m = (torch.rand(4, 8, 8, generator=g) < 0.5).float()
    cfg = GNRConfig(batch_size=256, neg_p=0.5, fp=0.2, degrees=0.0, s_max=1.0, flat=0.0)
    x, y = synthetic_batch(m, cfg, g)
    is_pos = (y == m).flatten(1).all(1)
    # Negatives are their own target (identity); positives map back to m.
    assert torch.equal(x[~is_pos], y[~is_pos])
    assert 0.35 < float(is_pos.float().mean()) < 0.65
    assert float((x[is_pos] == m).float().mean()) > 0.85


def test_synthetic_batch_models_inversion() -> None:
    g = torch.Generator().manual_seed(0)
    m = (torch.rand(4, 8, 8, generator=g) < 0.5).float()
    # Reference recipe (nearest, random fill, no flat regions): unrotated positives are m.
    ref = GNRConfig(
        batch_size=64,
        neg_p=0.0,
        fp=0.0,
        degrees=0.0,
        s_max=1.0,
        interp="nearest",
        fill="random",
        flat=0.0,
    )
    x, _ = synthetic_batch(m, ref, g)
    assert torch.equal(x, m.expand_as(x))
    # Flat regions: the maps hold large one-sign areas, so per-map sign balance spreads out.
    flat = GNRConfig(batch_size=256, neg_p=0.0, fp=0.0, degrees=0.0, flat=1.0, flat_q=0.0)
    x, y = synthetic_batch(m, flat, g)
    assert torch.equal(y, m.expand_as(y))
    frac = x.flatten(1).mean(1)
    assert float(frac.max()) > 0.8 and float(frac.min()) < 0.2
    # Rotating in the re-shuffled image plane of an unshuffled latent mixes its channels but
    # keeps bits in {0, 1}.
    rot = GNRConfig(batch_size=32, neg_p=0.0, fp=0.0, degrees=30.0, flat=0.0, unshuffle=2)
    x, _ = synthetic_batch(m, rot, g)
    assert set(torch.unique(x).tolist()) <= {0.0, 1.0}
    assert 0.5 < float((x == m).float().mean()) < 0.95


def test_gnr_train_save_load_roundtrip(tmp_path) -> None:
    torch.set_num_threads(1)
    m = (np.random.default_rng(0).random((4, 8, 8)) < 0.5).astype(np.uint8)
    gnr = train_gnr(m, GNRConfig(steps=3, nf=4, depth=1, batch_size=8, threads=1))
    assert gnr.fingerprint == key_fingerprint(m)
    p = gnr.save(tmp_path / "g.safetensors")
    back = GNR.load(p)
    s = (np.random.default_rng(1).random((2, 4, 8, 8)) < 0.5).astype(np.uint8)
    np.testing.assert_array_equal(back.restore(s), gnr.restore(s))
    (tmp_path / "bad.safetensors").write_bytes(b"garbage")
    with pytest.raises(InputFileError):
        GNR.load(tmp_path / "bad.safetensors")


def test_gnr_training_is_seeded_without_touching_global_torch_state() -> None:
    m = (np.random.default_rng(0).random((4, 8, 8)) < 0.5).astype(np.uint8)
    cfg = GNRConfig(steps=1, nf=4, depth=1, batch_size=4, threads=1, lr=1e-12)
    before_threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        torch.manual_seed(123)
        state = torch.random.get_rng_state()
        a = train_gnr(m, cfg, seed=5)
        assert torch.equal(torch.random.get_rng_state(), state)  # the caller's RNG untouched
        assert torch.get_num_threads() == 2  # the caller's thread count restored
    finally:
        torch.set_num_threads(before_threads)
    torch.manual_seed(999)  # another global state: the same seed gives the same network
    b = train_gnr(m, cfg, seed=5)
    assert torch.equal(a.net.inc[0].weight, b.net.inc[0].weight)


def test_gnr_continues_from_init_and_mixes_real_maps() -> None:
    from aisec.errors import ParameterError

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    m = (rng.random((4, 8, 8)) < 0.5).astype(np.uint8)
    cfg = GNRConfig(steps=2, nf=4, depth=1, batch_size=8, threads=1)
    first = train_gnr(m, cfg)
    # At lr ~ 0, continuing from init keeps its weights (not a fresh initialisation).
    cont = train_gnr(m, cfg.model_copy(update={"lr": 1e-12}), seed=1, init=first)
    fresh = train_gnr(m, cfg.model_copy(update={"lr": 1e-12}), seed=1)
    w0, w1, w2 = (g.net.inc[0].weight for g in (first, cont, fresh))
    assert torch.allclose(w0, w1, atol=1e-6) and not torch.allclose(w0, w2, atol=1e-3)
    with pytest.raises(ParameterError, match="init"):
        train_gnr(m, cfg.model_copy(update={"nf": 8}), init=first)
    other = 1 - m
    with pytest.raises(ParameterError, match="init"):
        train_gnr(other, cfg, init=first)
    # Real maps: watermarked ones learn to map to m, clean ones stay themselves.
    wm = np.repeat(m[None], 6, 0)
    wm[:, :, :2] = 0  # a one-sign band, as a flat image region inverts
    clean = (rng.random((6, 4, 8, 8)) < 0.5).astype(np.uint8)
    real_cfg = GNRConfig(
        steps=150, nf=8, depth=1, batch_size=16, threads=1, real_frac=1.0, real_clean=0.5
    )
    g = train_gnr(m, real_cfg, real=(wm, clean))
    assert (g.restore(wm) == m[None]).mean() > (wm == m[None]).mean() + 0.03
    assert (g.restore(clean) == clean).mean() > 0.8
    with pytest.raises(ParameterError, match="real clean maps"):
        train_gnr(m, real_cfg.model_copy(update={"steps": 1}), real=(wm, clean[:, :2]))
    # Hard negatives: a clean map equal to m is pulled to the mark by any net that restores m,
    # so it is mined (and re-mined every step here).
    lines: list[str] = []
    hard_cfg = real_cfg.model_copy(update={"steps": 3, "hard_share": 0.5, "mine_every": 1})
    train_gnr(m, hard_cfg, init=g, real=(wm, np.concatenate([clean, m[None]])), log=lines.append)
    mined = [ln for ln in lines if "pulled to the mark" in ln]
    assert len(mined) == 3 and all(" of 7 clean maps" in ln for ln in mined)
    assert int(mined[0].split(": ")[1].split()[0]) >= 1


def test_inverted_maps_shapes(gmm) -> None:
    import warnings

    from aisec.provenance.base import get_method
    from aisec.provenance.gnr import inverted_maps
    from aisec.rng import InsecureRandom

    gs = get_method("gaussian_shading", hw_copy=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        key = gs.keygen(gmm.latent_shape, InsecureRandom(0))
    wm, cl = inverted_maps(
        gmm, gs, key, 2, 3, torch.Generator().manual_seed(5), np.random.default_rng(5), 5
    )
    assert wm.shape == (6, *gmm.latent_shape) and cl.shape == (9, *gmm.latent_shape)
    assert wm.dtype == np.uint8 and set(np.unique(np.concatenate([wm, cl]))) <= {0, 1}
    # The unedited third of the watermarked maps still carries the key's signs more than chance.
    ref = gs.encrypted_map(key)[None]
    assert (wm == ref).mean() > (cl == ref).mean()


@pytest.mark.parametrize("kind", ["logistic", "mlp"])
def test_fuser_fit_separates_and_roundtrips(kind: str, tmp_path) -> None:
    rng = np.random.default_rng(0)
    pos = {"a": rng.normal(1.0, 0.3, 200), "b": rng.normal(0.0, 1.0, 200)}
    neg = {"a": rng.normal(0.0, 0.3, 200), "b": rng.normal(0.0, 1.0, 200)}
    f = fit_fuser(pos, neg, ("a", "b"), kind=kind)
    assert (f.prob(pos) > 0.5).mean() > 0.9 and (f.prob(neg) < 0.5).mean() > 0.9
    back = Fuser.load(f.save(tmp_path / "f.safetensors"))
    np.testing.assert_allclose(back.logit(pos), f.logit(pos))
    with pytest.raises(DataError, match="needs statistics"):
        f.logit({"a": pos["a"]})


def test_logistic_fuser_is_monotone() -> None:
    rng = np.random.default_rng(1)
    pos = {"a": rng.normal(1, 1, 100), "b": rng.normal(1, 1, 100)}
    neg = {"a": rng.normal(0, 1, 100), "b": rng.normal(0, 1, 100)}
    f = fit_fuser(pos, neg, ("a", "b"), kind="logistic")
    base = {"a": np.zeros(5), "b": np.linspace(-2, 2, 5)}
    up = {"a": np.ones(5), "b": base["b"]}
    assert (f.logit(up) >= f.logit(base)).all()


def test_minimax_fuser_matches_the_better_branch_per_condition(tmp_path) -> None:
    rng = np.random.default_rng(2)
    n = 200

    def cond(sep_a: float, sep_b: float) -> tuple[dict, dict]:
        pos = {"a": rng.normal(sep_a, 1, n), "b": rng.normal(sep_b, 1, n)}
        neg = {"a": rng.normal(0, 1, n), "b": rng.normal(0, 1, n)}
        return pos, neg

    (pa, na), (pb, nb) = cond(4.0, 0.0), cond(0.0, 4.0)
    f, margin = fit_minimax_fuser({"A": pa, "B": pb}, {"A": na, "B": nb}, ("a", "b"))
    assert set(margin) == {"A", "B"}
    # Each branch wins under one condition and is noise under the other: a linear combination
    # loses ~0.2 TPR in both, the maximum of the two standardised scores only a few points.
    assert f.kind == "max" and (f.weights[0][:, 0] == 1).all()
    assert min(margin.values()) >= -0.1
    back = Fuser.load(f.save(tmp_path / "max.safetensors"))
    np.testing.assert_allclose(back.logit(pa), f.logit(pa))
    # A branch that only adds noise gets (almost) no weight.
    (pc, nc) = cond(4.0, 0.0)
    f2, m2 = fit_minimax_fuser({"C": pc}, {"C": nc}, ("a", "b"))
    assert f2.weights[0][1, 0] <= 0.1 and m2["C"] >= 0.0
    with pytest.raises(DataError, match="same non-empty set"):
        fit_minimax_fuser({"A": pa}, {"B": nb}, ("a", "b"))


def test_mark_margin_separates_confident_restorations_from_passed_through_maps() -> None:
    rng = np.random.default_rng(3)
    m = (rng.random((4, 8, 8)) < 0.5).astype(np.uint8)
    sign = m.astype(np.float32) * 2 - 1
    clean = (rng.random((64, 4, 8, 8)) < 0.5).astype(np.float32) * 2 - 1
    passed = mark_margin(8.0 * clean, m)  # identity output of maps unrelated to m
    restored = mark_margin(np.broadcast_to(8.0 * sign, (3, 4, 8, 8)), m)
    unsure = mark_margin(np.broadcast_to(2.0 * sign, (3, 4, 8, 8)), m)
    assert np.abs(passed).max() < 3.0 and np.allclose(restored, 8.0) and np.allclose(unsure, 2.0)
    # logits beyond the clip count as the clip
    assert np.allclose(mark_margin(np.broadcast_to(1e6 * sign, (1, 4, 8, 8)), m), MARGIN_CLIP)
