"""The leakage check every protocol gets (``test_protocol_isolation.py`` runs it over every
registered protocol; a plugin's own tests can call :func:`assert_fold_isolation` as well).

For each fold it runs the real evaluator (:func:`affectkit.evaluate.run_fold`) twice: on the
data, and on a copy in which every window outside the fold's training split (the test
part, the gap, a test subject's windows past its calibration cut) holds huge values. A
recording method keeps what ``fit`` (fit and validation inputs) and ``finetune`` receive:
both runs must give bit-identical inputs, so none of those windows reached fit, validation
or the normalisation statistics (normalised inputs would move with them). The statistics
are compared directly as well, except those of a protocol that declares itself
``transductive``. Index checks add: train and test disjoint; fit, validation and statistics
inside the training split; for protocols that cut trials in time, every training window
of a test subject's trial at least the gap before each of that trial's test windows; and,
under ``subject-calibrated``, validation free of the test subject unless asked for.
"""

from __future__ import annotations

from typing import Any
from unittest import mock

import numpy as np

from affectkit import evaluate
from affectkit.config import validate_run_config
from affectkit.data import EmotionDataset, Standardizer, SubjectStandardizer
from affectkit.interfaces import Method

POISON = 1e6


class Recorder(Method):
    """Predicts the fit split's mean; logs copies of everything it is given."""

    def __init__(self, log: list[tuple[str, Any]]) -> None:
        self.log = log

    def fit(self, train, valid=None, progress=None):
        self.log.append(("fit", _arrays(train)))
        self.log.append(("valid", None if valid is None else _arrays(valid)))
        self.mean = train.targets.mean(0)
        return {}

    def finetune(self, data, steps, lr=None):
        self.log.append(("finetune", _arrays(data)))
        return {}

    def predict(self, data):
        return np.tile(self.mean, (len(data), 1))


def _arrays(d: EmotionDataset) -> dict[str, np.ndarray]:
    out = {f"mod_{m}": x.copy() for m, x in d.modalities.items()}
    return {**out, "target": d.targets.copy(), "subject": d.subject.copy(), "window": d.window}


def poisoned(data: EmotionDataset, keep: np.ndarray) -> EmotionDataset:
    """``data`` with every row outside ``keep`` overwritten by huge values."""
    out = {}
    for m, x in data.modalities.items():
        x = x.copy()
        outside = np.ones(len(data), dtype=bool)
        outside[keep] = False
        x[outside] = POISON
        out[m] = x
    return data.with_modalities(out)


def _run(cfg, data, protocol, fold) -> list[tuple[str, Any]]:
    log: list[tuple[str, Any]] = []
    with mock.patch.object(evaluate, "build_method", lambda *a, **k: Recorder(log)):
        evaluate.run_fold(cfg, data, protocol, fold, seed=0)
    return log


def _stats(norm: Standardizer | SubjectStandardizer, skip: set[str]) -> list[np.ndarray]:
    parts = [norm] if isinstance(norm, Standardizer) else [norm.pooled]
    if isinstance(norm, SubjectStandardizer):
        parts += [v for s, v in sorted(norm.subjects.items()) if s not in skip]
    return [a for p in parts for d in (p.mean, p.std) for _, a in sorted(d.items())]


def _assert_same(a: Any, b: Any, what: str) -> None:
    assert len(a) == len(b), what
    for (kind_a, x), (kind_b, y) in zip(a, b, strict=True):
        assert kind_a == kind_b
        if x is None or y is None:
            assert x is y, f"{what}: {kind_a}"
            continue
        for k in x:
            assert np.array_equal(x[k], y[k]), f"{what}: {kind_a} input {k!r} changed"


def assert_fold_isolation(
    data: EmotionDataset, protocol_config: dict[str, Any], method: str = "prior"
) -> int:
    """Run every check above on every fold of ``protocol_config``; returns the fold count."""
    cfg = validate_run_config({"protocol": protocol_config, "method": {"name": method}})
    protocol = evaluate.build_protocol(cfg)
    train_cfg = evaluate.method_train_config(cfg)
    folds = protocol.folds(data)
    gap = getattr(cfg.protocol, "gap", None)
    gap = int(data.info.get("overlap_windows", 0)) if gap is None else gap
    keys = data.trial_keys()
    assert folds
    for fold in folds:
        what = f"{protocol_config} {fold.name}"
        assert not np.intersect1d(fold.train, fold.test).size, f"{what}: train, test not disjoint"
        finetune = getattr(cfg.protocol, "adapt", "join") == "finetune"
        inputs = evaluate.fold_inputs(cfg, data, protocol, fold, train_cfg, 0, finetune=finetune)
        assert np.isin(inputs.fit, fold.train).all(), f"{what}: fit outside the training split"
        assert np.isin(inputs.valid, fold.train).all(), f"{what}: validation outside it"
        assert not np.intersect1d(inputs.fit, inputs.valid).size, what
        assert np.isin(inputs.calibration, fold.train).all(), what
        for subject, rows in inputs.stats.items():
            if np.isin(rows, fold.train).all():
                continue
            assert protocol.transductive and subject in fold.test_subjects, (
                f"{what}: statistics of {subject} read windows outside the training split "
                "without the protocol saying it is transductive"
            )
        if getattr(type(protocol), "calibrates", False):
            own = np.isin(data.subject[inputs.valid], fold.test_subjects)
            if cfg.protocol.validate_on == "training-subjects":
                assert not own.any(), f"{what}: the test subject validates"
        if not type(protocol).leaky:
            for s in fold.test_subjects:
                tr = fold.train[data.subject[fold.train] == s]
                te = fold.test[data.subject[fold.test] == s]
                for key in np.intersect1d(keys[tr], keys[te]):
                    last = data.window[tr][keys[tr] == key].max()
                    first = data.window[te][keys[te] == key].min()
                    assert first - last > gap, f"{what}: a training window within the gap"

        dirty = poisoned(data, fold.train)
        _assert_same(_run(cfg, data, protocol, fold), _run(cfg, dirty, protocol, fold), what)
        again = evaluate.fold_inputs(cfg, dirty, protocol, fold, train_cfg, 0)
        skip = set(fold.test_subjects) if protocol.transductive else set()
        clean = evaluate.fold_inputs(cfg, data, protocol, fold, train_cfg, 0)
        for x, y in zip(
            _stats(clean.normalizer, skip), _stats(again.normalizer, skip), strict=True
        ):
            assert np.array_equal(x, y), f"{what}: normalisation statistics moved"
    return len(folds)
