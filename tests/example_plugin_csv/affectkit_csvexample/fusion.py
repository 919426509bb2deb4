"""``gated-mean`` fusion.

Each auxiliary modality m is summarised by the mean of its tokens, projected (W_v,m), and
added to every primary token through a per-token, per-channel gate computed from that
token (W_g,m)::

    s_m = mean_t(A_m) W_v,m                      [B, 1, d]
    out = LN(P + dropout(mean_m σ(P W_g,m + b_g,m) ⊙ s_m))     [B, T, d]

The auxiliary names given at build time (``auxiliary=[...]``, the fusion contract) give
each modality its own W_v and W_g; with no auxiliary modality the fusion is the identity.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from pydantic import Field
from torch import nn

from affectkit import ComponentConfig, Dropout, Fusion


class GatedMeanConfig(ComponentConfig):
    """Primary tokens plus a gated summary of each auxiliary modality."""

    dropout: float = Field(0.1, ge=0, lt=1, description="dropout on the fused residual")


class GatedMean(Fusion):
    """out = LN(P + mean_m σ(P W_g,m) ⊙ mean_t(A_m) W_v,m)."""

    def __init__(self, *, dim: int, auxiliary: Sequence[str], dropout: float = 0.1) -> None:
        super().__init__()
        self.auxiliary = list(auxiliary)
        self.gate = nn.ModuleDict({m: nn.Linear(dim, dim) for m in self.auxiliary})
        self.value = nn.ModuleDict({m: nn.Linear(dim, dim) for m in self.auxiliary})
        self.drop = Dropout(dropout)
        self.norm = nn.LayerNorm(dim)

    def forward(self, primary: torch.Tensor, auxiliary: dict[str, torch.Tensor]) -> torch.Tensor:
        unknown = [m for m in auxiliary if m not in self.value]
        if unknown:
            raise ValueError(
                f"gated-mean was built for auxiliary modalities {self.auxiliary}, got {unknown}"
            )
        if not auxiliary:
            return primary
        parts = [
            torch.sigmoid(self.gate[m](primary)) * self.value[m](a.mean(dim=1, keepdim=True))
            for m, a in auxiliary.items()
        ]
        return self.norm(primary + self.drop(torch.stack(parts).mean(0)))


def build_gated_mean(
    config: GatedMeanConfig, *, dim: int, auxiliary: Sequence[str] = ()
) -> GatedMean:
    """Registry factory ``build(cfg, dim=d, auxiliary=[names])``."""
    return GatedMean(dim=dim, auxiliary=auxiliary, dropout=config.dropout)
