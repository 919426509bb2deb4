"""PRD and PCL: zero/positivity, monotonicity, symmetry, InfoLOOB vs InfoNCE."""

from __future__ import annotations

import itertools

import pytest
import torch
from affectkit_mpcl.pcl import PCL, contrastive, same_label
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


def make_pcl(objective="infoloob", beta=1.0, negatives="other-labels"):
    from affectkit_mpcl.hopfield import HopfieldRetrieval

    return PCL(
        memory=HopfieldRetrieval(dim=D, project=False),
        dim=D,
        objective=objective,
        tau=0.1,
        beta=beta,
        negatives=negatives,
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


def test_same_label_pairs_windows_of_one_trial():
    t = torch.softmax(torch.randn(3, 5), -1)
    target = t[torch.tensor([0, 1, 0, 2, 1])]  # windows of trials 0, 1, 0, 2, 1
    target[2] += 1e-5  # rounding-level differences still count as the same label
    same = same_label(target, tol=1e-3)
    expected = torch.tensor([[a == b for b in [0, 1, 0, 2, 1]] for a in [0, 1, 0, 2, 1]])
    assert torch.equal(same, expected)


def test_contrastive_leaves_same_label_negatives_out():
    """Each row's sum over j skips the excluded pairs; a row left without any negative
    drops out of the mean, with finite gradients everywhere."""
    torch.manual_seed(6)
    a = torch.nn.functional.normalize(torch.randn(B, D), dim=-1).requires_grad_()
    p = torch.nn.functional.normalize(torch.randn(B, D), dim=-1)
    group = torch.tensor([0, 0, 0, 1, 1, 2, 3, 3])
    exclude = group[:, None] == group[None, :]
    logits = a.detach() @ p.T / 0.1
    for objective in ("infoloob", "infonce"):
        rows = []
        for r in range(B):
            keep = [
                j for j in range(B) if group[j] != group[r] or (j == r and objective == "infonce")
            ]
            rows.append(torch.logsumexp(logits[r, keep], 0) - logits[r, r])
        torch.testing.assert_close(
            contrastive(a.detach(), p, 0.1, objective, exclude), torch.stack(rows).mean()
        )
    # with every sample of one label nothing is left to contrast: zero loss, zero gradient
    alone = torch.ones(B, B, dtype=torch.bool)
    loss = contrastive(a, p, 0.1, "infoloob", alone)
    loss.backward()
    assert loss == 0 and torch.isfinite(a.grad).all() and a.grad.abs().max() == 0


@pytest.mark.parametrize("objective", ["infoloob", "infonce"])
def test_bounded_contrastive_with_exclusions_equals_autograd(objective):
    """The shifted log-sum-exp (unit rows) with its hand-written backward gives the
    autograd formula's loss and gradients when pairs are excluded, an emptied row included."""
    torch.manual_seed(8)
    a0 = torch.nn.functional.normalize(torch.randn(B, D), dim=-1)
    p0 = torch.nn.functional.normalize(torch.randn(B, D), dim=-1)
    group = torch.tensor([0, 0, 0, 1, 1, 2, 3, 3])
    exclude = group[:, None] == group[None, :]
    exclude[5, :] = True  # row 5 loses every negative
    out = []
    for unit in (True, False):
        a, p = a0.clone().requires_grad_(), p0.clone().requires_grad_()
        loss = contrastive(a, p, 0.1, objective, exclude, unit=unit)
        loss.backward()
        out.append((loss.detach(), a.grad, p.grad))
    for fast, plain in zip(out[0], out[1], strict=True):
        torch.testing.assert_close(fast, plain)


def test_pcl_with_distinct_targets_equals_the_paper_form():
    """other-labels changes nothing when every target differs, and only the same-label
    pairs when some repeat."""
    torch.manual_seed(7)
    x, y = torch.randn(B, D), torch.randn(B, D)
    u, v = torch.randn(N, D), torch.randn(N, D)
    distinct = torch.softmax(torch.randn(B, 5), -1)
    masked, paper = make_pcl(), make_pcl(negatives="all")
    torch.testing.assert_close(masked(x, y, u, v, target=distinct), paper(x, y, u, v))
    torch.testing.assert_close(paper(x, y, u, v, target=distinct), paper(x, y, u, v))
    repeated = distinct[torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])]
    assert not torch.isclose(masked(x, y, u, v, target=repeated), paper(x, y, u, v))


