"""TorchMethod.after_step / after_step_stacked: called once per optimiser step, in each path."""

import dataclasses
import math

import pytest
import torch

from affectkit.bench import resolve_configs
from affectkit.datasets import load_dataset
from affectkit.evaluate import build_protocol, run_fold
from affectkit.parallel import run_folds_parallel
from affectkit.plugins import get_registry

TINY = ["dataset.subjects=4", "dataset.trials=8", "dataset.windows=6", "protocol.folds=null"]
EPOCHS, BATCH = 2, 32


@pytest.fixture
def counting(monkeypatch):
    """The registered ``mlp`` method, replaced by a subclass that records every hook call."""
    registry = get_registry()
    entry = registry.get("method", "mlp")
    calls: list[tuple] = []

    class Counting(entry.factory):
        def after_step(self) -> None:
            calls.append(("step", None))

        def after_step_stacked(self, params, buffers) -> None:
            assert not torch.is_grad_enabled()
            expected = dict(self.model.named_parameters()) | dict(self.model.named_buffers())
            assert set(params) | set(buffers) == set(expected)
            calls.append(("stacked", {k: v.shape for k, v in params.items()}))

    monkeypatch.setitem(
        registry._entries["method"], "mlp", dataclasses.replace(entry, factory=Counting)
    )
    return calls


def setup():
    over = [*TINY, f"train.epochs={EPOCHS}", f"train.batch_size={BATCH}", "train.patience=0"]
    (cfg,) = resolve_configs(["mlp"], overrides=over)
    data = load_dataset(cfg.dataset)
    proto = build_protocol(cfg)
    folds = proto.folds(data)
    return cfg, data, proto, folds


def steps_per_fold(fold) -> int:
    return EPOCHS * math.ceil(len(fold.train) / BATCH)  # patience=0: no validation split


def test_after_step_once_per_optimiser_step(counting):
    cfg, data, proto, folds = setup()
    for fold in folds:
        counting.clear()
        run_fold(cfg, data, proto, fold, seed=0)
        assert [kind for kind, _ in counting] == ["step"] * steps_per_fold(fold)


def test_after_step_stacked_once_per_optimiser_step(counting):
    cfg, data, proto, folds = setup()
    run_folds_parallel(cfg, data, proto, folds, seed=0)
    assert len(counting) == steps_per_fold(folds[0])
    for kind, shapes in counting:
        assert kind == "stacked"
        assert all(s[0] == len(folds) for s in shapes.values())  # [F, ...] every fold at once
