"""mpcl under fold-parallel training: the stacked weight average, and equality with sequential."""

from __future__ import annotations

import pytest
import torch
from affectkit_mpcl.averaging import WeightAveraged, update_stacked
from torch import nn
from torch.func import stack_module_state

from tests.tolerances import assert_fold_parallel_matches, rounding_tol

TINY = ["dataset.subjects=4", "dataset.trials=8", "dataset.windows=6", "protocol.folds=null"]
NO_DROPOUT = [
    "method.dropout=0",
    "method.fusion={name: msaf, dropout: 0}",
    "method.head={name: hsc, dropout: 0}",
    "method.encoders={eeg: {name: graph-tokens, dropout: 0}, "
    "gsr: {name: projection-tokens, dropout: 0}, ppg: {name: projection-tokens, dropout: 0}, "
    "behavioral: {name: projection-tokens, dropout: 0}}",
]
# One step's longest chain of accumulated float32 terms in mpcl with dim 16, counted on the
# deepest path: behavioral encoder 768 -> 64 -> 64, MSAF attention over the tokens, the
# 288-wide flatten pool, three Hopfield retrievals and the head 48 -> 128 -> 10 (about
# 1500 terms; the linear skip's 913 inputs lie on a shorter, parallel path), forward and
# back, plus the batch (32) summed into every weight gradient.
MPCL_OPS_PER_STEP = 2 * 1500 + 32


def test_update_stacked_equals_update_per_fold():
    torch.manual_seed(0)
    nets = [WeightAveraged(nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4)), 0.9) for _ in range(3)]
    params, buffers = stack_module_state(nets)
    steps = 15
    for step in range(steps):  # through the warm-up (m_t < 0.9) and past it
        with torch.no_grad():
            for f, wa in enumerate(nets):
                for p in wa.net.parameters():
                    p.add_(torch.randn_like(p))
                for name, p in wa.net.named_parameters():
                    params[f"net.{name}"][f].copy_(p)
            for wa in nets:
                wa.update()
            update_stacked(params, buffers, 0.9)
        for f, wa in enumerate(nets):
            for name, p in wa.average.named_parameters():
                # a lerp per step (the weight 1 − m_t, a difference, a product, a sum: 4
                # roundings) with another kernel and the weight as a tensor; the average
                # carries earlier differences forward without growing them (factor m_t < 1)
                tol = rounding_tol(4 * steps, scale=params[f"net.{name}"].abs().max())
                torch.testing.assert_close(params[f"average.{name}"][f], p, rtol=0, atol=tol)
        assert buffers["steps"].tolist() == [step + 1] * 3


def test_update_stacked_with_prefix():
    torch.manual_seed(0)
    nets = [WeightAveraged(nn.Linear(2, 2)) for _ in range(2)]
    for wa in nets:
        with torch.no_grad():
            wa.net.weight.add_(1.0)
    params, buffers = stack_module_state(nets)
    params = {f"model.{k}": v for k, v in params.items()}
    buffers = {f"model.{k}": v for k, v in buffers.items()}
    before = params["model.average.weight"].clone()
    update_stacked(params, buffers, 0.98, prefix="model.")
    assert buffers["model.steps"].tolist() == [1, 1]
    assert not torch.equal(params["model.average.weight"], before)


def test_mpcl_qualifies_for_fold_parallel(registry):
    assert registry.get("method", "mpcl").factory.fold_parallel


@pytest.mark.parametrize(
    "extra",
    [
        ("train.epochs=2", "train.patience=0"),
        ("train.epochs=3", "train.patience=2"),  # validation (of the average) picks the epoch
    ],
    ids=["no-valid", "early-stopping"],
)
def test_fold_parallel_equals_sequential(extra):
    from affectkit.bench import resolve_configs
    from affectkit.datasets import load_dataset
    from affectkit.evaluate import build_protocol
    from affectkit.parallel import can_run_parallel

    over = [*TINY, "method.dim=16", "train.batch_size=32", *NO_DROPOUT, *extra]
    (cfg,) = resolve_configs(["mpcl"], overrides=over)
    assert cfg.method.weight_average is not None  # the averaged weights are what is scored
    data = load_dataset(cfg.dataset)
    proto = build_protocol(cfg)
    folds = proto.folds(data)
    assert can_run_parallel(cfg, data, proto, folds, seed=0)
    assert_fold_parallel_matches(cfg, data, proto, folds, MPCL_OPS_PER_STEP)
