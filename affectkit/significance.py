"""Paired significance of method differences: Wilcoxon signed-rank across folds, Holm-corrected.

For each metric the best method (by mean over folds) is compared with every other method
on the folds both have. When a run has several seeds, each fold's score is first averaged
over the seeds: the folds (test subjects) are the independent units, the seeds of one fold
are not. The p-values of one metric's comparisons are Holm-corrected together.

With ``n`` paired folds the smallest two-sided p-value the exact test can reach is
``2 / 2**n`` (0.125 for 4 folds), so a handful of folds can never show a significant
difference; :func:`min_attainable_p` tells the report to say so.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .metrics import METRIC_NAMES, METRICS

ALPHA = 0.05
#: marker for "worse than the best method of this column", by Holm-corrected p threshold
MARKERS: tuple[tuple[float, str], ...] = ((0.01, "**"), (0.05, "*"))
MARKER_LEGEND = (
    "* / ** = worse than the best method of the column (Wilcoxon signed-rank across folds, "
    "Holm-corrected p < .05 / .01)"
)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values (monotone, capped at 1), in the input order."""
    p = np.asarray(pvalues, dtype=np.float64)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


def wilcoxon_p(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Two-sided Wilcoxon signed-rank test of paired samples; identical samples give p = 1."""
    from scipy.stats import wilcoxon

    d = np.asarray(x, dtype=np.float64) - np.asarray(y, dtype=np.float64)
    if len(d) == 0 or np.all(d == 0):
        return 0.0, 1.0
    with warnings.catch_warnings():
        # scipy warns about ties/zeros and small samples; the exact/normal choice is its own
        warnings.simplefilter("ignore")
        res = wilcoxon(d)
    p = float(res.pvalue)
    return float(res.statistic), (1.0 if math.isnan(p) else p)


def min_attainable_p(n: int) -> float:
    return 1.0 if n <= 0 else min(1.0, 2.0 / 2**n)


def marker(p_holm: float | None) -> str:
    if p_holm is None:
        return ""
    for threshold, mark in MARKERS:
        if p_holm < threshold:
            return mark
    return ""


def fold_scores(method: Mapping[str, Any], metric: str) -> dict[int, float]:
    """Fold index -> score of ``metric`` averaged over the seeds that ran that fold."""
    by_fold: dict[int, list[float]] = {}
    for f in method.get("folds", []):
        by_fold.setdefault(int(f["fold"]), []).append(float(f["metrics"][metric]))
    return {k: float(np.mean(v)) for k, v in by_fold.items()}


def best_method(results: Mapping[str, Any], metric: str) -> str | None:
    vals = {
        name: r["summary"][metric]["mean"]
        for name, r in results["methods"].items()
        if r.get("summary") and r.get("folds") and np.isfinite(r["summary"][metric]["mean"])
    }
    if not vals:
        return None
    pick = max if METRICS[metric].higher_is_better else min
    return pick(vals, key=vals.__getitem__)


def paired_tests(results: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Per metric: the best method and, for each other method, statistic, p and Holm p."""
    out: dict[str, dict[str, Any]] = {}
    for metric in METRIC_NAMES:
        best = best_method(results, metric)
        if best is None:
            continue
        ref = fold_scores(results["methods"][best], metric)
        tests: dict[str, dict[str, Any]] = {}
        for name, r in results["methods"].items():
            if name == best or not r.get("folds"):
                continue
            other = fold_scores(r, metric)
            common = sorted(set(ref) & set(other))
            stat, p = wilcoxon_p([ref[k] for k in common], [other[k] for k in common])
            tests[name] = {"statistic": stat, "p": p, "n": len(common)}
        for name, p_adj in zip(tests, holm([t["p"] for t in tests.values()]), strict=True):
            tests[name]["p_holm"] = p_adj
            tests[name]["significant"] = p_adj < ALPHA
            tests[name]["marker"] = marker(p_adj)
        n = max((t["n"] for t in tests.values()), default=len(ref))
        out[metric] = {
            "best": best,
            "higher_is_better": METRICS[metric].higher_is_better,
            "n_folds": n,
            "min_attainable_p": min_attainable_p(n),
            "tests": tests,
        }
    return out


def cell_marker(tests: Mapping[str, Any], metric: str, method: str) -> str:
    """The marker to print beside ``method``'s ``metric`` cell ('' when none)."""
    t = tests.get(metric, {}).get("tests", {}).get(method)
    return t["marker"] if t else ""
