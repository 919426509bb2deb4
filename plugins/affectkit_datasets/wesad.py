"""``wesad``: WESAD wrist recordings (Schmidt et al., ICMI 2018) as mixed-emotion windows.

Each of the five conditions (Base, TSST, Fun, Medi 1, Medi 2) is a trial whose emotion
distribution is its PANAS row: by default the 10 DMER items with Annoyed standing in
for "upset" (``info["stand_ins"]``), or all 24 PANAS items common to every condition
(``items: panas``), each divided by the row's sum. Windows, features and layouts:
``wesad_features``, ``wesad_io``, ``wesad_quest`` and ``docs/datasets.md``.

Missing PANAS values (``Nan``, e.g. S5's Medi 1 Nervous): with ``nan_rule: drop``
(default) a condition whose selected items include one is left out, since any made-up
share would be a label the subject never gave; ``renormalise`` keeps it with the missing
item at 0 and the remaining items divided by their sum.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import re
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator

from affectkit import DatasetConfig, DatasetReader, EmotionDataset, UserError

from .e4_features import CONTEXT_S
from .sources import check_unique, natural_sorted
from .wesad_features import FEATURE_NAMES, SubjectFeatures, SubjectTask, process_subject
from .wesad_io import ALIGNMENT_FILE, read_alignment, subject_layout
from .wesad_quest import CONDITIONS, PANAS_ITEMS

# 2: the FFT-std feature of the BVP and EDA statistics is the std of the complex FFT
# (dmer_features, issue 17), not of its real part
# 3: each window's features from the window and context_s before it, as the e4 reader and
# its stream compute them; SCRs counted by an absolute amplitude (e4_features.SCR_MIN_US)
VERSION = "3"
#: DMER emotion -> WESAD PANAS item
DMER_ITEMS: dict[str, str] = {
    "inspired": "Inspired",
    "alert": "Alert",
    "excited": "Excited",
    "enthusiastic": "Enthusiastic",
    "determined": "Determined",
    "afraid": "Afraid",
    "upset": "Annoyed",
    "nervous": "Nervous",
    "scared": "Scared",
    "distressed": "Distressed",
}
SIGNAL_GROUPS = {
    "BVP": "physiological",
    "EDA": "physiological",
    "TEMP": "physiological",
    "ACC": "behavioral",
}
WristSignal = Literal["BVP", "EDA", "TEMP", "ACC"]
CITATION = (
    "Schmidt, Reiss, Duerichen, Marberger, Van Laerhoven: Introducing WESAD, a Multimodal "
    "Dataset for Wearable Stress and Affect Detection. ICMI 2018."
)


class WesadConfig(DatasetConfig):
    """Subjects, windowing, labels and modality mapping of the WESAD wrist reader."""

    subjects: list[str] | None = Field(
        None, description="subject folders to read (e.g. [S2, S3]); null = every S<n> folder"
    )
    window_s: float = Field(60.0, gt=0, description="window length, seconds")
    step_s: float = Field(10.0, gt=0, description="step between window starts, seconds")
    trim_s: float = Field(
        30.0, ge=0, description="seconds left out at both edges of each condition (alignment slack)"
    )
    context_s: float = Field(
        CONTEXT_S,
        ge=0,
        description="seconds before a window its filters and SCR detector see (never after), "
        "as the e4 reader and stream: the same features on a live E4 stream",
    )
    items: Literal["dmer10", "panas"] = Field(
        "dmer10",
        description="dmer10: the 10 DMER items (Annoyed for upset); panas: the 24 PANAS items",
    )
    nan_rule: Literal["drop", "renormalise"] = Field(
        "drop", description="a Nan PANAS value: drop the condition, or renormalise the rest"
    )
    modalities: dict[str, WristSignal] = Field(
        default_factory=lambda: {"ppg": "BVP", "gsr": "EDA", "temp": "TEMP", "behavioral": "ACC"},
        min_length=1,
        description="modality name -> wrist signal (ACC is behavioral, the rest physiological)",
    )
    workers: int = Field(
        0,
        ge=0,
        description="processes, one subject each; 0 = one per CPU core (at most per subject)",
    )

    @field_validator("modalities")
    @classmethod
    def _names(cls, v: dict[str, str]) -> dict[str, str]:
        bad = [k for k in v if not re.fullmatch(r"[a-z][a-z0-9_]*", k)]
        if bad:
            raise ValueError(f"modality names must be lower-case identifiers, got {bad}")
        return v


def _kept_in_order(res: SubjectFeatures, subject: np.ndarray, trial: np.ndarray) -> list[int]:
    """The trial ids of ``res``'s subject that have windows, in recording order."""
    kept = set(trial[subject == res.subject].tolist())
    return [i for i in map(CONDITIONS.index, res.order) if i in kept]


