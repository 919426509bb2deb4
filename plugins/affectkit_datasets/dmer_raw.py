"""``dmer-raw``: raw per-trial recordings -> the published DMER features (issue 17).

Layout of ``data_dir`` (``docs/datasets.md`` has the full description)::

    manifest.yaml                 sampling_rates: {eeg: 300, gsr: 4, ppg: 100}
    <subject>/                    one folder per subject; the folder name is the subject id
        <trial>_<modality>.npy    one file per trial and modality (or .csv): one row per
                                  sample, EEG one column per channel; trial = integer id
        ratings.csv               trial,inspired,...,distressed: 1-5 PANAS ratings per trial

Per trial the selected modalities are cut to their last common whole seconds and turned
into the columns of the published ``feas`` (:func:`dmer_features.trial_features`): EEG DE
``[18, 5]``, GSR ``[28]`` and PPG ``[27]`` per 1-s row, so that a model trained on the
``dmer`` feature files predicts on them. The core caches the result like any reader's
(key: this version, the config, size and mtime of every file read), so the features are
computed on the first load only.
"""

from __future__ import annotations

import csv
import logging
import re
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from affectkit import DatasetConfig, DatasetReader, EmotionDataset, UserError

from .dmer import EMOTIONS, GROUPS, _rank_within
from .dmer_features import (
    ALIGN_DROP,
    EEG_BANDS,
    EEG_FS,
    GSR_FS,
    PERIPHERAL_WINDOW_S,
    PPG_BAND_HZ,
    PPG_FS,
    common_seconds,
    filter_eeg,
    trial_features,
)
from .sources import select_subjects, unreadable

# the "affectkit" logger is the one the CLI prints warnings of
logger = logging.getLogger("affectkit.dmer_raw")

VERSION = "1"
MANIFEST = "manifest.yaml"
RATINGS = "ratings.csv"
FORMATS = ("npy", "csv")
PUBLISHED_RATES = {"eeg": EEG_FS, "gsr": GSR_FS, "ppg": PPG_FS}
#: the lowest rate each modality's features can be computed at: EEG's top band (49 Hz) and
#: PPG's band-pass (8 Hz) must lie below the Nyquist frequency
MIN_RATES = {"eeg": 2 * EEG_BANDS[-1][1], "gsr": 1.0, "ppg": 2 * PPG_BAND_HZ[1]}
#: the shortest trial that gives one row: the 5-s peripheral window (EEG rows start at 4 s)
MIN_SECONDS = int(PERIPHERAL_WINDOW_S)
_TRIAL_FILE = re.compile(r"^(\d+)_(eeg|gsr|ppg)\.([^.]+)$")
_LAYOUT = (
    f"one folder per subject holding <trial>_<modality>.npy (or .csv) files and {RATINGS}, "
    f"with the sampling rates in {MANIFEST}; see docs/datasets.md, 'dmer-raw'"
)

Modality = Literal["eeg", "gsr", "ppg"]


class DmerRawConfig(DatasetConfig):
    """Which subjects and modalities to read from raw recordings, and how."""

    subjects: list[str] | None = Field(
        None, description="subject ids (folder names) to read; null = every folder in data_dir"
    )
    modalities: list[Modality] = Field(
        default_factory=lambda: ["eeg", "gsr", "ppg"],
        min_length=1,
        description="recordings to read; a trial is cut to the common end of these",
    )
    ratings: Literal["required", "none"] = Field(
        "required",
        description=f"required: {RATINGS} per subject gives the targets; none: recordings "
        "without ratings, for predict only (every window gets a uniform placeholder target)",
    )
    eeg_filter: bool = Field(
        False,
        description="filter each EEG file first (1 Hz high-pass, 50 Hz low-pass, 49-51 Hz "
        "band-stop, baseline removal: dmer_features.filter_eeg); off = files are preprocessed",
    )


