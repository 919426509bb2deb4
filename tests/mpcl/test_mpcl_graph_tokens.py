"""graph-tokens: the Chebyshev graph convolution over a learned channel graph."""

from __future__ import annotations

import pytest
import torch

from tests.tolerances import rounding_tol


def _graph_tokens(registry, **cfg):
    return registry.build("encoder", {"name": "graph-tokens", **cfg}, in_shape=(6, 4), dim=8)


def test_matches_dense_chebyshev_polynomials(registry):
    """H = Σ_k T_k(L̃) X Θ_k with T_k built as matrices by the textbook recursion."""
    torch.manual_seed(0)
    enc = _graph_tokens(registry, order=4, dropout=0.0, norm=False).eval()
    x = torch.randn(3, 6, 4)
    a = torch.relu(0.5 * (enc.adjacency_weight + enc.adjacency_weight.T)).detach()
    a.fill_diagonal_(0)
    d = a.sum(-1)
    lap = torch.eye(6) - a / torch.sqrt(d[:, None] * d[None, :])  # normalised Laplacian
    lap_t = lap - torch.eye(6)  # 2L/λ_max − I with λ_max = 2
    polys = [torch.eye(6), lap_t]
    for _ in range(2, 4):
        polys.append(2 * lap_t @ polys[-1] - polys[-2])
    h = sum(polys[k] @ x @ enc.theta[k].detach() for k in range(4)) + enc.bias.detach()
    expected = torch.nn.functional.gelu(h) + enc.embed.detach()
    # another evaluation order of the same sums: degrees (6 terms) and the rescaling (2),
    # three recursion steps (6 terms + 2 each), T_k X (6) Θ_k (4), 4 orders, bias and GELU
    # (about 50 roundings), of terms as large as Σ_k |T_k| |X| |Θ_k|
    size = sum(polys[k].abs() @ x.abs() @ enc.theta[k].detach().abs() for k in range(4))
    tol = rounding_tol(6 + 2 + 3 * 8 + 6 + 4 + 4 + 4, scale=size.max() + enc.bias.abs().max())
    with torch.no_grad():
        torch.testing.assert_close(enc(x), expected, rtol=0, atol=tol)


def test_order_one_is_a_channel_shared_map(registry):
    """K = 1: no mixing between channels, so permuting channels permutes the pre-embedding map."""
    torch.manual_seed(1)
    enc = _graph_tokens(registry, order=1, dropout=0.0, norm=False).eval()
    x = torch.randn(2, 6, 4)
    with torch.no_grad():
        out = enc(x) - enc.embed
        perm = torch.randperm(6)
        torch.testing.assert_close((enc(x[:, perm]) - enc.embed), out[:, perm])


def test_adjacency_symmetric_nonnegative_and_learned(registry):
    torch.manual_seed(2)
    enc = _graph_tokens(registry, order=3)
    a = enc.adjacency()
    assert torch.equal(a, a.T) and (a >= 0).all() and torch.all(a.diagonal() == 0)
    out = enc(torch.randn(5, 6, 4))
    assert out.shape == (5, 6, 8)
    out.square().mean().backward()
    assert enc.adjacency_weight.grad is not None and enc.adjacency_weight.grad.abs().sum() > 0


def test_rejects_flat_inputs(registry):
    with pytest.raises(ValueError, match="projection-tokens"):
        registry.build("encoder", {"name": "graph-tokens"}, in_shape=(12,), dim=8)
