"""DMER feature definitions on signals whose features are known in advance."""

import numpy as np
import pytest
from affectkit_datasets import dmer_features as F
from scipy import signal


def test_band_bins_follow_floor_f_over_fs_times_256():
    assert F.band_bins() == [(0, 3), (3, 6), (6, 11), (11, 26), (26, 41)]


@pytest.mark.parametrize(("freq", "band"), [(2.5, 0), (6.0, 1), (10.0, 2), (20.0, 3), (40.0, 4)])
def test_sinusoid_de_peaks_in_its_band(freq, band):
    t = np.arange(10 * 300) / 300
    eeg = np.stack([np.sin(2 * np.pi * freq * t + ph) for ph in np.linspace(0, 3, 18)])
    de = F.eeg_de(eeg)
    assert de.shape == (10, 18, 5)
    assert (de.argmax(axis=-1) == band).all()


def test_de_matches_the_definition_window_by_window():
    rng = np.random.default_rng(0)
    eeg = rng.normal(size=(3, 4 * 300 + 123))  # a partial last second is ignored
    de = F.eeg_de(eeg)
    assert de.shape == (4, 3, 5)
    taper = signal.windows.hann(300, sym=True)
    for w in range(4):
        for c in range(3):
            seg = eeg[c, w * 300 : (w + 1) * 300] * taper
            power = np.abs(np.fft.fft(seg[:256]))[:128] ** 2
            for b, (lo, hi) in enumerate(F.band_bins()):
                want = 0.5 * np.log(power[lo : hi + 1].mean()) + 0.5 * np.log(2 * np.pi * np.e)
                assert de[w, c, b] == pytest.approx(want, rel=1e-12)


def test_constant_signal_has_zero_spread_and_diff_stats():
    n = 20
    stats = F.peripheral_stats(np.full((2, n), 3.0), fs=4, welch=True)
    assert stats.shape == (2, 28)
    s = dict(zip(F.GSR_FEATURE_NAMES, stats[0], strict=True))
    assert s["signal_median"] == s["signal_mean"] == s["signal_min"] == s["signal_max"] == 3.0
    assert s["signal_std"] == 0.0
    assert s["signal_frac_min"] == s["signal_frac_max"] == 1.0
    for order in ("diff1", "diff2"):
        for stat in ("median", "mean", "std", "min", "max"):
            assert s[f"{order}_{stat}"] == 0.0
    # FFT of a constant: bin 0 = n * 3, every other bin 0
    assert s["fft_real_max"] == pytest.approx(n * 3.0)
    assert s["fft_real_min"] == pytest.approx(0.0, abs=1e-12)
    assert s["fft_real_mean"] == pytest.approx(3.0)
    assert s["fft_real_range"] == pytest.approx(n * 3.0)
    assert s["welch_psd_mean"] == pytest.approx(0.0, abs=1e-20)  # welch removes the mean


def test_ramp_statistics():
    x = np.arange(10.0) * 0.5
    s = dict(zip(F.PPG_FEATURE_NAMES, F.peripheral_stats(x, fs=2, welch=False), strict=True))
    assert len(s) == 27
    assert s["signal_min"] == 0 and s["signal_max"] == 4.5
    assert s["signal_frac_min"] == s["signal_frac_max"] == pytest.approx(0.1)
    assert s["diff1_mean"] == s["diff1_min"] == s["diff1_max"] == 0.5
    assert s["diff1_frac_min"] == 1.0
    assert s["diff2_std"] == 0.0


def test_welch_column_matches_scipy_per_window():
    rng = np.random.default_rng(1)
    gsr = rng.normal(size=4 * 30)
    feats = F.gsr_features(gsr, fs=4)
    win = F.sliding_windows(gsr, 4, 5, 1)
    for i in (0, 7, len(win) - 1):
        want = signal.welch(win[i], fs=4, nperseg=20)[1].mean()
        assert feats[i, -1] == pytest.approx(want, rel=1e-12)
        assert feats[i, 1] == pytest.approx(gsr[4 * i : 4 * i + 20].mean())


@pytest.mark.parametrize(("seconds", "fs"), [(60, 4), (60, 100), (7, 4), (5, 100)])
def test_window_counts_match_the_formula(seconds, fs):
    n = seconds * fs
    want = (n - 5 * fs) // fs + 1
    assert F.n_windows(n, fs, 5, 1) == want == seconds - 4
    x = np.random.default_rng(2).normal(size=n)
    assert len(F.gsr_features(x, fs)) == want
    if fs > 2 * 8:  # the 0.5-8 Hz band-pass needs a rate above 16 Hz
        assert len(F.ppg_features(x, fs)) == want
    assert F.n_windows(4 * fs, fs, 5, 1) == 0


def test_trial_alignment_drops_four_eeg_rows():
    seconds = 20
    rng = np.random.default_rng(3)
    eeg = rng.normal(size=(18, seconds * 300))
    out = F.trial_features(eeg, rng.normal(size=seconds * 4) + 5, rng.normal(size=seconds * 100))
    assert {k: v.shape for k, v in out.items()} == {
        "eeg": (16, 18, 5),
        "gsr": (16, 28),
        "ppg": (16, 27),
    }
    # row i of eeg is second i + 4 of the trial
    np.testing.assert_array_equal(out["eeg"], F.eeg_de(eeg)[4:])
    aligned = F.align_trial(np.arange(10), np.arange(8), np.arange(5), np.arange(12))
    assert aligned["eeg"].tolist() == [4, 5, 6, 7, 8]
    assert aligned["behavioral"].tolist() == [4, 5, 6, 7, 8]
    assert aligned["ppg"].tolist() == [0, 1, 2, 3, 4]


def test_ppg_bandpass_removes_drift_keeps_pulse_in_phase():
    fs = 100
    t = np.arange(60 * fs) / fs
    pulse = np.sin(2 * np.pi * 1.2 * t)
    out = F.bandpass_ppg(pulse + 2.0 + 3.0 * np.sin(2 * np.pi * 0.02 * t), fs)
    mid = slice(10 * fs, 50 * fs)
    assert abs(out[mid].mean()) < 0.01
    assert np.max(np.abs(out[mid] - pulse[mid])) < 0.05  # zero phase: no lag, gain ~1
