import numpy as np
import pytest

from affectkit.errors import UserError
from affectkit.plugins import get_registry


def build(name, **cfg):
    return get_registry().get("protocol", name).build(cfg)


def test_loso_every_sample_tested_once_and_no_subject_leak(tiny_dataset):
    data = tiny_dataset
    folds = build("subject-independent").folds(data)
    assert len(folds) == len(data.subjects)
    tested = np.concatenate([f.test for f in folds])
    assert np.array_equal(np.sort(tested), np.arange(len(data)))
    for f in folds:
        assert not set(data.subject[f.train]) & set(data.subject[f.test])
        assert len(f.train) + len(f.test) == len(data)


def test_kfold_over_subjects_groups_whole_subjects(tiny_dataset):
    data = tiny_dataset
    folds = build("subject-independent", folds=2).folds(data)
    assert len(folds) == 2
    for f in folds:
        assert len(set(data.subject[f.test])) == 2
        assert not set(data.subject[f.train]) & set(data.subject[f.test])


def test_subject_independent_validation_holds_out_whole_subjects(tiny_dataset):
    data = tiny_dataset
    proto = build("subject-independent")
    fold = proto.folds(data)[0]
    fit, valid = proto.validation_split(data, fold.train, 0.3, seed=0)
    assert len(valid) > 0
    assert not set(data.subject[fit]) & set(data.subject[valid])
    assert not set(data.subject[valid]) & set(data.subject[fold.test])
    assert np.array_equal(np.sort(np.r_[fit, valid]), np.sort(fold.train))


def test_subject_dependent_time_split_with_gap(tiny_dataset):
    data = tiny_dataset  # 6 windows per trial, synthetic declares overlap 4 -> default gap 4
    proto = build("subject-dependent", gap=1, train_fraction=0.5)
    folds = proto.folds(data)
    assert len(folds) == len(data.subjects)
    for f in folds:
        assert len(set(data.subject[np.r_[f.train, f.test]])) == 1
        keys = data.trial_keys()
        for key in np.unique(keys[f.test]):
            tr = data.window[f.train][keys[f.train] == key]
            te = data.window[f.test][keys[f.test] == key]
            # every test window comes after every train window, at least gap+1 later
            assert te.min() - tr.max() >= 2
        assert len(f.test) == 2 * len(np.unique(keys[f.test]))  # windows 4, 5 of each trial
    # 80% of 6 windows = 5 train windows; a gap of 1 leaves nothing to test
    with pytest.raises(UserError, match="no test windows"):
        build("subject-dependent", gap=1).folds(data)


def test_subject_dependent_validation_uses_later_windows(tiny_dataset):
    data = tiny_dataset
    proto = build("subject-dependent", gap=0, train_fraction=0.5)
    fold = proto.folds(data)[0]
    fit, valid = proto.validation_split(data, fold.train, 0.34, seed=0)
    keys = data.trial_keys()
    for key in np.unique(keys[valid]):
        assert (
            data.window[valid][keys[valid] == key].min() > data.window[fit][keys[fit] == key].max()
        )


def test_sample_random_is_marked_leaky_and_mixes_trials(tiny_dataset):
    data = tiny_dataset
    proto = build("sample-random")
    assert type(proto).leaky is True
    folds = proto.folds(data)
    keys = data.trial_keys()
    shared = set(keys[folds[0].train]) & set(keys[folds[0].test])
    assert shared, "the leaky protocol puts windows of one trial on both sides"
    assert not type(build("subject-independent")).leaky


# --------------------------------------------------------------------- subject-calibrated
def _calibrated(data, **cfg):
    proto = build("subject-calibrated", **cfg)
    return proto, proto.folds(data)


def _own(data, fold):
    """The test subject's calibration windows (its part of the training split)."""
    return fold.train[np.isin(data.subject[fold.train], fold.test_subjects)]


