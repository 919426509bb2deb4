"""DMER feature-file reader: both layouts, column mapping, errors and the export round trip."""

import fake_dmer as fd
import numpy as np
import pytest
from affectkit_datasets.dmer import EMOTIONS, DmerReader, _rank_within
from scipy.io import loadmat, savemat

from affectkit.datasets import load_dataset
from affectkit.errors import UserError
from affectkit.plugins import get_registry

TINY = {"subjects": 3, "trials": 8, "windows": 6}


def dmer(tmp_path, **kw):
    cfg = get_registry().get("dataset", "dmer").config_cls(data_dir=tmp_path, **kw)
    return load_dataset(cfg, use_cache=False)


@pytest.mark.parametrize("split", [None, "suffix", "folder"])
def test_layouts_and_column_mapping(tmp_path, split):
    feas1, vids1, r1 = fd.write_subject(tmp_path, "1", split=split, seed=1)
    feas2, vids2, r2 = fd.write_subject(tmp_path, "10", (4,), (31,), split=split, seed=2)
    data = dmer(tmp_path)
    assert data.subjects == ["1", "10"]
    assert data.emotions == list(EMOTIONS)
    assert data.spec.shapes == {"eeg": (18, 5), "gsr": (28,), "ppg": (27,), "behavioral": (768,)}
    assert data.groups == {
        "eeg": "physiological",
        "gsr": "physiological",
        "ppg": "physiological",
        "behavioral": "behavioral",
    }
    feas = np.concatenate([feas1, feas2]).astype(np.float32)
    for c in (0, 7, 17):
        for b in range(5):
            np.testing.assert_array_equal(data.modalities["eeg"][:, c, b], feas[:, c * 5 + b])
    np.testing.assert_array_equal(data.modalities["gsr"], feas[:, 90:118])
    np.testing.assert_array_equal(data.modalities["ppg"], feas[:, 118:145])
    np.testing.assert_array_equal(data.modalities["behavioral"], feas[:, 145:])
    want = np.concatenate([r1[vids1], r2[vids2]])
    np.testing.assert_allclose(data.targets, want / want.sum(1, keepdims=True), rtol=1e-6)
    assert data.trial.tolist() == [5, 5, 5, 0, 0, 31, 31, 31, 31]
    assert data.window.tolist() == [0, 1, 2, 0, 1, 0, 1, 2, 3]
    assert data.info["overlap_windows"] == 4
    assert set(data.info["layout"].values()) == {"combined" if split is None else "split"}


def test_subset_of_modalities_and_subjects(tmp_path):
    fd.write_subject(tmp_path, "1")
    fd.write_subject(tmp_path, "2")
    data = dmer(tmp_path, subjects=["2"], modalities=["gsr", "eeg"])
    assert list(data.modalities) == ["gsr", "eeg"] and data.subjects == ["2"]


def test_errors_name_the_file(tmp_path):
    fd.write_subject(tmp_path, "1")
    savemat(
        tmp_path / "2.mat",
        {"feas": np.zeros((3, 900)), "vids": np.zeros((3, 1)), "dis_label": np.ones((32, 10))},
    )
    with pytest.raises(UserError, match=r"2\.mat: feas has shape \(3, 900\); expected N x 913"):
        dmer(tmp_path)
    (tmp_path / "2.mat").unlink()
    savemat(tmp_path / "3.mat", {"feas": np.zeros((3, 913)), "vids": np.zeros((3, 1))})
    with pytest.raises(UserError, match=r"3\.mat holds no dis_label and no label file"):
        dmer(tmp_path)
    savemat(tmp_path / "3_dis_label.mat", {"dis_label": np.zeros((32, 10))})
    with pytest.raises(
        UserError, match=r"3_dis_label\.mat: dis_label row 1 \(trial 0\), column 1 \(inspired\)"
    ):
        dmer(tmp_path)
    with pytest.raises(UserError, match=r"9\.mat not found"):
        dmer(tmp_path, subjects=["1", "9"])


def test_conflicting_label_files_are_an_error(tmp_path):
    fd.write_subject(tmp_path, "1")
    savemat(tmp_path / "1_dis_label.mat", {"dis_label": np.full((32, 10), 2.0)})
    with pytest.raises(UserError, match="different ratings"):
        dmer(tmp_path)


