"""WESAD reader on tiny subjects written in the real layouts (see fake_wesad.py)."""

import time

import fake_wesad as fw
import numpy as np
import pytest
from affectkit_datasets.wesad import DMER_ITEMS, WesadReader
from affectkit_datasets.wesad_features import HRV_NAMES, hrv_features
from affectkit_datasets.wesad_quest import PANAS_ITEMS, minutes_seconds, parse_quest

from affectkit.bench import resolve_configs
from affectkit.datasets import load_dataset
from affectkit.errors import UserError
from affectkit.plugins import get_registry

CONDITIONS = ["Base", "TSST", "Fun", "Medi 1", "Medi 2"]


def wesad(root, use_cache=False, **kw):
    cfg = get_registry().get("dataset", "wesad").config_cls(data_dir=root, **{"workers": 1, **kw})
    return load_dataset(cfg, use_cache=use_cache)


@pytest.fixture(scope="module")
def e4_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("wesad")
    fw.write_subject(root, "S2", seed=0)
    fw.write_subject(root, "S3", seed=1, nan_item=15)  # Medi 1 Nervous = Nan, as S5's file
    fw.write_alignment(root, ["S2", "S3"])
    return root


@pytest.fixture(scope="module")
def e4_data(e4_root):
    return wesad(e4_root)


def col(data, modality, name):
    return data.modalities[modality][:, data.info["feature_names"][modality].index(name)]


# --------------------------------------------------------------------------- questionnaire
@pytest.mark.parametrize(
    ("raw", "seconds"), [("39.55", 2395), ("50.3", 3030), ("32", 1920), ("7.08", 428), ("0.5", 50)]
)
def test_minutes_seconds(raw, seconds, tmp_path):
    assert minutes_seconds(raw, tmp_path, "START") == seconds


@pytest.mark.parametrize("raw", ["7.75", "1.234", "abc", ""])
def test_minutes_seconds_rejects_non_times(raw, tmp_path):
    with pytest.raises(UserError, match=r"not a minutes\.seconds time"):
        minutes_seconds(raw, tmp_path / "S2_quest.csv", "START")


def test_quest_parsing(e4_root):
    q = parse_quest(e4_root / "S3" / "S3_quest.csv")
    assert q.order == ("Base", "TSST", "Medi 1", "Fun", "Medi 2")
    assert q.times == {c: tuple(float(v) for v in fw.TIMES[c]) for c in fw.ORDER}
    for c in fw.ORDER:
        assert q.panas[c].shape == (24,)
    # the 26-value TSST row: Angry and Irritated dropped, Sad (last value) kept
    tsst = fw.PANAS["TSST"]
    np.testing.assert_array_equal(q.panas["TSST"], tsst[:23] + tsst[-1:])
    assert np.isnan(q.panas["Medi 1"][15]) and PANAS_ITEMS[15] == "Nervous"
    assert np.isnan(q.panas["Medi 1"]).sum() == 1


# --------------------------------------------------------------------------- dataset
def test_shapes_groups_targets(e4_data):
    d = e4_data
    assert d.spec.shapes == {"ppg": (33,), "gsr": (31,), "temp": (5,), "behavioral": (16,)}
    assert d.groups == {
        "ppg": "physiological",
        "gsr": "physiological",
        "temp": "physiological",
        "behavioral": "behavioral",
    }
    assert d.emotions == list(DMER_ITEMS) and d.info["stand_ins"] == {"upset": "Annoyed"}
    assert d.info["primary"] == "ppg" and d.info["overlap_windows"] == 5
    # S3's Medi 1 has a Nan among the 10 items: dropped under the default rule
    assert d.info["dropped_conditions"] == ["S3 Medi 1: Nervous is Nan"]
    for s in ("S2", "S3"):
        for ci, c in enumerate(CONDITIONS):
            rows = (d.subject == s) & (d.trial == ci)
            want = 0 if (s, c) == ("S3", "Medi 1") else fw.WINDOWS[c]
            assert rows.sum() == want, (s, c)
            if want:
                ratings = np.array(fw.PANAS[c], float)
                if c == "TSST":
                    ratings = np.r_[ratings[:23], ratings[-1:]]
                items = [PANAS_ITEMS.index(i) for i in DMER_ITEMS.values()]
                np.testing.assert_allclose(
                    d.targets[rows],
                    np.tile(ratings[items] / ratings[items].sum(), (want, 1)),
                    rtol=1e-6,
                )
                np.testing.assert_array_equal(d.window[rows], np.arange(want))
                np.testing.assert_array_equal(d.time[rows], 30 + 10 * np.arange(want))


