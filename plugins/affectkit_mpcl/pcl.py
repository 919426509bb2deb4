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

InfoNCE keeps j = i in the denominator. With ``block`` = b the batch is cut into near-equal
blocks of at most b samples and j runs over i's block only (the loss is the size-weighted
mean over blocks): a cap on the B² cost of large batches, the same loss for B ≤ b.

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


class PCLConfig(ComponentConfig):
    """CLOOB-style Hopfield retrieval from both banks + InfoLOOB/InfoNCE, symmetric."""

    objective: Objective = Field("infoloob", description="infoloob (CLOOB) or infonce")
    tau: float = Field(0.1, gt=0, description="temperature τ of the contrastive objective")
    beta: float | None = Field(
        None, gt=0, description="Hopfield β of the retrieval; null = 1/sqrt(d)"
    )
    memory: component("memory") = Field(  # type: ignore[valid-type]
        default_factory=lambda: {"name": "hopfield", "project": False},
        validate_default=True,
        description="associative memory that retrieves from the banks (CLOOB: no projections)",
    )
    block: int | None = Field(
        None,
        ge=2,
        description="contrast within blocks of at most this many samples of the (shuffled) "
        "batch: each anchor's negatives are the rest of its block, which caps the [B, B] cost "
        "of large batches; null = the whole batch (same loss for batches up to block)",
    )


def contrastive(
    anchor: torch.Tensor,
    positive: torch.Tensor,
    tau: float,
    objective: Objective,
    *,
    unit: bool = False,
) -> torch.Tensor:
    """Mean over i of −log(exp(a_i·p_i/τ) / Σ_j exp(a_i·p_j/τ)), j ≠ i for InfoLOOB.

    ``unit=True`` promises L2-normalised rows (as PCL's retrievals are), so every logit lies
    in [−1/τ, 1/τ]: the log-sum-exp is then shifted by the constant c = 1/τ instead of each
    row's maximum, log Σ_j exp(l_ij) = c + log Σ_j exp(l_ij − c), with no overflow and no
    underflow while exp(−2c) is a normal float32 (:class:`_UnitContrastive`).
    """
    if unit and 1.0 / tau <= _MAX_SHIFT:
        return _UnitContrastive.apply(anchor, positive, 1.0 / tau, objective == "infoloob")[0]
    # 1/τ applied to the [B, d] anchors, not to the [B, B] logits (B× fewer divisions)
    logits = (anchor / tau) @ positive.T  # [B, B]; diagonal = positive pairs
    pos = logits.diagonal()
    if objective == "infoloob":
        eye = torch.eye(logits.shape[0], dtype=torch.bool, device=logits.device)
        logits = logits.masked_fill(eye, float("-inf"))
    return (torch.logsumexp(logits, dim=-1) - pos).mean()


# Largest shift c = 1/τ of the bounded log-sum-exp: the smallest term, exp(−2c), must stay a
# normal float32 (exp(−80) ≈ 1.8e-35 > 1.2e-38), or a row of far negatives could sum to 0.
_MAX_SHIFT = 40.0


class _UnitContrastive(torch.autograd.Function):
    """InfoLOOB / InfoNCE of unit-norm rows with the constant shift c = 1/τ, in float32.

    With the shift known, the ``[B, B]`` terms E = exp(l − c) come out of one gemm (addmm
    adds −c) and one in-place exp; the positives leave the InfoLOOB sums by zeroing E's
    diagonal in place, and the backward is one scaling of E and the two gemms:
    ∂L/∂l_ij = g/B · (E_ij / S_i − δ_ij). Autograd through the same ops needed a mask, a
    subtraction, copies and a [B, B] pass per op in both directions. Computed in float32
    whatever the autocast (logits up to 1/τ, exponentiated). Outputs: the loss, then E and
    the row sums S (saved for the backward, not differentiable).
    """

    generate_vmap_rule = True  # fold-parallel training vmaps the loss

    @staticmethod
    def forward(anchor, positive, inv_tau, loob):  # type: ignore[override]
        with torch.autocast(anchor.device.type, enabled=False):
            a, p = anchor.float(), positive.float()
            terms = torch.addmm(a.new_full((), -inv_tau), a, p.T, alpha=inv_tau).exp_()
            if loob:
                terms.diagonal().zero_()
            sums = terms.sum(-1)
            pos = (a * p).sum(-1) * inv_tau  # the diagonal, without a [B, B] pass
            loss = (sums.log() + inv_tau - pos).mean()
        return loss.to(anchor.dtype), terms, sums

    @staticmethod
    def setup_context(ctx, inputs, output):  # type: ignore[override]
        anchor, positive, inv_tau, _ = inputs
        _, terms, sums = output
        ctx.mark_non_differentiable(terms, sums)
        ctx.set_materialize_grads(False)  # no [B, B] zeros for E's (never used) gradient
        ctx.save_for_backward(anchor, positive, terms, sums)
        ctx.inv_tau = inv_tau

    @staticmethod
    def backward(ctx, grad, *_):  # type: ignore[override]
        anchor, positive, terms, sums = ctx.saved_tensors
        if grad is None:
            return None, None, None, None
        with torch.autocast(anchor.device.type, enabled=False):
            scale = grad.float() * (ctx.inv_tau / terms.shape[-1])
            dlogits = terms * (scale / sums)[:, None]
            dlogits.diagonal().sub_(scale)
            d_anchor = dlogits @ positive.float()
            d_positive = dlogits.T @ anchor.float()
        return d_anchor.to(anchor.dtype), d_positive.to(positive.dtype), None, None


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
        block: int | None = None,
    ) -> None:
        super().__init__()
        self.memory, self.objective, self.tau, self.block = memory, objective, tau, block
        self.beta = beta if beta is not None else 1.0 / math.sqrt(dim)

    def retrieve(self, query: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
        """n(Hop_β(query, bank)): ``[B, d]`` from ``[K·P, d]`` (the batch is one query set);
        banks stacked ``[n, K·P, d]`` give ``[n, B, d]``, one retrieval per bank."""
        return F.normalize(self.memory(query, bank, beta=self.beta), dim=-1)

    def forward(
        self, x: torch.Tensor, y: torch.Tensor, u: torch.Tensor, v: torch.Tensor
    ) -> torch.Tensor:
        if x.shape[0] < 2:
            return x.sum() * 0.0  # no negatives in a batch of one
        # every retrieval in one call: the 2B queries [x; y] against the stacked banks [U, V]
        r = self.retrieve(torch.cat([x, y]), torch.stack([u, v]))  # [2, 2B, d]
        n = x.shape[0]
        u_x, u_y, v_x, v_y = r[0, :n], r[0, n:], r[1, :n], r[1, n:]
        # near-equal blocks (every one of at least 2 samples), each weighted by its size
        parts = math.ceil(n / self.block) if self.block else 1
        total = x.new_zeros(())
        for a_u, p_u, a_v, p_v in zip(
            *(t.tensor_split(parts) for t in (u_x, u_y, v_y, v_x)), strict=True
        ):
            loss = contrastive(a_u, p_u, self.tau, self.objective, unit=True)
            loss = loss + contrastive(a_v, p_v, self.tau, self.objective, unit=True)
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
    )