class _Rates(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    eeg: float | None = Field(None, gt=0)
    gsr: float | None = Field(None, gt=0)
    ppg: float | None = Field(None, gt=0)


class _Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sampling_rates: _Rates


def read_manifest(folder: Path, modalities: list[str]) -> dict[str, float]:
    """The sampling rate (Hz) of each of ``modalities`` from ``folder/manifest.yaml``."""
    path = folder / MANIFEST
    example = "sampling_rates: {eeg: 300, gsr: 4, ppg: 100}"
    if not path.is_file():
        raise UserError(
            f"{path} not found. A dmer-raw folder declares its sampling rates there, e.g. "
            f"'{example}' (Hz; the published DMER rates)."
        )
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise unreadable(path, exc, f"Check the file; it should hold '{example}'.") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not valid YAML ({exc}). Write it as '{example}'.") from None
    try:
        rates = _Manifest.model_validate(raw if raw is not None else {}).sampling_rates
    except ValidationError as exc:
        reasons = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '(top level)'}: {e['msg']}" for e in exc.errors()
        )
        raise UserError(f"{path} is invalid ({reasons}). Write it as '{example}'.") from None
    out = {}
    for m in modalities:
        fs = getattr(rates, m)
        if fs is None:
            raise UserError(
                f"{path} gives no sampling rate for {m} (sampling_rates.{m}). Add it, e.g. "
                f"'{m}: {PUBLISHED_RATES[m]:g}' (Hz, the published DMER rate), or leave {m} out "
                f"with --set dataset.modalities=[...]."
            )
        if abs(fs - round(fs)) > 1e-9 or fs <= MIN_RATES[m]:
            raise UserError(
                f"{path}: sampling_rates.{m} is {fs:g} Hz; the {m} features need a whole number "
                f"of samples per second above {MIN_RATES[m]:g} Hz (1-s windows; the highest "
                f"frequency they use must lie below half the rate). Resample the recordings "
                f"(e.g. scipy.signal.resample_poly), ideally to {PUBLISHED_RATES[m]:g} Hz."
            )
        out[m] = float(round(fs))
    return out


# --------------------------------------------------------------------------- signal files
def _signal(path: Path, modality: str) -> np.ndarray:
    """One recording as float64, EEG ``[channels, samples]``, GSR/PPG ``[samples]``."""
    arr = _load_csv(path) if path.suffix.lower() == ".csv" else _load_npy(path)
    if arr.dtype.kind not in "biuf":
        raise UserError(
            f"{path} holds {arr.dtype} values; expected numbers, one row per sample. Save the "
            "recording as a numeric array."
        )
    arr = arr.astype(np.float64)
    if modality == "eeg":
        arr = arr[:, None] if arr.ndim == 1 else arr  # a single channel
        if arr.ndim == 2 and arr.shape[0] < arr.shape[1]:
            raise UserError(
                f"{path} has {arr.shape[0]} rows and {arr.shape[1]} columns; an EEG recording "
                "has one row per sample and one column per channel, so this one looks "
                "transposed. Save it transposed (numpy: np.save(path, eeg.T))."
            )
    elif arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)  # one column (or one row) is the signal
    if arr.ndim != (2 if modality == "eeg" else 1):
        what = "samples x channels" if modality == "eeg" else "one value per sample"
        raise UserError(
            f"{path} has shape {arr.shape}; a {modality} recording is {what} (one row per "
            "sample). Save it in that shape."
        )
    return np.ascontiguousarray(arr.T) if modality == "eeg" else arr


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except OSError as exc:
        raise unreadable(path, exc, "Check the file, or write it again.") from None
    except (ValueError, EOFError) as exc:  # not a .npy file, a pickled object, a cut header
        raise UserError(
            f"{path} could not be read as a numeric .npy array ({exc or type(exc).__name__}). "
            "Save the recording with numpy.save(path, array) from a numeric array."
        ) from None


