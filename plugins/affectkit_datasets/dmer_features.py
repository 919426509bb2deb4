"""DMER feature definitions computed from raw signals (Yang et al., Scientific Data 2024).

These functions reproduce the columns of the published DMER feature files
(``feas`` N x 913 minus the video part) from raw recordings, as the published scripts
(``fea4eeg.py``, ``perifeaext.py``) compute them; ``docs/datasets.md`` has the definitions:

- Alignment of the raw signals (:func:`end_align`): every modality of a trial is cut to
  its LAST ``int(min length)`` seconds, so the ends line up, before any windowing.
- EEG differential entropy (DE) per channel and band on non-overlapping 1-s windows:
  symmetric Hann window over the window's samples, a 256-point FFT (which, like the
  published script, keeps only the first 256 samples of the windowed second), bins
  0-127, mean power over the band's bins ``floor(f / fs * 256)`` (both bounds
  inclusive), ``DE = 1/2 ln(mean power) + 1/2 ln(2 pi e)``.
- GSR (28) and PPG (27) statistics on 5-s windows moved by 1 s (:func:`peripheral_stats`),
  the FFT statistics of the complex FFT as the published script takes them. PPG is
  band-passed 0.5-8 Hz first (Butterworth order 3, zero-phase).
- Row alignment (:func:`align_trial`): the first 4 DE rows of each trial are dropped so
  that row ``i`` of every modality covers the second that ends the peripheral window ``i``.

The values line up with the published files only at the published sampling rates,
EEG 300 Hz, GSR 4 Hz and PPG 100 Hz: the published script fixes the Welch and filter
rates, while these functions use the rate they are given. The published DE was computed
on preprocessed EEG (18 channels re-referenced to CM, 1 Hz high-pass, 50 Hz low-pass,
49-51 Hz notch, baseline removal, ICA); raw EEG gives another DE level.
:func:`filter_eeg` does the filtering and baseline part; re-referencing and ICA are left
to the user. The ``dmer-raw`` reader (``dmer_raw.py``) runs all of this on raw per-trial
files. Everything is vectorised over windows and channels; the only Python loops run over
bands and the three signal orders, never over windows.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

# scipy is imported inside the functions that filter: this module is loaded with the
# dataset plugin by every CLI call and every fold worker, and scipy.signal costs about 1 s
# of start-up there, which most runs (synthetic data, cached features) never need

EEG_FS = 300.0
GSR_FS = 4.0
PPG_FS = 100.0
EEG_BANDS: tuple[tuple[float, float], ...] = ((1, 4), (4, 8), (8, 14), (14, 31), (31, 49))
EEG_BAND_NAMES = ("delta", "theta", "alpha", "beta", "gamma")
NFFT = 256
PERIPHERAL_WINDOW_S = 5.0
PERIPHERAL_STEP_S = 1.0
#: DE rows dropped at the start of every trial so that EEG/video rows match peripheral rows
ALIGN_DROP = 4
PPG_BAND_HZ = (0.5, 8.0)
PPG_FILTER_ORDER = 3
#: the filters of the published EEG preprocessing (the part :func:`filter_eeg` offers)
EEG_HIGHPASS_HZ = 1.0
EEG_LOWPASS_HZ = 50.0
EEG_NOTCH_HZ = (49.0, 51.0)
EEG_FILTER_ORDER = 4

_ORDERS = ("signal", "diff1", "diff2")
_TIME_STATS = ("median", "mean", "std", "min", "max", "frac_min", "frac_max")
_FFT_STATS = ("median", "mean", "std", "min", "max", "range")
PPG_FEATURE_NAMES: tuple[str, ...] = tuple(
    [f"{o}_{s}" for o in _ORDERS for s in _TIME_STATS] + [f"fft_{s}" for s in _FFT_STATS]
)
GSR_FEATURE_NAMES: tuple[str, ...] = (*PPG_FEATURE_NAMES, "welch_psd_mean")
HALF_LN_2PI_E = 0.5 * np.log(2 * np.pi * np.e)


# --------------------------------------------------------------------------- windows
def n_windows(n_samples: int, fs: float, window_s: float, step_s: float) -> int:
    """Number of full windows: ``floor((n - w) / s) + 1`` (0 when the signal is shorter)."""
    w, s = _samples(window_s, fs), _samples(step_s, fs)
    return 0 if n_samples < w else (n_samples - w) // s + 1


def sliding_windows(x: np.ndarray, fs: float, window_s: float, step_s: float) -> np.ndarray:
    """View ``[..., T]`` as ``[..., W, L]`` windows of ``window_s`` moved by ``step_s``."""
    w, s = _samples(window_s, fs), _samples(step_s, fs)
    x = np.asarray(x, dtype=np.float64)
    if x.shape[-1] < w:
        return np.empty((*x.shape[:-1], 0, w))
    return sliding_window_view(x, w, axis=-1)[..., ::s, :]


def _samples(seconds: float, fs: float) -> int:
    n = seconds * fs
    if abs(n - round(n)) > 1e-9 or round(n) < 1:
        raise ValueError(f"{seconds} s at {fs} Hz is not a whole, positive number of samples")
    return round(n)


# --------------------------------------------------------------------------- EEG
def band_bins(
    fs: float = EEG_FS, bands: tuple[tuple[float, float], ...] = EEG_BANDS, nfft: int = NFFT
) -> list[tuple[int, int]]:
    """Inclusive FFT-bin ranges ``(floor(lo / fs * nfft), floor(hi / fs * nfft))`` per band."""
    return [(int(np.floor(lo / fs * nfft)), int(np.floor(hi / fs * nfft))) for lo, hi in bands]


def eeg_de(
    eeg: np.ndarray,
    fs: float = EEG_FS,
    bands: tuple[tuple[float, float], ...] = EEG_BANDS,
    nfft: int = NFFT,
) -> np.ndarray:
    """Differential entropy ``[C, T] -> [W, C, B]`` on non-overlapping 1-s windows.

    ``W = floor(T / fs)``. The FFT keeps the first ``nfft`` samples of each windowed
    second (as the published script does), then bins ``0 .. nfft/2 - 1``.
    """
    from scipy import signal

    eeg = np.asarray(eeg, dtype=np.float64)
    if eeg.ndim != 2:
        raise ValueError(f"eeg must be [channels, samples], got shape {eeg.shape}")
    win = sliding_windows(eeg, fs, 1.0, 1.0)  # [C, W, L]
    taper = signal.windows.hann(win.shape[-1], sym=True)
    spec = np.fft.fft(win * taper, n=nfft, axis=-1)[..., : nfft // 2]
    power = np.abs(spec) ** 2
    de = np.stack(
        [power[..., lo : hi + 1].mean(axis=-1) for lo, hi in band_bins(fs, bands, nfft)], axis=-1
    )  # [C, W, B]
    with np.errstate(divide="ignore"):
        de = 0.5 * np.log(de) + HALF_LN_2PI_E
    return np.ascontiguousarray(np.moveaxis(de, 0, 1))


def filter_eeg(
    eeg: np.ndarray, fs: float = EEG_FS, baseline: np.ndarray | None = None
) -> np.ndarray:
    """The filtering part of the EEG preprocessing behind the published DE, ``[C, T]``.

    1 Hz high-pass, 50 Hz low-pass and a 49-51 Hz band-stop (Butterworth, order
    :data:`EEG_FILTER_ORDER` each, forward-backward so zero-phase), then baseline
    removal: per channel, the mean of ``baseline`` (``[C, T0]`` samples of a rest period,
    filtered alike) is subtracted, or the trial's own mean without one. The published
    preprocessing also re-referenced the 18 channels to CM and removed artefacts with
    ICA; both need more than these channels (the reference channel, a person judging
    components) and are left to the user. The published filter designs are not known
    here, so the DE level of filtered signals comes close to, not bit-equal with, the
    published files.
    """
    from scipy import signal

    sos = np.vstack(
        [
            signal.butter(EEG_FILTER_ORDER, EEG_HIGHPASS_HZ, "highpass", fs=fs, output="sos"),
            signal.butter(EEG_FILTER_ORDER, EEG_LOWPASS_HZ, "lowpass", fs=fs, output="sos"),
            signal.butter(EEG_FILTER_ORDER, EEG_NOTCH_HZ, "bandstop", fs=fs, output="sos"),
        ]
    )
    out = signal.sosfiltfilt(sos, np.asarray(eeg, dtype=np.float64), axis=-1)
    if baseline is None:
        return out - out.mean(axis=-1, keepdims=True)
    base = signal.sosfiltfilt(sos, np.asarray(baseline, dtype=np.float64), axis=-1)
    return out - base.mean(axis=-1, keepdims=True)


# --------------------------------------------------------------------------- GSR / PPG
def peripheral_stats(windows: np.ndarray, fs: float, welch: bool) -> np.ndarray:
    """The DMER window statistics of ``[..., L]`` windows -> ``[..., 27]`` (``28`` with welch).

    For the signal, its first and its second difference: median, mean, std (ddof 0),
    min, max, fraction of samples equal to the min, fraction equal to the max (21);
    then median, mean, std, min, max and max - min of the window's complex FFT ``X``, as
    the published script computes them (6); with ``welch``, the mean of the Welch PSD
    (``nperseg = min(256, L)``, scipy's default for short windows) (1). Names:
    :data:`GSR_FEATURE_NAMES`.

    The FFT columns hold real numbers although the published script kept complex ones:
    numpy orders complex values by real part first (the imaginary part only breaks ties),
    so the real parts of its median, min, max and max - min are those statistics of
    ``Re X``; its mean is real (``sum X = L x[0]``). Its std, ``np.std`` of the complex
    values, is ``sqrt(var Re X + var Im X)``, not the std of ``Re X``; by Parseval
    (``sum |X|^2 = L sum x^2``) it equals ``sqrt(L (std_x^2 + mean_x^2) - x[0]^2)``.
    """
    from scipy import signal

    x = np.asarray(windows, dtype=np.float64)
    if x.shape[-1] < 3:
        raise ValueError(f"windows need at least 3 samples for second differences, got {x.shape}")
    out = []
    for arr in (x, np.diff(x, axis=-1), np.diff(x, n=2, axis=-1)):
        lo, hi = arr.min(axis=-1), arr.max(axis=-1)
        out += [
            np.median(arr, axis=-1),
            arr.mean(axis=-1),
            arr.std(axis=-1),
            lo,
            hi,
            (arr == lo[..., None]).mean(axis=-1),
            (arr == hi[..., None]).mean(axis=-1),
        ]
    spec = np.fft.fft(x, axis=-1)
    f = spec.real
    fmin, fmax = f.min(axis=-1), f.max(axis=-1)
    out += [np.median(f, axis=-1), f.mean(axis=-1), spec.std(axis=-1), fmin, fmax, fmax - fmin]
    if welch:
        _, psd = signal.welch(x, fs=fs, nperseg=min(256, x.shape[-1]), axis=-1)
        out.append(psd.mean(axis=-1))
    return np.stack(out, axis=-1)


def bandpass_ppg(ppg: np.ndarray, fs: float = PPG_FS) -> np.ndarray:
    """0.5-8 Hz Butterworth band-pass of order 3, applied forward and backward (zero-phase)."""
    from scipy import signal

    sos = signal.butter(PPG_FILTER_ORDER, PPG_BAND_HZ, btype="bandpass", fs=fs, output="sos")
    return signal.sosfiltfilt(sos, np.asarray(ppg, dtype=np.float64), axis=-1)


def gsr_features(
    gsr: np.ndarray,
    fs: float = GSR_FS,
    window_s: float = PERIPHERAL_WINDOW_S,
    step_s: float = PERIPHERAL_STEP_S,
) -> np.ndarray:
    """GSR ``[T] -> [W, 28]`` on 5-s windows moved by 1 s (raw signal, no filtering)."""
    return peripheral_stats(sliding_windows(gsr, fs, window_s, step_s), fs, welch=True)


def ppg_features(
    ppg: np.ndarray,
    fs: float = PPG_FS,
    window_s: float = PERIPHERAL_WINDOW_S,
    step_s: float = PERIPHERAL_STEP_S,
) -> np.ndarray:
    """PPG ``[T] -> [W, 27]``: band-pass the whole trial, then 5-s windows moved by 1 s."""
    return peripheral_stats(sliding_windows(bandpass_ppg(ppg, fs), fs, window_s, step_s), fs, False)


# --------------------------------------------------------------------------- alignment
def align_trial(
    eeg_rows: np.ndarray | None,
    gsr_rows: np.ndarray | None,
    ppg_rows: np.ndarray | None,
    video_rows: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Drop the first :data:`ALIGN_DROP` EEG/video rows, then cut all to the shortest.

    After this, row ``i`` of every modality covers second ``i + 4`` of the trial, the
    last second of the peripheral window ``[i, i + 5)``. Modalities given as None are
    left out of the result.
    """
    rows = {
        "eeg": None if eeg_rows is None else np.asarray(eeg_rows)[ALIGN_DROP:],
        "gsr": gsr_rows,
        "ppg": ppg_rows,
        "behavioral": None if video_rows is None else np.asarray(video_rows)[ALIGN_DROP:],
    }
    rows = {k: np.asarray(v) for k, v in rows.items() if v is not None}
    if not rows:
        return {}
    n = min(len(v) for v in rows.values())
    return {k: v[:n] for k, v in rows.items()}


def common_seconds(lengths: Mapping[str, int], rates: Mapping[str, float]) -> int:
    """Whole seconds every signal covers: ``int(min(samples / rate))``."""
    return int(min(n / rates[m] for m, n in lengths.items()))


def end_align(
    signals: Mapping[str, np.ndarray], rates: Mapping[str, float]
) -> dict[str, np.ndarray]:
    """Keep each signal's LAST :func:`common_seconds` seconds, as the published alignment does.

    A trial's modalities start recording at slightly different moments and stop together
    with the clip, so the published alignment lines up the ends: ``x[..., -int(L) * fs:]``
    with ``L`` the shortest modality's length in seconds. Keeping the leading seconds
    instead shifts every window of the longer modalities by the length difference.
    """
    seconds = common_seconds({m: np.shape(x)[-1] for m, x in signals.items()}, rates)
    out = {}
    for m, x in signals.items():
        x = np.asarray(x)
        keep = seconds * _samples(1.0, rates[m])
        out[m] = x[..., x.shape[-1] - keep :]
    return out


def trial_features(
    eeg: np.ndarray | None,
    gsr: np.ndarray | None,
    ppg: np.ndarray | None,
    fs_eeg: float = EEG_FS,
    fs_gsr: float = GSR_FS,
    fs_ppg: float = PPG_FS,
) -> dict[str, np.ndarray]:
    """One trial's raw signals -> aligned ``eeg [n, C, 5]``, ``gsr [n, 28]``, ``ppg [n, 27]``.

    ``eeg`` is ``[channels, samples]`` (18 channels in DMER); ``gsr`` and ``ppg`` are 1-D;
    a modality given as None is left out. The given signals are first cut to their
    common whole seconds, ends aligned (:func:`end_align`); then the PPG band-pass runs
    over the cut trial, and the features are windowed and aligned (:func:`align_trial`).
    With a trial of ``L`` common seconds every modality gives ``L - 4`` rows.
    """
    given = {m: x for m, x in (("eeg", eeg), ("gsr", gsr), ("ppg", ppg)) if x is not None}
    if not given:
        raise ValueError("trial_features needs at least one of eeg, gsr, ppg")
    rates = {"eeg": fs_eeg, "gsr": fs_gsr, "ppg": fs_ppg}
    cut = end_align(given, rates)
    return align_trial(
        eeg_de(cut["eeg"], fs_eeg) if "eeg" in cut else None,
        gsr_features(cut["gsr"], fs_gsr) if "gsr" in cut else None,
        ppg_features(cut["ppg"], fs_ppg) if "ppg" in cut else None,
    )


__all__ = [
    "ALIGN_DROP",
    "EEG_BANDS",
    "EEG_BAND_NAMES",
    "GSR_FEATURE_NAMES",
    "PPG_FEATURE_NAMES",
    "align_trial",
    "band_bins",
    "bandpass_ppg",
    "common_seconds",
    "eeg_de",
    "end_align",
    "filter_eeg",
    "gsr_features",
    "n_windows",
    "peripheral_stats",
    "ppg_features",
    "sliding_windows",
    "trial_features",
]
