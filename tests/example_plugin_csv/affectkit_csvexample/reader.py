"""``csv-windows`` dataset: one CSV file per subject, one row per window.

Layout::

    DATA_DIR/<subject>.csv        one file per subject; the file stem is the subject id

    subject,trial,window,gsr.mean,gsr.slope,ppg.hr,face.au01,rating.happy,rating.sad
    s01,0,0,0.31,-0.02,71.5,0.10,4,1
    s01,0,1,0.35,-0.01,72.0,0.12,4,1

- ``subject``: the subject id, equal to the file stem (catches a file saved under the
  wrong name);
- ``trial``: integer >= 0, the trial (stimulus) the window belongs to;
- ``window``: integer >= 0, the window's position in its trial, unique within the trial;
- ``<modality>.<feature>``: a number; modality m becomes an array ``[N, F_m]``, its columns
  in the order of the first file; an empty cell is a missing value;
- ``rating.<emotion>``: a rating >= 0; the target is the row's ratings divided by their sum.

Every file has the same columns, in any order. Modalities are physiological unless
listed in ``behavioral``. Subject ids must stay distinct when case and leading zeros are
ignored (``s1.csv`` beside ``S01.csv`` is an error, not two subjects).
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from affectkit import DatasetConfig, DatasetReader, EmotionDataset, UserError

ID_COLUMNS = ("subject", "trial", "window")
RATING = "rating"
LAYOUT = (
    "one <subject>.csv per subject with columns subject,trial,window, "
    "<modality>.<feature> features and rating.<emotion> ratings"
)


class CsvWindowsConfig(DatasetConfig):
    """Windows read from one CSV file per subject (layout: affectkit_csvexample.reader)."""

    behavioral: list[str] = Field(
        default_factory=list,
        description="modalities of the behavioral group; the others are physiological",
    )
    overlap_windows: int = Field(
        0,
        ge=0,
        description="how many following windows of a trial share samples with each window "
        "(the subject-dependent protocol drops that many at its train/test cut)",
    )
    missing: Literal["error", "impute"] = Field(
        "error", description="empty or non-finite feature cells: an error, or training-fold means"
    )


@dataclass
class _Table:
    path: Path
    columns: list[str]
    rows: list[tuple[int, list[str]]]  # (line number in the file, cells)

    def where(self, line: int, column: str | None = None) -> str:
        return f"{self.path}, line {line}" + (f", column {column!r}" if column else "")


class CsvWindowsReader(DatasetReader):
    """Windows from one CSV per subject: subject,trial,window,<mod>.<feature>,rating.<emotion>."""

    # part of the cache key: bump it when the parsing changes, so cached arrays are rebuilt
    version: ClassVar[str] = "1"
    protocol_defaults: ClassVar[dict[str, Any]] = {"name": "subject-independent", "folds": None}

    def source_files(self) -> list[Path]:
        return self._files()

    def load(self) -> EmotionDataset:
        tables = [_read(p) for p in self._files()]
        modalities, emotions = _layout(tables)
        unknown = sorted(set(self.config.behavioral) - set(modalities))
        if unknown:
            raise UserError(
                f"dataset.behavioral names {unknown}, which are not modalities of the CSV files "
                f"(they have {list(modalities)}); fix dataset.behavioral."
            )
        parts = [self._parse(t, modalities, emotions) for t in tables]
        return EmotionDataset(
            name="csv-windows",
            modalities={m: np.concatenate([p["features"][m] for p in parts]) for m in modalities},
            targets=np.concatenate([p["targets"] for p in parts]),
            emotions=emotions,
            subject=np.concatenate([p["subject"] for p in parts]),
            trial=np.concatenate([p["trial"] for p in parts]),
            window=np.concatenate([p["window"] for p in parts]),
            groups={
                m: "behavioral" if m in self.config.behavioral else "physiological"
                for m in modalities
            },
            info={
                "overlap_windows": self.config.overlap_windows,
                "features": {
                    m: [c.split(".", 1)[1] for c in cols] for m, cols in modalities.items()
                },
            },
            missing=self.config.missing,
        )

    @staticmethod
    def export(data: EmotionDataset, out_dir: Path) -> list[Path]:
        """Write ``data`` in this layout (``affectkit data export --format csv-windows``).

        One ``<subject>.csv`` per subject; a modality ``[N, C, F]`` becomes C·F columns
        ``<modality>.<i>`` (the reader gives it back flat, ``[N, C·F]``); the targets become
        the ratings; NaN becomes an empty cell. Groups are not part of the layout: read the
        files back with ``--set dataset.behavioral=[...]``. Each file is written to a
        temporary name and renamed, so an interrupted export leaves no half-written file.
        """
        bad = [m for m in data.modalities if "." in m or m == RATING or not m]
        bad += [s for s in data.subjects if "/" in s or s.startswith(".") or not s]
        if bad:
            raise UserError(
                f"dataset {data.name!r} cannot be written as csv-windows: {bad} cannot be "
                f"modality names (no '.', not {RATING!r}) or file stems."
            )
        out_dir = Path(out_dir)
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(
                f"cannot create {out_dir}: {exc.strerror}; pass another --out."
            ) from None
        columns = [f"{m}.{i}" for m, x in data.modalities.items() for i in range(x[0].size)]
        header = [*ID_COLUMNS, *columns, *(f"{RATING}.{e}" for e in data.emotions)]
        paths = []
        for s in data.subjects:
            idx = np.flatnonzero(data.subject == s)
            values = np.concatenate(
                [x[idx].reshape(len(idx), -1) for x in data.modalities.values()]
                + [data.targets[idx]],
                axis=1,
            )
            path = out_dir / f"{s}.csv"
            tmp = path.with_name(f".{path.name}.tmp")
            try:
                with tmp.open("w", newline="", encoding="utf-8") as f:
                    out = csv.writer(f)
                    out.writerow(header)
                    for i, row in zip(idx, values, strict=True):
                        # 9 significant digits give every float32 back exactly
                        cells = ["" if np.isnan(v) else f"{v:.9g}" for v in row]
                        out.writerow([s, data.trial[i], data.window[i], *cells])
                tmp.replace(path)
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                raise UserError(
                    f"could not write {path}: {exc.strerror}. Files written before it are "
                    "complete; free space or pass another --out, then export again."
                ) from None
            paths.append(path)
        return paths

    def _files(self) -> list[Path]:
        if self.data_dir is None:
            raise UserError(f"dataset 'csv-windows' needs --data-dir: a folder with {LAYOUT}.")
        folder = Path(self.data_dir)
        if not folder.is_dir():
            raise UserError(
                f"CSV data folder {folder} does not exist. Pass --data-dir with a folder "
                f"holding {LAYOUT}."
            )
        files = sorted(folder.glob("*.csv"), key=lambda p: _subject_key(p.stem))
        if not files:
            raise UserError(f"{folder} holds no .csv files; the layout is {LAYOUT}.")
        seen: dict[tuple, Path] = {}
        for p in files:
            other = seen.setdefault(_subject_key(p.stem), p)
            if other is not p:
                raise UserError(
                    f"{other.name} and {p.name} name the same subject (ids differ only in case "
                    "or leading zeros), which would put one subject on both sides of a split. "
                    "Merge or remove one of the files."
                )
        return files

    def _parse(
        self, t: _Table, modalities: dict[str, list[str]], emotions: list[str]
    ) -> dict[str, Any]:
        col = {c: i for i, c in enumerate(t.columns)}
        n = len(t.rows)
        trial, window = np.zeros(n, np.int64), np.zeros(n, np.int64)
        features = {m: np.zeros((n, len(cols)), np.float32) for m, cols in modalities.items()}
        targets = np.zeros((n, len(emotions)), np.float64)
        first_line: dict[tuple[int, int], int] = {}
        for r, (line, cells) in enumerate(t.rows):
            if len(cells) != len(t.columns):
                raise UserError(
                    f"{t.where(line)}: {len(cells)} cells, but the header names "
                    f"{len(t.columns)} columns. Give every row one cell per column."
                )
            if cells[col["subject"]].strip() != t.path.stem:
                raise UserError(
                    f"{t.where(line, 'subject')}: {cells[col['subject']]!r}, but the file is "
                    f"subject {t.path.stem!r}. One file holds one subject, named by its stem."
                )
            trial[r] = _index(t, line, "trial", cells[col["trial"]])
            window[r] = _index(t, line, "window", cells[col["window"]])
            key = (int(trial[r]), int(window[r]))
            if key in first_line:
                raise UserError(
                    f"{t.where(line)}: trial {key[0]}, window {key[1]} already appears on line "
                    f"{first_line[key]}. Each window of a trial has one row."
                )
            first_line[key] = line
            for m, cols in modalities.items():
                for j, c in enumerate(cols):
                    features[m][r, j] = self._feature(t, line, c, cells[col[c]])
            for k, e in enumerate(emotions):
                targets[r, k] = _rating(t, line, f"{RATING}.{e}", cells[col[f"{RATING}.{e}"]])
            if targets[r].sum() <= 0:
                raise UserError(
                    f"{t.where(line)}: every rating is 0, so the row is no distribution over "
                    "emotions. Give at least one emotion a positive rating, or drop the row."
                )
        return {
            "features": features,
            "targets": targets / targets.sum(axis=1, keepdims=True),
            "subject": np.full(n, t.path.stem),
            "trial": trial,
            "window": window,
        }

    def _feature(self, t: _Table, line: int, column: str, cell: str) -> float:
        value = _number(t, line, column, cell) if cell.strip() else math.nan
        if math.isfinite(value):
            return value
        if self.config.missing == "impute":
            return math.nan  # inf as well: the training-fold mean replaces it
        raise UserError(
            f"{t.where(line, column)}: {cell.strip() or 'empty'} is a missing value. Fill it "
            "in, or pass --set dataset.missing=impute to use training-fold means."
        )


def _subject_key(stem: str) -> tuple:
    """Natural order; ``S01`` and ``s1`` give the same key."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", stem.casefold()))


