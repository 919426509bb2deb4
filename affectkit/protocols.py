"""Evaluation protocols (registry kind ``protocol``).

- ``subject-independent``: leave-one-subject-out, or k-fold over subjects
  (``folds=k``). Validation for early stopping = whole training subjects.
- ``subject-dependent``: one fold per subject; each trial is cut in time (first
  ``train_fraction`` of its windows train, the rest test) with ``gap`` windows dropped at
  the cut so that overlapping windows never straddle it. Validation = the later windows
  of each training trial (again behind a gap).
- ``sample-random``: per subject a random split of windows - the published leaky
  protocol (windows of one trial on both sides); results are marked ``leaky``.
- ``subject-calibrated``: leave-one-subject-out, but the test subject's calibration part
  (the first fraction / seconds of each trial, or its first trials) joins training; a
  ``gap`` of windows after it is dropped and the rest is tested. Validation = whole
  training subjects, never the test subject unless ``validate_on: calibration``.

Every protocol config takes ``normalize``: ``global`` (one set of feature statistics from
the fold's training split) or ``per-subject`` (each subject z-scored with its own
statistics, from the windows :meth:`~affectkit.Protocol.normalization_windows` allows;
``subject-independent`` then reads the test subject's unlabelled test windows and is
marked transductive).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from .data import EmotionDataset
from .errors import UserError
from .interfaces import Fold, Protocol
from .registry import ComponentConfig

Normalize = Literal["global", "per-subject"]


class ProtocolConfig(ComponentConfig):
    """Base of the built-in protocol configs: the normalisation every protocol offers."""

    normalize: Normalize = Field(
        "global",
        description="global: feature statistics of the fold's training split; per-subject: "
        "each subject z-scored with its own statistics (the test subject's from the windows "
        "the protocol allows: calibration windows, or its unlabelled test windows under "
        "subject-independent, which is transductive)",
    )


class SubjectIndependentConfig(ProtocolConfig):
    folds: int | None = Field(
        None, ge=2, description="k-fold over subjects; null = leave-one-subject-out"
    )
    shuffle_seed: int = Field(0, description="seed of the subject-to-fold assignment")


class SubjectDependentConfig(ProtocolConfig):
    train_fraction: float = Field(0.8, gt=0, lt=1)
    gap: int | None = Field(
        None, ge=0, description="windows dropped at the cut; null = the dataset's window overlap"
    )


class SampleRandomConfig(ProtocolConfig):
    train_fraction: float = Field(0.8, gt=0, lt=1)
    shuffle_seed: int = 0


def _norm_note(config: ProtocolConfig) -> str:
    return "; per-subject normalisation" if config.normalize == "per-subject" else ""


def _gap(data: EmotionDataset, gap: int | None) -> int:
    return int(data.info.get("overlap_windows", 0)) if gap is None else int(gap)


def _trial_positions(
    data: EmotionDataset, idx: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``idx`` ordered by trial, then window; each window's position in its trial, the
    trial's window count, and a running trial number (0, 1, ...) per window."""
    keys = data.trial_keys()[idx]
    order = np.lexsort((data.window[idx], keys))  # by trial, then window index
    idx, keys = idx[order], keys[order]
    starts = np.r_[0, np.flatnonzero(np.diff(keys)) + 1]
    counts = np.diff(np.r_[starts, len(idx)])
    # position of each window inside its trial, vectorised over all trials
    pos = np.arange(len(idx)) - np.repeat(starts, counts)
    group = np.repeat(np.arange(len(counts)), counts)
    return idx, pos, np.repeat(counts, counts), group


def _cut(idx: np.ndarray, pos: np.ndarray, cut: np.ndarray, gap: int):
    """Windows before each trial's ``cut`` -> first; from ``cut + gap`` on -> second. A
    trial with nothing before its cut drops no gap: no earlier window can overlap."""
    first = pos < cut
    second = pos >= np.where(cut > 0, cut + gap, 0)
    return idx[first], idx[second]


