"""Window features of one WESAD wrist recording.

Windows of ``window_s`` moved by ``step_s`` lie inside each condition, ``trim_s`` away
from both edges (the wrist/questionnaire alignment is good to about +-2 s). Features per
window, each vectorised over windows (Python loops run over conditions and signals only):

- BVP (64 Hz) -> 27 DMER PPG statistics of the 0.5-8 Hz band-passed pulse
  (:func:`dmer_features.peripheral_stats`), then heart rate and HRV from pulse peaks
  (neurokit2 ``ppg_findpeaks``, Elgendi, run once on the whole filtered recording after
  dividing it by its 5-s running RMS):
  ``hr_mean`` (60 / mean inter-beat interval, bpm), ``hr_std`` (bpm), ``sdnn_ms``,
  ``rmssd_ms``, ``pnn50`` and ``beats_valid`` (fraction of intervals kept). An interval
  is kept if it is 0.3-2 s and within 30 % of the median of its 11 neighbours; a window
  with fewer than 2 kept intervals gets NaN HR/HRV values.
- EDA (4 Hz) -> 28 DMER GSR statistics of the raw signal, then neurokit2 ``eda_phasic``
  (high-pass 0.05 Hz split): ``tonic_mean`` (uS), ``scr_count`` (SCR peaks in the window
  from ``eda_peaks``, method neurokit, dropping SCRs below 1 % of the recording's largest)
  and ``scr_amplitude_mean`` (uS, 0 without SCRs).
- TEMP (4 Hz) -> ``mean``, ``std``, ``min``, ``max``, ``slope`` (least squares, degC/min).
- ACC (32 Hz, 1/64 g) -> in g, for x, y, z and the magnitude: ``mean``, ``std``,
  ``energy`` (mean square, gravity included) and ``dominant_hz`` (the largest non-DC
  bin of the mean-removed window's spectrum; 0 for a constant channel).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.ndimage import median_filter, uniform_filter1d

from affectkit import UserError

from .dmer_features import GSR_FEATURE_NAMES, PPG_FEATURE_NAMES, bandpass_ppg, peripheral_stats
from .wesad_io import ALIGNMENT_FILE, CONDITIONS, OFFICIAL, Recording, read_recording
from .wesad_quest import PANAS_ITEMS

HRV_NAMES = ("hr_mean", "hr_std", "sdnn_ms", "rmssd_ms", "pnn50", "beats_valid")
EDA_NK_NAMES = ("tonic_mean", "scr_count", "scr_amplitude_mean")
TEMP_NAMES = ("mean", "std", "min", "max", "slope")
ACC_CHANNELS = ("x", "y", "z", "magnitude")
ACC_STATS = ("mean", "std", "energy", "dominant_hz")
FEATURE_NAMES: dict[str, tuple[str, ...]] = {
    "BVP": (*PPG_FEATURE_NAMES, *HRV_NAMES),
    "EDA": (*GSR_FEATURE_NAMES, *EDA_NK_NAMES),
    "TEMP": TEMP_NAMES,
    "ACC": tuple(f"{c}_{s}" for c in ACC_CHANNELS for s in ACC_STATS),
}
IBI_RANGE_S = (0.3, 2.0)
PEAK_RMS_S = 5.0  # running-RMS window that levels the pulse amplitude before peak detection
IBI_NEIGHBOURS = 11
IBI_MAX_DEVIATION = 0.3
#: neurokit's amplitude_min: SCRs below this fraction of the recording's largest are dropped
#: (its default 0.1 keeps ~0.2 SCR/min at rest; 0.01 gives the usual 1-5/min)
SCR_RELATIVE_MIN = 0.01
ACC_UNITS_PER_G = 64.0
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


@dataclass
class SubjectFeatures:
    subject: str
    layout: str
    features: dict[str, np.ndarray]  # signal -> [W, D]
    condition: np.ndarray  # [W] index into CONDITIONS
    window: np.ndarray  # [W] index inside the condition
    time: np.ndarray  # [W] window start, seconds from the condition start
    panas: dict[str, list[float]]  # condition -> 24 ratings (NaN = missing)


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


def _gather(rec: Recording, name: str, x: np.ndarray, starts_s: np.ndarray, window_s: float):
    """``[W, L, ...]`` windows of ``x`` (inside it: :func:`check_coverage` ran first)."""
    first, length = _window_index(rec, name, starts_s, window_s)
    return x[first[:, None] + np.arange(length)], first, length


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


def _range_sums(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``sum(values[lo:hi])`` per window, via one cumulative sum (empty ranges give 0)."""
    c = np.concatenate([[0.0], np.cumsum(values, dtype=np.float64)])
    lo = np.clip(lo, 0, len(values))  # windows past the last beat/SCR
    return c[np.clip(hi, lo, len(values))] - c[lo]


