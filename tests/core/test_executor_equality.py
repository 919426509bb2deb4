"""Serial, local process pool and Ray give identical fold results; resume crosses engines."""

import importlib.util
import json

import numpy as np
import pytest

from affectkit import executors
from affectkit.bench import resolve_configs, run_bench
from affectkit.datasets import load_dataset
from affectkit.errors import UserError
from affectkit.executors import Executor, FoldJob, RayExecutor, make_executor
from affectkit.results import ResultsStore, results_hash

TINY = ["dataset.subjects=4", "dataset.trials=8", "dataset.windows=6", "train.epochs=2"]
METHODS = ["prior", "mlp"]
SEEDS = [0, 1]


def configs():
    return resolve_configs(METHODS, overrides=TINY)


@pytest.fixture(scope="module")
def data():
    return load_dataset(configs()[0].dataset, use_cache=False)


@pytest.fixture(scope="module")
def serial(tmp_path_factory, data):
    """The reference: every job in this process with one torch thread."""
    import torch

    old = torch.get_num_threads()
    try:
        run_dir = tmp_path_factory.mktemp("serial") / "run"
        res, _ = run_bench(
            configs(), run_dir=run_dir, data=data, seeds=SEEDS, executor=Executor(threads=1)
        )
    finally:
        torch.set_num_threads(old)
    return res, run_dir


def fold_metrics(res):
    return {
        (name, f["run_seed"], f["fold"]): f["metrics"]
        for name, r in res["methods"].items()
        for f in r["folds"]
    }


def assert_same_as_serial(res, run_dir, serial):
    ref, ref_dir = serial
    # Bit for bit, not within a tolerance: every engine runs the same job function with
    # one torch thread on this machine, so the same kernels do the same operations in the
    # same order; any difference is a real one (another seed, split or config on a worker).
    assert fold_metrics(res) == fold_metrics(ref)
    a, b = ResultsStore(run_dir), ResultsStore(ref_dir)
    for name in METHODS:
        for s in SEEDS:
            for i in range(4):
                pa, pb = a.load_predictions(name, s, i), b.load_predictions(name, s, i)
                np.testing.assert_array_equal(pa["pred"], pb["pred"])
                np.testing.assert_array_equal(pa["subject"], pb["subject"])


def test_job_config_survives_the_trip_to_a_worker():
    from affectkit.config import validate_run_config

    for cfg in resolve_configs(["mlp"], overrides=[*TINY, "train.lr=0.01", "method.hidden=[8]"]):
        shipped = cfg.model_dump(mode="json", exclude_unset=True, exclude={"output"})
        again = validate_run_config(shipped)
        assert results_hash(again) == results_hash(cfg)
        # method defaults still apply to train keys the user did not set
        assert again.train.model_dump(exclude_unset=True) == {"epochs": 2, "lr": 0.01}


def test_auto_runs_a_local_pool_that_equals_serial(tmp_path, data, serial, monkeypatch):
    # two cores and folds worth a worker: auto picks the pool, records why, and computes
    # what serial computes with the same (default) one thread per fold
    monkeypatch.setattr(executors, "usable_cores", lambda: 2)
    monkeypatch.setattr(executors, "POOL_MIN_WINDOWS", len(data))
    engine = make_executor("auto")
    assert engine.job_threads() == 1
    res, run_dir = run_bench(
        configs(), run_dir=tmp_path / "run", data=data, seeds=SEEDS, executor=engine
    )
    inv = res["last_invocation"]
    assert inv["executor"].startswith("local (2 workers × 1 threads")
    assert inv["executor_reason"].startswith("auto: 16 fold jobs, 2 cores at 1 thread(s)")
    record = json.loads(
        ResultsStore(run_dir).fold_stem("mlp", 0, 0).with_suffix(".json").read_text()
    )
    assert (record["executor"], record["threads"]) == ("local", 1)
    assert_same_as_serial(res, run_dir, serial)


def _jobs(n: int, **train) -> list[FoldJob]:
    (cfg,) = resolve_configs(
        ["mlp"], overrides=[*TINY, *(f"train.{k}={v}" for k, v in train.items())]
    )
    shipped = cfg.model_dump(mode="json", exclude_unset=True, exclude={"output"})
    return [FoldJob("mlp", shipped, 0, i, results_hash(cfg), threads=1) for i in range(n)]