def test_registry_builds_losses(registry):
    prd = registry.get("loss", "prd").build({"tau": 0.5})
    assert prd.tau == 0.5
    pcl = registry.get("loss", "pcl").build({"objective": "infonce", "beta": 2.0}, dim=D)
    assert pcl.objective == "infonce" and pcl.beta == 2.0
    assert sum(p.numel() for p in pcl.parameters()) == 0  # CLOOB-style: no projections


def loob_reference(a, p, tau, objective):
    """The straightforward formula: per-row logsumexp over the masked [B, B] logits."""
    logits = a @ p.T / tau
    if objective == "infoloob":
        logits = logits.masked_fill(torch.eye(len(a), dtype=torch.bool), float("-inf"))
    return (torch.logsumexp(logits, -1) - (a * p).sum(-1) / tau).mean()


def value_and_grads(fn, *inputs):
    leaves = [t.detach().clone().requires_grad_() for t in inputs]
    out = fn(*leaves)
    return out.detach(), torch.autograd.grad(out, leaves)


@pytest.mark.parametrize("objective", ["infoloob", "infonce"])
@pytest.mark.parametrize("tau", [0.1, 0.05, 0.01])  # 0.01: beyond the shift bound, fallback
def test_bounded_contrastive_equals_logsumexp_formula(objective, tau):
    """unit=True shifts by 1/τ instead of the row maximum: same loss, same gradients. Half
    the rows have their positive almost equal to the anchor, so the diagonal dominates its
    row (removing it by subtraction instead of masking would lose those rows' negatives)."""
    torch.manual_seed(7)
    n = 64
    a = torch.nn.functional.normalize(torch.randn(n, D), dim=-1)
    p = torch.nn.functional.normalize(torch.randn(n, D), dim=-1)
    p[: n // 2] = torch.nn.functional.normalize(a[: n // 2] + 1e-3 * torch.randn(n // 2, D), dim=-1)
    got, got_grads = value_and_grads(
        lambda a, p: contrastive(a, p, tau, objective, unit=True), a, p
    )
    want, want_grads = value_and_grads(lambda a, p: loob_reference(a, p, tau, objective), a, p)
    torch.testing.assert_close(got, want)
    for g, w in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(g, w)


def test_bounded_contrastive_falls_back_where_the_shift_would_underflow():
    """τ = 0.01 with every negative opposite its anchor: exp(l − 1/τ) = exp(−200) is 0 in
    float32, so the shifted sum would be log 0; the row-max logsumexp keeps it finite."""
    a = torch.nn.functional.normalize(torch.ones(4, D), dim=-1).clone()
    a[1::2] *= -1  # rows alternate ±v: the positive p_i = a_i, half the negatives = −a_i
    loss = contrastive(a, a.clone(), 0.01, "infoloob", unit=True)
    assert torch.isfinite(loss)
    torch.testing.assert_close(loss, loob_reference(a, a, 0.01, "infoloob"))


@pytest.mark.parametrize("project", [False, True])
def test_pcl_one_retrieval_call_equals_four(project):
    """PCL retrieves [x; y] from the stacked banks [U, V] in one call; the loss and every
    gradient must equal four separate retrievals and the plain InfoLOOB formula."""
    from affectkit_mpcl.hopfield import HopfieldRetrieval

    torch.manual_seed(8)
    pcl = PCL(memory=HopfieldRetrieval(dim=D, project=project), dim=D, tau=0.1)
    params = list(pcl.parameters())
    x, y, u, v = torch.randn(B, D), torch.randn(B, D), torch.randn(N, D), torch.randn(N, D)

    def four(x, y, u, v):
        u_x, u_y, v_x, v_y = (pcl.retrieve(q, bank) for bank in (u, v) for q in (x, y))
        return loob_reference(u_x, u_y, 0.1, "infoloob") + loob_reference(v_y, v_x, 0.1, "infoloob")

    got, got_grads = value_and_grads(lambda *t: pcl(*t), x, y, u, v)
    got_p = torch.autograd.grad(pcl(x, y, u, v), params) if project else ()
    want, want_grads = value_and_grads(four, x, y, u, v)
    want_p = torch.autograd.grad(four(x, y, u, v), params) if project else ()
    torch.testing.assert_close(got, want)
    for g, w in zip([*got_grads, *got_p], [*want_grads, *want_p], strict=True):
        torch.testing.assert_close(g, w)


def test_pcl_under_vmap_equals_per_fold():
    """Fold-parallel training vmaps the loss over stacked folds and back-propagates the sum
    (affectkit.parallel): values and gradients must be each fold's own."""
    torch.manual_seed(9)
    pcl = make_pcl()
    folds = 3
    inputs = [torch.randn(folds, B, D), torch.randn(folds, B, D)]
    inputs += [torch.randn(folds, N, D), torch.randn(folds, N, D)]
    batched, batched_grads = value_and_grads(lambda *t: torch.func.vmap(pcl)(*t).sum(), *inputs)
    per_fold, per_fold_grads = value_and_grads(
        lambda *t: sum(pcl(*f) for f in zip(*t, strict=True)), *inputs
    )
    torch.testing.assert_close(batched, per_fold)
    for g, w in zip(batched_grads, per_fold_grads, strict=True):
        torch.testing.assert_close(g, w)


def test_bounded_contrastive_ignores_autocast():
    """Under bf16 autocast (amp on CUDA, train.amp=bf16) the [B, B] logits of up to 1/τ are
    still computed and exponentiated in float32: the loss is the float32 one."""
    torch.manual_seed(10)
    a = torch.nn.functional.normalize(torch.randn(B, D), dim=-1)
    p = torch.nn.functional.normalize(torch.randn(B, D), dim=-1)
    want = contrastive(a, p, 0.1, "infoloob", unit=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = contrastive(a, p, 0.1, "infoloob", unit=True)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_pcl_blocks_are_the_size_weighted_mean_of_per_block_losses():
    """block=b cuts the batch into near-equal blocks of at most b (10 -> 4, 3, 3) whose
    InfoLOOB only contrasts within the block; a batch of at most b is one block."""
    torch.manual_seed(11)
    x, y, u, v = torch.randn(10, D), torch.randn(10, D), torch.randn(N, D), torch.randn(N, D)
    whole, blocked = make_pcl(), make_pcl()
    blocked.block = 4
    per_block = [whole(x[i:j], y[i:j], u, v) * (j - i) / 10 for i, j in ((0, 4), (4, 7), (7, 10))]
    torch.testing.assert_close(blocked(x, y, u, v), sum(per_block))
    blocked.block = 10
    torch.testing.assert_close(blocked(x, y, u, v), whole(x, y, u, v), rtol=0, atol=0)


def test_pcl_default_block_keeps_the_whole_batch_loss_for_mpcl_training_batches():
    """The default block caps the B² work of large (benchmark, inference-size) batches only:
    mpcl's own training batch must still be one block, i.e. the paper's whole-batch loss."""
    from affectkit_mpcl.method import MPCL
    from affectkit_mpcl.pcl import PCLConfig

    block = PCLConfig(name="pcl").block
    assert block is not None and block >= MPCL.train_defaults["batch_size"]
    torch.manual_seed(0)
    n = MPCL.train_defaults["batch_size"]
    x, y, u, v = torch.randn(n, D), torch.randn(n, D), torch.randn(6, D), torch.randn(6, D)
    blocked, whole = make_pcl(), make_pcl()
    blocked.block, whole.block = block, None
    torch.testing.assert_close(blocked(x, y, u, v), whole(x, y, u, v), rtol=0, atol=0)
