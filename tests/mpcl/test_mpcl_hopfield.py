"""Modern Hopfield retrieval: closed form, limits in β, multi-scale and pooling."""

from __future__ import annotations

import math

import pytest
import torch
from affectkit_mpcl.hopfield import HopfieldPooling, HopfieldRetrieval
from einops import rearrange

from tests.tolerances import rounding_tol


def closed_form(m: HopfieldRetrieval, q, k, beta):
    """softmax(β (q W_Q)(k W_K)ᵀ)(k W_V) W_O per head, written out."""
    Q, K, V = m.w_q(q), m.w_k(k), m.w_v(k)
    Q, K, V = (rearrange(t, "b s (h e) -> b h s e", h=m.heads) for t in (Q, K, V))
    A = torch.softmax(beta * Q @ K.transpose(-1, -2), dim=-1)
    return m.w_o(rearrange(A @ V, "b h s e -> b s (h e)"))


@pytest.mark.parametrize("heads", [1, 2])
def test_retrieval_equals_closed_form(heads):
    torch.manual_seed(0)
    m = HopfieldRetrieval(dim=8, heads=heads).eval()
    q, k = torch.randn(3, 5, 8), torch.randn(3, 7, 8)
    for beta in (None, 0.3, 2.0):
        b = m.beta if beta is None else beta
        torch.testing.assert_close(m(q, k, beta=beta), closed_form(m, q, k, b))
    assert m.beta == pytest.approx(1 / math.sqrt(8 // heads))


def test_multi_scale_and_mix_equal_separate_retrievals():
    torch.manual_seed(1)
    m = HopfieldRetrieval(dim=8, heads=2).eval()
    q, k = torch.randn(2, 4, 8), torch.randn(2, 6, 8)
    betas = [0.1, 1.0, 5.0]
    stacked = m(q, k, beta=betas)  # [B, n, Q, d]
    assert stacked.shape == (2, 3, 4, 8)
    for i, b in enumerate(betas):
        torch.testing.assert_close(stacked[:, i], closed_form(m, q, k, b))
    mix = torch.softmax(torch.randn(2, 4, 3), dim=-1)
    expected = (rearrange(mix, "b q n -> b n q 1") * stacked).sum(1)
    torch.testing.assert_close(m(q, k, beta=betas, mix=mix), expected)


def test_shared_memory_broadcasts_to_batch():
    torch.manual_seed(2)
    m = HopfieldRetrieval(dim=8).eval()
    q, bank = torch.randn(4, 3, 8), torch.randn(5, 8)
    torch.testing.assert_close(m(q, bank), m(q, bank.expand(4, 5, 8)))
    assert m(q[0], bank).shape == (3, 8)  # unbatched in, unbatched out


def test_large_beta_retrieves_nearest_pattern():
    torch.manual_seed(3)
    m = HopfieldRetrieval(dim=16, project=False)
    stored = torch.nn.functional.normalize(torch.randn(6, 16), dim=-1)
    query = stored + 0.05 * torch.randn(6, 16)  # each query near its own pattern
    out = m(query, stored, beta=1e3)
    # each output is Σ_j w_j s_j with w = softmax(β q·s): the other patterns keep weights of
    # at most exp(−β·gap) (gap: own similarity minus the best other one), which moves it by
    # up to 2 each; rounding adds the 6-term softmax and the 6-term sum
    sim = query @ stored.T
    gap = (sim.diag() - (sim - 1e9 * torch.eye(6)).max(-1).values).min()
    tol = 5 * 2 * torch.exp(-1e3 * gap) + rounding_tol(6 + 2 + 6, scale=stored.abs().max())
    torch.testing.assert_close(out, stored, atol=float(tol), rtol=0)
    # a small β mixes, so the same queries no longer return the stored patterns
    assert (m(query, stored, beta=1.0) - stored).abs().max() > 0.1


def test_small_beta_returns_mean():
    torch.manual_seed(4)
    m = HopfieldRetrieval(dim=8, project=False)
    stored = torch.randn(2, 9, 8)
    query = torch.randn(2, 3, 8)
    out = m(query, stored, beta=1e-6)
    # softmax(β s) is uniform up to exp(β·spread) − 1 ≈ β·spread per weight, so the output
    # is the mean up to β·spread·max|stored|; rounding adds the 9-term softmax and sum
    sim = query @ stored.transpose(1, 2)
    spread = (sim.amax(-1) - sim.amin(-1)).max()
    tol = 1e-6 * spread * stored.abs().max() + rounding_tol(9 + 2 + 9, stored.abs().max())
    expected = stored.mean(1, keepdim=True).expand(2, 3, 8)
    torch.testing.assert_close(out, expected, atol=float(tol), rtol=0)


def test_weights_are_distributions():
    m = HopfieldRetrieval(dim=8, heads=2)
    w = m.weights(torch.randn(2, 3, 8), torch.randn(2, 5, 8))
    assert w.shape == (2, 2, 3, 5)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 2, 3))


