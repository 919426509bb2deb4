"""Per-modality token encoders (``encoder`` "channel-tokens" and "projection-tokens").

Both map one standardised modality ``[B, *shape]`` to tokens ``[B, T, d]`` in the shared
latent space, so that MSAF, the prototype banks and HSC can read any modality.

channel-tokens, for ``[B, C, F]`` inputs such as EEG differential entropy (channels ×
bands): each channel c has its own affine map and a learned identity embedding e_c::

    t_c = LayerNorm(GELU(x_c W_c + b_c) + e_c),   T = C   (the norm is optional)

projection-tokens, for flat feature vectors (GSR/PPG statistics, face descriptors, motion):
the flattened input is projected (optionally through a bottleneck of width h) and cut into
T tokens::

    [t_1 ‖ … ‖ t_T] = W_2 GELU(W_1 dropout(x)),   t_i = LayerNorm(t_i + e_i)

Input dropout is the regulariser that matters on wide noisy inputs (768 face features).
"""

from __future__ import annotations

import math

import torch
from einops import einsum, rearrange
from pydantic import Field
from torch import nn

from affectkit import ComponentConfig, Dropout, Encoder


class ChannelTokensConfig(ComponentConfig):
    """One token per leading channel (e.g. EEG channel), per-channel affine map."""

    dropout: float = Field(0.1, ge=0, lt=1, description="dropout on the input features")
    norm: bool = Field(True, description="LayerNorm each token (false: keep token magnitudes)")


class ProjectionTokensConfig(ComponentConfig):
    """Flattened features projected and cut into a fixed number of tokens."""

    tokens: int = Field(4, ge=1, description="number of tokens T")
    hidden: int | None = Field(
        64, ge=1, description="bottleneck width before the token projection; null = none"
    )
    dropout: float = Field(0.2, ge=0, lt=1, description="dropout on the input features")


class ChannelTokens(Encoder):
    """``[B, C, F...]`` -> ``[B, C, d]``: t_c = LN(GELU(x_c W_c + b_c) + e_c)."""

    def __init__(
        self, *, in_shape: tuple[int, ...], dim: int, dropout: float = 0.1, norm: bool = True
    ) -> None:
        super().__init__()
        if len(in_shape) < 2:
            raise ValueError(
                f"channel-tokens needs inputs [C, F, ...] per sample, got shape {in_shape}; "
                "use projection-tokens for flat feature vectors"
            )
        channels, feats = in_shape[0], math.prod(in_shape[1:])
        self.num_tokens, self.dim = channels, dim
        self.weight = nn.Parameter(torch.randn(channels, feats, dim) / math.sqrt(feats))
        self.bias = nn.Parameter(torch.zeros(channels, dim))
        self.embed = nn.Parameter(torch.randn(channels, dim) * 0.02)
        self.drop = Dropout(dropout)
        self.norm = nn.LayerNorm(dim) if norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(rearrange(x, "b c ... -> b c (...)"))
        h = einsum(x, self.weight, "b c f, c f d -> b c d") + self.bias
        return self.norm(nn.functional.gelu(h) + self.embed)


class ProjectionTokens(Encoder):
    """``[B, *shape]`` -> ``[B, T, d]`` by W_2 GELU(W_1 x), cut into T tokens."""

    def __init__(
        self,
        *,
        in_shape: tuple[int, ...],
        dim: int,
        tokens: int = 4,
        hidden: int | None = 64,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        d_in = math.prod(in_shape)
        self.num_tokens, self.dim = tokens, dim
        layers: list[nn.Module] = [Dropout(dropout)]
        if hidden:
            layers += [nn.Linear(d_in, hidden), nn.GELU()]
            d_in = hidden
        layers.append(nn.Linear(d_in, tokens * dim))
        self.net = nn.Sequential(*layers)
        self.embed = nn.Parameter(torch.randn(tokens, dim) * 0.02)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.net(rearrange(x, "b ... -> b (...)"))
        return self.norm(rearrange(h, "b (t d) -> b t d", t=self.num_tokens) + self.embed)


def build_channel_tokens(
    config: ChannelTokensConfig, *, in_shape: tuple[int, ...], dim: int
) -> ChannelTokens:
    """Registry factory ``build(cfg, in_shape=..., dim=...)``."""
    return ChannelTokens(
        in_shape=tuple(in_shape), dim=dim, dropout=config.dropout, norm=config.norm
    )


def build_projection_tokens(
    config: ProjectionTokensConfig, *, in_shape: tuple[int, ...], dim: int
) -> ProjectionTokens:
    """Registry factory ``build(cfg, in_shape=..., dim=...)``."""
    return ProjectionTokens(
        in_shape=tuple(in_shape),
        dim=dim,
        tokens=config.tokens,
        hidden=config.hidden,
        dropout=config.dropout,
    )