def test_calibrated_fraction_takes_the_first_windows_of_each_trial_then_a_gap(tiny_dataset):
    data = tiny_dataset  # 6 windows per trial
    proto, folds = _calibrated(data, calibration_fraction=0.34, gap=1)
    assert len(folds) == len(data.subjects)
    for f in folds:
        own = _own(data, f)
        assert set(data.window[own]) == {0, 1}  # round(0.34 * 6) = 2 windows per trial
        assert set(data.window[f.test]) == {3, 4, 5}  # window 2 is the gap
        assert set(data.subject[f.test]) == set(f.test_subjects)
        others = np.setdiff1d(f.train, own)
        assert len(others) == (data.subject != f.test_subjects[0]).sum()  # all of the others
    assert "first 34% of each trial, gap 1" in proto.describe(data)


def test_calibrated_zero_fraction_is_subject_independent_without_a_gap(tiny_dataset):
    data = tiny_dataset
    proto, folds = _calibrated(data, calibration_fraction=0)
    independent = build("subject-independent").folds(data)
    for f, g in zip(folds, independent, strict=True):
        assert np.array_equal(f.train, g.train) and np.array_equal(f.test, g.test)
    assert "none (calibration_fraction=0)" in proto.describe(data)


def test_calibrated_seconds_and_trials(tiny_dataset):
    data = tiny_dataset  # time = window index (s), trials 0-7
    _, folds = _calibrated(data, calibration_seconds=2, gap=0)
    assert set(data.window[_own(data, folds[0])]) == {0, 1}
    assert set(data.window[folds[0].test]) == {2, 3, 4, 5}
    proto, folds = _calibrated(data, calibration_trials=3)
    assert set(data.trial[_own(data, folds[0])]) == {0, 1, 2}  # whole trials, no gap needed
    assert set(data.trial[folds[0].test]) == set(range(3, 8))
    assert "first 3 trial(s)" in proto.describe(data)
    # the recording order, where the dataset declares it, decides which trials are early
    s = folds[0].test_subjects[0]
    data.info["trial_order"] = {s: [7, 5, 0, 1, 2, 3, 4, 6]}
    _, folds = _calibrated(data, calibration_trials=2)
    assert set(data.trial[_own(data, folds[0])]) == {5, 7}


def test_calibrated_needs_exactly_one_amount_and_says_which(run_cli):
    code, out = run_cli(
        "config",
        "show",
        "--protocol",
        "subject-calibrated",
        "--set",
        "protocol.calibration_fraction=0.1",
        "--set",
        "protocol.calibration_trials=2",
    )
    assert code == 2 and "Traceback" not in out
    assert "protocol" in out and "calibration_fraction and calibration_trials" in out
    # none given: the first 10 % of each trial
    assert build("subject-calibrated").config.amount == ("calibration_fraction", 0.1)


def test_calibrated_too_much_calibration_names_the_subject_and_fix(tiny_dataset):
    with pytest.raises(UserError, match=r"subject 1: no test windows .*calibration_fraction=0.9"):
        build("subject-calibrated", calibration_fraction=0.9).folds(tiny_dataset)


def test_calibrated_validation_holds_out_training_subjects_not_the_test_subject(tiny_dataset):
    data = tiny_dataset
    proto, folds = _calibrated(data, calibration_fraction=0.34, gap=1)
    for f in folds:
        fit, valid = proto.validation_split(data, f.train, 0.34, seed=0)
        assert len(valid) and not np.isin(data.subject[valid], f.test_subjects).any()
        assert np.isin(_own(data, f), fit).all()
    # on request, the later calibration windows of each trial validate, behind the gap
    proto, folds = _calibrated(data, calibration_fraction=0.5, gap=0, validate_on="calibration")
    fit, valid = proto.validation_split(data, folds[0].train, 0.34, seed=0)
    assert set(data.subject[valid]) == set(folds[0].test_subjects)
    assert set(data.window[valid]) == {2} and "validated on calibration" in proto.describe(data)
