"""affectkit.Dropout: the stock dropout's distribution, drawn faster."""

from __future__ import annotations

import pytest
import torch

from affectkit import Dropout, fast_dropout


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
def test_dropout_gives_the_bits_of_the_plain_formula(p):
    # the in-place mask and scaling must not change a seeded run: same output, same gradient
    x = torch.randn(32, 17, requires_grad=True)
    g = torch.randn(32, 17)
    torch.manual_seed(5)
    y = fast_dropout(x, p)
    (gx,) = torch.autograd.grad(y, x, g)
    torch.manual_seed(5)
    y_ref = x * ((torch.rand_like(x) > p).float() * (1.0 / (1.0 - p)))
    (gx_ref,) = torch.autograd.grad(y_ref, x, g)
    assert torch.equal(y, y_ref)
    assert torch.equal(gx, gx_ref)
