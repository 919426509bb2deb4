"""``dmer``: the published DMER feature files (Yang et al., Scientific Data 11:847, 2024).

Accepted layouts of ``data_dir`` (one subject per ``<subject_id>.mat``, MATLAB v5/v7):

1. combined - ``<id>.mat`` holds ``feas`` (N x 913), ``vids`` (N x 1, trial ids 0-31) and
   ``dis_label`` (32 x 10 PANAS ratings, row = trial id).
2. split - ``<id>.mat`` holds ``feas`` and ``vids`` only, and the ratings live in
   ``<id>_dis_label.mat`` beside it or in ``dis_label/<id>.mat``; that file holds the
   variable ``dis_label`` (or exactly one variable of shape 32 x 10).

Columns of ``feas``: ``[0:90]`` EEG DE channel-major (``c*5 + b``) -> ``eeg [N, 18, 5]``,
``[90:118]`` ``gsr`` (28), ``[118:145]`` ``ppg`` (27), ``[145:913]`` video LBP-TOP
``behavioral`` (768). A window's target is its trial's rating row divided by its sum.
:meth:`DmerReader.export` writes any dataset with those shapes in the combined layout.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from affectkit import DatasetConfig, DatasetReader, EmotionDataset, UserError

from .dmer_features import ALIGN_DROP, EEG_BANDS

VERSION = "1"
EMOTIONS = (
    "inspired",
    "alert",
    "excited",
    "enthusiastic",
    "determined",
    "afraid",
    "upset",
    "nervous",
    "scared",
    "distressed",
)
N_TRIALS = 32
N_COLUMNS = 913
#: modality -> (first column, last column + 1, per-row shape)
COLUMNS: dict[str, tuple[int, int, tuple[int, ...]]] = {
    "eeg": (0, 90, (18, 5)),
    "gsr": (90, 118, (28,)),
    "ppg": (118, 145, (27,)),
    "behavioral": (145, 913, (768,)),
}
GROUPS = {
    "eeg": "physiological",
    "gsr": "physiological",
    "ppg": "physiological",
    "behavioral": "behavioral",
}
LABEL_SUFFIX = "_dis_label"
LABEL_FOLDER = "dis_label"
PUBLISHED = "Zenodo DOI 10.5281/zenodo.11194571 (DMER, Yang et al., Scientific Data 2024)"

Modality = Literal["eeg", "gsr", "ppg", "behavioral"]


class DmerConfig(DatasetConfig):
    """Which DMER subjects and modalities to read from the feature files."""

    subjects: list[str] | None = Field(
        None, description="subject ids (file stems) to read; null = every <id>.mat in data_dir"
    )
    modalities: list[Modality] = Field(
        default_factory=lambda: ["eeg", "gsr", "ppg", "behavioral"],
        min_length=1,
        description="feature blocks of feas to keep",
    )
    missing: Literal["error", "impute"] = Field(
        "error", description="NaN/inf in feas: stop with an error, or fill with training-fold means"
    )


def _loadmat(path: Path) -> dict[str, Any]:
    from scipy.io import loadmat

    try:
        data = loadmat(path)
    except NotImplementedError:
        raise UserError(
            f"{path} is a MATLAB v7.3 (HDF5) file, which scipy cannot read. Re-save it in v7 "
            "format (MATLAB: save(file, 'feas', 'vids', 'dis_label', '-v7'))."
        ) from None
    except Exception as exc:
        raise UserError(
            f"{path} could not be read as a MATLAB .mat file ({type(exc).__name__}: {exc}). "
            f"Replace it with the subject's feature file from {PUBLISHED}."
        ) from None
    return {k: v for k, v in data.items() if not k.startswith("__")}


def _natural(s: str) -> tuple:
    import re

    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s))


def _label_files(folder: Path, sid: str) -> list[Path]:
    return [
        p
        for p in (folder / f"{sid}{LABEL_SUFFIX}.mat", folder / LABEL_FOLDER / f"{sid}.mat")
        if p.is_file()
    ]


def _ratings_from(path: Path, content: Mapping[str, Any]) -> np.ndarray:
    if "dis_label" in content:
        arr = content["dis_label"]
    else:
        candidates = [v for v in content.values() if np.shape(v) == (N_TRIALS, len(EMOTIONS))]
        if len(candidates) != 1:
            raise UserError(
                f"{path} holds no 'dis_label' variable (variables: {sorted(content)}). A DMER "
                f"label file holds dis_label, {N_TRIALS} x {len(EMOTIONS)} PANAS ratings "
                "(row = trial id, columns inspired .. distressed)."
            )
        arr = candidates[0]
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != len(EMOTIONS):
        raise UserError(
            f"{path}: dis_label has shape {arr.shape}; expected {N_TRIALS} x {len(EMOTIONS)} "
            "(one row of 10 PANAS ratings per trial, items inspired .. distressed)."
        )
    return arr


class DmerReader(DatasetReader):
    """DMER feature files: EEG DE, GSR, PPG and video LBP-TOP per 1-s window."""

    version: ClassVar[str] = VERSION
    #: leave-one-subject-out; set protocol.folds=k for k-fold over the 73 subjects
    protocol_defaults: ClassVar[dict[str, Any]] = {"name": "subject-independent", "folds": None}

    # -- find the records -----------------------------------------------------------------
    def _folder(self) -> Path:
        if self.data_dir is None:
            raise UserError(
                "dataset 'dmer' needs --data-dir: the folder of <subject_id>.mat feature files "
                f"from {PUBLISHED}."
            )
        folder = Path(self.data_dir)
        if not folder.is_dir():
            raise UserError(
                f"DMER data folder {folder} does not exist. Pass --data-dir with the folder that "
                f"holds the <subject_id>.mat feature files from {PUBLISHED}."
            )
        return folder

    def _subjects(self) -> list[tuple[str, Path]]:
        folder = self._folder()
        found = {
            p.stem: p
            for p in folder.glob("*.mat")
            if p.is_file() and not p.stem.endswith(LABEL_SUFFIX)
        }
        if self.config.subjects is not None:
            missing = [s for s in self.config.subjects if s not in found]
            if missing:
                raise UserError(
                    f"DMER feature file(s) {', '.join(str(folder / f'{s}.mat') for s in missing)} "
                    f"not found. Fix dataset.subjects (files present: "
                    f"{', '.join(sorted(found, key=_natural)) or 'none'}) or add the files."
                )
            names = list(self.config.subjects)
        else:
            names = sorted(found, key=_natural)
        if not names:
            raise UserError(
                f"{folder} holds no <subject_id>.mat feature files. Point --data-dir at the "
                f"folder of DMER feature files ({PUBLISHED})."
            )
        return [(s, found[s]) for s in names]

    def source_files(self) -> list[Path]:
        files = []
        for sid, path in self._subjects():
            files.append(path)
            files += _label_files(path.parent, sid)
        return files

    # -- read one record ------------------------------------------------------------------
    def _read_subject(self, sid: str, path: Path) -> dict[str, Any]:
        content = _loadmat(path)
        for key in ("feas", "vids"):
            if key not in content:
                raise UserError(
                    f"{path} has no variable {key!r} (variables: {sorted(content)}). A DMER "
                    f"feature file holds feas (N x {N_COLUMNS}), vids (N x 1) and dis_label "
                    f"({N_TRIALS} x 10); re-download it from {PUBLISHED}."
                )
        feas = np.asarray(content["feas"], dtype=np.float64)
        if feas.ndim != 2 or feas.shape[1] != N_COLUMNS:
            raise UserError(
                f"{path}: feas has shape {feas.shape}; expected N x {N_COLUMNS} (90 EEG DE, "
                "28 GSR, 27 PPG, 768 LBP-TOP columns per 1-s window)."
            )
        vids = np.asarray(content["vids"], dtype=np.float64).reshape(-1)
        if vids.shape[0] != feas.shape[0]:
            raise UserError(
                f"{path}: vids has {vids.shape[0]} entries but feas has {feas.shape[0]} rows; "
                "vids must give the trial id of every row of feas."
            )
        if not np.all(np.isfinite(vids)) or np.any(vids != np.round(vids)) or np.any(vids < 0):
            raise UserError(f"{path}: vids must hold non-negative integer trial ids (0-31).")
        vids = vids.astype(np.int64)

        label_files = _label_files(path.parent, sid)
        if "dis_label" in content:
            ratings, source, layout = _ratings_from(path, content), path, "combined"
            for other in label_files:
                extra = _ratings_from(other, _loadmat(other))
                if extra.shape != ratings.shape or not np.array_equal(extra, ratings):
                    raise UserError(
                        f"{path} holds dis_label and {other} holds different ratings for the "
                        "same subject. Remove the file that is wrong."
                    )
        elif label_files:
            source, layout = label_files[0], "split"
            ratings = _ratings_from(source, _loadmat(source))
        else:
            raise UserError(
                f"{path} holds no dis_label and no label file was found "
                f"({path.parent / (sid + LABEL_SUFFIX + '.mat')} or "
                f"{path.parent / LABEL_FOLDER / (sid + '.mat')}). Add the subject's "
                f"{N_TRIALS} x 10 PANAS ratings in one of those places."
            )
        if vids.size and vids.max() >= ratings.shape[0]:
            raise UserError(
                f"{path}: vids refers to trial {int(vids.max())} but {source} has dis_label for "
                f"only {ratings.shape[0]} trials."
            )
        used = np.unique(vids)
        rows = ratings[used]
        bad = ~np.isfinite(rows).all(axis=1) | (rows < 0).any(axis=1) | (rows.sum(axis=1) <= 0)
        if bad.any():
            raise UserError(
                f"{source}: dis_label row(s) of trial(s) {used[bad].tolist()} are not valid "
                "ratings (need finite, non-negative values with a positive sum, 1-5 per item)."
            )
        per_row = ratings[vids]
        targets = per_row / per_row.sum(axis=1, keepdims=True)
        return {"feas": feas, "vids": vids, "targets": targets, "layout": layout}

    # -- the dataset ------------------------------------------------------------------------
    def load(self) -> EmotionDataset:
        parts = {sid: self._read_subject(sid, path) for sid, path in self._subjects()}
        feas = np.concatenate([p["feas"] for p in parts.values()])
        vids = np.concatenate([p["vids"] for p in parts.values()])
        subject = np.concatenate([np.full(len(p["vids"]), sid) for sid, p in parts.items()])
        modalities = {}
        for m in self.config.modalities:
            lo, hi, shape = COLUMNS[m]
            modalities[m] = feas[:, lo:hi].reshape(-1, *shape)
        window = _rank_within(subject, vids)
        return EmotionDataset(
            name="dmer",
            modalities=modalities,
            targets=np.concatenate([p["targets"] for p in parts.values()]),
            emotions=list(EMOTIONS),
            subject=subject,
            trial=vids,
            window=window,
            time=window.astype(np.float32),
            groups={m: GROUPS[m] for m in modalities},
            missing=self.config.missing,
            info={
                "version": VERSION,
                # 5-s peripheral windows moved by 1 s: rows i and i+4 still share a second
                "overlap_windows": 4,
                "primary": "eeg" if "eeg" in modalities else next(iter(modalities)),
                "eeg_bands_hz": [list(b) for b in EEG_BANDS],
                "eeg_layout": "channel-major: feas column c*5 + b is channel c, band b",
                "row_time": f"row i covers second i + {ALIGN_DROP} of the clip (the last "
                "second of the 5-s peripheral window starting at second i)",
                "layout": {sid: p["layout"] for sid, p in parts.items()},
            },
        )

    # -- the layout, written ----------------------------------------------------------------
    @staticmethod
    def export(data: EmotionDataset, out_dir: Path) -> list[Path]:
        """Write ``data`` as combined-layout ``<subject>.mat`` files; returns the paths.

        ``dis_label`` holds the integer ratings from ``data.info["ratings"]`` when those
        reproduce the targets (one row per trial in order of first appearance, as the
        synthetic dataset stores them), otherwise the target rows themselves, which give
        back the targets after the reader divides by the sum. Trials a subject lacks get
        a zero row.
        """
        from scipy.io import savemat

        out_dir = Path(out_dir)
        shapes = {m: a.shape[1:] for m, a in data.modalities.items()}
        wanted = {m: spec[2] for m, spec in COLUMNS.items()}
        if shapes != wanted:
            raise UserError(
                f"dataset {data.name!r} has modalities {shapes}; the DMER layout needs exactly "
                f"{wanted}. Export a dataset with those shapes (e.g. synthetic with its defaults)."
            )
        if list(data.emotions) != list(EMOTIONS):
            raise UserError(
                f"dataset {data.name!r} has emotions {list(data.emotions)}; dis_label columns are "
                f"{list(EMOTIONS)}, in that order."
            )
        if data.trial.min() < 0 or data.trial.max() >= N_TRIALS:
            raise UserError(
                f"dataset {data.name!r} has trial ids {int(data.trial.min())}.."
                f"{int(data.trial.max())}; the DMER layout holds trial ids 0..{N_TRIALS - 1}."
            )
        keys = data.trial_keys()
        first = np.unique(keys, return_index=True)[1]
        # every row of a trial must carry the trial's one label
        if not np.allclose(data.targets, data.targets[first][keys], atol=1e-7):
            raise UserError(
                f"dataset {data.name!r} has windows of one trial with different targets; the DMER "
                "layout stores one rating row per trial."
            )
        per_trial = _ratings_for_trials(data, first, keys)
        feas = np.concatenate(
            [data.modalities[m].reshape(len(data), -1) for m in COLUMNS], axis=1
        ).astype(np.float32)
        written = []
        out_dir.mkdir(parents=True, exist_ok=True)
        for sid in data.subjects:
            rows = np.flatnonzero(data.subject == sid)
            dis_label = np.zeros((N_TRIALS, len(EMOTIONS)))
            trial_rows = first[np.isin(first, rows)]
            dis_label[data.trial[trial_rows]] = per_trial[keys[trial_rows]]
            path = out_dir / f"{sid}.mat"
            tmp = out_dir / f".{sid}.mat.tmp"
            # scipy writes in place; a temp name + rename keeps a killed export from leaving
            # a half-written file that the reader would take for a subject
            with open(tmp, "wb") as fh:
                savemat(
                    fh,
                    {
                        "feas": feas[rows],
                        "vids": data.trial[rows].astype(np.float64)[:, None],
                        "dis_label": dis_label,
                    },
                )
            tmp.replace(path)
            written.append(path)
        return written


def _ratings_for_trials(data: EmotionDataset, first: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """One rating row per trial key (index = key)."""
    targets = data.targets[first].astype(np.float64)  # [n_trials, K], ordered by key
    raw = data.info.get("ratings")
    if raw is not None:
        ratings = np.asarray(raw, dtype=np.float64)
        order = np.argsort(first)  # ratings are listed in order of first appearance
        if ratings.shape == targets.shape and np.all(ratings.sum(axis=1) > 0):
            by_key = np.empty_like(ratings)
            by_key[order] = ratings
            normalised = (by_key / by_key.sum(axis=1, keepdims=True)).astype(np.float32)
            if np.array_equal(normalised, data.targets[first]):
                return by_key
    return targets


def _rank_within(subject: np.ndarray, trial: np.ndarray) -> np.ndarray:
    """Position of each row among the rows of its (subject, trial), in file order."""
    keys = np.unique(
        np.char.add(np.char.add(subject.astype(str), "\x00"), trial.astype(str)),
        return_inverse=True,
    )[1]
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_keys)) + 1]
    counts = np.diff(np.r_[starts, len(keys)])
    rank = np.empty(len(keys), dtype=np.int64)
    rank[order] = np.arange(len(keys)) - np.repeat(starts, counts)
    return rank