def _synthetic(**kw):
    cfg = get_registry().get("dataset", "synthetic").config_cls(**{**TINY, **kw})
    return load_dataset(cfg, use_cache=False)


def _assert_same(a, b, exact_targets=True):
    assert list(a.modalities) == list(b.modalities)
    for m in a.modalities:
        np.testing.assert_array_equal(a.modalities[m], b.modalities[m])
    if exact_targets:
        np.testing.assert_array_equal(a.targets, b.targets)
    else:
        np.testing.assert_allclose(a.targets, b.targets, rtol=0, atol=2e-7)
    for key in ("subject", "trial", "window", "time"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    assert a.emotions == b.emotions and a.groups == b.groups


def test_cli_export_round_trip_gives_back_the_synthetic_arrays(tmp_path, run_cli):
    out = tmp_path / "dmer"
    code, text = run_cli(
        "data",
        "export",
        "--dataset",
        "synthetic",
        "--format",
        "dmer",
        "--out",
        out,
        *[a for k, v in TINY.items() for a in ("--set", f"dataset.{k}={v}")],
    )
    assert code == 0, text
    assert sorted(p.name for p in out.iterdir()) == ["1.mat", "2.mat", "3.mat"]
    mat = loadmat(out / "2.mat")
    assert mat["feas"].shape == (8 * 6, 913) and mat["dis_label"].shape == (32, 10)
    # integer PANAS ratings, as the synthetic dataset drew them
    assert set(np.unique(mat["dis_label"][:8])) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    _assert_same(dmer(out), _synthetic())


def test_export_from_targets_alone(tmp_path):
    data = _synthetic()
    del data.info["ratings"]
    keep = np.flatnonzero(data.trial != 3)  # a subject missing a trial keeps a zero row
    data = data.subset(keep)
    files = DmerReader.export(data, tmp_path)
    assert [f.name for f in files] == ["1.mat", "2.mat", "3.mat"]
    dis_label = loadmat(files[0])["dis_label"]
    assert not dis_label[3].any()
    # recovered from the targets as the smallest integer 1-5 ratings that give them back
    rated = dis_label[[t for t in range(8) if t != 3]]
    assert set(np.unique(rated)) <= {1.0, 2.0, 3.0, 4.0, 5.0} and rated.min() == 1.0
    _assert_same(dmer(tmp_path), data, exact_targets=False)


def test_export_refuses_targets_no_rating_row_gives(tmp_path):
    data = _synthetic()
    del data.info["ratings"]
    rows = np.flatnonzero((data.subject == "2") & (data.trial == 4))
    data.targets[rows] = np.r_[0.5, 0.5, np.zeros(8)]  # a zero share is no 1-5 rating
    with pytest.raises(UserError, match=r"subject 2 trial 4 .* is not a row of 1-5 ratings"):
        DmerReader.export(data, tmp_path)
    assert not list(tmp_path.iterdir())  # refused before anything is written


def test_subject_1_trial_10_and_subject_11_trial_0_stay_apart(tmp_path):
    # numpy drops a trailing NUL, so "1" + "\x00" + "10" once equalled "11" + "\x00" + "0":
    # export refused the default dataset and the reader numbered windows across subjects
    np.testing.assert_array_equal(
        _rank_within(np.array(["1"] * 3 + ["11"] * 2), np.array([10, 10, 10, 0, 0])),
        [0, 1, 2, 0, 1],
    )
    data = _synthetic(subjects=11, trials=12, windows=2)
    assert len(np.unique(data.trial_keys())) == 11 * 12
    DmerReader.export(data, tmp_path)
    _assert_same(dmer(tmp_path), data)


def test_export_refuses_other_shapes(tmp_path):
    data = _synthetic(gsr_dim=5)
    with pytest.raises(UserError, match="the DMER layout needs exactly"):
        DmerReader.export(data, tmp_path)


def test_cli_missing_folder_exit_2(tmp_path, run_cli):
    code, text = run_cli(
        "bench",
        "--method",
        "prior",
        "--dataset",
        "dmer",
        "--data-dir",
        tmp_path / "nope",
        "--out",
        tmp_path / "run",
    )
    assert code == 2
    assert "nope does not exist" in text and "Traceback" not in text
