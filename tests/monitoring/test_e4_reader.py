"""The ``e4`` reader on simulated exports written in the published E4 layout."""

from __future__ import annotations

import numpy as np
import pytest
from affectkit_datasets.e4_features import FEATURE_NAMES, scr_peaks
from affectkit_datasets.wesad import WesadConfig
from fake_e4 import FS, START, signals, write_session

from affectkit import UserError
from affectkit.datasets import load_dataset
from affectkit.plugins import get_registry


def e4(data_dir, **kw):
    cfg = get_registry().get("dataset", "e4").config_cls(data_dir=data_dir, cache=False, **kw)
    return load_dataset(cfg, use_cache=False)


def test_continuous_windows_tags_and_wall_clock(tmp_path):
    write_session(tmp_path / "s", 400, tags=(150.0,))
    d = e4(tmp_path / "s")
    tl = d.info["timeline"]
    start = np.asarray(tl["start_s"])
    # segment 0: [0, 150) holds 10 windows of 60 s every 10 s; segment 1 restarts at the tag
    assert d.trial.tolist() == [0] * 10 + [1] * 20
    np.testing.assert_allclose(start[:10], np.arange(10) * 10.0)
    np.testing.assert_allclose(start[10:], 150 + np.arange(20) * 10.0)
    end = np.asarray(tl["end_s"])
    assert not ((start < 150) & (end > 150)).any()  # no window crosses the tag
    assert end.max() <= 400
    assert tl["markers"] == {"s": [150.0]}
    assert tl["start_wall"][0] == "2017-05-22T07:15:25.000+00:00"  # the header, UTC
    assert d.emotions == ["unlabelled"] and d.info["labelled"] is False
    # the same layout as wesad's windows, so a wesad checkpoint can predict on e4 data
    assert {m: a.shape[1] for m, a in d.modalities.items()} == {
        m: len(FEATURE_NAMES[s]) for m, s in WesadConfig(name="wesad").modalities.items()
    }


def test_timezone_setting_moves_only_the_wall_clock(tmp_path):
    write_session(tmp_path / "s", 130)
    utc = e4(tmp_path / "s")
    berlin = e4(tmp_path / "s", timezone="Europe/Berlin")
    assert berlin.info["timeline"]["start_wall"][0] == "2017-05-22T09:15:25.000+02:00"
    assert berlin.info["timeline"]["start_s"] == utc.info["timeline"]["start_s"]
    np.testing.assert_array_equal(berlin.modalities["ppg"], utc.modalities["ppg"])


def test_several_sessions_folder_and_zip(tmp_path):
    write_session(tmp_path / "all" / "1495437325_A", 130, seed=1)
    write_session(tmp_path / "all" / "1495447325_B", 130, seed=2, start=1495447325.0, zipped=True)
    d = e4(tmp_path / "all")
    assert d.subjects == ["1495437325_A", "1495447325_B"]
    # a zip reads as its folder does
    write_session(tmp_path / "one" / "1495447325_B", 130, seed=2, start=1495447325.0)
    single = e4(tmp_path / "one" / "1495447325_B")
    rows = d.subject == "1495447325_B"
    for m in d.modalities:
        np.testing.assert_array_equal(d.modalities[m][rows], single.modalities[m])
    with pytest.raises(UserError, match=r"session.*nope.*not in"):
        e4(tmp_path / "all", sessions=["nope"])


def test_labels_give_targets(tmp_path):
    folder = write_session(tmp_path / "s", 250)
    (folder / "labels.csv").write_text("start_s,end_s,calm,aroused\n0,120,3,1\n120,250,1,1\n")
    d = e4(folder)
    assert d.emotions == ["calm", "aroused"]
    start = np.asarray(d.info["timeline"]["start_s"])
    np.testing.assert_allclose(d.targets[start + 60 <= 120], [[0.75, 0.25]] * 7)
    np.testing.assert_allclose(d.targets[start >= 120], [[0.5, 0.5]] * 8)
    assert len(d) == 15  # windows across the label boundary are left out


def test_scr_peaks_match_neurokit():
    import neurokit2 as nk

    rng = np.random.default_rng(3)
    eda = signals(300, seed=4)["EDA"]
    for x in (eda, eda + np.cumsum(rng.normal(0, 0.01, len(eda)))):
        phasic = nk.eda_phasic(x, sampling_rate=FS["EDA"], method="highpass")["EDA_Phasic"]
        phasic = phasic.to_numpy()
        _, info = nk.eda_peaks(phasic, sampling_rate=4, method="neurokit", amplitude_min=0.01)
        peaks, amp = scr_peaks(phasic, 0.01)
        np.testing.assert_array_equal(peaks, info["SCR_Peaks"])
        np.testing.assert_array_equal(amp, info["SCR_Amplitude"])
        assert len(peaks) > 5
    # neurokit raises on a flat signal; a live stream must not
    assert len(scr_peaks(np.zeros(100), 0.01)[0]) == 0


def test_header_start_kept_per_file(tmp_path):
    """A file starting later than the others (within the clock tolerance) is placed by its
    own header, not by its first line's position."""
    sig = signals(130)
    write_session(tmp_path / "s", 130, sig=sig, starts={"EDA": START + 1.0})
    d = e4(tmp_path / "s")
    assert d.info["timeline"]["start_s"][0] == 0.0
    # window 0 starts before EDA's first sample: EDA is missing there, imputed and flagged
    assert d.info["timeline"]["imputed"][0] == ["gsr"]
    assert d.info["timeline"]["imputed"][1] == []


def test_switching_reader_keeps_the_checkpoints_feature_settings(tmp_path):
    """A wesad checkpoint predicting on e4 data gets the windows and modality mapping it was
    trained with, not e4's defaults."""
    from types import SimpleNamespace

    from affectkit.monitor import dataset_config

    trained = WesadConfig(
        name="wesad",
        data_dir=tmp_path,
        window_s=30,
        step_s=5,
        context_s=12,
        modalities={"gsr": "EDA"},
    )
    ckpt = SimpleNamespace(config=SimpleNamespace(dataset=trained))
    cfg = dataset_config(ckpt, "e4", tmp_path / "new", ["dataset.timezone=Europe/Berlin"])
    assert cfg.name == "e4" and cfg.data_dir == tmp_path / "new"
    assert (cfg.window_s, cfg.step_s, cfg.context_s, cfg.modalities) == (30, 5, 12, {"gsr": "EDA"})
    assert cfg.timezone == "Europe/Berlin"
