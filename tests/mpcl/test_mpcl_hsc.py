"""HSC's pooling levels against their plain formula."""

from __future__ import annotations

import torch

from tests.mpcl.test_mpcl_hopfield import closed_form


def test_levels_equal_the_plain_formula_with_gradients(registry):
    """Each level is LN(Q + Hopfield(Q, X)); the folded pooling adds Q inside its output
    matmul and (prototype level: 6 tokens, 12 queries) projects the tokens before mixing.
    Outputs and every gradient must equal the written-out levels."""
    torch.manual_seed(0)
    hsc = registry.get("head", "hsc").build({"dropout": 0}, dim=8, num_emotions=3, summary_dim=4)
    hsc.train()
    tokens = torch.randn(5, 6, 8, requires_grad=True)
    summary = torch.randn(5, 4)

    def plain() -> torch.Tensor:
        x = tokens
        levels = []
        pools = (hsc.proto_pool, hsc.emotion_pool, hsc.global_pool)
        for pool, norm in zip(pools, hsc.norms, strict=True):
            q = pool.queries.expand(len(x), *pool.queries.shape)
            x = norm(closed_form(pool.retrieval, q, x, pool.retrieval.beta) + pool.queries)
            levels.append(x)
        return hsc.classifier(torch.cat([levels[-1][:, 0], summary], -1))

    leaves = [tokens, *hsc.parameters()]
    weights = torch.randn(5, 3)
    got, want = hsc(tokens, summary=summary), plain()
    torch.testing.assert_close(got, want)
    got_grads = torch.autograd.grad((got * weights).sum(), leaves)
    want_grads = torch.autograd.grad((want * weights).sum(), leaves)
    for g, w in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(g, w)
