"""Emotion prototype memory bank (``memory`` "prototype-bank").

One bank per modality group (physiological, behavioral): M ∈ R^{K·P × d}, P learnable
prototypes for each of the K emotions, rows ordered emotion-major (row k·P + p is prototype p
of emotion k). For a sample embedding z ``[B, d]``::

    s   = sim(z, M)                       [B, K·P]   cosine (default) or dot / sqrt(d)
    a   = softmax(s / τ)                  relation of the sample to every prototype
    r   = a M                             semantics-enriched part (prototype mixture)
    z̃   = LayerNorm(z + λ r)              semantics-enriched representation
    e_k = Σ_p a_{k,p}                     emotion grounding: a distribution over K
    L_ground = KL(y ‖ e)

Grounding trains the bank so that the prototypes of row block k really stand for emotion k:
a sample felt mostly as emotion k must attend mostly to k's prototypes.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from pydantic import Field
from torch import nn

from affectkit import ComponentConfig, Memory

Similarity = Literal["cosine", "dot"]


class PrototypeBankConfig(ComponentConfig):
    """K emotions × P prototypes × d, attention a = softmax(sim(z, bank)/τ)."""

    per_emotion: int = Field(4, ge=1, description="prototypes per emotion P")
    # 0.3 chosen on training-subject validation: benchmarks/results/mpcl_search.md
    tau: float = Field(0.3, gt=0, description="temperature τ of the sample->prototype relation")
    similarity: Similarity = Field("cosine", description="cosine, or dot / sqrt(d)")
    mix: float = Field(
        1.0, ge=0, description="λ: weight of the prototype mixture added to the embedding"
    )


class PrototypeBank(Memory):
    """z̃ = LN(z + λ · softmax(sim(z, M)/τ) M); grounding e_k = Σ_p a_{k,p}."""

    def __init__(
        self,
        *,
        dim: int,
        num_emotions: int,
        per_emotion: int = 4,
        tau: float = 0.3,
        similarity: Similarity = "cosine",
        mix: float = 1.0,
    ) -> None:
        super().__init__()
        self.dim, self.num_emotions, self.per_emotion = dim, num_emotions, per_emotion
        self.tau, self.similarity, self.mix = tau, similarity, mix
        self.prototypes = nn.Parameter(
            torch.randn(num_emotions * per_emotion, dim) / math.sqrt(dim)
        )
        self.norm = nn.LayerNorm(dim)

    @property
    def bank(self) -> torch.Tensor:
        """``[K·P, d]``, emotion-major."""
        return self.prototypes

    def scores(self, z: torch.Tensor) -> torch.Tensor:
        """sim(z, M): ``[..., d]`` -> ``[..., K·P]`` (before the temperature)."""
        if self.similarity == "cosine":
            return F.normalize(z, dim=-1) @ F.normalize(self.prototypes, dim=-1).T
        return z @ self.prototypes.T / math.sqrt(self.dim)

    def attend(self, z: torch.Tensor) -> torch.Tensor:
        """a = softmax(sim(z, M)/τ): ``[..., K·P]``, rows sum to 1."""
        return torch.softmax(self.scores(z) / self.tau, dim=-1)

    def enrich(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """z̃ = LN(z + λ a M)."""
        return self.norm(z + self.mix * (a @ self.prototypes))

    def emotions(self, a: torch.Tensor) -> torch.Tensor:
        """e_k = Σ_p a_{k,p}: ``[..., K·P]`` -> ``[..., K]`` (a distribution)."""
        return rearrange(a, "... (k p) -> ... k p", k=self.num_emotions).sum(-1)

    def grounding_loss(self, a: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """KL(y ‖ e) averaged over the batch."""
        e = self.emotions(a).clamp_min(1e-8)
        # written out (not F.kl_div): vmap has batching rules for these ops, none for kl_div
        kl = torch.special.xlogy(target, target) - target * e.log()
        return kl.sum(-1).mean()

    def forward(
        self, query: torch.Tensor, stored: torch.Tensor | None = None, **_: object
    ) -> torch.Tensor:
        """Semantics-enriched representation of ``query [..., d]``; the bank is the memory.

        ``stored`` must be ``None``: the stored patterns are this bank's own prototypes.
        """
        if stored is not None:
            raise ValueError("prototype-bank retrieves from its own prototypes; pass stored=None")
        return self.enrich(query, self.attend(query))


def build_prototype_bank(
    config: PrototypeBankConfig, *, dim: int, num_emotions: int
) -> PrototypeBank:
    """Registry factory ``build(cfg, dim=d, num_emotions=K)``."""
    return PrototypeBank(
        dim=dim,
        num_emotions=num_emotions,
        per_emotion=config.per_emotion,
        tau=config.tau,
        similarity=config.similarity,
        mix=config.mix,
    )
