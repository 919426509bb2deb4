"""Window features of one WESAD wrist recording.

Windows of ``window_s`` moved by ``step_s`` lie inside each condition, ``trim_s`` away
from both edges (the wrist/questionnaire alignment is good to about +-2 s). Each window's
features come from that window and the ``context_s`` seconds before it, through the one
function the ``e4`` reader and its live stream use (``e4_features.signal_window``): a
checkpoint trained on ``wesad`` sees the same features on an E4 export or stream of the
same signals, window for window. (Until reader version 3 the filters and SCR detector ran
over the whole recording, so a window's ``scr_count`` depended on the recording's largest
SCR, hours away, and correlated at r = -0.75 with what a live stream can compute.)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from affectkit import UserError

from .e4_features import FEATURE_NAMES, HRV_NAMES, hrv_features, signal_window
from .wesad_io import ALIGNMENT_FILE, CONDITIONS, OFFICIAL, Recording, read_recording
from .wesad_quest import PANAS_ITEMS

#: a signal this much shorter than the subject's longest was cut short (E4 signals of one
#: recording end within a second or two of each other)
TRUNCATED_BY_S = 5.0


@dataclass(frozen=True)
class SubjectTask:
    """Everything a worker process needs to featurise one subject."""

    data_dir: Path
    subject: str
    signals: tuple[str, ...]
    window_s: float
    step_s: float
    trim_s: float
    alignment: dict[str, dict[str, float]] | None
    context_s: float


@dataclass
class SubjectFeatures:
    subject: str
    layout: str
    features: dict[str, np.ndarray]  # signal -> [W, D]
    condition: np.ndarray  # [W] index into CONDITIONS
    window: np.ndarray  # [W] index inside the condition
    time: np.ndarray  # [W] window start, seconds from the condition start
    panas: dict[str, list[float]]  # condition -> 24 ratings (NaN = missing)
    order: tuple[str, ...] = ()  # the conditions by their start in the recording


# --------------------------------------------------------------------------- windows
def window_starts(
    start: float, end: float, window_s: float, step_s: float, trim_s: float
) -> np.ndarray:
    """Start times of the full windows inside ``[start + trim, end - trim]``."""
    span = (end - trim_s) - (start + trim_s)
    if span < window_s:
        return np.empty(0)
    n = int(np.floor((span - window_s) / step_s + 1e-9)) + 1
    return start + trim_s + step_s * np.arange(n)


def _window_index(
    rec: Recording, name: str, starts_s: np.ndarray, window_s: float
) -> tuple[np.ndarray, int]:
    """First sample of each window (time t is sample round((offset + t) * fs)) and the length."""
    sig = rec.signals[name]
    return np.rint((rec.offset_s + starts_s) * sig.fs).astype(np.int64), round(window_s * sig.fs)


def _clock(seconds: float) -> str:
    """Seconds as the questionnaire writes them, minutes.seconds (1322 -> '22.02')."""
    return f"{int(seconds // 60)}.{round(seconds % 60):02d}"


def _phase_source(rec: Recording, cond: str) -> str:
    start, end = rec.conditions[cond]
    if rec.layout == "pkl":
        pkl = rec.quest.path.parent / f"{rec.subject}.pkl"
        return f"{start:.0f}-{end:.0f} s by the 'label' array of {pkl}"
    return (
        f"{_clock(start)}-{_clock(end)} in {rec.quest.path}, i.e. {rec.offset_s + start:.0f}-"
        f"{rec.offset_s + end:.0f} s into the recording with e4_seconds_at_quest_t0 = "
        f"{rec.offset_s:g} from {ALIGNMENT_FILE}"
    )


def check_coverage(
    rec: Recording,
    signals: tuple[str, ...],
    condition: np.ndarray,
    starts_s: np.ndarray,
    window_s: float,
) -> None:
    """Every window lies inside every signal; checked before any filter sees a signal.

    Otherwise the error names the phase, the file its times come from, the signal's length
    and what the windows need, and says which file is likely wrong: a signal clearly
    shorter than the subject's others was cut short; if all end together, the phase times
    (or the clock offset) are off.
    """
    durations = {n: len(rec.signals[n].data) / rec.signals[n].fs for n in signals}
    longest = max(durations, key=durations.__getitem__)
    for name in signals:
        sig = rec.signals[name]
        first, length = _window_index(rec, name, starts_s, window_s)
        n = len(sig.data)
        early, late = first < 0, first + length > n
        if early.any():
            i = int(np.flatnonzero(early)[np.argmin(first[early])])
            cond = CONDITIONS[condition[i]]
            raise UserError(
                f"{sig.source}: a window of {rec.subject}'s {cond} phase "
                f"({_phase_source(rec, cond)}) starts {-first[i] / sig.fs:.1f} s before the "
                f"recording. The clock offset ({ALIGNMENT_FILE}) or the phase times do not fit "
                "this recording; correct the one that is wrong."
            )
        if not late.any():
            continue
        i = int(np.flatnonzero(late)[np.argmin(first[late])])  # the first window past the end
        cond = CONDITIONS[condition[i]]
        need = int(first[late].max() + length)
        have = (
            f"{sig.source} holds {n} samples ({n / sig.fs:.1f} s at {sig.fs:g} Hz), but the "
            f"windows of {rec.subject} need {need} samples ({need / sig.fs:.1f} s)."
        )
        short_by = durations[longest] - durations[name]
        if short_by > TRUNCATED_BY_S:
            raise UserError(
                f"{have} {name} is {short_by:.0f} s shorter than {longest} "
                f"({rec.signals[longest].source}), so the file is likely truncated. Replace it "
                f"with the complete file from {OFFICIAL}."
            )
        phase = (
            f"The first window past its end belongs to the {cond} phase "
            f"({_phase_source(rec, cond)})."
        )
        if rec.layout == "pkl":
            verdict = (
                "The pickle's label array and signals disagree: the file is truncated or "
                f"altered. Replace it with the one from {OFFICIAL}."
            )
        elif len(signals) > 1:
            verdict = (
                f"Every signal read for {rec.subject} ends by {durations[longest]:.0f} s, so the "
                f"{cond} times in {rec.quest.path.name} (or e4_seconds_at_quest_t0 in "
                f"{ALIGNMENT_FILE}) are likely wrong. Correct them (minutes.seconds)."
            )
        else:
            verdict = (
                f"Either the file is truncated (replace it with the complete file from "
                f"{OFFICIAL}) or the {cond} times in {rec.quest.path.name} (or the offset in "
                f"{ALIGNMENT_FILE}) are wrong."
            )
        raise UserError(f"{have} {phase} {verdict}")


# --------------------------------------------------------------------------- signals
def _extract(
    rec: Recording, name: str, starts: np.ndarray, window_s: float, context_s: float
) -> np.ndarray:
    """``[W, D]`` features of ``name`` for the windows starting ``starts`` seconds into the
    questionnaire's clock (sample ``round((offset + t) * fs)``, as :func:`_window_index`)."""
    sig = rec.signals[name]
    rows = []
    for start in starts:
        row = signal_window(
            name, sig.data, 0, -rec.offset_s, sig.fs, float(start), window_s, context_s
        )
        # check_coverage ran first, so only a NaN sample inside the window leaves it empty
        rows.append(np.full(len(FEATURE_NAMES[name]), np.nan) if row is None else row)
    return np.stack(rows)


