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
