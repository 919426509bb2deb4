"""DMER feature definitions on signals whose features are known in advance."""

import fake_dmer_raw as fr
import numpy as np
import pytest
from affectkit_datasets import dmer_features as F
from affectkit_datasets.dmer import COLUMNS
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
    assert s["fft_max"] == pytest.approx(n * 3.0)
    assert s["fft_min"] == pytest.approx(0.0, abs=1e-12)
    assert s["fft_mean"] == pytest.approx(3.0)
    assert s["fft_range"] == pytest.approx(n * 3.0)
    # std of {60, 0 x 19}: sqrt(60^2 / 20 - 3^2)
    assert s["fft_std"] == pytest.approx(np.sqrt(n * 9.0 - 9.0))
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


# ------------------------------------------------------------------ FFT columns (issue 17)
def _windows(modality, seconds=12, seed=4):
    x = fr.simulate(modality, seconds, np.random.default_rng(seed))
    fs = fr.RATES[modality]
    if modality == "ppg":
        x = F.bandpass_ppg(x, fs)
    return F.sliding_windows(x, fs, 5, 1), fs


@pytest.mark.parametrize("modality", ["gsr", "ppg"])
def test_fft_columns_are_the_published_complex_statistics(modality):
    """Each FFT column is what ``np.<stat>`` of the complex FFT gives, real part kept."""
    win, fs = _windows(modality)
    stats = F.peripheral_stats(win, fs, welch=modality == "gsr")
    names = F.GSR_FEATURE_NAMES if modality == "gsr" else F.PPG_FEATURE_NAMES
    got = {k: stats[:, names.index(f"fft_{k}")] for k in ("median", "mean", "std", "min", "max")}
    got["range"] = stats[:, names.index("fft_range")]
    X = np.fft.fft(win, axis=-1)  # complex, as the published script keeps it
    # numpy sorts complex numbers by real part first, so median/min/max are defined and
    # their real parts are the real-part statistics
    want = {
        "median": np.median(X, axis=-1).real,
        "mean": np.mean(X, axis=-1).real,
        "std": np.std(X, axis=-1),  # real already: sqrt(var Re + var Im)
        "min": np.min(X, axis=-1).real,
        "max": np.max(X, axis=-1).real,
        "range": (np.max(X, axis=-1) - np.min(X, axis=-1)).real,
    }
    for k, v in want.items():
        np.testing.assert_allclose(got[k], v, rtol=1e-12, atol=1e-9, err_msg=k)
    # the std of the real part alone (affectkit before issue 17) is a different number
    assert not np.allclose(got["std"], X.real.std(axis=-1), rtol=1e-6)


def _column(modality, name):
    names = F.GSR_FEATURE_NAMES if modality == "gsr" else F.PPG_FEATURE_NAMES
    return COLUMNS[modality][0] + names.index(name)


@pytest.mark.parametrize(
    ("modality", "n", "cols"),
    [("gsr", 20, (91, 92, 112, 113)), ("ppg", 500, (119, 120, 140, 141))],
)
def test_fft_std_identity_on_feas_columns(modality, n, cols):
    """feas[std_fft]^2 = N (feas[std]^2 + feas[mean]^2) - feas[mean_fft]^2, derived step by step.

    For a window x of N samples and its FFT X:
    (a) np.std of complex values: std(X)^2 = mean |X|^2 - |mean X|^2;
    (b) Parseval: sum |X|^2 = N sum x^2, so mean |X|^2 = sum x^2 = N (std_x^2 + mean_x^2);
    (c) the inverse DFT at sample 0: x[0] = (1/N) sum X = mean X, the FFT-mean column.
    Together: std(X)^2 = N (std_x^2 + mean_x^2) - x[0]^2. Each step is checked on the
    windows, then the identity on the feas columns that hold these statistics.
    """
    win, fs = _windows(modality, seconds=30)
    assert win.shape[-1] == n
    X = np.fft.fft(win, axis=-1)
    mean_sq = np.mean(np.abs(X) ** 2, axis=-1)
    np.testing.assert_allclose(np.std(X, axis=-1) ** 2, mean_sq - np.abs(X.mean(-1)) ** 2)  # (a)
    np.testing.assert_allclose(mean_sq, n * (win.std(-1) ** 2 + win.mean(-1) ** 2))  # (b)
    np.testing.assert_allclose(X.mean(-1), win[:, 0], atol=1e-9 * np.abs(win).max())  # (c)

    mean, std, fft_mean, fft_std = cols
    assert (mean, std, fft_mean, fft_std) == (
        _column(modality, "signal_mean"),
        _column(modality, "signal_std"),
        _column(modality, "fft_mean"),
        _column(modality, "fft_std"),
    )
    feas = np.full((len(win), 145), np.nan)
    lo, hi, _ = COLUMNS[modality]
    feas[:, lo:hi] = F.peripheral_stats(win, fs, welch=modality == "gsr")
    lhs = feas[:, fft_std] ** 2
    rhs = n * (feas[:, std] ** 2 + feas[:, mean] ** 2) - feas[:, fft_mean] ** 2
    np.testing.assert_allclose(lhs, rhs, rtol=1e-9)


