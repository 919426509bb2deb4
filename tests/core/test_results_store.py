"""Results store: per-fold files, resume, refusal of mixed configs, summaries after every fold."""

import json

import numpy as np
import pytest

from affectkit.bench import resolve_configs, run_bench
from affectkit.datasets import load_dataset
from affectkit.errors import UserError
from affectkit.evaluate import Callbacks
from affectkit.results import ResultsStore, results_hash

TINY = ["dataset.subjects=4", "dataset.trials=8", "dataset.windows=6", "train.epochs=2"]


def metrics(res, method):
    return {(f["run_seed"], f["fold"]): f["metrics"] for f in res["methods"][method]["folds"]}


def configs(methods, *extra):
    return resolve_configs(methods, overrides=[*TINY, *extra])


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread: deterministic, and far faster than spinning threads on a busy box."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def data():
    return load_dataset(configs(["prior"])[0].dataset, use_cache=False)


class Recorder(Callbacks):
    """Reads results.json whenever a fold ends (it must already include that fold)."""

    def __init__(self, run_dir):
        self.run_dir = run_dir
        self.seen: list[int] = []

    def fold_end(self, method, result):
        res = json.loads((self.run_dir / "results.json").read_text())
        self.seen.append(sum(len(r["folds"]) for r in res["methods"].values()))


def test_results_json_rewritten_after_every_fold(tmp_path, data):
    run = tmp_path / "run"
    rec = Recorder(run)
    res, _ = run_bench(configs(["prior", "mlp"]), run_dir=run, data=data, callbacks=rec)
    assert rec.seen == list(range(1, 9))  # 2 methods x 4 folds, one rewrite per fold
    assert res["complete"] is True
    assert res["last_invocation"]["computed_folds"] == 8


def test_rerun_reuses_every_fold_and_changes_nothing(tmp_path, data):
    run = tmp_path / "run"
    first, _ = run_bench(configs(["prior", "mlp"]), run_dir=run, data=data)
    stamps = {p: p.stat().st_mtime_ns for p in run.glob("methods/*/seed-*/fold-*")}
    second, _ = run_bench(configs(["prior", "mlp"]), run_dir=run, data=data)
    assert second["last_invocation"] == {
        "executor": "serial",
        "jobs": 0,
        "computed_folds": 0,
        "reused_folds": 8,
    }
    assert {p: p.stat().st_mtime_ns for p in run.glob("methods/*/seed-*/fold-*")} == stamps
    for name in ("prior", "mlp"):
        assert second["methods"][name]["folds"] == first["methods"][name]["folds"]


def test_only_missing_folds_are_computed(tmp_path, data):
    run = tmp_path / "run"
    full, _ = run_bench(configs(["mlp"]), run_dir=run, data=data)
    for suffix in (".json", ".npz"):  # lose fold 2 (as if killed while computing it)
        (run / "methods/mlp/seed-0" / f"fold-2{suffix}").unlink()
    (run / "methods/mlp/seed-0/fold-3.npz").unlink()  # a .json without its .npz is not finished
    again, _ = run_bench(configs(["mlp"]), run_dir=run, data=data)
    assert again["last_invocation"]["computed_folds"] == 2
    assert again["last_invocation"]["reused_folds"] == 2
    assert metrics(again, "mlp") == metrics(full, "mlp")  # same seed, same numbers


def test_changed_config_refused_then_overwritten(tmp_path, data):
    run = tmp_path / "run"
    run_bench(configs(["prior", "mlp"]), run_dir=run, data=data)
    before = sorted(p.name for p in (run / "methods/mlp/seed-0").iterdir())
    with pytest.raises(UserError, match=r"'prior' \(hash \w+ vs \w+\), 'mlp' .*--overwrite"):
        run_bench(configs(["prior", "mlp"], "train.lr=0.01"), run_dir=run, data=data)
    # refused before touching anything: the old folds are intact
    assert sorted(p.name for p in (run / "methods/mlp/seed-0").iterdir()) == before
    res, _ = run_bench(
        configs(["prior", "mlp"], "train.lr=0.01"), run_dir=run, data=data, overwrite=True
    )
    # prior's train config changed as well (train.* is part of every method's hash)
    assert res["last_invocation"]["computed_folds"] == 8
    cfg = configs(["mlp"], "train.lr=0.01")[0]
    assert json.loads((run / "methods/mlp/config.json").read_text())["config_hash"] == (
        results_hash(cfg)
    )


def test_other_dataset_in_same_dir_refused(tmp_path, data):
    run = tmp_path / "run"
    run_bench(configs(["prior"]), run_dir=run, data=data)
    with pytest.raises(UserError, match="another dataset or protocol"):
        run_bench(configs(["prior"], "protocol.name=subject-dependent"), run_dir=run, data=data)


def test_more_seeds_reuse_the_first_seed_and_summaries_cover_seeds(tmp_path, data):
    run = tmp_path / "run"
    run_bench(configs(["mlp"]), run_dir=run, data=data, seeds=[0])
    res, _ = run_bench(configs(["mlp"]), run_dir=run, data=data, seeds=[0, 1])
    assert res["last_invocation"]["reused_folds"] == 4
    assert res["last_invocation"]["computed_folds"] == 4
    m = res["methods"]["mlp"]
    kl = {(f["run_seed"], f["fold"]): f["metrics"]["kl"] for f in m["folds"]}
    per_seed = [np.mean([kl[(s, i)] for i in range(4)]) for s in (0, 1)]
    assert m["seed_summary"]["kl"]["mean"] == pytest.approx(np.mean(per_seed))
    assert m["seed_summary"]["kl"]["std"] == pytest.approx(np.std(per_seed))
    assert m["summary"]["kl"]["mean"] == pytest.approx(np.mean(list(kl.values())))
    assert "Over seeds" in (run / "summary.md").read_text()


def test_methods_added_later_join_the_table(tmp_path, data):
    run = tmp_path / "run"
    run_bench(configs(["prior"]), run_dir=run, data=data)
    res, _ = run_bench(configs(["mlp"]), run_dir=run, data=data)
    assert list(res["methods"]) == ["prior", "mlp"]
    assert res["last_invocation"]["computed_folds"] == 4
    assert res["last_invocation"]["reused_folds"] == 0  # prior's folds were not this call's
    assert "| prior |" in (run / "summary.md").read_text()


def test_stale_temp_files_removed_and_lock_refuses_second_writer(tmp_path, data):
    run = tmp_path / "run"
    run_bench(configs(["prior"]), run_dir=run, data=data)
    junk = run / "methods/prior/seed-0/.fold-1.npz.abc123.tmp"
    junk.write_bytes(b"half a file")
    run_bench(configs(["prior"]), run_dir=run, data=data)
    assert not junk.exists()
    store = ResultsStore(run)
    with store.lock(), pytest.raises(UserError, match="in use by pid"):
        run_bench(configs(["prior"]), run_dir=run, data=data)


def test_partial_results_are_marked_incomplete(tmp_path, data):
    run = tmp_path / "run"
    run_bench(configs(["prior"]), run_dir=run, data=data)
    (run / "methods/prior/seed-0/fold-1.json").unlink()

    class Stop(Callbacks):
        def fold_start(self, method, fold, n_folds):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_bench(configs(["prior"]), run_dir=run, data=data, callbacks=Stop())
    res = json.loads((run / "results.json").read_text())
    assert res["complete"] is False
    assert len(res["methods"]["prior"]["folds"]) == 3
    assert "| 3/4 |" in (run / "summary.md").read_text()
