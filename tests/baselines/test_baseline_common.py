"""Properties every learned baseline must have, run on one tiny subject-split dataset."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from baseline_helpers import LEARNED, NEURAL, assert_distributions, build, tiny_split

from affectkit import get_registry
from affectkit.bench import expand_methods, resolve_configs
from affectkit.evaluate import method_train_config

FAST = {"epochs": 3, "patience": 0}  # tiny budget: these tests check plumbing, not accuracy


@pytest.fixture(scope="module")
def split():
    return tiny_split()


@pytest.fixture(scope="module")
def fitted(split):
    """One fitted instance per method (seed 0) and its test predictions."""
    out = {}
    for name in LEARNED:
        method = build(name, split.train, seed=0, **FAST)
        method.fit(split.train, split.valid)
        out[name] = (method, method.predict(split.test))
    return out


def test_every_baseline_is_selected_by_the_baselines_group():
    assert set(expand_methods("baselines")) >= {"prior", "mlp", *LEARNED}
    for name in LEARNED:
        assert "baseline" in get_registry().get("method", name).tags


@pytest.mark.parametrize("name", LEARNED)
def test_predictions_are_distributions(name, fitted, split):
    _, pred = fitted[name]
    assert_distributions(pred, len(split.test), split.test.spec.num_emotions)


@pytest.mark.parametrize("name", LEARNED)
def test_same_seed_same_predictions_and_checkpoint_round_trip(name, fitted, split):
    first, pred = fitted[name]
    again = build(name, split.train, seed=0, **FAST)
    again.fit(split.train, split.valid)
    np.testing.assert_array_equal(again.predict(split.test), pred)
    restored = build(name, split.train, seed=0, **FAST)
    restored.load_state_dict({k: v.clone() for k, v in first.state_dict().items()})
    # bit for bit: the same weights through the same operations in this process
    np.testing.assert_array_equal(restored.predict(split.test), pred)


@pytest.mark.parametrize("name", NEURAL)
def test_seed_changes_the_initialisation(name, fitted, split):
    other = build(name, split.train, seed=1, **FAST)
    other.fit(split.train, split.valid)
    assert not np.allclose(other.predict(split.test), fitted[name][1], atol=1e-6)


def _batch(data):
    batch = {m: torch.from_numpy(x) for m, x in data.modalities.items()}
    batch["target"] = torch.from_numpy(data.targets)
    return batch


@pytest.mark.parametrize("name", NEURAL)
def test_training_reduces_the_methods_own_loss(name, split):
    method = build(name, split.train, seed=0, epochs=15, patience=0, lr=3e-3)
    method.predict(split.train)  # builds the seeded, untrained model (eval mode)
    batch = _batch(split.train)
    with torch.no_grad():
        before = float(method.loss(batch))
    method.fit(split.train)  # rebuilds the same initial weights from the seed, then trains
    with torch.no_grad():
        after = float(method.loss(batch))
    assert after < 0.7 * before, (before, after)


def test_helo_keeps_published_defaults_under_an_epochs_override():
    (cfg,) = resolve_configs(["helo"], overrides=["train.epochs=300"])
    train = method_train_config(cfg)
    assert train.epochs == 300
    assert (train.lr, train.weight_decay, train.lr_decay, train.batch_size) == (
        1e-3,
        1e-5,
        0.99,
        128,
    )


def test_prior_is_the_mean_of_the_whole_training_fold(split):
    # the protocol's validation hold-out is training data for a method without early stopping
    prior = build("prior", split.train, seed=0)
    prior.fit(split.train, split.valid)
    both = np.concatenate([split.train.targets, split.valid.targets]).astype(np.float64).mean(0)
    # float32 target rows sum to 1 within ~1e-7, and the prior is renormalised
    np.testing.assert_allclose(prior.predict(split.test)[0], both / both.sum(), rtol=1e-12)
    assert not np.allclose(both, split.train.targets.astype(np.float64).mean(0), rtol=1e-4)
