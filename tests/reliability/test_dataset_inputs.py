"""Bad dataset files stop ``affectkit`` with exit 2 and one message naming the cause.

Issue 14, items 3, 4, 5, 9, 10, 17, 18, 19, 20, 21 (each run through the CLI, in process)
and 27 (``data export`` of the default synthetic dataset, read back by the ``dmer`` reader).
"""

import builtins
from pathlib import Path

import numpy as np
import pytest
from scipy.io import loadmat, savemat

from affectkit.datasets import load_dataset
from affectkit.plugins import get_registry
from tests.datasets import fake_dmer as fd
from tests.datasets import fake_wesad as fw


def _bench(run_cli, dataset, root, tmp_path, *extra):
    args = ["bench", "--method", "prior", "--dataset", dataset, "--data-dir", root]
    if dataset == "wesad":
        args += ["--set", "dataset.workers=1"]  # in process, so monkeypatches apply
    return run_cli(*args, "--out", tmp_path / "run", *extra)


def _refused(code, text, *fragments):
    assert code == 2, text
    assert "Traceback" not in text
    for f in fragments:
        assert f in text, (f, text)


# ---------------------------------------------------------------------------------- DMER
@pytest.fixture
def dmer_dir(tmp_path):
    """Two valid subjects; subject 1 has rows for trials 5 and 0."""
    d = tmp_path / "dmer"
    d.mkdir()
    fd.write_subject(d, "2", seed=2)
    return d


@pytest.mark.parametrize("value", [0, 7, 9, 100])
def test_dmer_rating_outside_1_to_5(dmer_dir, tmp_path, run_cli, value):
    ratings = fd.write_subject(dmer_dir, "1")[2]
    ratings[5, 1] = value  # trial 5, item alert
    fd.write_subject(dmer_dir, "1", ratings=ratings)
    code, text = _bench(run_cli, "dmer", dmer_dir, tmp_path)
    _refused(
        code,
        text,
        f"{dmer_dir / '1.mat'}: dis_label row 6 (trial 5), column 2 (alert) is {value};",
        "PANAS ratings are 1-5 per item",
    )


def test_dmer_rating_outside_1_to_5_in_a_trial_without_rows(dmer_dir, tmp_path, run_cli):
    ratings = fd.write_subject(dmer_dir, "1")[2]
    ratings[20, 9] = 9  # subject 1 has no rows of trial 20: still a corrupt file
    fd.write_subject(dmer_dir, "1", ratings=ratings)
    code, text = _bench(run_cli, "dmer", dmer_dir, tmp_path)
    _refused(code, text, "dis_label row 21 (trial 20), column 10 (distressed) is 9;")


def test_dmer_dis_label_with_40_trials(dmer_dir, tmp_path, run_cli):
    fd.write_subject(dmer_dir, "1", ratings=np.full((40, 10), 3.0), split="suffix")
    code, text = _bench(run_cli, "dmer", dmer_dir, tmp_path)
    _refused(
        code,
        text,
        f"{dmer_dir / '1_dis_label.mat'}: dis_label has shape (40, 10); expected 32 x 10",
    )


def test_dmer_label_files_that_disagree(dmer_dir, tmp_path, run_cli):
    ratings = fd.write_subject(dmer_dir, "1", split="both")[2]
    code, text = _bench(run_cli, "dmer", dmer_dir, tmp_path)
    assert code == 0, text  # the same ratings twice: fine
    other = ratings.copy()
    other[0, 0] = 1 if ratings[0, 0] != 1 else 2
    savemat(dmer_dir / "dis_label" / "1.mat", {"dis_label": other})
    code, text = _bench(run_cli, "dmer", dmer_dir, tmp_path, "--out", tmp_path / "run2")
    _refused(
        code,
        text,
        f"{dmer_dir / '1_dis_label.mat'} and {dmer_dir / 'dis_label' / '1.mat'} hold different "
        "ratings for subject 1 (first at trial 0:",
        "Remove the file that is wrong",
    )


