"""PRD, Prototype Relation Distillation (``loss`` "prd").

Aligns the physiological and behavioral prototype spaces. Inputs: each modality's
sample->prototype similarities s_x, s_y ``[B, K·P]`` (from its own bank) and the two banks
U, V ``[K·P, d]``::

    p_x = softmax(s_x / τ),  p_y = softmax(s_y / τ)
    L_rel    = ½ (KL(p_x ‖ p_y) + KL(p_y ‖ p_x))            relation distillation
    C_U      = cos(U, U),  C_V = cos(V, V)                   [K·P, K·P]
    L_struct = mean((C_U − C_V)²)                            prototype-structure matching
    PRD      = w_rel · L_rel + w_struct · L_struct

Both terms are symmetric in the two modalities and zero exactly when the relations (and the
prototype geometries) agree. ``teacher`` turns the symmetric KL into one-way distillation:
the teacher side's relations are detached and only KL(p_teacher ‖ p_student) remains.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from affectkit import ComponentConfig, Loss

Teacher = Literal["none", "physiological", "behavioral"]


class PRDConfig(ComponentConfig):
    """Symmetric KL of sample->prototype relations across modalities + structure matching."""

    tau: float = Field(0.1, gt=0, description="temperature τ of the relation distributions")
    relation_weight: float = Field(1.0, ge=0, description="w_rel")
    structure_weight: float = Field(1.0, ge=0, description="w_struct")
    teacher: Teacher = Field(
        "none", description="none = symmetric KL; otherwise one-way distillation from that side"
    )


def _kl(p_log: torch.Tensor, q_log: torch.Tensor) -> torch.Tensor:
    """KL(p ‖ q) from log-probabilities, averaged over the batch."""
    return (p_log.exp() * (p_log - q_log)).sum(-1).mean()


class PRD(Loss):
    """w_rel · ½(KL(p_x‖p_y) + KL(p_y‖p_x)) + w_struct · mean((cos(U,U) − cos(V,V))²)."""

    def __init__(
        self,
        *,
        tau: float = 0.1,
        relation_weight: float = 1.0,
        structure_weight: float = 1.0,
        teacher: Teacher = "none",
    ) -> None:
        super().__init__()
        self.tau, self.w_rel, self.w_struct, self.teacher = (
            tau,
            relation_weight,
            structure_weight,
            teacher,
        )

    def relation(self, s_x: torch.Tensor, s_y: torch.Tensor) -> torch.Tensor:
        lx, ly = F.log_softmax(s_x / self.tau, -1), F.log_softmax(s_y / self.tau, -1)
        if self.teacher == "physiological":
            return _kl(lx.detach(), ly)
        if self.teacher == "behavioral":
            return _kl(ly.detach(), lx)
        return 0.5 * (_kl(lx, ly) + _kl(ly, lx))

    @staticmethod
    def structure(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        cu = F.normalize(u, dim=-1) @ F.normalize(u, dim=-1).T
        cv = F.normalize(v, dim=-1) @ F.normalize(v, dim=-1).T
        return (cu - cv).pow(2).mean()

    def forward(
        self, s_x: torch.Tensor, s_y: torch.Tensor, u: torch.Tensor, v: torch.Tensor
    ) -> torch.Tensor:
        """Scalar PRD from similarities ``s_x, s_y [B, K·P]`` and banks ``u, v [K·P, d]``."""
        return self.w_rel * self.relation(s_x, s_y) + self.w_struct * self.structure(u, v)


def build_prd(config: PRDConfig, **_: object) -> PRD:
    """Registry factory ``build(cfg)`` (runtime keywords such as ``dim`` are ignored)."""
    return PRD(
        tau=config.tau,
        relation_weight=config.relation_weight,
        structure_weight=config.structure_weight,
        teacher=config.teacher,
    )
