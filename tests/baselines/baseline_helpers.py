"""Helpers and fixtures shared by the baseline tests.

Imported by name (pytest puts this folder on sys.path). Each test module wraps
:func:`tiny_split` in a ``split`` fixture; ``tests/conftest.py`` already points
``AFFECTKIT_CACHE`` at a temporary folder for every test, and the tiny dataset bypasses
the cache anyway.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from affectkit import EmotionDataset, Method, Standardizer, TrainConfig, get_registry
from affectkit.datasets import load_dataset
from tests.tolerances import rounding_tol

TINY = {"name": "synthetic", "subjects": 4, "trials": 8, "windows": 6}
LEARNED = ["aa-knn", "sa-bfgs", "late-fusion", "dgcnn", "label-gcn", "helo"]
NEURAL = ["late-fusion", "dgcnn", "label-gcn", "helo"]


def build(
    name: str, data: EmotionDataset, config: dict | None = None, *, seed: int = 0, **train: Any
) -> Method:
    """Build a registered method exactly as the evaluator does (train defaults merged)."""
    entry = get_registry().get("method", name)
    tc = TrainConfig(**train).resolved(getattr(entry.factory, "train_defaults", {}))
    return entry.build(config, spec=data.spec, train=tc, seed=seed, device="cpu")


def mean_kl(y: np.ndarray, p: np.ndarray) -> float:
    """Mean over rows of KL(y ‖ p), 0·log 0 = 0."""
    y, p = np.asarray(y, np.float64), np.asarray(p, np.float64)
    ratio = np.log(np.where(y > 0, y, 1.0)) - np.log(np.clip(p, 1e-300, None))
    return float(np.where(y > 0, y * ratio, 0.0).sum(1).mean())


def assert_distributions(p: np.ndarray, n: int, k: int) -> None:
    assert p.shape == (n, k)
    assert np.isfinite(p).all()
    assert (p >= 0).all()
    # a softmax over k (exp, a k-term sum, a division) or a mixture/mean of a few of them,
    # summed again here: at most 3·k roundings of values ≤ 1
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=0, atol=rounding_tol(3 * k))


def wesad_like(n: int = 64, seed: int = 0, behavioral: bool = True) -> EmotionDataset:
    """WESAD-wrist-shaped data: ppg, gsr, temp (physiological), acc (behavioral), no EEG."""
    rng = np.random.default_rng(seed)
    mods = {
        "ppg": rng.normal(size=(n, 27)),
        "gsr": rng.normal(size=(n, 28)),
        "temp": rng.normal(size=(n, 4)),
    }
    groups = dict.fromkeys(mods, "physiological")
    if behavioral:
        mods["acc"] = rng.normal(size=(n, 12))
        groups["acc"] = "behavioral"
    subjects = np.repeat(np.arange(1, 5), int(np.ceil(n / 4)))[:n]
    return EmotionDataset(
        name="wesad-like",
        modalities=mods,
        targets=rng.dirichlet(np.ones(10), n),
        emotions=[f"e{i}" for i in range(10)],
        subject=subjects.astype(str),
        trial=np.arange(n) // 4,
        window=np.arange(n) % 4,
        groups=groups,
    )


@dataclass
class Split:
    train: EmotionDataset
    valid: EmotionDataset
    test: EmotionDataset


@functools.cache
def tiny_split() -> Split:
    """The tiny synthetic dataset split by subject: 1-2 fit, 3 validates, 4 tests, with
    statistics from subjects 1-3 only (as the evaluator does). Cached: treat as read-only."""
    cfg = get_registry().get("dataset", "synthetic").config_cls(**TINY)
    data = load_dataset(cfg, use_cache=False)
    tr = np.flatnonzero(np.isin(data.subject, ["1", "2"]))
    va = np.flatnonzero(data.subject == "3")
    te = np.flatnonzero(data.subject == "4")
    norm = Standardizer.fit(data.subset(np.r_[tr, va]))
    return Split(*(norm.transform(data.subset(i)) for i in (tr, va, te)))
