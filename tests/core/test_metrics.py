import numpy as np
import pytest

from affectkit.metrics import (
    EPS,
    METRICS,
    canberra,
    chebyshev,
    clark,
    cosine,
    intersection,
    kl,
    score,
)


def test_hand_computed_values():
    y = np.array([[0.5, 0.3, 0.2]])
    p = np.array([[0.2, 0.3, 0.5]])
    assert chebyshev(y, p)[0] == pytest.approx(0.3)
    # clark: sqrt((0.3/0.7)^2 + 0 + (0.3/0.7)^2)
    assert clark(y, p)[0] == pytest.approx(np.sqrt(2) * 0.3 / 0.7)
    assert canberra(y, p)[0] == pytest.approx(2 * 0.3 / 0.7)
    assert kl(y, p)[0] == pytest.approx(0.5 * np.log(0.5 / 0.2) + 0.2 * np.log(0.2 / 0.5))
    assert cosine(y, p)[0] == pytest.approx(0.29 / 0.38)  # same norm sqrt(0.38) on both sides
    assert intersection(y, p)[0] == pytest.approx(0.2 + 0.3 + 0.2)


def test_identical_distributions_are_perfect():
    rng = np.random.default_rng(0)
    y = rng.dirichlet(np.ones(10), size=50)
    s = score(y, y)
    for name in ("chebyshev", "clark", "canberra", "kl"):
        assert s[name] == pytest.approx(0.0, abs=1e-12)
    assert s["cosine"] == pytest.approx(1.0)
    assert s["intersection"] == pytest.approx(1.0)


def test_zeros_and_one_hot_stay_finite_and_bounded():
    k = 10
    y = np.eye(k)[[0, 3, 7]]
    p = np.eye(k)[[1, 3, 2]]
    for name, m in METRICS.items():
        v = m(y, p)
        assert np.isfinite(v).all(), name
    # disjoint one-hots hit the upper bounds: clark sqrt(2), canberra 2 (only 2 non-equal bins)
    assert clark(y[:1], p[:1])[0] == pytest.approx(np.sqrt(2), rel=1e-6)
    assert canberra(y[:1], p[:1])[0] == pytest.approx(2.0, rel=1e-6)
    assert intersection(y[:1], p[:1])[0] == 0.0
    assert cosine(y[:1], p[:1])[0] == 0.0
    # identical one-hots: zeros on both sides are not penalised
    assert kl(y[1:2], p[1:2])[0] == pytest.approx(0.0, abs=1e-12)
    assert clark(y[1:2], p[1:2])[0] == pytest.approx(0.0, abs=1e-12)
    assert kl(y[:1], p[:1])[0] == pytest.approx(np.log(1 / EPS), rel=1e-6)


def test_bounds_hold_on_random_rows():
    rng = np.random.default_rng(1)
    k = 10
    y = rng.dirichlet(np.ones(k) * 0.3, size=500)
    p = rng.dirichlet(np.ones(k) * 0.3, size=500)
    assert (clark(y, p) <= np.sqrt(k) + 1e-9).all()
    assert (canberra(y, p) <= k + 1e-9).all()
    assert ((cosine(y, p) >= 0) & (cosine(y, p) <= 1 + 1e-12)).all()
    assert ((intersection(y, p) >= 0) & (intersection(y, p) <= 1 + 1e-12)).all()
    assert (kl(y, p) >= -1e-12).all()


def test_clipping_does_not_change_rows_without_zeros():
    y = np.array([[0.25, 0.25, 0.5]])
    p = np.array([[0.1, 0.6, 0.3]])
    manual = np.sum(np.abs(p - y) / (p + y))
    assert canberra(y, p)[0] == manual
    assert kl(y, p)[0] == np.sum(y * np.log(y / p))


def test_directions_and_shape_check():
    assert {n for n, m in METRICS.items() if m.higher_is_better} == {"cosine", "intersection"}
    with pytest.raises(ValueError):
        kl(np.ones((2, 3)) / 3, np.ones((2, 4)) / 4)
