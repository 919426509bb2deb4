"""``dmer-raw``: a folder written from simulated signals reads back as dmer_features' features."""

import logging

import fake_dmer_raw as fr
import numpy as np
import pytest
from affectkit_datasets import dmer_features as F
from affectkit_datasets.dmer import EMOTIONS
from affectkit_datasets.dmer_raw import DmerRawReader

from affectkit.datasets import load_dataset
from affectkit.plugins import get_registry


def raw(root, use_cache=False, **kw):
    cfg = get_registry().get("dataset", "dmer-raw").config_cls(data_dir=root, **kw)
    return load_dataset(cfg, use_cache=use_cache)


def _subjects():
    """Two subjects; subject 2 trial 7's EEG started 0.5 s and its GSR 0.25 s early."""
    subjects = fr.simulated_subjects(2, {0: 11, 7: 8.5}, seed=3)
    rng = np.random.default_rng(9)
    trial = subjects["2"][7]
    trial["eeg"] = np.concatenate([fr.simulate("eeg", 0.5, rng), trial["eeg"]], axis=1)
    trial["gsr"] = np.concatenate([fr.simulate("gsr", 0.25, rng), trial["gsr"]])
    return subjects


def _ratings():
    return {"1": {0: [1, 2, 3, 4, 5, 1, 2, 3, 4, 5], 7: [5] * 10}, "2": {7: [2] * 10, 0: [1] * 10}}


@pytest.mark.parametrize("ext", ["npy", "csv"])
def test_reads_back_exactly_the_features_of_dmer_features(tmp_path, ext):
    subjects = _subjects()
    fr.write_folder(tmp_path, subjects, ratings=_ratings(), ext=ext)
    data = raw(tmp_path)
    assert data.name == "dmer-raw" and data.emotions == list(EMOTIONS)
    assert data.spec.shapes == {"eeg": (18, 5), "gsr": (28,), "ppg": (27,)}
    want = {m: [] for m in ("eeg", "gsr", "ppg")}
    rows = []
    for sid in ("1", "2"):
        for trial in (0, 7):
            s = subjects[sid][trial]
            feats = F.trial_features(s["eeg"], s["gsr"], s["ppg"])
            for m in want:
                want[m].append(feats[m])
            rows += [(sid, trial, w) for w in range(len(feats["gsr"]))]
    for m, parts in want.items():
        np.testing.assert_array_equal(data.modalities[m], np.concatenate(parts).astype(np.float32))
    # 11 s -> 7 rows; 8.5 s (and 9 s / 8.75 s that end with it) -> 8 common s -> 4 rows
    got = zip(data.subject, data.trial.tolist(), data.window.tolist(), strict=True)
    assert list(got) == rows
    assert len(data) == 2 * (7 + 4)
    ratings = np.array(_ratings()["1"][0], dtype=float)
    np.testing.assert_allclose(data.targets[0], ratings / ratings.sum(), rtol=1e-6)
    np.testing.assert_allclose(data.targets[-1], np.full(10, 0.1), rtol=1e-6)
    assert data.info["sampling_rates"] == {"eeg": 300.0, "gsr": 4.0, "ppg": 100.0}
    assert data.info["overlap_windows"] == 4 and data.groups["eeg"] == "physiological"


def test_features_are_computed_once_then_cached(tmp_path, monkeypatch):
    fr.write_folder(tmp_path, fr.simulated_subjects(1, {2: 6}))
    first = raw(tmp_path, use_cache=True)

    def no_recompute(*a, **k):
        raise AssertionError("the cache should have answered")

    monkeypatch.setattr(DmerRawReader, "_trial", no_recompute)
    cached = raw(tmp_path, use_cache=True)
    for m in first.modalities:
        np.testing.assert_array_equal(cached.modalities[m], first.modalities[m])
    assert cached.info == first.info
    # a recording that changes invalidates the entry
    np.save(tmp_path / "1" / "2_gsr.npy", fr.simulate("gsr", 7, np.random.default_rng(1)))
    with pytest.raises(AssertionError, match="cache should have answered"):
        raw(tmp_path, use_cache=True)


