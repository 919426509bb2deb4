"""Modern Hopfield retrieval (``memory`` "hopfield") and Hopfield pooling ("hopfield-pooling").

Retrieval of state patterns ξ (queries) from stored patterns Y (Ramsauer et al., 2021)::

    Z = softmax(β · (ξ W_Q)(Y W_K)ᵀ) (Y W_V) W_O

one update step of the continuous Hopfield network. Large β converges to the single stored
pattern most similar to the state (a fixed point near one memory); β → 0 returns the mean of
the stored patterns (the global fixed point); in between, metastable states average over a
few similar memories. With ``heads`` > 1 the projections are split into heads that retrieve
independently (β applies to each head's dot products), and their results are concatenated
before W_O. With ``project=False`` all four projections are the identity (CLOOB retrieves
the raw embeddings this way).

Several β at once (MSAF's scales): softmax(β_s · q kᵀ) = softmax((β_s q) kᵀ), so the scales
are folded into the queries and all retrievals run in one
:func:`torch.nn.functional.scaled_dot_product_attention` call with ``scale=1``.

Pooling: the state patterns are learned parameters Q ∈ R^{n×d} shared by all samples,
``pool(Y) = Hopfield(Q, Y)`` compresses a token set of any length into ``n`` vectors.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from pydantic import Field
from torch import nn

from affectkit import ComponentConfig, Memory


class HopfieldConfig(ComponentConfig):
    """Modern Hopfield retrieval softmax(β·Q Kᵀ)V with learned projections."""

    heads: int = Field(1, ge=1, description="independent retrieval heads (must divide dim)")
    beta: float | None = Field(
        None, gt=0, description="inverse temperature β; null = 1/sqrt(head dim)"
    )
    project: bool = Field(
        True, description="learn W_Q, W_K, W_V, W_O; false = retrieve raw patterns (identity)"
    )
    normalize: bool = Field(
        False, description="L2-normalise states and stored patterns before the dot product"
    )
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the retrieval weights")


class HopfieldPoolingConfig(HopfieldConfig):
    """Learned state patterns (queries) that pool a token set into a fixed number of vectors."""

    queries: int = Field(1, ge=1, description="number of learned state patterns (outputs)")


def _batched(x: torch.Tensor) -> torch.Tensor:
    """``[S, d]`` -> ``[1, S, d]``; ``[B, S, d]`` unchanged."""
    if x.ndim == 2:
        return x.unsqueeze(0)
    if x.ndim != 3:
        raise ValueError(f"Hopfield patterns must be [S, d] or [B, S, d], got {tuple(x.shape)}")
    return x


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    scale: float,
    dropout: float = 0.0,
    fused: bool | None = None,
) -> torch.Tensor:
    """softmax(scale · q kᵀ) v over ``[B, H, Q, e]`` × ``[B, H, S, e]`` (batch dims broadcast).

    Fused ``scaled_dot_product_attention`` on GPUs. On the CPU the same formula as two batched
    matmuls: with a handful of tokens per sample, the CPU flash kernel's per-(sample, head)
    work costs several times more than the arithmetic (measured in benchmarks/perf.py), and it
    has no vmap batching rule, so fold-parallel training would fall back to a Python loop.
    ``fused`` forces one path (None: fused everywhere but the CPU).
    """
    if fused if fused is not None else q.device.type != "cpu":
        b = max(q.shape[0], k.shape[0])
        q, k, v = (t.expand(b, *t.shape[1:]) for t in (q, k, v))
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, scale=scale)
    scores = q @ k.transpose(-1, -2)
    weights = torch.softmax(scores if scale == 1.0 else scores * scale, dim=-1)
    if dropout:
        weights = F.dropout(weights, dropout)
    return weights @ v


class HopfieldRetrieval(Memory):
    """Z = softmax(β · (ξ W_Q)(Y W_K)ᵀ) (Y W_V) W_O, optionally multi-head."""

    def __init__(
        self,
        *,
        dim: int,
        heads: int = 1,
        beta: float | None = None,
        project: bool = True,
        normalize: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"Hopfield: dim {dim} is not divisible by heads {heads}")
        self.dim, self.heads, self.head_dim = dim, heads, dim // heads
        self.beta = beta if beta is not None else 1.0 / math.sqrt(self.head_dim)
        self.normalize, self.dropout = normalize, dropout
        make = (lambda: nn.Linear(dim, dim, bias=False)) if project else nn.Identity
        self.w_q, self.w_k, self.w_v = make(), make(), make()
        self.w_o = nn.Linear(dim, dim) if project else nn.Identity()

    def _heads(self, query: torch.Tensor, stored: torch.Tensor, values: torch.Tensor | None):
        query, stored = _batched(query), _batched(stored)
        values = stored if values is None else _batched(values)
        q, k, v = self.w_q(query), self.w_k(stored), self.w_v(values)
        if self.normalize:
            q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        # [B, S, H*dh] -> [B, H, S, dh]; a shared memory or query set ([1, S, d]) keeps its
        # batch axis of 1 and is broadcast by the matmuls (attend expands it for SDPA)
        return tuple(rearrange(t, "b s (h e) -> b h s e", h=self.heads) for t in (q, k, v))

    def weights(
        self, query: torch.Tensor, stored: torch.Tensor, beta: float | None = None
    ) -> torch.Tensor:
        """Retrieval weights softmax(β q kᵀ): ``[B, H, Q, S]`` (rows sum to 1)."""
        q, k, _ = self._heads(query, stored, None)
        beta = self.beta if beta is None else beta
        return torch.softmax(beta * q @ k.transpose(-1, -2), dim=-1)  # [B or 1, H, Q, S]

    def forward(
        self,
        query: torch.Tensor,
        stored: torch.Tensor,
        beta: float | Sequence[float] | None = None,
        values: torch.Tensor | None = None,
        mix: torch.Tensor | None = None,
        residual: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Retrieve for ``query [B, Q, d]`` from ``stored [B, S, d]`` (or a shared ``[S, d]``).

        ``beta``: one β -> ``[B, Q, d]``; a sequence of n β -> ``[B, n, Q, d]`` (one retrieval
        per β), or, with ``mix`` ``[B, Q, n]`` (convex weights over the scales), the mixture
        Σ_s mix_s · Z_s ``[B, Q, d]``. ``values`` (default: ``stored``) are the patterns
        returned, if they differ from the keys. 2-D query and memory give a 2-D result.
        ``residual`` (broadcastable to the result) is added to it, inside the output matmul
        where the retrieval is folded (a pooling query set).
        """
        p = self.dropout if self.training else 0.0
        single = beta is None or isinstance(beta, (int, float))
        if single and values is None and self._folds(query, stored):
            return self._shared_query(_batched(query), stored, beta, p, residual)
        out = self._retrieve(query, stored, beta, values, mix, p)
        return out if residual is None else out + residual

    def _retrieve(
        self,
        query: torch.Tensor,
        stored: torch.Tensor,
        beta: float | Sequence[float] | None,
        values: torch.Tensor | None,
        mix: torch.Tensor | None,
        p: float,
    ) -> torch.Tensor:
        unbatched = query.ndim == 2 and stored.ndim == 2
        single = beta is None or isinstance(beta, (int, float))
        q, k, v = self._heads(query, stored, values)
        if single:
            beta = self.beta if beta is None else float(beta)
            z = attend(q, k, v, scale=beta, dropout=p)
            out = self.w_o(rearrange(z, "b h q e -> b q (h e)"))
            return out[0] if unbatched else out
        betas = torch.as_tensor(list(beta), dtype=q.dtype, device=q.device)
        n = betas.numel()
        if mix is None:
            # β folded into the state patterns, the scales stacked along the query axis: each
            # softmax row is one (scale, query) pair, so one attention call serves every scale
            qs = rearrange(q[:, :, None] * betas.view(1, 1, n, 1, 1), "b h n q e -> b h (n q) e")
            z = attend(qs, k, v, scale=1.0, dropout=p)
            out = self.w_o(rearrange(z, "b h (n q) e -> b n q (h e)", n=n))
            return out[0] if unbatched else out
        # Mixed scales: Σ_s g_s softmax(β_s q kᵀ) V = (Σ_s g_s softmax(β_s q kᵀ)) V, so the
        # scales are mixed as attention weights [B, H, Q, S] (one score matmul, one value
        # matmul) instead of as n retrieved [B, H, Q, e] patterns: with a few stored tokens
        # (MSAF's auxiliary modalities) this is n times less work. And W_O is affine with
        # weights summing to one, so mixing before it equals mixing after.
        # Laid out [.., S, Q] with the softmax over S: with a few stored tokens (S = 4) a
        # softmax over the last axis runs nearly element by element on the CPU, while over
        # the next-to-last one it vectorises along Q (about 10× faster fwd+bwd, measured).
        scores = k @ q.transpose(-1, -2)  # [B, H, S, Q]
        weights = torch.softmax(scores[:, :, None] * betas.view(1, 1, n, 1, 1), dim=-2)
        weights = (weights * rearrange(mix, "b q n -> b 1 n 1 q")).sum(2)  # [B, H, S, Q]
        if p:
            weights = F.dropout(weights, p)
        z = weights.transpose(-1, -2) @ v  # [B, H, Q, e]
        out = self.w_o(rearrange(z, "b h q e -> b q (h e)"))
        return out[0] if unbatched else out

    def mean_mixture(
        self,
        query: torch.Tensor,
        stored: Sequence[torch.Tensor],
        beta: Sequence[float],
        mix: Sequence[torch.Tensor],
    ) -> torch.Tensor:
        """mean_m ``forward(query, stored[m], beta=beta, mix=mix[m])`` (MSAF's fusion).

        ``query [B, Q, d]``, ``stored[m] [B, S_m, d]``, ``mix[m] [B, Q, n]`` -> ``[B, Q, d]``.
        With one head and no normalisation the projections move to the stored side, as in
        :meth:`_shared_query`: (ξ W_Qᵀ)(Y W_Kᵀ)ᵀ = ξ (Y W_Kᵀ W_Q)ᵀ and
        mean_m (A_m Y_m W_Vᵀ W_Oᵀ + b) = Σ_m A_m (Y_m (W_O W_V)ᵀ / M) + b.
        The few stored tokens are projected instead of the many queries (MSAF: 4 tokens per
        auxiliary modality against 18 EEG tokens), and every memory's weights meet the
        values in one matmul.
        """
        if self.heads != 1 or self.normalize:
            parts = [self(query, y, beta=beta, mix=g) for y, g in zip(stored, mix, strict=True)]
            return torch.stack(parts).mean(0)
        tokens = torch.cat(list(stored), dim=1) if len(stored) > 1 else stored[0]  # [B, ΣS, d]
        keys, values, bias = tokens, tokens / len(stored), None
        if isinstance(self.w_k, nn.Linear):
            keys = F.linear(tokens, self.w_q.weight.T @ self.w_k.weight)
            values = F.linear(tokens, (self.w_o.weight @ self.w_v.weight) / len(stored))
            bias = self.w_o.bias
        betas = torch.as_tensor(list(beta), dtype=query.dtype, device=query.device)
        # laid out [B, S, Q] with the softmax over S: see the mixed-scale branch of forward
        scores = keys @ query.transpose(-1, -2)  # [B, ΣS, Q]
        mixed = []
        for part, g in zip(scores.split([y.shape[-2] for y in stored], 1), mix, strict=True):
            w = torch.softmax(part[:, None] * betas.view(-1, 1, 1), dim=-2)  # [B, n, S, Q]
            g = rearrange(g, "b q n -> b n 1 q")
            # Σ_s g_s w_s as a chain of fused multiply-adds: a sum over the n = 3 scales
            # as a reduction over a middle axis of 3 is the slower kernel (fwd and bwd)
            out = w[:, 0] * g[:, 0]
            for i in range(1, len(beta)):
                out = torch.addcmul(out, w[:, i], g[:, i])
            mixed.append(out)
        weights = torch.cat(mixed, dim=1) if len(mixed) > 1 else mixed[0]  # [B, ΣS, Q]
        if self.dropout and self.training:
            weights = F.dropout(weights, self.dropout)
        if bias is None:
            return weights.transpose(-1, -2) @ values
        return torch.baddbmm(bias, weights.transpose(-1, -2), values)

    def _folds(self, query: torch.Tensor, stored: torch.Tensor) -> bool:
        """Whether :meth:`_shared_query` applies: one query set shared by a batch of memories,
        one head, learned linear projections, no normalisation."""
        return (
            (query.ndim == 2 or query.shape[0] == 1)
            and stored.ndim == 3
            and stored.shape[0] > 1
            and self.heads == 1
            and not self.normalize
            and isinstance(self.w_k, nn.Linear)
            and isinstance(self.w_v, nn.Linear)
        )

    def _shared_query(
        self,
        query: torch.Tensor,
        stored: torch.Tensor,
        beta: float | None,
        p: float,
        residual: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The retrieval for a query set ``[1, Q, d]`` shared by every sample (pooling).

        Same formula, associated the other way round: with ξ shared,
        (ξ W_Q)(Y W_K)ᵀ = (ξ W_Q W_K) Yᵀ and A (Y W_V) W_Oᵀ = (A Y)(W_O W_V)ᵀ, so the
        ``[Q, d]`` state and the ``[d, d]`` product are formed once per step and the stored
        tokens are never projected: two ``[B·S, d] × [d, d]`` matmuls (and their backward)
        fewer per call, which made HSC's pooling levels the costliest part of mpcl's step.
        """
        beta = self.beta if beta is None else float(beta)
        # β folded into the [Q, d] state, not applied to the [B, S, Q] scores (and their grad)
        state = (self.w_q(query)[0] @ self.w_k.weight) * beta  # [Q, d], in Y's coordinates
        # the scores from one plain [B·S, d] × [d, Q] matmul, then copied to a [B, Q, S]
        # layout: the softmax over the last axis and untransposed batched matmuls after it
        # beat the softmax over S on [B, S, Q] (whose inner axis Q = 10 or 1 in HSC's
        # emotion and global levels barely fills a vector) by about 20% fwd+bwd, measured
        weights = torch.softmax((stored @ state.T).transpose(-1, -2).contiguous(), dim=-1)
        if p:
            weights = F.dropout(weights, p)
        value_map = self.w_o.weight @ self.w_v.weight  # [d, d]
        bias = self.w_o.bias if residual is None else self.w_o.bias + residual
        if stored.shape[-2] < state.shape[0]:
            # fewer stored tokens than queries (HSC's prototype level: 24 tokens, 40 queries):
            # A (Y M) instead of (A Y) M projects S rows, not Q, and the bias and residual
            # ride in the output matmul (baddbmm) instead of passes of their own over [B, Q, d]
            return torch.baddbmm(bias, weights, F.linear(stored, value_map))
        mixed = weights @ stored  # [B, Q, d]: A Y
        out = F.linear(mixed, value_map, self.w_o.bias)
        return out if residual is None else out + residual


class HopfieldPooling(Memory):
    """pool(Y) = Hopfield(Q, Y) with learned state patterns Q ``[queries, d]``."""

    def __init__(self, *, dim: int, queries: int = 1, **hopfield: object) -> None:
        super().__init__()
        self.queries = nn.Parameter(torch.randn(queries, dim) / math.sqrt(dim))
        self.retrieval = HopfieldRetrieval(dim=dim, **hopfield)  # type: ignore[arg-type]

    def forward(
        self, stored: torch.Tensor, query: torch.Tensor | None = None, **kwargs: object
    ) -> torch.Tensor:
        """``stored [B, S, d]`` -> ``[B, queries, d]``.

        ``query`` (optional, ``[B, queries, d]``) is added to the learned state patterns, so
        that a caller can condition the pooling on the sample.
        """
        stored = _batched(stored)
        # unconditioned: the [n, d] queries are projected once, then broadcast to the batch
        state = self.queries if query is None else self.queries + query
        out = self.retrieval(state, stored, **kwargs)  # type: ignore[arg-type]
        return out.expand(stored.shape[0], *out.shape[1:]) if out.ndim == 2 else out


def _fields(config: ComponentConfig, overrides: dict) -> dict:
    """Config fields as keyword arguments (minus ``name``), runtime overrides winning."""
    return {**config.model_dump(exclude={"name"}), **overrides}


def build_hopfield(config: HopfieldConfig, *, dim: int, **overrides: object) -> HopfieldRetrieval:
    """Registry factory: ``build(cfg, dim=d)``; keyword overrides replace config fields."""
    return HopfieldRetrieval(dim=dim, **_fields(config, overrides))


def build_hopfield_pooling(
    config: HopfieldPoolingConfig, *, dim: int, **overrides: object
) -> HopfieldPooling:
    """Registry factory: ``build(cfg, dim=d, queries=n)``; overrides replace config fields."""
    return HopfieldPooling(dim=dim, **_fields(config, overrides))
