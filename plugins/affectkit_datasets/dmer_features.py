"""DMER feature definitions computed from raw signals (Yang et al., Scientific Data 2024).

These functions reproduce the columns of the published DMER feature files
(``feas`` N x 913 minus the video part) from raw recordings, following the definitions
in ``docs/datasets.md``:

- EEG differential entropy (DE) per channel and band on non-overlapping 1-s windows:
  symmetric Hann window over the window's samples, a 256-point FFT (which, like the
  published script, keeps only the first 256 samples of the windowed second), bins
  0-127, mean power over the band's bins ``floor(f / fs * 256)`` (both bounds
  inclusive), ``DE = 1/2 ln(mean power) + 1/2 ln(2 pi e)``.
- GSR (28) and PPG (27) statistics on 5-s windows moved by 1 s (:func:`peripheral_stats`).
  PPG is band-passed 0.5-8 Hz first (Butterworth order 3, zero-phase).
- Alignment (:func:`align_trial`): the first 4 DE rows of each trial are dropped so that
  row ``i`` of every modality covers the second that ends the peripheral window ``i``.

There is no ``dmer-raw`` dataset: the raw DMER files' layout is not documented here, so
these functions are the public surface (see ``docs/datasets.md``). Everything is
vectorised over windows and channels; the only Python loops run over bands and the three
signal orders, never over windows.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import signal

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

_ORDERS = ("signal", "diff1", "diff2")
_TIME_STATS = ("median", "mean", "std", "min", "max", "frac_min", "frac_max")
_FFT_STATS = ("median", "mean", "std", "min", "max", "range")
PPG_FEATURE_NAMES: tuple[str, ...] = tuple(
    [f"{o}_{s}" for o in _ORDERS for s in _TIME_STATS] + [f"fft_real_{s}" for s in _FFT_STATS]
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


# --------------------------------------------------------------------------- GSR / PPG
def peripheral_stats(windows: np.ndarray, fs: float, welch: bool) -> np.ndarray:
    """The DMER window statistics of ``[..., L]`` windows -> ``[..., 27]`` (``28`` with welch).

    For the signal, its first and its second difference: median, mean, std (ddof 0),
    min, max, fraction of samples equal to the min, fraction equal to the max (21);
    then median, mean, std, min, max and max - min of the real part of the window's FFT
    (6; the published script kept the complex values, whose ordering is undefined);
    with ``welch``, the mean of the Welch PSD (``nperseg = min(256, L)``, scipy's
    default for short windows) (1). Names: :data:`GSR_FEATURE_NAMES`.
    """
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
    f = np.fft.fft(x, axis=-1).real
    fmin, fmax = f.min(axis=-1), f.max(axis=-1)
    out += [np.median(f, axis=-1), f.mean(axis=-1), f.std(axis=-1), fmin, fmax, fmax - fmin]
    if welch:
        _, psd = signal.welch(x, fs=fs, nperseg=min(256, x.shape[-1]), axis=-1)
        out.append(psd.mean(axis=-1))
    return np.stack(out, axis=-1)


def bandpass_ppg(ppg: np.ndarray, fs: float = PPG_FS) -> np.ndarray:
    """0.5-8 Hz Butterworth band-pass of order 3, applied forward and backward (zero-phase)."""
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


def trial_features(
    eeg: np.ndarray,
    gsr: np.ndarray,
    ppg: np.ndarray,
    fs_eeg: float = EEG_FS,
    fs_gsr: float = GSR_FS,
    fs_ppg: float = PPG_FS,
) -> dict[str, np.ndarray]:
    """One trial's raw signals -> aligned ``eeg [n, C, 5]``, ``gsr [n, 28]``, ``ppg [n, 27]``.

    ``eeg`` is ``[channels, samples]`` (18 channels in DMER); ``gsr`` and ``ppg`` are 1-D.
    """
    return align_trial(eeg_de(eeg, fs_eeg), gsr_features(gsr, fs_gsr), ppg_features(ppg, fs_ppg))


__all__ = [
    "ALIGN_DROP",
    "EEG_BANDS",
    "EEG_BAND_NAMES",
    "GSR_FEATURE_NAMES",
    "PPG_FEATURE_NAMES",
    "align_trial",
    "band_bins",
    "bandpass_ppg",
    "eeg_de",
    "gsr_features",
    "n_windows",
    "peripheral_stats",
    "ppg_features",
    "sliding_windows",
    "trial_features",
]
