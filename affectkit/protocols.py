"""Evaluation protocols (registry kind ``protocol``).

- ``subject-independent``: leave-one-subject-out, or k-fold over subjects
  (``folds=k``). Validation for early stopping = whole training subjects.
- ``subject-dependent``: one fold per subject; each trial is cut in time (first
  ``train_fraction`` of its windows train, the rest test) with ``gap`` windows dropped at
  the cut so that overlapping windows never straddle it. Validation = the later windows
  of each training trial (again behind a gap).
- ``sample-random``: per subject a random split of windows - the published leaky
  protocol (windows of one trial on both sides); results are marked ``leaky``.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field

from .data import EmotionDataset
from .errors import UserError
from .interfaces import Fold, Protocol
from .registry import ComponentConfig


class SubjectIndependentConfig(ComponentConfig):
    folds: int | None = Field(
        None, ge=2, description="k-fold over subjects; null = leave-one-subject-out"
    )
    shuffle_seed: int = Field(0, description="seed of the subject-to-fold assignment")


class SubjectDependentConfig(ComponentConfig):
    train_fraction: float = Field(0.8, gt=0, lt=1)
    gap: int | None = Field(
        None, ge=0, description="windows dropped at the cut; null = the dataset's window overlap"
    )


class SampleRandomConfig(ComponentConfig):
    train_fraction: float = Field(0.8, gt=0, lt=1)
    shuffle_seed: int = 0


def _gap(data: EmotionDataset, gap: int | None) -> int:
    return int(data.info.get("overlap_windows", 0)) if gap is None else int(gap)


def _time_split(
    data: EmotionDataset, idx: np.ndarray, fraction: float, gap: int
) -> tuple[np.ndarray, np.ndarray]:
    """Within each trial of ``idx``: earliest windows -> first, latest -> second, gap dropped."""
    keys = data.trial_keys()[idx]
    order = np.lexsort((data.window[idx], keys))  # by trial, then window index
    idx, keys = idx[order], keys[order]
    starts = np.r_[0, np.flatnonzero(np.diff(keys)) + 1]
    counts = np.diff(np.r_[starts, len(idx)])
    # position of each window inside its trial, vectorised over all trials
    pos = np.arange(len(idx)) - np.repeat(starts, counts)
    n = np.repeat(counts, counts)
    cut = np.maximum(1, np.round(fraction * n).astype(np.int64))
    first = pos < cut
    second = pos >= cut + gap
    return idx[first], idx[second]


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
        subjects = np.unique(data.subject[train_idx])
        if len(subjects) < 2 or fraction <= 0:
            return train_idx, train_idx[:0]
        n_valid = int(np.clip(round(fraction * len(subjects)), 1, len(subjects) - 1))
        rng = np.random.default_rng(seed)
        held = rng.choice(subjects, size=n_valid, replace=False)
        mask = np.isin(data.subject[train_idx], held)
        return train_idx[~mask], train_idx[mask]

    def describe(self, data: EmotionDataset) -> str:
        n = len(data.subjects)
        k = self.config.folds
        if k is None or k >= n:
            return f"subject-independent, leave-one-subject-out ({n} folds)"
        return f"subject-independent, {k}-fold over {n} subjects"


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
            f"rest, gap {gap} ({len(data.subjects)} folds)"
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
        )
