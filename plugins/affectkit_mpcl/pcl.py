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

InfoNCE keeps j = i in the denominator. Because a retrieval is a mixture of prototypes, the
pair (x_i, y_i) is pulled towards the same co-activation pattern of emotion prototypes in
both spaces: which emotions co-occur, not only which one dominates. The loss is invariant
under swapping (x, U) with (y, V).
"""

from __future__ import annotations

import functools
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
    underflow while exp(−2c) is a normal float32. The same value in fewer passes over the
    ``[B, B]`` logits than logsumexp's max / subtract / exp / sum (and its backward).
    """
    n = anchor.shape[-2]
    if unit and 1.0 / tau <= _MAX_SHIFT:
        c = 1.0 / tau
        # exp(l − c) straight out of one gemm: addmm adds −c, alpha applies 1/τ
        shifted = torch.addmm(anchor.new_full((), -c), anchor, positive.T, alpha=1.0 / tau)
        terms = shifted.exp()
        if objective == "infoloob":
            terms = terms.masked_fill(_eye(n, anchor.device), 0.0)
        pos = (anchor * positive).sum(-1) / tau  # the diagonal, without a [B, B] pass
        return (torch.log(terms.sum(-1)) + c - pos).mean()
    # 1/τ applied to the [B, d] anchors, not to the [B, B] logits (B× fewer divisions)
    logits = (anchor / tau) @ positive.T  # [B, B]; diagonal = positive pairs
    pos = logits.diagonal()
    if objective == "infoloob":
        logits = logits.masked_fill(_eye(n, logits.device), float("-inf"))
    return (torch.logsumexp(logits, dim=-1) - pos).mean()


# Largest shift c = 1/τ of the bounded log-sum-exp: the smallest term, exp(−2c), must stay a
# normal float32 (exp(−80) ≈ 1.8e-35 > 1.2e-38), or a row of far negatives could sum to 0.
_MAX_SHIFT = 40.0


@functools.cache
def _eye(n: int, device: torch.device) -> torch.Tensor:
    """``[n, n]`` boolean identity, made once per size and device (it is read-only)."""
    return torch.eye(n, dtype=torch.bool, device=device)


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
    ) -> None:
        super().__init__()
        self.memory, self.objective, self.tau = memory, objective, tau
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
        return contrastive(u_x, u_y, self.tau, self.objective, unit=True) + contrastive(
            v_y, v_x, self.tau, self.objective, unit=True
        )


def build_pcl(config: PCLConfig, *, dim: int) -> PCL:
    """Registry factory ``build(cfg, dim=d)``."""
    memory = get_registry().build("memory", config.memory, dim=dim)
    return PCL(memory=memory, dim=dim, objective=config.objective, tau=config.tau, beta=config.beta)
