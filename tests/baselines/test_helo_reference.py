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


def _tokens(b: int, n: int, d: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, n, d, generator=torch.Generator().manual_seed(seed))


def test_per_sample_ot_equals_batched_ot():
    x, y = _tokens(4, 12), _tokens(4, 9, seed=1)  # n != m catches a transposed plan
    torch.testing.assert_close(ref_cosine_cost(x[2]), cosine_cost(x)[2])
    batched = gromov_wasserstein(cosine_cost(x), cosine_cost(y), lam=0.1, outer=5, inner=20)
    looped = ref_plans(x, y, lam=0.1, outer=5, inner=20)
    assert looped.shape == (4, 12, 9)
    torch.testing.assert_close(looped, batched, atol=1e-6, rtol=1e-4)


def test_reference_sinkhorn_scales_to_the_marginals():
    g = torch.Generator().manual_seed(2)
    kernel = torch.rand(5, 7, generator=g) + 0.1
    mu, nu = torch.full((5,), 0.2), torch.full((7,), 1 / 7)
    plan = ref_sinkhorn(kernel, mu, nu, iterations=200)
    torch.testing.assert_close(plan.sum(1), mu, atol=1e-5, rtol=0)
    torch.testing.assert_close(plan.sum(0), nu, atol=1e-5, rtol=0)


def test_reference_forward_equals_affectkit_forward():
    net = build_helo("cpu").model.eval()
    reference = ReferenceHeLo(net).eval()  # same modules, same weights
    batch = random_dmer(6, seed=3)
    x = {k: v for k, v in batch.items() if k != "target"}
    with torch.no_grad():
        torch.testing.assert_close(reference(x), net(x), atol=1e-5, rtol=1e-4)