# --------------------------------------------------------------------------- signals
def hrv_features(peaks: np.ndarray, fs: float, first: np.ndarray, length: int) -> np.ndarray:
    """HR/HRV (:data:`HRV_NAMES`) of the windows ``[first, first + length)`` from peak indices."""
    out = np.full((len(first), len(HRV_NAMES)), np.nan)
    peaks = np.sort(np.asarray(peaks, dtype=np.int64))
    if len(peaks) < 3 or len(first) == 0:
        return out
    ibi = np.diff(peaks) / fs  # interval j spans peaks j and j + 1
    local = median_filter(ibi, size=IBI_NEIGHBOURS, mode="nearest")
    ok = (ibi >= IBI_RANGE_S[0]) & (ibi <= IBI_RANGE_S[1])
    ok &= np.abs(ibi - local) <= IBI_MAX_DEVIATION * local
    lo = np.searchsorted(peaks, first, "left")
    hi = np.searchsorted(peaks, first + length, "left")
    # intervals inside the window: both peaks inside -> j in [lo, hi - 1)
    n_all = np.maximum(hi - 1 - lo, 0)
    n = _range_sums(ok, lo, hi - 1)
    s1, s2 = _range_sums(ok * ibi, lo, hi - 1), _range_sums(ok * ibi**2, lo, hi - 1)
    hr = 60.0 / ibi
    h1, h2 = _range_sums(ok * hr, lo, hi - 1), _range_sums(ok * hr**2, lo, hi - 1)
    # successive differences of two kept intervals: pairs (j, j + 1), j in [lo, hi - 2)
    pair = ok[:-1] & ok[1:]
    d = np.diff(ibi)
    m = _range_sums(pair, lo, hi - 2)
    d2 = _range_sums(pair * d**2, lo, hi - 2)
    d50 = _range_sums(pair & (np.abs(d) > 0.05), lo, hi - 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_ibi = s1 / n
        out[:, 0] = 60.0 / mean_ibi
        out[:, 1] = np.sqrt(np.maximum(h2 / n - (h1 / n) ** 2, 0))
        out[:, 2] = 1000 * np.sqrt(np.maximum(s2 / n - mean_ibi**2, 0))
        out[:, 3] = np.where(m > 0, 1000 * np.sqrt(d2 / m), np.nan)
        out[:, 4] = np.where(m > 0, d50 / m, np.nan)
        out[:, 5] = np.where(n_all > 0, n / n_all, np.nan)
    out[n < 2, :5] = np.nan
    return out


def _bvp(rec: Recording, starts: np.ndarray, window_s: float) -> np.ndarray:
    import neurokit2 as nk

    sig = rec.signals["BVP"]
    filtered = bandpass_ppg(sig.data, sig.fs)
    win, first, length = _gather(rec, "BVP", filtered, starts, window_s)
    # Elgendi's threshold is relative to the recording's mean power: stretches of weak pulse
    # (loose strap) lose every beat unless the amplitude is first levelled by a running RMS
    rms = np.sqrt(uniform_filter1d(filtered**2, size=int(PEAK_RMS_S * sig.fs)) + 1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peaks = nk.ppg_findpeaks(filtered / rms, sampling_rate=int(sig.fs), method="elgendi")
    peaks = peaks["PPG_Peaks"]
    return np.concatenate(
        [peripheral_stats(win, sig.fs, welch=False), hrv_features(peaks, sig.fs, first, length)],
        axis=1,
    )


def _eda(rec: Recording, starts: np.ndarray, window_s: float) -> np.ndarray:
    import neurokit2 as nk

    sig = rec.signals["EDA"]
    win, first, length = _gather(rec, "EDA", sig.data, starts, window_s)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # neurokit warns that 4 Hz is a low rate
        parts = nk.eda_phasic(sig.data, sampling_rate=int(sig.fs), method="highpass")
        tonic = parts["EDA_Tonic"].to_numpy()
        _, info = nk.eda_peaks(
            parts["EDA_Phasic"].to_numpy(),
            sampling_rate=int(sig.fs),
            method="neurokit",
            amplitude_min=SCR_RELATIVE_MIN,
        )
    peaks = np.asarray(info["SCR_Peaks"], dtype=np.int64)
    amp = np.nan_to_num(np.asarray(info["SCR_Amplitude"], dtype=np.float64))
    order = np.argsort(peaks)
    peaks, amp = peaks[order], amp[order]
    lo = np.searchsorted(peaks, first, "left")
    hi = np.searchsorted(peaks, first + length, "left")
    count = (hi - lo).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        amp_mean = np.where(count > 0, _range_sums(amp, lo, hi) / count, 0.0)
    tonic_mean = tonic[first[:, None] + np.arange(length)].mean(axis=1)
    return np.concatenate(
        [peripheral_stats(win, sig.fs, welch=True), np.stack([tonic_mean, count, amp_mean], 1)],
        axis=1,
    )


def _temp(rec: Recording, starts: np.ndarray, window_s: float) -> np.ndarray:
    sig = rec.signals["TEMP"]
    win, _, length = _gather(rec, "TEMP", sig.data, starts, window_s)
    t = (np.arange(length) - (length - 1) / 2) / sig.fs / 60.0  # minutes, centred
    slope = ((win - win.mean(axis=1, keepdims=True)) * t).sum(axis=1) / (t**2).sum()
    return np.stack([win.mean(1), win.std(1), win.min(1), win.max(1), slope], axis=1)


def _acc(rec: Recording, starts: np.ndarray, window_s: float) -> np.ndarray:
    sig = rec.signals["ACC"]
    g = sig.data / ACC_UNITS_PER_G
    channels = np.concatenate([g, np.linalg.norm(g, axis=1, keepdims=True)], axis=1)  # [T, 4]
    win, _, length = _gather(rec, "ACC", channels, starts, window_s)  # [W, L, 4]
    win = np.moveaxis(win, 1, 2)  # [W, 4, L]
    mean = win.mean(axis=-1)
    spectrum = np.abs(np.fft.rfft(win - mean[..., None], axis=-1))[..., 1:]
    dominant = (np.argmax(spectrum, axis=-1) + 1) * sig.fs / length
    dominant[spectrum.max(axis=-1) < 1e-9] = 0.0  # a motionless channel has no dominant rhythm
    stats = np.stack([mean, win.std(axis=-1), (win**2).mean(axis=-1), dominant], axis=-1)
    return stats.reshape(len(win), -1)  # channel-major: x_mean, x_std, ..., magnitude_dominant_hz


EXTRACTORS = {"BVP": _bvp, "EDA": _eda, "TEMP": _temp, "ACC": _acc}


def featurize(
    rec: Recording, signals: tuple[str, ...], window_s: float, step_s: float, trim_s: float
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
    feats = {name: EXTRACTORS[name](rec, starts, window_s) for name in signals}
    return SubjectFeatures(
        subject=rec.subject,
        layout=rec.layout,
        features=feats,
        condition=condition,
        window=np.concatenate(wins),
        time=np.concatenate(times),
        panas={c: rec.quest.panas[c].tolist() for c in CONDITIONS},
    )


def process_subject(task: SubjectTask) -> SubjectFeatures:
    """Read and featurise one subject (the unit of work of the reader's process pool)."""
    rec = read_recording(task.data_dir, task.subject, task.signals, task.alignment)
    return featurize(rec, task.signals, task.window_s, task.step_s, task.trim_s)


__all__ = [
    "FEATURE_NAMES",
    "PANAS_ITEMS",
    "SubjectFeatures",
    "SubjectTask",
    "featurize",
    "hrv_features",
    "process_subject",
    "window_starts",
]
