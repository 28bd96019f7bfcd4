"""HashVFL's hashing pieces: sign with a straight-through gradient, class codes, the
consistency loss, bit packing, defence encode/decode and the DP accounting."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from aisec.errors import DataError, UnknownNameError
from aisec.privacy.vfl.defences import DefenceSpec, decode, encode, epsilon_spent
from aisec.privacy.vfl.hashing import (
    HashLayer,
    SignSTE,
    class_codes,
    consistency_loss,
    hamming,
    pack_codes,
    unpack_codes,
)


def test_sign_is_plus_minus_one_and_passes_the_gradient_straight_through():
    x = torch.tensor([[-2.0, 0.0, 0.3]], requires_grad=True)
    y = SignSTE.apply(x)
    assert y.tolist() == [[-1.0, 1.0, 1.0]]
    y.backward(torch.tensor([[0.5, -1.0, 2.0]]))
    assert x.grad.tolist() == [[0.5, -1.0, 2.0]]


def test_hash_layer_balances_bits_over_a_batch():
    torch.manual_seed(0)
    z = torch.randn(256, 16) * 5 + 3  # all-positive before BatchNorm
    h = HashLayer(16).train()(z)
    assert set(h.unique().tolist()) == {-1.0, 1.0}
    frac = (h > 0).float().mean(0)
    assert torch.all((frac > 0.35) & (frac < 0.65))


def test_class_codes_are_distinct_public_and_plus_minus_one():
    a, b = class_codes(10, 16, seed=3), class_codes(10, 16, seed=3)
    assert torch.equal(a, b) and a.shape == (10, 16)
    assert set(a.unique().tolist()) == {-1.0, 1.0}
    assert len({tuple(r) for r in a.tolist()}) == 10
    with pytest.raises(ValueError, match="code_bits"):
        class_codes(10, 3, seed=0)


def test_consistency_loss_is_zero_on_the_class_code_and_two_on_its_opposite():
    codes = class_codes(3, 8, seed=0)
    y = torch.tensor([0, 2])
    assert float(consistency_loss(codes[y], y, codes)) == pytest.approx(0.0, abs=1e-6)
    assert float(consistency_loss(-codes[y], y, codes)) == pytest.approx(2.0, abs=1e-6)


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(1, 20), bits=st.integers(1, 70), seed=st.integers(0, 2**16))
def test_pack_unpack_round_trip_one_bit_per_dimension(rows, bits, seed):
    h = np.random.default_rng(seed).choice([-1.0, 1.0], size=(rows, bits)).astype(np.float32)
    packed = pack_codes(h)
    assert packed.dtype == np.uint8 and packed.shape == (rows, (bits + 7) // 8)
    assert np.array_equal(unpack_codes(packed, bits).numpy(), h)


def test_pack_refuses_values_that_are_not_codes():
    with pytest.raises(DataError, match="-1 and \\+1"):
        pack_codes(np.array([[0.5, 1.0]]))


def test_hamming_counts_differing_bits():
    a = torch.tensor([[1.0, -1.0, 1.0, 1.0]])
    b = torch.tensor([[1.0, 1.0, -1.0, 1.0]])
    assert hamming(a, b).tolist() == [2.0]


def test_hash_codes_travel_packed_and_float_embeddings_as_float32():
    g = torch.Generator().manual_seed(0)
    codes = torch.tensor([[1.0, -1.0] * 8] * 4)
    _, f = encode(DefenceSpec(name="hash", code_bits=16), codes, g)
    assert set(f) == {"c"} and f["c"].nbytes == 4 * 2
    _, f = encode(DefenceSpec(name="none", code_bits=16), codes, g)
    assert f["e"].dtype == np.float32 and f["e"].nbytes == 4 * 16 * 4
    assert torch.equal(
        decode(DefenceSpec(name="hash", code_bits=16), {"c": pack_codes(codes)}, 4), codes
    )


def test_decode_refuses_a_wrong_shape_or_nan():
    spec = DefenceSpec(name="none", code_bits=4)
    with pytest.raises(DataError, match="expected \\[3, 4\\]"):
        decode(spec, {"e": np.zeros((3, 5), np.float32)}, 3)
    with pytest.raises(DataError, match="NaN"):
        decode(spec, {"e": np.full((3, 4), np.nan, np.float32)}, 3)


def test_noise_defences_clip_then_add_noise_keeping_the_graph():
    g = torch.Generator().manual_seed(0)
    z = (torch.ones(64, 8) * 10).requires_grad_(True)
    sent, _ = encode(DefenceSpec(name="noise", code_bits=8, noise_scale=0.0, clip=1.0), z, g)
    assert torch.allclose(sent.norm(dim=1), torch.ones(64))
    sent.sum().backward()
    assert z.grad is not None
    sent, _ = encode(DefenceSpec(name="dp", code_bits=8, epsilon=1.0, clip=1.0), z.detach(), g)
    assert (sent - z.detach() / 8).abs().mean() > 0.5  # Laplace scale 2 per coordinate


def test_unknown_defence_lists_the_valid_names():
    with pytest.raises(UnknownNameError, match="valid: dp, gradperturb, hash, noise, none"):
        DefenceSpec(name="rot13").check()


def test_dp_budget_comes_from_the_accountant_and_composes_over_epochs():
    pytest.importorskip("dp_accounting")
    spec = DefenceSpec(name="dp", epsilon=0.5)
    e1, e5 = epsilon_spent(spec, 1), epsilon_spent(spec, 5)
    assert e1 == pytest.approx(0.5, rel=0.05)
    assert e1 < e5 <= 5 * 0.5 * 1.001  # never (noticeably) above basic composition
    assert epsilon_spent(DefenceSpec(name="noise", noise_scale=2.0), 3) > 0
    assert epsilon_spent(DefenceSpec(name="hash"), 3) is None


def test_noise_after_hashing_travels_as_float32_and_changes_the_codes():
    g = torch.Generator().manual_seed(0)
    codes = torch.tensor([[1.0, -1.0] * 8] * 4)
    spec = DefenceSpec(name="hash", code_bits=16, hash_noise=0.5)
    sent, fields = encode(spec, codes, g)
    assert set(fields) == {"e"} and fields["e"].dtype == np.float32
    assert not torch.equal(sent, codes)
    assert torch.equal(decode(spec, fields, 4), sent)
