"""Training length: the resolved schedule, what the loop trains, and what every fold records."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from affectkit.bench import resolve_configs
from affectkit.datasets import load_dataset
from affectkit.evaluate import build_protocol, fold_schedules, run_fold
from affectkit.parallel import can_run_parallel, run_folds_parallel
from affectkit.training import TrainConfig, resolve_schedule, train_loop

TINY = ["dataset.subjects=4", "dataset.trials=8", "dataset.windows=6", "protocol.folds=null"]


@pytest.mark.parametrize(
    ("n_fit", "expected"),
    [
        (100, 300),  # one batch per epoch: the floor gives 300 steps, not 30
        (128 * 20, 600),  # 20 batches x 30 passes, inside the clamp
        (200_000, 3000),  # 1563 batches x 30 passes is capped
    ],
)
def test_adaptive_budget_is_passes_clamped_to_floor_and_cap(n_fit, expected):
    cfg = TrainConfig(batch_size=128, passes=30, min_steps=300, max_steps=3000, evaluations=20)
    plan = resolve_schedule(cfg, n_fit)
    assert plan.rule == "budget" and plan.steps == expected
    assert plan.steps_per_epoch == math.ceil(n_fit / 128)
    assert plan.eval_every == math.ceil(expected / 20)
    assert plan.epochs == pytest.approx(expected / plan.steps_per_epoch)


def test_steps_win_over_epochs_and_epochs_validate_once_per_epoch():
    assert resolve_schedule(TrainConfig(steps=7, epochs=3, batch_size=10), 95).steps == 7
    plan = resolve_schedule(TrainConfig(epochs=3, batch_size=10), 95)
    assert (plan.steps, plan.steps_per_epoch, plan.eval_every, plan.rule) == (30, 10, 10, "epochs")


def test_user_length_beats_a_method_default_of_the_other_kind():
    method_defaults = {"epochs": 3, "batch_size": 256}
    assert TrainConfig(steps=50).resolved(method_defaults).epochs is None
    assert TrainConfig(epochs=9).resolved({"steps": 40}).steps is None
    assert TrainConfig().resolved(method_defaults).epochs == 3


class _Linear(nn.Module):
    def __init__(self, d: int, k: int) -> None:
        super().__init__()
        self.lin = nn.Linear(d, k)

    def forward(self, batch):
        return self.lin(batch["x"])


def _data(n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g)
    y = torch.softmax(x @ torch.randn(5, 3, generator=g), dim=-1)
    return {"x": x, "target": y}


def _fit(cfg: TrainConfig, train, valid=None, steps=None):
    torch.manual_seed(0)
    model = _Linear(5, 3)
    calls = []

    def loss(b):
        from affectkit import kl_loss

        return kl_loss(model(b), b["target"])

    info = train_loop(
        model,
        loss,
        model,
        train,
        valid,
        cfg,
        seed=0,
        after_step=lambda: calls.append(1),
        steps=steps,
    )
    return model, info, len(calls)


def test_loop_trains_exactly_the_budget_across_partial_epochs():
    cfg = TrainConfig(steps=23, batch_size=10, patience=0)
    _, info, calls = _fit(cfg, _data(45))  # 5 batches per epoch: 4 epochs and 3 steps
    assert calls == info["steps_run"] == 23
    assert info["steps_per_epoch"] == 5 and info["epochs_run"] == pytest.approx(4.6)
    assert info["schedule_rule"] == "steps"


def test_patience_counts_evaluations_and_the_best_step_is_restored():
    # lr so large that validation KL gets worse after the first evaluations
    cfg = TrainConfig(
        steps=200, evaluations=20, patience=3, batch_size=8, lr=5.0, grad_clip=None, shrink=False
    )
    model, info, calls = _fit(cfg, _data(40), _data(40, seed=1))
    assert info["steps_run"] < 200 and calls == info["steps_run"]
    assert info["steps_run"] == info["best_step"] + 3 * 10  # stopped 3 evaluations later
    assert info["best_step"] % 10 == 0
    from affectkit.training import evaluate_kl

    valid = _data(40, seed=1)
    with torch.no_grad():
        kl = evaluate_kl(model, valid, 100)
    assert kl == pytest.approx(info["best_valid_kl"], rel=1e-6)


def test_same_seed_same_numbers():
    cfg = TrainConfig(steps=17, batch_size=8, patience=0)
    m1, _, _ = _fit(cfg, _data(30))
    m2, _, _ = _fit(cfg, _data(30))
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def _setup(method, *extra):
    (cfg,) = resolve_configs([method], overrides=[*TINY, "method.dropout=0", *extra])
    data = load_dataset(cfg.dataset)
    proto = build_protocol(cfg)
    return cfg, data, proto, proto.folds(data)


def test_every_fold_records_steps_and_epochs_and_config_show_agrees():
    cfg, data, proto, folds = _setup(
        "mlp", "train.epochs=null", "train.min_steps=20", "train.refit=false"
    )
    planned = fold_schedules(cfg, data)
    result, _ = run_fold(cfg, data, proto, folds[0], seed=0)
    info = result.fit_info
    assert info["steps_budget"] == planned[0]["steps"]
    assert info["steps_per_epoch"] == planned[0]["steps_per_epoch"]
    assert info["steps_run"] <= info["steps_budget"] and info["epochs_run"] > 0
    assert info["schedule_rule"] == "budget"


def test_refit_trains_the_selected_epochs_on_fit_plus_validation():
    cfg, data, proto, folds = _setup(
        "mlp", "train.steps=40", "train.patience=2", "train.evaluations=8", "train.refit=true"
    )
    result, _ = run_fold(cfg, data, proto, folds[0], seed=0)
    info = result.fit_info
    assert info["schedule_rule"] == "refit"
    n_all = len(folds[0].train)
    fit, _ = proto.validation_split(data, folds[0].train, 0.15, result.seed)
    per_fit, per_all = math.ceil(len(fit) / 128), math.ceil(n_all / 128)
    assert info["steps_run"] == max(0, round(info["selected_step"] / per_fit * per_all))


@pytest.mark.parametrize(("patience", "refit"), [(0, False), (2, False), (2, True)])
def test_fold_parallel_follows_the_same_step_schedule(patience, refit):
    # 36 fit windows per fold at batch 8: 5 batches per epoch, validation every 3 steps, i.e.
    # mid-epoch; fold-parallel training must stop and keep weights at the same steps.
    cfg, data, proto, folds = _setup(
        "mlp",
        "train.epochs=null",
        "train.batch_size=8",
        "train.min_steps=24",
        "train.passes=1",
        "train.evaluations=8",
        f"train.patience={patience}",
        f"train.refit={str(refit).lower()}",
    )
    assert can_run_parallel(cfg, data, proto, folds, seed=0)
    seq = [run_fold(cfg, data, proto, f, seed=0) for f in folds]
    par = run_folds_parallel(cfg, data, proto, folds, seed=0)
    for (r1, p1), (r2, p2) in zip(seq, par, strict=True):
        keys = ["steps_run", "steps_per_epoch", "schedule_rule", "shrink_alpha"]
        keys += ["selected_step", "selection_steps_run"] if refit else ["best_step"]
        for key in keys:
            assert r1.fit_info[key] == r2.fit_info[key], key
        np.testing.assert_allclose(p1.pred, p2.pred, atol=1e-4)


def test_mixed_kl_is_the_kl_of_the_mixture_for_every_weight():
    from affectkit.training import SHRINK_ALPHAS, mixed_kl

    data = _data(12)
    logits = torch.randn(12, 3, generator=torch.Generator().manual_seed(3))
    prior = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    kls = mixed_kl(lambda b: logits[: len(b["x"])] if len(b["x"]) == 12 else None, data, 100, prior)
    y = data["target"].double()
    for a, kl in zip(SHRINK_ALPHAS, kls, strict=True):
        q = a * torch.softmax(logits.double(), -1) + (1 - a) * prior
        expected = (torch.special.xlogy(y, y) - y * torch.log(q)).sum(-1).mean()
        assert float(kl) == pytest.approx(float(expected), rel=1e-12)


def test_shrinkage_is_chosen_on_validation_applied_in_predict_and_saved():
    # targets that the features cannot predict: held-out subjects favour the prior
    cfg, data, proto, folds = _setup("mlp", "train.steps=30", "train.evaluations=5")
    rng = np.random.default_rng(0)
    data.targets = data.targets[rng.permutation(len(data.targets))]
    from affectkit.data import Standardizer
    from affectkit.evaluate import build_method

    fold = folds[0]
    fit, val = proto.validation_split(data, fold.train, 0.2, 0)
    norm = Standardizer.fit(data.subset(fold.train))
    method = build_method(cfg, data.spec, 0)
    info = method.fit(norm.transform(data.subset(fit)), norm.transform(data.subset(val)))
    assert info["shrink_alpha"] < 1 and method.shrinkage is not None
    alpha, prior = method.shrinkage
    assert alpha == info["shrink_alpha"]
    test = norm.transform(data.subset(fold.test))
    pred = method.predict(test)
    method.shrinkage = None
    raw = method.predict(test)
    np.testing.assert_allclose(pred, alpha * raw + (1 - alpha) * prior.numpy(), atol=1e-12)
    # the refit's prior is the mean of fit + validation targets
    both = np.concatenate([fit, val])
    np.testing.assert_allclose(prior.numpy(), data.targets[both].mean(0), atol=1e-6)
    method.shrinkage = (alpha, prior)
    again = build_method(cfg, data.spec, 0)
    again.load_state_dict(method.state_dict())
    np.testing.assert_array_equal(again.predict(test), pred)


def test_prior_start_predicts_the_fit_prior_before_training():
    for name in ("mlp", "mpcl", "dgcnn", "late-fusion", "label-gcn", "helo"):
        cfg, data, _, folds = _setup(name, "train.steps=1")
        from affectkit.evaluate import build_method

        method = build_method(cfg, data.spec, 0)
        if name == "label-gcn":
            method.adjacency = torch.eye(data.spec.num_emotions)
        method.model = None
        method._ensure_model()
        target = torch.from_numpy(data.targets[folds[0].train])
        method._start(target)
        method.shrinkage = None
        pred = method.predict(data.subset(folds[0].test))
        expected = target.double().mean(0).numpy()
        np.testing.assert_allclose(pred, np.broadcast_to(expected, pred.shape), atol=1e-6)


def test_config_show_prints_the_resolved_length_of_every_fold(run_cli):
    code, out = run_cli(
        "config", "show", "--method", "mlp", "-p", "subject-dependent",
        *[x for s in TINY[:3] for x in ("--set", s)],
        "--set", "train.batch_size=8", "--set", "protocol.gap=0",
    )  # fmt: skip
    assert code == 0
    assert "# training length on synthetic, subject-dependent, each of 4 folds:" in out
    # 8 trials x 6 windows: the first 5 of each trial train (40); of those, the last 20 %
    # of each trial validate (1 window) and 4 fit: 32 fit windows are 4 batches of 8
    assert "fit 32, validation 8" in out and "-> 300 steps (75 epochs of 4, rule budget)" in out
    code, out = run_cli("config", "show", "--method", "mlp", "--set", "train.steps=17")
    assert code == 0 and "-> 17 steps" in out and "rule steps" in out
