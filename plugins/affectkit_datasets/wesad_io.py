"""Find and read one WESAD subject's wrist recording, in whichever layout the folder holds.

Layouts, tried in this order for ``<data_dir>/SX``:

1. ``SX/SX.pkl`` (official, synchronised): wrist signals on the chest clock, condition
   bounds from the 700-Hz ``label`` array (1 Base, 2 TSST, 3 Fun, 4 Medi 1 then Medi 2).
   Read with :func:`safe_pickle.load_data_pickle`.
2. ``SX/SX_E4_Data/`` (unzipped) or 3. ``SX/SX_E4_Data.zip``: Empatica CSVs (line 1 start
   time, line 2 rate, then samples; read by ``e4_io``, shared with the ``e4`` reader), with
   condition bounds from ``SX/SX_quest.csv`` and the clock offset from
   ``<data_dir>/e4_alignment.csv`` (``e4_seconds_at_quest_t0``).

Every layout also needs ``SX/SX_quest.csv`` for the PANAS ratings.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from affectkit import UserError

from .e4_io import SIGNALS, Export, Signal
from .safe_pickle import load_data_pickle
from .sources import unreadable
from .wesad_quest import CONDITIONS, Quest, parse_quest

#: wrist sampling rates in the official pickle (the CSVs state their own)
PKL_RATES = {"ACC": 32.0, "BVP": 64.0, "EDA": 4.0, "TEMP": 4.0}
LABEL_FS = 700.0
#: runs of one label code closer than this are one condition interrupted by a blip
LABEL_MERGE_GAP_S = 5.0
#: pickle label code -> conditions it marks, in temporal order
LABEL_CODES = {1: ("Base",), 2: ("TSST",), 3: ("Fun",), 4: ("Medi 1", "Medi 2")}
ALIGNMENT_FILE = "e4_alignment.csv"
OFFICIAL = "the official WESAD distribution (Schmidt et al., ICMI 2018)"


@dataclass
class Recording:
    subject: str
    layout: str  # "pkl" | "e4-folder" | "e4-zip"
    quest: Quest
    signals: dict[str, Signal]
    #: seconds after the first sample of every signal that correspond to condition time 0
    offset_s: float
    #: condition -> (start s, end s) on the condition clock
    conditions: dict[str, tuple[float, float]] = field(default_factory=dict)


# --------------------------------------------------------------------------- find
def subject_layout(data_dir: Path, subject: str) -> tuple[str, list[Path]]:
    """(layout, source files) of one subject; errors name what is missing."""
    folder = data_dir / subject
    if not folder.is_dir():
        present = (
            sorted(p.name for p in data_dir.iterdir() if p.is_dir()) if data_dir.is_dir() else []
        )
        raise UserError(
            f"WESAD subject folder {folder} does not exist (folders in {data_dir}: "
            f"{', '.join(present) or 'none'}). Fix dataset.subjects, or copy {subject}/ from "
            f"{OFFICIAL} into {data_dir}."
        )
    quest = folder / f"{subject}_quest.csv"
    if not quest.is_file():
        raise UserError(
            f"{quest} not found: the PANAS ratings of {subject} live there. Copy it from "
            f"{OFFICIAL}."
        )
    pkl = folder / f"{subject}.pkl"
    if pkl.is_file():
        return "pkl", [pkl, quest]
    e4 = folder / f"{subject}_E4_Data"
    if e4.is_dir():
        # a missing CSV is reported by name when it is read (if the config needs it)
        return "e4-folder", [p for s in SIGNALS if (p := e4 / f"{s}.csv").is_file()] + [quest]
    zipped = folder / f"{subject}_E4_Data.zip"
    if zipped.is_file():
        return "e4-zip", [zipped, quest]
    raise UserError(
        f"{folder} holds neither {subject}.pkl nor {subject}_E4_Data/ nor {subject}_E4_Data.zip. "
        f"Copy the subject's files from {OFFICIAL}."
    )


def read_alignment(data_dir: Path) -> dict[str, dict[str, float]]:
    """``e4_alignment.csv``: subject -> {e4_seconds_at_quest_t0, e4_start_unix_utc?}."""
    path = data_dir / ALIGNMENT_FILE
    fix = (
        f"The E4-only layout (SX/SX_E4_Data) needs {path}: a CSV with columns subject and "
        "e4_seconds_at_quest_t0 (seconds after the E4 start that correspond to questionnaire "
        "time 0; optional e4_start_unix_utc is checked against the CSV headers), as shipped "
        "with the wesad-wrist subset. Add it, or use the official SX/SX.pkl files instead."
    )
    if not path.is_file():
        raise UserError(f"{path} not found. {fix}")
    try:
        text = path.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as exc:
        raise unreadable(path, exc, fix) from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    cols = set(reader.fieldnames or [])
    if not {"subject", "e4_seconds_at_quest_t0"} <= cols:
        raise UserError(f"{path} has columns {sorted(cols)}. {fix}")
    out = {}
    for row in reader:
        line_no = reader.line_num  # counts the header and skipped blank lines
        subject = (row["subject"] or "").strip()
        entry = {}
        for col in ("e4_seconds_at_quest_t0", "e4_start_unix_utc"):
            raw = row.get(col)
            if col != "e4_seconds_at_quest_t0" and not raw:
                continue  # optional column
            try:
                entry[col] = float(raw)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise UserError(
                    f"{path} line {line_no}: {col} of {subject} is {raw!r}, not a number. {fix}"
                ) from None
            # float() reads "nan" and "inf"; either would shift every window to nonsense
            if not math.isfinite(entry[col]):
                raise UserError(
                    f"{path} line {line_no}: {col} of {subject} is {raw!r}; it must be a "
                    "finite number of seconds. Put the subject's measured value there (for "
                    "e4_seconds_at_quest_t0: the E4 recording time at questionnaire time 0), "
                    "or use the subject's official SX.pkl instead."
                )
        out[subject] = entry
    return out


# --------------------------------------------------------------------------- read
def _read_e4(layout: str, folder: Path, subject: str, wanted: tuple[str, ...]):
    zipped = layout == "e4-zip"
    export = Export(folder / (f"{subject}_E4_Data.zip" if zipped else f"{subject}_E4_Data"))
    fix = f"Replace it with the file from the subject's SX_E4_Data.zip in {OFFICIAL}."
    out: dict[str, tuple[Signal, float]] = {}
    for name in wanted:
        out[name] = export.signal(
            name,
            fix,
            missing_fix=(
                f"Download it again from {OFFICIAL}."
                if zipped
                else f"Copy {name}.csv from {subject}_E4_Data.zip of {OFFICIAL}."
            ),
            read_fix=f"Copy {name}.csv again from {OFFICIAL}.",
        )
    return out


def _label_conditions(label: np.ndarray, source: Path) -> dict[str, tuple[float, float]]:
    lab = np.asarray(label).reshape(-1)
    change = np.flatnonzero(np.diff(lab)) + 1
    starts, ends = np.r_[0, change], np.r_[change, lab.size]
    values = lab[starts] if lab.size else lab
    gap = int(LABEL_MERGE_GAP_S * LABEL_FS)
    out = {}
    for code, names in LABEL_CODES.items():
        runs: list[list[int]] = []
        for s, e in zip(starts[values == code], ends[values == code], strict=True):
            if runs and s - runs[-1][1] <= gap:
                runs[-1][1] = int(e)  # a blip of another code inside a condition
            else:
                runs.append([int(s), int(e)])
        if len(runs) < len(names):
            raise UserError(
                f"{source}: 'label' has {len(runs)} segment(s) of code {code}; expected "
                f"{len(names)} ({', '.join(names)}). The file is not a complete WESAD recording."
            )
        # the longest runs are the conditions; stray samples of a code elsewhere are ignored
        longest = sorted(sorted(runs, key=lambda r: r[1] - r[0])[-len(names) :])
        for name, (s, e) in zip(names, longest, strict=True):
            out[name] = (s / LABEL_FS, e / LABEL_FS)
    return out


def _read_pkl(path: Path, wanted: tuple[str, ...]):
    obj = load_data_pickle(path)
    fix = (
        "Expected the official layout: {'signal': {'wrist': {ACC, BVP, EDA, TEMP}}, 'label', "
        f"'subject'}} ({OFFICIAL})."
    )
    try:
        wrist, label = obj["signal"]["wrist"], obj["label"]
    except (KeyError, TypeError):
        raise UserError(f"{path} does not hold signal/wrist and label. {fix}") from None
    signals = {}
    for name in wanted:
        arr = wrist.get(name) if isinstance(wrist, dict) else None
        if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "iuf" or arr.size == 0:
            raise UserError(f"{path}: signal/wrist/{name} is missing or not a numeric array. {fix}")
        arr = arr.astype(np.float64)
        arr = arr.reshape(len(arr), -1)
        if arr.shape[1] != (3 if name == "ACC" else 1):
            raise UserError(f"{path}: signal/wrist/{name} has shape {arr.shape}. {fix}")
        signals[name] = Signal(arr if name == "ACC" else arr[:, 0], PKL_RATES[name], path)
    if not isinstance(label, np.ndarray) or label.dtype.kind not in "iuf":
        raise UserError(f"{path}: 'label' is not a numeric array. {fix}")
    return signals, _label_conditions(label, path)


def read_recording(
    data_dir: Path, subject: str, wanted: tuple[str, ...], alignment: dict[str, dict] | None
) -> Recording:
    """Read one subject. ``alignment`` is needed (and checked) only for the E4 layouts."""
    layout, _ = subject_layout(data_dir, subject)
    folder = data_dir / subject
    quest = parse_quest(folder / f"{subject}_quest.csv")
    if layout == "pkl":
        signals, conditions = _read_pkl(folder / f"{subject}.pkl", wanted)
        return Recording(subject, layout, quest, signals, 0.0, conditions)
    if alignment is None:
        alignment = read_alignment(data_dir)
    if subject not in alignment:
        raise UserError(
            f"{data_dir / ALIGNMENT_FILE} has no row for {subject} (rows: "
            f"{', '.join(sorted(alignment)) or 'none'}). Add the subject's e4_seconds_at_quest_t0, "
            "or use its official SX.pkl."
        )
    entry = alignment[subject]
    read = _read_e4(layout, folder, subject, wanted)
    expected_start = entry.get("e4_start_unix_utc")
    for _name, (sig, t0) in read.items():
        if expected_start is not None and abs(t0 - expected_start) > 1.0:
            raise UserError(
                f"{sig.source}: recording starts at unix time {t0:.0f} but "
                f"{data_dir / ALIGNMENT_FILE} gives e4_start_unix_utc {expected_start:.0f} for "
                f"{subject}; the alignment belongs to another recording. Fix the alignment row."
            )
    return Recording(
        subject,
        layout,
        quest,
        {n: s for n, (s, _) in read.items()},
        entry["e4_seconds_at_quest_t0"],
        dict(quest.times),
    )


__all__ = [
    "CONDITIONS",
    "SIGNALS",
    "Recording",
    "Signal",
    "read_alignment",
    "read_recording",
    "subject_layout",
]
