"""Tolerances for float32 results that two correct computations may round differently.

Two computations of the same float32 value differ when they round differently: another
summation order (SIMD width, blocking, batched against looped kernels), fused
multiply-add or not, another kernel on another CPU (AVX2 against AVX-512, another
oneDNN/BLAS path). A tolerance copied from what one machine gave fails on the next (an
AMD EPYC gave 1.26e-5 where a test allowed 1e-5), so every tolerance here follows from
the computation compared: its length, its magnitudes and float32's precision.

**Rounding.** Every float32 operation rounds with relative error at most u = EPS32/2 =
2⁻²⁴. A value reached through a chain of n roundings (a sum or dot product of n terms;
layers in a row add their lengths) is within γ_n·S ≈ n·u·S of the exact value, where S
bounds the magnitudes summed along the chain (Higham, *Accuracy and Stability of
Numerical Algorithms*, 2nd ed. 2002, Lemma 3.1, §3.1). That bound always holds but grows
like n while rounding errors mostly cancel: taken as independent and zero-mean, they
stay within λ·√n·u·S with probability at least 1 − 2n·exp(−λ²(1−u)²/2) (Higham & Mary,
*SIAM J. Sci. Comput.* 41(5), 2019, Thm. 2.4). Each of two computations is within that
of the exact value, so the two differ by at most twice it::

    rounding_tol(n, S) = min(n, λ√n) · EPS32 · S        λ = SURE = 7

With λ = 7 a chance failure is rarer than 1 in 10⁶ per compared value for n up to 10⁴;
for n ≤ λ² = 49 the worst-case bound (valid always) is the smaller one and is used.

**Training.** Two runs of one training that round differently drift apart: every
optimiser step adds a fresh difference of rounding_tol(n) relative to what it changes,
n being the longest chain of accumulated terms in one forward and backward pass (the
fan-ins along the deepest path, forward and back, plus the batch over which weight
gradients are summed). Adam divides each update by the gradient's running scale, so a
relative change of a gradient moves the update by about as much whatever the learning
rate, and earlier differences are carried forward. Over the few steps of a test the
dynamics neither damp nor amplify them much, so they add up: steps × per step (not
√steps: one step's difference feeds the next, they are not independent). This is a
first-order model, not a rigorous bound (training can amplify a perturbation), which is
why tests comparing trainings keep them to a few dozen steps. Logits drift by an
absolute amount δ; the softmax probabilities p_k ∝ exp(z_k) then drift by a *relative*
amount of at most 2δ, which :func:`training_rtol` returns.

**Metrics.** If every predicted probability changes by a relative amount of at most r,
each of the six metrics changes by at most 2K·r to first order (K emotions): KL,
intersection and Chebyshev by r, Clark by √K·r/2, cosine by 2r, Canberra by 2K·r (each
class |∂/∂p_k| · r·p_k = 2·max(y_k, p_k)·p_k/(y_k + p_k)² · r ≤ 2r).

**What stays exact.** Where both sides run the same operations on the same inputs with
the same kernels (one process, or equal thread counts on one machine), float arithmetic
is deterministic; those tests compare bit for bit (executor equality, same-seed
determinism, checkpoint round trips), since any tolerance there would hide a real change.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

EPS32 = float(np.finfo(np.float32).eps)  # 2**-23; the unit roundoff u is half of it
SURE = 7.0  # λ of the probabilistic bound (see the module docstring)


def rounding_tol(ops: int, scale: float = 1.0) -> float:
    """Largest |a − b| of two float32 evaluations of one value through ``ops`` roundings,
    of quantities (summed along the way) no larger than ``scale``."""
    ops = max(int(ops), 1)
    return min(ops, SURE * math.sqrt(ops)) * EPS32 * float(scale)


def training_steps(epochs: int, n_fit: int, batch_size: int) -> int:
    """Optimiser steps of ``epochs`` epochs over ``n_fit`` samples (an upper bound when the
    validation split is carved from them)."""
    return epochs * max(1, math.ceil(n_fit / batch_size))


def training_rtol(steps: int, ops_per_step: int) -> float:
    """Relative tolerance for the predicted probabilities of two trainings of ``steps``
    optimiser steps that differ only in rounding (module docstring, *Training*)."""
    return 2.0 * steps * rounding_tol(ops_per_step)


def metric_tol(rtol: float, num_emotions: int) -> float:
    """Absolute tolerance of the six metrics when every probability moves by ``rtol``
    relative at most (module docstring, *Metrics*)."""
    return 2.0 * num_emotions * rtol


def plan_rtol(n: int, m: int, *, lam: float = 0.1, outer: int = 5, inner: int = 20) -> float:
    """Relative tolerance of a GW plan computed in another order (batched or per sample).

    Per outer step the cost entries are sums of n + m terms no larger than 16 (cosine
    costs are in [0, 2]), and exp(−C/λ) turns an absolute cost error into a relative
    kernel error 1/λ times larger; then ``inner`` Sinkhorn sweeps of n- and m-term sums.
    Sinkhorn scaling contracts Hilbert's projective metric, so it does not amplify a
    relative error; the outer steps add up.
    """
    cost = rounding_tol(n + m + 2, scale=16.0 / lam)
    return outer * (cost + rounding_tol(inner * (n + m + 2)))


def assert_same_fits(
    a: Sequence[tuple[Mapping[str, float], Mapping[str, Any], np.ndarray, np.ndarray]],
    b: Sequence[tuple[Mapping[str, float], Mapping[str, Any], np.ndarray, np.ndarray]],
    rtol: float,
) -> None:
    """Fold by fold, two trainings that should differ only in rounding.

    Each side is a list of ``(metrics, fit_info, pred, target)`` with ``pred`` the stored
    float32 predictions. Checked: each fold's metrics are its own predictions' scores (up
    to their float32 storage), the predictions agree within ``rtol`` relative, and early
    stopping chose the same epoch. Where the two picked different epochs, their best
    validation KLs lie within ``rtol`` (KL moves by at most r): a near tie that rounding
    may decide either way; those folds' predictions come from different epochs and are
    not compared. At least half the folds must be compared.
    """
    from affectkit.metrics import score

    assert len(a) == len(b)
    compared = 0
    for (m1, info1, p1, y1), (m2, info2, p2, y2) in zip(a, b, strict=True):
        np.testing.assert_array_equal(y1, y2)
        storage = metric_tol(EPS32 / 2, p1.shape[1])
        for metrics, pred in ((m1, p1), (m2, p2)):
            want = score(y1, pred)
            for name, value in metrics.items():
                assert abs(value - want[name]) <= storage, (name, value, want[name])
        kl1, kl2 = info1.get("best_valid_kl"), info2.get("best_valid_kl")
        if kl1 is not None or kl2 is not None:
            assert abs(kl1 - kl2) <= rtol + 1e-6, (kl1, kl2)  # 1e-6: the improvement margin
        if info1.get("best_epoch") != info2.get("best_epoch"):
            continue
        np.testing.assert_allclose(p2, p1, rtol=rtol, atol=0)
        compared += 1
    assert compared >= len(a) / 2, f"early stopping diverged on {len(a) - compared} folds"


def assert_fold_parallel_matches(cfg: Any, data: Any, protocol: Any, folds: Any, ops: int) -> None:
    """Folds trained as one vmapped model (affectkit.parallel) against fold by fold, with
    the training tolerance for steps of ``ops`` accumulated terms (see *Training*)."""
    from affectkit.evaluate import method_train_config, run_fold
    from affectkit.parallel import run_folds_parallel

    seq = [run_fold(cfg, data, protocol, f, seed=0) for f in folds]
    par = run_folds_parallel(cfg, data, protocol, folds, seed=0)
    assert all(r.fit_info["fold_parallel"] == len(folds) for r, _ in par)
    train = method_train_config(cfg)
    steps = training_steps(train.epochs, max(len(f.train) for f in folds), train.batch_size)
    assert_same_fits(
        [(r.metrics, r.fit_info, p.pred, p.target) for r, p in seq],
        [(r.metrics, r.fit_info, p.pred, p.target) for r, p in par],
        training_rtol(steps, ops),
    )