def _load_csv(path: Path) -> np.ndarray:
    try:
        with open(path, encoding="utf-8") as fh:
            first = fh.readline()
    except OSError as exc:
        raise unreadable(path, exc, "Check the file.") from None
    except UnicodeDecodeError:
        raise UserError(
            f"{path} is not a UTF-8 text file; expected comma-separated numbers."
        ) from None
    try:
        [float(v) for v in first.split(",")]
        header = 0
    except ValueError:
        header = 1  # a line of channel names
    try:
        return np.loadtxt(path, delimiter=",", skiprows=header, ndmin=2, encoding="utf-8")
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(
            f"{path} could not be read as comma-separated numbers ({exc}; rows count from 0 "
            f"{'after the header line' if header else 'at the first line'}). Expected one row "
            "per sample, one column per channel, and at most one header line."
        ) from None


def _check_finite(path: Path, x: np.ndarray) -> None:
    """Refuse NaN/inf samples, naming the first (earliest sample, then lowest channel)."""
    bad = ~np.isfinite(x.reshape(-1, x.shape[-1]))
    if not bad.any():
        return
    i = int(np.flatnonzero(bad.any(axis=0))[0])
    c = int(np.flatnonzero(bad[:, i])[0])
    where = f"sample {i}" + (f", channel {c}" if x.ndim == 2 else "")
    raise UserError(
        f"{path}: {int(bad.sum())} NaN/inf sample(s), the first at {where} (counting from 0; "
        "rows of the file are samples). The features of a window with a gap are undefined. "
        "Fill the gap (e.g. interpolate) or leave the trial out (move its files out of the "
        "subject folder)."
    )