def featurize(
    rec: Recording,
    signals: tuple[str, ...],
    window_s: float,
    step_s: float,
    trim_s: float,
    context_s: float,
) -> SubjectFeatures:
    conds, wins = [np.empty(0, np.int64)], [np.empty(0, np.int64)]
    starts, times = [np.empty(0)], [np.empty(0)]
    for ci, cond in enumerate(CONDITIONS):
        if cond not in rec.conditions:
            continue
        start, end = rec.conditions[cond]
        s = window_starts(start, end, window_s, step_s, trim_s)
        conds.append(np.full(len(s), ci))
        wins.append(np.arange(len(s)))
        starts.append(s)
        times.append(s - start)
    starts = np.concatenate(starts)
    condition = np.concatenate(conds)
    if starts.size == 0:
        raise UserError(
            f"{rec.quest.path}: no condition of {rec.subject} is longer than window_s + 2 * trim_s "
            f"= {window_s + 2 * trim_s:g} s. Lower dataset.window_s or dataset.trim_s."
        )
    check_coverage(rec, signals, condition, starts, window_s)
    feats = {name: _extract(rec, name, starts, window_s, context_s) for name in signals}
    return SubjectFeatures(
        subject=rec.subject,
        layout=rec.layout,
        features=feats,
        condition=condition,
        window=np.concatenate(wins),
        time=np.concatenate(times),
        panas={c: rec.quest.panas[c].tolist() for c in CONDITIONS},
        order=tuple(sorted(rec.conditions, key=lambda c: rec.conditions[c][0])),
    )


def process_subject(task: SubjectTask) -> SubjectFeatures:
    """Read and featurise one subject (the unit of work of the reader's process pool)."""
    rec = read_recording(task.data_dir, task.subject, task.signals, task.alignment)
    return featurize(rec, task.signals, task.window_s, task.step_s, task.trim_s, task.context_s)


__all__ = [
    "FEATURE_NAMES",
    "HRV_NAMES",
    "PANAS_ITEMS",
    "SubjectFeatures",
    "SubjectTask",
    "featurize",
    "hrv_features",
    "process_subject",
    "window_starts",
]