# ------------------------------------------------------------------ end alignment (issue 17)
def test_end_align_keeps_the_last_common_whole_seconds():
    rates = {"eeg": 300, "gsr": 4, "ppg": 100}
    sig = {
        "eeg": np.arange(2 * 7350).reshape(2, 7350),  # 24.5 s
        "gsr": np.arange(99),  # 24.75 s
        "ppg": np.arange(2430),  # 24.3 s: the shortest, int -> 24 s
    }
    assert F.common_seconds({m: x.shape[-1] for m, x in sig.items()}, rates) == 24
    cut = F.end_align(sig, rates)
    assert {m: x.shape[-1] for m, x in cut.items()} == {"eeg": 7200, "gsr": 96, "ppg": 2400}
    np.testing.assert_array_equal(cut["eeg"], sig["eeg"][:, -7200:])
    assert cut["gsr"][-1] == 98 and cut["gsr"][0] == 3
    assert cut["ppg"][0] == 30


def test_unequal_modalities_give_the_features_of_the_common_end():
    """Modalities that started early by 0.5, 0.75 and 0.3 s, all stopping with the clip.

    The trial's features must be those of the 20 s every modality covers, at its end.
    """
    rng = np.random.default_rng(5)
    common = {m: fr.simulate(m, 20, rng) for m in fr.RATES}
    early = {"eeg": 150, "gsr": 3, "ppg": 30}  # samples recorded before the common part
    longer = {
        m: np.concatenate([fr.simulate(m, early[m] / fr.RATES[m], rng), x], axis=-1)
        for m, x in common.items()
    }
    got = F.trial_features(longer["eeg"], longer["gsr"], longer["ppg"])
    want = F.trial_features(common["eeg"], common["gsr"], common["ppg"])
    assert {k: v.shape[0] for k, v in got.items()} == {"eeg": 16, "gsr": 16, "ppg": 16}
    for m in want:
        np.testing.assert_array_equal(got[m], want[m], err_msg=m)
    # keeping the leading seconds instead would shift every EEG window by 0.5 s
    leading = F.eeg_de(longer["eeg"][:, : 20 * 300])[F.ALIGN_DROP :]
    assert np.abs(leading - want["eeg"]).max() > 0.1


def test_trial_features_of_a_subset_crops_over_that_subset():
    rng = np.random.default_rng(6)
    eeg, gsr = fr.simulate("eeg", 12.5, rng), fr.simulate("gsr", 11, rng)
    out = F.trial_features(eeg, gsr, None)
    assert set(out) == {"eeg", "gsr"} and len(out["eeg"]) == len(out["gsr"]) == 7
    np.testing.assert_array_equal(out["eeg"], F.eeg_de(eeg[:, -11 * 300 :])[4:])
    with pytest.raises(ValueError, match="at least one"):
        F.trial_features(None, None, None)


def test_filter_eeg_removes_offset_drift_and_line_noise_keeps_alpha():
    fs = 300
    t = np.arange(20 * fs) / fs
    alpha = np.sin(2 * np.pi * 10 * t)
    noise = 5.0 + 3 * np.sin(2 * np.pi * 0.1 * t) + 2 * np.sin(2 * np.pi * 50 * t)
    noise += np.sin(2 * np.pi * 80 * t)
    out = F.filter_eeg(np.stack([alpha + noise, 2 * alpha]), fs)
    mid = slice(2 * fs, 18 * fs)  # away from the edges the zero-phase filter pads
    assert np.abs(out[0, mid] - alpha[mid]).max() < 0.05
    assert np.abs(out[1, mid] - 2 * alpha[mid]).max() < 0.05
    # baseline removal subtracts per channel the mean of the filtered baseline; the trial
    # as its own baseline is the default
    trial = np.stack([alpha + noise, 2 * alpha])
    np.testing.assert_allclose(F.filter_eeg(trial, fs, baseline=trial), out, atol=1e-12)
    shifted = F.filter_eeg(trial, fs, baseline=trial[:, : 3 * fs]) - out
    assert np.ptp(shifted, axis=-1).max() < 1e-9  # one constant per channel
    assert np.abs(shifted).max() > 1e-3
