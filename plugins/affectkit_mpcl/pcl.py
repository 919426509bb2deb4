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

Because a retrieval is a mixture of prototypes, the
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
) -> torch.Tensor:
    """Mean over i of −log(exp(a_i·p_i/τ) / Σ_j exp(a_i·p_j/τ)), j ≠ i for InfoLOOB.

    ``exclude`` (``[B, B]`` bool, optional) removes pairs (i, j ≠ i) from the sum over j;
    rows with no j left (nothing to contrast against) are left out of the mean.
    """
    # 1/τ applied to the [B, d] anchors, not to the [B, B] logits (B× fewer divisions)
    logits = (anchor / tau) @ positive.T  # [B, B]; diagonal = positive pairs
    pos = logits.diagonal()
    eye = torch.eye(logits.shape[0], dtype=torch.bool, device=logits.device)
    drop = eye if objective == "infoloob" else torch.zeros_like(eye)
    if exclude is not None:
        drop = drop | (exclude & ~eye)
    if exclude is None and objective == "infonce":
        return (torch.logsumexp(logits, dim=-1) - pos).mean()
    negatives = ~(drop | eye)
    kept = negatives.any(-1)  # rows with something to contrast against
    # an emptied row gets finite logits so that logsumexp (and its gradient) stays finite;
    # its term is then dropped
    logits = logits.masked_fill(drop & kept[:, None], float("-inf"))
    per_row = torch.logsumexp(logits, dim=-1) - pos
    return torch.where(kept, per_row, 0.0).sum() / kept.sum().clamp_min(1)


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
        negatives: Literal["other-labels", "all"] = "other-labels",
        same_label_tol: float = 1e-3,
    ) -> None:
        super().__init__()
        self.memory, self.objective, self.tau = memory, objective, tau
        self.negatives, self.same_label_tol = negatives, same_label_tol
        self.beta = beta if beta is not None else 1.0 / math.sqrt(dim)

    def retrieve(self, query: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
        """n(Hop_β(query, bank)): ``[B, d]`` from ``[K·P, d]`` (the batch is one query set)."""
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
        exclude = None
        if target is not None and self.negatives == "other-labels":
            exclude = same_label(target.to(x.dtype), self.same_label_tol)
        u_x, u_y = self.retrieve(x, u), self.retrieve(y, u)
        v_x, v_y = self.retrieve(x, v), self.retrieve(y, v)
        return contrastive(u_x, u_y, self.tau, self.objective, exclude) + contrastive(
            v_y, v_x, self.tau, self.objective, exclude
        )


def build_pcl(config: PCLConfig, *, dim: int) -> PCL:
    """Registry factory ``build(cfg, dim=d)``."""
    memory = get_registry().build("memory", config.memory, dim=dim)
    return PCL(
        memory=memory,
        dim=dim,
        objective=config.objective,
        tau=config.tau,
        beta=config.beta,
        negatives=config.negatives,
        same_label_tol=config.same_label_tol,
    )