def test_auto_rule_pool_only_where_it_pays(data, monkeypatch):
    monkeypatch.setattr(executors, "POOL_MIN_WINDOWS", len(data))
    big = 10**12
    choose = executors.choose_executor
    assert choose(_jobs(8), data, threads=1, cores=4, free_memory=big)[0] == 4
    assert choose(_jobs(3), data, threads=1, cores=4, free_memory=big)[0] == 3  # jobs cap it
    assert choose(_jobs(8), data, threads=2, cores=4, free_memory=big)[0] == 2  # cores/threads
    assert choose(_jobs(8), data, threads=1, cores=4, max_workers=2, free_memory=big)[0] == 2
    workers, why = choose(_jobs(8), data, threads=1, cores=1, free_memory=big)
    assert workers == 1 and "room for one fold" in why
    workers, why = choose(_jobs(8), data, threads=2, cores=2, free_memory=big)
    assert workers == 1 and "room for one fold" in why
    workers, why = choose(_jobs(1), data, threads=1, cores=4, free_memory=big)
    assert workers == 1 and "1 fold job" in why
    workers, why = choose(_jobs(8, fold_parallel=4), data, threads=1, cores=4, free_memory=big)
    assert workers == 1 and "fold_parallel" in why
    one_copy = data.targets.nbytes + sum(x.nbytes for x in data.modalities.values())
    workers, why = choose(_jobs(8), data, threads=1, cores=4, free_memory=6 * one_copy)
    assert workers == 3 and "free memory" in why
    monkeypatch.setattr(executors, "POOL_MIN_WINDOWS", len(data) + 1)
    workers, why = choose(_jobs(8), data, threads=1, cores=4, free_memory=big)
    assert workers == 1 and f"{len(data)} windows" in why


def test_auto_in_process_is_serial_and_says_why(tmp_path, data):
    # the tiny dataset is below POOL_MIN_WINDOWS: no pool, and results.json says so
    res, _ = run_bench(
        configs(), run_dir=tmp_path / "run", data=data, seeds=[0], executor=make_executor("auto")
    )
    inv = res["last_invocation"]
    assert inv["executor"] == "serial, 1 threads"
    assert (
        inv["executor_reason"]
        == f"auto: {len(data)} windows: folds this small finish before a worker starts"
    )


@pytest.mark.skipif(
    importlib.util.find_spec("ray") is None,
    reason="ray is not installed (pip install 'affectkit[ray]'); the Ray executor is untested",
)
def test_ray_local_instance_equals_serial_and_resumes_a_serial_run(tmp_path, data, serial):
    run_dir = tmp_path / "run"
    # half the work serially (seed 0), the rest on Ray: resume does not care who computed
    run_bench(configs(), run_dir=run_dir, data=data, seeds=[0], executor=Executor(threads=1))
    engine = RayExecutor(workers=2, threads=1)
    res, _ = run_bench(configs(), run_dir=run_dir, data=data, seeds=SEEDS, executor=engine)
    assert engine.node_addresses == ["127.0.0.1"]  # a private instance on loopback
    assert res["last_invocation"]["reused_folds"] == 8
    assert res["last_invocation"]["computed_folds"] == 8
    assert_same_as_serial(res, run_dir, serial)
    import ray

    assert not ray.is_initialized(), "the instance the executor started is shut down"


def test_executor_options_are_checked():
    with pytest.raises(UserError, match="--workers needs --executor auto, local or ray"):
        make_executor("serial", workers=4)
    with pytest.raises(UserError, match="unknown executor 'dask'"):
        make_executor("dask")
    assert make_executor("local", workers=2, threads=3).job_threads() == 3
    assert make_executor("ray", threads=2).job_threads() == 2
    # the CLI's default: one thread per fold job on every executor
    for name in ("auto", "serial", "local", "ray"):
        assert make_executor(name).job_threads() == 1


def test_costliest_methods_are_handed_out_first_and_tables_keep_the_asked_order(tmp_path, data):
    """A pool that starts the long folds first ends on short ones (Method.fold_cost); the
    order of work must not leak into the tables, which list methods as asked."""

    class Recording(Executor):
        def __init__(self) -> None:
            super().__init__(threads=1)
            self.order: list[tuple[str, int, int]] = []

        def run(self, jobs, data, on_done, callbacks=None):
            self.order = [(j.method, j.seed, j.fold) for j in jobs]
            super().run(jobs, data, on_done, callbacks)

    rec = Recording()
    res, _ = run_bench(configs(), run_dir=tmp_path / "run", data=data, seeds=[0], executor=rec)
    methods = [m for m, _, _ in rec.order]
    n = len(methods) // 2
    assert methods == ["mlp"] * n + ["prior"] * n  # mlp's fold_cost 1 > prior's 0.01
    assert [f for m, _, f in rec.order if m == "mlp"] == list(range(n))  # folds keep order
    assert list(res["methods"]) == METHODS


TIMING = {"train_seconds"}


