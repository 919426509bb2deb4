"""No window outside a fold's training split reaches fit, validation or normalisation
statistics, for every registered protocol (tests/core/protocol_helpers.py)."""

import numpy as np
import pytest
from protocol_helpers import assert_fold_isolation

from affectkit import evaluate
from affectkit.datasets import load_dataset
from affectkit.plugins import get_registry
from affectkit.protocols import SubjectCalibrated

# 4 x 4 trials x 25 windows: default cuts and gaps (4 windows) leave test windows everywhere
SHAPE = {"name": "synthetic", "subjects": 4, "trials": 4, "windows": 25}

CALIBRATED = [
    {"calibration_fraction": 0.2},
    {"calibration_fraction": 0.0},
    {"calibration_seconds": 5},
    {"calibration_trials": 1},
    {"calibration_fraction": 0.3, "calibration_weight": 2.5},
    {"calibration_fraction": 0.3, "adapt": "finetune"},
    {"calibration_fraction": 0.5, "validate_on": "calibration", "gap": 1},
]


@pytest.fixture(scope="module")
def data():
    return load_dataset(get_registry().get("dataset", "synthetic").config_cls(**SHAPE))


def _cases():
    # every registered protocol with its defaults, so a new protocol is checked unasked
    cases = [{"name": n} for n in get_registry().names("protocol")]
    cases += [{"name": "subject-calibrated", **c} for c in CALIBRATED]
    return [
        pytest.param({**c, "normalize": norm}, id=f"{c}-{norm}")
        for c in cases
        for norm in ("global", "per-subject")
    ]


@pytest.mark.parametrize("protocol", _cases())
def test_no_window_outside_training_reaches_fit_validation_or_statistics(data, protocol):
    assert assert_fold_isolation(data, protocol) == len(data.subjects)


class _LeakyNormalisation(SubjectCalibrated):
    """A bug the helper must catch: the test subject's statistics from its test windows."""

    def normalization_windows(self, data, fold):
        windows = super().normalization_windows(data, fold)
        s = fold.test_subjects[0]
        windows[s] = np.r_[windows.get(s, fold.test[:0]), fold.test]
        return windows


class _LeakyCut(SubjectCalibrated):
    """Another: the gap is forgotten (test windows overlap the calibration windows)."""

    def split_subject(self, data, idx):
        calib, _ = super().split_subject(data, idx)
        return calib, np.setdiff1d(idx, calib)


@pytest.mark.parametrize(
    ("cls", "normalize", "message"),
    [
        (_LeakyNormalisation, "per-subject", "transductive"),
        (_LeakyCut, "global", "within the gap"),
    ],
)
def test_the_isolation_check_catches_a_leaking_protocol(data, monkeypatch, cls, normalize, message):
    monkeypatch.setattr(evaluate, "build_protocol", lambda cfg: cls(cfg.protocol))
    with pytest.raises(AssertionError, match=message):
        assert_fold_isolation(
            data,
            {"name": "subject-calibrated", "calibration_fraction": 0.2, "normalize": normalize},
        )
