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

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from affectkit import DatasetConfig, DatasetReader, EmotionDataset, UserError

from .dmer_features import ALIGN_DROP, EEG_BANDS
from .sources import select_subjects, unreadable

# 2: window ranks no longer mix subject "1" trial 10 with subject "11" trial 0; ratings
# must be 1-5; ids equal up to zero padding are refused
VERSION = "2"
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
        # opened here, not by scipy: scipy turns an OSError on a Path into "Reader needs file
        # name or open file-like object", which hides a permission problem
        with open(path, "rb") as fh:
            data = loadmat(fh)
    except NotImplementedError:
        raise UserError(
            f"{path} is a MATLAB v7.3 (HDF5) file, which scipy cannot read. Re-save it in v7 "
            "format (MATLAB: save(file, 'feas', 'vids', 'dis_label', '-v7'))."
        ) from None
    except OSError as exc:
        raise unreadable(
            path, exc, f"Check the file and its disk, or copy it again from {PUBLISHED}."
        ) from None
    except Exception as exc:
        raise UserError(
            f"{path} could not be read as a MATLAB .mat file ({type(exc).__name__}: {exc}). "
            f"Replace it with the subject's feature file from {PUBLISHED}."
        ) from None
    return {k: v for k, v in data.items() if not k.startswith("__")}


_NON_NUMERIC = {
    "U": "text (a MATLAB char array)",
    "S": "text (a MATLAB char array)",
    "O": "a cell array",
    "V": "a struct",
    "c": "complex",
}