@pytest.mark.parametrize("method", ["mlp", "mpcl", "label-gcn"])
def test_a_fold_fitted_in_two_jobs_equals_one_fit(data, method):
    """The pool runs a refitting fold as a selection job and a refit job, possibly in
    different processes; the refit depends on the selection only through its info, so the
    fold's result is the one-piece fit's, bit for bit."""
    from affectkit.evaluate import RefitPending, build_protocol, run_fold

    (cfg,) = resolve_configs([method], overrides=TINY)
    protocol = build_protocol(cfg)
    fold = protocol.folds(data)[1]
    whole, whole_preds = run_fold(cfg, data, protocol, fold, seed=3)
    assert whole.fit_info["selected_step"] >= 0  # the fold did refit
    pending = run_fold(cfg, data, protocol, fold, seed=3, phase="select")
    assert isinstance(pending, RefitPending)
    assert pending.selection["select_seconds"] > 0
    # the selection's info crosses a process boundary as JSON-able data
    selection = json.loads(json.dumps(pending.selection))
    split, split_preds = run_fold(cfg, data, protocol, fold, seed=3, phase=selection)
    assert split.metrics == whole.metrics
    np.testing.assert_array_equal(split_preds.pred, whole_preds.pred)
    drop = {k: v for k, v in whole.fit_info.items() if k not in TIMING}
    assert {k: v for k, v in split.fit_info.items() if k not in TIMING} == drop
    assert split.fit_seconds >= pending.selection["select_seconds"]


def test_a_fold_without_refit_ends_in_its_first_job(data):
    from affectkit.evaluate import build_protocol, run_fold

    for method, extra in (("prior", []), ("mlp", ["train.refit=false"])):
        (cfg,) = resolve_configs([method], overrides=[*TINY, *extra])
        protocol = build_protocol(cfg)
        out = run_fold(cfg, data, protocol, protocol.folds(data)[0], seed=0, phase="select")
        result, _ = out
        assert set(result.metrics) == {
            "chebyshev", "clark", "canberra", "kl", "cosine", "intersection"
        }  # fmt: skip


def test_pool_queue_starts_folds_in_order_and_prefers_a_longer_refit():
    from affectkit.evaluate import RefitPending
    from affectkit.executors import _PoolQueue

    jobs = _jobs(4)
    queue = _PoolQueue(jobs)
    first, second = queue.take(), queue.take()
    assert [(j.fold, j.phase) for j in (first, second)] == [(0, "select"), (1, "select")]
    # fold 0's selection ran 100 steps in 10 s and chose step 80: a refit of ~10 s, shorter
    # than a whole next fold is expected to take (10 s x 1.5), so fold 2 starts first
    queue.pending(first, RefitPending({"select_seconds": 10.0, "steps_run": 100, "best_step": 80}))
    nxt = queue.take()
    assert (nxt.fold, nxt.phase) == (2, "select")
    # fold 1's selection chose its last step of 400 in 20 s: a ~25 s refit, longer than
    # the ~22.5 s a fold now takes on average, so it goes first
    queue.pending(
        second, RefitPending({"select_seconds": 20.0, "steps_run": 400, "best_step": 400})
    )
    nxt = queue.take()
    assert (nxt.fold, nxt.phase["best_step"]) == (1, 400)
    assert queue.take().fold == 3
    last = queue.take()  # only fold 0's refit is left
    assert (last.fold, last.phase["best_step"]) == (0, 80)
    assert not queue


def test_a_fit_override_that_rebuilds_the_info_still_splits(data, monkeypatch):
    """A subclass may return its own dict from ``fit``; whether a refit is pending is read
    from the method, so the selection job never scores an unfinished model."""
    from affectkit.evaluate import RefitPending, build_method, build_protocol, run_fold

    (cfg,) = resolve_configs(["mlp"], overrides=TINY)
    cls = type(build_method(cfg, data.spec, 0))
    parent = cls.fit
    monkeypatch.setattr(cls, "fit", lambda self, *a, **k: {"keys": len(parent(self, *a, **k))})
    protocol = build_protocol(cfg)
    fold = protocol.folds(data)[2]
    whole, whole_preds = run_fold(cfg, data, protocol, fold, seed=1)
    pending = run_fold(cfg, data, protocol, fold, seed=1, phase="select")
    assert isinstance(pending, RefitPending)
    split, split_preds = run_fold(cfg, data, protocol, fold, seed=1, phase=pending.selection)
    assert split.metrics == whole.metrics and split.fit_info == whole.fit_info
    np.testing.assert_array_equal(split_preds.pred, whole_preds.pred)


def test_a_script_from_stdin_runs_serial_under_auto_and_is_refused_a_pool(data, monkeypatch):
    """spawn re-runs the main script by path in every worker; one piped on stdin has none,
    and its workers would all die at start with a bare BrokenProcessPool."""
    import sys

    monkeypatch.setattr(sys.modules["__main__"], "__file__", "<stdin>", raising=False)
    monkeypatch.setattr(executors, "POOL_MIN_WINDOWS", 1)
    workers, why = executors.choose_executor(_jobs(4), data, threads=1, cores=4)
    assert workers == 1 and "<stdin>" in why
    with pytest.raises(UserError, match="Save the script to a file"):
        executors.LocalExecutor(workers=2, threads=1).run(_jobs(2), data, lambda *a: None)