def test_heads_must_divide_dim():
    with pytest.raises(ValueError, match="not divisible"):
        HopfieldRetrieval(dim=10, heads=3)


def test_pooling_uses_learned_queries():
    torch.manual_seed(5)
    pool = HopfieldPooling(dim=8, queries=3).eval()
    tokens = torch.randn(4, 7, 8)
    out = pool(tokens)
    assert out.shape == (4, 3, 8)
    state = pool.queries.expand(4, 3, 8)
    expected = closed_form(pool.retrieval, state, tokens, pool.retrieval.beta)
    torch.testing.assert_close(out, expected)
    # permuting the token set leaves a pooled summary unchanged (set pooling)
    # the sums over the 7 tokens run in another order: the value projection (8 terms), the
    # 7-term softmax and weighted sum, the output projection (8), of values as large as the
    # tokens' and the outputs' (logit rounding is scaled by β·|q||k| ≤ 1 here)
    tol = rounding_tol(8 + 7 + 2 + 7 + 8, scale=max(tokens.abs().max(), out.abs().max()))
    torch.testing.assert_close(pool(tokens[:, torch.randperm(7)]), out, atol=float(tol), rtol=0)


@pytest.mark.parametrize(
    ("queries", "n_tokens", "residual"),
    [(3, 7, False), (3, 7, True), (9, 4, False), (9, 4, True)],
    ids=["more-tokens", "more-tokens-residual", "more-queries", "more-queries-residual"],
)
def test_shared_query_pooling_has_closed_form_gradients(queries, n_tokens, residual):
    """Pooling folds W_K (and β) into the shared state and W_V into W_O; with fewer tokens
    than queries it projects the tokens by W_O W_V before mixing them and adds the bias and
    a residual inside that matmul. Outputs and every gradient must equal the unfolded
    formula's (+ the residual added afterwards)."""
    torch.manual_seed(6)
    pool = HopfieldPooling(dim=8, queries=queries).train()
    tokens = torch.randn(4, n_tokens, 8, requires_grad=True)
    assert pool.retrieval._folds(pool.queries, tokens)  # the folded path is the one tested
    weights = torch.randn(4, queries, 8)
    extra = {"residual": pool.queries} if residual else {}
    (pool(tokens, **extra) * weights).sum().backward()
    folded = {n: p.grad.clone() for n, p in pool.named_parameters()}
    folded["tokens"] = tokens.grad.clone()
    pool.zero_grad()
    tokens.grad = None
    state = pool.queries.expand(4, queries, 8)
    plain = closed_form(pool.retrieval, state, tokens, pool.retrieval.beta)
    if residual:
        plain = plain + pool.queries
    (plain * weights).sum().backward()
    plain = {n: p.grad for n, p in pool.named_parameters()}
    plain["tokens"] = tokens.grad
    assert folded.keys() == plain.keys()
    for name in plain:
        torch.testing.assert_close(folded[name], plain[name], msg=name)


def test_registry_builds_memories(registry):
    m = registry.get("memory", "hopfield").build({"heads": 2, "beta": 0.5}, dim=8)
    assert isinstance(m, HopfieldRetrieval) and m.heads == 2 and m.beta == 0.5
    p = registry.get("memory", "hopfield-pooling").build(None, dim=8, queries=4)
    assert p.queries.shape == (4, 8)


@pytest.mark.parametrize("shared", ["none", "query", "memory"])
def test_fused_and_matmul_attention_agree(shared):
    """GPUs take scaled_dot_product_attention, CPUs two matmuls: both are softmax(s·qkᵀ)v."""
    from affectkit_mpcl.hopfield import attend

    g = torch.Generator().manual_seed(7)
    q = torch.randn(1 if shared == "query" else 3, 2, 5, 8, generator=g)
    k = torch.randn(1 if shared == "memory" else 3, 2, 6, 8, generator=g)
    v = torch.randn(k.shape, generator=g)
    fused = attend(q, k, v, scale=0.7, fused=True)
    plain = attend(q, k, v, scale=0.7, fused=False)
    assert fused.shape == plain.shape == (3, 2, 5, 8)
    # two kernels for softmax(s·qkᵀ)v: the 8-term logits, the 6-term softmax and weighted
    # sum; a logit error δ moves the output by up to 2δ·max|v|, so the logits' magnitude
    # (s·Σ|q_i k_i|) scales their share
    logit = 0.7 * (q.abs() @ k.abs().transpose(-1, -2)).max()
    tol = rounding_tol(8 + 6 + 2 + 6, scale=v.abs().max() * (1 + 2 * logit))
    torch.testing.assert_close(fused, plain, rtol=0, atol=float(tol))
    expected = torch.softmax(0.7 * q @ k.transpose(-1, -2), -1) @ v
    torch.testing.assert_close(plain, expected)
