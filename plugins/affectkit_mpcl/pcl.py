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
    anchor: torch.Tensor, positive: torch.Tensor, tau: float, objective: Objective
) -> torch.Tensor:
    """Mean over i of −log(exp(a_i·p_i/τ) / Σ_j exp(a_i·p_j/τ)), j ≠ i for InfoLOOB."""
    # 1/τ applied to the [B, d] anchors, not to the [B, B] logits (B× fewer divisions)
    logits = (anchor / tau) @ positive.T  # [B, B]; diagonal = positive pairs
    pos = logits.diagonal()
    if objective == "infoloob":
        eye = torch.eye(logits.shape[0], dtype=torch.bool, device=logits.device)
        logits = logits.masked_fill(eye, float("-inf"))
    return (torch.logsumexp(logits, dim=-1) - pos).mean()


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
        """n(Hop_β(query, bank)): ``[B, d]`` from ``[K·P, d]`` (the batch is one query set)."""
        return F.normalize(self.memory(query, bank, beta=self.beta), dim=-1)

    def forward(
        self, x: torch.Tensor, y: torch.Tensor, u: torch.Tensor, v: torch.Tensor
    ) -> torch.Tensor:
        if x.shape[0] < 2:
            return x.sum() * 0.0  # no negatives in a batch of one
        u_x, u_y = self.retrieve(x, u), self.retrieve(y, u)
        v_x, v_y = self.retrieve(x, v), self.retrieve(y, v)
        return contrastive(u_x, u_y, self.tau, self.objective) + contrastive(
            v_y, v_x, self.tau, self.objective
        )


def build_pcl(config: PCLConfig, *, dim: int) -> PCL:
    """Registry factory ``build(cfg, dim=d)``."""
    memory = get_registry().build("memory", config.memory, dim=dim)
    return PCL(memory=memory, dim=dim, objective=config.objective, tau=config.tau, beta=config.beta)
