"""Polyak (exponential moving) averaging of a network's weights, used for evaluation.

A training-procedure choice of affectkit, not a part of MPCL's paper: with the small,
attention-based model and few subjects, validation KL jumps from epoch to epoch; the
average of the recent weights is smoother and generalises better (chosen on training-subject
validation, benchmarks/results/mpcl_search.md). Before every optimiser step::

    m_t = min(m, (1 + t) / (10 + t))          warm-up: early averages forget the init fast
    θ̄  ← m_t · θ̄ + (1 − m_t) · θ

Training uses θ; evaluation (validation for early stopping, prediction) uses θ̄. θ̄ is held
in a frozen copy of the network (``requires_grad=False``: the optimiser skips it) so that
``state_dict`` and the training loop's best-weights restore carry it along.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class WeightAveraged(nn.Module):
    """``net`` while training, its exponential weight average while evaluating."""

    def __init__(self, net: nn.Module, momentum: float = 0.98) -> None:
        super().__init__()
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"weight-average momentum must be in [0, 1), got {momentum}")
        self.net, self.momentum = net, momentum
        self.average = copy.deepcopy(net).requires_grad_(False)
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self) -> None:
        """θ̄ ← m_t θ̄ + (1 − m_t) θ (call once per optimiser step)."""
        t = self.steps.float()
        m = torch.clamp((1 + t) / (10 + t), max=self.momentum)
        avg = list(self.average.parameters())
        torch._foreach_lerp_(avg, list(self.net.parameters()), 1.0 - m)
        self.steps += 1

    def evaluated(self) -> nn.Module:
        return self.net if self.training else self.average

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.evaluated()(*args, **kwargs)
