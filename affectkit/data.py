"""The one in-memory dataset form every reader produces, and train-fold normalisation.

``EmotionDataset`` holds, for N windows:

- ``modalities``: name -> float32 array ``[N, ...]`` (e.g. ``eeg [N, 18, 5]``, ``gsr [N, 28]``),
- ``targets``: float32 ``[N, K]``, each row a distribution over ``emotions``,
- ``subject`` (str), ``trial`` (int), ``window`` (int index inside the trial) and
  ``time`` (float seconds from the trial start) per row,
- ``groups``: modality -> ``"physiological"`` | ``"behavioral"``,
- ``info``: free metadata (e.g. which item stands in for which emotion, window overlap).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from .errors import UserError

Group = Literal["physiological", "behavioral"]
MissingPolicy = Literal["error", "impute"]


@dataclass(frozen=True)
class DataSpec:
    """What a model needs to know about its inputs: shapes (without N), groups, emotions."""

    shapes: dict[str, tuple[int, ...]]
    groups: dict[str, Group]
    emotions: tuple[str, ...]

    @property
    def num_emotions(self) -> int:
        return len(self.emotions)

    def modalities(self, group: Group | None = None) -> list[str]:
        return [m for m in self.shapes if group is None or self.groups[m] == group]

    def to_json(self) -> dict[str, Any]:
        return {
            "shapes": {k: list(v) for k, v in self.shapes.items()},
            "groups": dict(self.groups),
            "emotions": list(self.emotions),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> DataSpec:
        return cls(
            shapes={k: tuple(v) for k, v in d["shapes"].items()},
            groups=dict(d["groups"]),
            emotions=tuple(d["emotions"]),
        )


@dataclass
class EmotionDataset:
    name: str
    modalities: dict[str, np.ndarray]
    targets: np.ndarray
    emotions: list[str]
    subject: np.ndarray
    trial: np.ndarray
    window: np.ndarray
    time: np.ndarray | None = None
    groups: dict[str, Group] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    missing: MissingPolicy = "error"

    def __post_init__(self) -> None:
        self.modalities = {
            k: np.ascontiguousarray(v, dtype=np.float32) for k, v in self.modalities.items()
        }
        self.targets = np.ascontiguousarray(self.targets, dtype=np.float32)
        self.subject = np.asarray(self.subject).astype(str)
        self.trial = np.asarray(self.trial, dtype=np.int64)
        self.window = np.asarray(self.window, dtype=np.int64)
        if self.time is None:
            self.time = self.window.astype(np.float32)
        self.time = np.asarray(self.time, dtype=np.float32)
        for m in self.modalities:
            self.groups.setdefault(m, "physiological")
        self.emotions = list(self.emotions)
        self.validate()

    # -- validation ---------------------------------------------------------------------
    def validate(self) -> None:
        n = self.targets.shape[0] if self.targets.ndim >= 1 else -1
        where = f"dataset {self.name!r}"
        if self.targets.ndim != 2 or self.targets.shape[1] != len(self.emotions):
            raise UserError(
                f"{where}: targets must be [N, K] with K = {len(self.emotions)} emotions "
                f"({', '.join(self.emotions)}), got shape {self.targets.shape}. "
                "Fix the reader so that every row holds one value per emotion."
            )
        if not self.modalities:
            raise UserError(f"{where}: no modalities. A dataset needs at least one feature array.")
        for m, arr in self.modalities.items():
            if arr.ndim < 2 or arr.shape[0] != n:
                raise UserError(
                    f"{where}: modality {m!r} has shape {arr.shape} but targets have {n} rows; "
                    "every modality must be [N, ...] with the same N as the targets."
                )
            if self.groups[m] not in ("physiological", "behavioral"):
                raise UserError(f"{where}: modality {m!r} has unknown group {self.groups[m]!r}")
            if self.missing == "error":
                bad = ~np.isfinite(arr.reshape(n, -1)).all(axis=1)
                if bad.any():
                    rows = np.flatnonzero(bad)
                    raise UserError(
                        f"{where}: modality {m!r} holds NaN/inf in {rows.size} row(s), first "
                        f"row {int(rows[0])} (subject {self.subject[rows[0]]}, trial "
                        f"{self.trial[rows[0]]}). Clean the input, or declare "
                        "missing='impute' so that training-fold means fill them."
                    )
        for arr_name in ("subject", "trial", "window", "time"):
            arr = getattr(self, arr_name)
            if arr.shape != (n,):
                raise UserError(f"{where}: {arr_name} must have shape ({n},), got {arr.shape}")
        t = self.targets
        bad = ~np.isfinite(t).all(axis=1) | (t < -1e-6).any(axis=1)
        bad |= np.abs(t.sum(axis=1) - 1.0) > 1e-3
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            raise UserError(
                f"{where}: target row {r} (subject {self.subject[r]}, trial {self.trial[r]}) "
                f"is not a distribution (values {np.round(t[r], 4).tolist()}, sum "
                f"{float(t[r].sum()):.4f}); {int(bad.sum())} row(s) affected. Targets must be "
                "non-negative and sum to 1: divide the ratings by their sum."
            )

    # -- views ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.targets.shape[0])

    @property
    def spec(self) -> DataSpec:
        return DataSpec(
            shapes={m: tuple(a.shape[1:]) for m, a in self.modalities.items()},
            groups=dict(self.groups),
            emotions=tuple(self.emotions),
        )

    @property
    def subjects(self) -> list[str]:
        return sorted(set(self.subject.tolist()), key=_natural_key)

    def require_labels(self, command: str) -> None:
        """Refuse to train or score on a dataset its reader marked unlabelled
        (``info["labelled"] = False``, e.g. an E4 recording without ``labels.csv``): its
        placeholder targets would train a model that predicts nothing, without a word."""
        if self.info.get("labelled", True) is False:
            raise UserError(
                f"dataset {self.name!r} has no labels (its reader found no ratings), so "
                f"{command} has nothing to learn from or score against. Add the labels (for "
                "e4: a labels.csv per session, see docs/monitoring.md), or use `affectkit "
                "predict` / `affectkit stream` with a trained checkpoint on unlabelled data."
            )

    def subset(self, idx: np.ndarray | Sequence[int]) -> EmotionDataset:
        idx = np.asarray(idx, dtype=np.int64)
        out = object.__new__(EmotionDataset)
        out.name = self.name
        out.modalities = {k: v[idx] for k, v in self.modalities.items()}
        out.targets = self.targets[idx]
        out.emotions = list(self.emotions)
        out.subject, out.trial = self.subject[idx], self.trial[idx]
        out.window = self.window[idx]
        out.time = self.time[idx] if self.time is not None else None
        out.groups, out.info, out.missing = dict(self.groups), dict(self.info), self.missing
        return out

    def with_modalities(self, modalities: dict[str, np.ndarray]) -> EmotionDataset:
        out = self.subset(np.arange(len(self)))
        out.modalities = modalities
        return out

    def trial_keys(self) -> np.ndarray:
        """One integer per (subject, trial) pair."""
        # not "\x00": numpy drops trailing NULs, so subject "1" trial 10 and subject "11"
        # trial 0 became one key; "\x1f" sorts below every printable character, which keeps
        # the order of a subject's keys (and so the subject-dependent split) unchanged
        keys = np.char.add(np.char.add(self.subject, "\x1f"), self.trial.astype(str))
        return np.unique(keys, return_inverse=True)[1]

    # -- (de)serialisation for the cache ---------------------------------------------------
    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays = {f"mod__{k}": v for k, v in self.modalities.items()}
        arrays.update(
            targets=self.targets,
            subject=self.subject,
            trial=self.trial,
            window=self.window,
            time=self.time,
        )
        meta = {
            "name": self.name,
            "emotions": self.emotions,
            "groups": self.groups,
            "info": self.info,
            "missing": self.missing,
            "order": list(self.modalities),
        }
        return arrays, meta

    @classmethod
    def from_arrays(
        cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]
    ) -> EmotionDataset:
        return cls(
            name=meta["name"],
            modalities={k: arrays[f"mod__{k}"] for k in meta["order"]},
            targets=arrays["targets"],
            emotions=meta["emotions"],
            subject=arrays["subject"],
            trial=arrays["trial"],
            window=arrays["window"],
            time=arrays["time"],
            groups=dict(meta["groups"]),
            info=json.loads(json.dumps(meta["info"])),
            missing=meta["missing"],
        )


def _natural_key(s: str) -> tuple:
    import re

    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s))


@dataclass
class Standardizer:
    """Per-feature z-scoring with statistics from the training split only.

    Missing values (NaN and ±inf, allowed when the dataset declares ``missing='impute'``;
    with ``missing='error'`` :meth:`EmotionDataset.validate` refuses both) are left out of
    the statistics and become 0 after scaling, i.e. the training-fold mean. An inf counts
    as missing rather than as a value: one inf would make the column's mean and std
    infinite. A column with no finite training value gets mean 0, std 1.
    """

    mean: dict[str, np.ndarray]
    std: dict[str, np.ndarray]

    @classmethod
    def fit(cls, data: EmotionDataset, eps: float = 1e-6) -> Standardizer:
        mean, std = {}, {}
        for m, x in data.modalities.items():
            x64 = x.astype(np.float64)
            finite = np.isfinite(x64)
            if finite.all():
                # the common case, without the NaN-aware copies: the same sums in the same
                # order, so the same statistics bit for bit (every fold job pays for this)
                mu, sd = x64.mean(axis=0), x64.std(axis=0)
            else:
                x64[~finite] = np.nan
                with warnings.catch_warnings():  # "mean of empty slice": all-missing columns
                    warnings.simplefilter("ignore", RuntimeWarning)
                    mu = np.nanmean(x64, axis=0)
                    sd = np.nanstd(x64, axis=0)
            mu = np.where(np.isfinite(mu), mu, 0.0)
            sd = np.where(np.isfinite(sd) & (sd > eps), sd, 1.0)
            mean[m], std[m] = mu.astype(np.float32), sd.astype(np.float32)
        return cls(mean, std)

    def transform(self, data: EmotionDataset) -> EmotionDataset:
        out = {}
        for m, x in data.modalities.items():
            z = np.subtract(x, self.mean[m], dtype=np.float32)
            z /= self.std[m]
            if not np.isfinite(z).all():
                np.nan_to_num(z, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
            out[m] = z
        return data.with_modalities(out)

    def to_arrays(self) -> dict[str, np.ndarray]:
        d = {f"mean__{k}": v for k, v in self.mean.items()}
        d.update({f"std__{k}": v for k, v in self.std.items()})
        return d

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> Standardizer:
        mean = {k[6:]: np.asarray(v) for k, v in arrays.items() if k.startswith("mean__")}
        std = {k[5:]: np.asarray(v) for k, v in arrays.items() if k.startswith("std__")}
        return cls(mean, std)


@dataclass
class SubjectStandardizer:
    """Per-subject z-scoring (``normalize: per-subject``): each row is scaled with its own
    subject's statistics; a subject without any (a test subject with no calibration
    windows) gets ``pooled``, the training split's statistics."""

    subjects: dict[str, Standardizer]
    pooled: Standardizer

    @classmethod
    def fit(
        cls, data: EmotionDataset, windows: Mapping[str, np.ndarray], pooled: np.ndarray
    ) -> SubjectStandardizer:
        """Statistics of subject ``s`` from rows ``windows[s]`` of ``data`` only; the
        fallback from rows ``pooled``."""
        subjects = {s: Standardizer.fit(data.subset(idx)) for s, idx in windows.items() if len(idx)}
        return cls(subjects, Standardizer.fit(data.subset(pooled)))

    def transform(self, data: EmotionDataset) -> EmotionDataset:
        out = {m: np.empty_like(x) for m, x in data.modalities.items()}
        for s in np.unique(data.subject):
            rows = np.flatnonzero(data.subject == s)
            part = self.subjects.get(str(s), self.pooled).transform(data.subset(rows))
            for m, x in part.modalities.items():
                out[m][rows] = x
        return data.with_modalities(out)