def _numeric(path: Path, name: str, value: Any, expected: str) -> np.ndarray:
    """``value`` as float64, or an error that says what the variable holds instead."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        what = _NON_NUMERIC.get(arr.dtype.kind, f"of type {arr.dtype}")
        raise UserError(
            f"{path}: variable {name!r} is {what}; expected a numeric {expected} array. Save it "
            f"as a numeric matrix (MATLAB: double(...) or cell2mat(...)), or re-download the "
            f"file from {PUBLISHED}."
        )
    return arr.astype(np.float64)


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
    shape = f"{N_TRIALS} x {len(EMOTIONS)}"
    arr = _numeric(path, "dis_label", arr, shape)
    if arr.shape != (N_TRIALS, len(EMOTIONS)):
        raise UserError(
            f"{path}: dis_label has shape {arr.shape}; expected {shape}: one row of 10 PANAS "
            f"ratings for each of the {N_TRIALS} trials (row = trial id 0-{N_TRIALS - 1}, items "
            f"inspired .. distressed). Re-download the file from {PUBLISHED}."
        )
    return arr


def _check_ratings(source: Path, ratings: np.ndarray, feature_file: Path, used: np.ndarray) -> None:
    """Every rating is 1-5; a trial without windows may instead have a row of zeros."""
    unrated = ~ratings.any(axis=1) & ~np.isin(np.arange(len(ratings)), used)
    bad = ~(np.isfinite(ratings) & (ratings >= 1) & (ratings <= 5)) & ~unrated[:, None]
    if bad.any():
        t, j = (int(i) for i in np.argwhere(bad)[0])
        more = f" ({int(bad.sum())} values in all)" if bad.sum() > 1 else ""
        zero = (
            f" A row of zeros marks a trial without ratings, and trial {t} has rows in "
            f"{feature_file.name}."
            if not ratings[t].any()
            else ""
        )
        raise UserError(
            f"{source}: dis_label row {t + 1} (trial {t}), column {j + 1} ({EMOTIONS[j]}) is "
            f"{ratings[t, j]:g}{more}; PANAS ratings are 1-5 per item.{zero} Correct the "
            f"value, or replace the file with the subject's file from {PUBLISHED}."
        )


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
        return select_subjects(
            found,
            self.config.subjects,
            what="DMER subject",
            expected=lambda s: folder / f"{s}.mat",
            present="files",
            empty=f"{folder} holds no <subject_id>.mat feature files. Point --data-dir at the "
            f"folder of DMER feature files ({PUBLISHED}).",
            unique_fix="Keep one feature file per subject (remove or rename the other) and list "
            "each subject once in dataset.subjects.",
        )

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
        feas = _numeric(path, "feas", content["feas"], f"N x {N_COLUMNS}")
        if feas.ndim != 2 or feas.shape[1] != N_COLUMNS:
            raise UserError(
                f"{path}: feas has shape {feas.shape}; expected N x {N_COLUMNS} (90 EEG DE, "
                "28 GSR, 27 PPG, 768 LBP-TOP columns per 1-s window)."
            )
        vids = _numeric(path, "vids", content["vids"], "N x 1").reshape(-1)
        if vids.shape[0] != feas.shape[0]:
            raise UserError(
                f"{path}: vids has {vids.shape[0]} entries but feas has {feas.shape[0]} rows; "
                "vids must give the trial id of every row of feas."
            )
        if not np.all(np.isfinite(vids)) or np.any(vids != np.round(vids)) or np.any(vids < 0):
            raise UserError(f"{path}: vids must hold non-negative integer trial ids (0-31).")
        vids = vids.astype(np.int64)
        if vids.size and vids.max() >= N_TRIALS:
            raise UserError(
                f"{path}: vids refers to trial {int(vids.max())}; DMER trial ids are "
                f"0-{N_TRIALS - 1} (one dis_label row each)."
            )
        if self.config.missing == "error":
            self._check_finite(path, feas, vids)

        # every place that holds this subject's ratings; all of them must agree
        sources = [(path, _ratings_from(path, content))] if "dis_label" in content else []
        sources += [(p, _ratings_from(p, _loadmat(p))) for p in _label_files(path.parent, sid)]
        if not sources:
            raise UserError(
                f"{path} holds no dis_label and no label file was found "
                f"({path.parent / (sid + LABEL_SUFFIX + '.mat')} or "
                f"{path.parent / LABEL_FOLDER / (sid + '.mat')}). Add the subject's "
                f"{N_TRIALS} x 10 PANAS ratings in one of those places."
            )
        source, ratings = sources[0]
        layout = "combined" if "dis_label" in content else "split"
        for other, extra in sources[1:]:
            if not np.array_equal(extra, ratings, equal_nan=True):
                same = (extra == ratings) | (np.isnan(extra) & np.isnan(ratings))
                t = int(np.flatnonzero(~same.all(axis=1))[0])
                raise UserError(
                    f"{source} and {other} hold different ratings for subject {sid} (first at "
                    f"trial {t}: {ratings[t].tolist()} against {extra[t].tolist()}). Remove "
                    "the file that is wrong, so that one source of ratings remains."
                )
        _check_ratings(source, ratings, path, np.unique(vids))
        per_row = ratings[vids]
        targets = per_row / per_row.sum(axis=1, keepdims=True)
        return {"feas": feas, "vids": vids, "targets": targets, "layout": layout}

    def _check_finite(self, path: Path, feas: np.ndarray, vids: np.ndarray) -> None:
        """NaN/inf in the columns of the selected modalities, named by file and column."""
        for m in self.config.modalities:
            lo, hi, _ = COLUMNS[m]
            bad = ~np.isfinite(feas[:, lo:hi])
            if not bad.any():
                continue
            r, c = (int(i) for i in np.argwhere(bad)[0])
            cols = (np.flatnonzero(bad.any(axis=0)) + lo).tolist()
            listed = ", ".join(map(str, cols[:8])) + (", ..." if len(cols) > 8 else "")
            raise UserError(
                f"{path}: feas holds {int(bad.sum())} NaN/inf value(s) in column(s) {listed} "
                f"(counting from 0; {m} is columns {lo}-{hi - 1}), the first {feas[r, lo + c]} at "
                f"row {r} (trial {int(vids[r])}), column {lo + c}. To fill them with "
                "training-fold means, run with --set dataset.missing=impute; or clean the file."
            )

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

        ``dis_label`` holds the 1-5 ratings from ``data.info["ratings"]`` when those
        reproduce the targets (one row per trial in order of first appearance, as the
        synthetic generator stores the ratings it drew), otherwise per trial the smallest
        integer 1-5 ratings whose normalisation gives the targets; a target that no such
        row gives is an error. Trials a subject lacks get a zero row.
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
        written: list[Path] = []
        tmp = out_dir / ".export.mat.tmp"
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            for sid in data.subjects:
                rows = np.flatnonzero(data.subject == sid)
                dis_label = np.zeros((N_TRIALS, len(EMOTIONS)))
                trial_rows = first[np.isin(first, rows)]
                dis_label[data.trial[trial_rows]] = per_trial[keys[trial_rows]]
                path = out_dir / f"{sid}.mat"
                tmp = out_dir / f".{sid}.mat.tmp"
                # scipy writes in place; a temp name + rename keeps a killed export from
                # leaving a half-written file that the reader would take for a subject
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
        except OSError as exc:
            with contextlib.suppress(OSError):  # out_dir may be a file or not exist
                tmp.unlink()
            raise UserError(
                f"could not write the DMER files to {out_dir} ({exc.strerror or exc} at "
                f"{exc.filename or out_dir}); {len(written)} complete subject file(s) were "
                "written before. Pass an --out folder that can be created and written."
            ) from None
        return written


def _ratings_for_trials(data: EmotionDataset, first: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """One 1-5 rating row per trial key (index = key) whose normalisation gives the targets."""
    targets = data.targets[first]  # [n_trials, K], ordered by key
    raw = data.info.get("ratings")
    if raw is not None:
        ratings = np.asarray(raw, dtype=np.float64)
        order = np.argsort(first)  # ratings are listed in order of first appearance
        if ratings.shape == targets.shape and np.all((ratings >= 1) & (ratings <= 5)):
            by_key = np.empty_like(ratings)
            by_key[order] = ratings
            normalised = (by_key / by_key.sum(axis=1, keepdims=True)).astype(np.float32)
            if np.array_equal(normalised, targets):
                return by_key
    ratings = _integer_ratings(targets)
    lost = np.isnan(ratings).any(axis=1)
    if lost.any():
        row = first[np.flatnonzero(lost)[0]]
        raise UserError(
            f"dataset {data.name!r}: the target of subject {data.subject[row]} trial "
            f"{int(data.trial[row])} ({np.round(data.targets[row], 4).tolist()}) is not a row of "
            f"1-5 ratings divided by its sum, and the DMER layout stores 1-5 PANAS ratings; "
            f"{int(lost.sum())} trial(s) affected. Export a dataset whose targets come from 1-5 "
            "ratings (a zero share, or one item more than 5 times another, cannot be written)."
        )
    return ratings


def _integer_ratings(targets: np.ndarray) -> np.ndarray:
    """Per row the smallest integer 1-5 ratings whose normalisation is ``targets`` (else NaN).

    A distribution from 1-5 ratings is ``r / sum(r)``, so ``total * target`` is integer for
    ``total = sum(r)``, one of ``K .. 5K``; the smallest total that fits gives back the same
    distribution (ratings 2, 4 and 1, 2 normalise alike).
    """
    k = targets.shape[1]
    t = targets.astype(np.float64)
    out = np.full(t.shape, np.nan)
    for total in range(k, 5 * k + 1):
        todo = np.isnan(out[:, 0])
        if not todo.any():
            break
        r = np.rint(t[todo] * total)
        fits = ((r >= 1) & (r <= 5)).all(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            back = r / r.sum(axis=1, keepdims=True)
        # float32 targets: the ratings must give them back to float32 rounding
        fits &= np.isclose(back, t[todo], rtol=0, atol=1e-6).all(axis=1)
        out[np.flatnonzero(todo)[fits]] = r[fits]
    return out


def _rank_within(subject: np.ndarray, trial: np.ndarray) -> np.ndarray:
    """Position of each row among the rows of its (subject, trial), in file order."""
    subject_code = np.unique(subject, return_inverse=True)[1].reshape(-1)
    keys = subject_code * (int(trial.max(initial=0)) + 1) + trial
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_keys)) + 1]
    counts = np.diff(np.r_[starts, len(keys)])
    rank = np.empty(len(keys), dtype=np.int64)
    rank[order] = np.arange(len(keys)) - np.repeat(starts, counts)
    return rank
