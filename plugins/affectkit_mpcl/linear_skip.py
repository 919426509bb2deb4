"""L2-penalised linear skip from the inputs to the logits (an affectkit addition to MPCL).

A wide-and-deep arrangement (Cheng et al., 2016): beside the deep MPCL network f, one linear
map of every standardised input modality, flattened and concatenated, adds to the logits::

    v      = vec(x_1) ‖ … ‖ vec(x_M)                     [B, D]
    logits = f(x) + W v + b                              [B, K]
    L_skip = λ/2 · ‖W‖²_F                                added to the training objective

W and b start at zero, so training starts from the deep model alone. The penalty has the form
of the maximum-entropy LDL model (``sa-bfgs``), but W is fitted jointly with f by the same
optimiser. Why it helps: on the benchmark's few hundred training trials the deep network,
trained for a few epochs, has high variance; the strongly penalised linear term is the
low-variance part, and f learns what it leaves unexplained (benchmarks/results/mpcl_search.md,
round 11). It is not in the paper: ``method.linear_skip=null`` removes it (the paper's
classifier alone).
"""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import nn


class LinearSkip(nn.Module):
    """``W vec(x_1 ‖ … ‖ x_M) + b`` over the named modalities, with penalty ``λ/2‖W‖²``."""

    def __init__(
        self, *, shapes: dict[str, tuple[int, ...]], num_emotions: int, l2: float = 0.3
    ) -> None:
        super().__init__()
        self.modalities = list(shapes)
        self.l2 = l2
        in_features = sum(math.prod(s) for s in shapes.values())
        # zeros, not nn.Linear's random init: nothing is drawn from the global RNG, so the
        # rest of the model initialises and trains with the same random numbers as without
        self.weight = nn.Parameter(torch.zeros(num_emotions, in_features))  # [K, D]
        self.bias = nn.Parameter(torch.zeros(num_emotions))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``{modality: [B, *shape]}`` -> logits ``[B, K]``."""
        v = torch.cat([rearrange(batch[m], "b ... -> b (...)") for m in self.modalities], dim=-1)
        return v @ self.weight.T + self.bias

    def penalty(self) -> torch.Tensor:
        """λ/2 · ‖W‖²_F (the bias is not penalised)."""
        return 0.5 * self.l2 * self.weight.pow(2).sum()
