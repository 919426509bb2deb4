"""End to end through the public bench API: mpcl learns, and every ablation switch runs."""

from __future__ import annotations

import pytest

from affectkit.bench import resolve_configs, run_bench

DATA = {"name": "synthetic", "subjects": 8, "trials": 8, "windows": 6}
FAST = ["train.epochs=15", "train.batch_size=32", "method.dim=16"]


def bench(run_dir, method, overrides=()):
    """Summary of one method on the tiny data (2 subject folds), and its resolved config."""
    (cfg,) = resolve_configs(
        [method],
        flags={"dataset": DATA, "protocol": {"name": "subject-independent", "folds": 2}},
        overrides=list(overrides),
    )
    results, _ = run_bench([cfg], run_dir=run_dir)
    return results["methods"][method]["summary"], cfg


def test_mpcl_beats_prior_on_kl(tmp_path):
    prior, _ = bench(tmp_path / "prior", "prior")
    mpcl, _ = bench(tmp_path / "mpcl", "mpcl", FAST)
    assert mpcl["kl"]["mean"] < 0.9 * prior["kl"]["mean"], (mpcl["kl"], prior["kl"])


@pytest.mark.parametrize("switch", ["use_msaf", "use_prd", "use_pcl", "use_hsc"])
def test_ablation_switch_runs(tmp_path, switch):
    summary, cfg = bench(tmp_path, "mpcl", [*FAST, f"method.{switch}=false", "train.epochs=1"])
    assert getattr(cfg.method, switch) is False
    assert 0 < summary["kl"]["mean"] < 1
