"""``e4``: any Empatica E4 session export, windowed continuously, labels optional.

``--data-dir`` is one session (a folder holding ``BVP.csv``, ``EDA.csv``, ... or the zip E4
connect writes) or a folder holding several, as sub-folders or zips (one level down, or
two: ``S2/S2_E4_Data``); each session becomes one ``subject`` named after its folder.
Files are read by ``e4_io``, features are ``wesad``'s (``e4_features``), so a checkpoint
trained on ``wesad`` predicts on ``e4`` data.

Windows of ``window_s`` moved by ``step_s`` cover each session from its first sample; the
wearer's button presses (``tags.csv``) are segment boundaries: no window crosses one, and
each segment is a ``trial`` whose windows restart at the tag. Each window's features are
computed from that window and the ``context_s`` seconds before it only, so a live stream
(:mod:`e4_stream`) computes exactly what this reader does, window for window.

Bad real-world input has one defined result each (docs/monitoring.md):

- a window in which a signal has any missing sample (an empty or ``nan`` line, the file
  ended early, a gap on stdin) has that modality's features NaN: the checkpoint's training
  means fill them and the window lists the modality under ``imputed``;
- a window in which every signal is missing is skipped, with a warning;
- files of one session whose start headers disagree, or a session named by its start time
  (``1495437325_A01A3A``) whose headers say otherwise, stop the run (exit 2) naming the
  file: a clock header in another timezone would shift the whole time axis;
- a last line cut short (the file is still being written) is left out, with a warning.

Labels: without ``labels.csv`` the dataset is unlabelled (one placeholder emotion,
``info["labelled"] = False``), for ``affectkit predict`` / ``stream``. A session's
``labels.csv`` (header ``start_s,end_s,<emotion>...``, seconds from the session start,
one row per labelled stretch) gives every window inside a row that row's ratings divided by
their sum; with labels, windows outside every row are left out.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import itertools
import logging
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator

from affectkit import DatasetConfig, DatasetReader, EmotionDataset, UserError

from .e4_features import CONTEXT_S, FEATURE_NAMES, window_features
from .e4_io import SESSION_NAME, SIGNALS, Export, Signal
from .sources import check_unique, natural_sorted

log = logging.getLogger("affectkit")

VERSION = "1"
SIGNAL_GROUPS = {"BVP": "physiological", "EDA": "physiological", "TEMP": "physiological"}
WristSignal = Literal["BVP", "EDA", "TEMP", "ACC"]
#: E4 connect writes every file of a session with one start time; more apart than this is
#: a header that was changed, or written on another clock
START_SKEW_S = 2.0
#: a session name (unix start) and its headers may differ by the export's rounding
NAME_SKEW_S = 60.0
#: header clocks that differ by a multiple of this (within NAME_SKEW_S) are a timezone slip
TIMEZONE_STEP_S = 900.0
FIX_EXPORT = "Export the session again from E4 connect, or repair the file."
LABELS_FILE = "labels.csv"


class E4Config(DatasetConfig):
    """Sessions, windowing and modality mapping of the Empatica E4 reader."""

    sessions: list[str] | None = Field(
        None, description="session names (folder or zip stems) to read; null = every session"
    )
    window_s: float = Field(60.0, gt=0, description="window length, seconds")
    step_s: float = Field(10.0, gt=0, description="step between window starts, seconds")
    context_s: float = Field(
        CONTEXT_S,
        ge=0,
        description="seconds before a window its filters may see (never after: live = offline)",
    )
    modalities: dict[str, WristSignal] = Field(
        default_factory=lambda: {"ppg": "BVP", "gsr": "EDA", "temp": "TEMP", "behavioral": "ACC"},
        min_length=1,
        description="modality name -> wrist signal (ACC is behavioral, the rest physiological)",
    )
    timezone: str = Field(
        "UTC", description="IANA timezone of the wall-clock columns (the headers are UTC)"
    )
    stall_s: float = Field(
        5.0,
        gt=0,
        description="stream: a signal this far behind the others is treated as missing",
    )

    @field_validator("modalities")
    @classmethod
    def _names(cls, v: dict[str, str]) -> dict[str, str]:
        bad = [k for k in v if not re.fullmatch(r"[a-z][a-z0-9_]*", k)]
        if bad:
            raise ValueError(f"modality names must be lower-case identifiers, got {bad}")
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        zone(v)
        return v


def zone(name: str) -> _dt.tzinfo:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if name.upper() == "UTC":
        return _dt.timezone.utc
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown timezone {name!r}; use an IANA name such as Europe/Berlin"
        ) from None


def wall(t_unix: float | None, tz: _dt.tzinfo) -> str | None:
    """ISO 8601 wall-clock time of a unix time (``None`` when the source has no clock)."""
    if t_unix is None:
        return None
    return _dt.datetime.fromtimestamp(t_unix, tz).isoformat(timespec="milliseconds")


def _utc(t: float) -> str:
    return _dt.datetime.fromtimestamp(t, _dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


# --------------------------------------------------------------------------- sessions
@dataclass
class Session:
    name: str
    export: Export
    signals: dict[str, Signal]
    starts: dict[str, float]  # unix start per signal (its header)
    tags: list[float] = field(default_factory=list)  # unix times inside the recording
    labels: tuple[list[str], np.ndarray] | None = None  # emotions, rows [start, end, ratings...]

    @property
    def t0(self) -> float:
        return min(self.starts.values())

    @property
    def end(self) -> float:
        return max(self.starts[n] + len(s.data) / s.fs for n, s in self.signals.items())


def _is_session(folder: Path) -> bool:
    return any((folder / f"{s}.csv").is_file() for s in SIGNALS)


def find_sessions(data_dir: Path) -> list[Export]:
    """The session exports in ``data_dir`` (itself, its children or grandchildren)."""
    if data_dir.is_file():
        return [Export(data_dir)]
    if _is_session(data_dir):
        return [Export(data_dir)]
    found: list[Export] = []
    for child in natural_sorted(p.name for p in data_dir.iterdir()):
        path = data_dir / child
        if path.is_file() and path.suffix.lower() == ".zip":
            found.append(Export(path))
        elif path.is_dir():
            if _is_session(path):
                found.append(Export(path))
                continue
            for grand in natural_sorted(p.name for p in path.iterdir()):
                sub = path / grand
                if (sub.is_dir() and _is_session(sub)) or sub.suffix.lower() == ".zip":
                    found.append(Export(sub))
    return found


def check_clock(session: str, starts: dict[str, float], sources: dict[str, Path]) -> None:
    """Refuse a session whose files' start headers disagree (a wrong time axis otherwise)."""
    for name, t in starts.items():
        if not 1e9 <= t < 1e10:
            raise UserError(
                f"{sources[name]}: line 1 gives start time {t!r}, which is not unix seconds "
                f"(E4 writes e.g. 1495437325.000000). A header in milliseconds or local "
                f"'seconds of day' would give a wrong time axis. {FIX_EXPORT}"
            )
    values = sorted(starts.values())
    ref = values[len(values) // 2]  # the majority's start
    for name, t in starts.items():
        if abs(t - ref) > START_SKEW_S:
            raise UserError(
                f"{sources[name]} starts at {_utc(t)} but the other files of session "
                f"{session} at {_utc(ref)} ({_offset(t - ref)}). {_why(t - ref)}Correct line "
                f"1 of {sources[name].name} (unix seconds, UTC) or {FIX_EXPORT[0].lower()}"
                f"{FIX_EXPORT[1:]}"
            )
    m = SESSION_NAME.match(session)
    if m and abs(float(m.group(1)) - ref) > NAME_SKEW_S:
        first = sources[min(starts, key=starts.__getitem__)]
        named = float(m.group(1))
        raise UserError(
            f"{first} starts at {_utc(ref)} but its session is named {session} "
            f"({_utc(named)}; {_offset(ref - named)}). {_why(ref - named)}Correct line 1 of the "
            "session's files (unix seconds, UTC), or rename the session folder if the name is "
            "wrong."
        )


def _offset(dt: float) -> str:
    sign = "+" if dt >= 0 else "-"
    h, rem = divmod(abs(dt), 3600)
    return f"{sign}{int(h)} h {rem / 60:.1f} min"


def _why(dt: float) -> str:
    steps = dt / TIMEZONE_STEP_S
    if abs(dt) >= TIMEZONE_STEP_S and abs(steps - round(steps)) * TIMEZONE_STEP_S <= NAME_SKEW_S:
        return "A whole number of quarter hours: the header was written in a local timezone. "
    return ""


def _zone_shift(t: float, t0: float, end: float) -> float:
    """The smallest timezone step (a multiple of 15 min, up to 14 h) that moves ``t`` into
    ``(t0, end)``; 0 if none does."""
    steps = sorted(range(-56, 57), key=abs)[1:]
    return next((k * TIMEZONE_STEP_S for k in steps if t0 < t + k * TIMEZONE_STEP_S < end), 0.0)


def _read_tags(export: Export, t0: float, end: float) -> list[float]:
    if not export.has("tags.csv"):
        return []
    source = export.source("tags.csv")
    text = export.read("tags.csv", FIX_EXPORT)
    lines = text.split("\n")
    tags: list[float] = []
    for i, line in enumerate(lines, start=1):
        value = line.split(",")[0].strip()
        if not value:
            continue
        try:
            t = float(value)
        except ValueError:
            if i == len(lines):  # cut short while being written
                log.warning(f"{source}: the last line {line!r} is cut short; it is left out.")
                continue
            raise UserError(
                f"{source} line {i} holds {value!r}, not a unix time. {FIX_EXPORT}"
            ) from None
        if not math.isfinite(t):
            raise UserError(f"{source} line {i} holds {value!r}, not a unix time. {FIX_EXPORT}")
        if t0 < t < end:
            tags.append(t)
            continue
        shift = _zone_shift(t, t0, end)
        if shift:
            raise UserError(
                f"{source} line {i}: tag at {_utc(t)} lies outside the recording "
                f"({_utc(t0)} to {_utc(end)}), but inside it if moved by {_offset(shift)}: "
                "the tag was written in a local timezone. Correct the tag times (unix "
                "seconds, UTC)."
            )
        log.warning(
            f"{source} line {i}: tag at {_utc(t)} lies outside the recording "
            f"({_utc(t0)} to {_utc(end)}); it is ignored."
        )
    return sorted(set(tags))


def _read_labels(export: Export) -> tuple[list[str], np.ndarray] | None:
    if not export.has(LABELS_FILE):
        return None
    source = export.source(LABELS_FILE)
    fix = (
        f"{LABELS_FILE} needs the header start_s,end_s,<emotion>,... and one row per labelled "
        "stretch: seconds from the session start, then non-negative ratings."
    )
    rows = list(csv.reader(io.StringIO(export.read(LABELS_FILE, fix))))
    rows = [r for r in rows if any(c.strip() for c in r)]
    if not rows or [c.strip() for c in rows[0][:2]] != ["start_s", "end_s"] or len(rows[0]) < 3:
        raise UserError(f"{source}: header {rows[0] if rows else 'missing'}. {fix}")
    emotions = [c.strip() for c in rows[0][2:]]
    values = []
    for i, r in enumerate(rows[1:], start=2):
        try:
            v = [float(c) for c in r]
        except ValueError:
            raise UserError(f"{source} row {i}: {r} holds a non-number. {fix}") from None
        ok = len(v) == len(emotions) + 2 and all(math.isfinite(x) for x in v)
        if not ok or v[1] <= v[0] or min(v[2:]) < 0 or sum(v[2:]) <= 0:
            raise UserError(f"{source} row {i}: {r} is not start < end and ratings >= 0. {fix}")
        values.append(v)
    return emotions, np.asarray(values, dtype=np.float64).reshape(-1, len(emotions) + 2)


def read_session(export: Export, signals: tuple[str, ...]) -> Session:
    """One session's signals, tags and labels, with its clock checked."""
    read = {}
    for name in signals:
        read[name] = export.signal(name, FIX_EXPORT, strict=False)
    starts = {n: t0 for n, (_, t0) in read.items()}
    check_clock(export.name, starts, {n: export.source(f"{n}.csv") for n in read})
    session = Session(export.name, export, {n: s for n, (s, _) in read.items()}, starts)
    session.tags = _read_tags(export, session.t0, session.end)
    session.labels = _read_labels(export)
    return session


# --------------------------------------------------------------------------- windows
def segment_starts(
    t0: float, end: float, tags: list[float], window_s: float, step_s: float
) -> Iterator[tuple[int, int, float]]:
    """(segment, window, start unix) of every window inside a tag-delimited segment."""
    bounds = [t0, *tags, end]
    for seg, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        k = 0
        while lo + k * step_s + window_s <= hi + 1e-9:
            yield seg, k, lo + k * step_s
            k += 1


def describe_runs(times: list[float], step_s: float, tz: _dt.tzinfo) -> str:
    """'09:01:10-09:04:10, 10:00:00' for the window starts ``times`` (unix)."""
    runs: list[list[float]] = []
    for t in times:
        if runs and t - runs[-1][1] <= step_s + 1e-6:
            runs[-1][1] = t
        else:
            runs.append([t, t])
    fmt = [
        _dt.datetime.fromtimestamp(a, tz).strftime("%H:%M:%S")
        + ("" if a == b else "-" + _dt.datetime.fromtimestamp(b, tz).strftime("%H:%M:%S"))
        for a, b in runs[:5]
    ]
    return ", ".join(fmt) + (f" and {len(runs) - 5} more" if len(runs) > 5 else "")


# --------------------------------------------------------------------------- reader
class E4Reader(DatasetReader):
    """Empatica E4 exports, windowed continuously; ``info['timeline']`` holds the times."""

    version: ClassVar[str] = VERSION
    protocol_defaults: ClassVar[dict[str, Any]] = {"name": "subject-independent", "folds": None}

    def _folder(self) -> Path:
        if self.data_dir is None:
            raise UserError(
                "dataset 'e4' needs --data-dir: an E4 session export (folder or zip holding "
                "BVP.csv, EDA.csv, TEMP.csv, ACC.csv) or a folder of them."
            )
        path = Path(self.data_dir)
        if not path.exists():
            raise UserError(f"E4 data {path} does not exist. Pass --data-dir with an E4 export.")
        return path

    def _exports(self) -> list[Export]:
        folder = self._folder()
        exports = find_sessions(folder)
        if not exports:
            raise UserError(
                f"{folder} holds no E4 session: no BVP.csv/EDA.csv/TEMP.csv/ACC.csv in it, in "
                "its sub-folders or their sub-folders, and no zip. Point --data-dir at the "
                "export."
            )
        wanted = self.config.sessions
        if wanted is not None:
            names = {e.name: e for e in exports}
            missing = [s for s in wanted if s not in names]
            if missing:
                raise UserError(
                    f"session(s) {', '.join(missing)} not in {folder} (sessions: "
                    f"{', '.join(names)}). Fix dataset.sessions."
                )
            exports = [names[s] for s in wanted]
        check_unique(
            ((e.name, str(e.path)) for e in exports),
            "E4 session",
            "Rename one of the folders: each session becomes one subject.",
        )
        return exports

    def _signals(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.config.modalities.values()))

    def source_files(self) -> list[Path]:
        files = []
        for e in self._exports():
            if e.zipped:
                files.append(e.path)
            else:
                names = [*[f"{s}.csv" for s in self._signals()], "tags.csv", LABELS_FILE]
                files += [e.path / n for n in names if (e.path / n).is_file()]
        return files

    def sessions(self) -> list[Session]:
        return [read_session(e, self._signals()) for e in self._exports()]

    def load(self) -> EmotionDataset:
        cfg = self.config
        tz = zone(cfg.timezone)
        mapping = dict(cfg.modalities)
        sessions = self.sessions()
        emotions = _emotions(sessions)
        cols: dict[str, list] = {
            k: []
            for k in ("subject", "trial", "window", "time", "start_s", "start_unix", "imputed")
        }
        feats: dict[str, list[np.ndarray]] = {m: [] for m in mapping}
        targets: list[np.ndarray] = []
        for s in sessions:
            arrays = {n: (sig.data, 0, s.starts[n], sig.fs) for n, sig in s.signals.items()}
            skipped: list[float] = []
            imputed: dict[str, list[float]] = {}
            for seg, k, start in segment_starts(s.t0, s.end, s.tags, cfg.window_s, cfg.step_s):
                target = _target(s, emotions, start - s.t0, cfg.window_s)
                if target is None:
                    continue
                f, missing = window_features(mapping, arrays, start, cfg.window_s, cfg.context_s)
                if len(missing) == len(mapping):
                    skipped.append(start)
                    continue
                for m in missing:
                    imputed.setdefault(m, []).append(start)
                for m in mapping:
                    feats[m].append(f[m])
                targets.append(target)
                seg_start = s.t0 if seg == 0 else s.tags[seg - 1]
                cols["subject"].append(s.name)
                cols["trial"].append(seg)
                cols["window"].append(k)
                cols["time"].append(start - seg_start)
                cols["start_s"].append(start - s.t0)
                cols["start_unix"].append(start)
                cols["imputed"].append(missing)
            _warn(s.name, skipped, imputed, mapping, cfg.step_s, tz)
        if not targets:
            raise UserError(
                f"no window of {cfg.window_s:g} s fits in {self._folder()} (sessions "
                f"{', '.join(s.name for s in sessions)}): every session or segment is shorter, "
                "has no signal, or (with labels.csv) no window lies inside a labelled row. "
                "Lower dataset.window_s."
            )
        start_unix = np.asarray(cols["start_unix"], dtype=np.float64)
        info: dict[str, Any] = {
            "version": VERSION,
            "labelled": emotions != ["unlabelled"],
            "window_s": cfg.window_s,
            "step_s": cfg.step_s,
            "context_s": cfg.context_s,
            "overlap_windows": max(int(np.ceil(cfg.window_s / cfg.step_s)) - 1, 0),
            "signals": mapping,
            "feature_names": {m: list(FEATURE_NAMES[s]) for m, s in mapping.items()},
            "time": "window start, seconds from the start of its segment (tags.csv)",
            "timeline": {
                "start_s": cols["start_s"],
                "end_s": [t + cfg.window_s for t in cols["start_s"]],
                "start_wall": [wall(t, tz) for t in start_unix.tolist()],
                "end_wall": [wall(t + cfg.window_s, tz) for t in start_unix.tolist()],
                "imputed": cols["imputed"],
                "markers": {s.name: [t - s.t0 for t in s.tags] for s in sessions},
                "session_start_wall": {s.name: wall(s.t0, tz) for s in sessions},
                "timezone": cfg.timezone,
            },
        }
        return EmotionDataset(
            name="e4",
            modalities={m: np.stack(v) for m, v in feats.items()},
            targets=np.stack(targets),
            emotions=emotions,
            subject=np.asarray(cols["subject"]),
            trial=np.asarray(cols["trial"]),
            window=np.asarray(cols["window"]),
            time=np.asarray(cols["time"]),
            groups={m: SIGNAL_GROUPS.get(s, "behavioral") for m, s in mapping.items()},  # type: ignore[misc]
            info=info,
            missing="impute",
        )

    def stream_windows(self, source: Any, speed: float | None = 1.0) -> Iterator[Any]:
        """The live form of :meth:`load` (the core's ``affectkit.stream`` hook): windows as
        their last sample arrives, from a replayed export or ``t,modality,value`` lines."""
        from .e4_stream import stream_windows

        return stream_windows(self, source, speed)