def _read(path: Path) -> _Table:
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            rows = [(reader.line_num, row) for row in reader if row]
    except PermissionError:
        raise UserError(f"{path}: permission denied. Make the file readable.") from None
    except UnicodeDecodeError as exc:
        raise UserError(
            f"{path} is not UTF-8 text (byte {exc.start}). Save it as a UTF-8 CSV file."
        ) from None
    except csv.Error as exc:
        raise UserError(f"{path}: not a valid CSV file ({exc}).") from None
    if header is None:
        raise UserError(f"{path} is empty; its first line names the columns ({LAYOUT}).")
    if not rows:
        raise UserError(f"{path} has a header but no rows; remove the file or add its windows.")
    return _Table(path, [c.strip() for c in header], rows)


def _layout(tables: list[_Table]) -> tuple[dict[str, list[str]], list[str]]:
    """Feature columns by modality and the emotion names, from the first file's header."""
    first = tables[0]
    dupes = sorted({c for c in first.columns if first.columns.count(c) > 1})
    if dupes:
        raise UserError(f"{first.path}: columns {dupes} appear more than once.")
    absent = [c for c in ID_COLUMNS if c not in first.columns]
    if absent:
        raise UserError(f"{first.path} has no column {absent}; the layout is {LAYOUT}.")
    modalities: dict[str, list[str]] = {}
    emotions: list[str] = []
    for c in first.columns:
        if c in ID_COLUMNS:
            continue
        prefix, dot, rest = c.partition(".")
        if not (prefix and dot and rest):
            raise UserError(
                f"{first.path}: column {c!r} is neither an id column nor <modality>.<feature> "
                f"or {RATING}.<emotion>. Rename it, e.g. gsr.{c or 'mean'}."
            )
        if prefix == RATING:
            emotions.append(rest)
        else:
            modalities.setdefault(prefix, []).append(c)
    if not modalities or not emotions:
        lacking = "feature (<modality>.<feature>)" if not modalities else f"{RATING}.<emotion>"
        raise UserError(f"{first.path} has no {lacking} column; the layout is {LAYOUT}.")
    for t in tables[1:]:
        if sorted(t.columns) != sorted(first.columns):
            missing = sorted(set(first.columns) - set(t.columns))
            extra = sorted(set(t.columns) - set(first.columns))
            raise UserError(
                f"{t.path} has other columns than {first.path.name} (missing {missing}, extra "
                f"{extra}). Every subject's file needs the same columns."
            )
    return modalities, emotions


def _number(t: _Table, line: int, column: str, cell: str) -> float:
    try:
        return float(cell)
    except ValueError:
        raise UserError(f"{t.where(line, column)}: {cell!r} is not a number.") from None


def _index(t: _Table, line: int, column: str, cell: str) -> int:
    try:
        value = int(cell)
    except ValueError:
        value = -1
    if value < 0:
        raise UserError(f"{t.where(line, column)}: {cell!r} is not an integer >= 0.")
    return value


def _rating(t: _Table, line: int, column: str, cell: str) -> float:
    value = _number(t, line, column, cell) if cell.strip() else math.nan
    if not (math.isfinite(value) and value >= 0):
        raise UserError(
            f"{t.where(line, column)}: rating {cell.strip() or 'empty'!r} must be a number >= 0."
        )
    return value