# --------------------------------------------------------------------------- the reader
class DmerRawReader(DatasetReader):
    """Raw EEG/GSR/PPG per trial -> DMER feature rows (EEG DE, GSR 28, PPG 27 per second)."""

    version: ClassVar[str] = VERSION
    protocol_defaults: ClassVar[dict[str, Any]] = {"name": "subject-independent", "folds": None}

    def _folder(self) -> Path:
        if self.data_dir is None:
            raise UserError(f"dataset 'dmer-raw' needs --data-dir: the folder with {_LAYOUT}.")
        folder = Path(self.data_dir)
        if not folder.is_dir():
            raise UserError(
                f"dmer-raw data folder {folder} does not exist. Pass --data-dir with the folder "
                f"with {_LAYOUT}."
            )
        return folder

    def _subjects(self) -> list[tuple[str, Path]]:
        folder = self._folder()
        found = {
            p.name: p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))
        }
        return select_subjects(
            found,
            self.config.subjects,
            what="dmer-raw subject",
            expected=lambda s: folder / s,
            present="folders",
            empty=f"{folder} holds no subject folders. A dmer-raw folder holds {_LAYOUT}.",
            unique_fix="Keep one folder per subject and list each subject once in "
            "dataset.subjects.",
        )

    def _trials(self, sid: str, folder: Path) -> dict[int, dict[str, Path]]:
        """trial id -> modality -> file, for the selected modalities; every one present."""
        found: dict[int, dict[str, Path]] = {}
        for p in sorted(folder.iterdir()):
            match = _TRIAL_FILE.match(p.name)
            if match is None or match[2] not in self.config.modalities or not p.is_file():
                continue
            trial, modality, ext = int(match[1]), match[2], match[3].lower()
            if ext not in FORMATS:
                raise UserError(
                    f"{p}: .{ext} recordings are not read; save it as {p.stem}.npy "
                    "(numpy.save) or .csv (one row per sample)."
                )
            other = found.setdefault(trial, {}).get(modality)
            if other is not None:
                raise UserError(
                    f"{other} and {p} are both the {modality} recording of subject {sid} trial "
                    f"{trial}. Keep one of them."
                )
            found[trial][modality] = p
        if not found:
            raise UserError(
                f"{folder} (subject {sid}) holds no recordings named <trial>_<modality>.npy or "
                f".csv for {', '.join(self.config.modalities)}. A dmer-raw folder holds {_LAYOUT}."
            )
        for trial, files in sorted(found.items()):
            missing = [m for m in self.config.modalities if m not in files]
            if missing:
                expected = " or ".join(str(folder / f"{trial}_{missing[0]}.{e}") for e in FORMATS)
                raise UserError(
                    f"{expected} not found: subject {sid} trial {trial} has "
                    f"{', '.join(p.name for p in files.values())} but no {missing[0]} recording. "
                    "Add the file, leave the trial out (move its files away), or read fewer "
                    "modalities with --set dataset.modalities=[...]."
                )
        return dict(sorted(found.items()))

    def source_files(self) -> list[Path]:
        folder = self._folder()
        files = [folder / MANIFEST]
        for sid, sub in self._subjects():
            files += [p for t in self._trials(sid, sub).values() for p in t.values()]
            if self.config.ratings == "required" and (sub / RATINGS).is_file():
                files.append(sub / RATINGS)
        return [f for f in files if f.is_file()]

    # -- one trial -------------------------------------------------------------------------
    def _trial(
        self, sid: str, trial: int, files: dict[str, Path], rates: dict[str, float]
    ) -> dict[str, np.ndarray]:
        signals = {}
        for m, path in files.items():
            x = _signal(path, m)
            _check_finite(path, x)
            signals[m] = x
        lengths = {m: x.shape[-1] for m, x in signals.items()}
        if common_seconds(lengths, rates) < MIN_SECONDS:
            m = min(lengths, key=lambda k: lengths[k] / rates[k])
            raise UserError(
                f"{files[m]} holds {lengths[m]} samples, {lengths[m] / rates[m]:.2f} s at "
                f"{rates[m]:g} Hz, so subject {sid} trial {trial} is shorter than one window: a "
                f"row needs {MIN_SECONDS} whole seconds of every modality (the 5-s GSR/PPG "
                "window; the EEG rows are aligned to its end). Leave the trial out (move its "
                f"files away), or check sampling_rates.{m} in {MANIFEST}."
            )
        eeg = signals.get("eeg")
        if eeg is not None and self.config.eeg_filter:
            eeg = filter_eeg(eeg, rates["eeg"])
        feats = trial_features(
            eeg,
            signals.get("gsr"),
            signals.get("ppg"),
            rates.get("eeg", EEG_FS),
            rates.get("gsr", GSR_FS),
            rates.get("ppg", PPG_FS),
        )
        if "eeg" in feats and not np.isfinite(feats["eeg"]).all():
            row, c = (int(v) for v in np.argwhere(~np.isfinite(feats["eeg"]))[0][:2])
            raise UserError(
                f"{files['eeg']}: channel {c} (column {c}, counting from 0) has no power in a "
                f"band in second {row + ALIGN_DROP} of the kept part (flat or zero signal), so "
                "its differential entropy is -inf. Check the electrode, or replace the channel "
                "(e.g. by the mean of its neighbours)."
            )
        return feats

    def _ratings(self, sid: str, folder: Path, trials: list[int]) -> dict[int, np.ndarray]:
        path = folder / RATINGS
        header = ["trial", *EMOTIONS]
        fix = (
            f"{path} holds one line '{','.join(header)}', then one line per trial with its 1-5 "
            "PANAS ratings. Without ratings, predict with --set dataset.ratings=none."
        )
        if not path.is_file():
            raise UserError(f"{path} not found (subject {sid} has recordings). {fix}")
        try:
            with open(path, encoding="utf-8", newline="") as fh:
                lines = list(csv.reader(fh))
        except OSError as exc:
            raise unreadable(path, exc, fix) from None
        except UnicodeDecodeError:
            raise UserError(f"{path} is not a UTF-8 text file. {fix}") from None
        lines = [(i + 1, [v.strip() for v in row]) for i, row in enumerate(lines) if any(row)]
        if not lines or [v.lower() for v in lines[0][1]] != header:
            got = ",".join(lines[0][1]) if lines else "nothing"
            raise UserError(f"{path}: the first line is '{got}'. {fix}")
        out: dict[int, np.ndarray] = {}
        for number, row in lines[1:]:
            try:
                if len(row) != len(header):
                    raise ValueError(f"{len(row)} values, expected {len(header)}")
                trial = int(row[0])
                values = np.array([float(v) for v in row[1:]])
                if not np.all((values >= 1) & (values <= 5)):
                    raise ValueError("PANAS ratings are 1-5 per item")
            except ValueError as exc:
                raise UserError(
                    f"{path}, line {number} ('{','.join(row)}'): {exc}. {fix}"
                ) from None
            if trial in out:
                raise UserError(f"{path}, line {number}: trial {trial} is rated twice. {fix}")
            out[trial] = values
        unrated = [t for t in trials if t not in out]
        if unrated:
            raise UserError(
                f"{path} has no ratings for trial(s) {', '.join(map(str, unrated))} of subject "
                f"{sid}, which have recordings. {fix}"
            )
        return out

    # -- the dataset -------------------------------------------------------------------------
    def load(self) -> EmotionDataset:
        folder = self._folder()
        modalities = list(self.config.modalities)
        rates = read_manifest(folder, modalities)
        off = {m: fs for m, fs in rates.items() if fs != PUBLISHED_RATES[m]}
        if off:
            logger.warning(
                "warning: %s declares %s; the features line up with the published DMER "
                "feature files only at %s (the published script fixes its filter and Welch "
                "rates). A model trained on those files will see shifted features; resample to "
                "the published rates (scipy.signal.resample_poly) to use one.",
                folder / MANIFEST,
                ", ".join(f"{m} {fs:g} Hz" for m, fs in off.items()),
                ", ".join(f"{m} {PUBLISHED_RATES[m]:g} Hz" for m in off),
            )
        rows: dict[str, list[np.ndarray]] = {m: [] for m in modalities}
        subject, trial_ids, targets = [], [], []
        channels: tuple[int, Path] | None = None
        uniform = np.full(len(EMOTIONS), 1.0 / len(EMOTIONS))
        for sid, sub in self._subjects():
            trials = self._trials(sid, sub)
            ratings = (
                self._ratings(sid, sub, list(trials)) if self.config.ratings == "required" else {}
            )
            for trial, files in trials.items():
                feats = self._trial(sid, trial, files, rates)
                if "eeg" in feats:
                    n_ch = feats["eeg"].shape[1]
                    if channels is None:
                        channels = (n_ch, files["eeg"])
                    elif channels[0] != n_ch:
                        raise UserError(
                            f"{files['eeg']} has {n_ch} EEG channels but {channels[1]} has "
                            f"{channels[0]}; every EEG recording needs the same channels in the "
                            "same order (the published DMER features use 18)."
                        )
                n = len(next(iter(feats.values())))
                for m in modalities:
                    rows[m].append(feats[m])
                subject += [sid] * n
                trial_ids += [trial] * n
                if trial in ratings:
                    targets.append(np.tile(ratings[trial] / ratings[trial].sum(), (n, 1)))
                else:
                    targets.append(np.tile(uniform, (n, 1)))
        subject_arr, trial_arr = np.array(subject), np.array(trial_ids, dtype=np.int64)
        window = _rank_within(subject_arr, trial_arr)
        data = {m: np.concatenate(v) for m, v in rows.items()}
        return EmotionDataset(
            name="dmer-raw",
            modalities=data,
            targets=np.concatenate(targets),
            emotions=list(EMOTIONS),
            subject=subject_arr,
            trial=trial_arr,
            window=window,
            time=window.astype(np.float32),
            groups={m: GROUPS[m] for m in data},
            info={
                "version": VERSION,
                "overlap_windows": 4,
                "primary": "eeg" if "eeg" in data else modalities[0],
                "eeg_bands_hz": [list(b) for b in EEG_BANDS],
                "row_time": f"row i covers second i + {ALIGN_DROP} of the trial's common part "
                "(its modalities cut to their last common whole seconds)",
                "sampling_rates": rates,
                "eeg_filter": self.config.eeg_filter,
                "targets": "ratings.csv rows divided by their sum"
                if self.config.ratings == "required"
                else "placeholder: uniform (no ratings read; predictions only)",
            },
        )