def _emotions(sessions: list[Session]) -> list[str]:
    labelled = [s for s in sessions if s.labels is not None]
    if not labelled:
        return ["unlabelled"]
    unlabelled = [s.name for s in sessions if s.labels is None]
    first = labelled[0].labels[0]  # type: ignore[index]
    for s in labelled:
        if s.labels[0] != first:  # type: ignore[index]
            raise UserError(
                f"{s.export.source(LABELS_FILE)} names emotions {s.labels[0]}, but "  # type: ignore[index]
                f"{labelled[0].export.source(LABELS_FILE)} {first}. Use one header everywhere."
            )
    if unlabelled:
        raise UserError(
            f"session(s) {', '.join(unlabelled)} have no {LABELS_FILE} while "
            f"{labelled[0].name} has one. Label every session, or none (to predict)."
        )
    return list(first)


def _target(s: Session, emotions: list[str], start: float, window_s: float) -> np.ndarray | None:
    if s.labels is None:
        return np.ones(1)
    rows = s.labels[1]
    inside = (rows[:, 0] <= start + 1e-9) & (start + window_s <= rows[:, 1] + 1e-9)
    if not inside.any():
        return None
    r = rows[np.flatnonzero(inside)[0], 2:]
    return r / r.sum()


def _warn(
    session: str,
    skipped: list[float],
    imputed: dict[str, list[float]],
    mapping: dict[str, str],
    step_s: float,
    tz: _dt.tzinfo,
) -> None:
    if skipped:
        log.warning(
            f"session {session}: {len(skipped)} window(s) skipped, no signal at all (starting "
            f"{describe_runs(skipped, step_s, tz)})."
        )
    for m, times in imputed.items():
        log.warning(
            f"session {session}: {m} ({mapping[m]}) missing in {len(times)} window(s) (starting "
            f"{describe_runs(times, step_s, tz)}); imputed from the training statistics and "
            "listed under 'imputed'."
        )


__all__ = ["E4Config", "E4Reader", "find_sessions", "read_session", "window_features"]
