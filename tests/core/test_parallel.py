"""Fold-parallel training must give what sequential training gives, fold by fold."""

import numpy as np
import pytest

from affectkit.bench import resolve_configs
from affectkit.datasets import load_dataset
from affectkit.evaluate import build_protocol, run_fold
from affectkit.parallel import can_run_parallel, run_folds_parallel

TINY = ["dataset.subjects=4", "dataset.trials=8", "dataset.windows=6", "protocol.folds=null"]


def setup(*extra):
    (cfg,) = resolve_configs(["mlp"], overrides=[*TINY, "method.dropout=0", *extra])
    data = load_dataset(cfg.dataset)
    proto = build_protocol(cfg)
    return cfg, data, proto, proto.folds(data)


@pytest.mark.parametrize("extra", [("train.epochs=4",), ("train.epochs=12", "train.patience=2")])
def test_parallel_equals_sequential(extra):
    cfg, data, proto, folds = setup(*extra)
    assert can_run_parallel(cfg, data, proto, folds, seed=0)
    seq = [run_fold(cfg, data, proto, f, seed=0) for f in folds]
    par = run_folds_parallel(cfg, data, proto, folds, seed=0)
    for (r1, p1), (r2, p2) in zip(seq, par, strict=True):
        assert r1.fold == r2.fold and r1.seed == r2.seed and r1.n_test == r2.n_test
        assert r1.fit_info["best_epoch"] == r2.fit_info["best_epoch"]
        np.testing.assert_allclose(p1.pred, p2.pred, atol=2e-5)
        for m, v in r1.metrics.items():
            assert r2.metrics[m] == pytest.approx(v, rel=1e-4, abs=1e-6)


def test_unequal_folds_do_not_qualify():
    cfg, data, proto, folds = setup("train.epochs=1")
    folds[0].train = folds[0].train[:-1]  # one window fewer in one fold
    assert not can_run_parallel(cfg, data, proto, folds, seed=0)
    with pytest.raises(ValueError, match="equal fit/validation sizes"):
        run_folds_parallel(cfg, data, proto, folds, seed=0)


def test_non_neural_methods_do_not_qualify():
    (cfg,) = resolve_configs(["prior"], overrides=TINY)
    data = load_dataset(cfg.dataset)
    proto = build_protocol(cfg)
    assert not can_run_parallel(cfg, data, proto, proto.folds(data), seed=0)


def test_bench_with_fold_parallel_matches_sequential(tmp_path):
    from affectkit.bench import run_bench

    over = [*TINY, "method.dropout=0", "train.epochs=3"]
    (seq_cfg,) = resolve_configs(["mlp"], overrides=over)
    (par_cfg,) = resolve_configs(["mlp"], overrides=[*over, "train.fold_parallel=4"])
    seq, _ = run_bench([seq_cfg], run_dir=tmp_path / "seq")
    par, _ = run_bench([par_cfg], run_dir=tmp_path / "par")
    fs, fp = seq["methods"]["mlp"]["folds"], par["methods"]["mlp"]["folds"]
    assert [f["fit_info"].get("fold_parallel") for f in fp] == [4, 4, 4, 4]
    for a, b in zip(fs, fp, strict=True):
        for m, v in a["metrics"].items():
            assert b["metrics"][m] == pytest.approx(v, rel=1e-4, abs=1e-6)
