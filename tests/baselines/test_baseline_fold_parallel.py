"""dgcnn, label-gcn and helo under fold-parallel training: the same fits as fold by fold."""

from __future__ import annotations

import numpy as np
import pytest
from affectkit_baselines.label_gcn import cooccurrence_adjacency

from affectkit.bench import resolve_configs
from affectkit.datasets import load_dataset
from affectkit.evaluate import build_protocol, fit_valid_split, fold_seed, method_train_config
from affectkit.parallel import can_run_parallel
from tests.tolerances import assert_fold_parallel_matches

TINY = ["dataset.subjects=4", "dataset.trials=8", "dataset.windows=6", "protocol.folds=null"]
# One step's longest chain of accumulated float32 terms, forward and back, plus the batch
# (128) summed into every weight gradient (as tests/core/test_parallel.py counts mlp's):
# dgcnn: the Chebyshev convolution (18-channel degrees and two recursion steps, the 5-input
# maps over 3 orders: about 70 terms), then the head over 18·32 + 823 = 1399 features,
# 128 hidden, 10 logits; label-gcn: the encoder 913 -> 256 -> 128, the label GCN
# (64- and 128-input maps, two 10-term neighbourhood sums) and the 128-term logits.
OPS_PER_STEP = {
    "dgcnn": 2 * (70 + 1399 + 128 + 10) + 128,
    "label-gcn": 2 * (913 + 256 + 128 + 64 + 10 + 128 + 10 + 128) + 128,
    # helo at d = 32: fewer terms than test_helo_speed's count at d = 128, which bounds it
    "helo": 2 * 3200 + 128,
}
# helo's DropKey draws masks too; its width is cut so that the test stays quick
EXTRA = {"helo": ("method.drop_key=0", "method.dim=32", "train.batch_size=32")}


def _setup(name: str, *extra: str):
    (cfg,) = resolve_configs([name], overrides=[*TINY, "method.dropout=0", *extra])
    data = load_dataset(cfg.dataset)
    proto = build_protocol(cfg)
    return cfg, data, proto, proto.folds(data)


@pytest.mark.parametrize("name", ["dgcnn", "label-gcn", "helo"])
@pytest.mark.parametrize(
    "extra", [("train.epochs=3", "train.patience=0"), ("train.epochs=6", "train.patience=2")]
)
def test_fold_parallel_equals_sequential(name, extra):
    cfg, data, proto, folds = _setup(name, *extra, *EXTRA.get(name, ()))
    assert can_run_parallel(cfg, data, proto, folds, seed=0)
    assert_fold_parallel_matches(cfg, data, proto, folds, OPS_PER_STEP[name])


def test_label_gcn_folds_have_graphs_of_their_own():
    # the equality above would not notice one graph shared by every fold if the folds'
    # fit splits gave the same graph: they must not
    cfg, data, proto, folds = _setup("label-gcn", "train.epochs=1")
    train = method_train_config(cfg)
    graphs = []
    for fold in folds:
        fit, _ = fit_valid_split(proto, data, fold, train, fold_seed(0, fold.index))
        graphs.append(cooccurrence_adjacency(data.targets[fit]))
    assert any(not np.array_equal(graphs[0], g) for g in graphs[1:])
    assert not all(np.array_equal(g, np.eye(len(g))) for g in graphs)


def test_a_method_that_cannot_be_vmapped_falls_back_to_fold_by_fold(tmp_path, monkeypatch):
    from affectkit_baselines.dgcnn import DGCNN

    from affectkit.bench import run_bench

    monkeypatch.setattr(DGCNN, "fold_parallel", False)
    (cfg,) = resolve_configs(
        ["dgcnn"], overrides=[*TINY, "train.epochs=1", "train.fold_parallel=4"]
    )
    res, _ = run_bench([cfg], run_dir=tmp_path / "run")
    folds = res["methods"]["dgcnn"]["folds"]
    assert len(folds) == 4
    assert all("fold_parallel" not in f["fit_info"] for f in folds)
