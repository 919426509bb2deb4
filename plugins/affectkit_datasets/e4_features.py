"""Window features of Empatica E4 wrist signals, shared by the ``wesad`` and ``e4`` readers.

Each extractor takes one signal ``x`` (the whole recording, or a stretch of it), its rate
and the windows ``[first, first + length)`` as sample indices into ``x``, and returns
``[W, D]`` features vectorised over windows. Both readers and the live stream call them
through :func:`signal_window`, with each window and the ``CONTEXT_S`` seconds before it,
so that a window's features never depend on samples after it and ``wesad``, ``e4`` and
``affectkit stream`` compute the same numbers for the same stretch of signal.

- BVP (64 Hz) -> 27 DMER PPG statistics of the 0.5-8 Hz band-passed pulse
  (:func:`dmer_features.peripheral_stats`), then heart rate and HRV from pulse peaks
  (neurokit2 ``ppg_findpeaks``, Elgendi, on the filtered signal divided by its 5-s running
  RMS): ``hr_mean`` (60 / mean inter-beat interval, bpm), ``hr_std`` (bpm), ``sdnn_ms``,
  ``rmssd_ms``, ``pnn50`` and ``beats_valid`` (fraction of intervals kept). An interval
  is kept if it is 0.3-2 s and within 30 % of the median of its 11 neighbours; a window
  with fewer than 2 kept intervals gets NaN HR/HRV values.
- EDA (4 Hz) -> 28 DMER GSR statistics of the raw signal, then neurokit2 ``eda_phasic``
  (high-pass 0.05 Hz split): ``tonic_mean`` (uS), ``scr_count`` (SCR peaks in the window,
  found as ``eda_peaks`` method neurokit does, counting those of at least ``SCR_MIN_US`` =
  0.01 uS from onset trough to peak) and ``scr_amplitude_mean`` (uS, 0 without SCRs).
- TEMP (4 Hz) -> ``mean``, ``std``, ``min``, ``max``, ``slope`` (least squares, degC/min).
- ACC (32 Hz, 1/64 g) -> in g, for x, y, z and the magnitude: ``mean``, ``std``,
  ``energy`` (mean square, gravity included) and ``dominant_hz`` (the largest non-DC
  bin of the mean-removed window's spectrum; 0 for a constant channel).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable

import numpy as np

from .dmer_features import (
    GSR_FEATURE_NAMES,
    PPG_BAND_HZ,
    PPG_FEATURE_NAMES,
    PPG_FILTER_ORDER,
    peripheral_stats,
)

# scipy is imported inside the functions that filter: this module is loaded with the
# dataset plugin by every CLI call and every fold worker, and scipy.signal costs about 1 s
# of start-up there, which most runs (synthetic data, cached features) never need

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
#: smallest SCR counted, in uS (onset trough to peak of the phasic signal): the classic
#: minimum-amplitude criterion (Boucsein, Electrodermal Activity, 2012). An absolute bar, not
#: neurokit's fraction of the largest SCR in view: a relative bar depends on how much signal
#: the detector sees (a calm 90-s stretch counted ~65 noise "SCRs" a minute on WESAD, the
#: whole recording ~5), so the live stream and the offline reader could not agree.
SCR_MIN_US = 0.01
ACC_UNITS_PER_G = 64.0


def windows_of(x: np.ndarray, first: np.ndarray, length: int) -> np.ndarray:
    """``[W, L, ...]`` windows of ``x`` (every window lies inside it)."""
    return x[first[:, None] + np.arange(length)]


def _range_sums(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``sum(values[lo:hi])`` per window, via one cumulative sum (empty ranges give 0)."""
    c = np.concatenate([[0.0], np.cumsum(values, dtype=np.float64)])
    lo = np.clip(lo, 0, len(values))  # windows past the last beat/SCR
    return c[np.clip(hi, lo, len(values))] - c[lo]


# --------------------------------------------------------------------------- signals
def hrv_features(peaks: np.ndarray, fs: float, first: np.ndarray, length: int) -> np.ndarray:
    """HR/HRV (:data:`HRV_NAMES`) of the windows ``[first, first + length)`` from peak indices."""
    from scipy.ndimage import median_filter

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


