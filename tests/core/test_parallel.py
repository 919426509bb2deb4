"""Fold-parallel training must give what sequential training gives, fold by fold."""

import pytest

from affectkit.bench import resolve_configs
from affectkit.datasets import load_dataset
from affectkit.evaluate import build_protocol, method_train_config, run_fold
from affectkit.parallel import can_run_parallel, run_folds_parallel
from tests.tolerances import assert_same_fits, training_rtol, training_steps

TINY = ["dataset.subjects=4", "dataset.trials=8", "dataset.windows=6", "protocol.folds=null"]
# One mlp step's longest chain of accumulated float32 terms: the fan-ins of its three
# layers (913 flattened features -> 256 -> 128 -> 10) forward, the same chain back, and
# the batch (128) summed into every weight gradient. Folds trained as one vmapped model
# round differently from one at a time; tests.tolerances turns that into a tolerance.
MLP_OPS_PER_STEP = 2 * (913 + 256 + 128) + 128


def mlp_rtol(cfg, n_fit):
    train = method_train_config(cfg)
    return training_rtol(training_steps(train.epochs, n_fit, train.batch_size), MLP_OPS_PER_STEP)


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
    for (r1, _), (r2, _) in zip(seq, par, strict=True):
        assert r1.fold == r2.fold and r1.seed == r2.seed and r1.n_test == r2.n_test
    assert_same_fits(
        [(r.metrics, r.fit_info, p.pred, p.target) for r, p in seq],
        [(r.metrics, r.fit_info, p.pred, p.target) for r, p in par],
        mlp_rtol(cfg, max(len(f.train) for f in folds)),
    )


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
    from affectkit.results import ResultsStore

    over = [*TINY, "method.dropout=0", "train.epochs=3"]
    (seq_cfg,) = resolve_configs(["mlp"], overrides=over)
    (par_cfg,) = resolve_configs(["mlp"], overrides=[*over, "train.fold_parallel=4"])
    seq, _ = run_bench([seq_cfg], run_dir=tmp_path / "seq")
    par, _ = run_bench([par_cfg], run_dir=tmp_path / "par")
    fs, fp = seq["methods"]["mlp"]["folds"], par["methods"]["mlp"]["folds"]
    assert [f["fit_info"].get("fold_parallel") for f in fp] == [4, 4, 4, 4]

    def stored(res, run):
        store = ResultsStore(run)
        out = []
        for f in res["methods"]["mlp"]["folds"]:
            z = store.load_predictions("mlp", f["run_seed"], f["fold"])
            out.append((f["metrics"], f["fit_info"], z["pred"], z["target"]))
        return out

    n_fit = max(f["n_train"] for f in fs)
    assert_same_fits(
        stored(seq, tmp_path / "seq"), stored(par, tmp_path / "par"), mlp_rtol(seq_cfg, n_fit)
    )
