"""PRD and PCL: zero/positivity, monotonicity, symmetry, InfoLOOB vs InfoNCE."""

from __future__ import annotations

import itertools

import pytest
import torch
from affectkit_mpcl.pcl import PCL, contrastive
from affectkit_mpcl.prd import PRD

N, D, B = 12, 16, 8


def test_prd_zero_iff_relations_and_structure_agree():
    torch.manual_seed(0)
    prd = PRD()
    s, u = torch.randn(B, N), torch.randn(N, D)
    assert prd(s, s.clone(), u, u.clone()).abs() < 1e-6
    assert prd(s, torch.randn(B, N), u, u) > 1e-3  # relations differ
    assert prd(s, s, u, torch.randn(N, D)) > 1e-3  # prototype geometries differ
    # rescaling a bank keeps its cosine geometry: structure term stays zero
    assert prd(s, s, u, 3.0 * u).abs() < 1e-6


def test_prd_symmetric_in_the_two_modalities():
    torch.manual_seed(1)
    prd = PRD(relation_weight=0.7, structure_weight=1.3)
    s_x, s_y, u, v = torch.randn(B, N), torch.randn(B, N), torch.randn(N, D), torch.randn(N, D)
    torch.testing.assert_close(prd(s_x, s_y, u, v), prd(s_y, s_x, v, u))


def test_prd_teacher_only_moves_the_student():
    s_x = torch.randn(B, N, requires_grad=True)
    s_y = torch.randn(B, N, requires_grad=True)
    prd = PRD(teacher="physiological", structure_weight=0.0)
    prd(s_x, s_y, torch.eye(N), torch.eye(N)).backward()
    assert s_x.grad is None or s_x.grad.abs().max() == 0
    assert s_y.grad.abs().max() > 0


def make_pcl(objective="infoloob", beta=1.0):
    from affectkit_mpcl.hopfield import HopfieldRetrieval

    return PCL(
        memory=HopfieldRetrieval(dim=D, project=False),
        dim=D,
        objective=objective,
        tau=0.1,
        beta=beta,
    )


@pytest.mark.parametrize("objective", ["infoloob", "infonce"])
def test_pcl_decreases_when_positives_get_more_similar(objective):
    torch.manual_seed(2)
    pcl = make_pcl(objective)
    u, v = torch.randn(N, D), torch.randn(N, D)
    x, noise = torch.randn(B, D), torch.randn(B, D)
    losses = [pcl(x, x + s * noise, u, v).item() for s in (3.0, 1.0, 0.3, 0.0)]
    assert all(a > b for a, b in itertools.pairwise(losses)), losses


def test_pcl_symmetric_under_swapping_spaces():
    torch.manual_seed(3)
    pcl = make_pcl()
    x, y, u, v = torch.randn(B, D), torch.randn(B, D), torch.randn(N, D), torch.randn(N, D)
    torch.testing.assert_close(pcl(x, y, u, v), pcl(y, x, v, u))


def test_pcl_retrieves_through_the_bank():
    """Queries that retrieve the same mixture are positives even if they differ."""
    torch.manual_seed(4)
    pcl = make_pcl(beta=50.0)  # sharp: each query retrieves (almost) one prototype
    u = torch.nn.functional.normalize(torch.randn(N, D), dim=-1)
    idx = torch.randperm(N)[:B]
    x, y = u[idx] + 0.05 * torch.randn(B, D), u[idx] + 0.05 * torch.randn(B, D)
    # not a rounding tolerance: β = 50 leaves the other prototypes weights of about
    # exp(−50·gap) and x, y sit at different distances from theirs, so the two retrievals
    # differ by that approximation (float32 rounding, ~1e-6 here, is far below 1e-3)
    torch.testing.assert_close(pcl.retrieve(x, u), pcl.retrieve(y, u), atol=1e-3, rtol=0)


def test_infonce_exceeds_infoloob_and_loob_drops_the_positive():
    torch.manual_seed(5)
    a = torch.nn.functional.normalize(torch.randn(B, D), dim=-1)
    p = torch.nn.functional.normalize(torch.randn(B, D), dim=-1)
    assert contrastive(a, p, 0.1, "infonce") > contrastive(a, p, 0.1, "infoloob")
    logits = a @ p.T / 0.1
    i = 0
    manual = -(logits[i, i] - torch.logsumexp(torch.cat([logits[i, :i], logits[i, i + 1 :]]), 0))
    per_row = torch.stack(
        [
            -(logits[r, r] - torch.logsumexp(torch.cat([logits[r, :r], logits[r, r + 1 :]]), 0))
            for r in range(B)
        ]
    )
    assert per_row[0] == pytest.approx(manual.item())
    torch.testing.assert_close(contrastive(a, p, 0.1, "infoloob"), per_row.mean())


def test_registry_builds_losses(registry):
    prd = registry.get("loss", "prd").build({"tau": 0.5})
    assert prd.tau == 0.5
    pcl = registry.get("loss", "pcl").build({"objective": "infonce", "beta": 2.0}, dim=D)
    assert pcl.objective == "infonce" and pcl.beta == 2.0
    assert sum(p.numel() for p in pcl.parameters()) == 0  # CLOOB-style: no projections
