"""helo's forward and loss as they were before the speed work of issue 18 (commit 3b95939).

The oracle of ``tests/baselines/test_helo_speed.py`` (the faster ``HeLoNet`` must compute
what this computes) and the "before" of ``benchmarks/helo_speed.py``.
Written as functions over a ``HeLoNet``'s own submodules and parameters, so that both run
on the same weights, and with the operations in their old order, including the random draws
of the dropout and DropKey masks (a seeded training step then draws the same masks on both
sides). Keep it as it is: it is a record, not code to optimise. One change since: the masks
are drawn with affectkit's ``keep_mask`` (16-bit draws, December 2026), as helo draws them,
so that a seeded step still draws the same masks on both sides; the formulas are untouched.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange

from affectkit import keep_mask
from affectkit.layers import quantized_p


# --------------------------------------------------------------------------- optimal transport
def cosine_cost(x: torch.Tensor) -> torch.Tensor:
    z = F.normalize(x, dim=-1)
    return 1.0 - z @ z.transpose(1, 2)


def sinkhorn(kernel: torch.Tensor, mu: torch.Tensor, nu: torch.Tensor, iterations: int):
    tiny = torch.finfo(kernel.dtype).tiny
    b = torch.ones_like(nu)
    a = torch.ones_like(mu)
    for _ in range(iterations):
        a = mu / ((kernel * b.unsqueeze(-2)).sum(-1) + tiny)
        b = nu / ((kernel * a.unsqueeze(-1)).sum(-2) + tiny)
    return a.unsqueeze(-1) * kernel * b.unsqueeze(-2)


def gromov_wasserstein(cx: torch.Tensor, cy: torch.Tensor, *, lam: float, outer: int, inner: int):
    bsz, n, m = cx.shape[0], cx.shape[1], cy.shape[1]
    mu = cx.new_full((bsz, n), 1.0 / n)
    nu = cx.new_full((bsz, m), 1.0 / m)
    constant = (cx * cx) @ mu.unsqueeze(-1) + ((cy * cy) @ nu.unsqueeze(-1)).transpose(1, 2)
    plan = mu.unsqueeze(-1) * nu.unsqueeze(-2)
    for _ in range(outer):
        cost = constant - 2.0 * cx @ plan @ cy.transpose(1, 2)
        cost = cost - cost.amin(dim=-1, keepdim=True)
        plan = sinkhorn(torch.exp(-cost / lam) * plan, mu, nu, inner)
    return plan


# --------------------------------------------------------------------------- layers
def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    if not training or p == 0:
        return x
    return x * keep_mask(x, p) / (1.0 - quantized_p(p))


def cross(mod, query: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """``DropKeyCrossAttention`` on one key/value set."""
    q = rearrange(mod.q(query), "b t (h e) -> b h t e", h=mod.heads)
    k = rearrange(mod.k(source), "b s (h e) -> b h s e", h=mod.heads)
    v = rearrange(mod.v(source), "b s (h e) -> b h s e", h=mod.heads)
    logits = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if mod.training and mod.drop_key > 0:
        drop = ~keep_mask(logits, mod.drop_key)
        logits = logits.masked_fill(drop, -1e9)
    attn = torch.softmax(logits, dim=-1)
    out = rearrange(attn @ v, "b h t e -> b t (h e)")
    return mod.norm(query + mod.out(out))


def shared(mod, x: torch.Tensor) -> torch.Tensor:
    """``SharedEncoderLayer``."""
    q, k, v = rearrange(mod.qkv(x), "b t (three h e) -> three b h t e", three=3, h=mod.heads)
    attn = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)
    attn = dropout(attn, mod.p, mod.training)
    a = mod.out(rearrange(attn @ v, "b h t e -> b t (h e)"))
    x = mod.norm1(x + dropout(a, mod.p, mod.training))
    f = mod.ff2(dropout(F.gelu(mod.ff1(x)), mod.p, mod.training))
    return mod.norm2(x + dropout(f, mod.p, mod.training))


def label_attention(mod, tokens: torch.Tensor) -> torch.Tensor:
    q = mod.q(mod.label_embedding)
    k, v = mod.k(tokens), mod.v(tokens)
    e = F.normalize(mod.label_embedding, dim=-1)
    logits = torch.einsum("qd,bkd->bqk", q, k) / math.sqrt(q.shape[-1]) + e @ e.T
    return mod.norm(tokens + torch.softmax(logits, dim=-1) @ v)


def tokens_of(tok, x: torch.Tensor) -> torch.Tensor:
    if tok.per_row:
        return tok.proj(x)
    return rearrange(tok.proj(rearrange(x, "b ... -> b (...)")), "b (t d) -> b t d", d=tok.dim)


# --------------------------------------------------------------------------- model and loss
def forward(net, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """``HeLoNet.forward`` as it was, on ``net``'s weights."""
    streams = []
    if net.behavioral:
        flat = torch.cat([rearrange(batch[m], "b ... -> b (...)") for m in net.behavioral], -1)
        v = tokens_of(net.behavior_tokenizer, flat)
    if net.query_name is not None:
        q = tokens_of(net.tokenizers[net.query_name], batch[net.query_name])
        if not net.key_names:
            p = net.phys_proj(q)
        else:
            fused = [
                cross(net.cross, q, tokens_of(net.tokenizers[m], batch[m])) for m in net.key_names
            ]
            p = net.phys_proj(torch.cat(fused, dim=1))
        if net.behavioral:
            with torch.no_grad():
                lam, outer, inner = net.ot
                plan = gromov_wasserstein(
                    cosine_cost(p.detach()),
                    cosine_cost(v.detach()),
                    lam=lam,
                    outer=outer,
                    inner=inner,
                )
            p = plan.transpose(1, 2) @ p * plan.shape[2]
        streams.append(p)
    if net.behavioral:
        streams.append(v)
    b = streams[0].shape[0]
    if len(streams) == 2 and streams[0].shape[1] == streams[1].shape[1]:
        encoded = shared(net.shared, torch.cat(streams, dim=0))
        tokens = rearrange(encoded, "(s b) t d -> b (s t) d", b=b)
    else:
        tokens = torch.cat([shared(net.shared, s) for s in streams], dim=1)
    z = rearrange(net.to_emotions(rearrange(tokens, "b t d -> b d t")), "b d k -> b k d")
    z = label_attention(net.label_attention, z)
    return net.head(rearrange(z, "b k d -> b (k d)"))


def loss(
    net, batch: dict[str, torch.Tensor], *, corr_weight: float, reduction: str
) -> torch.Tensor:
    """``HeLo.loss`` as it was."""
    y = batch["target"]
    logp = F.log_softmax(forward(net, batch), dim=-1)
    kl = (torch.special.xlogy(y, y) - y * logp).sum()
    if reduction == "mean":
        kl = kl / y.shape[0]
    yn = F.normalize(y, dim=-1)
    truth = yn.unsqueeze(-1) * yn.unsqueeze(-2)
    e = F.normalize(net.label_attention.label_embedding, dim=-1)
    return kl + corr_weight * ((e @ e.T - truth) ** 2).mean()