def test_physiology_features_recover_the_known_signals(e4_data):
    d = e4_data
    for ci, c in enumerate(CONDITIONS):
        rows = d.trial == ci
        np.testing.assert_allclose(col(d, "ppg", "hr_mean")[rows], fw.HR[c], atol=0.5)
        np.testing.assert_allclose(col(d, "gsr", "tonic_mean")[rows], fw.EDA[c], atol=0.1)
        np.testing.assert_allclose(col(d, "temp", "slope")[rows], fw.TEMP_SLOPE, rtol=1e-3)
        np.testing.assert_allclose(col(d, "behavioral", "z_mean")[rows], 1.0)
        np.testing.assert_allclose(col(d, "behavioral", "z_energy")[rows], 1.0)
        shake = 2.0 if c == "Fun" else 0.0
        np.testing.assert_allclose(col(d, "behavioral", "x_dominant_hz")[rows], shake)
    assert (col(d, "ppg", "sdnn_ms") < 20).all()  # a metronome pulse has almost no HRV
    scr = col(d, "gsr", "scr_count")
    assert scr[d.trial == 1].mean() >= 6 and scr[d.trial == 1].mean() > scr[d.trial == 0].mean()


def test_nan_rule_renormalise_and_full_panas(e4_root):
    d = wesad(
        e4_root, subjects=["S3"], nan_rule="renormalise", items="panas", modalities={"temp": "TEMP"}
    )
    assert d.info["dropped_conditions"] == [] and len(d.emotions) == 24
    assert d.emotions[4] == "annoyed" and d.info["stand_ins"] == {}
    medi = d.targets[d.trial == 3]
    assert medi.shape == (7, 24) and (medi[:, 15] == 0).all()
    ratings = np.array(fw.PANAS["Medi 1"], float)
    ratings[15] = 0
    np.testing.assert_allclose(medi[0], ratings / ratings.sum(), rtol=1e-6)
    assert list(d.modalities) == ["temp"]