@functools.lru_cache(maxsize=8)
def _ppg_sos(fs: float) -> np.ndarray:
    """:func:`dmer_features.bandpass_ppg`'s filter, designed once per rate rather than once
    per window (the design cost as much as the filtering in a live stream)."""
    from scipy import signal

    return signal.butter(PPG_FILTER_ORDER, PPG_BAND_HZ, btype="bandpass", fs=fs, output="sos")


def bvp_features(x: np.ndarray, fs: float, first: np.ndarray, length: int) -> np.ndarray:
    import neurokit2 as nk
    from scipy import signal
    from scipy.ndimage import uniform_filter1d

    filtered = signal.sosfiltfilt(_ppg_sos(fs), np.asarray(x, dtype=np.float64), axis=-1)
    win = windows_of(filtered, first, length)
    # Elgendi's threshold is relative to the signal's mean power: stretches of weak pulse
    # (loose strap) lose every beat unless the amplitude is first levelled by a running RMS
    rms = np.sqrt(uniform_filter1d(filtered**2, size=int(PEAK_RMS_S * fs)) + 1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peaks = nk.ppg_findpeaks(filtered / rms, sampling_rate=int(fs), method="elgendi")
    peaks = peaks["PPG_Peaks"]
    return np.concatenate(
        [peripheral_stats(win, fs, welch=False), hrv_features(peaks, fs, first, length)],
        axis=1,
    )


def scr_peaks(phasic: np.ndarray, amplitude_min: float) -> tuple[np.ndarray, np.ndarray]:
    """SCR peak indices and amplitudes as ``nk.eda_peaks(phasic, method="neurokit",
    amplitude_min=...)`` gives ``SCR_Peaks`` and ``SCR_Amplitude``.

    neurokit finds each peak's onset (the nearest trough before it) with a pandas search per
    peak and also times every recovery, which the features do not use: about 50 ms for one
    90-s window at 4 Hz, too slow for a live stream. This is the same rule in numpy (tested
    against neurokit), and it also answers for a flat signal, where neurokit raises.
    """
    from scipy.signal import find_peaks, peak_prominences

    peaks, _ = find_peaks(phasic)
    if len(peaks) == 0:
        return peaks.astype(np.int64), np.empty(0)
    prominence = peak_prominences(phasic, peaks)[0]
    # neurokit: prominence relative to the largest one (signal_findpeaks, relative_max)
    peaks = peaks[~(prominence / np.max(prominence) < amplitude_min)]
    troughs, _ = find_peaks(-phasic)
    before = np.searchsorted(troughs, peaks, "left") - 1  # the last trough strictly before
    amplitude = np.full(len(peaks), np.nan)
    ok = before >= 0
    amplitude[ok] = phasic[peaks[ok]] - phasic[troughs[before[ok]]]
    return peaks.astype(np.int64), amplitude


def eda_features(x: np.ndarray, fs: float, first: np.ndarray, length: int) -> np.ndarray:
    import neurokit2 as nk

    win = windows_of(x, first, length)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # neurokit warns that 4 Hz is a low rate
        parts = nk.eda_phasic(x, sampling_rate=int(fs), method="highpass")
    tonic = parts["EDA_Tonic"].to_numpy()
    peaks, amp = scr_peaks(parts["EDA_Phasic"].to_numpy(), 0.0)
    counted = amp >= SCR_MIN_US  # NaN (no onset trough in view) is not counted
    peaks, amp = peaks[counted], amp[counted]
    lo = np.searchsorted(peaks, first, "left")
    hi = np.searchsorted(peaks, first + length, "left")
    count = (hi - lo).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        amp_mean = np.where(count > 0, _range_sums(amp, lo, hi) / count, 0.0)
    tonic_mean = tonic[first[:, None] + np.arange(length)].mean(axis=1)
    return np.concatenate(
        [peripheral_stats(win, fs, welch=True), np.stack([tonic_mean, count, amp_mean], 1)],
        axis=1,
    )


def temp_features(x: np.ndarray, fs: float, first: np.ndarray, length: int) -> np.ndarray:
    win = windows_of(x, first, length)
    t = (np.arange(length) - (length - 1) / 2) / fs / 60.0  # minutes, centred
    slope = ((win - win.mean(axis=1, keepdims=True)) * t).sum(axis=1) / (t**2).sum()
    return np.stack([win.mean(1), win.std(1), win.min(1), win.max(1), slope], axis=1)


def acc_features(x: np.ndarray, fs: float, first: np.ndarray, length: int) -> np.ndarray:
    g = x / ACC_UNITS_PER_G
    channels = np.concatenate([g, np.linalg.norm(g, axis=1, keepdims=True)], axis=1)  # [T, 4]
    win = windows_of(channels, first, length)  # [W, L, 4]
    win = np.moveaxis(win, 1, 2)  # [W, 4, L]
    mean = win.mean(axis=-1)
    spectrum = np.abs(np.fft.rfft(win - mean[..., None], axis=-1))[..., 1:]
    dominant = (np.argmax(spectrum, axis=-1) + 1) * fs / length
    dominant[spectrum.max(axis=-1) < 1e-9] = 0.0  # a motionless channel has no dominant rhythm
    stats = np.stack([mean, win.std(axis=-1), (win**2).mean(axis=-1), dominant], axis=-1)
    return stats.reshape(len(win), -1)  # channel-major: x_mean, x_std, ..., magnitude_dominant_hz


Extractor = Callable[[np.ndarray, float, np.ndarray, int], np.ndarray]
EXTRACTORS: dict[str, Extractor] = {
    "BVP": bvp_features,
    "EDA": eda_features,
    "TEMP": temp_features,
    "ACC": acc_features,
}

#: seconds of signal before a window that its filters and peak detectors see (never after),
#: for both readers: a wesad checkpoint sees on a live E4 stream what it was trained on
CONTEXT_S = 30.0


def signal_window(
    name: str,
    x: np.ndarray,
    base: int,
    origin: float,
    fs: float,
    start: float,
    window_s: float,
    context_s: float,
) -> np.ndarray | None:
    """Features of the window starting at unix time ``start`` from ``x``, which holds the
    signal's samples ``base, base + 1, ...`` (sample ``i`` at ``origin + i / fs``); ``None``
    when a sample of the window is missing. The stream's ring buffers and the offline
    reader's whole arrays both go through here, so they agree window for window."""
    first = round((start - origin) * fs)
    length = round(window_s * fs)
    if first < base or first + length > base + len(x):
        return None
    lo = max(first - round(context_s * fs), base)
    seg = x[lo - base : first + length - base]
    bad = np.isnan(seg).reshape(len(seg), -1).any(axis=1)
    if bad[first - lo :].any():
        return None
    gaps = np.flatnonzero(bad)
    if gaps.size:  # the context stops at the last gap before the window
        seg = seg[gaps[-1] + 1 :]
        lo += gaps[-1] + 1
    return EXTRACTORS[name](seg, fs, np.array([first - lo]), length)[0]


def window_features(
    mapping: dict[str, str],
    arrays: dict[str, tuple[np.ndarray, int, float, float]],
    start: float,
    window_s: float,
    context_s: float,
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Per modality the window's features (NaN where the signal is missing) and the list of
    modalities that are missing; ``arrays``: signal -> (x, base, origin, fs)."""
    by_signal: dict[str, np.ndarray | None] = {}
    for sig in dict.fromkeys(mapping.values()):
        if sig in arrays:
            x, base, origin, fs = arrays[sig]
            by_signal[sig] = signal_window(sig, x, base, origin, fs, start, window_s, context_s)
        else:
            by_signal[sig] = None
    feats, missing = {}, []
    for m, sig in mapping.items():
        f = by_signal[sig]
        if f is None:
            missing.append(m)
            f = np.full(len(FEATURE_NAMES[sig]), np.nan)
        feats[m] = f
    return feats, missing


__all__ = [
    "CONTEXT_S",
    "EXTRACTORS",
    "FEATURE_NAMES",
    "HRV_NAMES",
    "acc_features",
    "bvp_features",
    "eda_features",
    "hrv_features",
    "signal_window",
    "temp_features",
    "window_features",
]
