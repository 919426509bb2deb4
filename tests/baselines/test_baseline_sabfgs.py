"""sa-bfgs: the maximum-entropy model recovers a softmax-linear ground truth."""

from __future__ import annotations

import numpy as np
import pytest
from baseline_helpers import build, mean_kl, tiny_split

from affectkit import EmotionDataset


@pytest.fixture(scope="module")
def split():
    return tiny_split()


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _linear_world(n: int, seed: int, w: np.ndarray, b: np.ndarray) -> EmotionDataset:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, w.shape[1])).astype(np.float32)
    y = _softmax(x.astype(np.float64) @ w.T + b)
    return EmotionDataset(
        name="linear",
        modalities={"x": x},
        targets=y,
        emotions=[f"e{i}" for i in range(w.shape[0])],
        subject=np.zeros(n),
        trial=np.arange(n),
        window=np.zeros(n),
    )


def test_recovers_a_softmax_linear_ground_truth():
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.8, size=(5, 6))
    w -= w.mean(0, keepdims=True)  # the identifiable representative (rows sum to 0)
    b = rng.normal(0, 0.5, size=5)
    train, test = _linear_world(2000, 1, w, b), _linear_world(300, 2, w, b)
    model = build("sa-bfgs", train, {"l2": 1e-8})
    info = model.fit(train)
    assert info["final_objective"] < 1e-6
    # not rounding (the fit is float64): how close L-BFGS gets to the generating weights
    # from 2000 samples with the objective below 1e-6
    np.testing.assert_allclose(model.weight.numpy(), w, atol=2e-3)
    bias = model.bias.numpy()
    np.testing.assert_allclose(bias - bias.mean(), b - b.mean(), atol=2e-3)
    np.testing.assert_allclose(model.predict(test), test.targets, atol=1e-3)


def test_l2_shrinks_weights_and_fit_beats_the_uniform_start(split):
    weak = build("sa-bfgs", split.train, {"l2": 1e-3})
    strong = build("sa-bfgs", split.train, {"l2": 10.0})
    info = weak.fit(split.train)
    strong.fit(split.train)
    uniform = np.full_like(split.train.targets, 1 / split.train.targets.shape[1])
    assert info["final_objective"] < 0.5 * mean_kl(split.train.targets, uniform)
    assert strong.weight.norm() < 0.5 * weak.weight.norm()
    # the unpenalised bias keeps rows summing to zero over emotions: softmax shift invariance
    # exact in exact arithmetic (every gradient's columns sum to zero); float64 rounding
    # over the L-BFGS iterations stays many orders below this
    np.testing.assert_allclose(weak.weight.sum(0).numpy(), 0.0, atol=1e-6)
