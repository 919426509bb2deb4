"""Small building blocks shared by method plugins.

``Dropout`` / ``fast_dropout``: inverted dropout whose mask is drawn with ``rand_like``.
Same distribution as ``torch.nn.Dropout``, but on the CPU ``bernoulli_`` is several times
slower than a uniform draw and a comparison; in MPCL's step at batch 1024 the stock dropout
masks were about 8% of the time (profile in benchmarks/perf.py's notes), in HeLo's similar.
The masks come from the global generator, so seeded runs stay deterministic, and the draw has
a vmap rule (fold-parallel training). The mask is written over the uniform draw in place and
the scaling is done in place on the product: two fewer full-size temporaries, about half the
cost of a dropout forward and backward on the CPU, with the same bits as
``x * (u >= p) / (1 - p)``.
"""

from __future__ import annotations

import torch
from torch import nn


def fast_dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """``x · 1[u > p] / (1 − p)`` with u ~ U[0, 1) per element while training; else ``x``."""
    if not training or p == 0:
        return x
    # The mask 1[u > p] / (1 − p) is built in place in the uniform draw's buffer, as
    # relu(sign(u − p)): one float tensor, so one product with x forward and one backward,
    # where a boolean mask times x and a division made two of each (with a dtype promotion).
    # Not u.ge_(p): in-place comparisons have no vmap batching rule (fold-parallel training
    # would loop over the folds). u > p rather than u ≥ p differs only where u = p exactly.
    return x * torch.rand_like(x).sub_(p).sign_().relu_().mul_(1.0 / (1.0 - p))


class Dropout(nn.Module):
    """Drop-in for ``torch.nn.Dropout(p)`` using :func:`fast_dropout`."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fast_dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


# --------------------------------------------------------------------------- graph convolution
# Dense Chebyshev graph convolution over a small learned graph (EEG channels): ``C × C``
# matmuls instead of sparse message passing, so the same code batches, compiles and vmaps
# (fold-parallel training). Shared by mpcl's ``graph-tokens`` encoder and the ``dgcnn``
# baseline.


def symmetric_adjacency(weight: torch.Tensor) -> torch.Tensor:
    """A = ReLU((W + Wᵀ)/2) with a zero diagonal (self-loops are T_0's job), ``[C, C]``."""
    a = torch.relu(0.5 * (weight + weight.T))
    return a * (1 - torch.eye(a.shape[0], device=a.device, dtype=a.dtype))


def scaled_laplacian(adjacency: torch.Tensor) -> torch.Tensor:
    """L̃ = 2L/λ_max − I with L = I − D^{-1/2} A D^{-1/2} and λ_max = 2, i.e.
    L̃ = −D^{-1/2} A D^{-1/2} (``torch_geometric``'s ChebConv, normalization "sym"); an
    isolated node gets a zero row."""
    inv_sqrt = torch.rsqrt(adjacency.sum(-1).clamp_min(1e-6))
    return -(inv_sqrt[:, None] * adjacency * inv_sqrt[None, :])


def chebyshev_basis(laplacian: torch.Tensor, x: torch.Tensor, order: int) -> torch.Tensor:
    """``[B, C, K, F]``: T_k(L̃) X for k < K, with T_0 X = X, T_1 X = L̃ X and
    T_k X = 2 L̃ T_{k−1} X − T_{k−2} X, for node features ``x [B, C, F]``."""
    terms = [x]
    if order > 1:
        terms.append(torch.einsum("ce,bef->bcf", laplacian, x))
    for _ in range(2, order):
        terms.append(2 * torch.einsum("ce,bef->bcf", laplacian, terms[-1]) - terms[-2])
    return torch.stack(terms, dim=2)