@pytest.mark.parametrize("layout", ["e4-zip", "pkl"])
def test_other_layouts_give_the_same_features(tmp_path, e4_data, layout):
    fw.write_subject(tmp_path, "S2", layout=layout, seed=0)
    if layout != "pkl":
        fw.write_alignment(tmp_path, ["S2"])
    d = wesad(tmp_path)
    assert d.info["layout"] == {"S2": layout}
    ref = e4_data.subset(np.flatnonzero(e4_data.subject == "S2"))
    for m in ref.modalities:
        np.testing.assert_allclose(d.modalities[m], ref.modalities[m], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(d.targets, ref.targets)
    np.testing.assert_array_equal(d.trial, ref.trial)


def test_pool_matches_serial_and_cache_is_used(e4_root, e4_data, monkeypatch):
    pooled = wesad(e4_root, use_cache=True, workers=2)
    for m in e4_data.modalities:
        np.testing.assert_array_equal(pooled.modalities[m], e4_data.modalities[m])

    def boom(self):
        raise AssertionError("the cache should have answered")

    monkeypatch.setattr(WesadReader, "load", boom)
    t0 = time.perf_counter()
    cached = wesad(e4_root, use_cache=True, workers=2)
    assert time.perf_counter() - t0 < 5
    np.testing.assert_array_equal(cached.modalities["ppg"], pooled.modalities["ppg"], strict=False)
    assert cached.info["feature_names"] == pooled.info["feature_names"]


def test_protocol_default_is_leave_one_subject_out():
    cfg = resolve_configs(["prior"], flags={"dataset": {"name": "wesad", "data_dir": "/x"}})[0]
    assert cfg.protocol.name == "subject-independent" and cfg.protocol.folds is None


def test_hrv_from_a_known_beat_train():
    fs = 64
    beats = np.arange(0, 120, 0.75)  # 80 bpm, 48 samples apart
    beats = np.delete(beats, 40)  # a missed beat: one 1.6-s interval, an artefact
    jitter = np.where(np.arange(len(beats)) % 2, 2, -2)  # alternating +-31.25 ms
    peaks = np.rint(beats * fs).astype(int) + jitter
    first = np.array([0, 20 * fs, 60 * fs, 200 * fs])  # the last window is after every beat
    out = dict(zip(HRV_NAMES, hrv_features(peaks, fs, first, 30 * fs).T, strict=True))
    np.testing.assert_allclose(out["hr_mean"][:3], 80.0, rtol=3e-3)
    # successive differences alternate +-125 ms
    np.testing.assert_allclose(out["rmssd_ms"][:3], 125.0, rtol=1e-9)
    np.testing.assert_allclose(out["pnn50"][:3], 1.0)
    np.testing.assert_allclose(out["sdnn_ms"][:3], 62.5, rtol=1e-2)
    assert out["beats_valid"][1] < 1.0 and out["beats_valid"][0] == 1.0  # 20-50 s holds the gap
    assert np.isnan(out["hr_mean"][3])


def test_e4_reader_on_the_same_recording_gives_wesads_features(e4_data, e4_root, tmp_path):
    """A wesad checkpoint must see on an E4 export (and so on a live stream, which equals
    the e4 reader) the features it was trained on. The subject's E4 folder is read by the
    e4 reader with tags at the first window of every condition, so that its windows start
    where wesad's do; every wesad window must then have e4's features, to float32 rounding.
    """
    import shutil

    session = tmp_path / "S2_E4_Data"
    shutil.copytree(e4_root / "S2" / "S2_E4_Data", session)
    trim = 30.0
    first = {c: fw.OFFSET + fw.TIMES[c][0] + trim for c in CONDITIONS}  # e4 seconds
    (session / "tags.csv").write_text(
        "".join(f"{fw.START_UNIX + t:.6f}\n" for t in sorted(first.values()))
    )
    cfg = get_registry().get("dataset", "e4").config_cls(data_dir=session)
    e4 = load_dataset(cfg, use_cache=False)
    e4_start = np.round(np.asarray(e4.info["timeline"]["start_s"]), 3)
    w = e4_data
    rows = np.flatnonzero(w.subject == "S2")
    w_start = np.round(
        [fw.OFFSET + fw.TIMES[CONDITIONS[w.trial[i]]][0] + w.time[i] for i in rows], 3
    )
    at = {t: i for i, t in enumerate(e4_start)}
    assert all(t in at for t in w_start)  # every wesad window has its e4 twin
    twin = np.array([at[t] for t in w_start])
    for m in w.modalities:
        np.testing.assert_allclose(
            w.modalities[m][rows], e4.modalities[m][twin], rtol=1e-5, atol=1e-6, err_msg=m
        )
    # the SCR count is an absolute-amplitude count: it follows the phases, not the view
    scr = col(w, "gsr", "scr_count")[rows]
    tsst = w.trial[rows] == CONDITIONS.index("TSST")
    assert scr[tsst].mean() > 2 * scr[~tsst].mean()


def test_trial_order_follows_each_subjects_recording(e4_data):
    """calibration_trials takes a subject's first conditions in time: S3 went Base, TSST,
    Medi 1, Fun, Medi 2 (its Medi 1 is dropped for a Nan rating, so it is not listed)."""
    order = e4_data.info["trial_order"]
    starts = {c: fw.TIMES[c][0] for c in CONDITIONS}
    by_time = [CONDITIONS.index(c) for c in sorted(starts, key=starts.__getitem__)]
    assert order["S2"] == by_time
    assert order["S3"] == [i for i in by_time if CONDITIONS[i] != "Medi 1"]
    for s, trials in order.items():
        assert set(trials) == set(np.unique(e4_data.trial[e4_data.subject == s]))
