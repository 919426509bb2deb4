"""Polyak (exponential moving) averaging of a network's weights, used for evaluation.

A training-procedure choice of affectkit, not a part of MPCL's paper: with the small,
attention-based model and few subjects, validation KL jumps from epoch to epoch; the
average of the recent weights is smoother and generalises better (chosen on training-subject
validation, benchmarks/results/mpcl_search.md). After every optimiser step::

    m_t = min(m, (1 + t) / (10 + t))          warm-up: early averages forget the init fast
    θ̄  ← m_t · θ̄ + (1 − m_t) · θ

Training uses θ; evaluation (validation for early stopping, prediction) uses θ̄. θ̄ is held
in a frozen copy of the network (``requires_grad=False``: the optimiser skips it) so that
``state_dict`` and the training loop's best-weights restore carry it along.

:meth:`WeightAveraged.update` does the step on the module; :func:`update_stacked` does the
same on fold-parallel training's stacked ``[F, ...]`` state (affectkit.parallel).
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
        """θ̄ ← m_t θ̄ + (1 − m_t) θ (call once after every optimiser step)."""
        m = _momentum(self.steps, self.momentum)
        avg, net = self._pairs()
        torch._foreach_lerp_(avg, net, 1.0 - m)
        self.steps += 1

    def _pairs(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The (average, net) parameter lists, collected once: walking both module trees
        every step cost more than the update itself (mpcl: 78 tensors).
        ``load_state_dict`` copies into the same parameter objects; ``to()`` / ``cuda()``
        go through :meth:`_apply`, which drops the lists."""
        cached = self.__dict__.get("_pair_cache")
        if cached is None:
            cached = (list(self.average.parameters()), list(self.net.parameters()))
            self.__dict__["_pair_cache"] = cached
        return cached

    def _apply(self, fn, recurse=True):  # type: ignore[no-untyped-def]
        self.__dict__.pop("_pair_cache", None)
        return super()._apply(fn, recurse)

    def evaluated(self) -> nn.Module:
        return self.net if self.training else self.average

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.evaluated()(*args, **kwargs)


def _momentum(steps: torch.Tensor, momentum: float) -> torch.Tensor:
    """m_t = min(m, (1 + t) / (10 + t)) for step counts ``steps`` (any shape)."""
    t = steps.float()
    return torch.clamp((1 + t) / (10 + t), max=momentum)


@torch.no_grad()
def update_stacked(
    params: dict[str, torch.Tensor],
    buffers: dict[str, torch.Tensor],
    momentum: float,
    prefix: str = "",
) -> None:
    """:meth:`WeightAveraged.update` on stacked state, every fold at once, in place.

    ``params`` / ``buffers`` are ``torch.func.stack_module_state`` of a
    :class:`WeightAveraged` (``[F, ...]`` each; ``prefix`` = its name in a parent module,
    e.g. ``"model."``): each ``average.<name>`` moves towards ``net.<name>`` with its fold's
    m_t, and ``steps`` counts the step.
    """
    steps = buffers[f"{prefix}steps"]  # [F]
    weight = 1.0 - _momentum(steps, momentum)
    head = f"{prefix}average."
    for key, avg in params.items():
        if key.startswith(head):
            net = params[f"{prefix}net.{key[len(head) :]}"]
            avg.lerp_(net, weight.view(-1, *[1] * (avg.dim() - 1)).to(avg.dtype))
    steps += 1
