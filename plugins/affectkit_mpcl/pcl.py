"""PCL, Prototypical Co-occurrence Learning (``loss`` "pcl"), CLOOB-style.

Physiological embeddings x ``[B, d]`` and behavioral embeddings y ``[B, d]`` retrieve from
the physiological prototype bank U and the behavioral bank V ``[K·P, d]`` through a modern
Hopfield memory (β)::

    U_x = n(Hop_β(x, U)),  U_y = n(Hop_β(y, U)),  V_x = n(Hop_β(x, V)),  V_y = n(Hop_β(y, V))

with n(·) the L2 normalisation. In U the anchor is U_{x_i}, the positive U_{y_i} (retrieved
by the matching behavioral query), the negatives U_{y_j}, j ≠ i; in V the anchor is V_{y_i},
the positive V_{x_i}, the negatives V_{x_j}. With InfoLOOB (leave-one-out bound, CLOOB)::

    L_U = −1/B Σ_i [ U_{x_i}·U_{y_i}/τ − log Σ_{j≠i} exp(U_{x_i}·U_{y_j}/τ) ]
    L_V = −1/B Σ_i [ V_{y_i}·V_{x_i}/τ − log Σ_{j≠i} exp(V_{y_i}·V_{x_j}/τ) ]
    PCL = L_U + L_V

InfoNCE keeps j = i in the denominator.

**Same-label negatives** (``negatives: "other-labels"``, the default; affectkit's reading).
Emotion labels are given per trial (a questionnaire per stimulus or condition), so every
window of a trial carries the same target, and a batch holds many windows of one trial
(a WESAD subject's whole training split is one batch). Treating those windows as negatives
pushes apart samples that the grounding and KL terms pull together: with a few dozen
distinct targets, most of a row's negatives can be such false negatives. With
``other-labels`` the sum over j leaves out every j whose target equals the anchor's (L2
distance below ``same_label_tol``); a row left without negatives contributes nothing.
``all`` keeps the paper's batch-wide negatives. Measured in docs/mpcl.md.

With ``block`` = b the batch is cut into near-equal blocks of at most b samples and j runs
over i's block only (the loss is the size-weighted mean over blocks): a cap on the B² cost
of large batches, the same loss for B ≤ b.

Because a retrieval is a mixture of prototypes, the pair (x_i, y_i) is pulled towards the
same co-activation pattern of emotion prototypes in both spaces: which emotions co-occur,
not only which one dominates. The loss is invariant under swapping (x, U) with (y, V).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from affectkit import ComponentConfig, Loss, component, get_registry

Objective = Literal["infoloob", "infonce"]


#: mpcl's training batch: the default training loss is the whole-batch loss, and a batch of
#: 1024 (inference-size batches, benchmarks) costs 4 blocks, not 16x the B² work
DEFAULT_BLOCK = 256


class PCLConfig(ComponentConfig):
    """CLOOB-style Hopfield retrieval from both banks + InfoLOOB/InfoNCE, symmetric."""

    objective: Objective = Field("infoloob", description="infoloob (CLOOB) or infonce")
    tau: float = Field(0.1, gt=0, description="temperature τ of the contrastive objective")
    beta: float | None = Field(
        None, gt=0, description="Hopfield β of the retrieval; null = 1/sqrt(d)"
    )
    negatives: Literal["other-labels", "all"] = Field(
        "other-labels",
        description="other-labels: samples with the anchor's own target are not negatives "
        "(windows of one trial share their label); all: every other sample in the batch",
    )
    same_label_tol: float = Field(
        1e-3, ge=0, description="targets closer than this (L2) count as the same label"
    )
    memory: component("memory") = Field(  # type: ignore[valid-type]
        default_factory=lambda: {"name": "hopfield", "project": False},
        validate_default=True,
        description="associative memory that retrieves from the banks (CLOOB: no projections)",
    )
    block: int | None = Field(
        DEFAULT_BLOCK,
        ge=2,
        description="contrast within blocks of at most this many samples of the (shuffled) "
        "batch: each anchor's negatives are the rest of its block, which caps the [B, B] cost "
        "of large batches; null = the whole batch (same loss for batches up to block)",
    )


def same_label(target: torch.Tensor, tol: float) -> torch.Tensor:
    """``[B, B]`` bool: pairs whose targets ``[B, K]`` lie within ``tol`` (L2) of each other.

    Squared distances from one ``[B, K] × [K, B]`` product (no ``[B, B, K]`` difference
    tensor; vmap-friendly); the diagonal is always True."""
    sq = target.square().sum(-1)
    dist2 = sq[:, None] + sq[None, :] - 2 * target @ target.T
    eye = torch.eye(target.shape[0], dtype=torch.bool, device=target.device)
    return (dist2 <= tol * tol) | eye


def contrastive(
    anchor: torch.Tensor,
    positive: torch.Tensor,
    tau: float,
    objective: Objective,
    exclude: torch.Tensor | None = None,
    *,
    unit: bool = False,
) -> torch.Tensor:
    """Mean over i of −log(exp(a_i·p_i/τ) / Σ_j exp(a_i·p_j/τ)), j ≠ i for InfoLOOB.

    ``exclude`` (``[B, B]`` bool, optional) removes pairs (i, j ≠ i) from the sum over j;
    rows with no j left (nothing to contrast against) are left out of the mean.

    ``unit=True`` promises L2-normalised rows (as PCL's retrievals are), so every logit lies
    in [−1/τ, 1/τ]: the log-sum-exp is then shifted by the constant c = 1/τ instead of each
    row's maximum, log Σ_j exp(l_ij) = c + log Σ_j exp(l_ij − c), with no overflow and no
    underflow while exp(−2c) is a normal float32 (:class:`_UnitContrastive`).
    """
    bounded = unit and 1.0 / tau <= _MAX_SHIFT
    loob = objective == "infoloob"
    if bounded and exclude is None:  # no [B, B] mask: the diagonal is zeroed in place there
        return _UnitContrastive.apply(anchor, positive, 1.0 / tau, loob, None)[0]
    eye = torch.eye(anchor.shape[0], dtype=torch.bool, device=anchor.device)
    off = None if exclude is None else exclude & ~eye  # the diagonal is the positive
    if bounded:
        return _UnitContrastive.apply(anchor, positive, 1.0 / tau, loob, off)[0]
    # 1/τ applied to the [B, d] anchors, not to the [B, B] logits (B× fewer divisions)
    logits = (anchor / tau) @ positive.T  # [B, B]; diagonal = positive pairs
    pos = logits.diagonal()
    if off is None:
        if loob:
            logits = logits.masked_fill(eye, float("-inf"))
        return (torch.logsumexp(logits, dim=-1) - pos).mean()
    drop = off | eye if loob else off
    kept = (~(drop | eye)).any(-1) | (not loob)  # rows with a term left
    # an emptied row gets finite logits so that logsumexp (and its gradient) stays finite;
    # its term is then dropped
    logits = logits.masked_fill(drop & kept[:, None], float("-inf"))
    per_row = torch.logsumexp(logits, dim=-1) - pos
    return torch.where(kept, per_row, 0.0).sum() / kept.sum().clamp_min(1)


# Largest shift c = 1/τ of the bounded log-sum-exp: the smallest term, exp(−2c), must stay a
# normal float32 (exp(−80) ≈ 1.8e-35 > 1.2e-38), or a row of far negatives could sum to 0.
_MAX_SHIFT = 40.0


class _UnitContrastive(torch.autograd.Function):
    """InfoLOOB / InfoNCE of unit-norm rows with the constant shift c = 1/τ, in float32.

    With the shift known, the ``[B, B]`` terms E = exp(l − c) come out of one gemm (addmm
    adds −c) and one in-place exp; the positives (InfoLOOB) and the excluded pairs leave the
    sums by zeroing their entries of E in place, and the backward is one scaling of E and the
    two gemms: ∂L/∂l_ij = g/B' · (E_ij / S_i − δ_ij) over the B' rows that kept a term (every
    kept entry of E is at least exp(−2c) > 0, so a row kept a term iff S_i > 0). Autograd
    through the same ops needed a mask, a subtraction, copies and a [B, B] pass per op in
    both directions. Computed in float32 whatever the autocast (logits up to 1/τ,
    exponentiated). Outputs: the loss, then E and the row sums S (saved for the backward,
    not differentiable).
    """

    generate_vmap_rule = True  # fold-parallel training vmaps the loss

    @staticmethod
    def forward(anchor, positive, inv_tau, loob, exclude):  # type: ignore[override]
        with torch.autocast(anchor.device.type, enabled=False):
            a, p = anchor.float(), positive.float()
            terms = torch.addmm(a.new_full((), -inv_tau), a, p.T, alpha=inv_tau).exp_()
            if loob:
                terms.diagonal().zero_()
            if exclude is not None:
                terms.masked_fill_(exclude, 0.0)
            sums = terms.sum(-1)
            pos = (a * p).sum(-1) * inv_tau  # the diagonal, without a [B, B] pass
            kept = sums > 0
            per_row = sums.clamp_min(torch.finfo(sums.dtype).tiny).log() + inv_tau - pos
            loss = torch.where(kept, per_row, 0.0).sum() / kept.sum().clamp_min(1)
        return loss.to(anchor.dtype), terms, sums

    @staticmethod
    def setup_context(ctx, inputs, output):  # type: ignore[override]
        anchor, positive, inv_tau, _, _ = inputs
        _, terms, sums = output
        ctx.mark_non_differentiable(terms, sums)
        ctx.set_materialize_grads(False)  # no [B, B] zeros for E's (never used) gradient
        ctx.save_for_backward(anchor, positive, terms, sums)
        ctx.inv_tau = inv_tau

    @staticmethod
    def backward(ctx, grad, *_):  # type: ignore[override]
        anchor, positive, terms, sums = ctx.saved_tensors
        if grad is None:
            return None, None, None, None, None
        with torch.autocast(anchor.device.type, enabled=False):
            kept = sums > 0
            scale = grad.float() * ctx.inv_tau / kept.sum().clamp_min(1) * kept
            dlogits = terms * (scale / sums.clamp_min(torch.finfo(sums.dtype).tiny))[:, None]
            dlogits.diagonal().sub_(scale)
            d_anchor = dlogits @ positive.float()
            d_positive = dlogits.T @ anchor.float()
        return d_anchor.to(anchor.dtype), d_positive.to(positive.dtype), None, None, None


class PCL(Loss):
    """L_U(anchor U_x, positive U_y) + L_V(anchor V_y, positive V_x)."""

    def __init__(
        self,
        *,
        memory: torch.nn.Module,
        dim: int,
        objective: Objective = "infoloob",
        tau: float = 0.1,
        beta: float | None = None,
        block: int | None = DEFAULT_BLOCK,
        negatives: Literal["other-labels", "all"] = "other-labels",
        same_label_tol: float = 1e-3,
    ) -> None:
        super().__init__()
        self.memory, self.objective, self.tau, self.block = memory, objective, tau, block
        self.negatives, self.same_label_tol = negatives, same_label_tol
        self.beta = beta if beta is not None else 1.0 / math.sqrt(dim)

    def retrieve(self, query: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
        """n(Hop_β(query, bank)): ``[B, d]`` from ``[K·P, d]`` (the batch is one query set);
        banks stacked ``[n, K·P, d]`` give ``[n, B, d]``, one retrieval per bank."""
        return F.normalize(self.memory(query, bank, beta=self.beta), dim=-1)

    def forward(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        u: torch.Tensor,
        v: torch.Tensor,
        target: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``target`` ``[B, K]`` (the batch's label distributions) enables ``other-labels``
        negatives; without it every other sample is a negative."""
        if x.shape[0] < 2:
            return x.sum() * 0.0  # no negatives in a batch of one
        # every retrieval in one call: the 2B queries [x; y] against the stacked banks [U, V]
        r = self.retrieve(torch.cat([x, y]), torch.stack([u, v]))  # [2, 2B, d]
        n = x.shape[0]
        u_x, u_y, v_x, v_y = r[0, :n], r[0, n:], r[1, :n], r[1, n:]
        # near-equal blocks (every one of at least 2 samples), each weighted by its size
        parts = math.ceil(n / self.block) if self.block else 1
        labels = None
        if target is not None and self.negatives == "other-labels":
            labels = target.to(x.dtype).tensor_split(parts)
        total = x.new_zeros(())
        for b, (a_u, p_u, a_v, p_v) in enumerate(
            zip(*(t.tensor_split(parts) for t in (u_x, u_y, v_y, v_x)), strict=True)
        ):
            exclude = None if labels is None else same_label(labels[b], self.same_label_tol)
            loss = contrastive(a_u, p_u, self.tau, self.objective, exclude, unit=True)
            loss = loss + contrastive(a_v, p_v, self.tau, self.objective, exclude, unit=True)
            total = total + loss * (len(a_u) / n)
        return total


def build_pcl(config: PCLConfig, *, dim: int) -> PCL:
    """Registry factory ``build(cfg, dim=d)``."""
    memory = get_registry().build("memory", config.memory, dim=dim)
    return PCL(
        memory=memory,
        dim=dim,
        objective=config.objective,
        tau=config.tau,
        beta=config.beta,
        block=config.block,
        negatives=config.negatives,
        same_label_tol=config.same_label_tol,
    )
