"""`affectkit tune` / `bench --tune`: search spaces, nesting (test parts never read), study
storage and resume, best.yaml, the nested estimate."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from affectkit import Choice, ConfigError, FloatRange, IntRange, UserError
from affectkit.bench import resolve_configs
from affectkit.datasets import load_dataset
from affectkit.evaluate import build_protocol
from affectkit.plugins import get_registry
from affectkit.search import check_space, declared_space
from affectkit.tuning import (
    STUDY_NAME,
    TuneSettings,
    _run_trials,
    require_optuna,
    search_space,
    tune,
    tune_fold,
)

optuna = pytest.importorskip("optuna")

SETS = ["dataset.subjects=4", "dataset.trials=8", "dataset.windows=6", "train.epochs=3"]
TUNABLE = ["mlp", "late-fusion", "dgcnn", "label-gcn", "helo", "sa-bfgs", "aa-knn", "mpcl"]


def config(method="mlp", extra=()):
    return resolve_configs([method], overrides=[*SETS, *extra])[0]


def study_trials(out):
    study = optuna.load_study(study_name=STUDY_NAME, storage=f"sqlite:///{out / 'study.sqlite3'}")
    return study.trials


def finished(trials):
    """What a trial computed: state, value, params and per-fold inner scores (no timings)."""
    return [
        (t.state.name, t.value, t.params, t.user_attrs.get("fold_values"))
        for t in trials
        if t.state.name in ("COMPLETE", "PRUNED")
    ]


# --------------------------------------------------------------------------- spaces
@pytest.mark.parametrize("method", TUNABLE)
def test_every_tunable_method_declares_a_space_its_config_accepts(method):
    space = declared_space(method)
    assert space, f"{method} declares no search space"
    check_space(resolve_configs([method])[0], space)  # raises on a typo or a refused bound


def test_a_space_key_or_bound_the_config_refuses_is_named_with_the_reason():
    cfg = config()
    with pytest.raises(ConfigError) as exc:
        check_space(
            cfg,
            {
                "method.hiden": Choice([[8], [16]]),
                "method.dropout": FloatRange(0.0, 1.0),  # dropout must be < 1
                "dataset.subjects": IntRange(4, 8),  # not a method/train setting
                "train.lr": FloatRange(1e-4, 1e-2, log=True),  # fine
            },
        )
    text = str(exc.value)
    assert "method.hiden" in text and "unknown key" in text
    assert "method.dropout" in text and "1.0" in text and "less than 1" in text
    assert "dataset.subjects" in text and "method. or train." in text
    assert "train.lr" not in text
    for bad in (
        lambda: FloatRange(1.0, 0.5),
        lambda: FloatRange(0.0, 1.0, log=True),
        lambda: IntRange(3, 3),
        lambda: Choice([1]),
    ):
        with pytest.raises(ValueError):
            bad()


def test_keys_the_user_sets_leave_the_space():
    cfg = config("mpcl", ["train.lr=0.002", "method.bank.per_emotion=2"])
    pinned = TuneSettings.from_cli(3, overrides=["train.lr=0.002", "method.bank=prototype-bank"])
    space = search_space(cfg, pinned)
    assert "train.lr" not in space and "method.bank.tau" not in space
    assert "method.head.dropout" in space and "train.weight_decay" in space


def test_a_plugin_space_with_an_unknown_field_fails_the_cli_with_exit_2(
    run_cli, monkeypatch, tmp_path
):
    cls = get_registry().get("method", "mlp").config_cls
    monkeypatch.setattr(cls, "search_space", {"method.widht": IntRange(8, 64)})
    code, out = run_cli("tune", "--method", "mlp", "--trials", "1", "--out", tmp_path / "t")
    assert code == 2, out
    assert "method.widht" in out and "unknown key" in out and "Traceback" not in out
    assert not (tmp_path / "t").exists()  # refused before any work


def test_missing_optuna_is_exit_2_with_the_install_command(run_cli, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna -> ImportError
    code, out = run_cli("tune", "--method", "mlp", "--trials", "1", "--out", tmp_path / "t")
    assert code == 2 and "pip install 'affectkit[tune]'" in out and "Traceback" not in out
    code, out = run_cli("bench", "--method", "mlp", "--tune", "1", "--out", tmp_path / "b")
    assert code == 2 and "pip install 'affectkit[tune]'" in out


def test_method_without_a_space_has_nothing_to_tune(run_cli, tmp_path):
    code, out = run_cli("tune", "--method", "prior", "--trials", "1", "--out", tmp_path / "t")
    assert code == 2 and "declares no search space" in out and "Traceback" not in out


# --------------------------------------------------------------------------- nesting
def test_test_windows_never_shape_a_trial(tmp_path):
    """Subject-dependent: every fold's test part (the late windows of each trial) is poisoned
    with NaN features and targets; the study must be bit-identical to the clean one."""
    cfg = config(extra=["protocol.name=subject-dependent", "protocol.gap=0", "dataset.windows=12"])
    clean = load_dataset(cfg.dataset)
    folds = build_protocol(cfg).folds(clean)
    test = np.concatenate([f.test for f in folds])
    assert not set(test) & set(np.concatenate([f.train for f in folds]))
    poisoned = clean.subset(np.arange(len(clean)))
    for m in poisoned.modalities:
        poisoned.modalities[m][test] = np.nan
    poisoned.targets[test] = np.nan

    settings = TuneSettings(trials=3)
    a = tune(cfg, tmp_path / "clean", settings, data=clean)
    b = tune(cfg, tmp_path / "poisoned", settings, data=poisoned)
    ta, tb = study_trials(tmp_path / "clean"), study_trials(tmp_path / "poisoned")
    assert finished(ta) == finished(tb) and len(finished(ta)) == 3
    assert (a.best_value, a.best_params) == (b.best_value, b.best_params)
    assert np.isfinite(a.best_value)


def _spy_on_reads(data, monkeypatch):
    """Record every index array a search reads from ``data`` (the outer dataset)."""
    reads = []
    subset = data.subset

    def spy(idx):
        reads.append(np.asarray(idx))
        return subset(idx)

    monkeypatch.setattr(data, "subset", spy)
    return reads


def test_each_outer_fold_is_searched_on_its_training_part_only(tmp_path, monkeypatch):
    """Subject-independent (every window is some fold's test): the search reads the outer
    dataset only as whole training parts, never a test window of that fold."""
    cfg = config()
    data = load_dataset(cfg.dataset)
    protocol = build_protocol(cfg)
    folds = protocol.folds(data)
    reads = _spy_on_reads(data, monkeypatch)
    tune(cfg, tmp_path / "t", TuneSettings(trials=2), data=data)
    assert reads
    for idx in reads:
        assert any(np.array_equal(idx, f.train) for f in folds), "read beyond a training part"

    reads.clear()  # bench --tune: one fold's search reads that fold's training part alone
    fold = folds[1]
    best, info = tune_fold(cfg, data, protocol, fold, TuneSettings(trials=2), seed=0)
    assert reads and all(np.array_equal(idx, fold.train) for idx in reads)
    assert set(info["params"]) == set(declared_space("mlp"))
    assert best.train.lr == info["params"]["train.lr"]


# --------------------------------------------------------------------------- study + outputs
def test_resume_adds_trials_refuses_another_config_and_best_yaml_runs_in_bench(tmp_path, run_cli):
    out = tmp_path / "t"
    cfg = config()
    first = tune(cfg, out, TuneSettings(trials=2))
    before = finished(study_trials(out))
    more = tune(cfg, out, TuneSettings(trials=3))
    after = finished(study_trials(out))
    assert more.reused == 2 and len(after) == 3 and after[:2] == before
    assert more.best_value <= first.best_value

    rows = (out / "trials.csv").read_text().splitlines()
    assert rows[0].startswith("number,state,value,train.lr") and len(rows) == 4

    with pytest.raises(UserError, match=r"another configuration.*protocol"):
        tune(config(extra=["protocol.name=subject-dependent"]), out, TuneSettings(trials=3))
    with pytest.raises(UserError, match=r"another configuration.*metric"):
        tune(cfg, out, TuneSettings(trials=3, metric="cosine"))
    assert len(finished(study_trials(out))) == 3  # a refusal discards nothing

    best = yaml.safe_load((out / "best.yaml").read_text())
    assert set(best) == {"dataset", "protocol", "method", "train", "seed"}
    for key, value in more.best_params.items():
        section, field = key.split(".")
        assert best[section][field] == value
    code, text = run_cli(
        "bench", "--config", out / "best.yaml", "--out", tmp_path / "b", "--no-report"
    )
    assert code == 0, text
    res = json.loads((tmp_path / "b" / "results.json").read_text())
    assert list(res["methods"]) == ["mlp"]  # the file's method, not the default one
    assert res["methods"]["mlp"]["method"] == best["method"]
    assert res["methods"]["mlp"]["train"] == best["train"]

    replaced = tune(cfg, out, TuneSettings(trials=1, metric="cosine"), overwrite=True)
    assert replaced.reused == 0 and len(finished(study_trials(out))) == 1


def test_a_trial_that_raises_or_scores_nan_is_recorded_and_the_search_goes_on():
    storage = optuna.storages.InMemoryStorage()
    optuna.create_study(storage=storage, study_name=STUDY_NAME)
    calls = []

    def objective(trial):
        x = trial.suggest_float("x", 0.0, 1.0)
        calls.append(x)
        if len(calls) == 2:
            raise RuntimeError("loss diverged")
        return float("nan") if len(calls) == 3 else x

    _run_trials(require_optuna(), storage, objective, TuneSettings(trials=4), 0, 1, _Quiet())
    trials = optuna.load_study(study_name=STUDY_NAME, storage=storage).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "FAIL", "COMPLETE"]
    assert "loss diverged" in trials[1].user_attrs["error"]
    assert "kl is nan" in trials[2].user_attrs["error"]  # counted: the study cannot loop


class _Quiet:
    def plan(self, *a): ...
    def trial_start(self, *a): ...
    def trial_end(self, *a): ...


# --------------------------------------------------------------------------- bench --tune
def test_bench_tune_gives_a_labelled_nested_estimate_with_per_fold_choices(run_cli, tmp_path):
    out = tmp_path / "b"
    args = ["bench", "--method", "prior,mlp", "--tune", "2", "--out", out, "--no-report"]
    for s in SETS:
        args += ["--set", s]
    code, text = run_cli(*args)
    assert code == 0, text
    assert "nested (tuned 2 trials per fold)" in text
    assert "nested (tuned 2 trials per fold)" in (out / "summary.md").read_text()
    res = json.loads((out / "results.json").read_text())
    assert res["nested"]["trials"] == 2 and res["nested"]["tuned_methods"] == ["mlp"]
    space = set(declared_space("mlp"))
    for fold in res["methods"]["mlp"]["folds"]:
        tuning = fold["fit_info"]["tuning"]
        assert set(tuning["params"]) == space and tuning["states"] == {"complete": 2}
    assert all("tuning" not in f["fit_info"] for f in res["methods"]["prior"]["folds"])
    # an untuned run may not mix its folds into the nested results
    code, text = run_cli("bench", "--method", "prior", "--out", out, *args[7:])
    assert code == 2 and "another dataset or protocol" in text


# --------------------------------------------------------------------------- kill, Ctrl-C
TRIALS = 4


def cli(out):
    args = [sys.executable, "-m", "affectkit.cli", "tune", "--method", "mlp"]
    args += ["--trials", str(TRIALS), "--out", str(out), "--threads", "1"]
    for s in SETS:
        args += ["--set", s]
    return args


def counted_rows(out):
    path = out / "trials.csv"
    if not path.is_file():
        return 0
    with open(path) as fh:
        return sum(r["state"] in ("complete", "pruned") for r in csv.DictReader(fh))


def stop_after(env, out, sig, n_done):
    """Start the CLI, wait until ``n_done`` trials are stored, then send ``sig``."""
    proc = subprocess.Popen(
        cli(out),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 180
    while counted_rows(out) < n_done:
        if proc.poll() is not None:
            pytest.fail(f"tune ended before trial {n_done}: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"trial {n_done} did not finish within 180 s")
        time.sleep(0.005)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    return proc.returncode, stdout + stderr


@pytest.mark.slow
def test_killed_study_resumes_to_the_uninterrupted_result(tmp_path, cli_env):
    out = tmp_path / "study"
    code, log = stop_after(cli_env(tmp_path, OMP_NUM_THREADS="1"), out, signal.SIGKILL, 1)
    assert code == -signal.SIGKILL, log
    before = finished(study_trials(out))
    assert 1 <= len(before) < TRIALS
    assert (out / "best.yaml").is_file()  # written with the first completed trial

    settings = TuneSettings(trials=TRIALS)
    resumed = tune(config(), out, settings, threads=1)  # the same command, again
    tune(config(), tmp_path / "ref", settings, threads=1)  # never interrupted
    assert resumed.reused == len(before)
    trials = study_trials(out)
    assert finished(trials)[: len(before)] == before and len(finished(trials)) == TRIALS
    # a trial in flight at the kill is failed on resume (and asked again), never left running
    assert all(t.state.name != "RUNNING" for t in trials) and len(trials) <= TRIALS + 1
    # the sampler is seeded per trial from the run seed and the finished count: a resumed
    # study asks and scores exactly what an uninterrupted one does
    assert finished(trials) == finished(study_trials(tmp_path / "ref"))


def test_ctrl_c_keeps_finished_trials_and_exits_130(run_cli, monkeypatch, tmp_path):
    import affectkit.tuning as tuning

    real, calls = tuning.run_fold, []

    def interrupted_in_second_trial(*args, **kwargs):
        calls.append(1)
        if len(calls) == 6:  # 4 folds per trial: mid-way through trial 2
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(tuning, "run_fold", interrupted_in_second_trial)
    out = tmp_path / "study"
    args = ["tune", "--method", "mlp", "--trials", "3", "--out", out, "--no-prune"]
    code, text = run_cli(*args, *[x for s in SETS for x in ("--set", s)])
    assert code == 130, text
    assert "interrupted" in text and "run the same command to resume" in text
    assert "Traceback" not in text
    trials = study_trials(out)
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL"]
    assert "trial 0" in (out / "best.yaml").read_text()


def test_calibrated_subjects_never_validate_a_trial():
    """subject-calibrated: a fold's training part holds the test subject's calibration
    windows. Neither the inner split that scores a trial nor early stopping inside it may
    hold them out (validation comes from training subjects only, as in the outer fold)."""
    from affectkit.tuning import inner_fold, training_part

    cfg = config(extra=["dataset.windows=16", "protocol.name=subject-calibrated", "protocol.gap=1"])
    data = load_dataset(cfg.dataset)
    protocol = build_protocol(cfg)
    held_out = []
    for fold in protocol.folds(data):
        part = training_part(data, fold, protocol)
        mine = np.isin(part.subject, fold.test_subjects)
        assert mine.any()  # the calibration windows are in the part
        for seed in range(6):
            inner = inner_fold(protocol, part, fold, 0.25, seed)
            assert not mine[inner.test].any(), "a trial was scored on calibration windows"
            fit, valid = protocol.validation_split(part, inner.train, 0.25, seed)
            assert not mine[valid].any(), "early stopping validated on calibration windows"
            assert mine[fit].any()  # they stay in training
            held_out.extend(part.subject[inner.test].tolist())
    assert len(set(held_out)) == len(data.subjects)  # every subject validates somewhere


def test_bench_tune_resumes_a_folds_search_after_an_interruption(run_cli, monkeypatch, tmp_path):
    """bench --tune stores each fold's inner search as it goes: a run stopped mid-search
    resumes it (the finished trial is kept, not searched again) and ends with the same
    choice as a run never stopped."""
    import affectkit.tuning as tuning

    real, calls, stopped = tuning.run_fold, [], []

    def interrupted_in_second_trial(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2 and not stopped:  # fold 0: trial 1 done, trial 2 interrupted
            stopped.append(1)
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(tuning, "run_fold", interrupted_in_second_trial)
    out, ref = tmp_path / "b", tmp_path / "ref"
    sets = [x for s in SETS for x in ("--set", s)]
    args = ["--method", "mlp", "--tune", "3", "--executor", "serial", "--no-report", *sets]
    code, text = run_cli("bench", "--out", out, *args)
    assert code == 130, text
    (study,) = out.glob("methods/mlp/seed-0/fold-0.tuning-*.sqlite3")
    kept = finished(optuna.load_study(study_name=STUDY_NAME, storage=f"sqlite:///{study}").trials)
    assert len(kept) == 1

    calls.clear()
    code, text = run_cli("bench", "--out", out, *args)
    assert code == 0, text
    resumed = finished(
        optuna.load_study(study_name=STUDY_NAME, storage=f"sqlite:///{study}").trials
    )
    assert resumed[:1] == kept and len(resumed) == 3
    folds = json.loads((out / "results.json").read_text())["methods"]["mlp"]["folds"]
    n_folds = len(folds)
    assert len(calls) == 2 + 1 + (n_folds - 1) * (3 + 1)  # fold 0 asks only its last 2 trials

    monkeypatch.setattr(tuning, "run_fold", real)
    assert run_cli("bench", "--out", ref, *args)[0] == 0
    again = json.loads((ref / "results.json").read_text())["methods"]["mlp"]["folds"]
    assert [f["fit_info"]["tuning"]["params"] for f in folds] == [
        f["fit_info"]["tuning"]["params"] for f in again
    ]
