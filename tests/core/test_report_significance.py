"""Paired Wilcoxon tests across folds with Holm correction, and their table markers."""

import numpy as np
import pytest
from scipy.stats import wilcoxon

from affectkit.metrics import METRIC_NAMES
from affectkit.results import summary_markdown
from affectkit.significance import holm, min_attainable_p, paired_tests


def fake_results(scores: dict[str, list[float]], seeds=(0,)) -> dict:
    """Results whose every metric equals ``scores[method][fold]`` (+ a per-seed offset)."""
    methods = {}
    for name, per_fold in scores.items():
        folds = []
        for s in seeds:
            for i, v in enumerate(per_fold):
                folds.append(
                    {"fold": i, "run_seed": s, "metrics": {m: v + 0.001 * s for m in METRIC_NAMES}}
                )
        summary = {}
        for m in METRIC_NAMES:
            vals = [f["metrics"][m] for f in folds]
            summary[m] = {"mean": float(np.mean(vals)), "std": float(np.std(vals))}
        methods[name] = {"folds": folds, "summary": summary, "folds_expected": len(folds)}
    return {
        "dataset": "d",
        "protocol_description": "p",
        "seeds": list(seeds),
        "leaky": False,
        "methods": methods,
    }


def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04 -> x3, x2, x1 = 0.03, 0.06, 0.04 -> monotone: 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []


def test_best_vs_others_with_holm_and_markers():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.1, 0.2, 8)
    res = fake_results(
        {
            "a": list(base),  # best for lower-is-better metrics
            "b": list(base + rng.uniform(0.01, 0.02, 8)),  # worse on every fold
            "c": list(base + rng.normal(0, 0.01, 8)),  # indistinguishable
        }
    )
    tests = paired_tests(res)
    kl = tests["kl"]
    assert kl["best"] == "a" and kl["n_folds"] == 8
    a, b = ([f["metrics"]["kl"] for f in res["methods"][n]["folds"]] for n in ("a", "b"))
    raw_b = wilcoxon(np.subtract(a, b)).pvalue
    assert kl["tests"]["b"]["p"] == pytest.approx(raw_b) == pytest.approx(2 / 2**8)
    # Holm over the two comparisons of this metric
    adj = holm([kl["tests"]["b"]["p"], kl["tests"]["c"]["p"]])
    assert kl["tests"]["b"]["p_holm"] == pytest.approx(adj[0])
    assert kl["tests"]["c"]["p_holm"] == pytest.approx(adj[1])
    # 2/256 doubled by Holm = 0.0156: significant at .05, not at .01
    assert kl["tests"]["b"]["p_holm"] == pytest.approx(2 * 2 / 2**8)
    assert kl["tests"]["b"]["marker"] == "*" and kl["tests"]["c"]["marker"] == ""
    # cosine is higher-is-better: the same numbers make "b" the best there
    assert tests["cosine"]["best"] == "b"
    md = summary_markdown(res)
    row_b = next(line for line in md.splitlines() if line.startswith("| b |"))
    kl_cell = row_b.split("|")[2 + list(METRIC_NAMES).index("kl")]
    assert kl_cell.strip().endswith("*") and not kl_cell.strip().startswith("**")


def test_seeds_are_averaged_per_fold_not_counted_as_pairs():
    res = fake_results({"a": [0.1, 0.2, 0.3, 0.4], "b": [0.2, 0.3, 0.4, 0.5]}, seeds=(0, 1, 2))
    t = paired_tests(res)["kl"]
    assert t["n_folds"] == 4  # not 12: seeds of one fold share its test subjects
    assert t["tests"]["b"]["p"] == pytest.approx(0.125)
    assert t["min_attainable_p"] == min_attainable_p(4) == pytest.approx(0.125)
    assert t["tests"]["b"]["marker"] == ""  # 4 folds can never reach p < .05


def test_identical_methods_have_p_one():
    res = fake_results({"a": [0.1, 0.2, 0.3], "b": [0.1, 0.2, 0.3]})
    assert paired_tests(res)["kl"]["tests"]["b"]["p"] == 1.0
