"""Bad raw recordings stop ``affectkit`` with exit 2 and one message naming the file (issue 17).

Each case writes a valid ``dmer-raw`` folder from simulated signals, breaks one thing, and
runs ``affectkit bench --method prior`` on it in process.
"""

import numpy as np
import pytest

from tests.datasets import fake_dmer_raw as fr
from tests.reliability.test_dataset_inputs import _refused


@pytest.fixture
def root(tmp_path):
    """Subjects 1 and 2, trials 0 (7 s) and 3 (6 s)."""
    return fr.write_folder(tmp_path / "raw", fr.simulated_subjects(2, {0: 7, 3: 6}))


def _bench(run_cli, root, tmp_path, *extra):
    args = ["bench", "--method", "prior", "--dataset", "dmer-raw", "--data-dir", root]
    return run_cli(*args, "--out", tmp_path / "run", *extra)


def test_the_valid_folder_runs(root, tmp_path, run_cli):
    code, text = _bench(run_cli, root, tmp_path)
    assert code == 0, text


def test_trial_shorter_than_one_window(root, tmp_path, run_cli):
    rng = np.random.default_rng(0)
    np.save(root / "2" / "3_ppg.npy", fr.simulate("ppg", 4.6, rng))  # EEG, GSR keep 6 s
    code, text = _bench(run_cli, root, tmp_path)
    _refused(
        code,
        text,
        f"{root / '2' / '3_ppg.npy'} holds 460 samples, 4.60 s at 100 Hz",
        "subject 2 trial 3 is shorter than one window",
        "needs 5 whole seconds",
    )


def test_missing_modality(root, tmp_path, run_cli):
    (root / "1" / "3_gsr.npy").unlink()
    code, text = _bench(run_cli, root, tmp_path)
    _refused(
        code,
        text,
        f"{root / '1' / '3_gsr.npy'} or {root / '1' / '3_gsr.csv'} not found",
        "subject 1 trial 3 has 3_eeg.npy, 3_ppg.npy but no gsr recording",
    )
    # reading the other modalities only is the documented way round it
    code, text = _bench(run_cli, root, tmp_path, "--set", "dataset.modalities=[eeg,ppg]")
    assert code == 0, text


@pytest.mark.parametrize(
    ("manifest", "fragment"),
    [
        ("sampling_rates: {eeg: 300, gsr: 4}\n", "gives no sampling rate for ppg"),
        ("sampling_rates: {eeg: 300, gsr: 4, ppg: fast}\n", "sampling_rates.ppg: Input should"),
        ("sampling_rates: {eeg: 300, gsr: 4, ppg: 12}\n", "sampling_rates.ppg is 12 Hz"),
        ("rates: {eeg: 300}\n", "sampling_rates: Field required"),
        (None, "not found. A dmer-raw folder declares its sampling rates there"),
    ],
)
def test_manifest_without_a_sampling_rate(root, tmp_path, run_cli, manifest, fragment):
    path = root / "manifest.yaml"
    if manifest is None:
        path.unlink()
    else:
        path.write_text(manifest)
    code, text = _bench(run_cli, root, tmp_path)
    _refused(code, text, str(path), fragment)


@pytest.mark.parametrize("ext", ["npy", "csv"])
def test_nan_samples(tmp_path, run_cli, ext):
    subjects = fr.simulated_subjects(2, {0: 6})
    subjects["2"][0]["eeg"][5, 1200:1210] = np.nan  # channel 5, 10 samples from 4 s on
    root = fr.write_folder(tmp_path / "raw", subjects, ext=ext)
    code, text = _bench(run_cli, root, tmp_path)
    _refused(
        code,
        text,
        f"{root / '2' / f'0_eeg.{ext}'}: 10 NaN/inf sample(s), the first at sample 1200, channel 5",
        "Fill the gap",
    )


@pytest.mark.parametrize(
    ("defect", "fragment"),
    [
        (lambda r: np.save(r / "1" / "0_eeg.npy", np.zeros((18, 2100))), "looks transposed"),
        (lambda r: (r / "1" / "0_gsr.npy").write_text("not an array"), "as a numeric .npy array"),
        (lambda r: (r / "1" / "ratings.csv").unlink(), "ratings.csv not found"),
        (lambda r: (r / "1" / "0_ppg.npy").rename(r / "1" / "0_ppg.mat"), ".mat recordings"),
    ],
)
def test_other_bad_files_are_named(root, tmp_path, run_cli, defect, fragment):
    defect(root)
    code, text = _bench(run_cli, root, tmp_path)
    _refused(code, text, str(root / "1"), fragment)


def test_rating_outside_1_to_5_names_the_line(root, tmp_path, run_cli):
    path = root / "2" / "ratings.csv"
    lines = path.read_text().splitlines()
    lines[2] = "3," + ",".join(["3"] * 9 + ["7"])
    path.write_text("\n".join(lines) + "\n")
    code, text = _bench(run_cli, root, tmp_path)
    _refused(code, text, f"{path}, line 3", "PANAS ratings are 1-5 per item")


def test_flat_eeg_channel_is_named(tmp_path, run_cli):
    subjects = fr.simulated_subjects(2, {0: 6})
    subjects["1"][0]["eeg"][17] = 0.0
    root = fr.write_folder(tmp_path / "raw", subjects)
    code, text = _bench(run_cli, root, tmp_path)
    _refused(code, text, f"{root / '1' / '0_eeg.npy'}: channel 17", "-inf")
