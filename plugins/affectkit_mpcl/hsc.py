"""HSC, Hierarchical Semantic Compression, and the distribution classifier (``head`` "hsc").

Bottom-up Hopfield pooling over the token set X ``[B, T, d]`` (fused physiological tokens,
behavioral tokens, semantics-enriched embeddings)::

    H_proto = LN(Q_proto + Pool_{K·P}(X))        [B, K·P, d]   prototype level
    H_emo   = LN(Q_emo   + Pool_K(H_proto))      [B, K, d]     emotion level
    h_glob  = LN(q_glob  + Pool_1(H_emo))        [B, d]        global level
    logit   = MLP([h_glob ‖ s]) (+ ⟨w_k, H_emo,k⟩)   distribution classifier; ŷ = softmax(logit)

Each level's learned queries are the Hopfield state patterns (the residual adds them back
so that a level keeps its identity when the retrieval is diffuse). The global MLP can express
interactions between emotions (co-occurrence, valence trade-off); with
``emotion_readout=true`` emotion k's logit also reads its own emotion-level vector directly
(per-emotion weights w_k) — off by default, as it added variance on training-subject
validation (benchmarks/results/mpcl_search.md, round 5). ``s`` is an optional
sample summary (in ``mpcl``: the semantics-enriched embeddings [x̃ ‖ ỹ]) that the classifier
reads beside the compressed hierarchy (``summary=true``); learned pooling queries are the
same for every sample, so without it the hierarchy alone must carry everything sample-specific
through averages of tokens.
"""

from __future__ import annotations

import torch
from einops import einsum
from pydantic import Field
from torch import nn

from affectkit import ComponentConfig, Dropout, Head, component, get_registry

from .hopfield import HopfieldPooling


class HSCConfig(ComponentConfig):
    """Tokens -> prototype level (K·P) -> emotion level (K) -> global, then the classifier."""

    per_emotion: int = Field(4, ge=1, description="prototype-level queries per emotion P")
    # 128 / 0.3: mpcl_search.py round 7 (development datasets), benchmarks/results/mpcl_search.md
    hidden: int = Field(128, ge=1, description="width of the global classifier MLP")
    dropout: float = Field(0.3, ge=0, lt=1, description="dropout in the classifier")
    emotion_readout: bool = Field(
        False,
        description="add the per-emotion readout ⟨w_k, H_emo,k⟩ to the logits; false = the "
        "emotion level reaches the logits only through h_glob",
    )
    summary: bool = Field(
        True,
        description="the classifier also reads the caller's sample summary (mpcl: [x̃ ‖ ỹ]) "
        "beside h_glob; false = the hierarchy alone",
    )
    pooling: component("memory") = Field(  # type: ignore[valid-type]
        default_factory=lambda: {"name": "hopfield-pooling"},
        validate_default=True,
        description="pooling memory of each level (built with queries=K·P, K, 1)",
    )


class HSC(Head):
    """logits = ⟨w_k, H_emo,k⟩ + MLP(h_glob) after three Hopfield pooling levels."""

    def __init__(
        self,
        *,
        dim: int,
        num_emotions: int,
        proto_pool: nn.Module,
        emotion_pool: nn.Module,
        global_pool: nn.Module,
        hidden: int = 128,
        dropout: float = 0.3,
        summary_dim: int = 0,
        emotion_readout: bool = False,
    ) -> None:
        super().__init__()
        self.summary_dim, self.emotion_readout = summary_dim, emotion_readout
        self.proto_pool, self.emotion_pool, self.global_pool = proto_pool, emotion_pool, global_pool
        self.norms = nn.ModuleList([nn.LayerNorm(dim) for _ in range(3)])
        if emotion_readout:
            self.emotion_weight = nn.Parameter(torch.randn(num_emotions, dim) / dim**0.5)
            self.emotion_bias = nn.Parameter(torch.zeros(num_emotions))
        self.classifier = nn.Sequential(
            nn.Linear(dim + summary_dim, hidden),
            nn.GELU(),
            Dropout(dropout),
            nn.Linear(hidden, num_emotions),
        )

    def levels(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``[B, T, d]`` -> prototype ``[B, K·P, d]``, emotion ``[B, K, d]``, global ``[B, d]``."""
        n_proto, n_emo, n_glob = self.norms
        proto = n_proto(_with_queries(self.proto_pool, tokens))
        emo = n_emo(_with_queries(self.emotion_pool, proto))
        glob = n_glob(_with_queries(self.global_pool, emo))
        return proto, emo, glob[:, 0]

    def forward(self, tokens: torch.Tensor, summary: torch.Tensor | None = None) -> torch.Tensor:
        """``tokens [B, T, d]`` (+ ``summary [B, summary_dim]`` if built with one) -> ``[B, K]``."""
        _, emo, glob = self.levels(tokens)
        if self.summary_dim:
            if summary is None or summary.shape[-1] != self.summary_dim:
                got = None if summary is None else tuple(summary.shape)
                raise ValueError(f"HSC was built for a summary [B, {self.summary_dim}], got {got}")
            glob = torch.cat([glob, summary], dim=-1)
        logits = self.classifier(glob)
        if self.emotion_readout:
            per_emotion = einsum(emo, self.emotion_weight, "b k d, k d -> b k")
            logits = logits + per_emotion + self.emotion_bias
        return logits


def _with_queries(pool: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """pool(tokens) + pool.queries; Hopfield pooling adds them inside its output matmul."""
    if isinstance(pool, HopfieldPooling):
        return pool(tokens, residual=pool.queries)
    return pool(tokens) + pool.queries


def build_hsc(config: HSCConfig, *, dim: int, num_emotions: int, summary_dim: int = 0) -> HSC:
    """Registry factory ``build(cfg, dim=d, num_emotions=K[, summary_dim=...])``.

    ``summary_dim`` is the width of the sample summary the caller will pass; it is ignored
    (no summary read) when ``config.summary`` is false.
    """
    reg = get_registry()

    def pool(n: int) -> nn.Module:
        module = reg.build("memory", config.pooling, dim=dim, queries=n)
        if not isinstance(getattr(module, "queries", None), torch.Tensor):
            raise TypeError(
                f"hsc.pooling {config.pooling.name!r} must expose learned `queries` [n, d]"
            )
        return module

    return HSC(
        dim=dim,
        num_emotions=num_emotions,
        proto_pool=pool(num_emotions * config.per_emotion),
        emotion_pool=pool(num_emotions),
        global_pool=pool(1),
        hidden=config.hidden,
        dropout=config.dropout,
        summary_dim=summary_dim if config.summary else 0,
        emotion_readout=config.emotion_readout,
    )