class WesadReader(DatasetReader):
    """WESAD wrist (E4) signals, five conditions per subject, PANAS distributions."""

    version: ClassVar[str] = VERSION
    #: subject-independent = leave-one-subject-out (folds: null)
    protocol_defaults: ClassVar[dict[str, Any]] = {"name": "subject-independent", "folds": None}

    # -- find the records ------------------------------------------------------------------
    def _folder(self) -> Path:
        if self.data_dir is None:
            raise UserError(
                "dataset 'wesad' needs --data-dir: the folder holding S2/, S3/, ... of the WESAD "
                "distribution (or the wesad-wrist subset with e4_alignment.csv)."
            )
        folder = Path(self.data_dir)
        if not folder.is_dir():
            raise UserError(
                f"WESAD data folder {folder} does not exist. Pass --data-dir with the folder that "
                "holds S2/, S3/, ... (for the shared subset: ../shared/data/wesad-wrist)."
            )
        return folder

    def _subjects(self) -> list[str]:
        folder = self._folder()
        if self.config.subjects is not None:
            found = list(self.config.subjects)
        else:
            found = natural_sorted(
                p.name for p in folder.iterdir() if p.is_dir() and re.fullmatch(r"S\d+", p.name)
            )
            if not found:
                raise UserError(
                    f"{folder} holds no subject folders (S2, S3, ...). Point --data-dir at the "
                    "WESAD folder that contains them."
                )
        check_unique(
            ((s, str(folder / s)) for s in found),
            "WESAD subject",
            "Keep one folder per subject (remove or rename the other) and list each subject "
            "once in dataset.subjects.",
        )
        return found

    def _layouts(self) -> dict[str, tuple[str, list[Path]]]:
        folder = self._folder()
        return {s: subject_layout(folder, s) for s in self._subjects()}

    def source_files(self) -> list[Path]:
        layouts = self._layouts()
        files = [f for _, fs in layouts.values() for f in fs]
        if any(layout != "pkl" for layout, _ in layouts.values()):
            read_alignment(self._folder())  # a missing/malformed file stops here, by name
            files.append(self._folder() / ALIGNMENT_FILE)
        return files

    # -- process ----------------------------------------------------------------------------
    def _run(self, tasks: list[SubjectTask]) -> list[SubjectFeatures]:
        workers = min(self.config.workers or os.cpu_count() or 1, len(tasks))
        if workers <= 1:
            return [process_subject(t) for t in tasks]
        if any(s in ("BVP", "EDA") for s in tasks[0].signals):
            import neurokit2  # noqa: F401  imported once here, inherited by forked workers
        # fork shares the imported modules; workers never touch torch, so its threads are moot
        method = "fork" if sys.platform.startswith("linux") else "spawn"
        with ProcessPoolExecutor(workers, mp_context=mp.get_context(method)) as pool:
            futures = [pool.submit(process_subject, t) for t in tasks]
            try:
                return [f.result() for f in futures]
            except BaseException:
                for f in futures:
                    f.cancel()
                raise

    def load(self) -> EmotionDataset:
        folder = self._folder()
        layouts = self._layouts()
        alignment = None
        if any(layout != "pkl" for layout, _ in layouts.values()):
            alignment = read_alignment(folder)
        cfg = self.config
        mapping = dict(cfg.modalities)
        signals = tuple(dict.fromkeys(mapping.values()))
        tasks = [
            SubjectTask(
                folder, s, signals, cfg.window_s, cfg.step_s, cfg.trim_s, alignment, cfg.context_s
            )
            for s in layouts
        ]
        results = self._run(tasks)

        if cfg.items == "dmer10":
            emotions, items = list(DMER_ITEMS), list(DMER_ITEMS.values())
        else:
            emotions, items = [i.lower() for i in PANAS_ITEMS], list(PANAS_ITEMS)
        columns = [PANAS_ITEMS.index(i) for i in items]

        parts: dict[str, list[np.ndarray]] = {
            k: [] for k in ("subject", "trial", "window", "time", "targets")
        }
        feats: dict[str, list[np.ndarray]] = {m: [] for m in mapping}
        dropped: list[str] = []
        for res in results:
            for ci, cond in enumerate(CONDITIONS):
                rows = np.flatnonzero(res.condition == ci)
                ratings = np.asarray(res.panas[cond], dtype=np.float64)[columns]
                missing = [items[j] for j in np.flatnonzero(np.isnan(ratings))]
                if missing and (cfg.nan_rule == "drop" or len(missing) == len(items)):
                    dropped.append(f"{res.subject} {cond}: {', '.join(missing)} is Nan")
                    continue
                if rows.size == 0:
                    continue
                ratings = np.nan_to_num(ratings, nan=0.0)
                parts["targets"].append(np.tile(ratings / ratings.sum(), (rows.size, 1)))
                parts["subject"].append(np.full(rows.size, res.subject))
                parts["trial"].append(np.full(rows.size, ci))
                parts["window"].append(res.window[rows])
                parts["time"].append(res.time[rows])
                for m, sig in mapping.items():
                    feats[m].append(res.features[sig][rows])
        if not parts["targets"]:
            raise UserError(
                f"no WESAD windows remain in {folder} (subjects {', '.join(layouts)}): every "
                "condition was dropped or too short. Check dataset.window_s/trim_s and nan_rule."
            )
        modalities = {m: np.concatenate(v) for m, v in feats.items()}
        subject, trial = np.concatenate(parts["subject"]), np.concatenate(parts["trial"])
        n_nan = {m: int(np.isnan(a).sum()) for m, a in modalities.items()}
        bvp = [m for m, s in mapping.items() if s == "BVP"]
        info: dict[str, Any] = {
            "version": VERSION,
            "citation": CITATION,
            "conditions": list(CONDITIONS),
            "emotion_items": dict(zip(emotions, items, strict=True)),
            "stand_ins": {"upset": "Annoyed"} if cfg.items == "dmer10" else {},
            "nan_rule": cfg.nan_rule,
            "dropped_conditions": dropped,
            "window_s": cfg.window_s,
            "step_s": cfg.step_s,
            "trim_s": cfg.trim_s,
            # windows i and i + k overlap while k * step < length
            "overlap_windows": max(int(np.ceil(cfg.window_s / cfg.step_s)) - 1, 0),
            "primary": bvp[0] if bvp else next(iter(mapping)),
            "signals": mapping,
            "feature_names": {m: list(FEATURE_NAMES[s]) for m, s in mapping.items()},
            "nan_feature_values": n_nan,
            "layout": {r.subject: r.layout for r in results},
            "time": "window start, seconds from the start of its condition",
            # trial ids in the order each subject went through the conditions (by their
            # start in the recording): what calibration_trials takes as "early"
            "trial_order": {r.subject: _kept_in_order(r, subject, trial) for r in results},
        }
        return EmotionDataset(
            name="wesad",
            modalities=modalities,
            targets=np.concatenate(parts["targets"]),
            emotions=emotions,
            subject=subject,
            trial=trial,
            window=np.concatenate(parts["window"]),
            time=np.concatenate(parts["time"]),
            groups={m: SIGNAL_GROUPS[s] for m, s in mapping.items()},  # type: ignore[misc]
            info=info,
            # HR/HRV is NaN where a window has too few clean beats: training-fold means fill it
            missing="impute" if any(n_nan.values()) else "error",
        )
