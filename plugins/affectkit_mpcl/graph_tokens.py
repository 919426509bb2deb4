"""Channel tokens through a learned channel graph (``encoder`` "graph-tokens").

For ``[B, C, F]`` inputs whose rows are sensors with a spatial layout (EEG channels ×
bands): the channels are the nodes of a graph whose adjacency is learned, kept symmetric and
non-negative, A = ReLU((W + Wᵀ)/2), as in DGCNN (Song et al., 2018). With the normalised
Laplacian L = I − D^{-1/2} A D^{-1/2} rescaled by λ_max = 2, L̃ = L − I = −D^{-1/2} A D^{-1/2},
and the Chebyshev recursion T_0 = X, T_1 = L̃ X, T_k = 2 L̃ T_{k−1} − T_{k−2}::

    H   = Σ_{k<K} T_k Θ_k                      [B, C, d]   (Θ_k shared by every channel)
    t_c = LayerNorm(GELU(H_c) + e_c)           one token per channel, identity embedding e_c

Sharing Θ across channels and mixing neighbouring channels is the inductive bias that makes
DGCNN the strongest EEG baseline here; the tokens then enter MSAF exactly like
``channel-tokens``. Dense ``C × C`` matmuls (no sparse scatter), so it batches, compiles and
vmaps.
"""

from __future__ import annotations

import math

import torch
from einops import einsum, rearrange
from pydantic import Field
from torch import nn

from affectkit import ComponentConfig, Dropout, Encoder
from affectkit.layers import chebyshev_basis, scaled_laplacian, symmetric_adjacency


class GraphTokensConfig(ComponentConfig):
    """One token per channel after a Chebyshev graph convolution over a learned graph."""

    order: int = Field(3, ge=1, description="K: Chebyshev polynomial order (1 = no mixing)")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout on the input features")
    norm: bool = Field(True, description="LayerNorm each token")


class GraphTokens(Encoder):
    """``[B, C, F...]`` -> ``[B, C, d]``: t = LN(GELU(Σ_k T_k(L̃) X Θ_k) + e)."""

    def __init__(
        self,
        *,
        in_shape: tuple[int, ...],
        dim: int,
        order: int = 3,
        dropout: float = 0.1,
        norm: bool = True,
    ) -> None:
        super().__init__()
        if len(in_shape) < 2:
            raise ValueError(
                f"graph-tokens needs inputs [C, F, ...] per sample, got shape {in_shape}; "
                "use projection-tokens for flat feature vectors"
            )
        channels, feats = in_shape[0], math.prod(in_shape[1:])
        self.num_tokens, self.dim, self.order = channels, dim, order
        self.adjacency_weight = nn.Parameter(torch.rand(channels, channels))
        self.theta = nn.Parameter(torch.randn(order, feats, dim) / math.sqrt(order * feats))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.embed = nn.Parameter(torch.randn(channels, dim) * 0.02)
        self.drop = Dropout(dropout)
        self.norm = nn.LayerNorm(dim) if norm else nn.Identity()

    def adjacency(self) -> torch.Tensor:
        """A = ReLU((W + Wᵀ)/2) with a zero diagonal (self-loops are T_0's job)."""
        return symmetric_adjacency(self.adjacency_weight)

    def scaled_laplacian(self) -> torch.Tensor:
        """L̃ = −D^{-1/2} A D^{-1/2} (isolated channels get a zero row)."""
        return scaled_laplacian(self.adjacency())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(rearrange(x, "b c ... -> b c (...)"))  # [B, C, F]
        stacked = chebyshev_basis(self.scaled_laplacian(), x, self.order)  # [B, C, K, F]
        h = einsum(stacked, self.theta, "b c k f, k f d -> b c d") + self.bias
        return self.norm(nn.functional.gelu(h) + self.embed)


def build_graph_tokens(
    config: GraphTokensConfig, *, in_shape: tuple[int, ...], dim: int
) -> GraphTokens:
    """Registry factory ``build(cfg, in_shape=..., dim=...)``."""
    return GraphTokens(
        in_shape=tuple(in_shape),
        dim=dim,
        order=config.order,
        dropout=config.dropout,
        norm=config.norm,
    )
