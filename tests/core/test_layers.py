"""affectkit.Dropout: the stock dropout's distribution (p rounded to 2⁻¹⁶), drawn faster."""

from __future__ import annotations

import pytest
import torch

from affectkit import Dropout, fast_dropout, keep_mask
from affectkit.layers import quantized_p


def test_dropout_zeroes_a_fraction_p_and_keeps_the_mean():
    torch.manual_seed(0)
    x = torch.ones(200_000)
    y = fast_dropout(x, 0.3)
    assert abs((y == 0).float().mean().item() - 0.3) < 0.005
    assert torch.allclose(y[y != 0], torch.full_like(y[y != 0], 1 / 0.7))
    assert abs(y.mean().item() - 1.0) < 0.01


def test_dropout_module_is_identity_in_eval_and_seeded_in_training():
    drop = Dropout(0.5)
    x = torch.randn(64, 8)
    assert torch.equal(drop.eval()(x), x)
    drop.train()
    torch.manual_seed(3)
    a = drop(x)
    torch.manual_seed(3)
    assert torch.equal(a, drop(x))
    assert torch.equal(fast_dropout(x, 0.0), x)
    with pytest.raises(ValueError, match="dropout probability"):
        Dropout(1.0)


def test_dropout_under_vmap_draws_per_fold_masks_without_a_fallback():
    """Fold-parallel training vmaps the step (randomness="different"): every fold gets its
    own mask, and every op of the draw has a batching rule (a fallback loops over folds)."""
    import warnings

    x = torch.ones(3, 4000)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*batching rule.*")
        y = torch.func.vmap(lambda t: fast_dropout(t, 0.3), randomness="different")(x)
    assert not torch.equal(y[0], y[1])
    for fold in y:
        assert abs((fold == 0).float().mean().item() - 0.3) < 0.05


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_dropout_is_the_plain_formula_on_its_mask(p):
    # output and gradient are x · keep / (1 − p̂) for the mask keep_mask draws from that seed
    x = torch.randn(32, 17, requires_grad=True)
    g = torch.randn(32, 17)
    torch.manual_seed(5)
    y = fast_dropout(x, p)
    (gx,) = torch.autograd.grad(y, x, g)
    torch.manual_seed(5)
    keep = keep_mask(x, p)
    y_ref = x * (keep.float() * (1.0 / (1.0 - quantized_p(p))))
    (gx_ref,) = torch.autograd.grad(y_ref, x, g)
    assert torch.equal(y, y_ref)
    assert torch.equal(gx, gx_ref)
    assert torch.equal(y == 0, ~keep)


def test_quantized_p_rounds_to_16_bits_and_keeps_the_scale_finite():
    assert quantized_p(0.5) == 0.5
    assert quantized_p(0.1) == 6554 / 65536
    assert abs(quantized_p(0.3) - 0.3) <= 0.5 / 65536
    assert quantized_p(1 - 1e-9) == 1 - 1 / 65536  # never 1: 1/(1 − p̂) stays finite
    x = torch.ones(1000)
    assert torch.isfinite(fast_dropout(x, 1 - 1e-9)).all()
    assert torch.equal(fast_dropout(x, 1e-7), x)  # rounds to 0: nothing is ever dropped


def test_every_16_bit_lane_of_a_draw_drops_at_rate_p():
    """Each 64-bit draw feeds four consecutive elements; a lane that is not uniform (e.g. a
    draw over [0, 2⁶³) whose top bit is always 0) would keep one element in four too often."""
    torch.manual_seed(1)
    p = 0.3
    keep = keep_mask(torch.empty(100_000, 8), p)
    drop_rate = (~keep).float().mean(0)  # one column per lane position (two draws per row)
    # binomial std with n = 1e5 is 0.0014
    assert ((drop_rate - quantized_p(p)).abs() < 0.007).all(), drop_rate


@pytest.mark.parametrize("shape", [(5, 3), (2, 7, 9), (13,), ()])
def test_keep_mask_has_the_shape_of_x_for_any_last_axis(shape):
    x = torch.randn(shape)
    torch.manual_seed(0)
    keep = keep_mask(x, 0.5)
    assert keep.shape == x.shape and keep.dtype == torch.bool
    torch.manual_seed(0)
    assert torch.equal(keep, keep_mask(x, 0.5))
    assert fast_dropout(x, 0.5).shape == x.shape
