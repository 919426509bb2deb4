"""Exponential weight averaging: the update rule, which weights evaluate, and checkpoints."""

from __future__ import annotations

import torch
from affectkit_mpcl.averaging import WeightAveraged
from torch import nn


def test_update_follows_the_warmed_up_momentum():
    torch.manual_seed(0)
    wa = WeightAveraged(nn.Linear(3, 2), momentum=0.9)
    start = wa.average.weight.clone()
    with torch.no_grad():
        wa.net.weight.add_(1.0)
    wa.update()  # t = 0: m = min(0.9, 1/10) = 0.1
    torch.testing.assert_close(wa.average.weight, 0.1 * start + 0.9 * wa.net.weight)
    for _ in range(200):
        wa.update()
    torch.testing.assert_close(wa.average.weight, wa.net.weight)  # converges to a fixed θ
    assert int(wa.steps) == 201


def test_training_uses_raw_weights_evaluation_the_average():
    torch.manual_seed(1)
    wa = WeightAveraged(nn.Linear(3, 2), momentum=0.5)
    with torch.no_grad():
        wa.net.weight.mul_(-1.0)
    x = torch.randn(4, 3)
    wa.train()
    torch.testing.assert_close(wa(x), wa.net(x))
    wa.eval()
    torch.testing.assert_close(wa(x), wa.average(x))
    assert not torch.allclose(wa.net(x), wa.average(x))


def test_average_is_frozen_and_saved():
    wa = WeightAveraged(nn.Linear(3, 2))
    assert all(not p.requires_grad for p in wa.average.parameters())
    assert all(p.requires_grad for p in wa.net.parameters())
    state = wa.state_dict()
    assert {"average.weight", "net.weight", "steps"} <= set(state)
    other = WeightAveraged(nn.Linear(3, 2))
    other.load_state_dict(state)
    torch.testing.assert_close(other.average.weight, wa.average.weight)


def test_update_follows_the_weights_after_moves_copies_and_loads():
    """update() reuses its parameter lists across steps; moving, copying or loading the
    module must not leave it averaging tensors the module no longer uses."""
    import copy

    torch.manual_seed(2)
    wa = WeightAveraged(nn.Linear(3, 2), momentum=0.5)
    wa.update()  # the lists are collected here
    wa = wa.double()
    twin = copy.deepcopy(wa)
    twin.load_state_dict(WeightAveraged(nn.Linear(3, 2)).double().state_dict())
    for module in (wa, twin):
        with torch.no_grad():
            module.net.weight.fill_(3.0)
        for _ in range(100):
            module.update()
        assert module.average.weight.dtype == torch.float64
        torch.testing.assert_close(module.average.weight, module.net.weight)
