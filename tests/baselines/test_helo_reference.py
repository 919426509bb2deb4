"""The published-style HeLo step of ``benchmarks/helo_reference.py`` computes the same
function as affectkit's ``helo``: per-sample OT = batched OT, same forward output."""

from __future__ import annotations

import torch
from affectkit_baselines.ot import cosine_cost, gromov_wasserstein

from benchmarks.helo_reference import (
    ReferenceHeLo,
    build_helo,
    random_dmer,
    ref_cosine_cost,
    ref_plans,
    ref_sinkhorn,
)
from tests.tolerances import plan_rtol, rounding_tol


def _tokens(b: int, n: int, d: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, n, d, generator=torch.Generator().manual_seed(seed))


def test_per_sample_ot_equals_batched_ot():
    x, y = _tokens(4, 12), _tokens(4, 9, seed=1)  # n != m catches a transposed plan
    torch.testing.assert_close(ref_cosine_cost(x[2]), cosine_cost(x)[2])
    batched = gromov_wasserstein(cosine_cost(x), cosine_cost(y), lam=0.1, outer=5, inner=20)
    looped = ref_plans(x, y, lam=0.1, outer=5, inner=20)
    assert looped.shape == (4, 12, 9)
    torch.testing.assert_close(looped, batched, atol=0, rtol=plan_rtol(12, 9))


def test_reference_sinkhorn_scales_to_the_marginals():
    g = torch.Generator().manual_seed(2)
    kernel = torch.rand(5, 7, generator=g) + 0.1
    mu, nu = torch.full((5,), 0.2), torch.full((7,), 1 / 7)
    plan = ref_sinkhorn(kernel, mu, nu, iterations=200)
    # convergence after 200 sweeps, not rounding
    torch.testing.assert_close(plan.sum(1), mu, atol=1e-5, rtol=0)
    torch.testing.assert_close(plan.sum(0), nu, atol=1e-5, rtol=0)


def test_reference_forward_equals_affectkit_forward():
    net = build_helo("cpu").model.eval()
    reference = ReferenceHeLo(net).eval()  # same modules, same weights
    batch = random_dmer(6, seed=3)
    x = {k: v for k, v in batch.items() if k != "target"}
    with torch.no_grad():
        out = net(x)
        # the plan (per sample vs batched, 36 × 36) moves the transported tokens by its
        # relative tolerance; post-LN layers keep errors relative, so the logits move by
        # that much of their size, plus the forward chain's own rounding (the 768-input
        # projection, attention over 72 tokens of 128, the 72-token map, the label
        # attention and the 1280 -> 128 -> 128 -> 10 head: about 3200 terms)
        rel = plan_rtol(36, 36) + rounding_tol(3200)
        torch.testing.assert_close(reference(x), out, atol=rel * float(out.abs().max()), rtol=0)