@pytest.mark.parametrize("other", ["01", "001"])
def test_dmer_ids_equal_up_to_zero_padding(dmer_dir, tmp_path, run_cli, other):
    fd.write_subject(dmer_dir, "1")
    fd.write_subject(dmer_dir, other)
    code, text = _bench(run_cli, "dmer", dmer_dir, tmp_path)
    _refused(
        code,
        text,
        f"DMER subject ids '{other}' ({dmer_dir / (other + '.mat')}) and '1' "
        f"({dmer_dir / '1.mat'}) name the same subject",
        "Keep one feature file per subject",
    )


def test_dmer_subject_listed_twice(dmer_dir, tmp_path, run_cli):
    fd.write_subject(dmer_dir, "1")
    code, text = _bench(
        run_cli, "dmer", dmer_dir, tmp_path, "--set", "dataset.subjects=['1','1','2']"
    )
    _refused(
        code,
        text,
        f"DMER subject '1' ({dmer_dir / '1.mat'}) is listed twice",
        "list each subject once in dataset.subjects",
    )


@pytest.mark.parametrize(
    ("feas", "what"),
    [
        ("0.5 0.7 0.1", "text (a MATLAB char array)"),
        (np.array([[1.0, "x"]], dtype=object), "a cell array"),
    ],
)
def test_dmer_feas_not_numeric(dmer_dir, tmp_path, run_cli, feas, what):
    fd.write_subject(dmer_dir, "1", feas=feas)
    code, text = _bench(run_cli, "dmer", dmer_dir, tmp_path)
    _refused(
        code,
        text,
        f"{dmer_dir / '1.mat'}: variable 'feas' is {what}; expected a numeric N x 913 array",
    )


def test_dmer_mat_without_read_permission(dmer_dir, tmp_path, run_cli, monkeypatch):
    # tests run as root, who may read a chmod-000 file: deny the one open instead
    denied = dmer_dir / "2.mat"
    real_open = builtins.open

    def open_(file, *args, **kwargs):
        if Path(file) == denied:
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", open_)
    fd.write_subject(dmer_dir, "1")
    code, text = _bench(run_cli, "dmer", dmer_dir, tmp_path)
    _refused(code, text, f"{denied}: permission denied", f"chmod a+r {denied}")
    assert "MATLAB" not in text  # not blamed on the file format


def test_dmer_nan_feature(dmer_dir, tmp_path, run_cli):
    feas = fd.write_subject(dmer_dir, "1")[0]
    feas[3, 95] = np.nan  # row 3 is trial 0, column 95 is gsr
    fd.write_subject(dmer_dir, "1", feas=feas)
    code, text = _bench(run_cli, "dmer", dmer_dir, tmp_path)
    _refused(
        code,
        text,
        f"{dmer_dir / '1.mat'}: feas holds 1 NaN/inf value(s) in column(s) 95",
        "gsr is columns 90-117",
        "row 3 (trial 0)",
        "--set dataset.missing=impute",
    )
    # the fix as spelled works
    code, text = _bench(run_cli, "dmer", dmer_dir, tmp_path, "--set", "dataset.missing=impute")
    assert code == 0, text


# --------------------------------------------------------------------------------- WESAD
@pytest.fixture
def wesad_dir(tmp_path):
    return fw.write_dataset(tmp_path / "wesad")


def test_wesad_signal_too_short_for_the_filter(wesad_dir, tmp_path, run_cli):
    path = wesad_dir / "S2" / "S2_E4_Data" / "BVP.csv"
    path.write_text("\n".join(path.read_text().splitlines()[:20]) + "\n")
    code, text = _bench(run_cli, "wesad", wesad_dir, tmp_path)
    last_window_end = fw.OFFSET + fw.TIMES["Medi 2"][1] - 30  # 30-s trim
    _refused(
        code,
        text,
        f"{path} holds 18 samples (0.3 s at 64 Hz)",
        f"need {round(last_window_end * 64)} samples ({last_window_end:.1f} s)",
        "likely truncated",
    )
    assert "padlen" not in text


@pytest.mark.parametrize("offset", ["nan", "inf", "-inf"])
def test_wesad_alignment_offset_not_finite(wesad_dir, tmp_path, run_cli, offset):
    fw.write_alignment(wesad_dir, ["S2"], offset=offset)
    code, text = _bench(run_cli, "wesad", wesad_dir, tmp_path)
    _refused(
        code,
        text,
        f"{wesad_dir / 'e4_alignment.csv'} line 2: e4_seconds_at_quest_t0 of S2 is '{offset}'; "
        "it must be a finite number of seconds",
    )


