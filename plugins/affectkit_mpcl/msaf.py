"""MSAF, Multi-Scale Associative Fusion (``fusion`` "msaf").

The primary modality's tokens P ``[B, T, d]`` (EEG channels on DMER) are Hopfield state
patterns; each auxiliary modality m's tokens A_m ``[B, T_m, d]`` are stored patterns. For
each scale s ∈ {low, mid, high}::

    R_{m,s} = Hopfield_{β_s}(P, A_m)                       [B, T, d]
    g_m     = softmax(P W_g,m + b_g,m)  over s              [B, T, 3]   (per token)
    R_m     = Σ_s g_{m,s} ⊙ R_{m,s}
    out     = LayerNorm(P + dropout(mean_m R_m))

β_s = scale_s / sqrt(d_head) with scales (0.25, 1, 4) by default: β_low averages over many
auxiliary tokens (coarse context), β_high retrieves the single best-matching token (fine
detail). The gate lets every primary token choose its granularity.

Auxiliary modalities are named at build time (``auxiliary=[...]``) so that each gets its own
gate; the Hopfield projections are shared (every modality's encoder already maps into the
common space); built without names, one gate is shared by every auxiliary. A declared
auxiliary absent from a batch is skipped; with no auxiliary at all the fusion returns the
primary tokens unchanged (identity).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from pydantic import Field
from torch import nn

from affectkit import ComponentConfig, Dropout, Fusion, component, get_registry

_SHARED = "_shared"


class MSAFConfig(ComponentConfig):
    """Multi-scale associative fusion of auxiliary modalities into the primary's tokens."""

    scales: list[float] = Field(
        default_factory=lambda: [0.25, 1.0, 4.0],
        min_length=1,
        description="β_low, β_mid, β_high as multiples of 1/sqrt(head dim)",
    )
    memory: component("memory") = Field(  # type: ignore[valid-type]
        default_factory=lambda: {"name": "hopfield"},
        validate_default=True,
        description="associative memory used for each retrieval (must accept a list of β)",
    )
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout on the fused residual")


class MSAF(Fusion):
    """out = LN(P + mean_m Σ_s softmax(P W_g,m)_s · Hopfield_{β_s}(P, A_m))."""

    def __init__(
        self,
        *,
        dim: int,
        auxiliary: Sequence[str] = (),
        scales: Sequence[float] = (0.25, 1.0, 4.0),
        memory: nn.Module | None = None,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.memory = memory if memory is not None else _default_memory(dim)
        head_dim = dim // int(getattr(self.memory, "heads", 1))
        self.betas = [float(s) / math.sqrt(head_dim) for s in scales]
        self.auxiliary = list(auxiliary)
        # one gate per declared auxiliary; undeclared (generic use): one gate shared by all
        names = self.auxiliary or [_SHARED]
        self.gates = nn.ModuleDict({m: nn.Linear(dim, len(self.betas)) for m in names})
        self.drop = Dropout(dropout)
        self.norm = nn.LayerNorm(dim)

    def forward(self, primary: torch.Tensor, auxiliary: dict[str, torch.Tensor]) -> torch.Tensor:
        present = [m for m in auxiliary if auxiliary[m] is not None]
        if not present:
            return primary
        gates = [self._gate(m) for m in present]
        # every modality's gate in one [B·T, d] × [d, M·n] matmul; the softmax over the n
        # scales taken on a [B, M, n, T] layout: over a last axis of 3 the CPU kernel barely
        # vectorises (same numbers, several times faster)
        weight = torch.cat([g.weight for g in gates]) if len(gates) > 1 else gates[0].weight
        bias = torch.cat([g.bias for g in gates]) if len(gates) > 1 else gates[0].bias
        logits = F.linear(primary, weight, bias)  # [B, T, M·n]
        logits = rearrange(logits, "b t (m n) -> b m n t", m=len(present)).contiguous()
        gate = rearrange(torch.softmax(logits, dim=2), "b m n t -> m b t n")
        stored = [auxiliary[m] for m in present]
        if hasattr(self.memory, "mean_mixture"):  # one folded call (HopfieldRetrieval)
            fused = self.memory.mean_mixture(primary, stored, beta=self.betas, mix=gate.unbind(0))
        else:
            pairs = zip(stored, gate, strict=True)
            fused = torch.stack([self.memory(primary, y, beta=self.betas, mix=g) for y, g in pairs])
            fused = fused.mean(0)
        return self.norm(primary + self.drop(fused))

    def _gate(self, modality: str) -> nn.Module:
        if not self.auxiliary:
            return self.gates[_SHARED]
        if modality not in self.gates:
            raise KeyError(
                f"MSAF was built for auxiliary modalities {self.auxiliary}, got {modality!r}"
            )
        return self.gates[modality]


def _default_memory(dim: int) -> nn.Module:
    from .hopfield import HopfieldRetrieval

    return HopfieldRetrieval(dim=dim)


def build_msaf(config: MSAFConfig, *, dim: int, auxiliary: Sequence[str] = ()) -> MSAF:
    """Registry factory ``build(cfg, dim=d, auxiliary=[names])``."""
    memory = get_registry().build("memory", config.memory, dim=dim)
    return MSAF(
        dim=dim,
        auxiliary=auxiliary,
        scales=config.scales,
        memory=memory,
        dropout=config.dropout,
    )
