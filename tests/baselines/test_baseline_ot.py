"""The batched Gromov–Wasserstein solver behind HeLo's heterogeneity mining."""

from __future__ import annotations

import torch
from affectkit_baselines.ot import cosine_cost, gromov_wasserstein, sinkhorn, transport

from tests.tolerances import plan_rtol, rounding_tol


def _tokens(b: int, n: int, d: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, n, d, generator=torch.Generator().manual_seed(seed))


def test_plan_marginals_are_uniform_with_published_settings():
    x, y = _tokens(8, 30), _tokens(8, 36, seed=1)  # n != m catches a transposed plan
    plan = gromov_wasserstein(cosine_cost(x), cosine_cost(y), lam=0.1, outer=5, inner=20)
    assert plan.shape == (8, 30, 36)
    assert (plan >= 0).all()
    # not rounding: 20 Sinkhorn sweeps leave the row marginals within 0.1 % (the solver's
    # convergence); the columns, scaled last, are exact up to rounding, far below that
    torch.testing.assert_close(plan.sum(-1), torch.full((8, 30), 1 / 30), atol=1e-3 / 30, rtol=0)
    torch.testing.assert_close(plan.sum(-2), torch.full((8, 36), 1 / 36), atol=1e-3 / 36, rtol=0)


def test_batched_plan_equals_per_sample_plans():
    x, y = _tokens(4, 12), _tokens(4, 10, seed=2)
    batched = gromov_wasserstein(cosine_cost(x), cosine_cost(y))
    for i in range(4):
        single = gromov_wasserstein(cosine_cost(x[i : i + 1]), cosine_cost(y[i : i + 1]))
        torch.testing.assert_close(batched[i : i + 1], single, atol=0, rtol=plan_rtol(12, 10))


def test_gw_recovers_a_token_permutation():
    # Y is X with its tokens shuffled: the intra-set costs match exactly under the
    # permutation, which is then the GW optimum (zero distortion).
    x = _tokens(2, 30)
    perm = torch.randperm(30, generator=torch.Generator().manual_seed(3))
    plan = gromov_wasserstein(cosine_cost(x), cosine_cost(x[:, perm]), lam=0.1, outer=20)
    assert (plan.argmax(-1) == torch.argsort(perm)).float().mean() > 0.95


def test_sinkhorn_matches_given_marginals():
    g = torch.Generator().manual_seed(4)
    kernel = torch.rand(3, 5, 7, generator=g) + 0.1
    mu = torch.softmax(torch.randn(3, 5, generator=g), -1)
    nu = torch.softmax(torch.randn(3, 7, generator=g), -1)
    plan = sinkhorn(kernel, mu, nu, iterations=200)
    # convergence after 200 sweeps, not rounding (the columns, scaled last, are exact
    # up to a few 1e-8)
    torch.testing.assert_close(plan.sum(-1), mu, atol=1e-5, rtol=0)
    torch.testing.assert_close(plan.sum(-2), nu, atol=1e-5, rtol=0)


def test_transport_is_a_barycentric_map():
    x, y = _tokens(3, 8), _tokens(3, 6, seed=5)
    plan = gromov_wasserstein(cosine_cost(x), cosine_cost(y))
    moved = transport(x, plan)
    assert moved.shape == (3, 6, 16)
    # every target slot receives a convex combination: a constant source stays constant
    const = torch.ones(3, 8, 16) * 2.5
    # m·Σ_i T_ij = m·ν_j = 1 up to rounding: the columns were scaled last (their 8-term sum
    # and a division), then the test's products and the 8-term transport sum
    tol = rounding_tol(8 + 1 + 2 + 8 + 1, scale=2.5)
    torch.testing.assert_close(
        transport(const, plan), torch.full((3, 6, 16), 2.5), atol=tol, rtol=0
    )
    # and with the identity coupling on equal sets, transport returns the source
    eye = torch.eye(8).expand(3, 8, 8) / 8
    torch.testing.assert_close(transport(x, eye), x)


def test_plan_is_solved_in_float32_under_bf16_autocast():
    # mixed-precision training (train.amp) must not change the plan: bf16 Sinkhorn scalings
    # lose the marginals, so the solver turns autocast off and works in float32
    x, y = _tokens(3, 30), _tokens(3, 36, seed=5)
    exact = gromov_wasserstein(cosine_cost(x), cosine_cost(y))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        plan = gromov_wasserstein(cosine_cost(x).bfloat16(), cosine_cost(y).bfloat16())
    assert plan.dtype == torch.float32
    # the inputs were rounded to bf16, the solve was not: same plan to bf16 input precision
    torch.testing.assert_close(plan, exact, atol=2e-4, rtol=0.05)
    torch.testing.assert_close(plan.sum(-1), torch.full((3, 30), 1 / 30), atol=1e-3 / 30, rtol=0)