def _time_split(
    data: EmotionDataset, idx: np.ndarray, fraction: float, gap: int
) -> tuple[np.ndarray, np.ndarray]:
    """Within each trial of ``idx``: earliest windows -> first, latest -> second, gap dropped."""
    idx, pos, n, _ = _trial_positions(data, idx)
    return _cut(idx, pos, np.maximum(1, np.round(fraction * n).astype(np.int64)), gap)


def _hold_out_subjects(
    data: EmotionDataset, train_idx: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(fit, validation) with ``fraction`` of the subjects of ``train_idx`` held out whole."""
    subjects = np.unique(data.subject[train_idx])
    if len(subjects) < 2 or fraction <= 0:
        return train_idx, train_idx[:0]
    n_valid = int(np.clip(round(fraction * len(subjects)), 1, len(subjects) - 1))
    rng = np.random.default_rng(seed)
    held = rng.choice(subjects, size=n_valid, replace=False)
    mask = np.isin(data.subject[train_idx], held)
    return train_idx[~mask], train_idx[mask]


class SubjectIndependent(Protocol):
    """Leave-one-subject-out or k-fold over subjects."""

    leaky: ClassVar[bool] = False

    def folds(self, data: EmotionDataset) -> list[Fold]:
        subjects = data.subjects
        k = self.config.folds
        if len(subjects) < 2:
            raise UserError(
                f"subject-independent evaluation needs at least 2 subjects; {data.name!r} has "
                f"{len(subjects)}. Use --protocol subject-dependent."
            )
        if k is None or k >= len(subjects):
            groups = [[s] for s in subjects]
        else:
            rng = np.random.default_rng(self.config.shuffle_seed)
            perm = [subjects[i] for i in rng.permutation(len(subjects))]
            groups = [sorted(g.tolist()) for g in np.array_split(np.array(perm), k)]
        out = []
        for i, g in enumerate(groups):
            test = np.isin(data.subject, g)
            name = f"subject {g[0]}" if len(g) == 1 else f"fold {i} ({len(g)} subjects)"
            out.append(Fold(i, name, np.flatnonzero(~test), np.flatnonzero(test), list(g)))
        return out

    def validation_split(self, data, train_idx, fraction, seed):
        return _hold_out_subjects(data, train_idx, fraction, seed)

    @property
    def transductive(self) -> bool:
        return self.config.normalize == "per-subject"

    def normalization_windows(self, data, fold):
        # a test subject has no training windows: only its unlabelled test windows can
        # give its statistics, which is transductive (and said so)
        windows = super().normalization_windows(data, fold)
        for s in fold.test_subjects:
            windows[s] = fold.test[data.subject[fold.test] == s]
        return windows

    def describe(self, data: EmotionDataset) -> str:
        n = len(data.subjects)
        k = self.config.folds
        if k is None or k >= n:
            text = f"subject-independent, leave-one-subject-out ({n} folds)"
        else:
            text = f"subject-independent, {k}-fold over {n} subjects"
        if self.transductive:
            text += (
                "; per-subject normalisation, TRANSDUCTIVE (test subjects' statistics from "
                "their unlabelled test windows)"
            )
        return text


class SubjectDependent(Protocol):
    """Per subject: early windows of every trial train, late windows test."""

    def folds(self, data: EmotionDataset) -> list[Fold]:
        gap = _gap(data, self.config.gap)
        out = []
        for i, s in enumerate(data.subjects):
            idx = np.flatnonzero(data.subject == s)
            tr, te = _time_split(data, idx, self.config.train_fraction, gap)
            if len(te) == 0:
                raise UserError(
                    f"subject-dependent split of subject {s}: no test windows remain (trials too "
                    f"short for train_fraction={self.config.train_fraction} and gap={gap})."
                )
            out.append(Fold(i, f"subject {s}", tr, te, [s]))
        return out

    def validation_split(self, data, train_idx, fraction, seed):
        if fraction <= 0:
            return train_idx, train_idx[:0]
        return _time_split(data, train_idx, 1.0 - fraction, _gap(data, self.config.gap))

    def describe(self, data: EmotionDataset) -> str:
        gap = _gap(data, self.config.gap)
        return (
            f"subject-dependent, per-trial time split {self.config.train_fraction:.0%} / "
            f"rest, gap {gap} ({len(data.subjects)} folds)" + _norm_note(self.config)
        )


class SampleRandom(Protocol):
    """Per subject, a random split of windows. LEAKY: windows of a trial on both sides."""

    leaky: ClassVar[bool] = True

    def folds(self, data: EmotionDataset) -> list[Fold]:
        rng = np.random.default_rng(self.config.shuffle_seed)
        out = []
        for i, s in enumerate(data.subjects):
            idx = rng.permutation(np.flatnonzero(data.subject == s))
            cut = round(self.config.train_fraction * len(idx))
            out.append(Fold(i, f"subject {s}", np.sort(idx[:cut]), np.sort(idx[cut:]), [s]))
        return out

    def validation_split(self, data, train_idx, fraction, seed):
        if fraction <= 0:
            return train_idx, train_idx[:0]
        perm = np.random.default_rng(seed).permutation(train_idx)
        n_valid = max(1, round(fraction * len(perm)))
        return np.sort(perm[n_valid:]), np.sort(perm[:n_valid])

    def describe(self, data: EmotionDataset) -> str:
        return (
            "sample-random (LEAKY published protocol), per-subject "
            f"{self.config.train_fraction:.0%} random split ({len(data.subjects)} folds)"
            + _norm_note(self.config)
        )


class SubjectCalibratedConfig(ProtocolConfig):
    calibration_fraction: float | None = Field(
        None,
        ge=0,
        lt=1,
        description="the first fraction of each of the test subject's trials calibrates "
        "(the default, 0.1, when no calibration_* key is set)",
    )
    calibration_seconds: float | None = Field(
        None, ge=0, description="the first seconds of each trial (window start < seconds)"
    )
    calibration_trials: int | None = Field(
        None,
        ge=0,
        description="whole early trials, in recording order (the dataset's "
        "info['trial_order'][subject], else by trial id)",
    )
    gap: int | None = Field(
        None,
        ge=0,
        description="windows dropped after the calibration part of a trial; null = the "
        "dataset's window overlap",
    )
    calibration_weight: float = Field(
        1.0,
        ge=0,
        description="sample weight of the calibration windows in training (by repetition: "
        "the whole part, then an evenly spread share for a fraction)",
    )
    adapt: Literal["join", "finetune"] = Field(
        "join",
        description="join: calibration windows join training; finetune (neural methods): "
        "train on the other subjects, then finetune_steps steps on the calibration windows "
        "(methods without that hook join)",
    )
    finetune_steps: int = Field(100, ge=1, description="optimiser steps of adapt: finetune")
    finetune_lr: float | None = Field(
        None, gt=0, description="learning rate of adapt: finetune; null = train.lr"
    )
    validate_on: Literal["training-subjects", "calibration"] = Field(
        "training-subjects",
        description="early-stopping validation: whole training subjects, or the later part "
        "of each of the test subject's calibration trials",
    )

    @model_validator(mode="after")
    def _one_amount(self) -> SubjectCalibratedConfig:
        given = [k for k in CALIBRATION_KEYS if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(
                f"set exactly one of {', '.join(CALIBRATION_KEYS)}; got {' and '.join(given)}"
            )
        if not given:  # not validate_assignment-safe to assign here: bypass it
            object.__setattr__(self, "calibration_fraction", 0.1)
        return self

    @property
    def amount(self) -> tuple[str, float]:
        """(the calibration_* key in use, its value)."""
        key = next(k for k in CALIBRATION_KEYS if getattr(self, k) is not None)
        return key, getattr(self, key)


CALIBRATION_KEYS = ("calibration_fraction", "calibration_seconds", "calibration_trials")
#: ``EmotionDataset.info`` key of an outer fold's training part (tuning) that names the
#: subjects whose windows in it are calibration windows (the part holds no test window)
CALIBRATED = "calibrated_subjects"


class SubjectCalibrated(Protocol):
    """Leave-one-subject-out plus the test subject's calibration part in training."""

    #: the test subject's windows in a fold's training split are its calibration windows
    calibrates: ClassVar[bool] = True

    def split_subject(self, data: EmotionDataset, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One subject's windows ``idx`` -> (calibration, test), the gap dropped between."""
        c = self.config
        key, value = c.amount
        if key == "calibration_trials":
            subject = str(data.subject[idx[0]])
            order = data.info.get("trial_order", {}).get(subject)
            trials = np.unique(data.trial[idx]) if order is None else np.asarray(order)
            early = np.isin(data.trial[idx], trials[: int(value)])
            # whole trials: no window of a test trial overlaps a calibration window
            return np.sort(idx[early]), np.sort(idx[~early])
        idx, pos, n, group = _trial_positions(data, idx)
        if key == "calibration_fraction":
            cut = np.where(value > 0, np.maximum(1, np.round(value * n)), 0).astype(np.int64)
        else:  # windows that start within the first seconds of their trial
            below = np.bincount(group, weights=data.time[idx] < value).astype(np.int64)
            cut = below[group]
        first, second = _cut(idx, pos, cut, _gap(data, c.gap))
        return np.sort(first), np.sort(second)

    def folds(self, data: EmotionDataset) -> list[Fold]:
        if len(data.subjects) < 2:
            raise UserError(
                f"subject-calibrated evaluation needs at least 2 subjects; {data.name!r} has "
                f"{len(data.subjects)}. Use --protocol subject-dependent."
            )
        out = []
        for i, s in enumerate(data.subjects):
            own = data.subject == s
            calib, test = self.split_subject(data, np.flatnonzero(own))
            if len(test) == 0:
                key, value = self.config.amount
                raise UserError(
                    f"subject-calibrated split of subject {s}: no test windows remain after "
                    f"{key}={value:g} and gap={_gap(data, self.config.gap)}. Calibrate with "
                    "less, or use a smaller gap."
                )
            train = np.sort(np.r_[np.flatnonzero(~own), calib])
            out.append(Fold(i, f"subject {s}", train, test, [s]))
        return out

    def validation_split(self, data, train_idx, fraction, seed):
        # The calibrated subject is the one with windows outside the training split (its
        # test part), or, inside one outer fold's training part (tuning), the one the part
        # names in info[CALIBRATED]: it is never held out whole, and its calibration
        # windows validate only when the user asks for it.
        rest = np.ones(len(data), dtype=bool)
        rest[train_idx] = False
        named = list(data.info.get(CALIBRATED, []))
        calibrated = np.isin(data.subject[train_idx], [*np.unique(data.subject[rest]), *named])
        own, others = train_idx[calibrated], train_idx[~calibrated]
        if self.config.validate_on == "calibration" and len(own) and fraction > 0:
            fit, valid = _time_split(data, own, 1.0 - fraction, _gap(data, self.config.gap))
            if len(valid):
                return np.sort(np.r_[others, fit]), valid
        fit, valid = _hold_out_subjects(data, others, fraction, seed)
        return np.sort(np.r_[fit, own]), valid

    def describe(self, data: EmotionDataset) -> str:
        c = self.config
        key, value = c.amount
        amount = {
            "calibration_fraction": f"the first {value:.0%} of each trial",
            "calibration_seconds": f"the first {value:g} s of each trial",
            "calibration_trials": f"the first {value:g} trial(s)",
        }[key]
        gap = "" if key == "calibration_trials" else f", gap {_gap(data, c.gap)}"
        if value == 0:
            amount, gap = f"none ({key}=0)", ""
        if c.adapt == "finetune":
            adapt = f"fine-tuned {c.finetune_steps} steps on them"
        else:
            adapt = "joining training" + (
                f" with weight {c.calibration_weight:g}" if c.calibration_weight != 1 else ""
            )
        valid = "" if c.validate_on == "training-subjects" else ", validated on calibration"
        return (
            f"subject-calibrated, leave-one-subject-out ({len(data.subjects)} folds); "
            f"calibration: {amount}{gap}, {adapt}{valid}" + _norm_note(c)
        )