def test_wesad_quest_times_past_the_recording(wesad_dir, tmp_path, run_cli):
    quest = wesad_dir / "S2" / "S2_quest.csv"
    quest.write_text(fw.quest_text("S2", quest_times={"Medi 2": ("18", "60")}))
    code, text = _bench(run_cli, "wesad", wesad_dir, tmp_path)
    _refused(
        code,
        text,
        f"holds {round(fw.DURATION * 64)} samples ({fw.DURATION:.1f} s at 64 Hz)",
        f"The first window past its end belongs to the Medi 2 phase (18.00-60.00 in {quest}",
        "the Medi 2 times in S2_quest.csv (or e4_seconds_at_quest_t0 in e4_alignment.csv) are "
        "likely wrong",
    )
    assert "likely truncated" not in text


@pytest.mark.parametrize(
    ("name", "line", "bad", "says"),
    [
        ("EDA", 10, "abc", "line 10 holds 'abc', which is not a finite number"),
        ("TEMP", 3, "nan", "line 3 holds 'nan', which is not a finite number"),
        ("ACC", 7, "1,2", "line 7 holds 2 value(s) ('1,2'); ACC.csv has 3 per line"),
    ],
)
def test_wesad_csv_error_names_the_file_line(wesad_dir, tmp_path, run_cli, name, line, bad, says):
    path = wesad_dir / "S2" / "S2_E4_Data" / f"{name}.csv"
    lines = path.read_text().splitlines()
    lines[line - 1] = bad  # line numbers count from 1 and include the two header lines
    path.write_text("\n".join(lines) + "\n")
    code, text = _bench(run_cli, "wesad", wesad_dir, tmp_path)
    _refused(code, text, str(path), says)


def test_wesad_csv_without_read_permission(wesad_dir, tmp_path, run_cli, monkeypatch):
    denied = wesad_dir / "S2" / "S2_E4_Data" / "TEMP.csv"
    real_read_text = Path.read_text

    def read_text(self, *args, **kwargs):
        if self == denied:
            raise PermissionError(13, "Permission denied", str(self))
        return real_read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", read_text)
    code, text = _bench(run_cli, "wesad", wesad_dir, tmp_path)
    _refused(code, text, f"{denied}: permission denied")


def test_wesad_folders_equal_up_to_zero_padding(wesad_dir, tmp_path, run_cli):
    fw.write_subject(wesad_dir, "S02")
    code, text = _bench(run_cli, "wesad", wesad_dir, tmp_path)
    _refused(
        code,
        text,
        f"WESAD subject ids 'S02' ({wesad_dir / 'S02'}) and 'S2' ({wesad_dir / 'S2'}) name the "
        "same subject",
    )


# ------------------------------------------------------------------------- export (27)
@pytest.mark.slow
def test_export_of_the_default_synthetic_dataset_reads_back(tmp_path, run_cli):
    out = tmp_path / "dmer"
    code, text = run_cli(
        "data", "export", "--dataset", "synthetic", "--format", "dmer", "--out", out
    )
    assert code == 0, text
    registry = get_registry()
    synthetic = load_dataset(registry.get("dataset", "synthetic").config_cls())
    back = load_dataset(registry.get("dataset", "dmer").config_cls(data_dir=out), use_cache=False)
    assert back.subjects == synthetic.subjects == [str(s) for s in range(1, 17)]
    for m in synthetic.modalities:
        np.testing.assert_array_equal(back.modalities[m], synthetic.modalities[m])
    for key in ("targets", "subject", "trial", "window", "time"):
        np.testing.assert_array_equal(getattr(back, key), getattr(synthetic, key))
    # dis_label holds the generator's own 1-5 ratings, subject 3's rows 64..95 of info["ratings"]
    ratings = np.asarray(synthetic.info["ratings"], dtype=float)
    np.testing.assert_array_equal(loadmat(out / "3.mat")["dis_label"], ratings[64:96])