def test_subset_of_modalities_crops_over_that_subset_and_eeg_filter(tmp_path):
    subjects = fr.simulated_subjects(1, {0: 9}, seed=5)
    rng = np.random.default_rng(2)
    s = subjects["1"][0]
    s["eeg"] = np.concatenate([s["eeg"], fr.simulate("eeg", 1.5, rng)], axis=1)  # 10.5 s
    fr.write_folder(tmp_path, subjects)
    only_eeg = raw(tmp_path, modalities=["eeg"])
    assert list(only_eeg.modalities) == ["eeg"] and len(only_eeg) == 10 - 4
    want = F.trial_features(s["eeg"], None, None)["eeg"]
    np.testing.assert_array_equal(only_eeg.modalities["eeg"], want.astype(np.float32))
    filtered = raw(tmp_path, modalities=["eeg", "gsr"], eeg_filter=True)
    want = F.trial_features(F.filter_eeg(s["eeg"]), s["gsr"], None)
    for m in ("eeg", "gsr"):
        np.testing.assert_array_equal(filtered.modalities[m], want[m].astype(np.float32))
    unfiltered = F.trial_features(s["eeg"], s["gsr"], None)["eeg"]
    assert not np.allclose(filtered.modalities["eeg"], unfiltered, rtol=1e-3)


def test_recordings_without_ratings_for_prediction(tmp_path):
    fr.write_folder(tmp_path, fr.simulated_subjects(1, {0: 6}), ratings={"1": {}})
    assert not (tmp_path / "1" / "ratings.csv").exists()
    data = raw(tmp_path, ratings="none")
    np.testing.assert_allclose(data.targets, 0.1, rtol=1e-6)
    assert data.info["targets"].startswith("placeholder")


def test_other_sampling_rates_work_and_warn(tmp_path, caplog):
    rng = np.random.default_rng(4)
    rates = {"eeg": 256, "gsr": 4, "ppg": 64}
    trial = {m: fr.simulate(m, 7, rng, fs=fs) for m, fs in rates.items()}
    fr.write_folder(tmp_path, {"1": {0: trial}}, rates=rates)
    with caplog.at_level(logging.WARNING, logger="affectkit"):
        data = raw(tmp_path)
    want = F.trial_features(trial["eeg"], trial["gsr"], trial["ppg"], 256, 4, 64)
    np.testing.assert_array_equal(data.modalities["ppg"], want["ppg"].astype(np.float32))
    assert "eeg 256 Hz, ppg 64 Hz" in caplog.text and "eeg 300 Hz, ppg 100 Hz" in caplog.text


def _predictions(path):
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    rows = [line.split(",") for line in lines[1:]]
    probs = np.array([[float(v) for v in r[len(header) - 10 :]] for r in rows])
    return header, rows, probs


@pytest.mark.slow
def test_train_on_dmer_files_then_predict_on_raw_recordings(tmp_path, run_cli):
    """The point of dmer-raw: a model fitted on the published feature files predicts on
    new raw recordings; then the same check with dmer-raw on both sides."""
    files = tmp_path / "dmer"
    tiny = {"subjects": 3, "trials": 8, "windows": 6}
    sets = [a for k, v in tiny.items() for a in ("--set", f"dataset.{k}={v}")]
    code, text = run_cli(
        "data", "export", "--dataset", "synthetic", "--format", "dmer", "--out", files, *sets
    )
    assert code == 0, text
    recordings = fr.write_folder(tmp_path / "raw", fr.simulated_subjects(2, {0: 7, 12: 6}))
    n_rows = 2 * (3 + 2)
    quick = ["--method", "mlp", "--set", "train.steps=5"]
    for name, data_dir, extra in [
        ("dmer", files, ["--set", "dataset.modalities=[eeg,gsr,ppg]"]),
        ("dmer-raw", recordings, []),
    ]:
        ckpt = tmp_path / f"ckpt-{name}"
        code, text = run_cli(
            "train", *quick, "--dataset", name, "--data-dir", data_dir, *extra, "--out", ckpt
        )
        assert code == 0, text
        out = tmp_path / f"pred-{name}.csv"
        code, text = run_cli(
            "predict", "-k", ckpt, "--dataset", "dmer-raw", "--data-dir", recordings, "--out", out
        )
        assert code == 0, text
        header, rows, probs = _predictions(out)
        assert header[:4] == ["subject", "trial", "window", "time"]
        assert header[4:] == list(EMOTIONS)
        assert len(rows) == n_rows
        assert [(r[0], r[1]) for r in rows[:4]] == [("1", "0")] * 3 + [("1", "12")]
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)
        assert (probs > 0).all()
    # recordings nobody rated: predictions need no ratings, and come out the same
    for sid in ("1", "2"):
        (recordings / sid / "ratings.csv").unlink()
    out = tmp_path / "pred-unrated.csv"
    code, text = run_cli(
        "predict",
        *("-k", tmp_path / "ckpt-dmer", "--dataset", "dmer-raw", "--data-dir", recordings),
        *("--set", "dataset.ratings=none", "--out", out),
    )
    assert code == 0, text
    assert out.read_text() == (tmp_path / "pred-dmer.csv").read_text()
