"""The six label-distribution metrics (Geng 2016; used by MPCL and HeLo).

All take ``y`` (targets) and ``p`` (predictions) as ``[N, K]`` and return per-sample
scores ``[N]`` in float64. ``clark``, ``canberra`` and ``kl`` clip both inputs to
``[EPS, 1]`` with ``EPS`` the float64 machine epsilon (as PyLDL does), so zeros never
give NaN/inf; rows without zeros are unchanged by the clipping.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .interfaces import Metric

EPS = float(np.finfo(np.float64).eps)


def _prep(y: np.ndarray, p: np.ndarray, clip: bool) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    if y.shape != p.shape or y.ndim != 2:
        raise ValueError(f"metrics need y and p of equal shape [N, K]; got {y.shape}, {p.shape}")
    if clip:
        y, p = np.clip(y, EPS, 1.0), np.clip(p, EPS, 1.0)
    return y, p


def chebyshev(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """max_k |p_k - y_k|"""
    y, p = _prep(y, p, clip=False)
    return np.abs(p - y).max(axis=1)


def clark(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """sqrt(sum_k ((p_k - y_k) / (p_k + y_k))^2), at most sqrt(K)"""
    y, p = _prep(y, p, clip=True)
    return np.sqrt((((p - y) / (p + y)) ** 2).sum(axis=1))


def canberra(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """sum_k |p_k - y_k| / (p_k + y_k), at most K"""
    y, p = _prep(y, p, clip=True)
    return (np.abs(p - y) / (p + y)).sum(axis=1)


def kl(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """sum_k y_k ln(y_k / p_k)"""
    y, p = _prep(y, p, clip=True)
    return (y * np.log(y / p)).sum(axis=1)


def cosine(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """sum_k p_k y_k / (||p|| ||y||)"""
    y, p = _prep(y, p, clip=False)
    denom = np.linalg.norm(p, axis=1) * np.linalg.norm(y, axis=1)
    return (p * y).sum(axis=1) / np.maximum(denom, EPS)


def intersection(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """sum_k min(p_k, y_k)"""
    y, p = _prep(y, p, clip=False)
    return np.minimum(p, y).sum(axis=1)


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("chebyshev", chebyshev, False, "max absolute difference"),
        Metric("clark", clark, False, "Clark distance"),
        Metric("canberra", canberra, False, "Canberra distance"),
        Metric("kl", kl, False, "Kullback-Leibler divergence KL(y || p)"),
        Metric("cosine", cosine, True, "cosine similarity"),
        Metric("intersection", intersection, True, "intersection similarity"),
    )
}
METRIC_NAMES: tuple[str, ...] = tuple(METRICS)


def score(
    y: np.ndarray, p: np.ndarray, metrics: Mapping[str, Metric] | None = None
) -> dict[str, float]:
    """Mean of each metric over all samples."""
    metrics = METRICS if metrics is None else metrics
    return {name: float(m(y, p).mean()) for name, m in metrics.items()}


def per_sample(
    y: np.ndarray, p: np.ndarray, metrics: Mapping[str, Metric] | None = None
) -> dict[str, np.ndarray]:
    metrics = METRICS if metrics is None else metrics
    return {name: m(y, p) for name, m in metrics.items()}
