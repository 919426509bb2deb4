"""aa-knn: exact neighbours, k=1 memorises, k=N is the prior."""

from __future__ import annotations

import numpy as np
import pytest
from baseline_helpers import build, tiny_split

from affectkit import EmotionDataset, UserError
from tests.tolerances import rounding_tol


@pytest.fixture(scope="module")
def split():
    return tiny_split()


def _dataset(x: np.ndarray, y: np.ndarray) -> EmotionDataset:
    n = len(x)
    return EmotionDataset(
        name="toy",
        modalities={"a": x[:, :3], "b": x[:, 3:].reshape(n, 2, -1)},
        targets=y,
        emotions=[f"e{i}" for i in range(y.shape[1])],
        subject=np.zeros(n),
        trial=np.arange(n),
        window=np.zeros(n),
    )


def _toy(n: int = 60, seed: int = 0) -> EmotionDataset:
    rng = np.random.default_rng(seed)
    return _dataset(rng.normal(size=(n, 7)).astype(np.float32), rng.dirichlet(np.ones(4), n))


def test_k1_on_training_data_returns_the_training_labels(split):
    knn = build("aa-knn", split.train, {"k": 1})
    knn.fit(split.train)
    # exact: the mean of one neighbour's row is that row (a tie in distance would pick
    # another row, which no tolerance should hide)
    np.testing.assert_array_equal(knn.predict(split.train), split.train.targets)


def test_k_equal_to_n_predicts_the_training_mean():
    data = _toy()
    knn = build("aa-knn", data, {"k": len(data)})
    knn.fit(data)
    expected = np.repeat(data.targets.mean(0, keepdims=True), 5, axis=0)
    # the expected mean is a float32 numpy mean of 60 rows (values ≤ 1), the prediction a
    # float64 one: the float32 sum's rounding over 60 terms
    np.testing.assert_allclose(
        knn.predict(_toy(5, seed=1)), expected, rtol=0, atol=rounding_tol(len(data))
    )


def test_neighbours_match_brute_force_across_chunks():
    data, queries = _toy(80), _toy(23, seed=2)
    knn = build("aa-knn", data, {"k": 5, "chunk_size": 4})  # several chunks, a ragged last one
    knn.fit(data)
    flat = lambda d: np.concatenate([d.modalities["a"], d.modalities["b"].reshape(len(d), -1)], 1)  # noqa: E731
    dist = ((flat(queries)[:, None, :] - flat(data)[None, :, :]) ** 2).sum(-1)
    expected = np.argsort(dist, axis=1)[:, :5]
    got = knn.neighbours(knn.features(queries)).numpy()
    np.testing.assert_array_equal(np.sort(got, 1), np.sort(expected, 1))
    # a float32 numpy mean of 5 rows against the method's float64 mean
    want = data.targets[expected].mean(1)
    np.testing.assert_allclose(knn.predict(queries), want, rtol=0, atol=rounding_tol(5))


def test_validation_part_joins_the_reference_set():
    data, extra = _toy(30), _toy(10, seed=3)
    knn = build("aa-knn", data, {"k": 1})
    knn.fit(data, extra)
    np.testing.assert_array_equal(knn.predict(extra), extra.targets)  # k = 1: exact


def test_k_larger_than_the_training_set_is_a_user_error():
    data = _toy(10)
    with pytest.raises(UserError, match="k=11"):
        build("aa-knn", data, {"k": 11}).fit(data)
