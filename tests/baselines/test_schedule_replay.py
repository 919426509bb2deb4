"""benchmarks/schedule_replay.py replays early stopping on a recorded validation curve; the
replay must be what training with that patience does (training does not depend on when it
is validated), or the patience chosen there rests on nothing."""

from __future__ import annotations

from affectkit.bench import resolve_configs
from affectkit.datasets import load_dataset
from affectkit.evaluate import (
    build_protocol,
    fit_valid_split,
    fold_seed,
    method_train_config,
    run_fold,
)
from benchmarks.schedule_replay import NEVER, _Curve, _prior_kl, replay

TINY = [
    "dataset.subjects=5",
    "dataset.trials=8",
    "dataset.windows=6",
    "method.dim=32",
    "train.batch_size=16",
    "train.steps=40",
    "train.evaluations=10",
    "train.refit=false",
]


def _fold(patience: int):
    (cfg,) = resolve_configs(["helo"], overrides=[*TINY, f"train.patience={patience}"])
    data = load_dataset(cfg.dataset)
    protocol = build_protocol(cfg)
    fold = protocol.folds(data)[0]
    curve = _Curve()
    result, _ = run_fold(cfg, data, protocol, fold, seed=0, callbacks=curve)
    fit, valid = fit_valid_split(
        protocol, data, fold, method_train_config(cfg), fold_seed(0, fold.index)
    )
    return result.fit_info, curve.points, _prior_kl(data.targets[fit], data.targets[valid])


def test_replayed_early_stopping_is_what_training_does():
    _, curve, start_kl = _fold(NEVER)
    assert [s for s, _ in curve] == list(range(4, 41, 4))  # the whole budget, every 4 steps
    for patience in (1, 2, 3):
        info, _, _ = _fold(patience)
        got = replay(curve, start_kl, 40, 4, patience)
        assert (got["selected_step"], got["steps_trained"]) == (
            info["best_step"],
            info["steps_run"],
        ), patience
        assert abs(got["selected_kl"] - info["best_valid_kl"]) <= 1e-6
        assert info["steps_run"] < 40  # it did stop early: the comparison is not vacuous


def test_replay_by_hand():
    curve = [(15, 0.5), (30, 0.4), (45, 0.45), (60, 0.41), (75, 0.39), (90, 0.5), (100, 0.6)]
    assert replay(curve, 1.0, 100, 15, 5) == {
        "selected_step": 75,
        "selected_kl": 0.39,
        "steps_trained": 100,  # never 5 bad validations in a row: the whole budget
        "validations": 8,  # step 0 and seven more
    }
    assert replay(curve, 1.0, 100, 15, 2)["selected_step"] == 30  # 45 and 60 were worse
    every_other = replay(curve, 1.0, 100, 30, 2)  # 30, 60, 90: two bad after 30
    assert (every_other["selected_step"], every_other["steps_trained"]) == (30, 90)
    assert replay(curve, 0.3, 100, 15, 2)["selected_step"] == 0  # the prior start stays best
